//! What the renderer needs to know about a registry, in zot's terms. Built from a `Registry`
//! spec by the controller's adapter; nothing here knows Kubernetes.
//!
//! Durations and patterns stay strings as the user wrote them: the renderer checks and
//! normalises them, so one problem report covers every field.

use std::collections::BTreeMap;

/// Where zot's pods mount things; shared by the renderer and the resource builders.
pub mod paths {
    /// Directory of `config.json` (the ConfigMap mount).
    pub const CONFIG_DIR: &str = "/etc/zot";
    /// The config file zot is started with.
    pub const CONFIG_FILE: &str = "/etc/zot/config.json";
    /// Local storage root (the data volume).
    pub const ROOT_DIRECTORY: &str = "/var/lib/registry";
    /// Sync staging directory used with cloud storage.
    pub const SYNC_DOWNLOAD_DIR: &str = "/var/lib/registry/_sync";
    /// Directory of the htpasswd Secret mount.
    pub const HTPASSWD_DIR: &str = "/secrets/htpasswd";
    /// The htpasswd file.
    pub const HTPASSWD_FILE: &str = "/secrets/htpasswd/htpasswd";
    /// Directory of the TLS Secret mount.
    pub const TLS_DIR: &str = "/secrets/tls";
    /// TLS certificate chain.
    pub const TLS_CERT: &str = "/secrets/tls/tls.crt";
    /// TLS private key.
    pub const TLS_KEY: &str = "/secrets/tls/tls.key";
    /// Directory of the client CA Secret mount (mTLS).
    pub const CLIENT_CA_DIR: &str = "/secrets/client-ca";
    /// CA bundle verifying client certificates.
    pub const TLS_CA: &str = "/secrets/client-ca/ca.crt";
    /// Directory of the bearer token server's certificate mount.
    pub const BEARER_DIR: &str = "/secrets/bearer";
    /// Certificate (or public key) verifying bearer tokens.
    pub const BEARER_CERT: &str = "/secrets/bearer/cert.pem";
    /// Directory of the LDAP credentials Secret mount.
    pub const LDAP_CREDENTIALS_DIR: &str = "/secrets/ldap";
    /// zot's LDAP credentials file (`bindDN`, `bindPassword`).
    pub const LDAP_CREDENTIALS_FILE: &str = "/secrets/ldap/credentials.json";
    /// Directory of the LDAP CA Secret mount.
    pub const LDAP_CA_DIR: &str = "/secrets/ldap-ca";
    /// CA bundle verifying the LDAP server.
    pub const LDAP_CA: &str = "/secrets/ldap-ca/ca.crt";

    /// Directory of one OpenID provider's credentials mount.
    pub fn openid_dir(provider: &str) -> String {
        format!("/secrets/openid/{provider}")
    }
    /// One OpenID provider's credentials file (`clientid`, `clientsecret`).
    pub fn openid_credentials_file(provider: &str) -> String {
        format!("/secrets/openid/{provider}/credentials.json")
    }
    /// Directory of the CA mount of bearer OIDC issuer `index`.
    pub fn bearer_oidc_ca_dir(index: usize) -> String {
        format!("/secrets/bearer-oidc-{index}")
    }
    /// CA bundle verifying bearer OIDC issuer `index`.
    pub fn bearer_oidc_ca(index: usize) -> String {
        format!("/secrets/bearer-oidc-{index}/ca.crt")
    }
    /// Directory of the sync credentials Secret mount.
    pub const SYNC_CREDENTIALS_DIR: &str = "/secrets/sync";
    /// The sync credentials file.
    pub const SYNC_CREDENTIALS_FILE: &str = "/secrets/sync/credentials.json";
}

/// The port zot listens on inside the pod.
pub const ZOT_PORT: u16 = 5000;

/// Everything the renderer turns into `config.json`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RenderInput {
    /// Where images are stored.
    pub storage: StorageInput,
    /// Deduplicate blobs; `None` leaves zot's default (on).
    pub dedupe: Option<bool>,
    /// Garbage collection.
    pub gc: GcInput,
    /// Untagged-manifest cleanup.
    pub untagged: UntaggedInput,
    /// Delete referrers whose subject is gone; `None` leaves zot's default (off).
    pub delete_orphan_referrers: Option<bool>,
    /// Listener, TLS, authentication, authorization.
    pub http: HttpInput,
    /// Log level (`debug`, `info`, `warn`, `error`); `None` renders `info`.
    pub log_level: Option<String>,
    /// Mirroring from upstream registries.
    pub sync: Option<SyncInput>,
    /// GraphQL search extension.
    pub search: bool,
    /// Web UI extension (needs search).
    pub ui: bool,
    /// Metrics extension with its endpoint path (`/metrics` when empty).
    pub metrics: Option<MetricsInput>,
    /// Scrub extension with its optional interval.
    pub scrub: Option<ScrubInput>,
    /// Scale-out membership, for more than one replica.
    pub cluster: Option<ClusterInput>,
    /// Raw zot config merged last (JSON merge patch: objects merge, `null` removes a key).
    pub raw: Option<serde_json::Value>,
}

/// Storage backend.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum StorageInput {
    /// A local filesystem (the pod's volume) at [`paths::ROOT_DIRECTORY`].
    #[default]
    Local,
    /// An S3 bucket.
    S3(S3Input),
}

/// An S3 bucket as zot's storage driver.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct S3Input {
    /// Bucket name.
    pub bucket: String,
    /// Region.
    pub region: String,
    /// Endpoint of an S3-compatible service.
    pub endpoint: Option<String>,
    /// Key prefix in the bucket (default `/zot`).
    pub root_directory: Option<String>,
    /// Remote cache and metadata database.
    pub cache: Option<CacheInput>,
}

/// zot's remote cache.
#[derive(Clone, Debug, PartialEq)]
pub enum CacheInput {
    /// Redis at a URL.
    Redis {
        /// `redis://` or `rediss://` URL.
        url: String,
        /// Key prefix (zot default `zot`).
        key_prefix: Option<String>,
    },
    /// DynamoDB tables named `<table_prefix>-<purpose>`.
    DynamoDb {
        /// AWS region.
        region: String,
        /// Endpoint override.
        endpoint: Option<String>,
        /// Table name prefix.
        table_prefix: String,
    },
}

/// Garbage collection.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GcInput {
    /// Run GC; `None` = zot's default (on).
    pub enabled: Option<bool>,
    /// Pause between sweeps (Go duration).
    pub interval: Option<String>,
    /// Minimum age of unreferenced blobs (Go duration).
    pub delay: Option<String>,
    /// UTC start window `HH:MM-HH:MM` (v2.1.19+).
    pub time_window: Option<String>,
}

/// Untagged-manifest cleanup.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UntaggedInput {
    /// Delete untagged manifests; `None` = zot's default (on).
    pub delete: Option<bool>,
    /// Minimum age before deletion (Go duration); `None` = gcDelay.
    pub delay: Option<String>,
}

/// Listener, TLS and access.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HttpInput {
    /// Basic realm.
    pub realm: Option<String>,
    /// Serve TLS from [`paths::TLS_CERT`] / [`paths::TLS_KEY`].
    pub tls: bool,
    /// Also verify client certificates with [`paths::TLS_CA`].
    pub tls_client_ca: bool,
    /// Authenticate with the htpasswd file at [`paths::HTPASSWD_FILE`].
    pub htpasswd: bool,
    /// Seconds slept after a failed login.
    pub fail_delay_seconds: Option<i64>,
    /// Authorization rules.
    pub access_control: Option<AccessControlInput>,
    /// Client-certificate identity rules (mTLS, with [`HttpInput::tls_client_ca`]).
    pub mtls: Option<MtlsInput>,
    /// Bearer token authentication.
    pub bearer: Option<BearerInput>,
    /// API keys (`http.auth.apikey`).
    pub api_keys: bool,
    /// LDAP sign-in.
    pub ldap: Option<LdapInput>,
    /// OpenID / OAuth2 sign-in.
    pub openid: Option<OpenIdInput>,
    /// Accept Docker v2 schema 2 manifests (`http.compat: ["docker2s2"]`); `None` = on.
    pub docker_compat: Option<bool>,
    /// Longest read of one request (Go duration, `0s` = none); `None` renders
    /// [`DEFAULT_HTTP_TIMEOUT`] on releases that have the key.
    pub read_timeout: Option<String>,
    /// Longest write of one response (Go duration, `0s` = none); `None` renders
    /// [`DEFAULT_HTTP_TIMEOUT`] on releases that have the key.
    pub write_timeout: Option<String>,
}

/// How zot names the user of a client certificate.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MtlsInput {
    /// Identity attributes tried in order (`CommonName`, `Subject`, `Email`, `URI`, `DNSName`).
    pub identity_attributes: Vec<String>,
    /// Regular expression extracting the user from a URI SAN.
    pub uri_san_pattern: Option<String>,
}

/// Bearer token authentication.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BearerInput {
    /// Token server URL.
    pub realm: Option<String>,
    /// Service name tokens are issued for.
    pub service: Option<String>,
    /// The token-verifying certificate is mounted at [`paths::BEARER_CERT`].
    pub cert: bool,
    /// OIDC workload identity issuers.
    pub oidc: Vec<BearerOidcInput>,
}

/// An OIDC issuer of workload identity tokens.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BearerOidcInput {
    /// Issuer URL.
    pub issuer: String,
    /// Accepted audiences.
    pub audiences: Vec<String>,
    /// CEL expression of the user name.
    pub username_expression: Option<String>,
    /// A CA bundle is mounted at [`paths::bearer_oidc_ca`] of this issuer's index.
    pub ca: bool,
}

/// LDAP sign-in.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LdapInput {
    /// Server host.
    pub address: String,
    /// Server port.
    pub port: Option<i64>,
    /// `ldaps`, `starttls` or `none`.
    pub tls: LdapTlsInput,
    /// Skip server certificate verification.
    pub skip_verify: Option<bool>,
    /// A CA bundle is mounted at [`paths::LDAP_CA`].
    pub ca: bool,
    /// Search base.
    pub base_dn: String,
    /// User name attribute.
    pub user_attribute: String,
    /// Extra user filter.
    pub user_filter: Option<String>,
    /// Group membership attribute.
    pub user_group_attribute: Option<String>,
    /// Search the subtree.
    pub subtree_search: Option<bool>,
    /// A credentials file is mounted at [`paths::LDAP_CREDENTIALS_FILE`].
    pub credentials_file: bool,
}

/// LDAP transport security.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LdapTlsInput {
    /// LDAP over TLS.
    #[default]
    Ldaps,
    /// StartTLS.
    StartTls,
    /// No TLS.
    None,
}

/// OpenID / OAuth2 sign-in.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OpenIdInput {
    /// `http.externalURL`.
    pub external_url: Option<String>,
    /// Providers in the user's order.
    pub providers: Vec<OpenIdProviderInput>,
}

/// One OpenID / OAuth2 provider; its credentials file is at [`paths::openid_credentials_file`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OpenIdProviderInput {
    /// `oidc`, `google`, `gitlab` or `github`.
    pub kind: String,
    /// Display name.
    pub name: Option<String>,
    /// Issuer URL.
    pub issuer: Option<String>,
    /// Scopes.
    pub scopes: Vec<String>,
    /// Username claim.
    pub username_claim: Option<String>,
    /// Groups claim (v2.1.17+).
    pub groups_claim: Option<String>,
}

/// The read and write timeout rendered when the spec sets none, on releases that have them
/// (v2.1.17+, whose own default of 60 s cuts off the push of a large layer).
pub const DEFAULT_HTTP_TIMEOUT: &str = "30m";

/// Authorization rules.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AccessControlInput {
    /// Rules per repository glob, in the user's order.
    pub repositories: Vec<RepositoryAccessInput>,
    /// Users with every action everywhere.
    pub admin_users: Vec<String>,
    /// Groups with every action everywhere.
    pub admin_groups: Vec<String>,
    /// Users who may read metrics.
    pub metrics_users: Vec<String>,
}

/// Rules for repositories matching one glob.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RepositoryAccessInput {
    /// Repository glob.
    pub pattern: String,
    /// Users and groups → actions.
    pub policies: Vec<AccessPolicyInput>,
    /// Actions of authenticated users.
    pub default_policy: Vec<String>,
    /// Actions of anonymous clients.
    pub anonymous_policy: Vec<String>,
}

/// Actions granted to users and groups.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AccessPolicyInput {
    /// User names.
    pub users: Vec<String>,
    /// Group names.
    pub groups: Vec<String>,
    /// Granted actions.
    pub actions: Vec<String>,
}

/// Mirroring.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SyncInput {
    /// Credentials file at [`paths::SYNC_CREDENTIALS_FILE`].
    pub credentials_file: bool,
    /// Upstream registries.
    pub registries: Vec<SyncRegistryInput>,
}

/// One upstream registry.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SyncRegistryInput {
    /// Upstream URLs.
    pub urls: Vec<String>,
    /// On-demand sync.
    pub on_demand: Option<bool>,
    /// Periodic sync interval (Go duration).
    pub poll_interval: Option<String>,
    /// Verify upstream TLS.
    pub tls_verify: Option<bool>,
    /// What to mirror.
    pub content: Vec<SyncContentInput>,
    /// Retries.
    pub max_retries: Option<i64>,
    /// Pause between retries (Go duration).
    pub retry_delay: Option<String>,
    /// Only signed images.
    pub only_signed: Option<bool>,
}

/// One content filter.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SyncContentInput {
    /// Upstream repository glob.
    pub prefix: String,
    /// Tags to mirror (regex).
    pub tags_regex: Option<String>,
    /// Tags to skip (regex).
    pub exclude_tags_regex: Option<String>,
    /// Only semver tags.
    pub semver: Option<bool>,
    /// Local prefix.
    pub destination: Option<String>,
    /// Drop the upstream prefix.
    pub strip_prefix: Option<bool>,
}

/// Metrics extension.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetricsInput {
    /// Endpoint path; `None` renders `/metrics`.
    pub path: Option<String>,
}

/// Scrub extension.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ScrubInput {
    /// Period (Go duration), at least 2h.
    pub interval: Option<String>,
}

/// Scale-out membership.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClusterInput {
    /// `host:port` of every member, in order.
    pub members: Vec<String>,
    /// 16-character SipHash key.
    pub hash_key: String,
}

/// Builds a map from pairs; a helper for free-form driver maps.
pub(crate) fn driver_map<I>(pairs: I) -> BTreeMap<String, serde_json::Value>
where
    I: IntoIterator<Item = (&'static str, serde_json::Value)>,
{
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}
