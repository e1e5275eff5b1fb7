//! Deep merge of the raw `spec.config` over the rendered config.

use serde_json::{Map, Value};

/// Merges `patch` into `base` with JSON merge-patch semantics (RFC 7396): objects merge key by
/// key, any other value replaces, `null` removes the key. Keys are matched case-insensitively,
/// as zot (viper) reads them; a patched key keeps the rendered spelling.
pub fn merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(base_map), Value::Object(patch_map)) => merge_maps(base_map, patch_map),
        (base, patch) => *base = strip_nulls(patch),
    }
}

fn merge_maps(base: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (key, value) in patch {
        let existing = base
            .keys()
            .find(|k| k.eq_ignore_ascii_case(key))
            .cloned()
            .unwrap_or_else(|| key.clone());
        if value.is_null() {
            base.shift_remove(&existing);
            continue;
        }
        match base.get_mut(&existing) {
            Some(slot) if slot.is_object() && value.is_object() => merge(slot, value),
            _ => {
                base.insert(existing, strip_nulls(value));
            }
        }
    }
}

fn strip_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip_nulls(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn objects_merge_scalars_and_lists_replace_null_removes() {
        let mut base = json!({"storage": {"gc": true, "gcDelay": "1h", "list": [1, 2]}, "log": {"level": "info"}});
        merge(
            &mut base,
            &json!({"storage": {"GCDelay": "2h", "list": [3], "dedupe": false}, "log": null, "x": {"a": null, "b": 1}}),
        );
        assert_eq!(
            base,
            json!({"storage": {"gc": true, "gcDelay": "2h", "list": [3], "dedupe": false}, "x": {"b": 1}})
        );
        let keys: Vec<&String> = base["storage"]
            .as_object()
            .map(|m| m.keys().collect())
            .unwrap_or_default();
        assert_eq!(keys, ["gc", "gcDelay", "list", "dedupe"]);
    }
}
