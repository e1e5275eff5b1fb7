//! Offline checks of CRD schemas and of objects against them, as the API server would do them:
//! structural-schema rules, OpenAPI types/patterns/enums, pruning of unknown fields, CEL rules.

use serde_json::Value;

/// The `openAPIV3Schema` of the only version of a CRD.
pub fn crd_schema(crd: &Value) -> &Value {
    &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
}

/// Structural-schema violations, one line each, as `path: problem`.
///
/// Follows the API server's rules: every node has a `type` unless it is int-or-string or
/// preserves unknown fields; arrays have `items`; `properties` and `additionalProperties`
/// exclude each other; inside `anyOf`/`oneOf`/`allOf`/`not` no type, default, description,
/// nullable or additionalProperties; at the root only `type: object`; metadata only constrains
/// name and generateName.
pub fn structural_problems(schema: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    walk(schema, "", false, &mut problems);
    if schema.get("type").and_then(Value::as_str) != Some("object") {
        problems.push("<root>: must be type object".into());
    }
    if let Some(meta) = schema.pointer("/properties/metadata") {
        if let Some(props) = meta.get("properties").and_then(Value::as_object) {
            for k in props.keys() {
                if k != "name" && k != "generateName" {
                    problems.push(format!(
                        "metadata.{k}: only name and generateName may be constrained"
                    ));
                }
            }
        }
    }
    problems
}

fn walk(node: &Value, path: &str, in_junctor: bool, problems: &mut Vec<String>) {
    let Some(obj) = node.as_object() else {
        problems.push(format!("{path}: schema node is not an object"));
        return;
    };
    let int_or_string = obj.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    let preserve = obj.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    if in_junctor {
        for forbidden in [
            "type",
            "default",
            "description",
            "nullable",
            "additionalProperties",
        ] {
            if obj.contains_key(forbidden) {
                problems.push(format!(
                    "{path}: `{forbidden}` inside anyOf/oneOf/allOf/not"
                ));
            }
        }
    } else if !obj.contains_key("type") && !int_or_string && !preserve {
        problems.push(format!(
            "{path}: no type (and not int-or-string or preserve-unknown-fields)"
        ));
    }
    if obj.contains_key("properties") && obj.contains_key("additionalProperties") {
        problems.push(format!(
            "{path}: properties and additionalProperties together"
        ));
    }
    if obj.get("type").and_then(Value::as_str) == Some("array") && !obj.contains_key("items") {
        problems.push(format!("{path}: array without items"));
    }
    if let Some(ty) = obj.get("type").and_then(Value::as_str) {
        if !["object", "array", "string", "integer", "number", "boolean"].contains(&ty) {
            problems.push(format!("{path}: unknown type {ty}"));
        }
    }
    for key in obj.keys() {
        if key.starts_with('$') || key == "definitions" || key == "$ref" {
            problems.push(format!("{path}: `{key}` is not allowed in a CRD schema"));
        }
    }
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            walk(v, &format!("{path}.{k}"), in_junctor, problems);
        }
    }
    if let Some(items) = obj.get("items") {
        walk(items, &format!("{path}[]"), in_junctor, problems);
    }
    if let Some(ap) = obj.get("additionalProperties") {
        if ap.is_object() {
            walk(ap, &format!("{path}{{}}"), in_junctor, problems);
        }
    }
    for junctor in ["anyOf", "oneOf", "allOf"] {
        if let Some(list) = obj.get(junctor).and_then(Value::as_array) {
            for (i, v) in list.iter().enumerate() {
                walk(v, &format!("{path}.{junctor}[{i}]"), true, problems);
            }
        }
    }
    if let Some(not) = obj.get("not") {
        walk(not, &format!("{path}.not"), true, problems);
    }
}

/// Fields of `object` the API server would prune because the schema does not declare them.
pub fn unknown_fields(schema: &Value, object: &Value, path: &str) -> Vec<String> {
    let mut out = Vec::new();
    if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
        return out;
    }
    match object {
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            for (k, v) in map {
                // apiVersion/kind/metadata are validated by the server itself.
                if path.is_empty() && ["apiVersion", "kind", "metadata"].contains(&k.as_str()) {
                    continue;
                }
                let child = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                if let Some(s) = props.and_then(|p| p.get(k)) {
                    out.extend(unknown_fields(s, v, &child));
                } else if let Some(s) = additional.filter(|a| a.is_object()) {
                    out.extend(unknown_fields(s, v, &child));
                } else if additional != Some(&Value::Bool(true)) {
                    out.push(child);
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for (i, v) in items.iter().enumerate() {
                    out.extend(unknown_fields(s, v, &format!("{path}[{i}]")));
                }
            }
        }
        _ => {}
    }
    out
}

/// OpenAPI violations (types, required, enums, patterns, bounds) of `object`, one line each.
pub fn openapi_problems(schema: &Value, object: &Value) -> Vec<String> {
    // The CRD dialect is close to JSON Schema draft 4; `nullable` and the x-kubernetes
    // extensions are ignored by the validator, which is what the samples need.
    let validator = jsonschema::draft4::new(schema).expect("CRD schema compiles as JSON Schema");
    validator
        .iter_errors(object)
        .map(|e| format!("{}: {}", e.instance_path(), e))
        .collect()
}

/// CEL `x-kubernetes-validations` failures of `object`, one message each.
pub fn cel_problems(schema: &Value, object: &Value) -> Vec<String> {
    match kube_cel::Validator::new().validate(schema, object, None) {
        Ok(()) => Vec::new(),
        Err(errors) => errors
            .into_vec()
            .into_iter()
            .map(|e| format!("{}: {}", e.field_path, e.message))
            .collect(),
    }
}

/// Every problem the API server would report (or prune) for `object`.
pub fn all_problems(schema: &Value, object: &Value) -> Vec<String> {
    let mut out = openapi_problems(schema, object);
    out.extend(
        unknown_fields(schema, object, "")
            .into_iter()
            .map(|f| format!("{f}: unknown field")),
    );
    out.extend(cel_problems(schema, object));
    out
}
