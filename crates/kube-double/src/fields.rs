//! Field ownership (`metadata.managedFields`) and server-side apply.
//!
//! Simplifications against the real structured-merge-diff: maps are tracked key by key, but
//! every list is atomic (owned and replaced as a whole, like `x-kubernetes-list-type: atomic`),
//! so two managers cannot own different items of one list; under `metadata` only labels,
//! annotations, finalizers and ownerReferences are tracked.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

/// A field path: the map keys from the object root to a tracked leaf.
pub type FieldPath = Vec<String>;

/// The leaves of an object that ownership is tracked for, with their values.
pub fn leaves(obj: &Value) -> BTreeMap<FieldPath, Value> {
    let mut out = BTreeMap::new();
    if let Some(map) = obj.as_object() {
        for (k, v) in map {
            match k.as_str() {
                "apiVersion" | "kind" => {}
                "metadata" => {
                    for mk in ["labels", "annotations", "finalizers", "ownerReferences"] {
                        if let Some(mv) = v.get(mk) {
                            collect(mv, vec!["metadata".into(), mk.into()], &mut out);
                        }
                    }
                }
                _ => collect(v, vec![k.clone()], &mut out),
            }
        }
    }
    out
}

fn collect(v: &Value, path: FieldPath, out: &mut BTreeMap<FieldPath, Value>) {
    match v {
        Value::Object(map) if !map.is_empty() => {
            for (k, child) in map {
                let mut p = path.clone();
                p.push(k.clone());
                collect(child, p, out);
            }
        }
        _ => {
            out.insert(path, v.clone());
        }
    }
}

/// `.spec.replicas`-style rendering of a path, as apply conflicts name fields.
pub fn render(path: &FieldPath) -> String {
    path.iter().map(|s| format!(".{s}")).collect()
}

/// The `fieldsV1` encoding of a set of paths (`{"f:spec": {"f:replicas": {}}}`).
pub fn to_fields_v1(paths: &BTreeSet<FieldPath>) -> Value {
    let mut root = Map::new();
    for p in paths {
        let mut cur = &mut root;
        for seg in p {
            let entry = cur.entry(format!("f:{seg}")).or_insert_with(|| json!({}));
            cur = match entry.as_object_mut() {
                Some(m) => m,
                None => break,
            };
        }
    }
    Value::Object(root)
}

/// Decode `fieldsV1` back into paths. Anything below a list (`k:`/`v:`/`i:` keys written by a
/// real apiserver) collapses onto the list itself.
pub fn from_fields_v1(v: &Value) -> BTreeSet<FieldPath> {
    fn walk(v: &Value, path: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
        let children: Vec<(&String, &Value)> = v
            .as_object()
            .map(|m| m.iter().filter(|(k, _)| k.as_str() != ".").collect())
            .unwrap_or_default();
        let named: Vec<_> = children
            .iter()
            .filter(|(k, _)| k.starts_with("f:"))
            .collect();
        if children.is_empty() || named.len() != children.len() {
            if !path.is_empty() {
                out.insert(path.clone());
            }
            return;
        }
        for (k, child) in named {
            path.push(k[2..].to_string());
            walk(child, path, out);
            path.pop();
        }
    }
    let mut out = BTreeSet::new();
    walk(v, &mut Vec::new(), &mut out);
    out
}

/// One `managedFields` entry.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The field manager.
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    /// The apiVersion the manager wrote with.
    pub api_version: String,
    /// When the entry last changed.
    pub time: String,
    /// `status` for writes through the status subresource, empty otherwise.
    pub subresource: String,
    /// The owned fields.
    pub fields: BTreeSet<FieldPath>,
}

/// Read `metadata.managedFields`.
pub fn entries(obj: &Value) -> Vec<Entry> {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|e| Entry {
                    manager: e["manager"].as_str().unwrap_or_default().to_string(),
                    operation: e["operation"].as_str().unwrap_or("Update").to_string(),
                    api_version: e["apiVersion"].as_str().unwrap_or_default().to_string(),
                    time: e["time"].as_str().unwrap_or_default().to_string(),
                    subresource: e["subresource"].as_str().unwrap_or_default().to_string(),
                    fields: from_fields_v1(&e["fieldsV1"]),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Write `metadata.managedFields`, dropping entries that own nothing.
pub fn store_entries(obj: &mut Value, list: &[Entry]) {
    let rendered: Vec<Value> = list
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": to_fields_v1(&e.fields),
            });
            if !e.subresource.is_empty() {
                v["subresource"] = json!(e.subresource);
            }
            v
        })
        .collect();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if rendered.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(rendered));
        }
    }
}

fn is_prefix(a: &FieldPath, b: &FieldPath) -> bool {
    a.len() <= b.len() && b[..a.len()] == a[..]
}

/// Record a non-apply write (create, update, patch) by `manager`: it takes the fields whose
/// values it changed; other managers lose them.
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    subresource: &str,
    api_version: &str,
    now: &str,
) {
    let mut list = old.map(entries).unwrap_or_default();
    let before = old.map(leaves).unwrap_or_default();
    let after = leaves(new);
    let changed: BTreeSet<FieldPath> = after
        .iter()
        .filter(|(p, v)| before.get(*p) != Some(*v))
        .map(|(p, _)| p.clone())
        .collect();
    let removed: Vec<FieldPath> = before
        .keys()
        .filter(|p| !after.contains_key(*p))
        .cloned()
        .collect();
    if changed.is_empty() && removed.is_empty() {
        store_entries(new, &list);
        return;
    }
    for e in &mut list {
        e.fields.retain(|f| {
            !changed.iter().any(|c| is_prefix(f, c) || is_prefix(c, f))
                && !removed.iter().any(|r| is_prefix(r, f))
        });
    }
    let idx = match list.iter().position(|e| {
        e.manager == manager && e.operation == "Update" && e.subresource == subresource
    }) {
        Some(i) => i,
        None => {
            list.push(Entry {
                manager: manager.to_string(),
                operation: "Update".into(),
                api_version: api_version.to_string(),
                time: now.to_string(),
                subresource: subresource.to_string(),
                fields: BTreeSet::new(),
            });
            list.len() - 1
        }
    };
    let entry = &mut list[idx];
    entry.fields.extend(changed);
    entry.time = now.to_string();
    entry.api_version = api_version.to_string();
    store_entries(new, &list);
}

fn remove_path(obj: &mut Value, path: &FieldPath) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = obj;
    for seg in parents {
        match cur.get_mut(seg) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if let Some(map) = cur.as_object_mut() {
        map.remove(last);
    }
}

/// Merge an apply configuration into an object: maps merge key by key, lists and scalars are
/// replaced, `null` removes.
pub fn merge_config(target: &mut Value, config: &Value) {
    match (target.as_object_mut(), config.as_object()) {
        (Some(t), Some(c)) => {
            for (k, v) in c {
                if v.is_null() {
                    t.remove(k);
                } else if let Some(existing) = t.get_mut(k) {
                    if existing.is_object() && v.is_object() {
                        merge_config(existing, v);
                    } else {
                        *existing = v.clone();
                    }
                } else {
                    t.insert(k.clone(), v.clone());
                }
            }
        }
        _ => *target = config.clone(),
    }
}

/// Server-side apply of `config` by `manager` onto `current` (the stored object without the
/// fields the request may not touch). Returns the merged object with updated managedFields, or
/// the `(manager, field)` conflicts when `force` is false.
pub fn apply(
    current: &Value,
    config: &Value,
    manager: &str,
    force: bool,
    subresource: &str,
    api_version: &str,
    now: &str,
) -> Result<Value, Vec<(String, String)>> {
    let mut list = entries(current);
    let cfg = leaves(config);
    let cur = leaves(current);
    let mut conflicts = Vec::new();
    for e in list
        .iter()
        .filter(|e| e.manager != manager && e.subresource == subresource)
    {
        for f in &e.fields {
            for (p, v) in &cfg {
                let clash = if f == p {
                    cur.get(f) != Some(v)
                } else {
                    is_prefix(f, p) || is_prefix(p, f)
                };
                if clash {
                    conflicts.push((e.manager.clone(), render(f)));
                    break;
                }
            }
        }
    }
    conflicts.sort();
    conflicts.dedup();
    if !conflicts.is_empty() && !force {
        return Err(conflicts);
    }
    let mut out = current.clone();
    // Fields this manager applied before and left out now are removed, unless someone else
    // also owns them.
    let previous: BTreeSet<FieldPath> = list
        .iter()
        .filter(|e| e.manager == manager && e.operation == "Apply" && e.subresource == subresource)
        .flat_map(|e| e.fields.iter().cloned())
        .collect();
    for p in previous.iter().filter(|p| !cfg.contains_key(*p)) {
        let owned_elsewhere = list
            .iter()
            .filter(|e| !(e.manager == manager && e.operation == "Apply"))
            .any(|e| e.fields.contains(p));
        if !owned_elsewhere && !cfg.keys().any(|c| is_prefix(p, c)) {
            remove_path(&mut out, p);
        }
    }
    merge_config(&mut out, config);
    let after = leaves(&out);
    for e in &mut list {
        if e.manager == manager && e.operation == "Apply" && e.subresource == subresource {
            continue;
        }
        // Forced fields move to the applier; fields that no longer exist have no owner.
        e.fields.retain(|f| {
            let taken = conflicts
                .iter()
                .any(|(m, c)| *m == e.manager && *c == render(f));
            !taken && after.contains_key(f)
        });
    }
    let fields: BTreeSet<FieldPath> = cfg.keys().cloned().collect();
    match list
        .iter_mut()
        .find(|e| e.manager == manager && e.operation == "Apply" && e.subresource == subresource)
    {
        Some(e) => {
            if e.fields != fields {
                e.time = now.to_string();
            }
            e.fields = fields;
            e.api_version = api_version.to_string();
        }
        None => list.push(Entry {
            manager: manager.to_string(),
            operation: "Apply".into(),
            api_version: api_version.to_string(),
            time: now.to_string(),
            subresource: subresource.to_string(),
            fields,
        }),
    }
    store_entries(&mut out, &list);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_v1_round_trips() {
        let obj = json!({"metadata": {"name": "a", "labels": {"x": "1"}}, "spec": {"replicas": 1, "ports": [1, 2]}});
        let paths: BTreeSet<FieldPath> = leaves(&obj).into_keys().collect();
        assert_eq!(from_fields_v1(&to_fields_v1(&paths)), paths);
    }

    #[test]
    fn apply_conflicts_on_a_field_another_manager_set_differently() {
        let base = json!({"metadata": {"name": "a"}, "spec": {"replicas": 1}});
        let first = apply(&base, &base, "alice", false, "", "v1", "t").unwrap();
        let other = json!({"metadata": {"name": "a"}, "spec": {"replicas": 2}});
        let conflicts = apply(&first, &other, "bob", false, "", "v1", "t").unwrap_err();
        assert_eq!(
            conflicts,
            vec![("alice".to_string(), ".spec.replicas".to_string())]
        );
        let forced = apply(&first, &other, "bob", true, "", "v1", "t").unwrap();
        assert_eq!(forced["spec"]["replicas"], 2);
        let owners: Vec<String> = entries(&forced).into_iter().map(|e| e.manager).collect();
        assert_eq!(owners, vec!["bob".to_string()]);
    }

    #[test]
    fn apply_with_the_same_value_shares_ownership_and_dropping_a_field_removes_it() {
        let a = json!({"metadata": {"name": "a"}, "spec": {"replicas": 1, "paused": true}});
        let first = apply(&a, &a, "alice", false, "", "v1", "t").unwrap();
        let b = json!({"metadata": {"name": "a"}, "spec": {"replicas": 1}});
        let shared = apply(&first, &b, "bob", false, "", "v1", "t").unwrap();
        assert_eq!(entries(&shared).len(), 2);
        let dropped = apply(
            &shared,
            &json!({"metadata": {"name": "a"}, "spec": {"replicas": 1}}),
            "alice",
            false,
            "",
            "v1",
            "t",
        )
        .unwrap();
        assert!(dropped["spec"].get("paused").is_none(), "{dropped}");
    }
}
