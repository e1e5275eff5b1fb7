//! zot's own `zot verify` rules, applied to the final config document (rendered + raw), so that
//! a config the operator writes is never one zot refuses at startup. Rule numbers refer to the
//! list in the project's zot notes; a few operator checks that zot lacks but that would break
//! zot at run time (negative retention counts, bare-number durations) are applied here too.

use serde_json::Value;

use super::error::{RenderErrors, ZotError};
use super::keys::STORAGE_DRIVERS;
use super::version::ZotVersion;
use crate::duration::parse_go_duration;

/// Case-insensitive lookup of one key, as viper does.
pub fn get<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    value
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

/// Case-insensitive lookup of a dotted path.
pub fn get_path<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(value, |v, k| get(v, k))
}

fn truthy(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

fn non_empty(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
        Some(_) => true,
    }
}

/// An extension counts as enabled when its object is present and `enable` is not false.
fn extension_enabled(config: &Value, name: &str) -> bool {
    match get_path(config, &format!("extensions.{name}")) {
        Some(Value::Object(o)) => !matches!(
            o.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("enable"))
                .map(|(_, v)| v),
            Some(Value::Bool(false))
        ),
        Some(Value::Null) | None => false,
        Some(_) => true,
    }
}

struct Checker {
    errors: RenderErrors,
}

impl Checker {
    fn fail(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ZotError::invalid(path, message));
    }

    /// Checks a duration value; returns its signed nanoseconds when valid.
    fn duration(&mut self, path: &str, value: Option<&Value>) -> Option<i128> {
        match value? {
            Value::String(s) => match parse_go_duration(s) {
                Ok(d) => {
                    let n = d.magnitude.as_nanos() as i128;
                    Some(if d.negative { -n } else { n })
                }
                Err(message) => {
                    self.fail(path, message);
                    None
                }
            },
            Value::Null => None,
            _ => {
                self.fail(path, "must be a Go duration string such as \"1h\"; zot reads a bare number as nanoseconds");
                None
            }
        }
    }

    fn regex(&mut self, path: &str, value: Option<&Value>) {
        if let Some(Value::String(s)) = value {
            if let Err(e) = regex::Regex::new(s) {
                let first = e
                    .to_string()
                    .lines()
                    .last()
                    .unwrap_or("invalid")
                    .trim()
                    .to_string();
                self.fail(
                    path,
                    format!("regular expression {s:?} does not compile: {first}"),
                );
            }
        }
    }

    fn glob(&mut self, path: &str, pattern: &str) {
        if let Err(e) = globset::GlobBuilder::new(pattern)
            .literal_separator(true)
            .build()
        {
            self.fail(
                path,
                format!("glob {pattern:?} does not compile: {}", e.kind()),
            );
        }
    }

    fn count(&mut self, path: &str, value: Option<&Value>) {
        if let Some(v) = value {
            if v.as_i64().is_some_and(|n| n < 0) {
                self.fail(path, "must not be negative");
            }
        }
    }
}

/// Applies zot's verify rules to a config document and returns every violation.
pub fn verify(config: &Value, version: ZotVersion) -> RenderErrors {
    let mut c = Checker {
        errors: RenderErrors::default(),
    };
    check_log(&mut c, config);
    check_http(&mut c, config);
    check_storage(&mut c, config, version);
    check_extensions(&mut c, config);
    check_cluster(&mut c, config);
    c.errors
}

fn check_log(c: &mut Checker, config: &Value) {
    // Rule 2.
    if let Some(level) = get_path(config, "log.level") {
        let ok = level.as_str().is_some_and(|l| {
            matches!(
                l.to_ascii_lowercase().as_str(),
                "debug" | "trace" | "info" | "warn" | "warning" | "error" | "fatal" | "panic"
            )
        });
        if !ok {
            c.fail("log.level", format!("{level} is not a zot log level"));
        }
    }
}

fn check_http(c: &mut Checker, config: &Value) {
    // Rule 5.
    if let Some(port) = get_path(config, "http.port") {
        let n = match port {
            Value::String(s) => s.parse::<i64>().ok(),
            Value::Number(n) => n.as_i64(),
            _ => None,
        };
        if !n.is_some_and(|n| (0..=65535).contains(&n)) {
            c.fail("http.port", format!("{port} is not a port number 0-65535"));
        }
    }
    for key in ["readTimeout", "writeTimeout"] {
        c.duration(
            &format!("http.{key}"),
            get_path(config, &format!("http.{key}")),
        );
    }
    let auth = get_path(config, "http.auth");
    let sub = |k: &str| auth.and_then(|a| get(a, k));
    // Rule 6.
    if let Some(ldap) = sub("ldap") {
        for k in ["address", "baseDN", "userAttribute"] {
            if !non_empty(get(ldap, k)) {
                c.fail(
                    format!("http.auth.ldap.{k}"),
                    "is required with LDAP authentication",
                );
            }
        }
    }
    // Rule 7.
    let tls_complete = ["cert", "key", "cacert"]
        .iter()
        .all(|k| non_empty(get_path(config, &format!("http.tls.{k}"))));
    if sub("mtls").is_some() && !tls_complete {
        c.fail("http.auth.mtls", "needs http.tls cert, key and cacert");
    }
    // Rule 11.
    if let Some(driver) = sub("sessionDriver") {
        match get(driver, "name").and_then(Value::as_str) {
            Some("local") => {}
            Some("redis") if non_empty(sub("sessionKeysFile")) => c.fail(
                "http.auth.sessionDriver",
                "a redis session driver cannot be combined with sessionKeysFile",
            ),
            Some("redis") => {}
            _ => c.fail("http.auth.sessionDriver.name", "must be local or redis"),
        }
    }
    // Rule 10.
    if let Some(ac) = get_path(config, "http.accessControl") {
        let authenticated = non_empty(sub("htpasswd").and_then(|h| get(h, "path")))
            || sub("ldap").is_some()
            || sub("openid").is_some()
            || truthy(sub("apikey"))
            || sub("bearer").is_some()
            || (sub("mtls").is_some() && tls_complete);
        // zot accepts access control without authentication only when it is anonymous-only:
        // no admin users or actions, no default or per-user policies, some anonymousPolicy;
        // or when it only lets anonymous clients read the metrics.
        let admin = get(ac, "adminPolicy");
        let admin_grants = |keys: &[&str]| {
            keys.iter()
                .any(|k| non_empty(admin.and_then(|a| get(a, k))))
        };
        let repos = match get(ac, "repositories") {
            Some(Value::Object(repos)) => repos.iter().collect::<Vec<_>>(),
            _ => Vec::new(),
        };
        for (glob, _) in &repos {
            c.glob(&format!("http.accessControl.repositories[{glob:?}]"), glob);
        }
        let only_anonymous = !admin_grants(&["actions", "users"])
            && repos.iter().any(|(_, r)| non_empty(get(r, "anonymousPolicy")))
            && !repos.iter().any(|(_, r)| {
                non_empty(get(r, "defaultPolicy"))
                    || matches!(get(r, "policies"), Some(Value::Array(ps)) if ps.iter().any(|p| non_empty(get(p, "actions")) || non_empty(get(p, "users"))))
            });
        let only_metrics_anonymous = !admin_grants(&["actions", "users", "groups"])
            && repos.is_empty()
            && !non_empty(get(ac, "groups"))
            && matches!(get(ac, "metrics").and_then(|m| get(m, "anonymousPolicy")), Some(Value::Array(a)) if a.iter().any(|x| x == "read"));
        let needs_auth = !only_anonymous && !only_metrics_anonymous;
        if needs_auth && !authenticated {
            c.fail(
                "http.accessControl",
                "grants rights to users but no authentication is configured: set auth.htpasswdSecretRef, or grant only anonymousPolicy",
            );
        }
    }
}

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

fn check_storage(c: &mut Checker, config: &Value, version: ZotVersion) {
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

fn check_extensions(c: &mut Checker, config: &Value) {
    // Rule 22.
    if extension_enabled(config, "metrics") {
        if let Some(p) = get_path(config, "extensions.metrics.prometheus.path") {
            let ok = p.as_str().is_some_and(|s| {
                s.starts_with('/')
                    && s != "/"
                    && s.trim_end_matches('/') != "/v2"
                    && !s.ends_with('/')
                    && !s.contains("//")
                    && !s.split('/').any(|seg| seg == "." || seg == "..")
            });
            if !ok {
                c.fail(
                    "extensions.metrics.prometheus.path",
                    format!("{p} must be a clean absolute path other than / and /v2"),
                );
            }
        }
    }
    // Rule 23.
    if extension_enabled(config, "ui") && !extension_enabled(config, "search") {
        c.fail("extensions.ui", "the UI needs the search extension");
    }
    c.duration(
        "extensions.scrub.interval",
        get_path(config, "extensions.scrub.interval"),
    );
    c.duration(
        "extensions.search.cve.updateInterval",
        get_path(config, "extensions.search.cve.updateInterval"),
    );
    // Rule 25.
    let compat = non_empty(get_path(config, "http.compat"));
    if let Some(Value::Array(registries)) = get_path(config, "extensions.sync.registries") {
        for (i, r) in registries.iter().enumerate() {
            let p = format!("extensions.sync.registries[{i}]");
            for key in ["pollInterval", "syncTimeout"] {
                c.duration(&format!("{p}.{key}"), get(r, key));
            }
            let retry = c.duration(&format!("{p}.retryDelay"), get(r, "retryDelay"));
            let max_retry = c.duration(&format!("{p}.maxRetryDelay"), get(r, "maxRetryDelay"));
            if get(r, "retryDelay").is_none() {
                for key in ["maxRetries", "maxRetryDelay"] {
                    if get(r, key).is_some() {
                        c.fail(format!("{p}.{key}"), "needs retryDelay");
                    }
                }
            }
            if let (Some(retry), Some(max)) = (retry, max_retry) {
                if max < retry {
                    c.fail(
                        format!("{p}.maxRetryDelay"),
                        "must not be shorter than retryDelay",
                    );
                }
            }
            if truthy(get(r, "preserveDigest")) && !compat {
                c.fail(
                    format!("{p}.preserveDigest"),
                    "needs http.compat (e.g. [\"docker2s2\"])",
                );
            }
            if let Some(Value::Array(content)) = get(r, "content") {
                for (j, entry) in content.iter().enumerate() {
                    let cp = format!("{p}.content[{j}]");
                    let prefix = get(entry, "prefix").and_then(Value::as_str).unwrap_or("");
                    c.glob(&format!("{cp}.prefix"), prefix);
                    if let Some(tags) = get(entry, "tags") {
                        c.regex(&format!("{cp}.tags.regex"), get(tags, "regex"));
                        c.regex(
                            &format!("{cp}.tags.excludeRegex"),
                            get(tags, "excludeRegex"),
                        );
                    }
                    let dest_root = get(entry, "destination").and_then(Value::as_str) == Some("/");
                    if truthy(get(entry, "stripPrefix")) && dest_root && !prefix.contains("/*") {
                        c.fail(
                            format!("{cp}.stripPrefix"),
                            "with destination \"/\" needs a prefix ending in /* or /**",
                        );
                    }
                }
            }
        }
    }
}

fn check_cluster(c: &mut Checker, config: &Value) {
    // Rule 26.
    let Some(cluster) = get(config, "cluster") else {
        return;
    };
    if !non_empty(get(cluster, "members")) {
        c.fail("cluster.members", "needs at least one member");
    }
    let key_len = get(cluster, "hashKey")
        .and_then(Value::as_str)
        .map(|k| k.chars().count());
    if key_len != Some(16) {
        c.fail("cluster.hashKey", "must be exactly 16 characters");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const V20: ZotVersion = ZotVersion::new(2, 1, 20);

    fn problems(config: Value) -> Vec<String> {
        verify(&config, V20).lines()
    }

    #[test]
    fn accepts_a_plain_local_config() {
        assert!(problems(json!({"storage": {"rootDirectory": "/r"}, "http": {"address": "0.0.0.0", "port": "5000"}})).is_empty());
    }

    #[test]
    fn rejects_dedupe_on_s3_without_a_cache() {
        let p =
            problems(json!({"storage": {"rootDirectory": "/r", "storageDriver": {"name": "s3"}}}));
        assert_eq!(p, ["storage.cacheDriver: dedupe with cloud storage and remoteCache needs a remote cache (cacheDriver)"]);
    }

    #[test]
    fn gates_storage_drivers_by_version() {
        let p = verify(
            &json!({"storage": {"rootDirectory": "/r", "dedupe": false, "storageDriver": {"name": "azure"}}}),
            ZotVersion::new(2, 1, 17),
        )
        .lines();
        assert_eq!(p, ["the azure storage driver needs zot v2.1.18 or later, but this registry runs v2.1.17"]);
    }

    #[test]
    fn rejects_overlapping_local_roots_and_subpath_gc_without_delay() {
        let p = problems(
            json!({"storage": {"rootDirectory": "/r", "subPaths": {"/a": {"rootDirectory": "/r/a", "gc": true, "gcDelay": "0s"}}}}),
        );
        assert_eq!(p.len(), 2, "{p:?}");
    }

    #[test]
    fn rejects_access_control_without_authentication_unless_anonymous_only() {
        let anon = json!({"http": {"accessControl": {"repositories": {"**": {"anonymousPolicy": ["read"]}}}}});
        assert!(problems(anon).is_empty());
        let users = json!({"http": {"accessControl": {"repositories": {"**": {"defaultPolicy": ["read"]}}}}});
        assert_eq!(problems(users).len(), 1);
    }

    #[test]
    fn rejects_a_cluster_without_members_or_with_a_hash_key_not_16_characters() {
        assert_eq!(
            problems(json!({"cluster": {"members": [], "hashKey": "short"}})),
            [
                "cluster.members: needs at least one member",
                "cluster.hashKey: must be exactly 16 characters"
            ]
        );
        assert!(problems(
            json!({"cluster": {"members": ["a:5000"], "hashKey": "0123456789abcdef"}})
        )
        .is_empty());
    }

    #[test]
    fn rejects_bare_number_durations_and_negative_counts() {
        let p = problems(
            json!({"storage": {"gcDelay": 3600, "retention": {"policies": [{"repositories": ["**"], "keepTags": [{"mostRecentlyPushedCount": -1}]}]}}}),
        );
        assert_eq!(p.len(), 2, "{p:?}");
    }
}
