//! Validate: the checks only the Kubernetes side knows (names, replicas, storage sizing, the
//! Service, what the pods can mount), the zot release to deploy, and what the operator wires
//! into zot's config (cluster members). A [`ValidRegistry`] is what both the renderer and the
//! resource builders take. Problems name the spec field (`spec.storage.size`); zot's own
//! semantic checks stay with the renderer and `zot::verify`.
//!
//! Admission-style checks that need the operator's settings besides the spec belong here too:
//! [`admit`] asks the operator's [`Lockdown`] before anything is read or applied.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::api::registry::RegistrySpec;
use crate::controller::lockdown::{secret_uses, Lockdown, Refusal};
use crate::zot::paths::ZOT_PORT;
use crate::zot::version::ParseVersionError;
use crate::zot::{ClusterWiring, RenderErrors, Wiring, ZotError, ZotVersion};

/// Longest Registry name: `<name>-headless` must be a DNS label and the StatefulSet's
/// controller-revision-hash label (`<name>-<10 chars>`) must fit in 63 characters.
pub const MAX_NAME_LEN: usize = 52;

/// The default PVC size.
pub const DEFAULT_STORAGE_SIZE: &str = "10Gi";

/// Default image repository; the tag is the zot release.
pub const DEFAULT_IMAGE_REPOSITORY: &str = "ghcr.io/project-zot/zot";

/// The Registry the builders start from (not to be confused with `api::retention::RegistryRef`,
/// a policy's reference to a Registry by name).
#[derive(Clone, Copy, Debug)]
pub struct RegistryRef<'a> {
    /// `metadata.name`.
    pub name: &'a str,
    /// `metadata.namespace`.
    pub namespace: &'a str,
    /// The spec.
    pub spec: &'a RegistrySpec,
    /// The cluster's DNS domain (`cluster.local` unless the cluster was set up otherwise):
    /// zot's cluster members are named in it.
    pub cluster_domain: &'a str,
}

/// A managed Registry whose Kubernetes-side checks passed, with the zot release it runs and
/// what the operator wires into its config.
#[derive(Clone, Debug)]
pub struct ValidRegistry<'a> {
    /// `metadata.name`.
    pub name: &'a str,
    /// `metadata.namespace`.
    pub namespace: &'a str,
    /// The spec.
    pub spec: &'a RegistrySpec,
    /// The zot release deployed.
    pub version: ZotVersion,
    /// The number of zot pods.
    pub replicas: i32,
    /// Name and cluster membership for the renderer.
    pub wiring: Wiring,
}

/// Checks a Registry for what only the Kubernetes side knows and resolves its zot release
/// (`version_override` is the CLI's `--zot-version`). Every problem found is returned.
pub fn validate<'a>(
    registry: RegistryRef<'a>,
    version_override: Option<&str>,
) -> Result<ValidRegistry<'a>, RenderErrors> {
    let mut errors = kubernetes_problems(registry.name, registry.spec);
    let version = resolve_version(registry.spec, version_override);
    let version = match version {
        Ok(version) if errors.is_empty() => version,
        Ok(_) => return Err(errors),
        Err(e) => {
            errors.extend(e);
            return Err(errors);
        }
    };
    Ok(ValidRegistry {
        name: registry.name,
        namespace: registry.namespace,
        spec: registry.spec,
        version,
        replicas: replicas(registry.spec),
        wiring: wiring(registry),
    })
}

/// Asks the operator's lockdown about a Registry, managed or external: the image it would run,
/// how the operator would reach it, and the Secrets it names (`secret_labels`: the labels of
/// each named Secret that exists). Called before any Secret's data is read and before anything
/// is applied, so a refused Registry gets nothing.
pub fn admit(
    lockdown: &Lockdown,
    registry: RegistryRef<'_>,
    secret_labels: &BTreeMap<String, BTreeMap<String, String>>,
) -> Result<(), Refusal> {
    let default_image = match resolve_version(registry.spec, None) {
        Ok(version) => format!("{DEFAULT_IMAGE_REPOSITORY}:{version}"),
        Err(_) => DEFAULT_IMAGE_REPOSITORY.to_string(),
    };
    lockdown.check_spec(registry.spec, &default_image, registry.cluster_domain)?;
    lockdown.check_secrets(
        registry.namespace,
        &secret_uses(registry.spec),
        secret_labels,
    )
}

/// The zot release to render for: `override_version` when given (the CLI's `--zot-version`),
/// else `spec.version`.
pub fn resolve_version(
    spec: &RegistrySpec,
    override_version: Option<&str>,
) -> Result<ZotVersion, RenderErrors> {
    let (field, text) = match (override_version, spec.version.as_deref()) {
        (Some(v), _) => ("--zot-version", v),
        (None, Some(v)) => ("spec.version", v),
        (None, None) => {
            return Err(ZotError::invalid(
                "spec.version",
                "is required for a managed registry (the zot release, e.g. v2.1.20)",
            )
            .into())
        }
    };
    let version: ZotVersion = text
        .parse()
        .map_err(|e: ParseVersionError| ZotError::invalid(field, e.to_string()))?;
    if !version.is_supported() {
        return Err(ZotError::UnsupportedVersion {
            version: version.to_string(),
        }
        .into());
    }
    Ok(version)
}

/// What the operator wires into zot's config: the Registry's name and, for more than one
/// replica on shared storage, the StatefulSet's pods as cluster members. Without shared
/// storage the problem is reported against `spec.replicas`.
pub fn wiring(registry: RegistryRef<'_>) -> Wiring {
    let (name, namespace) = (registry.name, registry.namespace);
    let replicas = replicas(registry.spec);
    let shared = registry.spec.zot().cache().is_some();
    Wiring {
        registry_name: name.to_string(),
        cluster: (replicas > 1 && shared).then(|| ClusterWiring {
            members: (0..replicas)
                .map(|i| member_address(name, namespace, i, registry.cluster_domain))
                .collect(),
            hash_key: cluster_hash_key(name, namespace),
        }),
    }
}

/// The number of zot pods (default 1).
pub fn replicas(spec: &RegistrySpec) -> i32 {
    spec.replicas.unwrap_or(1)
}

/// The stable DNS name and port of pod `index` behind the headless Service.
pub fn member_address(name: &str, namespace: &str, index: i32, cluster_domain: &str) -> String {
    format!("{name}-{index}.{name}-headless.{namespace}.svc.{cluster_domain}:{ZOT_PORT}")
}

/// A 16-character SipHash key for zot's cluster, derived from the Registry's identity so it is
/// the same on every reconcile (it only shards repositories; it is not a secret).
pub fn cluster_hash_key(name: &str, namespace: &str) -> String {
    let digest = hex::encode(Sha256::digest(format!(
        "registry-operator/{namespace}/{name}"
    )));
    digest.chars().take(16).collect()
}

fn is_dns_label(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_lowercase())
        && !s.ends_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Whether a string is a Kubernetes quantity such as `50Gi` or `1.5T`.
pub fn is_quantity(s: &str) -> bool {
    let digits_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(digits_end);
    let number_ok = !number.is_empty()
        && number.split('.').count() <= 2
        && number
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    number_ok
        && matches!(
            suffix,
            "" | "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" | "k" | "M" | "G" | "T" | "P" | "E"
        )
}

/// Every Kubernetes-side problem of a spec, in the order a reader meets the fields.
fn kubernetes_problems(name: &str, spec: &RegistrySpec) -> RenderErrors {
    let mut errors = RenderErrors::default();
    if spec.external.is_some() {
        errors.push(ZotError::invalid(
            "spec.external",
            "declares a registry the operator does not deploy, so there is no zot config to render",
        ));
    }
    check_name(name, &mut errors);
    if spec.image.as_deref().is_some_and(|i| i.trim().is_empty()) {
        errors.push(ZotError::invalid(
            "spec.image",
            "must not be empty when set",
        ));
    }
    let replicas = replicas(spec);
    if replicas < 0 {
        errors.push(ZotError::invalid(
            "spec.replicas",
            format!("must not be negative, got {replicas}"),
        ));
    }
    check_storage(spec, &mut errors);
    check_scale_out(spec, replicas, &mut errors);
    check_auth(spec, &mut errors);
    if let Some(port) = spec.service.as_ref().and_then(|s| s.port) {
        if !(1..=65535).contains(&port) {
            errors.push(ZotError::invalid(
                "spec.service.port",
                format!("must be 1-65535, got {port}"),
            ));
        }
    }
    errors
}

fn check_name(name: &str, errors: &mut RenderErrors) {
    if !is_dns_label(name) || name.len() > MAX_NAME_LEN {
        errors.push(ZotError::invalid(
            "metadata.name",
            format!("{name:?} must be a DNS label (lower-case letters, digits, '-', starting with a letter) of at most {MAX_NAME_LEN} characters"),
        ));
    }
    if let Some(other) = name.strip_suffix("-headless") {
        errors.push(ZotError::invalid(
            "metadata.name",
            format!("{name:?} must not end in -headless: the headless Service of the Registry named {other:?} has that name"),
        ));
    }
}

/// The volume's size, and a bucket instead of a volume.
fn check_storage(spec: &RegistrySpec, errors: &mut RenderErrors) {
    let Some(storage) = &spec.storage else {
        return;
    };
    if let Some(size) = &storage.size {
        if !is_quantity(size) {
            errors.push(ZotError::invalid(
                "spec.storage.size",
                format!("{size:?} is not a quantity such as 50Gi"),
            ));
        }
    }
    let Some(s3) = &storage.s3 else {
        return;
    };
    if storage.size.is_some() || storage.storage_class_name.is_some() {
        errors.push(ZotError::invalid(
            "spec.storage",
            "size and storageClassName size a volume; with s3 the images live in the bucket, so leave them unset",
        ));
    }
    if s3.cache.as_ref().is_some_and(|c| c.choice().is_none()) {
        errors.push(ZotError::invalid(
            "spec.storage.s3.cache",
            "set exactly one of redis and dynamodb",
        ));
    }
}

/// More than one pod: shared storage, and no TLS yet.
fn check_scale_out(spec: &RegistrySpec, replicas: i32, errors: &mut RenderErrors) {
    if replicas > 1 && spec.zot().cache().is_none() {
        errors.push(ZotError::invalid(
            "spec.replicas",
            "more than one replica needs shared storage: set storage.s3 with storage.s3.cache",
        ));
    }
    if replicas > 1 && spec.tls.is_some() {
        // Members proxy requests to each other over HTTPS to their pod DNS names, which only a
        // private CA can sign; zot verifies them with cluster.tls.cacert, which the spec
        // cannot provide yet.
        errors.push(ZotError::invalid(
            "spec.tls",
            "TLS with more than one replica is not supported yet: members would need the CA that signs their pod names",
        ));
    }
}

/// What the pods and the operator's own account can use.
fn check_auth(spec: &RegistrySpec, errors: &mut RenderErrors) {
    let Some(auth) = &spec.auth else {
        return;
    };
    if auth.mtls.is_some() && spec.tls.is_none() {
        errors.push(ZotError::invalid(
            "spec.auth.mtls",
            "client certificates are only presented over HTTPS: set spec.tls",
        ));
    }
    let token_server = auth.bearer.as_ref().is_some_and(|b| b.realm.is_some());
    if auth.bearer.is_some() && !token_server && auth.operator_credentials_secret_ref.is_some() {
        errors.push(ZotError::invalid(
            "spec.auth.operatorCredentialsSecretRef",
            "with bearer oidc and no token server zot accepts only OIDC tokens, so the operator's account cannot sign in: add a token server (bearer.realm, service, certSecretRef) that issues it tokens, or remove the account",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_addresses_use_the_headless_service() {
        assert_eq!(
            member_address("main", "registry", 2, "cluster.local"),
            "main-2.main-headless.registry.svc.cluster.local:5000"
        );
        assert_eq!(
            member_address("main", "registry", 0, "k8s.corp.example"),
            "main-0.main-headless.registry.svc.k8s.corp.example:5000"
        );
    }

    #[test]
    fn cluster_hash_key_is_stable_and_16_characters() {
        let key = cluster_hash_key("main", "registry");
        assert_eq!(key.len(), 16);
        assert_eq!(key, cluster_hash_key("main", "registry"));
        assert_ne!(key, cluster_hash_key("main", "other"));
    }

    #[test]
    fn quantities() {
        for ok in ["10Gi", "1.5T", "500M", "1024"] {
            assert!(is_quantity(ok), "{ok}");
        }
        for bad in ["", "Gi", "10 Gi", "10GB", "1..5Gi", "-1Gi"] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }
}
