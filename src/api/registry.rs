//! The `Registry` custom resource: a zot registry the operator deploys, or an external registry
//! that is only a retention target.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{SecretKeyRef, SecretRef, GO_DURATION_PATTERN};

/// A zot OCI registry deployed and configured by the operator (managed mode, the default), or an
/// existing OCI registry declared as a retention target (external mode, `spec.external`).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "registry-operator.dev",
    version = "v1alpha1",
    kind = "Registry",
    plural = "registries",
    singular = "registry",
    shortname = "reg",
    category = "registry-operator",
    namespaced,
    status = "RegistryStatus",
    printcolumn = r#"{"name":"URL","type":"string","jsonPath":".status.url","description":"Where the registry answers"}"#,
    printcolumn = r#"{"name":"Version","type":"string","jsonPath":".status.version","description":"Registry version as reported or deployed"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    validation = Rule::new("!has(self.spec.external) || (!has(self.spec.version) && !has(self.spec.image) && !has(self.spec.replicas) && !has(self.spec.storage) && !has(self.spec.gc) && !has(self.spec.dedupe) && !has(self.spec.untagged) && !has(self.spec.referrers) && !has(self.spec.auth) && !has(self.spec.tls) && !has(self.spec.sync) && !has(self.spec.extensions) && !has(self.spec.service) && !has(self.spec.http) && !has(self.spec.resources) && !has(self.spec.nodeSelector) && !has(self.spec.tolerations) && !has(self.spec.affinity) && !has(self.spec.log) && !has(self.spec.config))").message("spec.external declares a registry the operator does not deploy: only external and aliases may be set with it"),
    validation = Rule::new("has(self.spec.external) || has(self.spec.version)").message("a managed registry needs spec.version (the zot release to deploy, e.g. v2.1.20)"),
    validation = Rule::new("!has(self.spec.replicas) || self.spec.replicas <= 1 || (has(self.spec.storage) && has(self.spec.storage.s3) && has(self.spec.storage.s3.cache))").message("replicas > 1 needs shared storage: set storage.s3 with storage.s3.cache (redis or dynamodb)"),
)]
#[serde(rename_all = "camelCase")]
pub struct RegistrySpec {
    /// Declares an existing registry (any OCI Distribution API registry) that the operator does
    /// not deploy. It is a target for retention policies and health checks only. When set, only
    /// `aliases` may be set beside it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalRegistry>,

    /// zot release to deploy, e.g. `v2.1.20`. It selects the image tag and which config keys
    /// are rendered: zot refuses to start on keys it does not know, so a feature the release
    /// lacks is reported as InvalidSpec rather than rendered. Required for managed registries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^v?[0-9]+\.[0-9]+\.[0-9]+$"))]
    pub version: Option<String>,

    /// Container image override. Defaults to `ghcr.io/project-zot/zot:<version>`. The image
    /// must still run the zot release named by `version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,

    /// Number of zot pods. More than one requires `storage.s3` with a `cache` and is rendered
    /// as zot's scale-out cluster. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 32))]
    pub replicas: Option<i32>,

    /// Where zot keeps images: a PersistentVolumeClaim per pod (default), or an S3 bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageSpec>,

    /// zot's garbage collection, which frees blobs no manifest references anymore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gc: Option<GcSpec>,

    /// Store each blob once across repositories (hard links on a volume, placeholders on S3).
    /// zot's default is on; with S3 it needs `storage.s3.cache`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedupe: Option<bool>,

    /// How zot's garbage collection treats untagged manifests: those without a tag, not in
    /// an index and without a subject, digest-only pushes included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub untagged: Option<UntaggedSpec>,

    /// How zot's garbage collection treats referrers (signatures, SBOMs) whose subject is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrers: Option<ReferrersSpec>,

    /// Authentication (htpasswd, mTLS, bearer tokens, API keys, LDAP, OpenID) and
    /// per-repository access control.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthSpec>,

    /// Serve HTTPS with the certificate in this Secret (type kubernetes.io/tls: `tls.crt`,
    /// `tls.key`). Clients then reach it over HTTPS; the probes switch to HTTPS too. The
    /// operator verifies the certificate with the CA in the Secret's `ca.crt` (cert-manager
    /// writes it), which must therefore be present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<SecretRef>,

    /// Mirror repositories from upstream registries, periodically or on demand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<SyncSpec>,

    /// zot extensions: search, UI, metrics, scrub.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<ExtensionsSpec>,

    /// The Service in front of zot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceSpec>,

    /// zot's HTTP listener: which manifest formats it accepts and how long a request may take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpSpec>,

    /// Compute resources of the zot container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Node labels the zot pods must run on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,

    /// Tolerations of the zot pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,

    /// Affinity rules of the zot pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,

    /// zot's log settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<LogSpec>,

    /// Other host names (`host` or `host:port`) this registry answers to, such as an ingress
    /// host or a node-port address. Pod images on any of them count as in use for retention.
    /// Compared as images name hosts: case, a scheme, a path and the default port `:443` are
    /// ignored. Set one for every name Pods pull this registry by (kubelets often cannot
    /// resolve Service names, so Pods use an ingress or node address).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,

    /// Raw zot configuration merged over the rendered one, last. Every key is still checked
    /// against the keys the chosen zot version accepts, so an unknown key is reported as
    /// InvalidSpec instead of crashing zot. An escape hatch: prefer the typed fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_object")]
    pub config: Option<serde_json::Value>,
}

/// An OCI registry the operator does not deploy.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalRegistry {
    /// Base URL of the registry, e.g. `https://registry.example.com` (the part before `/v2/`).
    #[schemars(regex(pattern = r"^https?://[^\s/]+(/[^\s]*)?$"))]
    pub url: String,
    /// Secret with credentials: type `kubernetes.io/dockerconfigjson` (the entry for the
    /// registry's host is used) or `kubernetes.io/basic-auth` (`username`, `password`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretRef>,
    /// Secret holding the PEM CA bundle that signs the registry's certificate (key `ca.crt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretKeyRef>,
    /// Skip TLS certificate verification. Only for test registries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_tls_verify: Option<bool>,
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

/// The registry Service's port when `service.port` is not set.
pub const DEFAULT_SERVICE_PORT: i32 = 5000;

/// The Service in front of zot.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    /// Service type. Default ClusterIP.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<ServiceType>,
    /// Service port. Default 5000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
    /// Extra annotations on the Service (load balancer settings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// Kubernetes Service types supported for the registry Service.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ServiceType {
    /// Reachable inside the cluster only.
    #[default]
    ClusterIP,
    /// Also on a port of every node.
    NodePort,
    /// Through a cloud load balancer.
    LoadBalancer,
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

/// Observed state of a Registry.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistryStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// kstatus conditions: `Ready` always; `Reconciling` and `Stalled` when true; and, for a
    /// Registry that declares credentials, `CredentialsAccepted`: whether the registry accepts
    /// them for an authenticated request (`GET /v2/_catalog?n=1`), with reason
    /// `CredentialsAccepted`, `CatalogRefused` (accepted, the catalog refused),
    /// `CredentialsRejected` or `CredentialsRequired`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// URL clients inside the cluster use (Service DNS name), or the external URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Registry version as the registry reports it (zot's mgmt endpoint), else the deployed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// SHA-256 of the rendered zot config; the pods carry it as an annotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_hash: Option<String>,
    /// zot pods that are ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    /// Result of the latest `GET /v2/` check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<RegistryHealth>,
}

/// Result of a registry health check.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistryHealth {
    /// `GET /v2/` answered 200 or 401 (the registry is up; whether it accepts the operator's
    /// credentials is the `CredentialsAccepted` condition).
    pub healthy: bool,
    /// Round-trip time of the check in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<i64>,
    /// When the check ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_checked: Option<Time>,
    /// What failed, when unhealthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn preserve_unknown_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

impl RegistrySpec {
    /// Whether the operator deploys this registry.
    pub fn is_managed(&self) -> bool {
        self.external.is_none()
    }
}
