//! The operator's retention policy controllers on the real control plane (tests/support/
//! cluster.rs; the operator as the chart's ServiceAccount, in a namespace of each test's own)
//! and a real distribution registry: Plan shows candidates and touches nothing; Enforce deletes exactly the
//! expected tags; Pods protect their images by tag and by digest; a ClusterRetentionPolicy's keep
//! vetoes a namespaced deletion; a blast-radius breach deletes nothing and stalls; purge removes
//! a project except what runs; a suspended policy runs not at all until resumed; an invalid
//! policy on the same registry stalls an Enforce run, named in the message, and so does a
//! cluster policy whose selector is invalid; policies on one registry veto each other whichever
//! Registry object (and URL spelling) they name it through; a run's limits count every
//! registry it covers.
//!
//! Every operator watches ClusterRetentionPolicies and lists Registries cluster-wide for them,
//! so the tests that create one run alone in this binary (`Harness::start_alone`), name them
//! after their namespace, select only Registries in it, and delete them when they end. Needs the
//! control plane (scripts/test.sh).

mod support;

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams, PostParams};
use registry_operator::api::retention::RunOutcome;
use registry_operator::api::{ClusterRetentionPolicy, Registry, RetentionPolicy};
use registry_operator::oci::{ClientOptions, Credentials, RegistryClient};
use serde_json::json;

use support::cluster::{condition, object, wait_for, Cluster, Harness};
use support::registry::TestRegistry;
use support::seed::Seeder;

/// A real registry with `team-a/web` (v1..v5, v1 oldest), `team-a/api` (v1..v3) and
/// `old/svc` (a, b), every image created on its own day in 2025.
struct Fixture {
    registry: TestRegistry,
    client: RegistryClient,
    web_digests: Vec<String>,
}

async fn fixture() -> Fixture {
    let registry = TestRegistry::start();
    let seeder = Seeder::new(&registry.url, None);
    let mut web_digests = Vec::new();
    for i in 1..=5 {
        let p = seeder
            .push_image(
                "team-a/web",
                Some(&format!("v{i}")),
                &format!("web{i}"),
                &format!("2025-01-0{i}T00:00:00Z"),
            )
            .await;
        web_digests.push(p.digest);
    }
    for i in 1..=3 {
        seeder
            .push_image(
                "team-a/api",
                Some(&format!("v{i}")),
                &format!("api{i}"),
                &format!("2025-02-0{i}T00:00:00Z"),
            )
            .await;
    }
    for t in ["a", "b"] {
        seeder
            .push_image(
                "old/svc",
                Some(t),
                &format!("svc-{t}"),
                "2025-03-01T00:00:00Z",
            )
            .await;
    }
    let client = RegistryClient::new(
        &registry.url,
        Credentials::Anonymous,
        ClientOptions::default(),
    )
    .unwrap();
    Fixture {
        registry,
        client,
        web_digests,
    }
}

impl Fixture {
    fn host(&self) -> String {
        self.registry.url.trim_start_matches("http://").to_string()
    }

    async fn tags(&self, repo: &str) -> BTreeSet<String> {
        self.client
            .tags(repo)
            .await
            .map(|t| t.into_iter().collect())
            .unwrap_or_default()
    }
}

async fn external_registry(h: &Harness, url: &str, labels: serde_json::Value) {
    external_registry_in(h, &h.ns, "dist", url, labels).await;
}

async fn external_registry_in(
    h: &Harness,
    namespace: &str,
    name: &str,
    url: &str,
    labels: serde_json::Value,
) {
    let regs: Api<Registry> = Api::namespaced(h.client.clone(), namespace);
    regs.create(
        &PostParams::default(),
        &object(json!({
            "apiVersion": "registry-operator.dev/v1alpha1", "kind": "Registry",
            "metadata": {"name": name, "labels": labels},
            "spec": {"external": {"url": url}},
        })),
    )
    .await
    .unwrap();
}

async fn wait_cluster_run(api: &Api<ClusterRetentionPolicy>, name: &str) -> ClusterRetentionPolicy {
    wait_for(&format!("a run of {name}"), || async {
        let p = api.get(name).await.unwrap();
        let ran = p
            .status
            .as_ref()
            .and_then(|s| s.last_run.as_ref())
            .is_some_and(|r| r.completion_time.is_some());
        ran.then_some(p)
    })
    .await
}

fn policy(name: &str, spec: serde_json::Value) -> RetentionPolicy {
    let mut full = json!({"registryRef": {"name": "dist"}, "protect": {"minAge": "1h"}});
    for (k, v) in spec.as_object().unwrap() {
        full[k] = v.clone();
    }
    object(json!({
        "apiVersion": "registry-operator.dev/v1alpha1", "kind": "RetentionPolicy",
        "metadata": {"name": name}, "spec": full,
    }))
}

async fn wait_run(api: &Api<RetentionPolicy>, name: &str, generation: i64) -> RetentionPolicy {
    wait_for(
        &format!("a run of {name} at generation {generation}"),
        || async {
            let p = api.get(name).await.unwrap();
            let ran = p
                .status
                .as_ref()
                .and_then(|s| s.last_run.as_ref())
                .is_some_and(|r| r.generation == Some(generation) && r.completion_time.is_some());
            ran.then_some(p)
        },
    )
    .await
}

const IN_USE_OBJECTS: &str = "registry_operator_in_use_objects";

/// How many objects (Pods and workloads, cluster-wide) the operator's in-use index holds, once
/// it has listed them all.
async fn in_use_objects(h: &Harness) -> f64 {
    wait_for("the in-use index to sync", || async {
        (h.metric("registry_operator_in_use_synced").await == Some(1.0)).then_some(())
    })
    .await;
    wait_for("the in-use gauge", || h.metric(IN_USE_OBJECTS)).await
}

/// Waits until the in-use index holds at least `more` objects more than `before`: the Pods a
/// test just created have come through the operator's watch (a Pod created in the very
/// instant a run starts can be missed, as the docs say).
async fn operator_sees_more_in_use(h: &Harness, before: f64, more: u32) {
    wait_for(
        "the operator's Pod watch to deliver the new Pods",
        || async { (h.metric(IN_USE_OBJECTS).await? >= before + f64::from(more)).then_some(()) },
    )
    .await;
}

/// The ClusterRetentionPolicy `<name>-<the test's namespace>` with `spec`, limited to the
/// test's namespace by a `namespaceSelector`, so operators of later tests never select its
/// Registries (every operator lists Registries cluster-wide for cluster policies).
fn cluster_policy(h: &Harness, name: &str, spec: serde_json::Value) -> ClusterRetentionPolicy {
    let mut spec = spec;
    spec["namespaceSelector"] = json!({"matchLabels": {"kubernetes.io/metadata.name": h.ns}});
    object(json!({
        "apiVersion": "registry-operator.dev/v1alpha1", "kind": "ClusterRetentionPolicy",
        "metadata": {"name": format!("{name}-{}", h.ns)}, "spec": spec,
    }))
}

/// Deletes the test's ClusterRetentionPolicies (named `*-<namespace>`) when dropped, also
/// when the test fails: they are cluster-scoped and outlive the test's namespace.
struct DeleteClusterPolicies {
    cluster: Cluster,
    names: Vec<String>,
}

impl DeleteClusterPolicies {
    fn of(h: &Harness, names: &[&str]) -> Self {
        DeleteClusterPolicies {
            cluster: h.cluster.clone(),
            names: names.iter().map(|n| format!("{n}-{}", h.ns)).collect(),
        }
    }
}

impl Drop for DeleteClusterPolicies {
    fn drop(&mut self) {
        let mut args = vec![
            "delete",
            "clusterretentionpolicies",
            "--ignore-not-found",
            "--wait=false",
        ];
        args.extend(self.names.iter().map(String::as_str));
        let (ok, _, err) = self.cluster.kubectl(&args);
        if !ok {
            eprintln!("deleting the cluster policies {:?}: {err}", self.names);
        }
    }
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_mode_lists_candidates_and_enforce_deletes_them_except_images_pods_run() {
    let f = fixture().await;
    let h = Harness::start("plan").await;
    external_registry(&h, &f.registry.url, json!({})).await;
    let policies: Api<RetentionPolicy> = Api::namespaced(h.client.clone(), &h.ns);
    policies
        .create(&PostParams::default(), &policy("web", json!({
            "mode": "Plan", "repositories": {"include": ["team-a/web"]}, "keep": [{"mostRecent": 2}],
        })))
        .await
        .unwrap();
    let planned = wait_run(&policies, "web", 1).await;
    let status = planned.status.unwrap();
    let run = status.last_run.unwrap();
    assert_eq!(
        (run.tags, run.kept, run.would_delete, run.deleted),
        (5, 2, 3, 0),
        "{run:?}"
    );
    let candidates: BTreeSet<String> = status.candidates.iter().map(|c| c.tag.clone()).collect();
    assert_eq!(candidates, set(&["v1", "v2", "v3"]));
    assert!(status
        .candidates
        .iter()
        .all(|c| c.repository == "team-a/web" && c.digest.starts_with("sha256:")));
    assert_eq!(
        condition(&policies.get("web").await.unwrap(), "Ready")
            .unwrap()
            .reason,
        "Planned"
    );
    assert_eq!(
        f.tags("team-a/web").await.len(),
        5,
        "Plan mode deletes nothing"
    );

    // A Pod runs v2 by tag, another v1 by digest: both survive Enforce.
    let pods: Api<Pod> = Api::namespaced(h.client.clone(), &h.ns);
    let seen = in_use_objects(&h).await;
    pods.create(&PostParams::default(), &object(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-by-tag"},
        "spec": {"containers": [{"name": "web", "image": format!("{}/team-a/web:v2", f.host())}]},
    }))).await.unwrap();
    pods.create(&PostParams::default(), &object(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-by-digest"},
        "spec": {"containers": [{"name": "web", "image": format!("{}/team-a/web@{}", f.host(), f.web_digests[0])}]},
    }))).await.unwrap();
    operator_sees_more_in_use(&h, seen, 2).await;
    policies
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"mode": "Enforce"}})),
        )
        .await
        .unwrap();
    let enforced = wait_run(&policies, "web", 2).await;
    let run = enforced.status.as_ref().unwrap().last_run.clone().unwrap();
    assert_eq!(run.deleted, 1, "only v3 goes: {run:?}");
    assert_eq!(f.tags("team-a/web").await, set(&["v1", "v2", "v4", "v5"]));
    assert_eq!(
        f.tags("team-a/api").await.len(),
        3,
        "out-of-scope repositories are untouched"
    );
    assert_eq!(condition(&enforced, "Ready").unwrap().reason, "Enforced");
    let events = h
        .operator_requests()
        .into_iter()
        .filter(|r| r.resource == "events" && (r.verb == "create" || r.verb == "patch"))
        .count();
    assert!(events >= 2, "runs publish events");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_policy_keep_vetoes_a_namespaced_deletion() {
    let f = fixture().await;
    let h = Harness::start_alone("veto").await;
    let _cleanup = DeleteClusterPolicies::of(&h, &["floor"]);
    external_registry(&h, &f.registry.url, json!({"tier": "prod"})).await;
    let crps: Api<ClusterRetentionPolicy> = Api::all(h.client.clone());
    let floor = cluster_policy(
        &h,
        "floor",
        json!({"registrySelector": {"matchLabels": {"tier": "prod"}}, "mode": "Plan",
               "repositories": {"include": ["**"]}, "keep": [{"tags": {"regex": "v1"}}]}),
    );
    let floor_name = floor.metadata.name.clone().unwrap();
    crps.create(&PostParams::default(), &floor).await.unwrap();
    let policies: Api<RetentionPolicy> = Api::namespaced(h.client.clone(), &h.ns);
    policies
        .create(&PostParams::default(), &policy("api", json!({
            "mode": "Enforce", "repositories": {"include": ["team-a/api"]}, "keep": [{"mostRecent": 1}],
        })))
        .await
        .unwrap();
    let done = wait_run(&policies, "api", 1).await;
    let run = done.status.unwrap().last_run.unwrap();
    assert_eq!(run.deleted, 1, "{run:?}");
    assert_eq!(
        f.tags("team-a/api").await,
        set(&["v1", "v3"]),
        "v1 is kept by the cluster policy, v2 goes"
    );
    // The cluster policy itself ran in Plan mode against the selected registry.
    let floor = wait_for("the cluster policy's run", || async {
        crps.get(&floor_name)
            .await
            .unwrap()
            .status
            .and_then(|s| s.last_run)
    })
    .await;
    assert_eq!(floor.registries, 1);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exceeding_the_deletion_limit_deletes_nothing_and_stalls() {
    let f = fixture().await;
    let h = Harness::start("deletelimit").await;
    external_registry(&h, &f.registry.url, json!({})).await;
    let policies: Api<RetentionPolicy> = Api::namespaced(h.client.clone(), &h.ns);
    policies
        .create(&PostParams::default(), &policy("tight", json!({
            "mode": "Enforce", "repositories": {"include": ["team-a/**"]}, "keep": [{"mostRecent": 1}],
            "limits": {"maxDeletionsPerRun": 2},
        })))
        .await
        .unwrap();
    let done = wait_run(&policies, "tight", 1).await;
    let run = done.status.as_ref().unwrap().last_run.clone().unwrap();
    assert_eq!(run.deleted, 0);
    let stalled = condition(&done, "Stalled").expect("Stalled condition");
    assert_eq!(
        (stalled.status.as_str(), stalled.reason.as_str()),
        ("True", "BlastRadiusExceeded")
    );
    assert!(
        stalled.message.contains("maxDeletionsPerRun"),
        "{}",
        stalled.message
    );
    assert_eq!(f.tags("team-a/web").await.len(), 5);
    assert_eq!(f.tags("team-a/api").await.len(), 3);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_policy_removes_a_project_except_what_runs() {
    let f = fixture().await;
    let h = Harness::start("purge").await;
    external_registry(&h, &f.registry.url, json!({})).await;
    let pods: Api<Pod> = Api::namespaced(h.client.clone(), &h.ns);
    let seen = in_use_objects(&h).await;
    pods.create(
        &PostParams::default(),
        &object(json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "svc"},
            "spec": {"containers": [{"name": "svc", "image": format!("{}/old/svc:b", f.host())}]},
        })),
    )
    .await
    .unwrap();
    operator_sees_more_in_use(&h, seen, 1).await;
    let policies: Api<RetentionPolicy> = Api::namespaced(h.client.clone(), &h.ns);
    policies
        .create(&PostParams::default(), &policy("decommission", json!({
            "mode": "Enforce", "repositories": {"include": ["old", "old/**"]}, "purge": true,
        })))
        .await
        .unwrap();
    let done = wait_run(&policies, "decommission", 1).await;
    let run = done.status.unwrap().last_run.unwrap();
    assert_eq!((run.deleted, run.protected), (1, 1), "{run:?}");
    assert_eq!(f.tags("old/svc").await, set(&["b"]));
    assert_eq!(f.tags("team-a/web").await.len(), 5);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_policy_stalls_and_a_run_request_runs_again() {
    let f = fixture().await;
    let h = Harness::start("invalid").await;
    external_registry(&h, &f.registry.url, json!({})).await;
    let policies: Api<RetentionPolicy> = Api::namespaced(h.client.clone(), &h.ns);
    policies
        .create(&PostParams::default(), &policy("bad", json!({
            "mode": "Plan", "repositories": {"include": ["team-a/**"]}, "keep": [{"tags": {"regex": "v(1"}}],
            "schedule": "every day",
        })))
        .await
        .unwrap();
    let stalled = wait_for("Stalled", || async {
        let p = policies.get("bad").await.unwrap();
        condition(&p, "Stalled").filter(|c| c.status == "True")
    })
    .await;
    assert_eq!(stalled.reason, "InvalidSpec");
    assert!(
        stalled.message.contains("keep[0]") && stalled.message.contains("schedule"),
        "every problem is named: {}",
        stalled.message
    );
    wait_for("an InvalidSpec event", || async {
        Some(h.events("bad", "InvalidSpec").await).filter(|e| !e.is_empty())
    })
    .await;
    wait_for("a counted InvalidSpec failure", || async {
        h.metric("registry_operator_reconcile_failures_total{controller=\"retentionpolicy\",reason=\"InvalidSpec\"}")
            .await
            .filter(|n| *n >= 1.0)
    })
    .await;

    policies
        .patch(
            "bad",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"keep": [{"mostRecent": 3}], "schedule": "0 3 * * *"}})),
        )
        .await
        .unwrap();
    let first = wait_run(&policies, "bad", 2).await;
    assert!(first.status.as_ref().unwrap().last_run_request.is_none());
    assert!(first
        .status
        .as_ref()
        .unwrap()
        .next_run_time
        .as_deref()
        .is_some_and(|t| t.contains("T03:00:00")));
    policies
        .patch("bad", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"annotations": {"registry-operator.dev/run-requested-at": "now"}}})))
        .await
        .unwrap();
    let second = wait_for("a requested run", || async {
        let p = policies.get("bad").await.unwrap();
        let s = p.status.clone()?;
        // lastRunRequest is only set by a run the annotation requested.
        (s.last_run_request.as_deref() == Some("now")).then_some(p)
    })
    .await;
    assert_eq!(
        second.status.unwrap().last_run.unwrap().would_delete,
        2,
        "team-a/web keeps 3 of 5, team-a/api all 3"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policys_next_run_reads_no_image_config_the_operator_has_read() {
    let f = fixture().await;
    let proxy = support::proxy::FaultProxy::start(&f.registry.url).await;
    let h = Harness::start("ages").await;
    external_registry(&h, proxy.url(), json!({})).await;
    let policies: Api<RetentionPolicy> = Api::namespaced(h.client.clone(), &h.ns);
    policies
        .create(
            &PostParams::default(),
            &policy(
                "web",
                json!({"mode": "Plan", "repositories": {"include": ["team-a/**"]}, "keep": [{"mostRecent": 2}]}),
            ),
        )
        .await
        .unwrap();
    let first = wait_run(&policies, "web", 1).await;
    assert_eq!(first.status.unwrap().last_run.unwrap().would_delete, 4);
    let configs = proxy.count_path("GET", "/blobs/");
    assert_eq!(
        configs, 8,
        "the first run reads each of the 8 image configs once"
    );

    policies
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"registry-operator.dev/run-requested-at": "again"}}})),
        )
        .await
        .unwrap();
    let manifests_before = proxy.count_path("GET", "/manifests/");
    let second = wait_for("the requested run", || async {
        let p = policies.get("web").await.unwrap();
        let s = p.status.clone()?;
        (s.last_run_request.as_deref() == Some("again")).then_some(p)
    })
    .await;
    assert_eq!(
        second.status.unwrap().last_run.unwrap().would_delete,
        4,
        "the same decision"
    );
    assert!(
        proxy.count_path("GET", "/manifests/") > manifests_before,
        "the second run did resolve the tags again"
    );
    assert_eq!(
        proxy.count_path("GET", "/blobs/"),
        configs,
        "the second run read no config: their created times are remembered"
    );
    let metrics = reqwest::get(&h.metrics_url)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("registry_operator_age_cache_configs 8\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "registry_operator_registry_requests_total{operation=\"GetBlob\",code=\"2xx\"} 8\n"
        ),
        "retention runs' requests are counted: {metrics}"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspending_an_enforce_policy_deletes_nothing_until_it_is_resumed() {
    let f = fixture().await;
    let proxy = support::proxy::FaultProxy::start(&f.registry.url).await;
    let h = Harness::start("suspend").await;
    external_registry(&h, proxy.url(), json!({})).await;
    let policies: Api<RetentionPolicy> = Api::namespaced(h.client.clone(), &h.ns);
    policies
        .create(&PostParams::default(), &policy("web", json!({
            "mode": "Enforce", "repositories": {"include": ["team-a/web"]}, "keep": [{"mostRecent": 2}],
        })))
        .await
        .unwrap();
    let first = wait_run(&policies, "web", 1).await;
    assert_eq!(first.status.unwrap().last_run.unwrap().deleted, 3);
    // A newer image makes v4 a candidate for the next run.
    Seeder::new(&f.registry.url, None)
        .push_image("team-a/web", Some("v6"), "web6", "2025-01-06T00:00:00Z")
        .await;
    let deletes = proxy.count("DELETE");

    let ready_at = |generation: i64| {
        let policies = policies.clone();
        async move {
            let p = policies.get("web").await.unwrap();
            condition(&p, "Ready")
                .filter(|c| c.observed_generation == Some(generation))
                .map(|c| (p, c))
        }
    };
    policies
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"suspend": true}})),
        )
        .await
        .unwrap();
    let (suspended, ready) = wait_for("the suspension to be observed", || ready_at(2)).await;
    assert_eq!(ready.reason, "Suspended", "{ready:?}");
    assert_eq!(
        proxy.count("DELETE"),
        deletes,
        "suspending started no deletion"
    );
    assert_eq!(
        suspended.status.unwrap().last_run.unwrap().generation,
        Some(1),
        "no run is recorded"
    );
    assert_eq!(f.tags("team-a/web").await, set(&["v4", "v5", "v6"]));

    // A run requested while suspended is reported, not run.
    policies
        .patch("web", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"annotations": {"registry-operator.dev/run-requested-at": "now"}}})))
        .await
        .unwrap();
    let reported = wait_for("the pending request in the condition", || async {
        let p = policies.get("web").await.unwrap();
        condition(&p, "Ready").filter(|c| c.message.contains("now"))
    })
    .await;
    assert!(reported.message.contains("suspend"), "{}", reported.message);
    assert_eq!(proxy.count("DELETE"), deletes);

    // Resuming starts one run, which serves the pending request.
    policies
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"suspend": false}})),
        )
        .await
        .unwrap();
    let resumed = wait_run(&policies, "web", 3).await;
    let status = resumed.status.unwrap();
    assert_eq!(status.last_run.unwrap().deleted, 1);
    assert_eq!(status.last_run_request.as_deref(), Some("now"));
    assert_eq!(f.tags("team-a/web").await, set(&["v5", "v6"]));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_policy_on_the_same_registry_stalls_an_enforce_run_and_is_named() {
    let f = fixture().await;
    let h = Harness::start("otherinvalid").await;
    external_registry(&h, &f.registry.url, json!({})).await;
    let policies: Api<RetentionPolicy> = Api::namespaced(h.client.clone(), &h.ns);
    policies
        .create(&PostParams::default(), &policy("bad", json!({
            "mode": "Plan", "repositories": {"include": ["team-a/**"]}, "keep": [{"tags": {"regex": "v(1"}}],
        })))
        .await
        .unwrap();
    wait_for("the invalid policy to stall", || async {
        let p = policies.get("bad").await.unwrap();
        condition(&p, "Stalled").filter(|c| c.status == "True")
    })
    .await;
    policies
        .create(&PostParams::default(), &policy("web", json!({
            "mode": "Enforce", "repositories": {"include": ["team-a/web"]}, "keep": [{"mostRecent": 2}],
        })))
        .await
        .unwrap();
    let done = wait_run(&policies, "web", 1).await;
    let run = done.status.as_ref().unwrap().last_run.clone().unwrap();
    assert_eq!(
        (run.outcome, run.deleted),
        (RunOutcome::Failed, 0),
        "{run:?}"
    );
    let stalled = condition(&done, "Stalled").expect("Stalled condition");
    assert_eq!(
        (stalled.status.as_str(), stalled.reason.as_str()),
        ("True", "InvalidSpec"),
        "a person must act, waiting does not help: {stalled:?}"
    );
    assert!(
        stalled
            .message
            .contains(&format!("RetentionPolicy {}/bad", h.ns))
            && stalled.message.contains("keep[0]"),
        "the message names the other policy and its problem: {}",
        stalled.message
    );
    assert!(
        condition(&done, "Reconciling").is_none_or(|c| c.status != "True"),
        "not reported as a registry that may come back"
    );
    assert_eq!(f.tags("team-a/web").await.len(), 5, "nothing deleted");
    // Only a person can fix it: no retry (backoff is at most 2 s here).
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    let later = policies.get("web").await.unwrap();
    assert_eq!(
        later.status.unwrap().last_run.unwrap().start_time,
        run.start_time,
        "a Stalled run is not retried"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn candidates_and_next_run_time_disappear_from_status_when_there_are_none() {
    let f = fixture().await;
    let h = Harness::start("candidates").await;
    external_registry(&h, &f.registry.url, json!({})).await;
    let policies: Api<RetentionPolicy> = Api::namespaced(h.client.clone(), &h.ns);
    policies
        .create(&PostParams::default(), &policy("web", json!({
            "mode": "Plan", "repositories": {"include": ["team-a/web"]}, "keep": [{"mostRecent": 2}],
            "schedule": "@every 6h",
        })))
        .await
        .unwrap();
    let status = wait_run(&policies, "web", 1).await.status.unwrap();
    assert_eq!(status.candidates.len(), 3);
    assert!(status.next_run_time.is_some());

    // Keeping every tag: the new plan has no candidates, and status says so.
    policies
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"keep": [{"mostRecent": 10}]}})),
        )
        .await
        .unwrap();
    let status = wait_run(&policies, "web", 2).await.status.unwrap();
    assert_eq!(status.last_run.as_ref().unwrap().would_delete, 0);
    assert_eq!(
        status.candidates,
        vec![],
        "the previous run's candidates are gone"
    );
    assert!(status.next_run_time.is_some(), "still scheduled");

    // Without a schedule there is no next run.
    policies
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"schedule": null}})),
        )
        .await
        .unwrap();
    let status = wait_run(&policies, "web", 3).await.status.unwrap();
    assert_eq!(status.next_run_time, None, "no schedule, no next run time");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_failed_on_an_unreachable_registry_is_retried_until_it_succeeds() {
    use support::proxy::{Fault, FaultProxy, FaultRule};
    let f = fixture().await;
    let proxy = FaultProxy::start(&f.registry.url).await;
    // The registry does not answer: every connection is reset.
    proxy.inject(FaultRule::new(Fault::Reset));
    let h = Harness::start("retry").await;
    external_registry(&h, proxy.url(), json!({})).await;
    let policies: Api<RetentionPolicy> = Api::namespaced(h.client.clone(), &h.ns);
    // No schedule: only a retry can run it again without an edit.
    policies
        .create(&PostParams::default(), &policy("web", json!({
            "mode": "Plan", "repositories": {"include": ["team-a/web"]}, "keep": [{"mostRecent": 2}],
        })))
        .await
        .unwrap();
    let failed = wait_run(&policies, "web", 1).await;
    let status = failed.status.as_ref().unwrap();
    assert_eq!(
        status.last_run.as_ref().unwrap().outcome,
        RunOutcome::Failed,
        "{status:?}"
    );
    assert_eq!(
        condition(&failed, "Reconciling")
            .map(|c| c.reason)
            .as_deref(),
        Some("RegistryUnreachable")
    );
    assert!(
        status.next_run_time.is_some(),
        "the retry time is shown: {status:?}"
    );

    // The registry comes back; nobody touches the policy.
    proxy.clear();
    let planned = wait_for("a successful run without any edit", || async {
        let p = policies.get("web").await.unwrap();
        condition(&p, "Ready")
            .filter(|c| c.status == "True" && c.reason == "Planned")
            .map(|_| p)
    })
    .await;
    assert_eq!(
        planned.metadata.generation,
        Some(1),
        "the spec is unchanged"
    );
    let status = planned.status.unwrap();
    let run = status.last_run.unwrap();
    assert_eq!((run.outcome, run.would_delete), (RunOutcome::Succeeded, 3));
    assert_eq!(status.candidates.len(), 3);
    assert_eq!(status.next_run_time, None, "no schedule, no retry pending");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_policy_with_an_invalid_selector_stalls_and_stops_enforce_runs_it_may_cover() {
    let f = fixture().await;
    let h = Harness::start_alone("selector").await;
    let _cleanup = DeleteClusterPolicies::of(&h, &["typo", "no-values", "elsewhere"]);
    external_registry(&h, &f.registry.url, json!({"tier": "prod"})).await;
    let crps: Api<ClusterRetentionPolicy> = Api::all(h.client.clone());
    let with_selector = |name: &str, selector: serde_json::Value| {
        cluster_policy(
            &h,
            name,
            json!({"registrySelector": selector, "mode": "Plan",
                   "repositories": {"include": ["**"]}, "keep": [{"tags": {"regex": "v1"}}]}),
        )
    };
    // `in` for `In`, and `In` without values: neither may be read as "selects nothing".
    for (name, selector) in [
        (
            "typo",
            json!({"matchExpressions": [{"key": "tier", "operator": "in", "values": ["prod"]}]}),
        ),
        (
            "no-values",
            json!({"matchExpressions": [{"key": "tier", "operator": "In"}]}),
        ),
        // Invalid too, but its valid part rules this registry out.
        (
            "elsewhere",
            json!({"matchLabels": {"tier": "dev"},
                             "matchExpressions": [{"key": "zone", "operator": "in", "values": ["a"]}]}),
        ),
    ] {
        crps.create(&PostParams::default(), &with_selector(name, selector))
            .await
            .unwrap();
    }
    let typo = format!("typo-{}", h.ns);
    let own = wait_for("the typo policy to stall", || async {
        condition(&crps.get(&typo).await.unwrap(), "Stalled").filter(|c| c.status == "True")
    })
    .await;
    assert_eq!(own.reason, "InvalidSpec", "{own:?}");
    assert!(own.message.contains("unknown operator"), "{}", own.message);

    let policies: Api<RetentionPolicy> = Api::namespaced(h.client.clone(), &h.ns);
    policies
        .create(&PostParams::default(), &policy("api", json!({
            "mode": "Enforce", "repositories": {"include": ["team-a/api"]}, "keep": [{"mostRecent": 1}],
        })))
        .await
        .unwrap();
    let done = wait_run(&policies, "api", 1).await;
    let run = done.status.as_ref().unwrap().last_run.clone().unwrap();
    assert_eq!(
        (run.outcome, run.deleted),
        (RunOutcome::Failed, 0),
        "{run:?}"
    );
    assert_eq!(
        f.tags("team-a/api").await,
        set(&["v1", "v2", "v3"]),
        "nothing deleted"
    );
    let stalled = condition(&done, "Stalled").expect("Stalled condition");
    assert_eq!(
        (stalled.status.as_str(), stalled.reason.as_str()),
        ("True", "InvalidSpec")
    );
    assert!(
        stalled
            .message
            .contains(&format!("ClusterRetentionPolicy typo-{}", h.ns))
            && stalled
                .message
                .contains(&format!("ClusterRetentionPolicy no-values-{}", h.ns))
            && stalled.message.contains("label selector"),
        "the message names the cluster policies and their selectors: {}",
        stalled.message
    );
    assert!(
        !stalled.message.contains("elsewhere"),
        "a policy whose valid labels exclude the registry does not apply: {}",
        stalled.message
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_on_one_registry_veto_each_other_through_different_registry_objects() {
    let f = fixture().await;
    let h = Harness::start_setup(
        "teams",
        support::cluster::Setup {
            also_watch: vec!["team-a", "team-b"],
            ..Default::default()
        },
    )
    .await;
    // Two teams, each in a namespace of its own, one registry, spelt two ways.
    let (ns_a, ns_b) = (h.also[0].clone(), h.also[1].clone());
    external_registry_in(&h, &ns_a, "dist", &f.registry.url, json!({})).await;
    external_registry_in(
        &h,
        &ns_b,
        "mirror",
        &format!("{}/", f.registry.url),
        json!({}),
    )
    .await;
    let team_b: Api<RetentionPolicy> = Api::namespaced(h.client.clone(), &ns_b);
    team_b
        .create(&PostParams::default(), &object(json!({
            "apiVersion": "registry-operator.dev/v1alpha1", "kind": "RetentionPolicy",
            "metadata": {"name": "everything"},
            "spec": {"registryRef": {"name": "mirror"}, "mode": "Plan",
                     "repositories": {"include": ["team-a/web"]}, "keep": [{"tags": {"regex": "v.*"}}]},
        })))
        .await
        .unwrap();
    wait_run(&team_b, "everything", 1).await;
    let team_a: Api<RetentionPolicy> = Api::namespaced(h.client.clone(), &ns_a);
    team_a
        .create(
            &PostParams::default(),
            &object(json!({
                "apiVersion": "registry-operator.dev/v1alpha1", "kind": "RetentionPolicy",
                "metadata": {"name": "newest"},
                "spec": {"registryRef": {"name": "dist"}, "mode": "Enforce",
                         "repositories": {"include": ["team-a/web"]}, "keep": [{"mostRecent": 1}]},
            })),
        )
        .await
        .unwrap();
    let done = wait_run(&team_a, "newest", 1).await;
    let status = done.status.unwrap();
    let run = status.last_run.unwrap();
    assert_eq!((run.deleted, run.would_delete), (0, 0), "{run:?}");
    assert!(status.candidates.is_empty(), "{:?}", status.candidates);
    assert_eq!(
        f.tags("team-a/web").await,
        set(&["v1", "v2", "v3", "v4", "v5"]),
        "team-b's policy keeps every tag of the registry both Registry objects point at"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_policys_limit_counts_every_registry_of_the_run() {
    let east = fixture().await;
    let west = fixture().await;
    let h = Harness::start_alone("limits").await;
    let _cleanup = DeleteClusterPolicies::of(&h, &["prod-cleanup"]);
    external_registry_in(
        &h,
        &h.ns,
        "east",
        &east.registry.url,
        json!({"tier": "prod"}),
    )
    .await;
    external_registry_in(
        &h,
        &h.ns,
        "west",
        &west.registry.url,
        json!({"tier": "prod"}),
    )
    .await;
    let crps: Api<ClusterRetentionPolicy> = Api::all(h.client.clone());
    // Each registry alone: 3 deletions, within 5; together 6.
    let cleanup = cluster_policy(
        &h,
        "prod-cleanup",
        json!({"registrySelector": {"matchLabels": {"tier": "prod"}}, "mode": "Enforce",
               "repositories": {"include": ["team-a/web"]}, "keep": [{"mostRecent": 2}],
               "limits": {"maxDeletionsPerRun": 5}}),
    );
    crps.create(&PostParams::default(), &cleanup).await.unwrap();
    let done = wait_cluster_run(&crps, &cleanup.metadata.name.unwrap()).await;
    let run = done.status.as_ref().unwrap().last_run.clone().unwrap();
    assert_eq!(
        (run.outcome, run.registries, run.deleted, run.would_delete),
        (RunOutcome::Blocked, 2, 0, 6),
        "{run:?}"
    );
    assert_eq!(
        east.tags("team-a/web").await.len(),
        5,
        "nothing deleted on east"
    );
    assert_eq!(
        west.tags("team-a/web").await.len(),
        5,
        "nothing deleted on west"
    );
    let stalled = condition(&done, "Stalled").expect("Stalled condition");
    assert_eq!(
        (stalled.status.as_str(), stalled.reason.as_str()),
        ("True", "BlastRadiusExceeded")
    );
    assert!(
        stalled.message.contains("limits.maxDeletionsPerRun (5)") && stalled.message.contains('6'),
        "{}",
        stalled.message
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_policy_runs_a_registry_named_by_two_registry_objects_once() {
    let f = fixture().await;
    let h = Harness::start_alone("once").await;
    let _cleanup = DeleteClusterPolicies::of(&h, &["prod-cleanup"]);
    // two teams declared the same registry, spelled differently
    external_registry_in(
        &h,
        &h.ns,
        "shared",
        &f.registry.url,
        json!({"tier": "prod"}),
    )
    .await;
    external_registry_in(
        &h,
        &h.ns,
        "shared-too",
        &format!("{}/", f.registry.url),
        json!({"tier": "prod"}),
    )
    .await;
    let crps: Api<ClusterRetentionPolicy> = Api::all(h.client.clone());
    // 3 deletions on the one registry: within 5, unless counted twice
    let cleanup = cluster_policy(
        &h,
        "prod-cleanup",
        json!({"registrySelector": {"matchLabels": {"tier": "prod"}}, "mode": "Enforce",
               "repositories": {"include": ["team-a/web"]}, "keep": [{"mostRecent": 2}],
               "limits": {"maxDeletionsPerRun": 5}}),
    );
    crps.create(&PostParams::default(), &cleanup).await.unwrap();
    let done = wait_cluster_run(&crps, &cleanup.metadata.name.unwrap()).await;
    let run = done.status.as_ref().unwrap().last_run.clone().unwrap();
    assert_eq!(
        (run.outcome, run.registries, run.deleted),
        (RunOutcome::Succeeded, 1, 3),
        "{run:?}"
    );
    assert_eq!(f.tags("team-a/web").await.len(), 2);
    h.stop().await;
}
