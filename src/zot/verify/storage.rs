//! zot's verify rules of the `storage` block and its subpaths: drivers, caches, GC and
//! retention.

use serde_json::Value;

use super::{extension_enabled, get, get_path, non_empty, truthy, Checker};
use crate::zot::error::ZotError;
use crate::zot::keys::STORAGE_DRIVERS;
use crate::zot::version::ZotVersion;

/// The stores of a config: the default store and every subpath, with their key path.
fn stores(config: &Value) -> Vec<(String, &Value)> {
    let mut out = Vec::new();
    if let Some(storage) = get(config, "storage") {
        out.push(("storage".to_string(), storage));
        if let Some(Value::Object(subs)) = get(storage, "subPaths") {
            for (route, store) in subs {
                out.push((format!("storage.subPaths[{route:?}]"), store));
            }
        }
    }
    out
}

pub(super) fn check_storage(c: &mut Checker, config: &Value, version: ZotVersion) {
    let sync_on = extension_enabled(config, "sync");
    let cve_on =
        extension_enabled(config, "search") && get_path(config, "extensions.search.cve").is_some();
    let mut roots: Vec<(String, String, String)> = Vec::new();
    for (i, (path, store)) in stores(config).into_iter().enumerate() {
        let top = i == 0;
        let gc_on = match get(store, "gc") {
            Some(v) => truthy(Some(v)),
            None => top,
        };
        // Rules 4, 12, 13.
        let delay = c.duration(&format!("{path}.gcDelay"), get(store, "gcDelay"));
        let interval = c.duration(&format!("{path}.gcInterval"), get(store, "gcInterval"));
        if top {
            for (key, v) in [("gcDelay", delay), ("gcInterval", interval)] {
                if v.is_some_and(|n| n < 0) {
                    c.fail(format!("{path}.{key}"), "must not be negative");
                }
            }
        } else if gc_on && delay.is_some_and(|n| n <= 0) {
            c.fail(
                format!("{path}.gcDelay"),
                "must be more than 0s when gc is on in a subpath",
            );
        }
        if let Some(w) = get(store, "gcTimeWindow") {
            let ok = w.as_str().is_some_and(valid_window);
            if !ok {
                c.fail(
                    format!("{path}.gcTimeWindow"),
                    format!("{w} is not a UTC window HH:MM-HH:MM with different start and end"),
                );
            }
        }
        check_retention(c, &path, store);

        // Rules 16-21.
        let driver = get(store, "storageDriver");
        let driver_name = driver.and_then(|d| get(d, "name")).and_then(Value::as_str);
        let cloud = driver.is_some();
        if let Some(d) = driver {
            match STORAGE_DRIVERS
                .iter()
                .find(|(n, _)| Some(*n) == driver_name)
            {
                None => c.fail(
                    format!("{path}.storageDriver.name"),
                    format!(
                        "{} is not a zot storage driver (s3, gcs, azure)",
                        get(d, "name").unwrap_or(&Value::Null)
                    ),
                ),
                Some((name, since)) if *since > version => {
                    c.errors.push(ZotError::FeatureUnavailable {
                        feature: format!("the {name} storage driver"),
                        min: *since,
                        version,
                    })
                }
                Some(_) => {}
            }
        }
        if let Some(root) = get(store, "rootDirectory").and_then(Value::as_str) {
            let kind = driver_name.unwrap_or("local").to_string();
            roots.push((path.clone(), kind, root.trim_end_matches('/').to_string()));
        }
        let dedupe = match get(store, "dedupe") {
            Some(v) => truthy(Some(v)),
            None => top,
        };
        let remote_cache = match get(store, "remoteCache") {
            Some(v) => truthy(Some(v)),
            None => dedupe && cloud,
        };
        let cache = get(store, "cacheDriver");
        if dedupe && cloud && remote_cache && cache.is_none() {
            c.fail(
                format!("{path}.cacheDriver"),
                "dedupe with cloud storage and remoteCache needs a remote cache (cacheDriver)",
            );
        }
        if let Some(cache) = cache.filter(|_| remote_cache) {
            let name = get(cache, "name").and_then(Value::as_str);
            // zot's metadata database reads these with no default and exits at start
            // ("dynamo parameters are not specified correctly") when one is missing; it is
            // opened whenever search or any authentication is on.
            if top && name == Some("dynamodb") {
                for key in DYNAMODB_META_KEYS {
                    if !matches!(get(cache, key), Some(Value::String(_))) {
                        let hint = if *key == "endpoint" {
                            " (for AWS: https://dynamodb.<region>.amazonaws.com)"
                        } else {
                            ""
                        };
                        c.fail(
                            format!("{path}.cacheDriver.{key}"),
                            format!("is required with a dynamodb cache: zot exits at start without it{hint}"),
                        );
                    }
                }
            }
            if top {
                if !matches!(name, Some("redis" | "dynamodb")) {
                    c.fail(
                        format!("{path}.cacheDriver.name"),
                        "must be redis or dynamodb",
                    );
                } else if !cloud && name != Some("redis") {
                    c.fail(
                        format!("{path}.cacheDriver"),
                        "with local storage only a redis cache can be remote",
                    );
                }
            } else if name != Some("dynamodb") {
                c.fail(
                    format!("{path}.cacheDriver.name"),
                    "subpaths only support a dynamodb cache",
                );
            } else if !cloud {
                c.fail(
                    format!("{path}.cacheDriver"),
                    "a subpath with local storage cannot use a remote cache",
                );
            }
        }
        if truthy(get(store, "redirectBlobURL")) && !cloud {
            c.fail(format!("{path}.redirectBlobURL"), "needs cloud storage");
        }
        if cloud && sync_on && !non_empty(get_path(config, "extensions.sync.downloadDir")) {
            c.fail(
                "extensions.sync.downloadDir",
                "is required when sync runs with cloud storage",
            );
        }
        if cloud && cve_on {
            c.fail(
                "extensions.search.cve",
                "CVE scanning is not supported with cloud storage",
            );
        }
    }
    // Rule 15: stores of the same driver must not share or nest root directories.
    for (i, (pa, ka, ra)) in roots.iter().enumerate() {
        for (pb, _, rb) in roots.iter().skip(i + 1).filter(|(_, kb, _)| kb == ka) {
            let nested =
                ra == rb || rb.starts_with(&format!("{ra}/")) || ra.starts_with(&format!("{rb}/"));
            if nested {
                c.fail(
                    format!("{pb}.rootDirectory"),
                    format!("overlaps the root directory of {pa}"),
                );
            }
        }
    }
}

fn valid_window(w: &str) -> bool {
    let parse = |s: &str| -> Option<u32> {
        let (h, m) = s.split_once(':')?;
        let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
        (h < 24 && m < 60).then_some(h * 60 + m)
    };
    w.split_once('-')
        .and_then(|(a, b)| Some((parse(a)?, parse(b)?)))
        .is_some_and(|(a, b)| a != b)
}

fn check_retention(c: &mut Checker, store_path: &str, store: &Value) {
    let Some(retention) = get(store, "retention") else {
        return;
    };
    let path = format!("{store_path}.retention");
    if c.duration(&format!("{path}.delay"), get(retention, "delay"))
        .is_some_and(|n| n < 0)
    {
        c.fail(format!("{path}.delay"), "must not be negative");
    }
    let Some(Value::Array(policies)) = get(retention, "policies") else {
        return;
    };
    for (i, policy) in policies.iter().enumerate() {
        let p = format!("{path}.policies[{i}]");
        if let Some(Value::Array(globs)) = get(policy, "repositories") {
            for g in globs.iter().filter_map(Value::as_str) {
                c.glob(&format!("{p}.repositories"), g);
            }
        }
        let mut rule_sets: Vec<(String, &Value)> = Vec::new();
        if let Some(Value::Array(keep)) = get(policy, "keepTags") {
            for (j, k) in keep.iter().enumerate() {
                let kp = format!("{p}.keepTags[{j}]");
                if let Some(Value::Array(patterns)) = get(k, "patterns") {
                    for pat in patterns {
                        c.regex(&format!("{kp}.patterns"), Some(pat));
                    }
                }
                rule_sets.push((kp, k));
            }
        }
        if let Some(k) = get(policy, "keepUntagged") {
            rule_sets.push((format!("{p}.keepUntagged"), k));
        }
        for (kp, k) in rule_sets {
            for key in ["pulledWithin", "pushedWithin"] {
                if c.duration(&format!("{kp}.{key}"), get(k, key))
                    .is_some_and(|n| n < 0)
                {
                    c.fail(format!("{kp}.{key}"), "must not be negative");
                }
            }
            for key in ["mostRecentlyPushedCount", "mostRecentlyPulledCount"] {
                c.count(&format!("{kp}.{key}"), get(k, key));
            }
        }
    }
}

/// The dynamodb cache driver keys zot's metadata database requires (as strings).
pub const DYNAMODB_META_KEYS: &[&str] = &[
    "endpoint",
    "region",
    "repometatablename",
    "repoblobsinfotablename",
    "imagemetatablename",
    "apikeytablename",
    "versiontablename",
    "userdatatablename",
];
