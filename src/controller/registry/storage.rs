//! Storage changes a managed Registry cannot make in place.
//!
//! A StatefulSet's `volumeClaimTemplates` are immutable: the API server rejects (422) an apply
//! that changes the volume size or StorageClass, or adds or removes the volume (local storage ↔
//! S3). The reconciler compares the existing StatefulSet with the desired one before applying
//! anything, and reports what changed and how to migrate instead of failing on every pass.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;

/// What differs between the storage a StatefulSet has and the storage the spec asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageChange {
    /// Each difference, for a person (`storage.size 10Gi → 20Gi`).
    pub changes: Vec<String>,
    /// Only the volume size grows: expanding the existing claims keeps the data.
    pub grow_only: bool,
}

impl StorageChange {
    /// The condition message for the Registry `name` in `namespace`: what changed, that nothing
    /// was applied, and how to migrate.
    pub fn message(&self, namespace: &str, name: &str) -> String {
        let how = if self.grow_only {
            format!(
                "to grow the volumes in place, expand each PersistentVolumeClaim data-{name}-<ordinal> (its StorageClass must allow volume expansion), then `kubectl delete statefulset {name} -n {namespace} --cascade=orphan`: the operator recreates it with the new size and the pods keep their data"
            )
        } else {
            format!(
                "the images do not move by themselves: create a new Registry with the new storage and copy the images into it (for example with its spec.sync pulling from this one), switch clients, then delete this one; or, if the images can be lost, delete the StatefulSet {name} and its PersistentVolumeClaims data-{name}-<ordinal> in {namespace}: the operator recreates them"
            )
        };
        format!(
            "storage cannot change in place (a StatefulSet's volumeClaimTemplates are immutable): {}; nothing was applied and zot keeps its current storage. Revert spec.storage, or migrate: {how}",
            self.changes.join("; ")
        )
    }
}

/// What would change in `existing`'s volume claim templates if `desired` were applied; None
/// when nothing would (quantities compared by value: `1Gi` equals `1024Mi`).
pub fn storage_change(existing: &StatefulSet, desired: &StatefulSet) -> Option<StorageChange> {
    let claims = |s: &StatefulSet| {
        s.spec
            .as_ref()
            .and_then(|s| s.volume_claim_templates.clone())
            .unwrap_or_default()
    };
    let (old, new) = (claims(existing), claims(desired));
    let mut changes = Vec::new();
    let mut grow_only = false;
    match (old.is_empty(), new.is_empty()) {
        (true, true) => {}
        (false, true) => changes.push(
            "the images would move from the pods' volumes to S3 (spec.storage.s3 is set)".into(),
        ),
        (true, false) => changes.push(
            "the images would move from S3 to a volume per pod (spec.storage.s3 is removed)".into(),
        ),
        (false, false) => {
            let names = |c: &[PersistentVolumeClaim]| -> Vec<Option<String>> {
                c.iter().map(|c| c.metadata.name.clone()).collect()
            };
            if names(&old) != names(&new) {
                changes.push(format!(
                    "volume claim templates {:?} → {:?}",
                    names(&old).into_iter().flatten().collect::<Vec<_>>(),
                    names(&new).into_iter().flatten().collect::<Vec<_>>()
                ));
            } else {
                let mut grows = true;
                for (o, n) in old.iter().zip(&new) {
                    let (os, ns) = (size(o), size(n));
                    if !same_quantity(os.as_deref(), ns.as_deref()) {
                        grows &= larger(ns.as_deref(), os.as_deref());
                        changes.push(format!(
                            "storage.size {} → {}",
                            os.as_deref().unwrap_or("(none)"),
                            ns.as_deref().unwrap_or("(none)")
                        ));
                    }
                    let (oc, nc) = (class(o), class(n));
                    if oc != nc {
                        grows = false;
                        changes.push(format!(
                            "storage.storageClassName {} → {}",
                            oc.unwrap_or("(the cluster's default)"),
                            nc.unwrap_or("(the cluster's default)")
                        ));
                    }
                    let modes = |c: &PersistentVolumeClaim| {
                        c.spec.as_ref().and_then(|s| s.access_modes.clone())
                    };
                    if modes(o) != modes(n) {
                        grows = false;
                        changes.push(format!(
                            "access modes {:?} → {:?}",
                            modes(o).unwrap_or_default(),
                            modes(n).unwrap_or_default()
                        ));
                    }
                }
                grow_only = grows && !changes.is_empty();
            }
        }
    }
    (!changes.is_empty()).then_some(StorageChange { changes, grow_only })
}

fn size(c: &PersistentVolumeClaim) -> Option<String> {
    c.spec
        .as_ref()?
        .resources
        .as_ref()?
        .requests
        .as_ref()?
        .get("storage")
        .map(|q| q.0.clone())
}

fn class(c: &PersistentVolumeClaim) -> Option<&str> {
    c.spec.as_ref()?.storage_class_name.as_deref()
}

/// A quantity such as `10Gi`, `1.5T` or `500M` as an exact fraction (numerator, denominator) of
/// bytes; None for forms it does not know (compared as text then).
fn quantity(s: &str) -> Option<(u128, u128)> {
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    let multiplier: u128 = match suffix {
        "" => 1,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "P" => 1_000_000_000_000_000,
        "E" => 1_000_000_000_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "Pi" => 1 << 50,
        "Ei" => 1 << 60,
        _ => return None,
    };
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    if int.is_empty() || frac.contains('.') {
        return None;
    }
    let denominator = 10u128.checked_pow(u32::try_from(frac.len()).ok()?)?;
    let numerator = format!("{int}{frac}")
        .parse::<u128>()
        .ok()?
        .checked_mul(multiplier)?;
    Some((numerator, denominator))
}

fn same_quantity(a: Option<&str>, b: Option<&str>) -> bool {
    match (a.and_then(quantity), b.and_then(quantity)) {
        (Some((an, ad)), Some((bn, bd))) => an.checked_mul(bd) == bn.checked_mul(ad),
        _ => a == b,
    }
}

/// Whether `a` is a larger quantity than `b` (false when either is unknown).
fn larger(a: Option<&str>, b: Option<&str>) -> bool {
    match (a.and_then(quantity), b.and_then(quantity)) {
        (Some((an, ad)), Some((bn, bd))) => match (an.checked_mul(bd), bn.checked_mul(ad)) {
            (Some(x), Some(y)) => x > y,
            _ => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sts(claims: serde_json::Value) -> StatefulSet {
        serde_json::from_value(json!({
            "metadata": {"name": "main"},
            "spec": {"selector": {}, "template": {}, "serviceName": "main-headless",
                     "volumeClaimTemplates": claims},
        }))
        .unwrap()
    }

    fn volume(size: &str, class: Option<&str>) -> StatefulSet {
        sts(json!([{"metadata": {"name": "data"}, "spec": {
            "accessModes": ["ReadWriteOnce"], "storageClassName": class,
            "resources": {"requests": {"storage": size}}}}]))
    }

    #[test]
    fn the_same_storage_is_no_change_even_written_otherwise() {
        assert_eq!(
            storage_change(&volume("1Gi", None), &volume("1Gi", None)),
            None
        );
        assert_eq!(
            storage_change(&volume("1Gi", None), &volume("1024Mi", None)),
            None
        );
        assert_eq!(
            storage_change(&volume("1.5G", None), &volume("1500M", None)),
            None
        );
        assert_eq!(storage_change(&sts(json!(null)), &sts(json!([]))), None);
    }

    #[test]
    fn size_class_and_s3_changes_are_named() {
        let c = storage_change(&volume("10Gi", None), &volume("20Gi", None)).unwrap();
        assert_eq!(c.changes, vec!["storage.size 10Gi → 20Gi"]);
        assert!(c.grow_only);
        assert!(c.message("ns", "main").contains("data-main-<ordinal>"));
        assert!(c.message("ns", "main").contains("--cascade=orphan"));

        let c = storage_change(&volume("20Gi", None), &volume("10Gi", None)).unwrap();
        assert!(!c.grow_only, "a volume cannot shrink");

        let c = storage_change(&volume("10Gi", None), &volume("10Gi", Some("fast"))).unwrap();
        assert_eq!(
            c.changes,
            vec!["storage.storageClassName (the cluster's default) → fast"]
        );
        assert!(!c.grow_only);
        assert!(c.message("ns", "main").contains("spec.sync"));

        let c = storage_change(&volume("10Gi", None), &sts(json!(null))).unwrap();
        assert!(c.changes[0].contains("to S3"), "{c:?}");
        let c = storage_change(&sts(json!(null)), &volume("10Gi", None)).unwrap();
        assert!(c.changes[0].contains("from S3"), "{c:?}");
    }
}
