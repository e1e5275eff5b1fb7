//! On the real API server: the operator, running as the Helm chart's ServiceAccount, is granted
//! exactly what it calls. One scenario drives every controller (managed and external
//! Registries, a namespaced Enforce policy and a cluster policy, in-use protection, leader
//! election); the API server refuses anything the chart does not grant (403, which fails the
//! test), and its audit log gives the (API group, resource, verb) set the operator used, which
//! must equal the rules of the chart's ClusterRole and leader-election Role.
//!
//! A test binary of its own: its ClusterRetentionPolicy is cluster-wide, and operators of other
//! tests running beside it would reconcile it too. Needs the control plane (scripts/test.sh).

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use registry_operator::api::{ClusterRetentionPolicy, Registry, RetentionPolicy};
use registry_operator::controller::context::Settings;
use serde_json::{json, Value};

use support::cluster::{chart_rbac, wait_for, Cluster};

fn object<K: serde::de::DeserializeOwned>(v: Value) -> K {
    serde_json::from_value(v).expect("fixture")
}

/// The (group, resource, verb) triples the chart's Roles for the operator grant.
fn chart_grants(namespace: &str) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for o in chart_rbac(&format!("ro-{namespace}"), namespace) {
        if !matches!(o["kind"].as_str(), Some("ClusterRole" | "Role")) {
            continue;
        }
        for rule in o["rules"].as_array().into_iter().flatten() {
            let strings = |k: &str| -> Vec<String> {
                rule[k]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            };
            for g in strings("apiGroups") {
                for r in strings("resources") {
                    for v in strings("verbs") {
                        out.insert((g.clone(), r.clone(), v));
                    }
                }
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_is_granted_exactly_what_it_calls_by_the_api_servers_audit_log() {
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
    let c = Cluster::connect().await;
    c.install_crds().await;
    let ns = c.namespace("rbac").await;
    let settings = Settings {
        health_interval: Duration::from_secs(2),
        backoff_base: Duration::from_millis(200),
        ..Settings::default()
    };
    let op = c.start_operator_full(&ns, settings, true).await;
    let client = c.client.clone();

    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
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
    let regs: Api<Registry> = Api::namespaced(client.clone(), &ns);
    regs.create(&PostParams::default(), &object(json!({"apiVersion": "registry-operator.dev/v1alpha1", "kind": "Registry",
        "metadata": {"name": "zot"}, "spec": {"version": "v2.1.20", "auth": {"htpasswdSecretRef": {"name": "pw"}}}})))
        .await
        .unwrap();
    regs.create(&PostParams::default(), &object(json!({"apiVersion": "registry-operator.dev/v1alpha1", "kind": "Registry",
        "metadata": {"name": "dist", "labels": {"tier": ns}}, "spec": {"external": {"url": real.url}}})))
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
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
    let crps: Api<ClusterRetentionPolicy> = Api::all(client.clone());
    let crp = format!("floor-{ns}");
    crps.create(
        &PostParams::default(),
        &object(
            json!({"apiVersion": "registry-operator.dev/v1alpha1", "kind": "ClusterRetentionPolicy",
        "metadata": {"name": crp}, "spec": {"registrySelector": {"matchLabels": {"tier": ns}},
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}},
        "mode": "Plan", "repositories": {"include": ["**"]}, "keep": [{"mostRecent": 5}]}}),
        ),
    )
    .await
    .unwrap();
    let rps: Api<RetentionPolicy> = Api::namespaced(client.clone(), &ns);
    rps.create(
        &PostParams::default(),
        &object(json!({"apiVersion": "registry-operator.dev/v1alpha1", "kind": "RetentionPolicy",
            "metadata": {"name": "web"}, "spec": {"registryRef": {"name": "dist"}, "mode": "Enforce",
            "repositories": {"include": ["app/**"]}, "keep": [{"mostRecent": 1}]}})),
    )
    .await
    .unwrap();

    wait_for("the Enforce run", || async {
        rps.get("web")
            .await
            .ok()?
            .status?
            .last_run
            .filter(|r| r.completion_time.is_some())
    })
    .await;
    wait_for("the cluster policy's run", || async {
        crps.get(&crp).await.ok()?.status?.last_run
    })
    .await;
    wait_for("the managed registry's status", || async {
        regs.get("zot").await.ok()?.status?.config_hash
    })
    .await;
    // Periodic work (health checks, Lease renewals) at least once more.
    tokio::time::sleep(Duration::from_secs(3)).await;
    // A second run of the cluster policy repeats its Run event: the recorder patches its count.
    crps.patch(
        &crp,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"registry-operator.dev/run-requested-at": "again"}}})),
    )
    .await
    .unwrap();
    wait_for("the requested run", || async {
        crps.get(&crp)
            .await
            .ok()?
            .status?
            .last_run_request
            .filter(|r| r == "again")
    })
    .await;

    let username = op.identity.username.clone();
    op.stop(&c).await; // fails on any 403
    let _ = crps.delete(&crp, &DeleteParams::default()).await;

    let mut used: BTreeSet<(String, String, String)> = c
        .audit_events(&username)
        .into_iter()
        .filter(|e| !e.resource.is_empty())
        .map(|e| {
            let resource = if e.subresource.is_empty() {
                e.resource
            } else {
                format!("{}/{}", e.resource, e.subresource)
            };
            (e.group, resource, e.verb)
        })
        .collect();
    // A server-side apply is logged as `patch`; when it creates the object the API server
    // authorises it as `create` as well (a missing grant would have been a 403 above).
    for (g, r, v) in used.clone() {
        if v == "patch" && ["configmaps", "services", "statefulsets"].contains(&r.as_str()) {
            used.insert((g, r, "create".into()));
        }
    }
    let granted = chart_grants(&ns);
    let not_granted: Vec<_> = used.difference(&granted).collect();
    let not_used: Vec<_> = granted.difference(&used).collect();
    assert!(
        not_granted.is_empty(),
        "called without a grant (and not refused?): {not_granted:#?}"
    );
    assert!(
        not_used.is_empty(),
        "granted but never needed (remove from the chart and config/rbac): {not_used:#?}"
    );
}
