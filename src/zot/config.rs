//! A typed model of the part of zot's `config.json` the operator renders.
//!
//! Field order is the key order of the rendered file and maps are `BTreeMap`s, so equal input
//! always serialises to identical bytes. Optional fields are omitted when unset, leaving zot's
//! own default in force. Key names are zot's (camelCase; free-form driver maps lower-case).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// zot's `config.json`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ZotConfig {
    /// Storage, garbage collection and retention of the default store.
    pub storage: StorageConfig,
    /// The HTTP listener, TLS, authentication and access control.
    pub http: HttpConfig,
    /// Logging.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<LogConfig>,
    /// Extensions (sync, search, ui, metrics, scrub).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<ExtensionsConfig>,
    /// Scale-out cluster membership.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterConfig>,
}

/// `storage`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StorageConfig {
    /// Local directory of the store (with a cloud driver: of local caches and scratch files).
    pub root_directory: String,
    /// Deduplicate blobs across repositories.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedupe: Option<bool>,
    /// Use `cacheDriver` for the dedupe cache and metadata database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_cache: Option<bool>,
    /// Run garbage collection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gc: Option<bool>,
    /// Minimum age of an unreferenced blob before deletion (Go duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gc_delay: Option<String>,
    /// Pause between garbage collection sweeps (Go duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gc_interval: Option<String>,
    /// UTC window `HH:MM-HH:MM` in which a sweep may start (v2.1.19+).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gc_time_window: Option<String>,
    /// Untagged-manifest and referrer cleanup done by garbage collection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionConfig>,
    /// Cloud storage driver parameters (`name: s3`, `bucket`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_driver: Option<BTreeMap<String, serde_json::Value>>,
    /// Remote cache parameters (`name: redis|dynamodb`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_driver: Option<BTreeMap<String, serde_json::Value>>,
}

/// `storage.retention`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RetentionConfig {
    /// Minimum age of an untagged manifest or orphaned referrer before deletion (Go duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<String>,
    /// Policies; the first whose repositories match a repository applies to it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<RetentionPolicyConfig>,
}

/// `storage.retention.policies[]`. Without `keepTags` every tag is kept.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RetentionPolicyConfig {
    /// Repository globs the policy applies to.
    pub repositories: Vec<String>,
    /// Delete referrers whose subject is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_referrers: Option<bool>,
    /// Delete manifests no tag or index references.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_untagged: Option<bool>,
}

/// `http`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HttpConfig {
    /// Listen address.
    pub address: String,
    /// Listen port, as a string.
    pub port: String,
    /// The URL users reach zot at (OpenID redirects).
    #[serde(
        rename = "externalURL",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub external_url: Option<String>,
    /// Realm of Basic authentication challenges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realm: Option<String>,
    /// Longest read of one request, body included (Go duration; v2.1.17+).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_timeout: Option<String>,
    /// Longest write of one response (Go duration; v2.1.17+).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_timeout: Option<String>,
    /// Non-OCI media types accepted (`docker2s2`: Docker image manifest v2 schema 2).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compat: Vec<String>,
    /// TLS certificate files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    /// Authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthConfig>,
    /// Authorization rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_control: Option<AccessControlConfig>,
}

/// `http.tls`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TlsConfig {
    /// Certificate chain (PEM) path.
    pub cert: String,
    /// Private key (PEM) path.
    pub key: String,
    /// CA bundle that verifies client certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cacert: Option<String>,
}

/// `http.auth`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AuthConfig {
    /// htpasswd file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub htpasswd: Option<HtpasswdConfig>,
    /// LDAP sign-in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ldap: Option<LdapConfig>,
    /// Bearer token authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer: Option<BearerConfig>,
    /// OpenID / OAuth2 sign-in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openid: Option<OpenIdConfig>,
    /// API keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apikey: Option<bool>,
    /// Client-certificate identity rules (v2.1.12+).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtls: Option<MtlsConfig>,
    /// Seconds slept after a failed login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_delay: Option<u32>,
    /// Where login sessions live (`name: redis` shares them between cluster members).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_driver: Option<BTreeMap<String, serde_json::Value>>,
}

/// `http.auth.ldap`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LdapConfig {
    /// Server host.
    pub address: String,
    /// Server port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    /// Plain LDAP (no TLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure: Option<bool>,
    /// Upgrade plain LDAP with StartTLS.
    #[serde(rename = "startTLS", default, skip_serializing_if = "Option::is_none")]
    pub start_tls: Option<bool>,
    /// Skip server certificate verification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_verify: Option<bool>,
    /// CA bundle path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<String>,
    /// Search base.
    #[serde(rename = "baseDN")]
    pub base_dn: String,
    /// User name attribute.
    pub user_attribute: String,
    /// Extra user filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_filter: Option<String>,
    /// Group membership attribute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_group_attribute: Option<String>,
    /// Search the subtree.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtree_search: Option<bool>,
    /// JSON file with `bindDN` and `bindPassword`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_file: Option<String>,
}

/// `http.auth.bearer`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BearerConfig {
    /// Token server URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realm: Option<String>,
    /// Service name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Token-verifying certificate or public key (path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<String>,
    /// OIDC workload identity issuers (v2.1.14+).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub oidc: Vec<BearerOidcConfig>,
}

/// `http.auth.bearer.oidc[]`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BearerOidcConfig {
    /// Issuer URL.
    pub issuer: String,
    /// Accepted audiences.
    pub audiences: Vec<String>,
    /// Claim validation and mapping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_mapping: Option<BearerClaimMappingConfig>,
    /// CA bundle path of the issuer (v2.1.15+).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_authority_file: Option<String>,
}

/// `http.auth.bearer.oidc[].claimMapping`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BearerClaimMappingConfig {
    /// CEL expression of the user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
}

/// `http.auth.openid`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OpenIdConfig {
    /// Providers by kind (`oidc`, `google`, `gitlab`, `github`).
    pub providers: BTreeMap<String, OpenIdProviderConfig>,
}

/// `http.auth.openid.providers.<kind>` (zot's keys are lower-case here).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OpenIdProviderConfig {
    /// JSON file with `clientid` and `clientsecret`.
    pub credentials_file: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Issuer URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Scopes.
    pub scopes: Vec<String>,
    /// Claim mapping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_mapping: Option<OpenIdClaimMappingConfig>,
}

/// `http.auth.openid.providers.<kind>.claimMapping`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OpenIdClaimMappingConfig {
    /// Username claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Groups claim (v2.1.17+).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<String>,
}

/// `http.auth.mtls`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MtlsConfig {
    /// Identity attributes tried in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identity_attributes: Vec<String>,
    /// URI SAN extraction pattern.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri_san_pattern: Option<String>,
}

/// `http.auth.htpasswd`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HtpasswdConfig {
    /// Path of the bcrypt htpasswd file.
    pub path: String,
}

/// `http.accessControl`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AccessControlConfig {
    /// Rules per repository glob.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub repositories: BTreeMap<String, RepositoryPolicyConfig>,
    /// Users with every action everywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_policy: Option<UsersActionsConfig>,
    /// Who may read the metrics endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<MetricsAccessConfig>,
}

/// `http.accessControl.repositories.<glob>`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryPolicyConfig {
    /// Per-user grants.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<UsersActionsConfig>,
    /// Actions of every authenticated user.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub default_policy: Vec<String>,
    /// Actions of anonymous clients.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub anonymous_policy: Vec<String>,
}

/// Users and the actions granted to them.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UsersActionsConfig {
    /// User names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,
    /// Group names (LDAP groups, OpenID groups claim).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Granted actions.
    pub actions: Vec<String>,
}

/// `http.accessControl.metrics`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MetricsAccessConfig {
    /// Users who may read metrics.
    pub users: Vec<String>,
}

/// `log`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LogConfig {
    /// `debug`, `info`, `warn` or `error`.
    pub level: String,
}

/// `extensions`. A present extension object is enabled; `enable: true` is rendered explicitly.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExtensionsConfig {
    /// Mirroring from upstream registries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<SyncConfig>,
    /// GraphQL search (and zot's metadata database).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<EnableConfig>,
    /// Web UI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ui: Option<EnableConfig>,
    /// Prometheus metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<MetricsConfig>,
    /// Periodic integrity check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrub: Option<ScrubConfig>,
}

/// An extension with only an `enable` switch.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EnableConfig {
    /// Turn the extension on.
    pub enable: bool,
}

/// `extensions.sync`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SyncConfig {
    /// Turn sync on.
    pub enable: bool,
    /// JSON file `{host: {username, password}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_file: Option<String>,
    /// Local staging directory; required with cloud storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download_dir: Option<String>,
    /// Upstream registries.
    pub registries: Vec<SyncRegistryConfig>,
}

/// `extensions.sync.registries[]`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SyncRegistryConfig {
    /// Upstream URLs, tried in order.
    pub urls: Vec<String>,
    /// Sync on demand, when a client asks for a missing image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_demand: Option<bool>,
    /// Period of the periodic sync (Go duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll_interval: Option<String>,
    /// Verify the upstream's TLS certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_verify: Option<bool>,
    /// What to mirror.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content: Vec<SyncContentConfig>,
    /// Retries of a failed sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    /// Pause between retries (Go duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_delay: Option<String>,
    /// Mirror only signed images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub only_signed: Option<bool>,
}

/// `extensions.sync.registries[].content[]`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SyncContentConfig {
    /// Upstream repository glob.
    pub prefix: String,
    /// Tag filters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<SyncTagsConfig>,
    /// Local repository prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    /// Drop the upstream prefix from local names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strip_prefix: Option<bool>,
}

/// `extensions.sync.registries[].content[].tags`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SyncTagsConfig {
    /// Tags to mirror (Go regex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// Tags never to mirror (Go regex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_regex: Option<String>,
    /// Only semantic-version tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub semver: Option<bool>,
}

/// `extensions.metrics`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MetricsConfig {
    /// Turn metrics on.
    pub enable: bool,
    /// Prometheus endpoint.
    pub prometheus: PrometheusConfig,
}

/// `extensions.metrics.prometheus`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusConfig {
    /// HTTP path of the metrics endpoint.
    pub path: String,
}

/// `extensions.scrub`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ScrubConfig {
    /// Turn scrub on.
    pub enable: bool,
    /// Period of the check (Go duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
}

/// `cluster`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClusterConfig {
    /// `host:port` of every member, identical order on each.
    pub members: Vec<String>,
    /// 16-character SipHash key that shards repositories over members.
    pub hash_key: String,
}
