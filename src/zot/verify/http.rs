//! zot's verify rules of the `http` block: authentication, access control, OpenID, bearer,
//! mTLS.

use serde_json::Value;

use super::{get, get_path, non_empty, truthy, Checker};
use crate::zot::version::ZotVersion;

pub(super) fn check_http(c: &mut Checker, config: &Value, version: ZotVersion) {
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
