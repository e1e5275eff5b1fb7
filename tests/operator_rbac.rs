//! The operator's RBAC is exactly what it uses: one scenario drives every controller (managed
//! and external Registries, namespaced and cluster policies in both modes, in-use protection,
//! leader election), and the set of (API group, resource, verb) it called must equal the rules
//! of config/rbac (ClusterRole + leader-election Role), which the chart's are tested equal to.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, PostParams};
use registry_operator::api::{ClusterRetentionPolicy, Registry, RetentionPolicy};
use registry_operator::controller::context::Settings;
use registry_operator::controller::runtime::LeaderElection;
use serde_json::json;

use support::operator::{granted_rules, object, wait_for, Harness, OPERATOR_USER};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_is_granted_exactly_what_it_calls() {
    let real = support::registry::TestRegistry::start();
    let seeder = support::seed::Seeder::new(&real.url, None);
    for i in 1..=3 {
        seeder
            .push_image(
                "app/web",
                Some(&format!("v{i}")),
                &format!("w{i}"),
                &format!("2025-01-0{i}T00:00:00Z"),
            )
            .await;
    }
    let settings = Settings {
        health_interval: Duration::from_secs(2),
        backoff_base: Duration::from_millis(200),
        ..Settings::default()
    };
    let le = LeaderElection {
        namespace: "default".into(),
        lease: "registry-operator".into(),
        identity: "test-replica".into(),
    };
    let h = Harness::start_full(settings, Some(le)).await;
    let c = h.client.clone();

    let secrets: Api<Secret> = Api::namespaced(c.clone(), "default");
    secrets
        .create(
            &PostParams::default(),
            &object(
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pw"},
        "stringData": {"htpasswd": "admin:$2y$05$abcdefghijklmnopqrstuv"}}),
            ),
        )
        .await
        .unwrap();
    let regs: Api<Registry> = Api::namespaced(c.clone(), "default");
    regs.create(&PostParams::default(), &object(json!({"apiVersion": "registry-operator.dev/v1alpha1", "kind": "Registry",
        "metadata": {"name": "zot"}, "spec": {"version": "v2.1.20", "auth": {"htpasswdSecretRef": {"name": "pw"}}}}))).await.unwrap();
    regs.create(&PostParams::default(), &object(json!({"apiVersion": "registry-operator.dev/v1alpha1", "kind": "Registry",
        "metadata": {"name": "dist", "labels": {"tier": "prod"}}, "spec": {"external": {"url": real.url}}}))).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
    let host = real.url.trim_start_matches("http://").to_string();
    pods.create(
        &PostParams::default(),
        &object(
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
        "spec": {"containers": [{"name": "web", "image": format!("{host}/app/web:v1")}]}}),
        ),
    )
    .await
    .unwrap();
    let crps: Api<ClusterRetentionPolicy> = Api::all(c.clone());
    crps.create(&PostParams::default(), &object(json!({"apiVersion": "registry-operator.dev/v1alpha1", "kind": "ClusterRetentionPolicy",
        "metadata": {"name": "floor"}, "spec": {"registrySelector": {"matchLabels": {"tier": "prod"}}, "namespaceSelector": {},
        "mode": "Plan", "repositories": {"include": ["**"]}, "keep": [{"mostRecent": 5}]}}))).await.unwrap();
    let rps: Api<RetentionPolicy> = Api::namespaced(c.clone(), "default");
    rps.create(
        &PostParams::default(),
        &object(
            json!({"apiVersion": "registry-operator.dev/v1alpha1", "kind": "RetentionPolicy",
        "metadata": {"name": "web"}, "spec": {"registryRef": {"name": "dist"}, "mode": "Enforce",
        "repositories": {"include": ["app/**"]}, "keep": [{"mostRecent": 1}]}}),
        ),
    )
    .await
    .unwrap();

    wait_for("the Enforce run", || async {
        rps.get("web")
            .await
            .unwrap()
            .status
            .and_then(|s| s.last_run)
            .filter(|r| r.completion_time.is_some())
    })
    .await;
    wait_for("the cluster policy's run", || async {
        crps.get("floor")
            .await
            .unwrap()
            .status
            .and_then(|s| s.last_run)
    })
    .await;
    wait_for("the managed registry's status", || async {
        regs.get("zot")
            .await
            .unwrap()
            .status
            .and_then(|s| s.config_hash)
    })
    .await;
    // Let periodic work (health checks, lease renewals) happen at least once more.
    tokio::time::sleep(Duration::from_secs(3)).await;

    // A second run of the cluster policy repeats its Run event: the recorder patches its count.
    crps.patch(
        "floor",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(json!({"metadata": {"annotations": {"registry-operator.dev/run-requested-at": "again"}}})),
    )
    .await
    .unwrap();
    wait_for("the requested run", || async {
        crps.get("floor")
            .await
            .unwrap()
            .status
            .and_then(|s| s.last_run_request)
            .filter(|r| r == "again")
    })
    .await;

    let mut used: BTreeSet<(String, String, String)> = h
        .server
        .api_usage(OPERATOR_USER)
        .into_iter()
        .map(|u| (u.group, u.resource, u.verb))
        .collect();
    // The double does not model that a server-side apply which creates an object is also
    // authorised as `create` (the API server checks both), so patch on an applied kind implies it.
    for (g, r, v) in used.clone() {
        if v == "patch" && ["configmaps", "services", "statefulsets"].contains(&r.as_str()) {
            used.insert((g, r, "create".into()));
        }
    }
    let granted: BTreeSet<(String, String, String)> = granted_rules().into_iter().collect();
    let not_granted: Vec<_> = used.difference(&granted).collect();
    let not_used: Vec<_> = granted.difference(&used).collect();
    assert!(
        not_granted.is_empty(),
        "called without a grant: {not_granted:#?}"
    );
    assert!(
        not_used.is_empty(),
        "granted but never needed (remove from config/rbac and the chart): {not_used:#?}"
    );
    h.stop().await;
}
