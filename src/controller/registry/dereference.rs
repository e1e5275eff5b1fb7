//! Dereference: the Secrets a Registry names, and the files zot reads from them.

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::ResourceExt;
use sha2::{Digest, Sha256};

use std::collections::BTreeMap;

use super::builders::{secret_files, FileContent, SecretFile};
use super::validate::{self, RegistryRef};
use crate::api::Registry;
use crate::controller::conditions::{Health, Reason};
use crate::controller::context::Context;
use crate::controller::error::ControllerError;
use crate::controller::lockdown::secret_uses;

/// Asks the operator's lockdown about `registry` ([`validate::admit`]), reading only the
/// metadata of the Secrets it names, and only when `--secret-label` is set: a refused
/// Registry's Secrets are never read. `Err(ControllerError::NotAllowed)` says why.
pub(crate) async fn admit(ctx: &Context, registry: &Registry) -> Result<(), ControllerError> {
    let lockdown = &ctx.settings.lockdown;
    let namespace = registry.namespace().unwrap_or_default();
    let name = registry.name_any();
    let mut labels = BTreeMap::new();
    if lockdown.needs_secret_labels() {
        let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
        for secret in secret_uses(&registry.spec) {
            if labels.contains_key(&secret.name) {
                continue;
            }
            if let Some(meta) = api.get_metadata_opt(&secret.name).await? {
                labels.insert(secret.name, meta.metadata.labels.unwrap_or_default());
            }
        }
    }
    let reference = RegistryRef {
        name: &name,
        namespace: &namespace,
        spec: &registry.spec,
        cluster_domain: &ctx.settings.cluster_domain,
    };
    validate::admit(lockdown, reference, &labels)?;
    Ok(())
}

/// Reads the Secret files zot reads at startup ([`secret_files`]) and checks each holds what
/// zot needs. `Ok(Ok(digest))` when all are usable (the digest of their contents, `None`
/// without such files); `Ok(Err(health))` names the first missing Secret (Reconciling: it may
/// be created yet) or the first missing key or unusable content (Stalled: a person must fix
/// the Secret).
pub(super) async fn secret_file_digest(
    ctx: &Context,
    registry: &Registry,
) -> Result<Result<Option<String>, Health>, ControllerError> {
    let files = secret_files(&registry.spec);
    if files.is_empty() {
        return Ok(Ok(None));
    }
    let namespace = registry.namespace().unwrap_or_default();
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let mut contents = Vec::with_capacity(files.len());
    for file in &files {
        let Some(secret) = api.get_opt(&file.secret).await? else {
            return Ok(Err(Health::reconciling(
                Reason::SecretNotFound,
                format!(
                    "waiting for Secret {namespace}/{}, which {} names",
                    file.secret, file.field
                ),
            )));
        };
        let data = secret
            .data
            .as_ref()
            .and_then(|d| d.get(&file.key))
            .map(|b| b.0.clone());
        if let Err(problem) = check_secret_file(file, data.as_deref()) {
            return Ok(Err(Health::stalled(
                Reason::SecretInvalid,
                format!("Secret {namespace}/{}: {problem}", file.secret),
            )));
        }
        contents.push(data.unwrap_or_default());
    }
    Ok(Ok(Some(secrets_digest(&files, &contents))))
}

/// Whether one Secret key holds what zot needs in that file; the problem otherwise, naming the
/// key, the spec field and the path zot reads.
pub(super) fn check_secret_file(file: &SecretFile, data: Option<&[u8]>) -> Result<(), String> {
    let Some(data) = data else {
        return Err(format!(
            "has no key {:?}, which {} names (zot reads it as {})",
            file.key, file.field, file.path
        ));
    };
    match file.content {
        FileContent::Pem => {
            if !String::from_utf8_lossy(data).contains("-----BEGIN ") {
                return Err(format!(
                    "key {:?} ({}) holds no PEM block (-----BEGIN ...), which zot needs at {}",
                    file.key, file.field, file.path
                ));
            }
        }
        FileContent::JsonKeys(wanted) => {
            let bad = |what: String| {
                Err(format!(
                    "key {:?} ({}) is not zot's credentials file: {what}; it must be a JSON object with exactly {}",
                    file.key,
                    file.field,
                    wanted.join(" and ")
                ))
            };
            let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(data) else {
                return bad("not a JSON object".to_string());
            };
            let missing: Vec<&str> = wanted
                .iter()
                .copied()
                .filter(|w| !map.keys().any(|k| k.eq_ignore_ascii_case(w)))
                .collect();
            if !missing.is_empty() {
                return bad(format!("{} missing", missing.join(", ")));
            }
            let unknown: Vec<&str> = map
                .keys()
                .map(String::as_str)
                .filter(|k| !wanted.iter().any(|w| w.eq_ignore_ascii_case(k)))
                .collect();
            if !unknown.is_empty() {
                return bad(format!("unknown {}", unknown.join(", ")));
            }
            if let Some((k, _)) = map.iter().find(|(_, v)| !v.is_string()) {
                return bad(format!("{k} is not a string"));
            }
        }
    }
    Ok(())
}

/// SHA-256 hex over each file's volume, key and contents, in order.
pub(super) fn secrets_digest(files: &[SecretFile], contents: &[Vec<u8>]) -> String {
    let mut hasher = Sha256::new();
    for (file, data) in files.iter().zip(contents) {
        for part in [file.volume.as_bytes(), file.key.as_bytes()] {
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part);
        }
        hasher.update((data.len() as u64).to_be_bytes());
        hasher.update(data);
    }
    hex::encode(hasher.finalize())
}

/// The first Secret a managed registry's pods mount that does not exist (zot would not
/// start), as the message for its condition.
pub(super) async fn missing_secret(
    ctx: &Context,
    registry: &Registry,
) -> Result<Option<String>, ControllerError> {
    let namespace = registry.namespace().unwrap_or_default();
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    for secret in whole_secrets(registry) {
        if api.get_metadata_opt(&secret).await?.is_none() {
            return Ok(Some(format!(
                "waiting for Secret {namespace}/{secret}, which the registry mounts"
            )));
        }
    }
    Ok(None)
}

/// The Secrets checked for existence only (htpasswd, TLS, sync and S3 credentials).
fn whole_secrets(registry: &Registry) -> Vec<String> {
    let spec = &registry.spec;
    let mut out = Vec::new();
    if let Some(r) = spec
        .auth
        .as_ref()
        .and_then(|a| a.htpasswd_secret_ref.as_ref())
    {
        out.push(r.name.clone());
    }
    if let Some(r) = &spec.tls {
        out.push(r.name.clone());
    }
    if let Some(r) = spec
        .sync
        .as_ref()
        .and_then(|s| s.credentials_secret_ref.as_ref())
    {
        out.push(r.name.clone());
    }
    if let Some(r) = spec
        .storage
        .as_ref()
        .and_then(|s| s.s3.as_ref())
        .and_then(|s| s.credentials_secret_ref.as_ref())
    {
        out.push(r.name.clone());
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::common::SecretKeyRef;
    use crate::api::registry::{AuthSpec, LdapSpec, OpenIdProvider, OpenIdSpec, RegistrySpec};

    fn spec() -> RegistrySpec {
        RegistrySpec {
            auth: Some(AuthSpec {
                ldap: Some(LdapSpec {
                    address: "ldap.example".into(),
                    base_dn: "dc=example".into(),
                    user_attribute: "uid".into(),
                    credentials_secret_ref: Some(SecretKeyRef {
                        name: "ldap-bind".into(),
                        key: None,
                    }),
                    ..LdapSpec::default()
                }),
                openid: Some(OpenIdSpec {
                    external_url: None,
                    providers: vec![OpenIdProvider {
                        issuer: Some("https://sso.example".into()),
                        scopes: vec!["openid".into()],
                        credentials_secret_ref: SecretKeyRef {
                            name: "sso".into(),
                            key: Some("client.json".into()),
                        },
                        ..OpenIdProvider::default()
                    }],
                }),
                ..AuthSpec::default()
            }),
            ..RegistrySpec::default()
        }
    }

    #[test]
    fn the_ldap_and_openid_secrets_are_mounted_where_the_rendered_config_points() {
        let files = secret_files(&spec());
        let seen: Vec<(&str, &str, &str)> = files
            .iter()
            .map(|f| (f.secret.as_str(), f.key.as_str(), f.path.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                (
                    "ldap-bind",
                    "credentials.json",
                    "/secrets/ldap/credentials.json"
                ),
                (
                    "sso",
                    "client.json",
                    "/secrets/openid/oidc/credentials.json"
                ),
            ]
        );
    }

    #[test]
    fn a_missing_key_or_a_file_zot_would_refuse_is_named_with_its_field() {
        let files = secret_files(&spec());
        let ldap = &files[0];
        let missing = check_secret_file(ldap, None).unwrap_err();
        assert_eq!(missing, "has no key \"credentials.json\", which spec.auth.ldap.credentialsSecretRef names (zot reads it as /secrets/ldap/credentials.json)");
        let inline_dn =
            check_secret_file(ldap, Some(br#"{"bindPassword": "s3cret"}"#.as_slice())).unwrap_err();
        assert!(inline_dn.contains("bindDN missing"), "{inline_dn}");
        let extra = check_secret_file(
            ldap,
            Some(br#"{"bindDN": "cn=zot", "bindPassword": "s", "user": "x"}"#.as_slice()),
        )
        .unwrap_err();
        assert!(extra.contains("unknown user"), "{extra}");
        assert!(check_secret_file(
            ldap,
            Some(br#"{"binddn": "cn=zot", "bindPassword": "s"}"#.as_slice())
        )
        .is_ok());
        let pem = SecretFile {
            content: FileContent::Pem,
            ..ldap.clone()
        };
        assert!(check_secret_file(&pem, Some(b"not a certificate".as_slice())).is_err());
        assert!(check_secret_file(
            &pem,
            Some(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".as_slice())
        )
        .is_ok());
    }

    #[test]
    fn the_digest_changes_with_any_file_and_only_then() {
        let files = secret_files(&spec());
        let a = vec![b"one".to_vec(), b"two".to_vec()];
        let b = vec![b"one".to_vec(), b"tw0".to_vec()];
        assert_eq!(
            secrets_digest(&files, &a),
            secrets_digest(&files, &a.clone())
        );
        assert_ne!(secrets_digest(&files, &a), secrets_digest(&files, &b));
        assert_eq!(secrets_digest(&files, &a).len(), 64);
    }

    #[test]
    fn every_secret_the_pods_mount_is_watched_and_asked_about() {
        let mut spec = spec();
        spec.tls = Some(crate::api::common::SecretRef { name: "tls".into() });
        let registry = Registry::new("main", spec);
        let mut mounted = whole_secrets(&registry);
        mounted.extend(secret_files(&registry.spec).into_iter().map(|f| f.secret));
        let named: Vec<String> = secret_uses(&registry.spec)
            .into_iter()
            .map(|u| u.name)
            .collect();
        assert_eq!(mounted.len(), 3);
        for m in mounted {
            assert!(
                named.contains(&m),
                "{m} is mounted but not in secret_uses: {named:?}"
            );
        }
    }
}
