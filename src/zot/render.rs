//! The renderer: [`RenderInput`] + zot release → `config.json`, or every problem found.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::config::*;
use super::error::{RenderErrors, ZotError};
use super::input::*;
use super::keys::{self, KeyStatus};
use super::merge::merge;
use super::verify;
use super::version::ZotVersion;
use crate::duration::{parse_go_duration, GoDuration};

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
pub fn render(input: &RenderInput, version: ZotVersion) -> Result<RenderedConfig, RenderErrors> {
    if !version.is_supported() {
        return Err(ZotError::UnsupportedVersion {
            version: version.to_string(),
        }
        .into());
    }
    let mut errors = RenderErrors::default();
    let typed = build(input, version, &mut errors);
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
    if let Some(raw) = &input.raw {
        check_raw_retention(input, raw, &mut errors);
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

fn opt_duration(path: &str, value: &Option<String>, errors: &mut RenderErrors) -> Option<String> {
    value.as_deref().map(|v| duration(path, v, errors).0)
}

fn build(input: &RenderInput, version: ZotVersion, errors: &mut RenderErrors) -> ZotConfig {
    let mut http = build_http(&input.http, version, errors);
    if input.http.api_keys
        && matches!(
            &input.storage,
            StorageInput::S3(S3Input { cache: None, .. })
        )
    {
        errors.push(ZotError::invalid(
            "http.auth.apikey",
            "API keys live in zot's metadata database, which with S3 and no cache is on the pod's scratch volume: every restart would revoke them, so add storage.s3.cache",
        ));
    }
    if let Some(auth) = http.auth.as_mut() {
        auth.session_driver = shared_sessions(input, errors);
    }
    ZotConfig {
        storage: build_storage(input, version, errors),
        http,
        log: Some(LogConfig {
            level: build_log_level(input.log_level.as_deref(), errors),
        }),
        extensions: build_extensions(input, errors),
        cluster: build_cluster(input, errors),
    }
}

fn build_storage(
    input: &RenderInput,
    version: ZotVersion,
    errors: &mut RenderErrors,
) -> StorageConfig {
    let gc = &input.gc;
    let gc_on = gc.enabled != Some(false);
    let mut storage = StorageConfig {
        root_directory: paths::ROOT_DIRECTORY.to_string(),
        dedupe: input.dedupe,
        gc: gc.enabled,
        ..StorageConfig::default()
    };

    if let Some(v) = &gc.interval {
        let (text, _) = duration("storage.gcInterval", v, errors);
        storage.gc_interval = Some(text);
    }
    if let Some(v) = &gc.delay {
        let (text, parsed) = duration("storage.gcDelay", v, errors);
        if parsed.is_some_and(|d| d.0.is_zero()) && gc_on {
            errors.push(ZotError::invalid(
                "storage.gcDelay",
                "must be more than 0s: with no delay GC deletes the blobs of pushes still in progress",
            ));
        }
        storage.gc_delay = Some(text);
    }
    if let Some(window) = &gc.time_window {
        if version < GC_TIME_WINDOW_SINCE {
            errors.push(ZotError::FeatureUnavailable {
                feature: "gcTimeWindow (spec.gc.timeWindow)".to_string(),
                min: GC_TIME_WINDOW_SINCE,
                version,
            });
        } else {
            if let Err(message) = check_time_window(window) {
                errors.push(ZotError::invalid("storage.gcTimeWindow", message));
            }
            storage.gc_time_window = Some(window.clone());
        }
    }
    if !gc_on {
        for (set, key) in [
            (gc.interval.is_some(), "storage.gcInterval"),
            (gc.delay.is_some(), "storage.gcDelay"),
            (gc.time_window.is_some(), "storage.gcTimeWindow"),
        ] {
            if set {
                errors.push(ZotError::invalid(
                    key,
                    "is set while gc is disabled; zot would ignore it (enable gc or remove it)",
                ));
            }
        }
    }

    // Untagged and referrer cleanup: one catch-all retention policy that keeps every tag.
    let untagged = &input.untagged;
    let wants_cleanup = untagged.delete.is_some()
        || untagged.delay.is_some()
        || input.delete_orphan_referrers.is_some();
    if wants_cleanup {
        if !gc_on
            && (untagged.delete == Some(true)
                || untagged.delay.is_some()
                || input.delete_orphan_referrers == Some(true))
        {
            errors.push(ZotError::invalid(
                "storage.retention",
                "untagged and referrer cleanup only run inside garbage collection, which is disabled",
            ));
        }
        let delay = opt_duration("storage.retention.delay", &untagged.delay, errors);
        storage.retention = Some(RetentionConfig {
            delay,
            policies: vec![RetentionPolicyConfig {
                repositories: vec!["**".to_string()],
                delete_referrers: input.delete_orphan_referrers,
                delete_untagged: untagged.delete,
            }],
        });
    }

    match &input.storage {
        StorageInput::Local => {}
        StorageInput::S3(s3) => {
            check_s3(s3, errors);
            let mut driver = driver_map([
                ("name", json!("s3")),
                ("region", json!(s3.region)),
                ("bucket", json!(s3.bucket)),
                (
                    "rootdirectory",
                    json!(s3.root_directory.as_deref().unwrap_or("/zot")),
                ),
            ]);
            if let Some(endpoint) = &s3.endpoint {
                driver.insert("regionendpoint".into(), json!(endpoint));
                // Path-style addressing is what S3-compatible services expect; zot would set it
                // itself with a deprecation warning.
                driver.insert("forcepathstyle".into(), json!(true));
            }
            storage.storage_driver = Some(driver);
            match &s3.cache {
                Some(cache) => {
                    storage.remote_cache = Some(true);
                    storage.cache_driver = Some(cache_driver(cache, errors));
                }
                None => {
                    storage.remote_cache = Some(false);
                    if input.dedupe != Some(false) {
                        errors.push(ZotError::invalid(
                            "storage.dedupe",
                            "dedupe on S3 needs a remote cache (storage.s3.cache); without one a lost local cache can destroy blobs, so add a cache or set dedupe: false",
                        ));
                    }
                }
            }
        }
    }
    storage
}

/// UI logins keep a session; behind a cluster's Service each request may land on another
/// member, so the members must share sessions, which zot can keep in Redis.
fn shared_sessions(
    input: &RenderInput,
    errors: &mut RenderErrors,
) -> Option<BTreeMap<String, Value>> {
    let password_logins = input.http.htpasswd || input.http.ldap.is_some();
    let browser_logins = (input.ui && password_logins) || input.http.openid.is_some();
    if input.cluster.is_none() || !browser_logins {
        return None;
    }
    match &input.storage {
        StorageInput::S3(S3Input {
            cache: Some(CacheInput::Redis { url, key_prefix }),
            ..
        }) => Some(driver_map([
            ("name", json!("redis")),
            ("url", json!(url)),
            (
                "keyprefix",
                json!(format!("{}session", key_prefix.as_deref().unwrap_or("zot"))),
            ),
        ])),
        _ => {
            errors.push(ZotError::invalid(
                "http.auth.sessionDriver",
                "UI and OpenID logins across several replicas need shared sessions, which need a redis cache",
            ));
            None
        }
    }
}

fn check_time_window(window: &str) -> Result<(), String> {
    let parse = |hhmm: &str| -> Option<u32> {
        let (h, m) = hhmm.split_once(':')?;
        if h.len() != 2 || m.len() != 2 {
            return None;
        }
        let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
        (h < 24 && m < 60).then_some(h * 60 + m)
    };
    let bad = || format!("{window:?} is not a UTC window HH:MM-HH:MM");
    let (start, end) = window.split_once('-').ok_or_else(bad)?;
    let (start, end) = (parse(start).ok_or_else(bad)?, parse(end).ok_or_else(bad)?);
    if start == end {
        return Err(format!("{window:?} starts and ends at the same time"));
    }
    Ok(())
}

fn check_s3(s3: &S3Input, errors: &mut RenderErrors) {
    let bucket_ok = (3..=63).contains(&s3.bucket.len())
        && s3
            .bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && s3.bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s3.bucket.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !bucket_ok {
        errors.push(ZotError::invalid(
            "storage.storageDriver.bucket",
            format!(
                "{:?} is not an S3 bucket name (3-63 lower-case letters, digits, dots, hyphens)",
                s3.bucket
            ),
        ));
    }
    if s3.region.trim().is_empty() {
        errors.push(ZotError::invalid(
            "storage.storageDriver.region",
            "must not be empty",
        ));
    }
    if let Some(endpoint) = &s3.endpoint {
        if !is_http_url(endpoint) {
            errors.push(ZotError::invalid(
                "storage.storageDriver.regionendpoint",
                format!("{endpoint:?} is not an http(s) URL"),
            ));
        }
    }
    if let Some(root) = &s3.root_directory {
        if !root.starts_with('/') {
            errors.push(ZotError::invalid(
                "storage.storageDriver.rootdirectory",
                format!("{root:?} must start with /"),
            ));
        }
    }
}

fn is_http_url(s: &str) -> bool {
    url::Url::parse(s)
        .map(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
        .unwrap_or(false)
}

fn cache_driver(cache: &CacheInput, errors: &mut RenderErrors) -> BTreeMap<String, Value> {
    match cache {
        CacheInput::Redis { url, key_prefix } => {
            let ok = url::Url::parse(url)
                .map(|u| matches!(u.scheme(), "redis" | "rediss"))
                .unwrap_or(false);
            if !ok {
                errors.push(ZotError::invalid(
                    "storage.cacheDriver.url",
                    format!("{url:?} is not a redis:// or rediss:// URL"),
                ));
            }
            let mut map = driver_map([("name", json!("redis")), ("url", json!(url))]);
            if let Some(prefix) = key_prefix {
                map.insert("keyprefix".into(), json!(prefix));
            }
            map
        }
        CacheInput::DynamoDb {
            region,
            endpoint,
            table_prefix,
        } => {
            if region.trim().is_empty() {
                errors.push(ZotError::invalid(
                    "storage.cacheDriver.region",
                    "must not be empty",
                ));
            }
            let prefix_ok = (3..=200).contains(&table_prefix.len())
                && table_prefix
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
            if !prefix_ok {
                errors.push(ZotError::invalid(
                    "storage.cacheDriver.cachetablename",
                    format!(
                        "table prefix {table_prefix:?} must be 3-200 of letters, digits, _ - ."
                    ),
                ));
            }
            let table = |purpose: &str| json!(format!("{table_prefix}-{purpose}"));
            let mut map = driver_map([
                ("name", json!("dynamodb")),
                ("region", json!(region)),
                ("cachetablename", table("blobs")),
                ("repometatablename", table("repometa")),
                ("repoblobsinfotablename", table("repoblobsinfo")),
                ("imagemetatablename", table("imagemeta")),
                ("apikeytablename", table("apikeys")),
                ("versiontablename", table("version")),
                ("userdatatablename", table("userdata")),
            ]);
            // zot reads `endpoint` with no default and exits at start without it.
            let endpoint = match endpoint {
                Some(endpoint) => {
                    if !is_http_url(endpoint) {
                        errors.push(ZotError::invalid(
                            "storage.cacheDriver.endpoint",
                            format!("{endpoint:?} is not an http(s) URL"),
                        ));
                    }
                    endpoint.clone()
                }
                None => aws_dynamodb_endpoint(region),
            };
            map.insert("endpoint".into(), json!(endpoint));
            map
        }
    }
}

/// The spec fields that render into the one catch-all retention policy, with the spec path
/// each comes from.
fn typed_retention_fields(input: &RenderInput) -> Vec<&'static str> {
    let mut fields = Vec::new();
    if input.untagged.delete.is_some() {
        fields.push("spec.untagged.delete");
    }
    if input.delete_orphan_referrers.is_some() {
        fields.push("spec.referrers.deleteOrphans");
    }
    fields
}

/// A raw `storage.retention.policies` replaces the rendered list whole (JSON merge patch
/// replaces arrays), which would drop the typed untagged/referrer settings without a word:
/// refuse the combination. Without typed settings the raw list is the whole story and stays.
fn check_raw_retention(input: &RenderInput, raw: &Value, errors: &mut RenderErrors) {
    let raw_policies =
        verify::get_path(raw, "storage.retention.policies").is_some_and(|p| !p.is_null());
    let typed = typed_retention_fields(input);
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

/// The public AWS endpoint of DynamoDB in a region (`.amazonaws.com.cn` in the China regions).
pub fn aws_dynamodb_endpoint(region: &str) -> String {
    let region = region.trim();
    let suffix = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    format!("https://dynamodb.{region}.{suffix}")
}

fn build_http(http: &HttpInput, version: ZotVersion, errors: &mut RenderErrors) -> HttpConfig {
    if let Some(realm) = &http.realm {
        if realm.is_empty() || realm.contains(['"', '\\']) || realm.chars().any(char::is_control) {
            errors.push(ZotError::invalid(
                "http.realm",
                format!("{realm:?} must be non-empty, without quotes, backslashes or control characters"),
            ));
        }
    }
    if http.tls_client_ca && !http.tls {
        errors.push(ZotError::invalid(
            "http.tls.cacert",
            "client certificate verification needs TLS",
        ));
    }
    let fail_delay = http.fail_delay_seconds.and_then(|d| {
        if (0..=60).contains(&d) {
            u32::try_from(d).ok()
        } else {
            errors.push(ZotError::invalid(
                "http.auth.failDelay",
                format!("must be between 0 and 60 seconds, got {d}"),
            ));
            None
        }
    });
    let mtls = http
        .mtls
        .as_ref()
        .and_then(|m| build_mtls(m, http, version, errors));
    let ldap = http.ldap.as_ref().map(|l| build_ldap(l, errors));
    let bearer = http
        .bearer
        .as_ref()
        .map(|b| build_bearer(b, version, errors));
    let openid = http
        .openid
        .as_ref()
        .map(|o| build_openid(o, version, errors));
    let any_auth = http.htpasswd
        || fail_delay.is_some()
        || mtls.is_some()
        || ldap.is_some()
        || bearer.is_some()
        || openid.is_some()
        || http.api_keys;
    let auth = any_auth.then(|| AuthConfig {
        htpasswd: http.htpasswd.then(|| HtpasswdConfig {
            path: paths::HTPASSWD_FILE.to_string(),
        }),
        ldap,
        bearer,
        openid,
        apikey: http.api_keys.then_some(true),
        mtls,
        fail_delay,
        session_driver: None,
    });
    if fail_delay.is_some() && !http.htpasswd && http.ldap.is_none() {
        errors.push(ZotError::invalid(
            "http.auth.failDelay",
            "only applies to password logins: configure htpasswd or LDAP authentication",
        ));
    }
    if http.api_keys && !http.htpasswd && http.ldap.is_none() && http.openid.is_none() {
        errors.push(ZotError::invalid(
            "http.auth.apikey",
            "API keys are created by a signed-in user: add htpasswd, LDAP or OpenID sign-in",
        ));
    }
    let mut timeouts = [
        (
            "http.readTimeout",
            "readTimeout (spec.http.readTimeout)",
            &http.read_timeout,
        ),
        (
            "http.writeTimeout",
            "writeTimeout (spec.http.writeTimeout)",
            &http.write_timeout,
        ),
    ]
    .map(|(key, feature, value)| {
        if version < HTTP_TIMEOUTS_SINCE {
            if value.is_some() {
                errors.push(ZotError::FeatureUnavailable {
                    feature: feature.to_string(),
                    min: HTTP_TIMEOUTS_SINCE,
                    version,
                });
            }
            return None;
        }
        Some(match value {
            Some(v) => duration(key, v, errors).0,
            None => DEFAULT_HTTP_TIMEOUT.to_string(),
        })
    });
    let compat = if http.docker_compat == Some(false) {
        Vec::new()
    } else {
        vec![DOCKER_COMPAT.to_string()]
    };
    let external_url = http.openid.as_ref().and_then(|o| o.external_url.clone());
    if let Some(url) = &external_url {
        if !is_http_url(url) {
            errors.push(ZotError::invalid(
                "http.externalURL",
                format!("{url:?} is not an http(s) URL"),
            ));
        }
    }
    HttpConfig {
        address: "0.0.0.0".to_string(),
        port: ZOT_PORT.to_string(),
        external_url,
        realm: http.realm.clone(),
        read_timeout: timeouts[0].take(),
        write_timeout: timeouts[1].take(),
        compat,
        tls: http.tls.then(|| TlsConfig {
            cert: paths::TLS_CERT.to_string(),
            key: paths::TLS_KEY.to_string(),
            cacert: http.tls_client_ca.then(|| paths::TLS_CA.to_string()),
        }),
        auth,
        access_control: http
            .access_control
            .as_ref()
            .map(|ac| build_access_control(ac, errors)),
    }
}

/// First release accepting `http.auth.mtls` (identity attributes of client certificates).
pub const MTLS_IDENTITY_SINCE: ZotVersion = ZotVersion::new(2, 1, 12);
/// First release accepting bearer OIDC workload identity (`http.auth.bearer.oidc`).
pub const BEARER_OIDC_SINCE: ZotVersion = ZotVersion::new(2, 1, 14);
/// First release accepting a CA file for a bearer OIDC issuer.
pub const BEARER_OIDC_CA_SINCE: ZotVersion = ZotVersion::new(2, 1, 15);
/// First release accepting `claimMapping.groups` of an OpenID provider.
pub const OPENID_GROUPS_CLAIM_SINCE: ZotVersion = ZotVersion::new(2, 1, 17);

fn unavailable(feature: &str, min: ZotVersion, version: ZotVersion) -> ZotError {
    ZotError::FeatureUnavailable {
        feature: feature.to_string(),
        min,
        version,
    }
}

fn build_mtls(
    mtls: &MtlsInput,
    http: &HttpInput,
    version: ZotVersion,
    errors: &mut RenderErrors,
) -> Option<MtlsConfig> {
    if !http.tls_client_ca {
        errors.push(ZotError::invalid(
            "http.auth.mtls",
            "client-certificate identities need a client CA (spec.auth.mtls.clientCaSecretRef)",
        ));
    }
    if mtls.identity_attributes.is_empty() && mtls.uri_san_pattern.is_none() {
        return None;
    }
    if version < MTLS_IDENTITY_SINCE {
        errors.push(unavailable(
            "client-certificate identity (spec.auth.mtls.identityAttributes, uriSanPattern)",
            MTLS_IDENTITY_SINCE,
            version,
        ));
        return None;
    }
    Some(MtlsConfig {
        identity_attributes: mtls.identity_attributes.clone(),
        uri_san_pattern: mtls.uri_san_pattern.clone(),
    })
}

fn build_ldap(ldap: &LdapInput, errors: &mut RenderErrors) -> LdapConfig {
    for (key, value) in [
        ("address", &ldap.address),
        ("baseDN", &ldap.base_dn),
        ("userAttribute", &ldap.user_attribute),
    ] {
        if value.trim().is_empty() {
            errors.push(ZotError::invalid(
                format!("http.auth.ldap.{key}"),
                "must not be empty",
            ));
        }
    }
    if let Some(port) = ldap.port {
        if !(1..=65535).contains(&port) {
            errors.push(ZotError::invalid(
                "http.auth.ldap.port",
                format!("must be 1-65535, got {port}"),
            ));
        }
    }
    if ldap.ca && ldap.tls == LdapTlsInput::None {
        errors.push(ZotError::invalid(
            "http.auth.ldap.caCert",
            "a CA verifies a TLS connection, but tls is None: use LDAPS or StartTLS",
        ));
    }
    LdapConfig {
        address: ldap.address.clone(),
        port: ldap.port,
        insecure: (ldap.tls == LdapTlsInput::None).then_some(true),
        start_tls: (ldap.tls == LdapTlsInput::StartTls).then_some(true),
        skip_verify: ldap.skip_verify,
        ca_cert: ldap.ca.then(|| paths::LDAP_CA.to_string()),
        base_dn: ldap.base_dn.clone(),
        user_attribute: ldap.user_attribute.clone(),
        user_filter: ldap.user_filter.clone(),
        user_group_attribute: ldap.user_group_attribute.clone(),
        subtree_search: ldap.subtree_search,
        credentials_file: ldap
            .credentials_file
            .then(|| paths::LDAP_CREDENTIALS_FILE.to_string()),
    }
}

fn build_bearer(
    bearer: &BearerInput,
    version: ZotVersion,
    errors: &mut RenderErrors,
) -> BearerConfig {
    let server = [
        bearer.realm.is_some(),
        bearer.service.is_some(),
        bearer.cert,
    ];
    if server.iter().any(|s| *s) && !server.iter().all(|s| *s) {
        errors.push(ZotError::invalid(
            "http.auth.bearer",
            "a token server needs realm, service and the certificate (certSecretRef) together",
        ));
    }
    if !server.iter().any(|s| *s) && bearer.oidc.is_empty() {
        errors.push(ZotError::invalid(
            "http.auth.bearer",
            "set a token server (realm, service, certSecretRef) or at least one oidc issuer",
        ));
    }
    if let Some(realm) = &bearer.realm {
        if !is_http_url(realm) {
            errors.push(ZotError::invalid(
                "http.auth.bearer.realm",
                format!("{realm:?} is not an http(s) URL"),
            ));
        }
    }
    let mut oidc = Vec::new();
    if !bearer.oidc.is_empty() && version < BEARER_OIDC_SINCE {
        errors.push(unavailable(
            "bearer OIDC workload identity (spec.auth.bearer.oidc)",
            BEARER_OIDC_SINCE,
            version,
        ));
    } else {
        for (i, o) in bearer.oidc.iter().enumerate() {
            let path = format!("http.auth.bearer.oidc[{i}]");
            if !is_http_url(&o.issuer) {
                errors.push(ZotError::invalid(
                    format!("{path}.issuer"),
                    format!("{:?} is not an http(s) URL", o.issuer),
                ));
            }
            if o.audiences.iter().all(|a| a.trim().is_empty()) {
                errors.push(ZotError::invalid(
                    format!("{path}.audiences"),
                    "needs at least one audience",
                ));
            }
            if o.ca && version < BEARER_OIDC_CA_SINCE {
                errors.push(unavailable(
                    "a CA for a bearer OIDC issuer (spec.auth.bearer.oidc[].caSecretRef)",
                    BEARER_OIDC_CA_SINCE,
                    version,
                ));
            }
            oidc.push(BearerOidcConfig {
                issuer: o.issuer.clone(),
                audiences: o.audiences.clone(),
                claim_mapping: o.username_expression.clone().map(|username| {
                    BearerClaimMappingConfig {
                        username: Some(username),
                    }
                }),
                certificate_authority_file: (o.ca && version >= BEARER_OIDC_CA_SINCE)
                    .then(|| paths::bearer_oidc_ca(i)),
            });
        }
    }
    BearerConfig {
        realm: bearer.realm.clone(),
        service: bearer.service.clone(),
        cert: bearer.cert.then(|| paths::BEARER_CERT.to_string()),
        oidc,
    }
}

fn build_openid(
    openid: &OpenIdInput,
    version: ZotVersion,
    errors: &mut RenderErrors,
) -> OpenIdConfig {
    let mut providers = BTreeMap::new();
    if openid.providers.is_empty() {
        errors.push(ZotError::invalid(
            "http.auth.openid.providers",
            "needs at least one provider",
        ));
    }
    for p in &openid.providers {
        let path = format!("http.auth.openid.providers.{}", p.kind);
        if providers.contains_key(&p.kind) {
            errors.push(ZotError::invalid(
                &path,
                "is listed twice: zot takes one provider of each kind",
            ));
            continue;
        }
        let oauth2 = verify::OAUTH2_PROVIDERS.contains(&p.kind.as_str());
        match (&p.issuer, oauth2) {
            (None, false) => errors.push(ZotError::invalid(
                format!("{path}.issuer"),
                "is required for an OpenID Connect provider",
            )),
            (Some(_), true) => errors.push(ZotError::invalid(
                format!("{path}.issuer"),
                "github signs in through OAuth2 and has no issuer",
            )),
            (Some(issuer), false) if !is_http_url(issuer) => errors.push(ZotError::invalid(
                format!("{path}.issuer"),
                format!("{issuer:?} is not an http(s) URL"),
            )),
            _ => {}
        }
        if p.groups_claim.is_some() && version < OPENID_GROUPS_CLAIM_SINCE {
            errors.push(unavailable(
                "an OpenID groups claim (spec.auth.openid.providers[].groupsClaim)",
                OPENID_GROUPS_CLAIM_SINCE,
                version,
            ));
        }
        let groups = p
            .groups_claim
            .clone()
            .filter(|_| version >= OPENID_GROUPS_CLAIM_SINCE);
        let claim_mapping =
            (p.username_claim.is_some() || groups.is_some()).then(|| OpenIdClaimMappingConfig {
                username: p.username_claim.clone(),
                groups,
            });
        providers.insert(
            p.kind.clone(),
            OpenIdProviderConfig {
                credentials_file: paths::openid_credentials_file(&p.kind),
                name: p.name.clone(),
                issuer: p.issuer.clone(),
                scopes: p.scopes.clone(),
                claim_mapping,
            },
        );
    }
    OpenIdConfig { providers }
}

fn build_access_control(ac: &AccessControlInput, errors: &mut RenderErrors) -> AccessControlConfig {
    let mut repositories = BTreeMap::new();
    for (i, repo) in ac.repositories.iter().enumerate() {
        let path = format!("http.accessControl.repositories[{i}]");
        if repo.pattern != repo.pattern.to_ascii_lowercase() {
            errors.push(ZotError::invalid(
                &path,
                format!("glob {:?} must be lower-case: zot lower-cases it and repository names are lower-case", repo.pattern),
            ));
        }
        if repositories.contains_key(&repo.pattern.to_ascii_lowercase()) {
            errors.push(ZotError::invalid(
                &path,
                format!("glob {:?} is listed twice", repo.pattern),
            ));
        }
        for (j, p) in repo.policies.iter().enumerate() {
            if (p.users.is_empty() && p.groups.is_empty()) || p.actions.is_empty() {
                errors.push(ZotError::invalid(
                    format!("{path}.policies[{j}]"),
                    "needs at least one user or group and one action",
                ));
            }
        }
        repositories.insert(
            repo.pattern.to_ascii_lowercase(),
            RepositoryPolicyConfig {
                policies: repo
                    .policies
                    .iter()
                    .map(|p| UsersActionsConfig {
                        users: p.users.clone(),
                        groups: p.groups.clone(),
                        actions: p.actions.clone(),
                    })
                    .collect(),
                default_policy: repo.default_policy.clone(),
                anonymous_policy: repo.anonymous_policy.clone(),
            },
        );
    }
    AccessControlConfig {
        repositories,
        admin_policy: (!ac.admin_users.is_empty() || !ac.admin_groups.is_empty()).then(|| {
            UsersActionsConfig {
                users: ac.admin_users.clone(),
                groups: ac.admin_groups.clone(),
                actions: ["read", "create", "update", "delete"]
                    .map(String::from)
                    .to_vec(),
            }
        }),
        metrics: (!ac.metrics_users.is_empty()).then(|| MetricsAccessConfig {
            users: ac.metrics_users.clone(),
        }),
    }
}

fn build_log_level(level: Option<&str>, errors: &mut RenderErrors) -> String {
    let level = level.unwrap_or("info");
    if !matches!(level, "debug" | "info" | "warn" | "error") {
        errors.push(ZotError::invalid(
            "log.level",
            format!("{level:?} is not one of debug, info, warn, error"),
        ));
    }
    level.to_string()
}

fn build_extensions(input: &RenderInput, errors: &mut RenderErrors) -> Option<ExtensionsConfig> {
    let sync = input
        .sync
        .as_ref()
        .map(|s| build_sync(s, &input.storage, errors));
    let metrics = input.metrics.as_ref().map(|m| MetricsConfig {
        enable: true,
        prometheus: PrometheusConfig {
            path: m.path.clone().unwrap_or_else(|| "/metrics".to_string()),
        },
    });
    let scrub = input.scrub.as_ref().map(|s| {
        let interval = s.interval.as_deref().map(|v| {
            let (text, parsed) = duration("extensions.scrub.interval", v, errors);
            if parsed.is_some_and(|d| d.0.as_secs() < 2 * 3600) {
                errors.push(ZotError::invalid(
                    "extensions.scrub.interval",
                    format!("must be at least 2h (zot raises shorter intervals), got {v:?}"),
                ));
            }
            text
        });
        ScrubConfig {
            enable: true,
            interval,
        }
    });
    let ext = ExtensionsConfig {
        sync,
        search: input.search.then_some(EnableConfig { enable: true }),
        ui: input.ui.then_some(EnableConfig { enable: true }),
        metrics,
        scrub,
    };
    (ext != ExtensionsConfig::default()).then_some(ext)
}

fn build_sync(sync: &SyncInput, storage: &StorageInput, errors: &mut RenderErrors) -> SyncConfig {
    if sync.registries.is_empty() {
        errors.push(ZotError::invalid(
            "extensions.sync.registries",
            "needs at least one upstream registry",
        ));
    }
    let registries = sync
        .registries
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let path = format!("extensions.sync.registries[{i}]");
            if r.urls.is_empty() {
                errors.push(ZotError::invalid(format!("{path}.urls"), "needs at least one upstream URL"));
            }
            for url in &r.urls {
                if !is_http_url(url) {
                    errors.push(ZotError::invalid(
                        format!("{path}.urls"),
                        format!("{url:?} is not an http(s) URL"),
                    ));
                }
            }
            let poll = r.poll_interval.as_deref().map(|v| {
                let (text, parsed) = duration(&format!("{path}.pollInterval"), v, errors);
                if parsed.is_some_and(|d| d.0.is_zero()) {
                    errors.push(ZotError::invalid(
                        format!("{path}.pollInterval"),
                        "0s never runs the periodic sync; remove it or give a period",
                    ));
                }
                text
            });
            let periodic = r.poll_interval.is_some() && !r.content.is_empty();
            if r.on_demand != Some(true) && !periodic {
                errors.push(ZotError::invalid(
                    path.clone(),
                    "mirrors nothing: set onDemand: true, or pollInterval with at least one content entry",
                ));
            } else if r.poll_interval.is_some() && r.content.is_empty() {
                errors.push(ZotError::invalid(
                    format!("{path}.pollInterval"),
                    "periodic sync needs at least one content entry",
                ));
            }
            let max_retries = r.max_retries.and_then(|n| {
                if n < 0 {
                    errors.push(ZotError::invalid(
                        format!("{path}.maxRetries"),
                        format!("must not be negative, got {n}"),
                    ));
                }
                u32::try_from(n).ok()
            });
            let retry_delay = opt_duration(&format!("{path}.retryDelay"), &r.retry_delay, errors);
            let content = r
                .content
                .iter()
                .map(|c| {
                    let any_tags = c.tags_regex.is_some() || c.exclude_tags_regex.is_some() || c.semver.is_some();
                    SyncContentConfig {
                        prefix: c.prefix.clone(),
                        tags: any_tags.then(|| SyncTagsConfig {
                            regex: c.tags_regex.clone(),
                            exclude_regex: c.exclude_tags_regex.clone(),
                            semver: c.semver,
                        }),
                        destination: c.destination.clone(),
                        strip_prefix: c.strip_prefix,
                    }
                })
                .collect();
            SyncRegistryConfig {
                urls: r.urls.clone(),
                on_demand: r.on_demand,
                poll_interval: poll,
                tls_verify: r.tls_verify,
                content,
                max_retries,
                retry_delay,
                only_signed: r.only_signed,
            }
        })
        .collect();
    SyncConfig {
        enable: true,
        credentials_file: sync
            .credentials_file
            .then(|| paths::SYNC_CREDENTIALS_FILE.to_string()),
        download_dir: matches!(storage, StorageInput::S3(_))
            .then(|| paths::SYNC_DOWNLOAD_DIR.to_string()),
        registries,
    }
}

fn build_cluster(input: &RenderInput, errors: &mut RenderErrors) -> Option<ClusterConfig> {
    let cluster = input.cluster.as_ref()?;
    match &input.storage {
        StorageInput::Local => errors.push(ZotError::invalid(
            "cluster",
            "scale-out needs shared storage: every member must see the same S3 bucket",
        )),
        StorageInput::S3(s3) if s3.cache.is_none() => errors.push(ZotError::invalid(
            "cluster",
            "scale-out needs a shared remote cache (redis or dynamodb) for the metadata database",
        )),
        StorageInput::S3(_) => {}
    }
    let mut seen = BTreeSet::new();
    for m in &cluster.members {
        if !seen.insert(m) {
            errors.push(ZotError::invalid(
                "cluster.members",
                format!("{m:?} is listed twice"),
            ));
        }
    }
    Some(ClusterConfig {
        members: cluster.members.clone(),
        hash_key: cluster.hash_key.clone(),
    })
}
