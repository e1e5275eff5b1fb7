//! zot's verify rules of the `extensions` block: sync (and its OAuth2 helper), search, UI,
//! metrics, scrub.

use serde_json::Value;

use super::{extension_enabled, get, get_path, non_empty, truthy, Checker};

pub(super) fn check_extensions(c: &mut Checker, config: &Value) {
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
