//! The `Registry` custom resource: a zot registry the operator deploys, or an external registry
//! that is only a retention target.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::refs::{SecretKeyRef, SecretRef};
pub use super::zot::*;

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
    /// URL's host is used, then those of `credentialsFallbackHosts`; a config with none of
    /// them is an error, not anonymous access) or `kubernetes.io/basic-auth` (`username`,
    /// `password`). The credentials are sent only when the registry asks for them (a `401`
    /// with a Basic challenge from the URL's origin, or a trusted Bearer token realm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretRef>,
    /// Further docker-config entries to take the credentials from when the Secret has none
    /// for the URL's host, tried in this order (`host` or `host:port`, e.g. an alias the
    /// config was written for). Without it only the URL's host's entry is used.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 16),
        inner(regex(pattern = r"^[A-Za-z0-9.\-]+(:[0-9]{1,5})?$"))
    )]
    pub credentials_fallback_hosts: Vec<String>,
    /// Hosts (names or addresses, without port) of Bearer token realms trusted with the
    /// credentials beside the URL's host and the hosts of its registrable domain by the
    /// public suffix list (`registry-1.docker.io` trusts `auth.docker.io` by itself). A
    /// registry naming any other realm gets nothing: `CredentialsAccepted=False`, reason
    /// `UntrustedTokenRealm`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 16),
        inner(regex(pattern = r"^[A-Za-z0-9.\-]+$|^\[?[0-9A-Fa-f:.]+\]?$"))
    )]
    pub trusted_token_realms: Vec<String>,
    /// Secret holding the PEM CA bundle that signs the registry's certificate (key `ca.crt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretKeyRef>,
    /// Skip TLS certificate verification. Only for test registries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_tls_verify: Option<bool>,
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
    /// `CredentialsRejected`, `CredentialsRequired`, `UntrustedTokenRealm` (False: the
    /// registry named a token realm not trusted with them, nothing was sent) or
    /// `CredentialsNotRequested` (Unknown: the registry never asked, nothing was sent).
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

    /// The parts of the spec the zot renderer reads.
    pub fn zot(&self) -> ZotSpec<'_> {
        ZotSpec {
            storage: self.storage.as_ref(),
            dedupe: self.dedupe,
            gc: self.gc.as_ref(),
            untagged: self.untagged.as_ref(),
            referrers: self.referrers.as_ref(),
            auth: self.auth.as_ref(),
            tls: self.tls.as_ref(),
            sync: self.sync.as_ref(),
            extensions: self.extensions.as_ref(),
            http: self.http.as_ref(),
            log: self.log.as_ref(),
            config: self.config.as_ref(),
        }
    }
}
