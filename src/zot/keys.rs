//! The config keys each supported zot release accepts, as data.
//!
//! zot decodes its config with viper's `UnmarshalExact`: a key it does not know makes it refuse
//! to start. The operator therefore never renders a key the target release lacks, and checks the
//! raw `spec.config` escape hatch against the same table.
//!
//! Paths are dot-separated and compared case-insensitively (viper lower-cases every key). `[]`
//! marks a list of objects (`registries[].urls`), `*` stands for one user-chosen map key (a
//! repository glob, a subpath route), and a trailing `**` marks a free-form map whose keys zot
//! passes on without checking (`storageDriver`, `cacheDriver`). Every prefix of an accepted path
//! is accepted too.
//!
//! The first release of each key was read from zot's config structs (`pkg/api/config/config.go`,
//! `pkg/extensions/config/**`) at every tag from v2.1.11 to v2.1.20. Keys added after v2.1.20
//! (sync request tuning, `hydrateBlobOnRead`) are dated v2.1.21, the first release after them;
//! that release was not read from source. Keys without a later release are in v2.1.11.

use super::version::ZotVersion;

/// One accepted key path and the first zot release that accepts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyEntry {
    /// The key path pattern (see the module documentation).
    pub path: &'static str,
    /// The first zot release whose config accepts this key.
    pub since: ZotVersion,
}

const BASE: ZotVersion = ZotVersion::OLDEST;

const fn key(path: &'static str) -> KeyEntry {
    KeyEntry { path, since: BASE }
}

const fn since(path: &'static str, major: u32, minor: u32, patch: u32) -> KeyEntry {
    KeyEntry {
        path,
        since: ZotVersion::new(major, minor, patch),
    }
}

/// The keys of one storage configuration. They are valid both under `storage` and under each
/// `storage.subPaths.<route>`.
pub const STORE_KEYS: &[KeyEntry] = &[
    key("rootDirectory"),
    key("dedupe"),
    key("remoteCache"),
    key("gc"),
    key("commit"),
    key("gcDelay"),
    key("gcInterval"),
    key("storageDriver.**"),
    key("cacheDriver.**"),
    key("retention.dryRun"),
    key("retention.delay"),
    key("retention.policies[].repositories"),
    key("retention.policies[].deleteReferrers"),
    key("retention.policies[].deleteUntagged"),
    key("retention.policies[].keepTags[].patterns"),
    key("retention.policies[].keepTags[].pulledWithin"),
    key("retention.policies[].keepTags[].pushedWithin"),
    key("retention.policies[].keepTags[].mostRecentlyPushedCount"),
    key("retention.policies[].keepTags[].mostRecentlyPulledCount"),
    since("retention.policies[].keepUntagged.pulledWithin", 2, 1, 19),
    since("retention.policies[].keepUntagged.pushedWithin", 2, 1, 19),
    since(
        "retention.policies[].keepUntagged.mostRecentlyPushedCount",
        2,
        1,
        19,
    ),
    since(
        "retention.policies[].keepUntagged.mostRecentlyPulledCount",
        2,
        1,
        19,
    ),
    since("maxRepos", 2, 1, 16),
    since("redirectBlobURL", 2, 1, 18),
    since("gcTimeWindow", 2, 1, 19),
    since("hydrateBlobOnRead", 2, 1, 21),
];

/// Every other accepted key, as a full path from the top of `config.json`.
pub const KEYS: &[KeyEntry] = &[
    key("distSpecVersion"),
    key("goVersion"),
    key("commit"),
    key("releaseTag"),
    key("binaryType"),
    // storage: top-level only
    since("storage.fastRestart", 2, 1, 18),
    // http
    key("http.address"),
    key("http.port"),
    key("http.externalURL"),
    key("http.realm"),
    key("http.allowOrigin"),
    key("http.compat"),
    since("http.readTimeout", 2, 1, 17),
    since("http.writeTimeout", 2, 1, 17),
    key("http.tls.cert"),
    key("http.tls.key"),
    key("http.tls.cacert"),
    key("http.ratelimit.rate"),
    key("http.ratelimit.methods[].method"),
    key("http.ratelimit.methods[].rate"),
    key("http.auth.htpasswd.path"),
    key("http.auth.ldap.address"),
    key("http.auth.ldap.port"),
    key("http.auth.ldap.baseDN"),
    key("http.auth.ldap.userAttribute"),
    key("http.auth.ldap.userGroupAttribute"),
    key("http.auth.ldap.userFilter"),
    key("http.auth.ldap.startTLS"),
    key("http.auth.ldap.insecure"),
    key("http.auth.ldap.skipVerify"),
    key("http.auth.ldap.subtreeSearch"),
    key("http.auth.ldap.caCert"),
    key("http.auth.ldap.credentialsFile"),
    key("http.auth.bearer.realm"),
    key("http.auth.bearer.service"),
    key("http.auth.bearer.cert"),
    since("http.auth.bearer.awsSecretsManager.region", 2, 1, 15),
    since("http.auth.bearer.awsSecretsManager.secretName", 2, 1, 15),
    since(
        "http.auth.bearer.awsSecretsManager.refreshInterval",
        2,
        1,
        15,
    ),
    since("http.auth.bearer.oidc[].issuer", 2, 1, 14),
    since("http.auth.bearer.oidc[].audiences", 2, 1, 14),
    since(
        "http.auth.bearer.oidc[].claimMapping.variables[].name",
        2,
        1,
        14,
    ),
    since(
        "http.auth.bearer.oidc[].claimMapping.variables[].expression",
        2,
        1,
        14,
    ),
    since(
        "http.auth.bearer.oidc[].claimMapping.validations[].expression",
        2,
        1,
        14,
    ),
    since(
        "http.auth.bearer.oidc[].claimMapping.validations[].message",
        2,
        1,
        14,
    ),
    since("http.auth.bearer.oidc[].claimMapping.username", 2, 1, 14),
    since("http.auth.bearer.oidc[].claimMapping.groups", 2, 1, 14),
    since("http.auth.bearer.oidc[].certificateAuthority", 2, 1, 15),
    since("http.auth.bearer.oidc[].certificateAuthorityFile", 2, 1, 15),
    since("http.auth.bearer.oidc[].skipIssuerVerification", 2, 1, 14),
    since("http.auth.bearer.upstreamTokenEndpoint.realm", 2, 1, 19),
    since("http.auth.bearer.upstreamTokenEndpoint.service", 2, 1, 19),
    since(
        "http.auth.bearer.upstreamTokenEndpoint.allowInsecureHttp",
        2,
        1,
        19,
    ),
    key("http.auth.openid.providers.*.credentialsFile"),
    key("http.auth.openid.providers.*.name"),
    key("http.auth.openid.providers.*.clientid"),
    key("http.auth.openid.providers.*.clientsecret"),
    key("http.auth.openid.providers.*.keypath"),
    key("http.auth.openid.providers.*.issuer"),
    key("http.auth.openid.providers.*.authurl"),
    key("http.auth.openid.providers.*.tokenurl"),
    key("http.auth.openid.providers.*.scopes"),
    key("http.auth.openid.providers.*.claimMapping.username"),
    since("http.auth.openid.providers.*.claimMapping.groups", 2, 1, 17),
    since("http.auth.openid.callbackAllowOrigins", 2, 1, 15),
    key("http.auth.apikey"),
    key("http.auth.failDelay"),
    key("http.auth.sessionKeysFile"),
    key("http.auth.sessionDriver.**"),
    key("http.auth.secureSession"),
    since("http.auth.mtls.identityAttributes", 2, 1, 12),
    since("http.auth.mtls.uriSanPattern", 2, 1, 12),
    since("http.auth.mtls.uriSanIndex", 2, 1, 12),
    since("http.auth.mtls.dnsSanIndex", 2, 1, 12),
    since("http.auth.mtls.emailSanIndex", 2, 1, 12),
    key("http.accessControl.repositories.*.policies[].users"),
    key("http.accessControl.repositories.*.policies[].groups"),
    key("http.accessControl.repositories.*.policies[].actions"),
    since(
        "http.accessControl.repositories.*.policies[].conditions[].expression",
        2,
        1,
        17,
    ),
    since(
        "http.accessControl.repositories.*.policies[].conditions[].message",
        2,
        1,
        17,
    ),
    key("http.accessControl.repositories.*.defaultPolicy"),
    key("http.accessControl.repositories.*.anonymousPolicy"),
    key("http.accessControl.adminPolicy.users"),
    key("http.accessControl.adminPolicy.groups"),
    key("http.accessControl.adminPolicy.actions"),
    key("http.accessControl.groups.*.users"),
    key("http.accessControl.metrics.users"),
    since("http.accessControl.metrics.anonymousPolicy", 2, 1, 18),
    // log
    key("log.level"),
    key("log.output"),
    key("log.audit"),
    // scheduler and cluster
    key("scheduler.numWorkers"),
    key("cluster.members"),
    key("cluster.hashKey"),
    key("cluster.tls.cert"),
    key("cluster.tls.key"),
    key("cluster.tls.cacert"),
    // extensions
    key("extensions.sync.enable"),
    key("extensions.sync.credentialsFile"),
    key("extensions.sync.downloadDir"),
    key("extensions.sync.registries[].urls"),
    key("extensions.sync.registries[].pollInterval"),
    key("extensions.sync.registries[].content[].prefix"),
    key("extensions.sync.registries[].content[].tags.regex"),
    key("extensions.sync.registries[].content[].tags.excludeRegex"),
    key("extensions.sync.registries[].content[].tags.semver"),
    key("extensions.sync.registries[].content[].destination"),
    key("extensions.sync.registries[].content[].stripPrefix"),
    key("extensions.sync.registries[].tlsVerify"),
    key("extensions.sync.registries[].onDemand"),
    key("extensions.sync.registries[].certDir"),
    key("extensions.sync.registries[].maxRetries"),
    key("extensions.sync.registries[].retryDelay"),
    since("extensions.sync.registries[].maxRetryDelay", 2, 1, 19),
    key("extensions.sync.registries[].onlySigned"),
    since(
        "extensions.sync.registries[].syncLegacyCosignTags",
        2,
        1,
        15,
    ),
    key("extensions.sync.registries[].credentialHelper"),
    since(
        "extensions.sync.registries[].oauth2CredentialHelper.**",
        2,
        1,
        19,
    ),
    key("extensions.sync.registries[].preserveDigest"),
    key("extensions.sync.registries[].syncTimeout"),
    // Post-v2.1.20 sync keys: first shipped after v2.1.20, so v2.1.21 at the earliest.
    since(
        "extensions.sync.registries[].manifestCheckInterval",
        2,
        1,
        21,
    ),
    since("extensions.sync.registries[].reqConcurrent", 2, 1, 21),
    since("extensions.sync.registries[].reqPerSec", 2, 1, 21),
    since("extensions.sync.registries[].disableHTTP2", 2, 1, 21),
    since("extensions.sync.registries[].maxIdleConnsPerHost", 2, 1, 21),
    key("extensions.search.enable"),
    key("extensions.search.cve.updateInterval"),
    key("extensions.search.cve.trivy.dbRepository"),
    key("extensions.search.cve.trivy.javaDBRepository"),
    since("extensions.search.cve.trivy.vulnSeveritySources", 2, 1, 16),
    since("extensions.search.cve.trivy.sbom.enable", 2, 1, 18),
    since("extensions.search.cve.trivy.sbom.format", 2, 1, 18),
    key("extensions.metrics.enable"),
    key("extensions.metrics.prometheus.path"),
    key("extensions.scrub.enable"),
    key("extensions.scrub.interval"),
    key("extensions.ui.enable"),
    key("extensions.lint.enable"),
    key("extensions.lint.mandatoryAnnotations"),
    key("extensions.trust.enable"),
    key("extensions.trust.cosign"),
    key("extensions.trust.notation"),
    key("extensions.events.enable"),
    key("extensions.events.sinks[].**"),
    key("extensions.mgmt.enable"),
    key("extensions.apikey.enable"),
];

/// Values of `storageDriver.name` and the first release accepting each.
pub const STORAGE_DRIVERS: &[(&str, ZotVersion)] = &[
    ("s3", BASE),
    ("gcs", ZotVersion::new(2, 1, 15)),
    ("azure", ZotVersion::new(2, 1, 18)),
];

/// Every key pattern with its first release, storage keys expanded under `storage` and
/// `storage.subPaths.*`.
pub fn all_entries() -> Vec<(String, ZotVersion)> {
    let mut out: Vec<(String, ZotVersion)> =
        KEYS.iter().map(|k| (k.path.to_string(), k.since)).collect();
    for k in STORE_KEYS {
        out.push((format!("storage.{}", k.path), k.since));
        out.push((format!("storage.subPaths.*.{}", k.path), k.since));
    }
    out
}

/// What the key table says about one path for one release.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyStatus {
    /// The release accepts the key.
    Accepted,
    /// A later release accepts the key; this is the first one.
    NeedsVersion(ZotVersion),
    /// No supported release accepts the key.
    Unknown,
}

fn segments(path: &str) -> Vec<String> {
    path.split('.')
        .map(|s| s.trim_end_matches("[]").to_ascii_lowercase())
        .collect()
}

/// Whether a concrete path (or a prefix of it) is covered by a pattern.
fn covers(pattern: &[String], path: &[String]) -> bool {
    for (i, seg) in path.iter().enumerate() {
        match pattern.get(i).map(String::as_str) {
            None => return false,
            Some("**") => return true,
            Some("*") => {}
            Some(p) if p == seg => {}
            Some(_) => return false,
        }
    }
    true
}

/// Looks a concrete key path (`storage.retention.policies[].deleteUntagged`) up for a release.
pub fn key_status(path: &str, version: ZotVersion) -> KeyStatus {
    static PATTERNS: std::sync::OnceLock<Vec<(Vec<String>, ZotVersion)>> =
        std::sync::OnceLock::new();
    let patterns = PATTERNS.get_or_init(|| {
        all_entries()
            .into_iter()
            .map(|(pattern, since)| (segments(&pattern), since))
            .collect()
    });
    let path = segments(path);
    let mut earliest: Option<ZotVersion> = None;
    for (pattern, since) in patterns {
        let since = *since;
        if covers(pattern, &path) {
            if since <= version {
                return KeyStatus::Accepted;
            }
            earliest = Some(earliest.map_or(since, |e| e.min(since)));
        }
    }
    earliest.map_or(KeyStatus::Unknown, KeyStatus::NeedsVersion)
}

/// Whether the release accepts the key path.
pub fn accepts(path: &str, version: ZotVersion) -> bool {
    key_status(path, version) == KeyStatus::Accepted
}

/// Every key path in a config document, depth first in document order, with `[]` after list
/// keys whose elements are objects. Free-form maps are listed key by key too.
pub fn key_paths(config: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    walk(config, "", &mut out);
    out
}

fn walk(value: &serde_json::Value, prefix: &str, out: &mut Vec<String>) {
    if let serde_json::Value::Object(map) = value {
        for (k, v) in map {
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            out.push(path.clone());
            match v {
                serde_json::Value::Object(_) => walk(v, &path, out),
                serde_json::Value::Array(items) => {
                    for item in items.iter().filter(|i| i.is_object()) {
                        walk(item, &format!("{path}[]"), out);
                    }
                }
                _ => {}
            }
        }
    }
}

/// The key paths of a config document the release does not accept, each with its status.
pub fn unaccepted_keys(
    config: &serde_json::Value,
    version: ZotVersion,
) -> Vec<(String, KeyStatus)> {
    let mut seen = std::collections::BTreeSet::new();
    key_paths(config)
        .into_iter()
        .filter_map(|p| match key_status(&p, version) {
            KeyStatus::Accepted => None,
            status => Some((p, status)),
        })
        .filter(|(p, _)| seen.insert(p.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const V18: ZotVersion = ZotVersion::new(2, 1, 18);
    const V19: ZotVersion = ZotVersion::new(2, 1, 19);

    #[test]
    fn gc_time_window_is_accepted_from_v2_1_19() {
        assert_eq!(
            key_status("storage.gcTimeWindow", V18),
            KeyStatus::NeedsVersion(V19)
        );
        assert!(accepts("storage.gcTimeWindow", V19));
        assert!(accepts("storage.subPaths./a.gcTimeWindow", V19));
    }

    #[test]
    fn keys_are_matched_case_insensitively_like_viper() {
        assert!(accepts("storage.GCDELAY", V18));
        assert!(accepts("HTTP.Auth.HTPasswd.Path", V18));
    }

    #[test]
    fn prefixes_lists_and_free_form_maps_are_accepted() {
        assert!(accepts("storage.retention", V18));
        assert!(accepts("storage.retention.policies", V18));
        assert!(accepts(
            "storage.retention.policies[].keepTags[].patterns",
            V18
        ));
        assert!(accepts("storage.storageDriver.anything", V18));
        assert!(accepts(
            "http.accessControl.repositories.team-a/**.anonymousPolicy",
            V18
        ));
        assert_eq!(key_status("storage.userprefs", V18), KeyStatus::Unknown);
        assert_eq!(key_status("extensions.userprefs", V18), KeyStatus::Unknown);
    }

    #[test]
    fn unaccepted_keys_walks_lists_of_objects() {
        let config = serde_json::json!({
            "storage": {"retention": {"policies": [{"repositories": ["**"], "keepUntagged": {}}]}},
            "extensions": {"sync": {"registries": [{"urls": ["https://x"], "reqConcurrent": 2}]}}
        });
        let bad: Vec<String> = unaccepted_keys(&config, V18)
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(
            bad,
            [
                "storage.retention.policies[].keepUntagged",
                "extensions.sync.registries[].reqConcurrent"
            ]
        );
    }
}
