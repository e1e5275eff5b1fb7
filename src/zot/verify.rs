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
    check_http(&mut c, config, version);
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

fn check_http(c: &mut Checker, config: &Value, version: ZotVersion) {
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
    // Rule 7 (zot's validateMTLS, v2.1.12+).
    let tls_complete = ["cert", "key", "cacert"]
        .iter()
        .all(|k| non_empty(get_path(config, &format!("http.tls.{k}"))));
    if let Some(mtls) = sub("mtls").filter(|m| !m.is_null()) {
        check_mtls(c, mtls, tls_complete);
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
    if let Some(openid) = sub("openid") {
        check_openid(c, openid);
    }
    if let Some(bearer) = sub("bearer").filter(|b| !b.is_null()) {
        check_bearer(c, bearer);
    }
    // Rule 10 (zot's validateAuthzPolicies).
    if let Some(ac) = get_path(config, "http.accessControl").filter(|a| !a.is_null()) {
        let repos = match get(ac, "repositories") {
            Some(Value::Object(repos)) => repos.iter().collect::<Vec<_>>(),
            _ => Vec::new(),
        };
        for (glob, _) in &repos {
            c.glob(&format!("http.accessControl.repositories[{glob:?}]"), glob);
        }
        let authenticated = authentication_counted(config, version);
        let anonymous_only = only_anonymous_policy(ac)
            || (version >= METRICS_ANONYMOUS_SINCE && only_metrics_anonymous_policy(ac));
        let needs_auth = !anonymous_only;
        if needs_auth && authenticated.is_none() {
            c.fail(
                "http.accessControl",
                format!("grants rights to users but zot {version} counts no authentication in this config ({}): set a sign-in method in spec.auth (htpasswdSecretRef, ldap, openid, apiKeys, mtls, bearer), or grant only anonymousPolicy", counted_methods(version)),
            );
        }
    }
}

/// First release counting mTLS (TLS cert + key + CA) as authentication for access control.
pub const MTLS_AUTHN_SINCE: ZotVersion = ZotVersion::new(2, 1, 12);
/// First release counting bearer authentication for access control.
pub const BEARER_AUTHN_SINCE: ZotVersion = ZotVersion::new(2, 1, 14);
/// First release accepting access control that only lets anonymous clients read metrics.
pub const METRICS_ANONYMOUS_SINCE: ZotVersion = ZotVersion::new(2, 1, 18);

/// OpenID Connect providers zot knows (`IsOpenIDSupported`).
pub const OPENID_PROVIDERS: &[&str] = &["google", "gitlab", "oidc"];
/// OAuth2 providers zot knows (`IsOauth2Supported`).
pub const OAUTH2_PROVIDERS: &[&str] = &["github"];

fn counted_methods(version: ZotVersion) -> String {
    let mut methods = vec![
        "htpasswd path",
        "ldap",
        "an openid provider zot knows",
        "apikey: true",
    ];
    if version >= MTLS_AUTHN_SINCE {
        methods.push("TLS cert + key + cacert");
    }
    if version >= BEARER_AUTHN_SINCE {
        methods.push("bearer realm + service + cert (or awsSecretsManager), or a bearer oidc issuer with audiences");
    }
    format!("it counts {}", methods.join(", "))
}

/// Which authentication zot counts for access control, exactly as its `validateAuthzPolicies`
/// does for the release: `IsBasicAuthnEnabled` (htpasswd path, any ldap block, a known
/// OpenID/OAuth2 provider, `apikey: true`), `IsMTLSAuthEnabled` (TLS cert + key + cacert, no
/// `auth.mtls` block needed) from v2.1.12, and `IsBearerAuthEnabled` (realm + service + cert or
/// AWS Secrets Manager, or an OIDC issuer with audiences) from v2.1.14. `None` when none.
pub fn authentication_counted(config: &Value, version: ZotVersion) -> Option<&'static str> {
    let auth = get_path(config, "http.auth");
    let sub = |k: &str| auth.and_then(|a| get(a, k)).filter(|v| !v.is_null());
    if non_empty(sub("htpasswd").and_then(|h| get(h, "path"))) {
        return Some("htpasswd");
    }
    if sub("ldap").is_some() {
        return Some("ldap");
    }
    if let Some(Value::Object(providers)) = sub("openid").and_then(|o| get(o, "providers")) {
        let known = providers.keys().any(|p| {
            let p = p.to_ascii_lowercase();
            OPENID_PROVIDERS.contains(&p.as_str()) || OAUTH2_PROVIDERS.contains(&p.as_str())
        });
        if known {
            return Some("openid");
        }
    }
    if truthy(sub("apikey")) {
        return Some("apikey");
    }
    let tls_complete = ["cert", "key", "cacert"]
        .iter()
        .all(|k| non_empty(get_path(config, &format!("http.tls.{k}"))));
    if version >= MTLS_AUTHN_SINCE && tls_complete {
        return Some("mtls");
    }
    if version >= BEARER_AUTHN_SINCE {
        if let Some(bearer) = sub("bearer") {
            let realm_service =
                non_empty(get(bearer, "realm")) && non_empty(get(bearer, "service"));
            let key_source = non_empty(get(bearer, "cert"))
                || get(bearer, "awsSecretsManager").is_some_and(|a| !a.is_null());
            let oidc = matches!(get(bearer, "oidc"), Some(Value::Array(list)) if list.iter().any(|o| {
                non_empty(get(o, "issuer")) && non_empty(get(o, "audiences"))
            }));
            if (realm_service && key_source) || oidc {
                return Some("bearer");
            }
        }
    }
    None
}

/// zot's `ContainsOnlyAnonymousPolicy`: no admin users or actions, no default or per-user
/// policies, and at least one anonymousPolicy.
fn only_anonymous_policy(ac: &Value) -> bool {
    let admin = get(ac, "adminPolicy");
    if ["actions", "users"]
        .iter()
        .any(|k| non_empty(admin.and_then(|a| get(a, k))))
    {
        return false;
    }
    let repos: Vec<&Value> = match get(ac, "repositories") {
        Some(Value::Object(repos)) => repos.values().collect(),
        _ => Vec::new(),
    };
    let grants_users = repos.iter().any(|r| {
        non_empty(get(r, "defaultPolicy"))
            || matches!(get(r, "policies"), Some(Value::Array(ps)) if ps.iter().any(|p| non_empty(get(p, "actions")) || non_empty(get(p, "users"))))
    });
    !grants_users && repos.iter().any(|r| non_empty(get(r, "anonymousPolicy")))
}

/// zot's `ContainsOnlyMetricsAnonymousPolicy` (v2.1.18+): nothing but anonymous metrics reads.
fn only_metrics_anonymous_policy(ac: &Value) -> bool {
    let admin = get(ac, "adminPolicy");
    !["actions", "users", "groups"]
        .iter()
        .any(|k| non_empty(admin.and_then(|a| get(a, k))))
        && !non_empty(get(ac, "repositories"))
        && !non_empty(get(ac, "groups"))
        && matches!(get(ac, "metrics").and_then(|m| get(m, "anonymousPolicy")), Some(Value::Array(a)) if a.iter().any(|x| x == "read"))
}

/// zot's `validateOpenIDConfig`: every provider must be one zot knows, an OpenID one with
/// `clientid`, `issuer` and `scopes`, the OAuth2 one (github) with `clientid` and `scopes`;
/// the client id may come from the provider's `credentialsFile`, which zot reads first.
fn check_openid(c: &mut Checker, openid: &Value) {
    let Some(Value::Object(providers)) = get(openid, "providers") else {
        return;
    };
    for (name, provider) in providers {
        let p = format!("http.auth.openid.providers.{name}");
        let lower = name.to_ascii_lowercase();
        let required: &[&str] = if OPENID_PROVIDERS.contains(&lower.as_str()) {
            &["clientid", "issuer", "scopes"]
        } else if OAUTH2_PROVIDERS.contains(&lower.as_str()) {
            &["clientid", "scopes"]
        } else {
            c.fail(
                &p,
                format!(
                    "{name:?} is not a provider zot supports ({}, {})",
                    OPENID_PROVIDERS.join(", "),
                    OAUTH2_PROVIDERS.join(", ")
                ),
            );
            continue;
        };
        // zot reads `clientid` (and `clientsecret`) from the credentials file before it
        // validates, so a provider with one needs no inline client id.
        let from_file = non_empty(get(provider, "credentialsFile"));
        for key in required {
            if *key == "clientid" && from_file {
                continue;
            }
            if !non_empty(get(provider, key)) {
                c.fail(
                    format!("{p}.{key}"),
                    format!("is required for the {name} provider"),
                );
            }
        }
    }
}

/// zot's `validateBearerConfig`.
fn check_bearer(c: &mut Checker, bearer: &Value) {
    let asm = get(bearer, "awsSecretsManager").filter(|a| !a.is_null());
    if non_empty(get(bearer, "cert")) && asm.is_some() {
        c.fail(
            "http.auth.bearer",
            "cannot use both cert and awsSecretsManager",
        );
    }
    if let Some(upstream) = get(bearer, "upstreamTokenEndpoint").filter(|u| !u.is_null()) {
        let realm = get(upstream, "realm").and_then(Value::as_str).unwrap_or("");
        if realm.is_empty() || !non_empty(get(upstream, "service")) {
            c.fail(
                "http.auth.bearer.upstreamTokenEndpoint",
                "needs both realm and service",
            );
        } else {
            match url::Url::parse(realm) {
                Ok(u) if u.has_host() => {
                    let insecure_ok = truthy(get(upstream, "allowInsecureHttp"));
                    let https = u.scheme().eq_ignore_ascii_case("https");
                    let allowed_http = u.scheme().eq_ignore_ascii_case("http") && insecure_ok;
                    if !(https || allowed_http) {
                        c.fail(
                            "http.auth.bearer.upstreamTokenEndpoint.realm",
                            "must use https unless allowInsecureHttp is true",
                        );
                    }
                }
                _ => c.fail(
                    "http.auth.bearer.upstreamTokenEndpoint.realm",
                    format!("{realm:?} is not an absolute URL"),
                ),
            }
        }
    }
    if let Some(asm) = asm {
        for key in ["region", "secretName"] {
            if !non_empty(get(asm, key)) {
                c.fail(
                    format!("http.auth.bearer.awsSecretsManager.{key}"),
                    "is required",
                );
            }
        }
        if c.duration(
            "http.auth.bearer.awsSecretsManager.refreshInterval",
            get(asm, "refreshInterval"),
        )
        .is_some_and(|n| n < 0)
        {
            c.fail(
                "http.auth.bearer.awsSecretsManager.refreshInterval",
                "must not be negative",
            );
        }
    }
}

/// The mTLS identity attributes zot accepts (compared case-insensitively).
pub const MTLS_IDENTITY_ATTRIBUTES: &[&str] = &[
    "CommonName",
    "CN",
    "Subject",
    "DN",
    "Email",
    "rfc822name",
    "URI",
    "URL",
    "DNSName",
    "DNS",
];

/// zot's `validateMTLS`.
fn check_mtls(c: &mut Checker, mtls: &Value, tls_complete: bool) {
    if !tls_complete {
        c.fail("http.auth.mtls", "needs http.tls cert, key and cacert");
        return;
    }
    let attributes: Vec<String> = match get(mtls, "identityAttributes") {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(|s| s.trim().to_string())
            .collect(),
        _ => Vec::new(),
    };
    let unknown: Vec<&String> = attributes
        .iter()
        .filter(|a| {
            !MTLS_IDENTITY_ATTRIBUTES
                .iter()
                .any(|k| k.eq_ignore_ascii_case(a))
        })
        .collect();
    if !unknown.is_empty() {
        c.fail(
            "http.auth.mtls.identityAttributes",
            format!(
                "{unknown:?} are not identity attributes zot knows ({})",
                MTLS_IDENTITY_ATTRIBUTES.join(", ")
            ),
        );
        return;
    }
    let uses_san = attributes
        .iter()
        .any(|a| a.eq_ignore_ascii_case("uri") || a.eq_ignore_ascii_case("url"));
    for key in ["dnsSanIndex", "emailSanIndex", "uriSanIndex"] {
        let set = get(mtls, key).is_some_and(|v| v.as_i64().is_some_and(|n| n != 0));
        if set && !uses_san {
            c.fail(
                format!("http.auth.mtls.{key}"),
                "only applies with the URI/URL identity attribute",
            );
        }
    }
    if let Some(Value::String(pattern)) = get(mtls, "uriSanPattern") {
        if !pattern.is_empty() {
            if !uses_san {
                c.fail(
                    "http.auth.mtls.uriSanPattern",
                    "only applies with the URI/URL identity attribute",
                );
            } else {
                c.regex(
                    "http.auth.mtls.uriSanPattern",
                    Some(&Value::String(pattern.clone())),
                );
            }
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
            if non_empty(get(r, "pollInterval")) {
                if let Some(url) = catalogless_upstream(r) {
                    c.fail(
                        format!("{p}.pollInterval"),
                        format!("{url} does not serve the repository catalog (/v2/_catalog) that zot's periodic sync lists, so it would never sync: remove pollInterval and use onDemand: true"),
                    );
                }
            }
            if get(r, "credentialHelper").and_then(Value::as_str) == Some("oauth2") {
                check_oauth2_helper(c, &p, get(r, "oauth2CredentialHelper"));
            }
            // zot's post-v2.1.20 request tuning rules (keys of v2.1.21).
            if let Some(interval) = c.duration(
                &format!("{p}.manifestCheckInterval"),
                get(r, "manifestCheckInterval"),
            ) {
                if interval < 0 {
                    c.fail(format!("{p}.manifestCheckInterval"), "must not be negative");
                } else if interval > 0 && !truthy(get(r, "onDemand")) {
                    c.fail(
                        format!("{p}.manifestCheckInterval"),
                        "only throttles on-demand sync: it needs onDemand: true",
                    );
                }
            }
            for key in ["reqConcurrent", "maxIdleConnsPerHost"] {
                if let Some(v) = get(r, key).filter(|v| !v.is_null()) {
                    if v.as_i64().is_none_or(|n| n <= 0) {
                        c.fail(
                            format!("{p}.{key}"),
                            "must be a whole number greater than 0",
                        );
                    }
                }
            }
            if let Some(v) = get(r, "reqPerSec").filter(|v| !v.is_null()) {
                if !v.as_f64().is_some_and(|n| n.is_finite() && n > 0.0) {
                    c.fail(
                        format!("{p}.reqPerSec"),
                        "must be a finite number greater than 0",
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

/// The grant whose extra fields (audience, token types) zot's OAuth2 helper accepts.
pub const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

/// zot's `OAuth2HelperConfig.Validate` (v2.1.19+), with its strict decoding of the keys.
fn check_oauth2_helper(c: &mut Checker, registry_path: &str, helper: Option<&Value>) {
    let p = format!("{registry_path}.oauth2CredentialHelper");
    let Some(Value::Object(map)) = helper.filter(|h| non_empty(Some(h))) else {
        c.fail(&p, "is required with credentialHelper: oauth2");
        return;
    };
    const KEYS: &[&str] = &[
        "tokenURL",
        "assertionFile",
        "signingFile",
        "grantType",
        "clientID",
        "clientSecretFile",
        "scopes",
        "username",
        "audience",
        "subjectTokenType",
        "requestedTokenType",
    ];
    for key in map.keys() {
        if !KEYS.iter().any(|k| k.eq_ignore_ascii_case(key)) {
            c.fail(
                format!("{p}.{key}"),
                "is not a key zot's oauth2 helper knows",
            );
        }
    }
    let text = |key: &str| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .and_then(|(_, v)| v.as_str())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    if text("tokenURL").is_none() {
        c.fail(format!("{p}.tokenURL"), "is required");
    }
    match (text("assertionFile"), text("signingFile")) {
        (None, None) => c.fail(&p, "needs assertionFile or signingFile"),
        (Some(_), Some(_)) => c.fail(&p, "takes assertionFile or signingFile, not both"),
        _ => {}
    }
    let exchange_only = ["audience", "subjectTokenType", "requestedTokenType"];
    if text("grantType") != Some(TOKEN_EXCHANGE_GRANT) {
        for key in exchange_only {
            if text(key).is_some() {
                c.fail(
                    format!("{p}.{key}"),
                    format!("only applies with grantType {TOKEN_EXCHANGE_GRANT}"),
                );
            }
        }
        return;
    }
    if text("audience").is_none() {
        c.fail(
            format!("{p}.audience"),
            "is required with the token-exchange grant",
        );
    }
    for key in ["subjectTokenType", "requestedTokenType"] {
        if let Some(v) = text(key) {
            if url::Url::parse(v).is_err() {
                c.fail(
                    format!("{p}.{key}"),
                    format!("{v:?} is not an absolute URI"),
                );
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

/// Hosts known to refuse `/v2/_catalog`: Docker Hub's registry under each of its names.
pub const CATALOGLESS_HOSTS: &[&str] = &[
    "docker.io",
    "registry-1.docker.io",
    "index.docker.io",
    "registry.hub.docker.com",
];

/// The first URL of a sync registry whose host serves no catalog.
fn catalogless_upstream(registry: &Value) -> Option<String> {
    let Some(Value::Array(urls)) = get(registry, "urls") else {
        return None;
    };
    urls.iter().filter_map(Value::as_str).find_map(|u| {
        let host = url::Url::parse(u).ok()?.host_str()?.to_ascii_lowercase();
        CATALOGLESS_HOSTS
            .contains(&host.as_str())
            .then(|| u.to_string())
    })
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

    fn users_granted(auth: Value, tls: Value) -> Value {
        json!({"http": {"tls": tls, "auth": auth, "accessControl": {"repositories": {"**": {"defaultPolicy": ["read"]}}}}})
    }

    #[test]
    fn tls_with_a_client_ca_counts_as_authentication_from_v2_1_12_without_an_mtls_block() {
        let config = users_granted(
            json!({}),
            json!({"cert": "/c", "key": "/k", "cacert": "/ca"}),
        );
        assert!(verify(&config, ZotVersion::new(2, 1, 12)).is_empty());
        assert_eq!(verify(&config, V20).lines(), Vec::<String>::new());
        let old = verify(&config, ZotVersion::new(2, 1, 11)).lines();
        assert_eq!(old.len(), 1, "{old:?}");
        assert!(old[0].starts_with(
            "http.accessControl: grants rights to users but zot v2.1.11 counts no authentication"
        ));
        let no_ca = users_granted(json!({}), json!({"cert": "/c", "key": "/k"}));
        assert_eq!(verify(&no_ca, V20).lines().len(), 1);
    }

    #[test]
    fn only_a_complete_bearer_block_counts_as_authentication_and_only_from_v2_1_14() {
        let tls = json!({"cert": "/c", "key": "/k"});
        let incomplete = users_granted(
            json!({"bearer": {"realm": "https://t/token", "service": "zot"}}),
            tls.clone(),
        );
        assert_eq!(verify(&incomplete, V20).lines().len(), 1);
        let complete = users_granted(
            json!({"bearer": {"realm": "https://t/token", "service": "zot", "cert": "/b.pem"}}),
            tls.clone(),
        );
        assert!(verify(&complete, V20).is_empty());
        assert_eq!(
            verify(&complete, ZotVersion::new(2, 1, 13)).lines().len(),
            1
        );
        let oidc = users_granted(
            json!({"bearer": {"oidc": [{"issuer": "https://idp", "audiences": ["zot"]}]}}),
            tls.clone(),
        );
        assert!(verify(&oidc, V20).is_empty());
        let oidc_no_audience = users_granted(
            json!({"bearer": {"oidc": [{"issuer": "https://idp"}]}}),
            tls,
        );
        assert_eq!(verify(&oidc_no_audience, V20).lines().len(), 1);
    }

    #[test]
    fn only_an_openid_provider_zot_knows_counts_as_authentication() {
        let known = users_granted(
            json!({"openid": {"providers": {"github": {"clientid": "x", "scopes": ["read:org"]}}}}),
            Value::Null,
        );
        assert!(verify(&known, V20).is_empty());
        let unknown = users_granted(
            json!({"openid": {"providers": {"keycloak": {"clientid": "x", "issuer": "https://k", "scopes": ["openid"]}}}}),
            Value::Null,
        );
        let p = verify(&unknown, V20).lines();
        assert_eq!(p.len(), 2, "{p:?}");
    }

    #[test]
    fn anonymous_metrics_reads_alone_need_no_authentication_from_v2_1_18() {
        let config = json!({"http": {"accessControl": {"metrics": {"anonymousPolicy": ["read"]}}}});
        assert!(verify(&config, ZotVersion::new(2, 1, 18)).is_empty());
        assert_eq!(verify(&config, ZotVersion::new(2, 1, 17)).lines().len(), 1);
    }

    #[test]
    fn mtls_identity_rules_are_zots() {
        let tls = json!({"cert": "/c", "key": "/k", "cacert": "/ca"});
        let check = |mtls: Value| {
            verify(
                &json!({"http": {"tls": tls.clone(), "auth": {"mtls": mtls}}}),
                V20,
            )
            .lines()
        };
        assert!(
            check(json!({"identityAttributes": ["CN", "uri"], "uriSanPattern": "^spiffe://"}))
                .is_empty()
        );
        assert_eq!(
            check(json!({"identityAttributes": ["SerialNumber"]})).len(),
            1
        );
        assert_eq!(
            check(json!({"identityAttributes": ["CN"], "uriSanIndex": 1})),
            ["http.auth.mtls.uriSanIndex: only applies with the URI/URL identity attribute"]
        );
        assert_eq!(
            check(json!({"identityAttributes": ["URI"], "uriSanPattern": "(["})).len(),
            1
        );
    }

    /// Configs run through a real `zot verify` (v2.1.20 built from source): zot's exit status
    /// and this module's verdict agree on each.
    #[test]
    fn agrees_with_a_real_zot_v2_1_20_verify_on_authentication_and_identity_configs() {
        let cases: &[(&str, bool, &str)] = &[
            (
                "ac-bearer-complete",
                true,
                r#"{"storage":{"rootDirectory":"/var/lib/registry"},"http":{"address":"127.0.0.1","port":"5150","auth":{"bearer":{"realm":"https://t/token","service":"zot","cert":"/x/b.pem"}},"accessControl":{"repositories":{"**":{"defaultPolicy":["read"]}}}}}"#,
            ),
            (
                "ac-bearer-oidc-no-aud",
                false,
                r#"{"storage":{"rootDirectory":"/var/lib/registry"},"http":{"address":"127.0.0.1","port":"5150","auth":{"bearer":{"oidc":[{"issuer":"https://idp"}]}},"accessControl":{"repositories":{"**":{"defaultPolicy":["read"]}}}}}"#,
            ),
            (
                "ac-bearer-oidc",
                true,
                r#"{"storage":{"rootDirectory":"/var/lib/registry"},"http":{"address":"127.0.0.1","port":"5150","auth":{"bearer":{"oidc":[{"issuer":"https://idp","audiences":["zot"]}]}},"accessControl":{"repositories":{"**":{"defaultPolicy":["read"]}}}}}"#,
            ),
            (
                "ac-bearer-realm-only",
                false,
                r#"{"storage":{"rootDirectory":"/var/lib/registry"},"http":{"address":"127.0.0.1","port":"5150","auth":{"bearer":{"realm":"https://t/token"}},"accessControl":{"repositories":{"**":{"defaultPolicy":["read"]}}}}}"#,
            ),
            (
                "ac-mtls-tls-ca",
                true,
                r#"{"storage":{"rootDirectory":"/var/lib/registry"},"http":{"address":"127.0.0.1","port":"5150","tls":{"cert":"/x/c","key":"/x/k","cacert":"/x/ca"},"accessControl":{"repositories":{"**":{"defaultPolicy":["read"]}}}}}"#,
            ),
            (
                "ac-tls-no-ca",
                false,
                r#"{"storage":{"rootDirectory":"/var/lib/registry"},"http":{"address":"127.0.0.1","port":"5150","tls":{"cert":"/x/c","key":"/x/k"},"accessControl":{"repositories":{"**":{"defaultPolicy":["read"]}}}}}"#,
            ),
            (
                "bearer-cert-and-asm",
                false,
                r#"{"storage":{"rootDirectory":"/var/lib/registry"},"http":{"address":"127.0.0.1","port":"5150","auth":{"bearer":{"realm":"https://t","service":"z","cert":"/x/b","awsSecretsManager":{"region":"eu-west-1","secretName":"s"}}}}}"#,
            ),
            (
                "metrics-anon-only",
                true,
                r#"{"storage":{"rootDirectory":"/var/lib/registry"},"http":{"address":"127.0.0.1","port":"5150","accessControl":{"metrics":{"anonymousPolicy":["read"]}}}}"#,
            ),
            (
                "mtls-bad-attr",
                false,
                r#"{"storage":{"rootDirectory":"/var/lib/registry"},"http":{"address":"127.0.0.1","port":"5150","tls":{"cert":"/x/c","key":"/x/k","cacert":"/x/ca"},"auth":{"mtls":{"identityAttributes":["SerialNumber"]}}}}"#,
            ),
            (
                "mtls-no-ca",
                false,
                r#"{"storage":{"rootDirectory":"/var/lib/registry"},"http":{"address":"127.0.0.1","port":"5150","tls":{"cert":"/x/c","key":"/x/k"},"auth":{"mtls":{"identityAttributes":["CN"]}}}}"#,
            ),
            (
                "mtls-san-index-no-uri",
                false,
                r#"{"storage":{"rootDirectory":"/var/lib/registry"},"http":{"address":"127.0.0.1","port":"5150","tls":{"cert":"/x/c","key":"/x/k","cacert":"/x/ca"},"auth":{"mtls":{"identityAttributes":["CN"],"uriSanIndex":1}}}}"#,
            ),
            (
                "openid-github-ok",
                true,
                r#"{"storage":{"rootDirectory":"/var/lib/registry"},"http":{"address":"127.0.0.1","port":"5150","auth":{"openid":{"providers":{"github":{"clientid":"x","scopes":["read:org"]}}}},"accessControl":{"repositories":{"**":{"defaultPolicy":["read"]}}}}}"#,
            ),
            (
                "openid-keycloak",
                false,
                r#"{"storage":{"rootDirectory":"/var/lib/registry"},"http":{"address":"127.0.0.1","port":"5150","auth":{"openid":{"providers":{"keycloak":{"clientid":"x","issuer":"https://k","scopes":["openid"]}}}}}}"#,
            ),
            (
                "openid-oidc-no-scopes",
                false,
                r#"{"storage":{"rootDirectory":"/var/lib/registry"},"http":{"address":"127.0.0.1","port":"5150","auth":{"openid":{"providers":{"oidc":{"clientid":"x","issuer":"https://k"}}}}}}"#,
            ),
            (
                "sync-oauth2-no-tokenurl",
                false,
                r#"{"storage":{"rootDirectory":"/var/lib/registry"},"http":{"address":"127.0.0.1","port":"5150"},"extensions":{"sync":{"enable":true,"registries":[{"urls":["https://m.example"],"onDemand":true,"credentialHelper":"oauth2","oauth2CredentialHelper":{"assertionFile":"/t"}}]}}}"#,
            ),
            (
                "timeouts-zero",
                true,
                r#"{"storage":{"rootDirectory":"/var/lib/registry"},"http":{"address":"127.0.0.1","port":"5150","readTimeout":"0s","writeTimeout":"0s"}}"#,
            ),
        ];
        for (name, zot_accepts, text) in cases {
            let config: Value = serde_json::from_str(text).expect("case is JSON");
            let problems = verify(&config, V20).lines();
            assert_eq!(problems.is_empty(), *zot_accepts, "{name}: {problems:?}");
        }
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
