//! Strict reading of a custom resource from YAML: unknown fields, wrong types, missing required
//! fields and values outside an enum are reported with their path, as the API server would
//! reject or prune them. serde's `deny_unknown_fields` cannot do this for the API types
//! (flattened fields), so the document is walked against the CRD's `openAPIV3Schema`.

use kube::{CustomResourceExt, Resource};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::api::{GROUP, VERSION};

/// The `openAPIV3Schema` of `K`'s CRD (its first version), as JSON.
pub fn crd_schema<K: CustomResourceExt>() -> Value {
    K::crd()
        .spec
        .versions
        .first()
        .and_then(|v| v.schema.as_ref())
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .and_then(|s| serde_json::to_value(s).ok())
        .unwrap_or(Value::Null)
}

/// Reads one `K` from a YAML document strictly against `schema` (its CRD's, see
/// [`crd_schema`]): a wrong `apiVersion` or `kind`, unknown fields, wrong types and a missing
/// name are problems, one line each. Returns the object with its namespace (`default` when
/// unset) and name.
pub fn read_resource<K>(text: &str, schema: &Value) -> Result<(K, String, String), Vec<String>>
where
    K: Resource<DynamicType = ()> + DeserializeOwned,
{
    let kind = K::kind(&());
    let value = single_document(text)?;
    let expected = format!("{GROUP}/{VERSION}");
    let mut problems = Vec::new();
    if value.get("apiVersion").and_then(Value::as_str) != Some(expected.as_str()) {
        problems.push(format!("apiVersion: must be {expected}"));
    }
    if value.get("kind").and_then(Value::as_str) != Some(kind.as_ref()) {
        problems.push(format!("kind: must be {kind}"));
    }
    problems.extend(check_object(&value, schema));
    if !problems.is_empty() {
        return Err(problems);
    }
    let object: K = serde_json::from_value(value)
        .map_err(|e| vec![format!("not a {kind}: {}", one_line(e))])?;
    let meta = object.meta();
    let name = meta.name.clone().unwrap_or_default();
    if name.is_empty() {
        return Err(vec!["metadata.name: required field is missing".to_string()]);
    }
    let namespace = meta
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_string());
    Ok((object, namespace, name))
}

/// The one non-empty YAML document of `text`: empty documents (a trailing `---`, as helm and
/// kustomize write) are skipped; none, or more than one, is a problem.
fn single_document(text: &str) -> Result<Value, Vec<String>> {
    use serde::Deserialize;
    let mut documents = Vec::new();
    for document in serde_yaml::Deserializer::from_str(text) {
        let value = Value::deserialize(document)
            .map_err(|e| vec![format!("not a valid YAML document: {}", one_line(e))])?;
        if !value.is_null() {
            documents.push(value);
        }
    }
    match documents.len() {
        1 => Ok(documents.remove(0)),
        0 => Err(vec!["the file holds no YAML document".to_string()]),
        n => Err(vec![format!(
            "the file holds {n} YAML documents; give one resource per file"
        )]),
    }
}

/// An error message on one line (YAML and serde errors span several).
pub fn one_line(s: impl ToString) -> String {
    s.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// `metadata` keys a client may send (ObjectMeta).
const OBJECT_META_KEYS: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "labels",
    "annotations",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "ownerReferences",
    "finalizers",
    "managedFields",
    "selfLink",
];

/// Checks a whole object (`apiVersion`, `kind`, `metadata`, `spec`, `status`) against the
/// schema of its CRD version and returns one line per problem.
pub fn check_object(object: &Value, schema: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(map) = object.as_object() else {
        return vec!["the document is not a YAML mapping".to_string()];
    };
    for (key, value) in map {
        match key.as_str() {
            "apiVersion" | "kind" => {
                if !value.is_string() {
                    problems.push(format!("{key}: expected a string"));
                }
            }
            "metadata" => match value.as_object() {
                Some(meta) => {
                    for k in meta.keys() {
                        if !OBJECT_META_KEYS.contains(&k.as_str()) {
                            problems.push(format!("metadata.{k}: unknown field"));
                        }
                    }
                }
                None => problems.push("metadata: expected an object".to_string()),
            },
            _ => match schema.get("properties").and_then(|p| p.get(key)) {
                Some(sub) => walk(value, sub, key, &mut problems),
                None => problems.push(format!("{key}: unknown field")),
            },
        }
    }
    if let Some(Value::Array(required)) = schema.get("required") {
        for r in required.iter().filter_map(Value::as_str) {
            if !map.contains_key(r) {
                problems.push(format!("{r}: required field is missing"));
            }
        }
    }
    problems
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn walk(value: &Value, schema: &Value, path: &str, problems: &mut Vec<String>) {
    if schema.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
        if !matches!(type_name(value), "integer" | "string") {
            problems.push(format!(
                "{path}: expected an integer or a string, got {}",
                type_name(value)
            ));
        }
        return;
    }
    if value.is_null() && schema.get("nullable") == Some(&Value::Bool(true)) {
        return;
    }
    let expected = schema.get("type").and_then(Value::as_str);
    let actual = type_name(value);
    let type_ok = match expected {
        None => true,
        Some("number") => matches!(actual, "integer" | "number"),
        Some(t) => t == actual,
    };
    if !type_ok {
        problems.push(format!(
            "{path}: expected {}, got {actual}",
            expected.unwrap_or("?")
        ));
        return;
    }
    if let Some(Value::Array(allowed)) = schema.get("enum") {
        if !allowed.contains(value) {
            let names: Vec<String> = allowed
                .iter()
                .map(|a| a.as_str().map_or_else(|| a.to_string(), String::from))
                .collect();
            problems.push(format!(
                "{path}: {value} is not one of {}",
                names.join(", ")
            ));
        }
    }
    match value {
        Value::Object(map) => {
            let preserve =
                schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            for (key, sub) in map {
                let sub_path = format!("{path}.{key}");
                match (properties.and_then(|p| p.get(key)), additional) {
                    (Some(s), _) => walk(sub, s, &sub_path, problems),
                    (None, Some(a)) if a.is_object() => walk(sub, a, &sub_path, problems),
                    (None, Some(Value::Bool(true))) => {}
                    (None, _) if preserve || properties.is_none() => {}
                    (None, _) => problems.push(format!("{sub_path}: unknown field")),
                }
            }
            if let Some(Value::Array(required)) = schema.get("required") {
                for r in required.iter().filter_map(Value::as_str) {
                    if !map.contains_key(r) {
                        problems.push(format!("{path}.{r}: required field is missing"));
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    walk(item, item_schema, &format!("{path}[{i}]"), problems);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_document_is_read_past_empty_ones_and_two_are_refused() {
        assert_eq!(single_document("a: 1\n---\n").unwrap()["a"], 1);
        assert_eq!(single_document("---\na: 1\n").unwrap()["a"], 1);
        let two = single_document("a: 1\n---\nb: 2\n").unwrap_err();
        assert!(two[0].contains("2 YAML documents"), "{two:?}");
        assert!(single_document("").unwrap_err()[0].contains("no YAML document"));
    }
    use serde_json::json;

    #[test]
    fn reports_unknown_fields_types_enums_and_required_with_paths() {
        let schema = json!({"type": "object", "required": ["spec"], "properties": {"spec": {
        "type": "object", "properties": {
            "n": {"type": "integer"},
            "e": {"type": "string", "enum": ["a", "b"]},
            "m": {"type": "object", "additionalProperties": {"type": "string"}},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
            "list": {"type": "array", "items": {"type": "object", "required": ["x"], "properties": {"x": {"type": "string"}}}}
        }}}});
        let object = json!({"apiVersion": "v", "kind": "K", "metadata": {"name": "a", "nam": "b"},
            "spec": {"n": "1", "e": "c", "m": {"k": 1}, "free": {"any": {"thing": 1}}, "list": [{"y": 1}], "extra": true}});
        let problems = check_object(&object, &schema);
        assert_eq!(
            problems,
            [
                "metadata.nam: unknown field",
                "spec.n: expected integer, got string",
                "spec.e: \"c\" is not one of a, b",
                "spec.m.k: expected string, got integer",
                "spec.list[0].y: unknown field",
                "spec.list[0].x: required field is missing",
                "spec.extra: unknown field",
            ]
        );
    }
}
