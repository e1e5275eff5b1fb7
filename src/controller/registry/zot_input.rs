//! Adapter from a `Registry` spec to the renderer's [`RenderInput`]: resolves the zot release,
//! checks what only the Kubernetes side knows (names, replicas, storage sizing) and maps the
//! rest field by field. Problems name the spec field (`spec.storage.size`).

use sha2::{Digest, Sha256};

use crate::api::registry::{AccessAction, CacheSpec, LdapTls, OpenIdProviderKind, RegistrySpec};
use crate::zot::input::*;
use crate::zot::{RenderErrors, ZotError, ZotVersion};

/// Longest Registry name: `<name>-headless` must be a DNS label and the StatefulSet's
/// controller-revision-hash label (`<name>-<10 chars>`) must fit in 63 characters.
pub const MAX_NAME_LEN: usize = 52;

/// The default PVC size.
pub const DEFAULT_STORAGE_SIZE: &str = "10Gi";

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
    let version: ZotVersion =
        text.parse()
            .map_err(|e: crate::zot::version::ParseVersionError| {
                ZotError::invalid(field, e.to_string())
            })?;
    if !version.is_supported() {
        return Err(ZotError::UnsupportedVersion {
            version: version.to_string(),
        }
        .into());
    }
    Ok(version)
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

/// Checks the Kubernetes-side parts of a spec and maps it to the renderer's input. The input
/// is returned even when problems were found, so the renderer can add its own to one report.
pub fn render_input(
    name: &str,
    namespace: &str,
    spec: &RegistrySpec,
    cluster_domain: &str,
) -> (RenderInput, RenderErrors) {
    let mut errors = RenderErrors::default();
    if spec.external.is_some() {
        errors.push(ZotError::invalid(
            "spec.external",
            "declares a registry the operator does not deploy, so there is no zot config to render",
        ));
    }
    if !is_dns_label(name) || name.len() > MAX_NAME_LEN {
        errors.push(ZotError::invalid(
            "metadata.name",
            format!("{name:?} must be a DNS label (lower-case letters, digits, '-', starting with a letter) of at most {MAX_NAME_LEN} characters"),
        ));
    }
    if let Some(other) = name.strip_suffix("-headless") {
        errors.push(ZotError::invalid(
            "metadata.name",
            format!("{name:?} must not end in -headless: the headless Service of the Registry named {:?} has that name", other),
        ));
    }
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
    let storage_spec = spec.storage.clone().unwrap_or_default();
    if let Some(size) = &storage_spec.size {
        if !is_quantity(size) {
            errors.push(ZotError::invalid(
                "spec.storage.size",
                format!("{size:?} is not a quantity such as 50Gi"),
            ));
        }
    }
    let storage = match &storage_spec.s3 {
        None => StorageInput::Local,
        Some(s3) => {
            if storage_spec.size.is_some() || storage_spec.storage_class_name.is_some() {
                errors.push(ZotError::invalid(
                    "spec.storage",
                    "size and storageClassName size a volume; with s3 the images live in the bucket, so leave them unset",
                ));
            }
            let cache = s3
                .cache
                .as_ref()
                .and_then(|c| cache_input(name, c, &mut errors));
            StorageInput::S3(S3Input {
                bucket: s3.bucket.clone(),
                region: s3.region.clone(),
                endpoint: s3.endpoint.clone(),
                root_directory: s3.root_directory.clone(),
                cache,
            })
        }
    };
    let shared = matches!(&storage, StorageInput::S3(s3) if s3.cache.is_some());
    if replicas > 1 && !shared {
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
    if let Some(auth) = &spec.auth {
        if auth.mtls.is_some() && spec.tls.is_none() {
            errors.push(ZotError::invalid(
                "spec.auth.mtls",
                "client certificates are only presented over HTTPS: set spec.tls",
            ));
        }
        let token_server = auth.bearer.as_ref().is_some_and(|b| b.realm.is_some());
        if auth.bearer.is_some() && !token_server && auth.operator_credentials_secret_ref.is_some()
        {
            errors.push(ZotError::invalid(
                "spec.auth.operatorCredentialsSecretRef",
                "with bearer oidc and no token server zot accepts only OIDC tokens, so the operator's account cannot sign in: add a token server (bearer.realm, service, certSecretRef) that issues it tokens, or remove the account",
            ));
        }
    }
    if let Some(port) = spec.service.as_ref().and_then(|s| s.port) {
        if !(1..=65535).contains(&port) {
            errors.push(ZotError::invalid(
                "spec.service.port",
                format!("must be 1-65535, got {port}"),
            ));
        }
    }

    let auth = spec.auth.clone().unwrap_or_default();
    let gc = spec.gc.clone().unwrap_or_default();
    let untagged = spec.untagged.clone().unwrap_or_default();
    let extensions = spec.extensions.clone().unwrap_or_default();
    let http = spec.http.clone().unwrap_or_default();
    let input = RenderInput {
        storage,
        dedupe: spec.dedupe,
        gc: GcInput {
            enabled: gc.enabled,
            interval: gc.interval,
            delay: gc.delay,
            time_window: gc.time_window,
        },
        untagged: UntaggedInput {
            delete: untagged.delete,
            delay: untagged.delay,
        },
        delete_orphan_referrers: spec.referrers.as_ref().and_then(|r| r.delete_orphans),
        http: HttpInput {
            realm: auth.realm.clone(),
            tls: spec.tls.is_some(),
            tls_client_ca: auth.mtls.is_some(),
            htpasswd: auth.htpasswd_secret_ref.is_some(),
            fail_delay_seconds: auth.fail_delay_seconds.map(i64::from),
            access_control: auth.access_control.as_ref().map(|ac| AccessControlInput {
                repositories: ac
                    .repositories
                    .iter()
                    .map(|r| RepositoryAccessInput {
                        pattern: r.pattern.clone(),
                        policies: r
                            .policies
                            .iter()
                            .map(|p| AccessPolicyInput {
                                users: p.users.clone(),
                                groups: p.groups.clone(),
                                actions: actions(&p.actions),
                            })
                            .collect(),
                        default_policy: actions(&r.default_policy),
                        anonymous_policy: actions(&r.anonymous_policy),
                    })
                    .collect(),
                admin_users: ac.admin_users.clone(),
                admin_groups: ac.admin_groups.clone(),
                metrics_users: ac.metrics_users.clone(),
            }),
            mtls: auth.mtls.as_ref().map(|m| MtlsInput {
                identity_attributes: m
                    .identity_attributes
                    .iter()
                    .filter_map(|a| serde_json::to_value(a).ok())
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect(),
                uri_san_pattern: m.uri_san_pattern.clone(),
            }),
            bearer: auth.bearer.as_ref().map(|b| BearerInput {
                realm: b.realm.clone(),
                service: b.service.clone(),
                cert: b.cert_secret_ref.is_some(),
                oidc: b
                    .oidc
                    .iter()
                    .map(|o| BearerOidcInput {
                        issuer: o.issuer.clone(),
                        audiences: o.audiences.clone(),
                        username_expression: o.username_expression.clone(),
                        ca: o.ca_secret_ref.is_some(),
                    })
                    .collect(),
            }),
            api_keys: auth.api_keys.unwrap_or(false),
            ldap: auth.ldap.as_ref().map(|l| LdapInput {
                address: l.address.clone(),
                port: l.port.map(i64::from),
                tls: match l.tls.unwrap_or_default() {
                    LdapTls::Ldaps => LdapTlsInput::Ldaps,
                    LdapTls::StartTls => LdapTlsInput::StartTls,
                    LdapTls::None => LdapTlsInput::None,
                },
                skip_verify: l.insecure_skip_verify,
                ca: l.ca_secret_ref.is_some(),
                base_dn: l.base_dn.clone(),
                user_attribute: l.user_attribute.clone(),
                user_filter: l.user_filter.clone(),
                user_group_attribute: l.user_group_attribute.clone(),
                subtree_search: l.subtree_search,
                credentials_file: l.credentials_secret_ref.is_some(),
            }),
            openid: auth.openid.as_ref().map(|o| OpenIdInput {
                external_url: o.external_url.clone(),
                providers: o
                    .providers
                    .iter()
                    .map(|p| OpenIdProviderInput {
                        kind: provider_kind(p.kind).to_string(),
                        name: p.display_name.clone(),
                        issuer: p.issuer.clone(),
                        scopes: p.scopes.clone(),
                        username_claim: p.username_claim.clone(),
                        groups_claim: p.groups_claim.clone(),
                    })
                    .collect(),
            }),
            docker_compat: http.docker_compat,
            read_timeout: http.read_timeout.clone(),
            write_timeout: http.write_timeout.clone(),
        },
        log_level: spec
            .log
            .as_ref()
            .and_then(|l| l.level)
            .and_then(|l| serde_json::to_value(l).ok())
            .and_then(|v| v.as_str().map(String::from)),
        sync: spec.sync.as_ref().map(|s| SyncInput {
            credentials_file: s.credentials_secret_ref.is_some(),
            registries: s
                .registries
                .iter()
                .map(|r| SyncRegistryInput {
                    urls: r.urls.clone(),
                    on_demand: r.on_demand,
                    poll_interval: r.poll_interval.clone(),
                    tls_verify: r.tls_verify,
                    content: r
                        .content
                        .iter()
                        .map(|c| SyncContentInput {
                            prefix: c.prefix.clone(),
                            tags_regex: c.tags_regex.clone(),
                            exclude_tags_regex: c.exclude_tags_regex.clone(),
                            semver: c.semver,
                            destination: c.destination.clone(),
                            strip_prefix: c.strip_prefix,
                        })
                        .collect(),
                    max_retries: r.max_retries.map(i64::from),
                    retry_delay: r.retry_delay.clone(),
                    only_signed: r.only_signed,
                })
                .collect(),
        }),
        search: extensions.search.unwrap_or(false),
        ui: extensions.ui.unwrap_or(false),
        metrics: extensions
            .metrics
            .unwrap_or(false)
            .then(MetricsInput::default),
        scrub: extensions.scrub.as_ref().map(|s| ScrubInput {
            interval: s.interval.clone(),
        }),
        // Without shared storage the problem is already reported against spec.replicas.
        cluster: (replicas > 1 && shared).then(|| ClusterInput {
            members: (0..replicas)
                .map(|i| member_address(name, namespace, i, cluster_domain))
                .collect(),
            hash_key: cluster_hash_key(name, namespace),
        }),
        raw: spec.config.clone(),
    };
    (input, errors)
}

/// zot's name of a provider kind (its key under `http.auth.openid.providers`).
pub fn provider_kind(kind: OpenIdProviderKind) -> &'static str {
    match kind {
        OpenIdProviderKind::Oidc => "oidc",
        OpenIdProviderKind::Google => "google",
        OpenIdProviderKind::Gitlab => "gitlab",
        OpenIdProviderKind::Github => "github",
    }
}

fn actions(list: &[AccessAction]) -> Vec<String> {
    list.iter()
        .filter_map(|a| serde_json::to_value(a).ok())
        .filter_map(|v| v.as_str().map(String::from))
        .collect()
}

fn cache_input(name: &str, cache: &CacheSpec, errors: &mut RenderErrors) -> Option<CacheInput> {
    match (&cache.redis, &cache.dynamodb) {
        (Some(redis), None) => Some(CacheInput::Redis {
            url: redis.url.clone(),
            key_prefix: redis.key_prefix.clone(),
        }),
        (None, Some(dynamo)) => Some(CacheInput::DynamoDb {
            region: dynamo.region.clone(),
            endpoint: dynamo.endpoint.clone(),
            table_prefix: dynamo
                .table_prefix
                .clone()
                .unwrap_or_else(|| name.to_string()),
        }),
        _ => {
            errors.push(ZotError::invalid(
                "spec.storage.s3.cache",
                "set exactly one of redis and dynamodb",
            ));
            None
        }
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
