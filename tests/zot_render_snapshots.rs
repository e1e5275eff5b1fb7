//! Snapshot tests of the zot config renderer and the resource builders: the rendered
//! `config.json` and the Kubernetes objects of each case are compared with the files under
//! `tests/snapshots/`. After an intended change, rewrite them with
//! `UPDATE_SNAPSHOTS=1 cargo test --test zot_render_snapshots` and review the diff.

use std::path::PathBuf;

use registry_operator::cli::render::render_manifest;
use registry_operator::controller::registry::builders::DesiredRegistry;

fn snapshot_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots")
}

fn check_snapshot(file: &str, actual: &str) {
    let path = snapshot_dir().join(file);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(snapshot_dir()).expect("create snapshot dir");
        std::fs::write(&path, actual).expect("write snapshot");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with UPDATE_SNAPSHOTS=1 to create it",
            path.display()
        )
    });
    pretty_assertions::assert_eq!(
        expected,
        actual,
        "snapshot {file} differs (UPDATE_SNAPSHOTS=1 rewrites it)"
    );
}

fn objects_yaml(desired: &DesiredRegistry) -> String {
    let mut out = String::new();
    for object in desired.objects.to_values().expect("objects serialise") {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&object).expect("yaml"));
    }
    out
}

fn render(text: &str) -> DesiredRegistry {
    match render_manifest(text, None) {
        Ok(d) => d,
        Err(problems) => panic!("expected a valid Registry, got {problems:#?}"),
    }
}

fn snapshot_case(case: &str, text: &str) {
    let desired = render(text);
    check_snapshot(&format!("{case}.config.json"), &desired.config.json);
    check_snapshot(&format!("{case}.objects.yaml"), &objects_yaml(&desired));
}

fn sample(file: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("config/samples")
        .join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn pvc_sample_renders_gc_dedupe_untagged_cleanup_auth_and_extensions() {
    snapshot_case("registry", &sample("registry_v1alpha1_registry.yaml"));
}

#[test]
fn s3_sample_renders_a_three_member_cluster_with_redis_and_sync() {
    snapshot_case("registry-s3", &sample("registry_v1alpha1_registry_s3.yaml"));
}

#[test]
fn minimal_registry_renders_zot_defaults_on_a_10gi_volume() {
    snapshot_case(
        "minimal",
        "apiVersion: registry-operator.dev/v1alpha1\nkind: Registry\nmetadata:\n  name: tiny\nspec:\n  version: v2.1.11\n",
    );
}

#[test]
fn tls_dynamodb_registry_serves_https_and_names_every_dynamodb_table() {
    snapshot_case(
        "tls-dynamodb",
        r#"apiVersion: registry-operator.dev/v1alpha1
kind: Registry
metadata:
  name: secure
  namespace: platform
spec:
  version: v2.1.21
  image: registry.example/mirror/zot:v2.1.21
  tls:
    name: secure-tls
  storage:
    s3:
      bucket: secure-images
      region: eu-west-1
      credentialsSecretRef:
        name: secure-aws
      cache:
        dynamodb:
          region: eu-west-1
          tablePrefix: zot-secure
  gc:
    interval: 24h
    delay: 90m
    timeWindow: "01:00-05:00"
  referrers:
    deleteOrphans: true
  auth:
    htpasswdSecretRef:
      name: secure-users
      key: users.htpasswd
    accessControl:
      repositories:
        - pattern: "public/**"
          anonymousPolicy: [read]
        - pattern: "team-a/**"
          policies:
            - users: [alice]
              actions: [read, create, update, delete]
  extensions:
    search: true
    scrub:
      interval: 48h
  service:
    type: NodePort
    annotations:
      example.com/owner: platform
  nodeSelector:
    kubernetes.io/os: linux
  tolerations:
    - key: dedicated
      operator: Equal
      value: registry
      effect: NoSchedule
  log:
    level: warn
"#,
    );
}

#[test]
fn raw_config_is_merged_last_case_insensitively_and_null_removes_a_key() {
    snapshot_case(
        "raw-config",
        r#"apiVersion: registry-operator.dev/v1alpha1
kind: Registry
metadata:
  name: raw
spec:
  version: v2.1.19
  gc:
    enabled: false
  dedupe: false
  auth:
    htpasswdSecretRef:
      name: raw-users
    realm: corp
  config:
    storage:
      Dedupe: true
      commit: true
    http:
      realm: null
      readTimeout: 10m
      writeTimeout: 10m
      compat: ["docker2s2"]
    log:
      level: debug
      audit: /tmp/audit.log
    extensions:
      lint:
        enable: true
        mandatoryAnnotations: ["org.opencontainers.image.source"]
"#,
    );
}

/// The sample of each sign-in method (file under config/samples/, snapshot case).
const AUTH_SAMPLES: &[(&str, &str)] = &[
    ("registry_v1alpha1_registry_mtls.yaml", "auth-mtls"),
    ("registry_v1alpha1_registry_bearer.yaml", "auth-bearer"),
    ("registry_v1alpha1_registry_apikeys.yaml", "auth-apikeys"),
    ("registry_v1alpha1_registry_ldap.yaml", "auth-ldap"),
    ("registry_v1alpha1_registry_openid.yaml", "auth-openid"),
];

#[test]
fn mtls_sample_verifies_client_certificates_with_the_mounted_client_ca() {
    snapshot_case("auth-mtls", &sample(AUTH_SAMPLES[0].0));
}

#[test]
fn bearer_sample_trusts_the_token_servers_mounted_certificate_and_an_oidc_issuer() {
    snapshot_case("auth-bearer", &sample(AUTH_SAMPLES[1].0));
}

#[test]
fn api_keys_sample_turns_on_zots_api_keys_beside_htpasswd() {
    snapshot_case("auth-apikeys", &sample(AUTH_SAMPLES[2].0));
}

#[test]
fn ldap_sample_binds_with_the_mounted_credentials_file_over_ldaps() {
    snapshot_case("auth-ldap", &sample(AUTH_SAMPLES[3].0));
}

#[test]
fn openid_sample_reads_each_providers_client_from_its_mounted_file() {
    snapshot_case("auth-openid", &sample(AUTH_SAMPLES[4].0));
}

/// Every path under `/secrets/` in a config document, depth first.
fn secret_paths(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::String(s) if s.starts_with("/secrets/") => out.push(s.clone()),
        serde_json::Value::Array(items) => items.iter().for_each(|i| secret_paths(i, out)),
        serde_json::Value::Object(map) => map.values().for_each(|v| secret_paths(v, out)),
        _ => {}
    }
}

#[test]
fn every_auth_sample_keeps_the_operators_htpasswd_account_and_reads_secrets_only_from_mounted_secret_files(
) {
    for (file, case) in AUTH_SAMPLES {
        let desired = render(&sample(file));
        let config = &desired.config.config;
        assert_eq!(
            config["http"]["auth"]["htpasswd"]["path"], "/secrets/htpasswd/htpasswd",
            "{case}: the operator's htpasswd account is rendered beside the method"
        );
        let json = desired.config.json.to_ascii_lowercase();
        for inline in ["clientsecret", "bindpassword", "binddn", "-----begin"] {
            assert!(
                !json.contains(inline),
                "{case}: the ConfigMap carries {inline:?}"
            );
        }
        let pod = desired
            .objects
            .stateful_set
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap();
        let mounts = pod.containers[0].volume_mounts.as_ref().unwrap();
        let volumes = pod.volumes.as_ref().unwrap();
        let mut paths = Vec::new();
        secret_paths(config, &mut paths);
        assert!(!paths.is_empty(), "{case}: {paths:?}");
        for path in paths {
            let (dir, name) = path.rsplit_once('/').unwrap();
            let mount = mounts
                .iter()
                .find(|m| m.mount_path == dir)
                .unwrap_or_else(|| panic!("{case}: nothing is mounted at {dir} for {path}"));
            assert_eq!(mount.read_only, Some(true), "{case}: {dir}");
            let secret = volumes
                .iter()
                .find(|v| v.name == mount.name)
                .and_then(|v| v.secret.as_ref())
                .unwrap_or_else(|| panic!("{case}: {dir} is not a Secret volume"));
            let items = secret.items.as_ref().unwrap();
            assert!(
                items.iter().any(|i| i.path == name),
                "{case}: the Secret mounted at {dir} does not provide {name}: {items:?}"
            );
        }
    }
}
