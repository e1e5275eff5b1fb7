//! ObjectMeta rules every kind shares (names, labels, annotations, owner references), the
//! built-in kinds' write-time conversions the double performs (Secret `stringData`), and the
//! few built-in immutability rules it enforces (StatefulSet spec).

use std::sync::OnceLock;

use regex::Regex;
use serde_json::{json, Value};

use crate::status::FieldError;

fn re(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    cell.get_or_init(|| {
        Regex::new(pattern).unwrap_or_else(|e| unreachable!("fixed regex {pattern}: {e}"))
    })
}

const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1035_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";

fn is_subdomain(s: &str) -> bool {
    static R: OnceLock<Regex> = OnceLock::new();
    s.len() <= 253
        && re(
            &R,
            r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
        )
        .is_match(s)
}

fn is_dns_label(s: &str) -> bool {
    static R: OnceLock<Regex> = OnceLock::new();
    s.len() <= 63 && re(&R, r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$").is_match(s)
}

fn is_dns1035(s: &str) -> bool {
    static R: OnceLock<Regex> = OnceLock::new();
    s.len() <= 63 && re(&R, r"^[a-z]([-a-z0-9]*[a-z0-9])?$").is_match(s)
}

fn invalid(field: &str, value: &str, msg: &str) -> FieldError {
    FieldError {
        field: field.to_string(),
        reason: "FieldValueInvalid",
        detail: format!("Invalid value: {value:?}: {msg}"),
    }
}

/// `metadata.name` rules: an RFC 1123 label for Namespaces, a DNS-1035 label for Services, an
/// RFC 1123 subdomain for everything else.
pub fn check_name(group: &str, kind: &str, name: &str) -> Option<FieldError> {
    if name.is_empty() {
        return Some(FieldError {
            field: "metadata.name".into(),
            reason: "FieldValueRequired",
            detail: "Required value: name or generateName is required".into(),
        });
    }
    let (ok, msg) = match (group, kind) {
        ("", "Namespace") => (is_dns_label(name), LABEL_MSG),
        ("", "Service") => (is_dns1035(name), DNS1035_MSG),
        _ => (is_subdomain(name), SUBDOMAIN_MSG),
    };
    (!ok).then(|| invalid("metadata.name", name, msg))
}

/// A label or annotation key: `[prefix/]name`, prefix a DNS subdomain, name at most 63
/// characters of `[A-Za-z0-9_.-]`, alphanumeric at both ends.
fn check_key(field: &str, key: &str, errors: &mut Vec<FieldError>) {
    static NAME: OnceLock<Regex> = OnceLock::new();
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        if !is_subdomain(p) {
            errors.push(invalid(field, key, &format!("prefix part {SUBDOMAIN_MSG}")));
        }
    }
    if name.is_empty() || name.len() > 63 {
        errors.push(invalid(
            field,
            key,
            "name part must be non-empty and no more than 63 characters",
        ));
    } else if !re(&NAME, r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$").is_match(name) {
        errors.push(invalid(field, key, "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"));
    }
}

/// Labels, annotation keys and owner references, as upstream validates them for every kind.
pub fn check_metadata(obj: &Value) -> Vec<FieldError> {
    static VALUE: OnceLock<Regex> = OnceLock::new();
    let mut errors = Vec::new();
    let meta = &obj["metadata"];
    if let Some(labels) = meta["labels"].as_object() {
        for (k, v) in labels {
            check_key("metadata.labels", k, &mut errors);
            let v = v.as_str().unwrap_or_default();
            if v.len() > 63 {
                errors.push(invalid(
                    "metadata.labels",
                    v,
                    "must be no more than 63 characters",
                ));
            } else if !re(&VALUE, r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$").is_match(v) {
                errors.push(invalid("metadata.labels", v, "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"));
            }
        }
    }
    if let Some(annotations) = meta["annotations"].as_object() {
        let mut total = 0;
        for (k, v) in annotations {
            check_key("metadata.annotations", k, &mut errors);
            total += k.len() + v.as_str().map_or(0, str::len);
        }
        if total > 256 * 1024 {
            errors.push(FieldError {
                field: "metadata.annotations".into(),
                reason: "FieldValueTooLong",
                detail: "Too long: may not be more than 262144 bytes".into(),
            });
        }
    }
    if let Some(refs) = meta["ownerReferences"].as_array() {
        let mut controllers = 0;
        for r in refs {
            for (field, what) in [
                ("apiVersion", "version"),
                ("kind", "kind"),
                ("name", "name"),
                ("uid", "uid"),
            ] {
                if r[field].as_str().unwrap_or_default().is_empty() {
                    errors.push(invalid(
                        &format!("metadata.ownerReferences.{field}"),
                        "",
                        &format!("{what} must not be empty"),
                    ));
                }
            }
            if r["controller"].as_bool() == Some(true) {
                controllers += 1;
            }
        }
        if controllers > 1 {
            errors.push(invalid(
                "metadata.ownerReferences",
                "",
                "Only one reference can have Controller set to true",
            ));
        }
    }
    errors
}

/// Fields of a StatefulSet's spec an update may change; upstream forbids changing any other.
const STATEFULSET_MUTABLE: [&str; 7] = [
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "revisionHistoryLimit",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
];

/// Upstream's StatefulSet update rule: only [`STATEFULSET_MUTABLE`] fields of `spec` may change
/// (so `volumeClaimTemplates`, `serviceName`, `selector`, `podManagementPolicy` are immutable).
pub fn check_statefulset_update(obj: &Value, old: &Value) -> Option<FieldError> {
    let fixed = |o: &Value| -> Value {
        let mut spec = o.get("spec").cloned().unwrap_or_else(|| json!({}));
        if let Some(m) = spec.as_object_mut() {
            for k in STATEFULSET_MUTABLE {
                m.remove(k);
            }
        }
        spec
    };
    (fixed(obj) != fixed(old)).then(|| FieldError {
        field: "spec".into(),
        reason: "FieldValueForbidden",
        detail: "Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden".into(),
    })
}

/// What the apiserver does to a Secret on every write: `stringData` entries are base64-encoded
/// into `data` (overriding keys present in both) and `stringData` is dropped.
pub fn convert_secret(obj: &mut Value) {
    let Some(string_data) = obj.as_object_mut().and_then(|m| m.remove("stringData")) else {
        return;
    };
    let Some(entries) = string_data.as_object() else {
        return;
    };
    if !obj["data"].is_object() {
        obj["data"] = json!({});
    }
    for (k, v) in entries {
        obj["data"][k] = json!(base64(v.as_str().unwrap_or_default().as_bytes()));
    }
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_each_kinds_rule() {
        assert!(check_name("", "ConfigMap", "a.b-c").is_none());
        assert!(check_name("", "Namespace", "a.b").is_some());
        assert!(check_name("", "Service", "1abc").is_some());
        assert!(check_name("apps", "Deployment", "Upper").is_some());
    }

    #[test]
    fn bad_label_values_and_owner_references_are_reported() {
        let obj = json!({"metadata": {
            "labels": {"app.kubernetes.io/name": "ok", "bad key": "x", "v": "not ok!"},
            "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "o"}],
        }});
        let fields: Vec<String> = check_metadata(&obj).into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            [
                "metadata.labels",
                "metadata.labels",
                "metadata.ownerReferences.uid"
            ]
        );
    }

    #[test]
    fn secret_string_data_becomes_base64_data() {
        let mut s = json!({"data": {"a": "eA=="}, "stringData": {"b": "hello", "c": "hi!"}});
        convert_secret(&mut s);
        assert_eq!(
            s,
            json!({"data": {"a": "eA==", "b": "aGVsbG8=", "c": "aGkh"}})
        );
    }
}
