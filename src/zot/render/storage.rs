//! The `storage` block: garbage collection, untagged and referrer cleanup, the S3 driver and
//! its remote cache; and the shared UI sessions a cluster keeps in that cache.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::{check_http_url, duration, opt_duration, Wiring, GC_TIME_WINDOW_SINCE};
use crate::api::zot::{Cache, GcSpec, S3Storage, ZotSpec};
use crate::zot::config::{RetentionConfig, RetentionPolicyConfig, StorageConfig};
use crate::zot::error::{RenderErrors, ZotError};
use crate::zot::paths;
use crate::zot::version::ZotVersion;

/// Builds a map from pairs; a helper for free-form driver maps.
fn driver_map<I>(pairs: I) -> BTreeMap<String, Value>
where
    I: IntoIterator<Item = (&'static str, Value)>,
{
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

pub(super) fn build_storage(
    spec: &ZotSpec<'_>,
    wiring: &Wiring,
    version: ZotVersion,
    errors: &mut RenderErrors,
) -> StorageConfig {
    let gc = spec.gc.cloned().unwrap_or_default();
    let mut storage = StorageConfig {
        root_directory: paths::ROOT_DIRECTORY.to_string(),
        dedupe: spec.dedupe,
        gc: gc.enabled,
        ..StorageConfig::default()
    };
    build_gc(&gc, version, &mut storage, errors);
    storage.retention = build_cleanup(spec, gc.enabled != Some(false), errors);
    if let Some(s3) = spec.s3() {
        build_s3(spec, s3, wiring, &mut storage, errors);
    }
    storage
}

fn build_gc(
    gc: &GcSpec,
    version: ZotVersion,
    storage: &mut StorageConfig,
    errors: &mut RenderErrors,
) {
    let gc_on = gc.enabled != Some(false);
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
}

/// Untagged and referrer cleanup: one catch-all retention policy that keeps every tag.
fn build_cleanup(
    spec: &ZotSpec<'_>,
    gc_on: bool,
    errors: &mut RenderErrors,
) -> Option<RetentionConfig> {
    let untagged = spec.untagged.cloned().unwrap_or_default();
    let delete_referrers = spec.referrers.and_then(|r| r.delete_orphans);
    let wants_cleanup =
        untagged.delete.is_some() || untagged.delay.is_some() || delete_referrers.is_some();
    if !wants_cleanup {
        return None;
    }
    if !gc_on
        && (untagged.delete == Some(true)
            || untagged.delay.is_some()
            || delete_referrers == Some(true))
    {
        errors.push(ZotError::invalid(
            "storage.retention",
            "untagged and referrer cleanup only run inside garbage collection, which is disabled",
        ));
    }
    let delay = opt_duration("storage.retention.delay", &untagged.delay, errors);
    Some(RetentionConfig {
        delay,
        policies: vec![RetentionPolicyConfig {
            repositories: vec!["**".to_string()],
            delete_referrers,
            delete_untagged: untagged.delete,
        }],
    })
}

fn build_s3(
    spec: &ZotSpec<'_>,
    s3: &S3Storage,
    wiring: &Wiring,
    storage: &mut StorageConfig,
    errors: &mut RenderErrors,
) {
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
    match spec.cache() {
        Some(cache) => {
            storage.remote_cache = Some(true);
            storage.cache_driver = Some(cache_driver(cache, wiring, errors));
        }
        None => {
            storage.remote_cache = Some(false);
            if spec.dedupe != Some(false) {
                errors.push(ZotError::invalid(
                    "storage.dedupe",
                    "dedupe on S3 needs a remote cache (storage.s3.cache); without one a lost local cache can destroy blobs, so add a cache or set dedupe: false",
                ));
            }
        }
    }
}

/// UI logins keep a session; behind a cluster's Service each request may land on another
/// member, so the members must share sessions, which zot can keep in Redis.
pub(super) fn shared_sessions(
    spec: &ZotSpec<'_>,
    wiring: &Wiring,
    errors: &mut RenderErrors,
) -> Option<BTreeMap<String, Value>> {
    let auth = spec.auth.cloned().unwrap_or_default();
    let password_logins = auth.htpasswd_secret_ref.is_some() || auth.ldap.is_some();
    let ui = spec.extensions.and_then(|e| e.ui).unwrap_or(false);
    let browser_logins = (ui && password_logins) || auth.openid.is_some();
    if wiring.cluster.is_none() || !browser_logins {
        return None;
    }
    match spec.cache() {
        Some(Cache::Redis(redis)) => Some(driver_map([
            ("name", json!("redis")),
            ("url", json!(redis.url)),
            (
                "keyprefix",
                json!(format!(
                    "{}session",
                    redis.key_prefix.as_deref().unwrap_or("zot")
                )),
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

fn check_s3(s3: &S3Storage, errors: &mut RenderErrors) {
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
        check_http_url("storage.storageDriver.regionendpoint", endpoint, errors);
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

fn cache_driver(
    cache: Cache<'_>,
    wiring: &Wiring,
    errors: &mut RenderErrors,
) -> BTreeMap<String, Value> {
    match cache {
        Cache::Redis(redis) => {
            let (url, key_prefix) = (&redis.url, &redis.key_prefix);
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
        Cache::DynamoDb(dynamo) => {
            let (region, endpoint) = (&dynamo.region, &dynamo.endpoint);
            let table_prefix = dynamo
                .table_prefix
                .as_deref()
                .unwrap_or(&wiring.registry_name);
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
                    check_http_url("storage.cacheDriver.endpoint", endpoint, errors);
                    endpoint.clone()
                }
                None => aws_dynamodb_endpoint(region),
            };
            map.insert("endpoint".into(), json!(endpoint));
            map
        }
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
