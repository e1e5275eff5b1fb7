//! The zot-facing parts of a `Registry` spec: plain serde types the zot renderer reads as they
//! are (storage, garbage collection, authentication, sync, extensions, HTTP, log). Nothing here
//! knows a Kubernetes client or k8s-openapi, so `zot/` may import it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::refs::{SecretKeyRef, SecretRef, GO_DURATION_PATTERN};

/// The zot-facing parts of a `RegistrySpec`, borrowed: everything the zot renderer reads.
/// `RegistrySpec::zot` gives it; a new zot setting is a field of one of the types below.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ZotSpec<'a> {
    /// `spec.storage` (the renderer reads `s3`).
    pub storage: Option<&'a StorageSpec>,
    /// `spec.dedupe`.
    pub dedupe: Option<bool>,
    /// `spec.gc`.
    pub gc: Option<&'a GcSpec>,
    /// `spec.untagged`.
    pub untagged: Option<&'a UntaggedSpec>,
    /// `spec.referrers`.
    pub referrers: Option<&'a ReferrersSpec>,
    /// `spec.auth`.
    pub auth: Option<&'a AuthSpec>,
    /// `spec.tls`: zot serves HTTPS with the mounted certificate.
    pub tls: Option<&'a SecretRef>,
    /// `spec.sync`.
    pub sync: Option<&'a SyncSpec>,
    /// `spec.extensions`.
    pub extensions: Option<&'a ExtensionsSpec>,
    /// `spec.http`.
    pub http: Option<&'a HttpSpec>,
    /// `spec.log`.
    pub log: Option<&'a LogSpec>,
    /// `spec.config`: raw zot config merged last.
    pub config: Option<&'a serde_json::Value>,
}

impl<'a> ZotSpec<'a> {
    /// The S3 bucket, when images live in one.
    pub fn s3(&self) -> Option<&'a S3Storage> {
        self.storage.and_then(|s| s.s3.as_ref())
    }

    /// The remote cache of the S3 storage, when exactly one kind is set.
    pub fn cache(&self) -> Option<Cache<'a>> {
        self.s3()
            .and_then(|s3| s3.cache.as_ref())
            .and_then(CacheSpec::choice)
    }
}

/// The one remote cache a [`CacheSpec`] names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cache<'a> {
    /// Redis.
    Redis(&'a RedisCache),
    /// DynamoDB.
    DynamoDb(&'a DynamoDbCache),
}

impl CacheSpec {
    /// The cache, when exactly one of `redis` and `dynamodb` is set.
    pub fn choice(&self) -> Option<Cache<'_>> {
        match (&self.redis, &self.dynamodb) {
            (Some(redis), None) => Some(Cache::Redis(redis)),
            (None, Some(dynamo)) => Some(Cache::DynamoDb(dynamo)),
            _ => None,
        }
    }
}

/// Storage of a managed registry.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "!has(self.s3) || !has(self.size)",
    "message": "storage.size sizes the per-pod volume; with storage.s3 the images live in the bucket, so leave size unset"
}]))]
pub struct StorageSpec {
    /// Size of each pod's PersistentVolumeClaim, e.g. `50Gi`. Default `10Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$"))]
    pub size: Option<String>,
    /// StorageClass of the PersistentVolumeClaim. Default: the cluster's default class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// Keep images in an S3 (or S3-compatible) bucket instead of a volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Storage>,
}

/// An S3 bucket as zot's storage driver.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3Storage {
    /// Bucket name.
    #[schemars(length(min = 3, max = 63))]
    pub bucket: String,
    /// Bucket region, e.g. `us-east-1`.
    pub region: String,
    /// Endpoint of an S3-compatible service (MinIO, Ceph); empty for AWS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Key prefix inside the bucket. Default `/zot`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_directory: Option<String>,
    /// Secret with `accessKey` and `secretKey` (exposed to zot as AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY). Unset: the pod's own identity (IRSA, instance profile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretRef>,
    /// Remote cache for dedupe and zot's metadata database; required with dedupe or
    /// replicas > 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheSpec>,
}

/// zot's remote cache / metadata database. Set exactly one of `redis` and `dynamodb`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.redis) != has(self.dynamodb)",
    "message": "set exactly one of cache.redis and cache.dynamodb"
}]))]
pub struct CacheSpec {
    /// A Redis server, e.g. `redis://redis.zot.svc:6379/0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisCache>,
    /// DynamoDB tables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dynamodb: Option<DynamoDbCache>,
}

/// Redis as zot's cache.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedisCache {
    /// Redis URL, `redis://` or `rediss://`.
    #[schemars(regex(pattern = r"^rediss?://"))]
    pub url: String,
    /// Prefix of every key zot writes. Default `zot`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_prefix: Option<String>,
}

/// DynamoDB as zot's cache. Table names default to `<registry name>-<purpose>`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DynamoDbCache {
    /// AWS region of the tables.
    pub region: String,
    /// Endpoint override (local DynamoDB); empty for AWS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Prefix of the table names; default: the Registry's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_prefix: Option<String>,
}

/// Garbage collection settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GcSpec {
    /// Run garbage collection. Default true. Without it zot never frees disk space.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Pause between the end of one sweep and the start of the next (Go duration). zot's
    /// default `1h`; `0s` runs one sweep at startup only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = GO_DURATION_PATTERN))]
    pub interval: Option<String>,
    /// Minimum age of an unreferenced blob or stale upload before it is deleted (Go duration).
    /// zot's default `1h`. Keep it above your longest push.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = GO_DURATION_PATTERN))]
    pub delay: Option<String>,
    /// UTC window `HH:MM-HH:MM` in which a sweep may start (zot v2.1.19 and later).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]):[0-5][0-9]$"))]
    pub time_window: Option<String>,
}

/// Cleanup of untagged manifests by zot's garbage collection. "Untagged" is zot's word for
/// any manifest or index that has no tag, that no index references and that has no `subject`
/// (referrers are handled by `referrers`) — images pushed by digest only are untagged from
/// the start — and its age is the modification time of its manifest blob (when it was pushed),
/// not the time it lost its last tag.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UntaggedSpec {
    /// Delete untagged manifests (see above), digest-only pushes included. zot's default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete: Option<bool>,
    /// Minimum age of an untagged manifest before deletion, counted from when its manifest
    /// was pushed (Go duration). Default: `gc.delay`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = GO_DURATION_PATTERN))]
    pub delay: Option<String>,
}

/// Cleanup of referrers by zot's garbage collection.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReferrersSpec {
    /// Delete signatures, SBOMs and other referrers whose subject image is gone. Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_orphans: Option<bool>,
}

/// Authentication and authorization of a managed registry.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthSpec {
    /// Secret with a bcrypt htpasswd file (`htpasswd -B`). Default key `htpasswd`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub htpasswd_secret_ref: Option<SecretKeyRef>,
    /// Realm announced in Basic authentication challenges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realm: Option<String>,
    /// Seconds to wait after a failed login, slowing password guessing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 60))]
    pub fail_delay_seconds: Option<i32>,
    /// Per-repository access control. Needs a sign-in method zot counts for the release
    /// (htpasswd, LDAP, OpenID, API keys; mTLS from v2.1.12; bearer from v2.1.14) unless every
    /// rule is anonymous-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_control: Option<AccessControlSpec>,
    /// Secret (type `kubernetes.io/basic-auth`: `username`, `password`) with the account the
    /// operator itself uses for health checks and retention: an htpasswd user (or, with
    /// `apiKeys`, that user's API key as `password`); with `bearer`, an account the token
    /// server issues tokens for. For Enforce policies it may `read` and `delete`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator_credentials_secret_ref: Option<SecretRef>,
    /// Client certificates (mTLS): zot verifies the certificates clients present with this CA
    /// and, from v2.1.12, counts a verified certificate as authentication for `accessControl`
    /// (the user is the certificate's identity). Clients without a certificate still sign in
    /// with a password. Needs `spec.tls`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtls: Option<MtlsSpec>,
    /// Bearer tokens issued by an external token server (Docker token authentication), and
    /// OIDC workload identity tokens (v2.1.14+). zot then accepts tokens only: passwords and
    /// API keys are no longer checked by zot itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer: Option<BearerSpec>,
    /// API keys (`zak_...`), created by a signed-in user (`POST /zot/auth/apikey`) and used as
    /// the password of Basic authentication. They live in zot's metadata database: on the
    /// volume, or in the cache of `storage.s3.cache` (refused on S3 without a cache, where
    /// every restart would revoke them). Needs another sign-in method (htpasswd, LDAP, OpenID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_keys: Option<bool>,
    /// Sign-in against an LDAP directory (Basic authentication checked by a bind).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ldap: Option<LdapSpec>,
    /// Sign-in through OpenID Connect / OAuth2 providers (browser login on the UI and
    /// `/zot/auth/login`); signed-in users get API keys for command-line clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openid: Option<OpenIdSpec>,
}

/// Client-certificate authentication.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MtlsSpec {
    /// Secret with the PEM CA bundle that signs client certificates. Default key `ca.crt`.
    pub client_ca_secret_ref: SecretKeyRef,
    /// Which parts of a client certificate name the user, tried in order (v2.1.12+). zot's
    /// default: `CommonName`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identity_attributes: Vec<MtlsIdentityAttribute>,
    /// Regular expression whose first group extracts the user from a URI SAN, e.g.
    /// `^spiffe://example.org/ns/(.*)$` (v2.1.12+; needs the `URI` identity attribute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri_san_pattern: Option<String>,
}

/// A part of a client certificate zot can take the user name from.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum MtlsIdentityAttribute {
    /// The subject's common name.
    CommonName,
    /// The whole subject distinguished name.
    Subject,
    /// The first e-mail SAN.
    Email,
    /// The first URI SAN (SPIFFE IDs).
    #[serde(rename = "URI")]
    Uri,
    /// The first DNS SAN.
    #[serde(rename = "DNSName")]
    DnsName,
}

/// Bearer token authentication.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "has(self.realm) == has(self.service) && has(self.service) == has(self.certSecretRef)",
        "message": "a token server needs realm, service and certSecretRef together"
    },
    {
        "rule": "has(self.realm) || has(self.oidc)",
        "message": "set a token server (realm, service, certSecretRef) or at least one oidc issuer"
    }
]))]
pub struct BearerSpec {
    /// URL of the token server clients are sent to, e.g. `https://auth.example.com/token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://[^\s/]+(/[^\s]*)?$"))]
    pub realm: Option<String>,
    /// The service name the token server issues tokens for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub service: Option<String>,
    /// Secret with the PEM certificate (or public key) that verifies the token server's
    /// signatures. Default key `cert.pem`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_secret_ref: Option<SecretKeyRef>,
    /// OIDC issuers whose ID tokens zot accepts as bearer tokens (workload identity, such as
    /// Kubernetes service-account tokens; v2.1.14+). `accessControl` authorizes their users.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub oidc: Vec<BearerOidcSpec>,
}

/// An OIDC issuer of workload identity tokens.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BearerOidcSpec {
    /// Issuer URL, as the tokens' `iss` claim spells it.
    #[schemars(regex(pattern = r"^https?://[^\s/]+(/[^\s]*)?$"))]
    pub issuer: String,
    /// Audiences a token must carry (one of them).
    #[schemars(length(min = 1))]
    pub audiences: Vec<String>,
    /// CEL expression giving the user name from `claims`. zot's default:
    /// `claims.iss + '/' + claims.sub`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_expression: Option<String>,
    /// Secret with the PEM CA bundle of the issuer's HTTPS certificate (v2.1.15+). Default key
    /// `ca.crt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretKeyRef>,
}

/// How zot talks to the LDAP server.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum LdapTls {
    /// LDAP over TLS (`ldaps://`, port 636 usually).
    #[default]
    #[serde(rename = "LDAPS")]
    Ldaps,
    /// Plain LDAP upgraded with StartTLS (port 389 usually).
    #[serde(rename = "StartTLS")]
    StartTls,
    /// Plain LDAP: passwords cross the network unencrypted.
    None,
}

/// LDAP sign-in.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LdapSpec {
    /// Host name or address of the LDAP server.
    #[schemars(length(min = 1))]
    pub address: String,
    /// Port. zot's default 389.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
    /// Transport security. Default LDAPS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<LdapTls>,
    /// Skip verification of the LDAP server's certificate. Only for test directories.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_verify: Option<bool>,
    /// Secret with the PEM CA bundle that signs the LDAP server's certificate. Default key
    /// `ca.crt`; without it the system roots are used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretKeyRef>,
    /// Where users are searched, e.g. `ou=people,dc=example,dc=org`.
    #[serde(rename = "baseDN")]
    #[schemars(length(min = 1))]
    pub base_dn: String,
    /// Attribute holding the user name, e.g. `uid`.
    #[schemars(length(min = 1))]
    pub user_attribute: String,
    /// Extra LDAP filter users must match, e.g. `(objectClass=person)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_filter: Option<String>,
    /// Attribute of a user holding their groups, e.g. `memberOf`; the groups can then be named
    /// in `accessControl` policies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_group_attribute: Option<String>,
    /// Search the whole subtree below `baseDN`, not only its direct children.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtree_search: Option<bool>,
    /// Secret with zot's LDAP credentials file: JSON `{"bindDN": "...", "bindPassword":
    /// "..."}` (both keys, nothing else). Default key `credentials.json`. Without it zot binds
    /// anonymously.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretKeyRef>,
}

/// OpenID Connect / OAuth2 sign-in.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OpenIdSpec {
    /// The URL users reach zot at (`https://registry.example.com`): providers redirect back to
    /// `<externalUrl>/zot/auth/callback/<provider>`. Without it zot uses its pod address,
    /// which no browser can reach.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://[^\s/]+(/[^\s]*)?$"))]
    pub external_url: Option<String>,
    /// Providers, at most one of each kind.
    #[schemars(length(min = 1, max = 4))]
    pub providers: Vec<OpenIdProvider>,
}

/// The kinds of sign-in provider zot knows.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum OpenIdProviderKind {
    /// Any OpenID Connect provider (Keycloak, Dex, Entra ID, Okta...), found by its issuer.
    #[default]
    Oidc,
    /// Google.
    Google,
    /// GitLab.
    Gitlab,
    /// GitHub (OAuth2, no issuer).
    Github,
}

/// One sign-in provider.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "self.kind == 'github' || has(self.issuer)",
    "message": "an OpenID Connect provider needs its issuer"
}]))]
pub struct OpenIdProvider {
    /// Which kind of provider.
    pub kind: OpenIdProviderKind,
    /// Name shown on the UI's login button.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Issuer URL (`https://sso.example.com/realms/main`); zot reads its discovery document
    /// at startup. Not for github.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://[^\s/]+(/[^\s]*)?$"))]
    pub issuer: Option<String>,
    /// Scopes requested, e.g. `[openid, profile, email, groups]`.
    #[schemars(length(min = 1))]
    pub scopes: Vec<String>,
    /// Secret with zot's client credentials file: JSON `{"clientid": "...", "clientsecret":
    /// "..."}` (both keys, nothing else). Default key `credentials.json`.
    pub credentials_secret_ref: SecretKeyRef,
    /// Claim that names the user. zot's default `email`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_claim: Option<String>,
    /// Claim that lists the user's groups (v2.1.17+). zot's default `groups`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups_claim: Option<String>,
}

/// zot's access control.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessControlSpec {
    /// Rules per repository glob (`team-a/**`); the most specific glob wins in zot.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repositories: Vec<RepositoryAccess>,
    /// Users with every action on every repository.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub admin_users: Vec<String>,
    /// Groups (LDAP `userGroupAttribute`, an OpenID groups claim) with every action on every
    /// repository.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub admin_groups: Vec<String>,
    /// Users who may read `/metrics`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics_users: Vec<String>,
}

/// Access rules for repositories matching one glob.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryAccess {
    /// Repository glob (`*` one path segment, `**` any depth).
    #[schemars(length(min = 1))]
    pub pattern: String,
    /// Users and the actions they may take.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<AccessPolicy>,
    /// Actions of any authenticated user.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub default_policy: Vec<AccessAction>,
    /// Actions of anonymous clients.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub anonymous_policy: Vec<AccessAction>,
}

/// Actions granted to a set of users and groups.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "(has(self.users) && size(self.users) > 0) || (has(self.groups) && size(self.groups) > 0)",
    "message": "a policy names at least one user or group"
}]))]
pub struct AccessPolicy {
    /// User names: htpasswd and LDAP users, OpenID users (by their username claim), client
    /// certificate identities.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,
    /// Group names: LDAP groups (`userGroupAttribute`), OpenID groups (`groupsClaim`). Use
    /// lower-case names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Granted actions.
    #[schemars(length(min = 1))]
    pub actions: Vec<AccessAction>,
}

/// An action in zot's access control.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum AccessAction {
    /// Pull.
    Read,
    /// Push to a new tag or repository.
    Create,
    /// Overwrite an existing tag.
    Update,
    /// Delete manifests and tags (retention needs it).
    Delete,
}

/// Mirroring from upstream registries (zot's sync extension).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncSpec {
    /// Upstream registries to mirror.
    #[schemars(length(min = 1, max = 32))]
    pub registries: Vec<SyncRegistry>,
    /// Secret with zot's sync credentials file (JSON `{"host": {"username", "password"}}`).
    /// Default key `credentials.json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretKeyRef>,
}

/// One upstream registry to mirror.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "(has(self.onDemand) && self.onDemand) || (has(self.pollInterval) && has(self.content) && size(self.content) > 0)",
    "message": "a sync registry must be onDemand, or periodic with pollInterval and at least one content entry"
}]))]
pub struct SyncRegistry {
    /// Upstream URLs, tried in order.
    #[schemars(length(min = 1, max = 8))]
    pub urls: Vec<String>,
    /// Pull from upstream when a client asks for an image zot lacks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_demand: Option<bool>,
    /// Period of the periodic sync (Go duration). Periodic sync needs `content`, and an
    /// upstream that serves its repository catalog (`/v2/_catalog`): zot lists it every period
    /// and syncs the repositories matching `content`. Docker Hub serves none, so a periodic
    /// sync from it is refused; use `onDemand` there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = GO_DURATION_PATTERN))]
    pub poll_interval: Option<String>,
    /// Verify the upstream's TLS certificate. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_verify: Option<bool>,
    /// What to mirror; empty with onDemand mirrors whatever is asked for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub content: Vec<SyncContent>,
    /// Retries of a failed sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_retries: Option<i32>,
    /// Pause between retries (Go duration); required with maxRetries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = GO_DURATION_PATTERN))]
    pub retry_delay: Option<String>,
    /// Mirror only signed images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub only_signed: Option<bool>,
}

/// A set of upstream repositories to mirror.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncContent {
    /// Repository glob upstream, e.g. `library/**`.
    #[schemars(length(min = 1))]
    pub prefix: String,
    /// Tags to mirror (regular expression); default all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags_regex: Option<String>,
    /// Tags never to mirror (regular expression).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_tags_regex: Option<String>,
    /// Mirror only tags that are semantic versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub semver: Option<bool>,
    /// Local repository prefix to store the mirror under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    /// Drop the upstream prefix from the local name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strip_prefix: Option<bool>,
}

/// zot extensions.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "!has(self.ui) || !self.ui || (has(self.search) && self.search)",
    "message": "the UI needs the search extension: set extensions.search: true"
}]))]
pub struct ExtensionsSpec {
    /// Search API (GraphQL); also gives retention per-tag push and pull times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<bool>,
    /// Web UI; needs search.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ui: Option<bool>,
    /// Prometheus metrics on `/metrics`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<bool>,
    /// Periodic read-only integrity check of stored images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrub: Option<ScrubSpec>,
}

/// zot's scrub extension.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScrubSpec {
    /// Period of the check (Go duration), at least `2h`. Default `24h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = GO_DURATION_PATTERN))]
    pub interval: Option<String>,
}

/// zot's HTTP listener.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpSpec {
    /// Accept Docker-format (Docker image manifest v2 schema 2 and manifest list) pushes, as
    /// zot's own image does (`http.compat: ["docker2s2"]`). Without it zot refuses what
    /// `docker push` sends with MANIFEST_INVALID and only OCI manifests can be pushed.
    /// Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_compat: Option<bool>,
    /// Longest time zot may spend reading one request, its body included (Go duration; `0s`
    /// = no limit). zot v2.1.17+ cuts every request at 60 s when unset, which breaks the push of
    /// a large layer, so the operator renders `30m` for those releases. Needs v2.1.17 or later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = GO_DURATION_PATTERN))]
    pub read_timeout: Option<String>,
    /// Longest time zot may spend writing one response, a blob download included (Go duration;
    /// `0s` = no limit). Default `30m` on v2.1.17+, where zot's own default is 60 s. Needs
    /// v2.1.17 or later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = GO_DURATION_PATTERN))]
    pub write_timeout: Option<String>,
}

/// zot's log settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogSpec {
    /// Log level. Default info.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<LogLevel>,
}

/// zot log levels.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Everything.
    Debug,
    /// Normal operation.
    #[default]
    Info,
    /// Problems only.
    Warn,
    /// Errors only.
    Error,
}

impl MtlsIdentityAttribute {
    /// zot's name of the attribute.
    pub const fn as_str(self) -> &'static str {
        match self {
            MtlsIdentityAttribute::CommonName => "CommonName",
            MtlsIdentityAttribute::Subject => "Subject",
            MtlsIdentityAttribute::Email => "Email",
            MtlsIdentityAttribute::Uri => "URI",
            MtlsIdentityAttribute::DnsName => "DNSName",
        }
    }
}

impl OpenIdProviderKind {
    /// zot's name of a provider kind (its key under `http.auth.openid.providers`).
    pub const fn as_str(self) -> &'static str {
        match self {
            OpenIdProviderKind::Oidc => "oidc",
            OpenIdProviderKind::Google => "google",
            OpenIdProviderKind::Gitlab => "gitlab",
            OpenIdProviderKind::Github => "github",
        }
    }
}

impl AccessAction {
    /// zot's name of the action.
    pub const fn as_str(self) -> &'static str {
        match self {
            AccessAction::Read => "read",
            AccessAction::Create => "create",
            AccessAction::Update => "update",
            AccessAction::Delete => "delete",
        }
    }
}

impl LogLevel {
    /// zot's name of the level.
    pub const fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}
