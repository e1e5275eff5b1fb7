//! The operator's Registry controller on the real control plane (tests/support/cluster.rs),
//! running as the chart's ServiceAccount in a namespace of each test's own: a managed Registry
//! becomes a ConfigMap, Services and a StatefulSet owned by it; a spec change rolls the config
//! hash; an invalid spec stalls with the renderer's message and deploys nothing; a converged
//! Registry causes no further writes; an external registry that stops answering is reported in
//! status, counted in the failure metric and published as one Event.
//!
//! No kubelet runs: the StatefulSet controller creates zot's Pod, which stays Pending unless a
//! test writes its status as a kubelet would. Needs the control plane (scripts/test.sh).

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::ResourceExt;
use registry_operator::api::Registry;
use registry_operator::controller::registry::builders::CONFIG_HASH_ANNOTATION;
use serde_json::json;

use support::cluster::{condition, wait_for, Harness};

fn managed(ns: &str, name: &str, spec: serde_json::Value) -> Registry {
    serde_json::from_value(json!({
        "apiVersion": "registry-operator.dev/v1alpha1", "kind": "Registry",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }))
    .unwrap()
}

fn config_hash(sts: &StatefulSet) -> String {
    sts.spec
        .as_ref()
        .unwrap()
        .template
        .metadata
        .as_ref()
        .unwrap()
        .annotations
        .as_ref()
        .unwrap()[CONFIG_HASH_ANNOTATION]
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_managed_registry_gets_its_workload_with_owner_references_and_rolls_on_config_change() {
    let h = Harness::start("workload").await;
    let regs: Api<Registry> = Api::namespaced(h.client.clone(), &h.ns);
    let secrets: Api<Secret> = Api::namespaced(h.client.clone(), &h.ns);
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "main-htpasswd"},
                "stringData": {"htpasswd": "admin:$2y$05$abcdefghijklmnopqrstuv"}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    regs.create(
        &PostParams::default(),
        &managed(
            &h.ns,
            "main",
            json!({
                "version": "v2.1.20", "gc": {"interval": "1h", "delay": "2h"}, "dedupe": true,
                "auth": {"htpasswdSecretRef": {"name": "main-htpasswd"}},
            }),
        ),
    )
    .await
    .unwrap();

    let sts_api: Api<StatefulSet> = Api::namespaced(h.client.clone(), &h.ns);
    let sts = wait_for("the StatefulSet", || async {
        sts_api.get_opt("main").await.unwrap()
    })
    .await;
    let cm: Api<ConfigMap> = Api::namespaced(h.client.clone(), &h.ns);
    let svc: Api<Service> = Api::namespaced(h.client.clone(), &h.ns);
    let reg = regs.get("main").await.unwrap();
    let uid = reg.uid().unwrap();
    let config_maps = cm.list(&Default::default()).await.unwrap();
    let config_map = config_maps
        .items
        .iter()
        .find(|c| {
            c.data
                .as_ref()
                .is_some_and(|d| d.contains_key("config.json"))
        })
        .expect("config ConfigMap");
    let config: serde_json::Value =
        serde_json::from_str(&config_map.data.as_ref().unwrap()["config.json"]).unwrap();
    assert_eq!(config["storage"]["gcInterval"], "1h");
    assert_eq!(config["storage"]["gcDelay"], "2h");
    assert_eq!(config["storage"]["dedupe"], true);
    for owners in [
        sts.owner_references().to_vec(),
        config_map.owner_references().to_vec(),
        svc.get("main").await.unwrap().owner_references().to_vec(),
    ] {
        assert_eq!(owners.len(), 1);
        assert_eq!(owners[0].uid, uid);
        assert_eq!(owners[0].controller, Some(true));
    }

    // The StatefulSet controller creates the Pod, but no kubelet starts it: the rollout does
    // not complete, and the status says so.
    let reg = wait_for("a Reconciling status", || async {
        let r = regs.get("main").await.unwrap();
        condition(&r, "Reconciling")
            .filter(|c| c.status == "True")
            .map(|_| r)
    })
    .await;
    let status = reg.status.unwrap();
    assert_eq!(
        status.url,
        Some(format!("http://main.{}.svc.cluster.local:5000", h.ns))
    );
    assert_eq!(
        status.config_hash.as_deref(),
        Some(config_hash(&sts).as_str())
    );
    assert_eq!(condition_reason(&regs, "Ready").await, "RollingOut");

    // A config change rolls the pods through the hash annotation.
    let before = config_hash(&sts);
    regs.patch(
        "main",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"gc": {"interval": "30m"}}})),
    )
    .await
    .unwrap();
    let after = wait_for("a new config hash", || async {
        let s = sts_api.get("main").await.unwrap();
        Some(config_hash(&s)).filter(|h| *h != before)
    })
    .await;
    assert_ne!(after, before);
    h.stop().await;
}

async fn condition_reason(regs: &Api<Registry>, type_: &str) -> String {
    let r = regs.get("main").await.unwrap();
    condition(&r, type_).map(|c| c.reason).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_spec_stalls_with_the_renderers_message_and_deploys_nothing() {
    let h = Harness::start("invalid").await;
    let regs: Api<Registry> = Api::namespaced(h.client.clone(), &h.ns);
    // Valid for the API server, but gcTimeWindow needs zot v2.1.19.
    regs.create(
        &PostParams::default(),
        &managed(
            &h.ns,
            "old",
            json!({"version": "v2.1.18", "gc": {"timeWindow": "01:00-05:00"}}),
        ),
    )
    .await
    .unwrap();
    let stalled = wait_for("Stalled=True", || async {
        let r = regs.get("old").await.unwrap();
        condition(&r, "Stalled").filter(|c| c.status == "True")
    })
    .await;
    assert_eq!(stalled.reason, "InvalidSpec");
    assert!(stalled.message.contains("v2.1.19"), "{}", stalled.message);
    let sts_api: Api<StatefulSet> = Api::namespaced(h.client.clone(), &h.ns);
    let cm: Api<ConfigMap> = Api::namespaced(h.client.clone(), &h.ns);
    assert!(
        sts_api
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty(),
        "no workload for an invalid spec"
    );
    // The controller-manager publishes the cluster's CA (kube-root-ca.crt) into every
    // namespace: only the operator's config counts.
    let configs: Vec<String> = cm
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|c| c.name_any())
        .filter(|n| n != "kube-root-ca.crt")
        .collect();
    assert!(
        configs.is_empty(),
        "no config for an invalid spec: {configs:?}"
    );
    wait_for("an InvalidSpec event", || async {
        Some(h.events("old", "InvalidSpec").await).filter(|e| !e.is_empty())
    })
    .await;

    // Fixing the spec un-stalls it.
    regs.patch(
        "old",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"version": "v2.1.20"}})),
    )
    .await
    .unwrap();
    wait_for("the StatefulSet after the fix", || async {
        sts_api.get_opt("old").await.unwrap()
    })
    .await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_converged_registry_causes_no_further_writes() {
    let h = Harness::start("quiet").await;
    let regs: Api<Registry> = Api::namespaced(h.client.clone(), &h.ns);
    regs.create(
        &PostParams::default(),
        &managed(&h.ns, "quiet", json!({"version": "v2.1.20"})),
    )
    .await
    .unwrap();
    wait_for("status", || async {
        regs.get("quiet").await.unwrap().status
    })
    .await;
    settled_statefulset(&h, "quiet").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let versions_before = owned_versions(&h).await;
    let writes_before = writes_but_applies(&h);
    let applies_before = statefulset_applies(&h);
    // While it rolls out (no kubelet here) the operator looks again every 10 s and applies
    // the unchanged objects once more: wait for that apply, then compare.
    support::cluster::wait_for_within(
        "the next periodic apply of the StatefulSet",
        Duration::from_secs(30),
        || async { (statefulset_applies(&h) > applies_before).then_some(()) },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        owned_versions(&h).await,
        versions_before,
        "the API server stored a change after convergence"
    );
    assert_eq!(
        writes_but_applies(&h),
        writes_before,
        "writes after convergence (from the audit log)"
    );
    h.stop().await;
}

/// The operator's writes other than forced server-side applies, as `verb URI`.
fn writes_but_applies(h: &Harness) -> Vec<String> {
    h.operator_requests()
        .into_iter()
        .filter(|e| e.is_write() && !e.is_forced_apply())
        .map(|e| format!("{} {}", e.verb, e.uri))
        .collect()
}

/// How many server-side applies of StatefulSets the operator has sent.
fn statefulset_applies(h: &Harness) -> usize {
    h.operator_requests()
        .iter()
        .filter(|e| e.resource == "statefulsets" && e.is_forced_apply())
        .count()
}

/// The resourceVersions of the test namespace's Registries, ConfigMaps, Services and
/// StatefulSets.
async fn owned_versions(h: &Harness) -> Vec<(String, String)> {
    let mut out = Vec::new();
    macro_rules! collect {
        ($k:ty) => {
            let api: Api<$k> = Api::namespaced(h.client.clone(), &h.ns);
            for o in api.list(&Default::default()).await.unwrap().items {
                out.push((
                    format!("{}/{}", <$k as kube::Resource>::kind(&()), o.name_any()),
                    o.metadata.resource_version.clone().unwrap_or_default(),
                ));
            }
        };
    }
    collect!(Registry);
    collect!(ConfigMap);
    collect!(Service);
    collect!(StatefulSet);
    out
}

/// Waits until the StatefulSet controller has observed the StatefulSet's generation and
/// created its Pod (which, without a kubelet, stays Pending): its status stops changing.
async fn settled_statefulset(h: &Harness, name: &str) -> StatefulSet {
    let api: Api<StatefulSet> = Api::namespaced(h.client.clone(), &h.ns);
    wait_for(
        "the StatefulSet controller to report the StatefulSet",
        || async {
            let s = api.get(name).await.ok()?;
            let status = s.status.as_ref()?;
            (status.observed_generation == s.metadata.generation && status.replicas >= 1)
                .then_some(s)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_external_registry_answering_v2_becomes_ready_with_health_and_latency() {
    let real = support::registry::TestRegistry::start_with_auth("robot", "s3cret");
    let h = Harness::start("external").await;
    let secrets: Api<Secret> = Api::namespaced(h.client.clone(), &h.ns);
    secrets
        .create(&PostParams::default(), &serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/basic-auth",
            "metadata": {"name": "robot"}, "data": {"username": "cm9ib3Q=", "password": "czNjcmV0"}
        })).unwrap())
        .await
        .unwrap();
    let regs: Api<Registry> = Api::namespaced(h.client.clone(), &h.ns);
    regs.create(
        &PostParams::default(),
        &managed(
            &h.ns,
            "dist",
            json!({"external": {"url": real.url, "credentialsSecretRef": {"name": "robot"}}}),
        ),
    )
    .await
    .unwrap();
    let ready = wait_for("Ready=True", || async {
        let r = regs.get("dist").await.unwrap();
        condition(&r, "Ready")
            .filter(|c| c.status == "True")
            .map(|_| r)
    })
    .await;
    let status = ready.status.unwrap();
    let health = status.health.unwrap();
    assert!(health.healthy);
    assert!(health.latency_ms.is_some() && health.last_checked.is_some());
    assert_eq!(status.url.as_deref(), Some(real.url.as_str()));
    assert!(
        status.config_hash.is_none(),
        "nothing is deployed for an external registry"
    );
    let sts_api: Api<StatefulSet> = Api::namespaced(h.client.clone(), &h.ns);
    assert!(sts_api
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .is_empty());

    let unreachable = "registry_operator_reconcile_failures_total{controller=\"registry\",reason=\"RegistryUnreachable\"}";
    assert_eq!(
        h.metric(unreachable).await,
        None,
        "no failure while it answers"
    );

    // The registry goes away: the Registry reports it, with the error, and is no longer Ready.
    drop(real);
    let down = wait_for("Ready=False after the registry stops", || async {
        let r = regs.get("dist").await.unwrap();
        condition(&r, "Ready")
            .filter(|c| c.status == "False")
            .map(|_| r)
    })
    .await;
    let health = down.status.unwrap().health.unwrap();
    assert!(!health.healthy);
    assert!(health.error.is_some_and(|e| !e.is_empty()));
    assert_eq!(
        condition(&regs.get("dist").await.unwrap(), "Reconciling")
            .map(|c| c.reason)
            .as_deref(),
        Some("RegistryUnreachable")
    );
    // An alert on rising reconcile failures sees it.
    let failures = wait_for("a counted RegistryUnreachable failure", || async {
        h.metric(unreachable).await
    })
    .await;
    assert!(failures >= 1.0, "{failures}");
    // One Warning Event for the problem, not one per health check.
    let events = wait_for("a RegistryUnreachable event", || async {
        Some(h.events("dist", "RegistryUnreachable").await).filter(|e| !e.is_empty())
    })
    .await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].type_.as_deref(), Some("Warning"));
    let event_writes = || {
        h.operator_requests()
            .iter()
            .filter(|r| r.resource == "events" && r.is_write())
            .count()
    };
    // The first check may have caught the registry mid-shutdown (a different error, so a
    // second Event): count from when the problem is the steady "connection refused".
    wait_for("the steady connection-refused message", || async {
        let r = regs.get("dist").await.unwrap();
        condition(&r, "Reconciling").filter(|c| c.message.contains("refused"))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = event_writes();
    tokio::time::sleep(Duration::from_secs(5)).await; // two more health checks
    assert_eq!(
        event_writes(),
        before,
        "the same problem is not published again"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_signs_in_to_a_managed_zot_with_the_account_auth_names() {
    use registry_operator::controller::target;
    use registry_operator::oci::{ClientOptions, Credentials};
    let h = Harness::start("signin").await;
    let secrets: Api<Secret> = Api::namespaced(h.client.clone(), &h.ns);
    let reg = managed(
        &h.ns,
        "main",
        json!({
            "version": "v2.1.20",
            "auth": {
                "htpasswdSecretRef": {"name": "main-htpasswd"},
                "operatorCredentialsSecretRef": {"name": "main-retention"},
            },
        }),
    );
    let options = ClientOptions::default();
    let resolve = || target::resolve(&h.client, &reg, &options, "cluster.local");
    // the Secret is missing: that is the error, not an anonymous attempt
    let err = resolve().await.unwrap_err();
    assert_eq!(err.reason(), "SecretNotFound", "{err}");
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "main-retention"},
                "type": "kubernetes.io/basic-auth",
                "stringData": {"username": "retention", "password": "s3cret"}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let t = resolve().await.unwrap();
    assert_eq!(
        t.url,
        format!("http://main.{}.svc.cluster.local:5000", h.ns)
    );
    assert_eq!(t.credentials, Credentials::basic("retention", "s3cret"));
    h.stop().await;
}

/// A port on 127.0.0.1 nobody listens on (bound, then released).
fn dead_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", l.local_addr().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_that_recovers_loses_its_error_and_stops_writing_status() {
    let real = support::registry::TestRegistry::start();
    let h = Harness::start("recovers").await;
    let regs: Api<Registry> = Api::namespaced(h.client.clone(), &h.ns);
    regs.create(
        &PostParams::default(),
        &managed(&h.ns, "dist", json!({"external": {"url": dead_url()}})),
    )
    .await
    .unwrap();
    let down = wait_for("an unhealthy status with the error", || async {
        let r = regs.get("dist").await.unwrap();
        r.status
            .as_ref()
            .and_then(|s| s.health.as_ref())
            .is_some_and(|h| !h.healthy && h.error.is_some())
            .then_some(r)
    })
    .await;
    assert_eq!(
        condition(&down, "Ready").map(|c| c.status).as_deref(),
        Some("False")
    );

    // The registry is fixed (here: pointed at one that answers).
    regs.patch(
        "dist",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"external": {"url": real.url}}})),
    )
    .await
    .unwrap();
    let up = wait_for("Ready=True", || async {
        let r = regs.get("dist").await.unwrap();
        condition(&r, "Ready")
            .filter(|c| c.status == "True")
            .map(|_| r)
    })
    .await;
    let health = up.status.unwrap().health.unwrap();
    assert!(health.healthy);
    assert_eq!(
        health.error, None,
        "the old error is gone once the registry answers"
    );

    // Converged: further health checks (every 2 s here) write nothing.
    let status_writes = || {
        h.operator_requests()
            .iter()
            .filter(|r| r.resource == "registries" && r.subresource == "status" && r.is_write())
            .count()
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = status_writes();
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        status_writes(),
        before,
        "a healthy, converged Registry writes no status"
    );
    h.stop().await;
}

fn claim_size(sts: &StatefulSet) -> Option<String> {
    let claims = sts.spec.as_ref()?.volume_claim_templates.as_ref()?;
    Some(
        claims[0]
            .spec
            .as_ref()?
            .resources
            .as_ref()?
            .requests
            .as_ref()?["storage"]
            .0
            .clone(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storage_change_is_refused_with_how_to_migrate_and_applies_nothing() {
    let h = Harness::start("storage").await;
    let regs: Api<Registry> = Api::namespaced(h.client.clone(), &h.ns);
    regs.create(
        &PostParams::default(),
        &managed(
            &h.ns,
            "main",
            json!({"version": "v2.1.20", "dedupe": false, "storage": {"size": "10Gi"}}),
        ),
    )
    .await
    .unwrap();
    let sts_api: Api<StatefulSet> = Api::namespaced(h.client.clone(), &h.ns);
    let cm: Api<ConfigMap> = Api::namespaced(h.client.clone(), &h.ns);
    wait_for("RollingOut", || async {
        let r = regs.get("main").await.unwrap();
        condition(&r, "Ready").filter(|c| c.reason == "RollingOut")
    })
    .await;
    let config_before = cm.get("main-config").await.unwrap();
    let owned_writes = || {
        h.operator_requests()
            .iter()
            .filter(|r| {
                ["configmaps", "services", "statefulsets"].contains(&r.resource.as_str())
                    && r.is_write()
            })
            .count()
    };

    let stalled_with = |reason: &'static str, generation: i64| {
        let regs = regs.clone();
        async move {
            let r = regs.get("main").await.unwrap();
            condition(&r, "Stalled")
                .filter(|c| c.reason == reason && c.observed_generation == Some(generation))
        }
    };

    // A bigger volume: refused, with the way to grow the claims in place.
    settled_statefulset(&h, "main").await;
    tokio::time::sleep(Duration::from_secs(1)).await; // the reconciles that status caused end
    let writes = owned_writes();
    let sts_version = sts_api.get("main").await.unwrap().metadata.resource_version;
    regs.patch(
        "main",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"storage": {"size": "20Gi"}}})),
    )
    .await
    .unwrap();
    let stalled = wait_for("Stalled=StorageChangeRefused", || {
        stalled_with("StorageChangeRefused", 2)
    })
    .await;
    assert!(
        stalled.message.contains("storage.size 10Gi → 20Gi")
            && stalled.message.contains("data-main-")
            && stalled.message.contains("--cascade=orphan"),
        "{}",
        stalled.message
    );
    // A volume to S3: refused too, and the ConfigMap keeps the config the pods run with.
    regs.patch(
        "main",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"storage": {"size": null,
            "s3": {"bucket": "images", "region": "eu-west-1"}}}})),
    )
    .await
    .unwrap();
    let stalled = wait_for("Stalled for the move to S3", || {
        stalled_with("StorageChangeRefused", 3)
    })
    .await;
    assert!(stalled.message.contains("to S3"), "{}", stalled.message);
    tokio::time::sleep(Duration::from_secs(3)).await; // more health intervals
    assert_eq!(owned_writes(), writes, "nothing was applied");
    let sts = sts_api.get("main").await.unwrap();
    assert_eq!(claim_size(&sts).as_deref(), Some("10Gi"));
    assert_eq!(sts.metadata.resource_version, sts_version);
    assert_eq!(
        cm.get("main-config")
            .await
            .unwrap()
            .metadata
            .resource_version,
        config_before.metadata.resource_version,
        "the running zot's config is untouched"
    );

    // Reverting the storage un-stalls it.
    regs.patch(
        "main",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"storage": {"size": "10Gi", "s3": null}}})),
    )
    .await
    .unwrap();
    wait_for("RollingOut again", || async {
        let r = regs.get("main").await.unwrap();
        condition(&r, "Ready")
            .filter(|c| c.reason == "RollingOut" && c.observed_generation == Some(4))
            .filter(|_| condition(&r, "Stalled").is_none())
    })
    .await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_the_api_server_refuses_stalls_the_registry_with_its_message() {
    let h = Harness::start("refused").await;
    // A StatefulSet of the same name from another installation, with another serviceName:
    // the operator's apply would change an immutable field.
    let sts_api: Api<StatefulSet> = Api::namespaced(h.client.clone(), &h.ns);
    sts_api
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "main"},
                "spec": {"serviceName": "zot", "selector": {"matchLabels": {"app": "zot"}},
                         "template": {"metadata": {"labels": {"app": "zot"}},
                                      "spec": {"containers": [{"name": "zot", "image": "zot"}]}},
                         "volumeClaimTemplates": [{"metadata": {"name": "data"},
                             "spec": {"accessModes": ["ReadWriteOnce"],
                                      "resources": {"requests": {"storage": "10Gi"}}}}]},
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let regs: Api<Registry> = Api::namespaced(h.client.clone(), &h.ns);
    regs.create(
        &PostParams::default(),
        &managed(&h.ns, "main", json!({"version": "v2.1.20"})),
    )
    .await
    .unwrap();
    let stalled = wait_for("Stalled=ApplyRejected", || async {
        let r = regs.get("main").await.unwrap();
        condition(&r, "Stalled").filter(|c| c.status == "True")
    })
    .await;
    assert_eq!(stalled.reason, "ApplyRejected");
    assert!(
        stalled
            .message
            .contains(&format!("StatefulSet {}/main", h.ns))
            && stalled.message.contains("Forbidden"),
        "{}",
        stalled.message
    );
    wait_for("an ApplyRejected event", || async {
        Some(h.events("main", "ApplyRejected").await).filter(|e| !e.is_empty())
    })
    .await;
    h.stop().await;
}

/// Writes a Pod's status as a kubelet does once its containers run and pass their readiness
/// probes: phase Running, the Ready conditions.
async fn report_ready_as_kubelet(pods: &Api<Pod>, name: &str) {
    let now = "2026-01-01T00:00:00Z";
    let condition =
        |type_: &str| json!({"type": type_, "status": "True", "lastTransitionTime": now});
    pods.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {
            "phase": "Running", "startTime": now,
            "conditions": [condition("PodScheduled"), condition("Initialized"),
                           condition("ContainersReady"), condition("Ready")],
        }})),
    )
    .await
    .unwrap_or_else(|e| panic!("writing {name}'s status: {e}"));
}

/// A kubernetes.io/tls Secret as cert-manager writes it, with `ca.crt` when `ca` is given.
fn tls_secret(name: &str, ca: Option<&str>) -> Secret {
    let mut data = json!({"tls.crt": "cert", "tls.key": "key"});
    if let Some(ca) = ca {
        data["ca.crt"] = json!(ca);
    }
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
        "metadata": {"name": name}, "stringData": data,
    }))
    .unwrap()
}

/// The PEM certificate of a fresh self-signed CA (made with the `openssl` CLI).
fn ca_pem() -> String {
    let dir = tempfile::tempdir().unwrap();
    let (key, crt) = (dir.path().join("ca.key"), dir.path().join("ca.crt"));
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args([
            "-nodes",
            "-subj",
            "/CN=registry-operator test CA",
            "-days",
            "1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(crt).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_trusts_the_ca_in_a_managed_registrys_tls_secret() {
    use registry_operator::controller::target;
    use registry_operator::oci::ClientOptions;
    let h = Harness::start("ca").await;
    let secrets: Api<Secret> = Api::namespaced(h.client.clone(), &h.ns);
    let reg = managed(
        &h.ns,
        "main",
        json!({"version": "v2.1.20", "tls": {"name": "main-tls"}}),
    );
    let options = ClientOptions::default();
    let resolve = || target::resolve(&h.client, &reg, &options, "cluster.local");

    // A cert-manager Secret carries the CA that signed tls.crt: the client trusts it.
    let ca = ca_pem();
    secrets
        .create(&PostParams::default(), &tls_secret("main-tls", Some(&ca)))
        .await
        .unwrap();
    let t = resolve().await.unwrap();
    assert_eq!(
        t.url,
        format!("https://main.{}.svc.cluster.local:5000", h.ns)
    );
    assert_eq!(t.options.ca_pem.as_deref(), Some(ca.as_bytes()));
    t.client().expect("a client that trusts the CA");

    // Without ca.crt there is nothing to verify the certificate with: a clear error.
    secrets
        .replace(
            "main-tls",
            &PostParams::default(),
            &tls_secret("main-tls", None),
        )
        .await
        .unwrap();
    let err = resolve().await.unwrap_err();
    assert_eq!(err.reason(), "SecretInvalid", "{err}");
    assert!(err.to_string().contains("ca.crt"), "{err}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_managed_tls_registry_without_a_ca_stalls_with_a_message_naming_ca_crt() {
    let h = Harness::start("noca").await;
    let secrets: Api<Secret> = Api::namespaced(h.client.clone(), &h.ns);
    secrets
        .create(&PostParams::default(), &tls_secret("main-tls", None))
        .await
        .unwrap();
    let regs: Api<Registry> = Api::namespaced(h.client.clone(), &h.ns);
    regs.create(
        &PostParams::default(),
        &managed(
            &h.ns,
            "main",
            json!({"version": "v2.1.20", "tls": {"name": "main-tls"}}),
        ),
    )
    .await
    .unwrap();
    // No kubelet runs here: once the StatefulSet controller has created zot's Pod, report it
    // running and ready as a kubelet would; the StatefulSet controller then completes the
    // rollout in the StatefulSet's status.
    let pods: Api<Pod> = Api::namespaced(h.client.clone(), &h.ns);
    wait_for("the StatefulSet controller to create main-0", || async {
        pods.get_opt("main-0").await.unwrap()
    })
    .await;
    report_ready_as_kubelet(&pods, "main-0").await;
    let stalled = wait_for("Stalled=SecretInvalid", || async {
        let r = regs.get("main").await.unwrap();
        condition(&r, "Stalled").filter(|c| c.status == "True")
    })
    .await;
    assert_eq!(stalled.reason, "SecretInvalid");
    assert!(
        stalled.message.contains("main-tls") && stalled.message.contains("ca.crt"),
        "{}",
        stalled.message
    );

    // cert-manager (or a person) adds ca.crt: the operator goes on to check /v2/ over HTTPS
    // (which cannot resolve the Service name outside a cluster).
    secrets
        .replace(
            "main-tls",
            &PostParams::default(),
            &tls_secret("main-tls", Some(&ca_pem())),
        )
        .await
        .unwrap();
    let next = wait_for("the CA accepted", || async {
        let r = regs.get("main").await.unwrap();
        condition(&r, "Ready").filter(|c| c.reason != "SecretInvalid")
    })
    .await;
    assert_eq!(next.reason, "RegistryUnreachable", "{next:?}");
    assert!(
        next.message
            .contains(&format!("https://main.{}.svc.cluster.local:5000/v2/", h.ns)),
        "the check went out over HTTPS: {}",
        next.message
    );
    h.stop().await;
}
