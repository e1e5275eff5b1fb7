//! `meta.k8s.io/v1` Table responses, which `kubectl get` asks for: a Name column, the CRD's
//! `additionalPrinterColumns` (or Age when it has none), cells rendered as the apiserver does.

use serde_json::{json, Value};

use crate::resources::ResourceType;

/// Render `items` as a Table for `rt`; `include` is the `includeObject` parameter.
pub fn table(
    rt: &ResourceType,
    items: &[Value],
    rv: u64,
    include: &str,
    now: jiff::Timestamp,
) -> Value {
    let mut columns = vec![json!({
        "name": "Name", "type": "string", "format": "name", "priority": 0,
        "description": "Name must be unique within a namespace.",
    })];
    let printer = if rt.printer_columns.is_empty() {
        vec![
            json!({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp",
                    "description": "Time since the object was created."}),
        ]
    } else {
        rt.printer_columns.clone()
    };
    for c in &printer {
        columns.push(json!({
            "name": c["name"], "type": c["type"], "format": c.get("format").cloned().unwrap_or(json!("")),
            "description": c.get("description").cloned().unwrap_or(json!("")),
            "priority": c.get("priority").cloned().unwrap_or(json!(0)),
        }));
    }
    let rows: Vec<Value> = items
        .iter()
        .map(|o| {
            let mut cells = vec![o.pointer("/metadata/name").cloned().unwrap_or(Value::Null)];
            for c in &printer {
                let v = eval(o, c["jsonPath"].as_str().unwrap_or_default());
                cells.push(match (c["type"].as_str(), v) {
                    (Some("date"), Some(Value::String(s))) => json!(age(&s, now)),
                    (_, Some(v)) => v,
                    (_, None) => Value::Null,
                });
            }
            let mut row = json!({"cells": cells});
            match include {
                "None" => {}
                "Object" => row["object"] = o.clone(),
                _ => {
                    row["object"] = json!({
                        "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                        "metadata": o.get("metadata").cloned().unwrap_or(json!({})),
                    })
                }
            }
            row
        })
        .collect();
    json!({
        "kind": "Table", "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": rv.to_string()},
        "columnDefinitions": columns,
        "rows": rows,
    })
}

/// Evaluate the JSONPath subset printer columns use: `.a.b`, `.a[0]`, `.a[*].b` (first match)
/// and `.a[?(@.k=="v")].b`.
pub fn eval(obj: &Value, path: &str) -> Option<Value> {
    let mut cur = vec![obj.clone()];
    let mut rest = path
        .trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .trim_start_matches('$');
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let key = &r[..end];
            cur = cur.iter().filter_map(|v| v.get(key).cloned()).collect();
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            let sel = &r[..end];
            rest = &r[end + 1..];
            let items: Vec<Value> = cur
                .iter()
                .filter_map(|v| v.as_array().cloned())
                .flatten()
                .collect();
            cur = if sel == "*" {
                items
            } else if let Ok(i) = sel.parse::<usize>() {
                items.get(i).cloned().into_iter().collect()
            } else if let Some(filter) = sel.strip_prefix("?(@.").and_then(|f| f.strip_suffix(')'))
            {
                let (k, v) = filter.split_once("==")?;
                let want = v.trim().trim_matches('"').trim_matches('\'');
                items
                    .into_iter()
                    .filter(|it| {
                        it.get(k.trim()).is_some_and(|x| {
                            x.as_str() == Some(want)
                                || serde_json::to_string(x).ok().as_deref() == Some(want)
                        })
                    })
                    .collect()
            } else {
                return None;
            };
        } else {
            return None;
        }
    }
    cur.into_iter().next()
}

/// Kubernetes' human-readable duration since an RFC 3339 timestamp (`45s`, `3m12s`, `5h`, `3d`).
fn age(ts: &str, now: jiff::Timestamp) -> String {
    let Ok(then) = ts.parse::<jiff::Timestamp>() else {
        return "<invalid>".into();
    };
    let secs = (now.as_second() - then.as_second()).max(0);
    let (m, h, d) = (secs / 60, secs / 3600, secs / 86400);
    match secs {
        s if s < 120 => format!("{s}s"),
        _ if m < 10 => format!("{m}m{}s", secs % 60),
        _ if m < 180 => format!("{m}m"),
        _ if h < 8 && m % 60 != 0 => format!("{h}h{}m", m % 60),
        _ if h < 8 => format!("{h}h"),
        _ if h < 48 => format!("{h}h"),
        _ if h < 24 * 8 && h % 24 != 0 => format!("{d}d{}h", h % 24),
        _ if d < 365 * 2 => format!("{d}d"),
        _ => format!("{}y", d / 365),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printer_column_paths_select_fields_and_filtered_conditions() {
        let obj = json!({"status": {"url": "http://x", "conditions": [
            {"type": "Reconciling", "status": "False"}, {"type": "Ready", "status": "True"}]}});
        assert_eq!(eval(&obj, ".status.url"), Some(json!("http://x")));
        assert_eq!(
            eval(&obj, ".status.conditions[?(@.type==\"Ready\")].status"),
            Some(json!("True"))
        );
        assert_eq!(
            eval(&obj, ".status.conditions[0].type"),
            Some(json!("Reconciling"))
        );
        assert_eq!(eval(&obj, ".spec.missing"), None);
    }

    #[test]
    fn ages_read_like_kubectls() {
        let now: jiff::Timestamp = "2026-01-02T00:00:00Z".parse().unwrap();
        assert_eq!(age("2026-01-01T23:59:15Z", now), "45s");
        assert_eq!(age("2026-01-01T23:56:48Z", now), "3m12s");
        assert_eq!(age("2026-01-01T19:00:00Z", now), "5h");
        assert_eq!(age("2025-12-30T00:00:00Z", now), "3d");
    }
}
