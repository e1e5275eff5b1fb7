//! Status is written as a JSON merge patch (RFC 7386). A merge patch only removes a key the
//! patch sets to `null`, and the status types leave empty fields out of their JSON, so a patch
//! of just the new status would keep every field that became empty: a cleared health error, an
//! emptied candidate list, a next run time that no longer exists. [`merge_patch`] adds those
//! `null`s.

use serde::Serialize;
use serde_json::Value;

/// The merge patch that turns `old` into `new`: every key of `new`, and `null` for every key
/// `old` has and `new` lacks (recursively, in objects both have).
pub fn merge_patch(old: &Value, new: &Value) -> Value {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let mut out = serde_json::Map::new();
            for (k, v) in n {
                let patched = match o.get(k) {
                    Some(ov) => merge_patch(ov, v),
                    None => v.clone(),
                };
                out.insert(k.clone(), patched);
            }
            for k in o.keys() {
                if !n.contains_key(k) {
                    out.insert(k.clone(), Value::Null);
                }
            }
            Value::Object(out)
        }
        _ => new.clone(),
    }
}

/// The body of a `status` merge patch that replaces `old` (the status as last read) with `new`.
pub fn status_patch<S: Serialize>(old: &S, new: &S) -> Result<Value, serde_json::Error> {
    let old = serde_json::to_value(old)?;
    let new = serde_json::to_value(new)?;
    Ok(serde_json::json!({ "status": merge_patch(&old, &new) }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::registry::{RegistryHealth, RegistryStatus};
    use serde_json::json;

    #[test]
    fn keys_that_became_empty_are_sent_as_null() {
        let old = json!({"health": {"healthy": false, "error": "refused", "lastChecked": "t1"},
                         "url": "http://a", "candidates": [{"tag": "v1"}]});
        let new = json!({"health": {"healthy": true, "lastChecked": "t2"}, "url": "http://a"});
        assert_eq!(
            merge_patch(&old, &new),
            json!({"health": {"healthy": true, "lastChecked": "t2", "error": null},
                   "url": "http://a", "candidates": null})
        );
    }

    #[test]
    fn applying_the_patch_yields_the_new_status() {
        let old = RegistryStatus {
            health: Some(RegistryHealth {
                healthy: false,
                error: Some("connection refused".into()),
                ..Default::default()
            }),
            config_hash: Some("abc".into()),
            ..Default::default()
        };
        let new = RegistryStatus {
            health: Some(RegistryHealth {
                healthy: true,
                latency_ms: Some(3),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut stored = json!({"status": old.clone()});
        json_merge(&mut stored, &status_patch(&old, &new).unwrap());
        assert_eq!(stored, json!({"status": new}));
    }

    /// RFC 7386, as the API server applies it.
    fn json_merge(target: &mut Value, patch: &Value) {
        match patch {
            Value::Object(p) => {
                if !target.is_object() {
                    *target = json!({});
                }
                let t = target.as_object_mut().unwrap();
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        json_merge(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
            _ => *target = patch.clone(),
        }
    }
}
