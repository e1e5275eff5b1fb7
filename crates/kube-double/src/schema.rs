//! Validation of custom resources against a CRD version's structural `openAPIV3Schema`, in the
//! apiserver's order: prune unknown fields, apply defaults, check the schema (types, required,
//! enums, patterns, bounds), then evaluate CEL `x-kubernetes-validations` with kube-cel.

use serde_json::{Map, Value};

use crate::status::FieldError;

/// The outcome of admitting a custom resource: field paths that were pruned (for warnings and
/// `fieldValidation=Strict`), or the field errors that reject it.
#[derive(Debug)]
pub struct Admitted {
    /// Paths of unknown fields that were dropped, e.g. `.spec.foo`.
    pub pruned: Vec<String>,
}

/// Prune, default and validate `obj` in place against `schema`; `old` is the stored object on
/// updates (CEL transition rules see it as `oldSelf`).
pub fn admit(
    schema: &Value,
    obj: &mut Value,
    old: Option<&Value>,
) -> Result<Admitted, Vec<FieldError>> {
    let mut pruned = Vec::new();
    if let Some(map) = obj.as_object_mut() {
        prune_object(schema, map, "", true, &mut pruned);
    }
    *obj = kube_cel::apply_defaults(schema, obj);
    let mut errors = Vec::new();
    check(schema, obj, "", true, &mut errors);
    if errors.is_empty() {
        if let Err(cel_errors) = kube_cel::Validator::new().validate(schema, obj, old) {
            for e in cel_errors.iter() {
                let at = value_at(obj, &e.field_path);
                errors.push(FieldError {
                    field: e.field_path.clone(),
                    reason: "FieldValueInvalid",
                    detail: format!("Invalid value: \"{}\": {}", type_name(at), e.message),
                });
            }
        }
    }
    if errors.is_empty() {
        Ok(Admitted { pruned })
    } else {
        Err(errors)
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn preserves_unknown(schema: &Value) -> bool {
    schema["x-kubernetes-preserve-unknown-fields"].as_bool() == Some(true)
}

fn prune_object(
    schema: &Value,
    map: &mut Map<String, Value>,
    path: &str,
    root: bool,
    pruned: &mut Vec<String>,
) {
    // apiVersion, kind and metadata of the object (or of an embedded resource) belong to the
    // apiserver, not to the schema: they are never pruned here.
    let embedded = root || schema["x-kubernetes-embedded-resource"].as_bool() == Some(true);
    let props = schema["properties"].as_object();
    let additional = schema["additionalProperties"]
        .as_object()
        .map(|_| &schema["additionalProperties"]);
    let keep_unknown = preserves_unknown(schema);
    let keys: Vec<String> = map.keys().cloned().collect();
    for key in keys {
        if embedded && matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        let child_path = join(path, &key);
        match props.and_then(|p| p.get(&key)).or(additional) {
            Some(cs) => {
                let nullable = cs["nullable"].as_bool() == Some(true);
                if map.get(&key).is_some_and(Value::is_null) && !nullable {
                    map.remove(&key);
                    continue;
                }
                if let Some(child) = map.get_mut(&key) {
                    prune_value(cs, child, &child_path, pruned);
                }
            }
            None if keep_unknown => {}
            None => {
                map.remove(&key);
                pruned.push(format!(".{child_path}"));
            }
        }
    }
}

fn prune_value(schema: &Value, value: &mut Value, path: &str, pruned: &mut Vec<String>) {
    match value {
        Value::Object(map) => prune_object(schema, map, path, false, pruned),
        Value::Array(items) if schema["items"].is_object() => {
            for (i, item) in items.iter_mut().enumerate() {
                prune_value(&schema["items"], item, &format!("{path}[{i}]"), pruned);
            }
        }
        _ => {}
    }
}

fn type_name(v: Option<&Value>) -> &'static str {
    match v {
        Some(Value::Object(_)) => "object",
        Some(Value::Array(_)) => "array",
        Some(Value::String(_)) => "string",
        Some(Value::Number(n)) if n.is_f64() => "number",
        Some(Value::Number(_)) => "integer",
        Some(Value::Bool(_)) => "boolean",
        Some(Value::Null) | None => "null",
    }
}

fn value_at<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = obj;
    if path.is_empty() {
        return Some(cur);
    }
    for seg in path.split('.') {
        let (name, idx) = match seg.split_once('[') {
            Some((n, rest)) => (n, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (seg, None),
        };
        cur = cur.get(name)?;
        if let Some(i) = idx {
            cur = cur.get(i)?;
        }
    }
    Some(cur)
}

/// Render a value the way Go's `%v`/`%q` does in field errors: strings quoted, others as JSON.
fn show(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Object(_) => "\"object\"".to_string(),
        Value::Array(_) => "\"array\"".to_string(),
        other => other.to_string(),
    }
}

fn invalid(errors: &mut Vec<FieldError>, path: &str, v: &Value, msg: String) {
    errors.push(FieldError {
        field: path.to_string(),
        reason: "FieldValueInvalid",
        detail: format!("Invalid value: {}: {msg}", show(v)),
    });
}

fn type_matches(schema: &Value, want: &str, v: &Value) -> bool {
    if schema["x-kubernetes-int-or-string"].as_bool() == Some(true) {
        return v.is_string() || v.is_i64() || v.is_u64();
    }
    match want {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        _ => true,
    }
}

fn check(schema: &Value, v: &Value, path: &str, root: bool, errors: &mut Vec<FieldError>) {
    if v.is_null() {
        if schema["nullable"].as_bool() != Some(true) && !root {
            let want = schema["type"].as_str().unwrap_or("object");
            invalid(
                errors,
                path,
                v,
                format!("{path} in body must be of type {want}: \"null\""),
            );
        }
        return;
    }
    if let Some(want) = schema["type"].as_str() {
        if !type_matches(schema, want, v) {
            errors.push(FieldError {
                field: path.to_string(),
                reason: "FieldValueTypeInvalid",
                detail: format!(
                    "Invalid value: {}: {path} in body must be of type {want}: \"{}\"",
                    show(v),
                    type_name(Some(v))
                ),
            });
            return;
        }
    }
    if let Some(options) = schema["enum"].as_array() {
        if !options.contains(v) {
            let supported: Vec<String> = options.iter().map(show).collect();
            errors.push(FieldError {
                field: path.to_string(),
                reason: "FieldValueNotSupported",
                detail: format!(
                    "Unsupported value: {}: supported values: {}",
                    show(v),
                    supported.join(", ")
                ),
            });
        }
    }
    match v {
        Value::String(s) => {
            let len = s.chars().count() as u64;
            if let Some(max) = schema["maxLength"].as_u64() {
                if len > max {
                    errors.push(FieldError {
                        field: path.to_string(),
                        reason: "FieldValueTooLong",
                        detail: format!("Too long: may not be more than {max} bytes"),
                    });
                }
            }
            if let Some(min) = schema["minLength"].as_u64() {
                if len < min {
                    invalid(
                        errors,
                        path,
                        v,
                        format!("{path} in body should be at least {min} chars long"),
                    );
                }
            }
            if let Some(pattern) = schema["pattern"].as_str() {
                match regex::Regex::new(pattern) {
                    Ok(re) if !re.is_match(s) => {
                        invalid(
                            errors,
                            path,
                            v,
                            format!("{path} in body should match '{pattern}'"),
                        );
                    }
                    Ok(_) => {}
                    Err(e) => invalid(
                        errors,
                        path,
                        v,
                        format!("the schema pattern {pattern:?} does not compile: {e}"),
                    ),
                }
            }
        }
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or_default();
            let exclusive_min = schema["exclusiveMinimum"].as_bool() == Some(true);
            let exclusive_max = schema["exclusiveMaximum"].as_bool() == Some(true);
            if let Some(min) = schema["minimum"].as_f64() {
                if x < min || (exclusive_min && x == min) {
                    let op = if exclusive_min {
                        "greater than"
                    } else {
                        "greater than or equal to"
                    };
                    invalid(
                        errors,
                        path,
                        v,
                        format!("{path} in body should be {op} {}", fmt_num(min)),
                    );
                }
            }
            if let Some(max) = schema["maximum"].as_f64() {
                if x > max || (exclusive_max && x == max) {
                    let op = if exclusive_max {
                        "less than"
                    } else {
                        "less than or equal to"
                    };
                    invalid(
                        errors,
                        path,
                        v,
                        format!("{path} in body should be {op} {}", fmt_num(max)),
                    );
                }
            }
        }
        Value::Array(items) => {
            if let Some(max) = schema["maxItems"].as_u64() {
                if items.len() as u64 > max {
                    errors.push(FieldError {
                        field: path.to_string(),
                        reason: "FieldValueTooMany",
                        detail: format!("Too many: {}: must have at most {max} items", items.len()),
                    });
                }
            }
            if let Some(min) = schema["minItems"].as_u64() {
                if (items.len() as u64) < min {
                    invalid(
                        errors,
                        path,
                        v,
                        format!("{path} in body should have at least {min} items"),
                    );
                }
            }
            if schema["items"].is_object() {
                for (i, item) in items.iter().enumerate() {
                    check(
                        &schema["items"],
                        item,
                        &format!("{path}[{i}]"),
                        false,
                        errors,
                    );
                }
            }
        }
        Value::Object(map) => {
            if let Some(required) = schema["required"].as_array() {
                for r in required.iter().filter_map(Value::as_str) {
                    if !map.contains_key(r) {
                        errors.push(FieldError {
                            field: join(path, r),
                            reason: "FieldValueRequired",
                            detail: "Required value".to_string(),
                        });
                    }
                }
            }
            if let Some(max) = schema["maxProperties"].as_u64() {
                if map.len() as u64 > max {
                    errors.push(FieldError {
                        field: path.to_string(),
                        reason: "FieldValueTooMany",
                        detail: format!("Too many: {}: must have at most {max} items", map.len()),
                    });
                }
            }
            let props = schema["properties"].as_object();
            for (k, child) in map {
                if root && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                if let Some(cs) = props.and_then(|p| p.get(k)) {
                    check(cs, child, &join(path, k), false, errors);
                } else if schema["additionalProperties"].is_object() {
                    check(
                        &schema["additionalProperties"],
                        child,
                        &join(path, k),
                        false,
                        errors,
                    );
                }
            }
        }
        _ => {}
    }
}

fn fmt_num(x: f64) -> String {
    if x.fract() == 0.0 {
        format!("{}", x as i64)
    } else {
        x.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["url"],
                    "properties": {
                        "url": {"type": "string", "pattern": "^https?://"},
                        "mode": {"type": "string", "enum": ["DryRun", "Enforce"], "default": "DryRun"},
                        "keep": {"type": "integer", "minimum": 1, "nullable": true},
                    },
                    "x-kubernetes-validations": [{"rule": "self.mode != 'Enforce' || has(self.keep)", "message": "Enforce needs keep"}]
                }
            }
        })
    }

    #[test]
    fn unknown_fields_are_pruned_and_defaults_applied() {
        let mut obj = json!({"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "a"}, "spec": {"url": "http://r", "bogus": 1}});
        let admitted = admit(&schema(), &mut obj, None).unwrap();
        assert_eq!(admitted.pruned, vec![".spec.bogus".to_string()]);
        assert_eq!(obj["spec"], json!({"url": "http://r", "mode": "DryRun"}));
        assert_eq!(obj["metadata"]["name"], "a");
    }

    #[test]
    fn schema_errors_read_like_the_apiservers() {
        let mut obj = json!({"spec": {"url": "ftp://r", "mode": "Often", "keep": 0}});
        let errors = admit(&schema(), &mut obj, None).unwrap_err();
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert!(
            text.contains(
                &"spec.url: Invalid value: \"ftp://r\": spec.url in body should match '^https?://'"
                    .to_string()
            ),
            "{text:?}"
        );
        assert!(text.contains(&"spec.mode: Unsupported value: \"Often\": supported values: \"DryRun\", \"Enforce\"".to_string()), "{text:?}");
        assert!(text.contains(&"spec.keep: Invalid value: 0: spec.keep in body should be greater than or equal to 1".to_string()), "{text:?}");
    }

    #[test]
    fn cel_rules_are_evaluated_after_the_schema_passes() {
        let mut obj = json!({"spec": {"url": "http://r", "mode": "Enforce"}});
        let errors = admit(&schema(), &mut obj, None).unwrap_err();
        assert_eq!(
            errors[0].to_string(),
            "spec: Invalid value: \"object\": Enforce needs keep"
        );
    }
}
