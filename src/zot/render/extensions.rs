//! The `extensions` block (sync, search, UI, metrics, scrub), the log level and the cluster
//! membership.

use std::collections::BTreeSet;

use super::check_http_url;
use super::{duration, opt_duration, Wiring};
use crate::api::zot::{SyncRegistry, SyncSpec, ZotSpec};
use crate::zot::config::*;
use crate::zot::error::{RenderErrors, ZotError};
use crate::zot::paths;

pub(super) fn build_log_level(spec: &ZotSpec<'_>, errors: &mut RenderErrors) -> String {
    let level = spec
        .log
        .and_then(|l| l.level)
        .map_or("info", |l| l.as_str());
    if !matches!(level, "debug" | "info" | "warn" | "error") {
        errors.push(ZotError::invalid(
            "log.level",
            format!("{level:?} is not one of debug, info, warn, error"),
        ));
    }
    level.to_string()
}

pub(super) fn build_extensions(
    spec: &ZotSpec<'_>,
    errors: &mut RenderErrors,
) -> Option<ExtensionsConfig> {
    let extensions = spec.extensions.cloned().unwrap_or_default();
    let sync = spec
        .sync
        .map(|s| build_sync(s, spec.s3().is_some(), errors));
    let metrics = extensions.metrics.unwrap_or(false).then(|| MetricsConfig {
        enable: true,
        prometheus: PrometheusConfig {
            path: "/metrics".to_string(),
        },
    });
    let scrub = extensions.scrub.as_ref().map(|s| {
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
        search: extensions
            .search
            .unwrap_or(false)
            .then_some(EnableConfig { enable: true }),
        ui: extensions
            .ui
            .unwrap_or(false)
            .then_some(EnableConfig { enable: true }),
        metrics,
        scrub,
    };
    (ext != ExtensionsConfig::default()).then_some(ext)
}

fn build_sync(sync: &SyncSpec, on_s3: bool, errors: &mut RenderErrors) -> SyncConfig {
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
        .map(|(i, r)| sync_registry(i, r, errors))
        .collect();
    SyncConfig {
        enable: true,
        credentials_file: sync
            .credentials_secret_ref
            .is_some()
            .then(|| paths::SYNC_CREDENTIALS_FILE.to_string()),
        download_dir: on_s3.then(|| paths::SYNC_DOWNLOAD_DIR.to_string()),
        registries,
    }
}

pub(super) fn build_cluster(
    spec: &ZotSpec<'_>,
    wiring: &Wiring,
    errors: &mut RenderErrors,
) -> Option<ClusterConfig> {
    let cluster = wiring.cluster.as_ref()?;
    if spec.s3().is_none() {
        errors.push(ZotError::invalid(
            "cluster",
            "scale-out needs shared storage: every member must see the same S3 bucket",
        ));
    } else if spec.cache().is_none() {
        errors.push(ZotError::invalid(
            "cluster",
            "scale-out needs a shared remote cache (redis or dynamodb) for the metadata database",
        ));
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

/// One upstream registry of the sync extension.
fn sync_registry(i: usize, r: &SyncRegistry, errors: &mut RenderErrors) -> SyncRegistryConfig {
    let path = format!("extensions.sync.registries[{i}]");
    if r.urls.is_empty() {
        errors.push(ZotError::invalid(
            format!("{path}.urls"),
            "needs at least one upstream URL",
        ));
    }
    for url in &r.urls {
        check_http_url(format!("{path}.urls"), url, errors);
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
    let max_retries = r.max_retries.map(i64::from).and_then(|n| {
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
            let any_tags =
                c.tags_regex.is_some() || c.exclude_tags_regex.is_some() || c.semver.is_some();
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
}
