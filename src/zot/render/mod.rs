//! The renderer: the zot-facing parts of a Registry spec ([`ZotSpec`]) + what the operator
//! wires in ([`Wiring`]) + zot release → `config.json`, or every problem found.
//!
//! Durations and patterns arrive as the user wrote them: the renderer checks and normalises
//! them, so one problem report covers every field. The blocks are built in [`storage`],
//! [`http`] and [`extensions`].

mod extensions;
mod http;
mod storage;

use std::collections::BTreeSet;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::config::*;
use super::error::{RenderErrors, ZotError};
use super::keys::{self, KeyStatus};
use super::merge::merge;
use super::verify;
use super::version::ZotVersion;
use crate::api::zot::ZotSpec;
use crate::duration::{parse_go_duration, GoDuration};

pub use self::http::{
    BEARER_OIDC_CA_SINCE, BEARER_OIDC_SINCE, DEFAULT_HTTP_TIMEOUT, MTLS_IDENTITY_SINCE,
    OPENID_GROUPS_CLAIM_SINCE,
};
pub use self::storage::aws_dynamodb_endpoint;

/// What the operator wires into zot's config besides the spec: the Registry's name (the
/// default DynamoDB table prefix) and, for more than one replica, the cluster membership.
/// The Secret files zot reads are mounted at the fixed [`paths`](super::paths); the spec's
/// Secret references say which are there.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Wiring {
    /// `metadata.name`: DynamoDB tables are named `<name>-<purpose>` unless the spec sets a
    /// prefix.
    pub registry_name: String,
    /// Scale-out membership, for more than one replica on shared storage.
    pub cluster: Option<ClusterWiring>,
}

/// zot's scale-out membership.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterWiring {
    /// `host:port` of every member, in order.
    pub members: Vec<String>,
    /// 16-character SipHash key.
    pub hash_key: String,
}

/// First release accepting `storage.gcTimeWindow`.
pub const GC_TIME_WINDOW_SINCE: ZotVersion = ZotVersion::new(2, 1, 19);

/// First release accepting `http.readTimeout` / `http.writeTimeout` (and cutting every request
/// at 60 s when they are unset).
pub const HTTP_TIMEOUTS_SINCE: ZotVersion = ZotVersion::new(2, 1, 17);

/// The `http.compat` value that makes zot accept Docker image manifest v2 schema 2.
pub const DOCKER_COMPAT: &str = "docker2s2";

/// Keys the raw config may not override, because the pod's wiring depends on them: the
/// listener the probes and Services target, the paths of mounted volumes and Secrets, and the
/// cluster membership derived from the StatefulSet.
pub const OPERATOR_OWNED_KEYS: &[(&str, &str)] = &[
    ("http.address", "the pod listens on all addresses"),
    ("http.port", "probes and Services target port 5000"),
    (
        "http.tls",
        "set spec.tls; the certificate is mounted from its Secret",
    ),
    (
        "http.auth.htpasswd",
        "set spec.auth.htpasswdSecretRef; the file is mounted from its Secret",
    ),
    (
        "http.auth.ldap.credentialsFile",
        "set spec.auth.ldap.credentialsSecretRef; the file is mounted from its Secret",
    ),
    (
        "http.auth.ldap.caCert",
        "set spec.auth.ldap.caSecretRef; the file is mounted from its Secret",
    ),
    (
        "http.auth.bearer.cert",
        "set spec.auth.bearer.certSecretRef; the file is mounted from its Secret",
    ),
    ("storage.rootDirectory", "the data volume is mounted there"),
    (
        "extensions.sync.credentialsFile",
        "set spec.sync.credentialsSecretRef; the file is mounted from its Secret",
    ),
    ("cluster.members", "the members are the StatefulSet's pods"),
    (
        "cluster.hashKey",
        "derived from the Registry's namespace and name",
    ),
];

/// Keys of the raw config that carry a secret value (compared case-insensitively, at any
/// depth), each with where the secret belongs instead: the ConfigMap holding `config.json` is
/// readable by whoever may read ConfigMaps, and the pods' Secret files are the only place zot
/// takes such values from. The OpenID `clientsecret` has a check of its own.
pub const SECRET_KEYS: &[(&str, &str)] = &[
    (
        "accesskey",
        "set spec.storage.s3.credentialsSecretRef (zot gets accessKey and secretKey from that Secret)",
    ),
    (
        "secretkey",
        "set spec.storage.s3.credentialsSecretRef (zot gets accessKey and secretKey from that Secret)",
    ),
    (
        "sessiontoken",
        "set spec.storage.s3.credentialsSecretRef, or give the pods an identity (IRSA) that needs no key",
    ),
    (
        "accountkey",
        "no spec field takes an Azure account key from a Secret; give the pods a workload identity instead",
    ),
    (
        "password",
        "no spec field takes a cache or session store password from a Secret yet; use a store reachable without one (a NetworkPolicy limits who can)",
    ),
    (
        "sentinel_password",
        "no spec field takes a Redis sentinel password from a Secret yet; use a store reachable without one",
    ),
    (
        "bindpassword",
        "set spec.auth.ldap.credentialsSecretRef (zot reads bindDN and bindPassword from that Secret)",
    ),
];

/// Refuses secret values in the raw config ([`SECRET_KEYS`], and URLs with a password such as
/// `redis://user:pw@redis:6379` or `https://user:pw@upstream`): they would be written into the
/// ConfigMap in plain text. The message names the key, never the value.
fn check_raw_secrets(value: &Value, path: &str, errors: &mut RenderErrors) {
    secrets_in(value, "config.", path, errors);
}

/// [`check_raw_secrets`] with the prefix errors name keys with (`config.` for the raw config,
/// nothing for the typed rendering, whose URLs may carry a password too).
fn secrets_in(value: &Value, prefix: &str, path: &str, errors: &mut RenderErrors) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                let here = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                let lower = key.to_ascii_lowercase();
                let secret = SECRET_KEYS.iter().find(|(k, _)| *k == lower);
                match secret {
                    Some((_, instead)) if !v.is_null() => errors.push(ZotError::invalid(
                        format!("{prefix}{here}"),
                        format!("is a secret, which would be stored in the ConfigMap in plain text: {instead}"),
                    )),
                    _ => secrets_in(v, prefix, &here, errors),
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                secrets_in(item, prefix, &format!("{path}[{i}]"), errors);
            }
        }
        Value::String(s) => {
            let has_password = url::Url::parse(s).is_ok_and(|u| u.password().is_some());
            if has_password {
                let instead = if path.to_ascii_lowercase().starts_with("extensions.sync") {
                    "set spec.sync.credentialsSecretRef (zot's sync credentials file, per host)"
                } else {
                    "no spec field takes this password from a Secret yet; use a URL without one"
                };
                errors.push(ZotError::invalid(
                    format!("{prefix}{path}"),
                    format!("is a URL with a password, which would be stored in the ConfigMap in plain text: {instead}"),
                ));
            }
        }
        _ => {}
    }
}

/// A rendered config: the document, its canonical bytes and their hash.
#[derive(Clone, Debug, PartialEq)]
pub struct RenderedConfig {
    /// The zot release the config was rendered for.
    pub version: ZotVersion,
    /// The config document (typed rendering with the raw config merged in).
    pub config: Value,
    /// Canonical bytes written to `config.json`: pretty JSON, stable key order, final newline.
    pub json: String,
    /// Lower-case hex SHA-256 of [`RenderedConfig::json`].
    pub hash: String,
}

/// SHA-256 hex of config bytes, the value of the pods' config-hash annotation.
pub fn config_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Renders zot's `config.json` for a release, after checking the operator's rules, the version
/// gates, the raw config's keys and zot's own verify rules. Returns every problem found.
pub fn render(
    spec: &ZotSpec<'_>,
    wiring: &Wiring,
    version: ZotVersion,
) -> Result<RenderedConfig, RenderErrors> {
    if !version.is_supported() {
        return Err(ZotError::UnsupportedVersion {
            version: version.to_string(),
        }
        .into());
    }
    let mut errors = RenderErrors::default();
    let typed = build(spec, wiring, version, &mut errors);
    let mut config = match serde_json::to_value(&typed) {
        Ok(v) => v,
        Err(e) => {
            errors.push(ZotError::invalid(
                "config",
                format!("cannot serialise: {e}"),
            ));
            return Err(errors);
        }
    };
    // A password in a typed URL (a Redis cache, a sync upstream) would reach the ConfigMap too.
    secrets_in(&config, "", "", &mut errors);
    if let Some(raw) = spec.config {
        check_raw_retention(spec, raw, &mut errors);
        if raw.is_object() {
            for path in keys::key_paths(raw) {
                if let Some(owner) = OPERATOR_OWNED_KEYS
                    .iter()
                    .find(|(k, _)| path.eq_ignore_ascii_case(k))
                {
                    errors.push(ZotError::invalid(
                        format!("config.{path}"),
                        format!(
                            "is set by the operator ({}); it cannot be overridden",
                            owner.1
                        ),
                    ));
                }
            }
            for path in keys::key_paths(raw) {
                let lower = path.to_ascii_lowercase();
                if lower.starts_with("http.auth.openid.providers.")
                    && (lower.ends_with(".clientsecret") || lower.ends_with(".credentialsfile"))
                {
                    errors.push(ZotError::invalid(
                        format!("config.{path}"),
                        "would put an OpenID client secret into the ConfigMap or point at a file the pod lacks: set spec.auth.openid.providers[].credentialsSecretRef",
                    ));
                }
            }
            check_raw_secrets(raw, "", &mut errors);
            merge(&mut config, raw);
        } else {
            errors.push(ZotError::invalid(
                "config",
                "must be an object of zot config keys",
            ));
        }
    }
    for (path, status) in keys::unaccepted_keys(&config, version) {
        errors.push(ZotError::UnknownKey {
            path,
            version,
            min: match status {
                KeyStatus::NeedsVersion(v) => Some(v),
                _ => None,
            },
        });
    }
    // zot's verify rules on the final document; a path already reported stays reported once.
    let reported: BTreeSet<String> = errors
        .0
        .iter()
        .filter_map(|e| match e {
            ZotError::Invalid { path, .. } => Some(path.clone()),
            _ => None,
        })
        .collect();
    for e in verify::verify(&config, version).0 {
        match &e {
            ZotError::Invalid { path, .. } if reported.contains(path) => {}
            _ => errors.push(e),
        }
    }
    errors.into_result()?;
    let json = match serde_json::to_string_pretty(&config) {
        Ok(s) => s + "\n",
        Err(e) => return Err(ZotError::invalid("config", format!("cannot serialise: {e}")).into()),
    };
    let hash = config_hash(json.as_bytes());
    Ok(RenderedConfig {
        version,
        config,
        json,
        hash,
    })
}

/// Checks and normalises a Go duration; reports problems under `path`. Invalid values are
/// kept as written so the rest of the config still renders for further checks.
fn duration(path: &str, value: &str, errors: &mut RenderErrors) -> (String, Option<GoDuration>) {
    match parse_go_duration(value) {
        Ok(d) if d.negative => {
            errors.push(ZotError::invalid(
                path,
                format!("must not be negative, got {value:?}"),
            ));
            (value.to_string(), None)
        }
        Ok(d) => {
            let d = GoDuration(d.magnitude);
            (d.to_string(), Some(d))
        }
        Err(message) => {
            errors.push(ZotError::invalid(path, message));
            (value.to_string(), None)
        }
    }
}

pub(super) fn is_http_url(s: &str) -> bool {
    url::Url::parse(s)
        .map(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
        .unwrap_or(false)
}

/// Reports `value` under `path` unless it is an http(s) URL with a host.
fn check_http_url(path: impl Into<String>, value: &str, errors: &mut RenderErrors) {
    if !is_http_url(value) {
        errors.push(ZotError::invalid(
            path,
            format!("{value:?} is not an http(s) URL"),
        ));
    }
}

fn opt_duration(path: &str, value: &Option<String>, errors: &mut RenderErrors) -> Option<String> {
    value.as_deref().map(|v| duration(path, v, errors).0)
}

/// The spec fields that render into the one catch-all retention policy, with the spec path
/// each comes from.
fn typed_retention_fields(spec: &ZotSpec<'_>) -> Vec<&'static str> {
    let mut fields = Vec::new();
    if spec.untagged.and_then(|u| u.delete).is_some() {
        fields.push("spec.untagged.delete");
    }
    if spec.referrers.and_then(|r| r.delete_orphans).is_some() {
        fields.push("spec.referrers.deleteOrphans");
    }
    fields
}

/// A raw `storage.retention.policies` replaces the rendered list whole (JSON merge patch
/// replaces arrays), which would drop the typed untagged/referrer settings without a word:
/// refuse the combination. Without typed settings the raw list is the whole story and stays.
fn check_raw_retention(spec: &ZotSpec<'_>, raw: &Value, errors: &mut RenderErrors) {
    let raw_policies =
        verify::get_path(raw, "storage.retention.policies").is_some_and(|p| !p.is_null());
    let typed = typed_retention_fields(spec);
    if raw_policies && !typed.is_empty() {
        errors.push(ZotError::invalid(
            "config.storage.retention.policies",
            format!(
                "replaces the retention policy the operator renders from {}, whose settings would be lost: set deleteUntagged/deleteReferrers in your own policies and remove {}",
                typed.join(" and "),
                if typed.len() == 1 { "that field" } else { "those fields" }
            ),
        ));
    }
}

fn build(
    spec: &ZotSpec<'_>,
    wiring: &Wiring,
    version: ZotVersion,
    errors: &mut RenderErrors,
) -> ZotConfig {
    let mut http = http::build_http(spec, version, errors);
    let api_keys = spec.auth.and_then(|a| a.api_keys).unwrap_or(false);
    if api_keys && spec.s3().is_some() && spec.cache().is_none() {
        errors.push(ZotError::invalid(
            "http.auth.apikey",
            "API keys live in zot's metadata database, which with S3 and no cache is on the pod's scratch volume: every restart would revoke them, so add storage.s3.cache",
        ));
    }
    if let Some(auth) = http.auth.as_mut() {
        auth.session_driver = storage::shared_sessions(spec, wiring, errors);
    }
    ZotConfig {
        storage: storage::build_storage(spec, wiring, version, errors),
        http,
        log: Some(LogConfig {
            level: extensions::build_log_level(spec, errors),
        }),
        extensions: extensions::build_extensions(spec, errors),
        cluster: extensions::build_cluster(spec, wiring, errors),
    }
}
