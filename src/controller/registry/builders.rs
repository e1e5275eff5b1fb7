//! Pure builders of the Kubernetes objects a managed `Registry` owns: the ConfigMap with
//! `config.json`, the StatefulSet running zot, the client Service and the headless Service that
//! gives each pod a stable DNS name. Same input, same objects; no client, no clock.
//!
//! Owner references are added by the controller when it applies these objects.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec, StatefulSetUpdateStrategy};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvVar, EnvVarSource, HTTPGetAction, KeyToPath, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PodSecurityContext, PodSpec, PodTemplateSpec, Probe, SeccompProfile,
    SecretKeySelector, SecretVolumeSource, SecurityContext, Service, ServicePort, ServiceSpec,
    Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

pub use super::validate::RegistryRef;
use super::validate::{resolve_version, validate, wiring, ValidRegistry, DEFAULT_STORAGE_SIZE};
use crate::api::common::SecretKeyRef;
use crate::api::registry::{RegistrySpec, ServiceType, DEFAULT_SERVICE_PORT};
use crate::zot::paths::{self, ZOT_PORT};
use crate::zot::{render, RenderErrors, RenderedConfig, ZotVersion};

/// Pod annotation carrying the SHA-256 of `config.json`; a change rolls the pods, because zot
/// does not reload a ConfigMap volume.
pub const CONFIG_HASH_ANNOTATION: &str = "registry-operator.dev/config-hash";
/// Pod annotation carrying the SHA-256 of the Secret files zot reads at startup (client CA,
/// bearer certificate, LDAP and OpenID credentials and CAs): a rotated Secret rolls the pods,
/// because zot would keep using what it read when it started.
pub const SECRETS_HASH_ANNOTATION: &str = "registry-operator.dev/secrets-hash";
/// Key of the config file in the ConfigMap.
pub const CONFIG_KEY: &str = "config.json";
pub use super::validate::DEFAULT_IMAGE_REPOSITORY;
/// The user and group zot runs as (the image defines none, so it would otherwise run as root).
pub const ZOT_UID: i64 = 10001;
/// Name of the container port zot listens on.
pub const PORT_NAME: &str = "zot";
/// Period of the startup probe in seconds.
pub const STARTUP_PERIOD_SECONDS: i32 = 10;
/// Failures the startup probe tolerates: with the period, a 30-minute budget for zot's
/// startup walk over large storage (the port opens only after it).
pub const STARTUP_FAILURE_THRESHOLD: i32 = 180;

/// Default key of the htpasswd file in its Secret.
pub const DEFAULT_HTPASSWD_KEY: &str = "htpasswd";
/// Default key of the sync credentials file in its Secret.
pub const DEFAULT_SYNC_CREDENTIALS_KEY: &str = "credentials.json";
/// Keys of the S3 credentials Secret.
pub const S3_ACCESS_KEY: &str = "accessKey";
/// Keys of the S3 credentials Secret.
pub const S3_SECRET_KEY: &str = "secretKey";

/// Default key of a CA bundle in its Secret.
pub const DEFAULT_CA_KEY: &str = "ca.crt";
/// Default key of the bearer token server's certificate in its Secret.
pub const DEFAULT_BEARER_CERT_KEY: &str = "cert.pem";
/// Default key of zot's LDAP and OpenID credentials files in their Secrets.
pub const DEFAULT_CREDENTIALS_KEY: &str = "credentials.json";

/// What zot needs inside a file it reads from a Secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileContent {
    /// PEM (a CA bundle, a token-signing certificate or public key).
    Pem,
    /// zot's JSON credentials file with exactly these keys (compared case-insensitively).
    JsonKeys(&'static [&'static str]),
}

/// One file zot reads at startup, mounted from one key of a Secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretFile {
    /// Pod volume name.
    pub volume: String,
    /// The Secret.
    pub secret: String,
    /// The key in the Secret.
    pub key: String,
    /// Path zot reads (the mount directory is its parent).
    pub path: String,
    /// The spec field naming the Secret, for messages.
    pub field: String,
    /// What the file must hold.
    pub content: FileContent,
}

impl SecretFile {
    fn new(
        volume: impl Into<String>,
        reference: &SecretKeyRef,
        default_key: &str,
        path: impl Into<String>,
        field: impl Into<String>,
        content: FileContent,
    ) -> Self {
        SecretFile {
            volume: volume.into(),
            secret: reference.name.clone(),
            key: reference
                .key
                .clone()
                .unwrap_or_else(|| default_key.to_string()),
            path: path.into(),
            field: field.into(),
            content,
        }
    }

    /// The mount directory and the file name in it.
    pub fn dir_and_file(&self) -> (&str, &str) {
        self.path
            .rsplit_once('/')
            .unwrap_or(("/", self.path.as_str()))
    }
}

/// The files of the authentication methods zot reads from Secrets at startup, in a stable
/// order: the client CA (mTLS), the bearer certificate and OIDC issuer CAs, the LDAP
/// credentials and CA, each OpenID provider's credentials.
pub fn secret_files(spec: &RegistrySpec) -> Vec<SecretFile> {
    let mut out = Vec::new();
    let Some(auth) = &spec.auth else {
        return out;
    };
    if let Some(mtls) = &auth.mtls {
        out.push(SecretFile::new(
            "client-ca",
            &mtls.client_ca_secret_ref,
            DEFAULT_CA_KEY,
            paths::TLS_CA,
            "spec.auth.mtls.clientCaSecretRef",
            FileContent::Pem,
        ));
    }
    if let Some(bearer) = &auth.bearer {
        if let Some(cert) = &bearer.cert_secret_ref {
            out.push(SecretFile::new(
                "bearer-cert",
                cert,
                DEFAULT_BEARER_CERT_KEY,
                paths::BEARER_CERT,
                "spec.auth.bearer.certSecretRef",
                FileContent::Pem,
            ));
        }
        for (i, oidc) in bearer.oidc.iter().enumerate() {
            if let Some(ca) = &oidc.ca_secret_ref {
                out.push(SecretFile::new(
                    format!("bearer-oidc-{i}"),
                    ca,
                    DEFAULT_CA_KEY,
                    paths::bearer_oidc_ca(i),
                    format!("spec.auth.bearer.oidc[{i}].caSecretRef"),
                    FileContent::Pem,
                ));
            }
        }
    }
    if let Some(ldap) = &auth.ldap {
        if let Some(creds) = &ldap.credentials_secret_ref {
            out.push(SecretFile::new(
                "ldap-credentials",
                creds,
                DEFAULT_CREDENTIALS_KEY,
                paths::LDAP_CREDENTIALS_FILE,
                "spec.auth.ldap.credentialsSecretRef",
                FileContent::JsonKeys(&["bindDN", "bindPassword"]),
            ));
        }
        if let Some(ca) = &ldap.ca_secret_ref {
            out.push(SecretFile::new(
                "ldap-ca",
                ca,
                DEFAULT_CA_KEY,
                paths::LDAP_CA,
                "spec.auth.ldap.caSecretRef",
                FileContent::Pem,
            ));
        }
    }
    if let Some(openid) = &auth.openid {
        let mut seen = Vec::new();
        for (i, provider) in openid.providers.iter().enumerate() {
            let kind = provider.kind.as_str();
            // A second provider of a kind is refused by the renderer; mount the first only.
            if seen.contains(&kind) {
                continue;
            }
            seen.push(kind);
            out.push(SecretFile::new(
                format!("openid-{kind}"),
                &provider.credentials_secret_ref,
                DEFAULT_CREDENTIALS_KEY,
                paths::openid_credentials_file(kind),
                format!("spec.auth.openid.providers[{i}].credentialsSecretRef"),
                FileContent::JsonKeys(&["clientid", "clientsecret"]),
            ));
        }
    }
    out
}

/// Sets the pod template's [`SECRETS_HASH_ANNOTATION`] (the controller computes the digest
/// from the Secrets it read).
pub fn set_secrets_hash(sts: &mut StatefulSet, digest: &str) {
    let Some(template) = sts.spec.as_mut().map(|s| &mut s.template) else {
        return;
    };
    template
        .metadata
        .get_or_insert_with(ObjectMeta::default)
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(SECRETS_HASH_ANNOTATION.to_string(), digest.to_string());
}

/// The objects a managed Registry owns.
#[derive(Clone, Debug, PartialEq)]
pub struct RegistryObjects {
    /// `<name>-config` with `config.json`.
    pub config_map: ConfigMap,
    /// `<name>`: the zot pods.
    pub stateful_set: StatefulSet,
    /// `<name>`: where clients connect.
    pub service: Service,
    /// `<name>-headless`: stable pod DNS names for the StatefulSet and zot's cluster members.
    pub headless_service: Service,
}

impl RegistryObjects {
    /// The objects in apply order, as JSON documents with `apiVersion` and `kind`.
    pub fn to_values(&self) -> Result<Vec<serde_json::Value>, serde_json::Error> {
        Ok(vec![
            serde_json::to_value(&self.config_map)?,
            serde_json::to_value(&self.headless_service)?,
            serde_json::to_value(&self.service)?,
            serde_json::to_value(&self.stateful_set)?,
        ])
    }
}

/// The rendered config and the objects of one Registry.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredRegistry {
    /// The zot release deployed.
    pub version: ZotVersion,
    /// The rendered `config.json` and its hash.
    pub config: RenderedConfig,
    /// The Kubernetes objects.
    pub objects: RegistryObjects,
}

/// Validates a Registry, renders its zot config and builds its objects; every problem found
/// (spec, version gates, zot's verify rules) is returned together.
pub fn desired_registry(
    registry: RegistryRef<'_>,
    version_override: Option<&str>,
) -> Result<DesiredRegistry, RenderErrors> {
    let valid = match validate(registry, version_override) {
        Ok(valid) => valid,
        Err(mut errors) => {
            // The zot-side problems are reported with the Kubernetes-side ones, when the
            // release is known.
            if let Ok(version) = resolve_version(registry.spec, version_override) {
                if let Err(more) = render(&registry.spec.zot(), &wiring(registry), version) {
                    errors.extend(more);
                }
            }
            return Err(errors);
        }
    };
    let config = render(&valid.spec.zot(), &valid.wiring, valid.version)?;
    let objects = build_objects(&valid, &config);
    Ok(DesiredRegistry {
        version: valid.version,
        config,
        objects,
    })
}

/// Labels on every object; `version` is the zot release.
pub fn labels(name: &str, version: ZotVersion) -> BTreeMap<String, String> {
    let mut l = selector_labels(name);
    l.insert("app.kubernetes.io/component".into(), "registry".into());
    l.insert(
        "app.kubernetes.io/managed-by".into(),
        "registry-operator".into(),
    );
    l.insert("app.kubernetes.io/version".into(), version.to_string());
    l
}

/// The subset of [`labels`] that selects the pods; stable across upgrades, since a
/// StatefulSet's selector cannot change.
pub fn selector_labels(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/instance".to_string(), name.to_string()),
        ("app.kubernetes.io/name".to_string(), "zot".to_string()),
    ])
}

/// Name of the ConfigMap.
pub fn config_map_name(name: &str) -> String {
    format!("{name}-config")
}

/// Name of the headless Service.
pub fn headless_service_name(name: &str) -> String {
    format!("{name}-headless")
}

/// The container image: `spec.image`, else the official image tagged with the release.
pub fn image(spec: &RegistrySpec, version: ZotVersion) -> String {
    spec.image
        .clone()
        .unwrap_or_else(|| format!("{DEFAULT_IMAGE_REPOSITORY}:{version}"))
}

fn meta(registry: &ValidRegistry<'_>, name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(registry.namespace.to_string()),
        labels: Some(labels(registry.name, registry.version)),
        ..ObjectMeta::default()
    }
}

/// Builds every object of a managed Registry from its rendered config.
pub fn build_objects(registry: &ValidRegistry<'_>, config: &RenderedConfig) -> RegistryObjects {
    RegistryObjects {
        config_map: config_map(registry, config),
        stateful_set: stateful_set(registry, config),
        service: service(registry),
        headless_service: headless_service(registry),
    }
}

/// The ConfigMap holding `config.json`.
pub fn config_map(registry: &ValidRegistry<'_>, config: &RenderedConfig) -> ConfigMap {
    ConfigMap {
        metadata: meta(registry, config_map_name(registry.name)),
        data: Some(BTreeMap::from([(
            CONFIG_KEY.to_string(),
            config.json.clone(),
        )])),
        ..ConfigMap::default()
    }
}

fn uses_tls(spec: &RegistrySpec) -> bool {
    spec.tls.is_some()
}

fn service_port(spec: &RegistrySpec, port: i32) -> ServicePort {
    ServicePort {
        name: Some("registry".to_string()),
        port,
        target_port: Some(IntOrString::String(PORT_NAME.to_string())),
        protocol: Some("TCP".to_string()),
        app_protocol: Some(if uses_tls(spec) { "https" } else { "http" }.to_string()),
        ..ServicePort::default()
    }
}

/// The Service clients use: `<name>.<namespace>.svc:<port>`.
pub fn service(registry: &ValidRegistry<'_>) -> Service {
    let svc = registry.spec.service.clone().unwrap_or_default();
    let type_ = match svc.type_.unwrap_or_default() {
        ServiceType::ClusterIP => "ClusterIP",
        ServiceType::NodePort => "NodePort",
        ServiceType::LoadBalancer => "LoadBalancer",
    };
    let mut metadata = meta(registry, registry.name.to_string());
    metadata.annotations = svc.annotations.filter(|a| !a.is_empty());
    Service {
        metadata,
        spec: Some(ServiceSpec {
            type_: Some(type_.to_string()),
            selector: Some(selector_labels(registry.name)),
            ports: Some(vec![service_port(
                registry.spec,
                svc.port.unwrap_or(DEFAULT_SERVICE_PORT),
            )]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// The headless Service: the StatefulSet's `serviceName`, and the DNS zone of zot's cluster
/// members. It publishes pods before they are ready, because each zot member resolves every
/// other member at startup.
pub fn headless_service(registry: &ValidRegistry<'_>) -> Service {
    Service {
        metadata: meta(registry, headless_service_name(registry.name)),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_string()),
            cluster_ip: Some("None".to_string()),
            publish_not_ready_addresses: Some(true),
            selector: Some(selector_labels(registry.name)),
            ports: Some(vec![service_port(registry.spec, i32::from(ZOT_PORT))]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

fn probe(path: &str, scheme: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_string()),
            port: IntOrString::String(PORT_NAME.to_string()),
            scheme: Some(scheme.to_string()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(5),
        failure_threshold: Some(failures),
        success_threshold: Some(1),
        ..Probe::default()
    }
}

fn secret_volume(name: &str, secret: &str, items: Option<Vec<KeyToPath>>) -> Volume {
    Volume {
        name: name.to_string(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret.to_string()),
            items,
            default_mode: Some(0o440),
            ..SecretVolumeSource::default()
        }),
        ..Volume::default()
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.to_string(),
        mount_path: path.to_string(),
        read_only: read_only.then_some(true),
        ..VolumeMount::default()
    }
}

fn secret_env(var: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: var.to_string(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.to_string(),
                key: key.to_string(),
                ..SecretKeySelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

/// The StatefulSet running zot.
pub fn stateful_set(registry: &ValidRegistry<'_>, config: &RenderedConfig) -> StatefulSet {
    let name = registry.name;
    let (volumes, mounts) = volumes_and_mounts(name, registry.spec);
    let container = container(registry.spec, registry.version, mounts);
    StatefulSet {
        metadata: meta(registry, name.to_string()),
        spec: Some(StatefulSetSpec {
            replicas: Some(registry.replicas),
            service_name: Some(headless_service_name(name)),
            selector: LabelSelector {
                match_labels: Some(selector_labels(name)),
                ..LabelSelector::default()
            },
            // zot cluster members resolve each other at startup: start them all at once.
            pod_management_policy: Some("Parallel".to_string()),
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("RollingUpdate".to_string()),
                ..StatefulSetUpdateStrategy::default()
            }),
            template: pod_template(registry, config, container, volumes),
            volume_claim_templates: volume_claim_templates(registry),
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    }
}

/// The pod's volumes and the zot container's mounts: the config, scratch space, the data
/// volume (a bucket's scratch root on S3), and every Secret file zot reads.
fn volumes_and_mounts(name: &str, spec: &RegistrySpec) -> (Vec<Volume>, Vec<VolumeMount>) {
    let mut volumes = vec![
        Volume {
            name: "config".to_string(),
            config_map: Some(ConfigMapVolumeSource {
                name: config_map_name(name),
                items: Some(vec![key_to_path(CONFIG_KEY, CONFIG_KEY)]),
                default_mode: Some(0o444),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        },
        empty_dir("tmp"),
    ];
    let mut mounts = vec![
        mount("config", paths::CONFIG_DIR, true),
        mount("data", paths::ROOT_DIRECTORY, false),
        mount("tmp", "/tmp", false),
    ];
    if s3(spec).is_some() {
        // Images live in the bucket; the local root only holds scratch files (sync staging).
        volumes.push(empty_dir("data"));
    }
    let mut secret = |volume: &str, secret: &str, items: Vec<KeyToPath>, dir: &str| {
        volumes.push(secret_volume(volume, secret, Some(items)));
        mounts.push(mount(volume, dir, true));
    };
    if let Some(htpasswd) = spec
        .auth
        .as_ref()
        .and_then(|a| a.htpasswd_secret_ref.as_ref())
    {
        let key = htpasswd.key.as_deref().unwrap_or(DEFAULT_HTPASSWD_KEY);
        let items = vec![key_to_path(key, "htpasswd")];
        secret("htpasswd", &htpasswd.name, items, paths::HTPASSWD_DIR);
    }
    if let Some(tls) = &spec.tls {
        let items = ["tls.crt", "tls.key"].map(|k| key_to_path(k, k)).to_vec();
        secret("tls", &tls.name, items, paths::TLS_DIR);
    }
    if let Some(creds) = spec
        .sync
        .as_ref()
        .and_then(|s| s.credentials_secret_ref.as_ref())
    {
        let key = creds.key.as_deref().unwrap_or(DEFAULT_SYNC_CREDENTIALS_KEY);
        let items = vec![key_to_path(key, "credentials.json")];
        secret(
            "sync-credentials",
            &creds.name,
            items,
            paths::SYNC_CREDENTIALS_DIR,
        );
    }
    for file in secret_files(spec) {
        let (dir, file_name) = file.dir_and_file();
        secret(
            &file.volume,
            &file.secret,
            vec![key_to_path(&file.key, file_name)],
            dir,
        );
    }
    (volumes, mounts)
}

fn s3(spec: &RegistrySpec) -> Option<&crate::api::registry::S3Storage> {
    spec.storage.as_ref().and_then(|s| s.s3.as_ref())
}

fn key_to_path(key: &str, path: &str) -> KeyToPath {
    KeyToPath {
        key: key.to_string(),
        path: path.to_string(),
        ..KeyToPath::default()
    }
}

fn empty_dir(name: &str) -> Volume {
    Volume {
        name: name.to_string(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    }
}

/// The S3 credentials as AWS's environment variables, when the spec names a Secret.
fn s3_env(spec: &RegistrySpec) -> Option<Vec<EnvVar>> {
    let secret = s3(spec)?.credentials_secret_ref.as_ref()?;
    Some(vec![
        secret_env("AWS_ACCESS_KEY_ID", &secret.name, S3_ACCESS_KEY),
        secret_env("AWS_SECRET_ACCESS_KEY", &secret.name, S3_SECRET_KEY),
    ])
}

fn restricted_seccomp() -> Option<SeccompProfile> {
    Some(SeccompProfile {
        type_: "RuntimeDefault".to_string(),
        ..SeccompProfile::default()
    })
}

/// The zot container: `serve` on the mounted config, probes on the health endpoints, a
/// read-only root and no privileges.
fn container(spec: &RegistrySpec, version: ZotVersion, mounts: Vec<VolumeMount>) -> Container {
    let scheme = if uses_tls(spec) { "HTTPS" } else { "HTTP" };
    Container {
        name: "zot".to_string(),
        image: Some(image(spec, version)),
        image_pull_policy: Some("IfNotPresent".to_string()),
        args: Some(vec!["serve".to_string(), paths::CONFIG_FILE.to_string()]),
        ports: Some(vec![ContainerPort {
            name: Some(PORT_NAME.to_string()),
            container_port: i32::from(ZOT_PORT),
            protocol: Some("TCP".to_string()),
            ..ContainerPort::default()
        }]),
        env: s3_env(spec),
        resources: spec.resources.clone(),
        volume_mounts: Some(mounts),
        startup_probe: Some(probe(
            "/startupz",
            scheme,
            STARTUP_PERIOD_SECONDS,
            STARTUP_FAILURE_THRESHOLD,
        )),
        liveness_probe: Some(probe("/livez", scheme, 20, 3)),
        readiness_probe: Some(probe("/readyz", scheme, 10, 3)),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            run_as_user: Some(ZOT_UID),
            run_as_group: Some(ZOT_UID),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_string()]),
                ..Capabilities::default()
            }),
            seccomp_profile: restricted_seccomp(),
            ..SecurityContext::default()
        }),
        ..Container::default()
    }
}

/// The pod template: the config hash annotation that rolls zot on a change, the pod's
/// security context and the scheduling constraints of the spec.
fn pod_template(
    registry: &ValidRegistry<'_>,
    config: &RenderedConfig,
    container: Container,
    volumes: Vec<Volume>,
) -> PodTemplateSpec {
    let spec = registry.spec;
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels(registry.name, registry.version)),
            annotations: Some(BTreeMap::from([(
                CONFIG_HASH_ANNOTATION.to_string(),
                config.hash.clone(),
            )])),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(ZOT_UID),
                run_as_group: Some(ZOT_UID),
                fs_group: Some(ZOT_UID),
                // Chown a large volume only when its root is not already ours.
                fs_group_change_policy: Some("OnRootMismatch".to_string()),
                seccomp_profile: restricted_seccomp(),
                ..PodSecurityContext::default()
            }),
            termination_grace_period_seconds: Some(60),
            containers: vec![container],
            volumes: Some(volumes),
            node_selector: spec.node_selector.clone().filter(|n| !n.is_empty()),
            tolerations: spec.tolerations.clone().filter(|t| !t.is_empty()),
            affinity: spec.affinity.clone(),
            ..PodSpec::default()
        }),
    }
}

/// One PersistentVolumeClaim per pod, unless the images live in a bucket.
fn volume_claim_templates(registry: &ValidRegistry<'_>) -> Option<Vec<PersistentVolumeClaim>> {
    if s3(registry.spec).is_some() {
        return None;
    }
    let storage = registry.spec.storage.clone().unwrap_or_default();
    let size = storage
        .size
        .unwrap_or_else(|| DEFAULT_STORAGE_SIZE.to_string());
    Some(vec![PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some("data".to_string()),
            labels: Some(selector_labels(registry.name)),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".to_string()]),
            storage_class_name: storage.storage_class_name,
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_string(), Quantity(size))])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    }])
}
