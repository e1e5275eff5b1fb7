//! Properties of the objects built for a managed Registry that a platform team relies on:
//! restricted pod security, a startup budget for large registries, HTTPS probes with TLS, a
//! config hash that rolls the pods, stable pod DNS for zot's cluster, and the data volume.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Container, PodSpec};
use registry_operator::cli::render::render_manifest;
use registry_operator::controller::registry::builders::{DesiredRegistry, CONFIG_HASH_ANNOTATION};

fn desired(spec: &str) -> DesiredRegistry {
    let mut text = "apiVersion: registry-operator.dev/v1alpha1\nkind: Registry\nmetadata:\n  name: reg\n  namespace: ns\nspec:\n".to_string();
    for line in spec.lines() {
        text.push_str("  ");
        text.push_str(line);
        text.push('\n');
    }
    render_manifest(&text, None).unwrap_or_else(|p| panic!("{p:#?}"))
}

fn pod(sts: &StatefulSet) -> &PodSpec {
    sts.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("pod spec")
}

fn zot(sts: &StatefulSet) -> &Container {
    &pod(sts).containers[0]
}

const S3: &str = "version: v2.1.20\nreplicas: 3\nstorage:\n  s3:\n    bucket: zot-images\n    region: us-east-1\n    credentialsSecretRef: {name: aws}\n    cache:\n      redis:\n        url: redis://redis:6379\n";

#[test]
fn zot_runs_non_root_with_a_read_only_root_filesystem_and_no_capabilities() {
    let d = desired("version: v2.1.20\n");
    let sts = &d.objects.stateful_set;
    let psc = pod(sts)
        .security_context
        .as_ref()
        .expect("pod security context");
    assert_eq!(psc.run_as_non_root, Some(true));
    assert!(psc.run_as_user.is_some_and(|u| u > 0));
    assert!(psc.fs_group.is_some());
    assert_eq!(
        psc.seccomp_profile.as_ref().map(|s| s.type_.as_str()),
        Some("RuntimeDefault")
    );
    let csc = zot(sts)
        .security_context
        .as_ref()
        .expect("container security context");
    assert_eq!(csc.allow_privilege_escalation, Some(false));
    assert_eq!(csc.read_only_root_filesystem, Some(true));
    assert_eq!(
        csc.capabilities.as_ref().and_then(|c| c.drop.clone()),
        Some(vec!["ALL".to_string()])
    );
    let mounts = zot(sts).volume_mounts.clone().unwrap_or_default();
    assert!(
        mounts.iter().any(|m| m.mount_path == "/tmp"),
        "writable /tmp"
    );
    assert_eq!(pod(sts).automount_service_account_token, Some(false));
}

#[test]
fn startup_probe_allows_at_least_thirty_minutes_and_probes_use_zot_health_paths() {
    let d = desired("version: v2.1.20\n");
    let c = zot(&d.objects.stateful_set);
    let startup = c.startup_probe.as_ref().expect("startup probe");
    let budget = startup.period_seconds.unwrap_or(10) * startup.failure_threshold.unwrap_or(3);
    assert!(budget >= 30 * 60, "startup budget {budget}s");
    let path = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
        p.as_ref()
            .and_then(|p| p.http_get.as_ref())
            .and_then(|h| h.path.clone())
    };
    assert_eq!(path(&c.startup_probe).as_deref(), Some("/startupz"));
    assert_eq!(path(&c.liveness_probe).as_deref(), Some("/livez"));
    assert_eq!(path(&c.readiness_probe).as_deref(), Some("/readyz"));
    assert_eq!(
        c.args,
        Some(vec![
            "serve".to_string(),
            "/etc/zot/config.json".to_string()
        ])
    );
    assert_eq!(c.image.as_deref(), Some("ghcr.io/project-zot/zot:v2.1.20"));
}

#[test]
fn probes_use_https_when_zot_serves_tls() {
    let d = desired("version: v2.1.20\ntls:\n  name: reg-tls\n");
    let c = zot(&d.objects.stateful_set);
    for probe in [&c.startup_probe, &c.liveness_probe, &c.readiness_probe] {
        let scheme = probe
            .as_ref()
            .and_then(|p| p.http_get.as_ref())
            .and_then(|h| h.scheme.clone());
        assert_eq!(scheme.as_deref(), Some("HTTPS"));
    }
}

#[test]
fn the_pod_template_carries_the_config_hash_so_a_config_change_rolls_the_pods() {
    let a = desired("version: v2.1.20\ngc:\n  delay: 2h\n");
    let b = desired("version: v2.1.20\ngc:\n  delay: 3h\n");
    let hash = |d: &DesiredRegistry| {
        d.objects
            .stateful_set
            .spec
            .as_ref()
            .and_then(|s| s.template.metadata.as_ref())
            .and_then(|m| m.annotations.as_ref())
            .and_then(|a| a.get(CONFIG_HASH_ANNOTATION).cloned())
            .expect("config-hash annotation")
    };
    assert_eq!(hash(&a), a.config.hash);
    assert_ne!(hash(&a), hash(&b));
    assert_eq!(
        a.objects
            .config_map
            .data
            .as_ref()
            .and_then(|d| d.get("config.json")),
        Some(&a.config.json)
    );
}

#[test]
fn a_local_registry_gets_a_10gi_volume_claim_at_var_lib_registry() {
    let d = desired("version: v2.1.20\n");
    let spec = d.objects.stateful_set.spec.as_ref().expect("spec");
    let claims = spec
        .volume_claim_templates
        .as_ref()
        .expect("claim templates");
    assert_eq!(claims.len(), 1);
    let size = claims[0]
        .spec
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .map(|q| q.0.clone());
    assert_eq!(size.as_deref(), Some("10Gi"));
    let mounts = zot(&d.objects.stateful_set)
        .volume_mounts
        .clone()
        .unwrap_or_default();
    assert!(mounts
        .iter()
        .any(|m| m.name == "data" && m.mount_path == "/var/lib/registry"));
}

#[test]
fn a_scale_out_registry_lists_every_pod_by_its_headless_dns_name_and_starts_them_together() {
    let d = desired(S3);
    assert_eq!(
        d.config.config["cluster"]["members"],
        serde_json::json!([
            "reg-0.reg-headless.ns.svc.cluster.local:5000",
            "reg-1.reg-headless.ns.svc.cluster.local:5000",
            "reg-2.reg-headless.ns.svc.cluster.local:5000",
        ])
    );
    let spec = d.objects.stateful_set.spec.as_ref().expect("spec");
    assert_eq!(spec.replicas, Some(3));
    assert_eq!(spec.service_name.as_deref(), Some("reg-headless"));
    assert_eq!(spec.pod_management_policy.as_deref(), Some("Parallel"));
    assert!(
        spec.volume_claim_templates.is_none(),
        "images live in the bucket"
    );
    let headless = d
        .objects
        .headless_service
        .spec
        .as_ref()
        .expect("headless spec");
    assert_eq!(headless.cluster_ip.as_deref(), Some("None"));
    assert_eq!(headless.publish_not_ready_addresses, Some(true));
    let env: Vec<String> = zot(&d.objects.stateful_set)
        .env
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(env, ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]);
}

#[test]
fn every_object_carries_the_recommended_labels() {
    let d = desired("version: v2.1.20\n");
    for object in d.objects.to_values().expect("serialise") {
        let labels = &object["metadata"]["labels"];
        assert_eq!(labels["app.kubernetes.io/name"], "zot");
        assert_eq!(labels["app.kubernetes.io/instance"], "reg");
        assert_eq!(labels["app.kubernetes.io/component"], "registry");
        assert_eq!(labels["app.kubernetes.io/managed-by"], "registry-operator");
        assert_eq!(labels["app.kubernetes.io/version"], "v2.1.20");
    }
}

#[test]
fn ui_logins_in_a_cluster_share_sessions_through_the_redis_cache() {
    let d = desired(&format!("{S3}auth:\n  htpasswdSecretRef: {{name: users}}\nextensions:\n  search: true\n  ui: true\n"));
    assert_eq!(
        d.config.config["http"]["auth"]["sessionDriver"],
        serde_json::json!({"keyprefix": "zotsession", "name": "redis", "url": "redis://redis:6379"})
    );
    let single = desired("version: v2.1.20\nauth:\n  htpasswdSecretRef: {name: users}\nextensions:\n  search: true\n  ui: true\n");
    assert!(single.config.config["http"]["auth"]
        .get("sessionDriver")
        .is_none());
}
