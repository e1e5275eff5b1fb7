//! Faults of the control plane in the middle of an Enforce run. Each test has a control plane
//! of its own (`scripts/cluster.sh start` in a temporary directory, see
//! tests/support/control_plane.rs), so pausing or restarting its API server freezes no other
//! test. The operator runs as a process (`registry-operator run`) with leader election, as the
//! chart runs it, under the chart's ServiceAccount; the registry is a real one behind the fault
//! proxy, which holds the run's DELETEs so that the fault lands while a run is going on:
//! 16 repositories of 3 images each, the policy keeps the newest, and the executor works on 8
//! repositories at a time — the first 8 are past the deletion fence and held, the other 8 ask
//! the fence (and the index of images in use) after the fault.
//!
//! Needs Go and the control-plane binaries (scripts/cluster.sh build; cached), docker-registry
//! and helm (scripts/setup.sh).

mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, Patch, PatchParams, PostParams};
use registry_operator::api::retention::RunOutcome;
use registry_operator::api::{Registry, RetentionPolicy};
use registry_operator::oci::{ClientOptions, Credentials, RegistryClient};
use serde_json::{json, Value};

use support::cluster::{wait_for_within, Cluster};
use support::control_plane::{forbidden, ControlPlane, OperatorProcess};
use support::proxy::{Fault, FaultProxy, FaultRule};
use support::registry::TestRegistry;
use support::seed::{Pushed, Seeder};

/// Repositories: two rounds of the executor's 8 repositories in flight.
const REPOS: usize = 16;
/// Images per repository, `v1` (oldest) … `v3`; the policy keeps `v3`.
const TAGS: usize = 3;
/// The Lease's duration in these tests (seconds): renewed every 4 s, and the deletion fence
/// gives up on an unanswered read after 2 s.
const LEASE: u64 = 6;

fn object<K: serde::de::DeserializeOwned>(v: Value) -> K {
    serde_json::from_value(v).expect("fixture")
}

fn repo(i: usize) -> String {
    format!("fleet/r{i:02}")
}

/// Pushes `TAGS` images into each of the `REPOS` repositories, a day apart; returns them by
/// repository, oldest first.
async fn seed(url: &str) -> Vec<Vec<Pushed>> {
    let seeder = Seeder::new(url, None);
    let per_repo = (0..REPOS).map(|r| {
        let seeder = &seeder;
        async move {
            let mut pushed = Vec::new();
            for t in 1..=TAGS {
                let p = seeder
                    .push_image(
                        &repo(r),
                        Some(&format!("v{t}")),
                        &format!("{r}-{t}"),
                        &format!("2025-01-0{t}T00:00:00Z"),
                    )
                    .await;
                pushed.push(p);
            }
            pushed
        }
    });
    futures::future::join_all(per_repo).await
}

async fn tags(url: &str, repository: &str) -> Vec<String> {
    let client = RegistryClient::new(url, Credentials::Anonymous, ClientOptions::default())
        .expect("a registry client");
    let mut t = client.tags(repository).await.unwrap_or_default();
    t.sort();
    t
}

/// Every repository's tags, `repository: tag tag …`.
async fn registry_content(url: &str) -> Vec<String> {
    let mut out = Vec::new();
    for r in 0..REPOS {
        out.push(format!(
            "{}: {}",
            repo(r),
            tags(url, &repo(r)).await.join(" ")
        ));
    }
    out
}

/// What the policy leaves: `v3` everywhere, and `extra` where named.
fn kept(extra: &[(usize, &str)]) -> Vec<String> {
    (0..REPOS)
        .map(|r| {
            let mut t: Vec<&str> = extra
                .iter()
                .filter(|(i, _)| *i == r)
                .map(|(_, t)| *t)
                .collect();
            t.push("v3");
            t.sort();
            format!("{}: {}", repo(r), t.join(" "))
        })
        .collect()
}

/// The external Registry `dist` for `url` and the Enforce policy `fleet` on it (keep the newest
/// image of every repository).
async fn create_registry_and_policy(c: &Cluster, ns: &str, url: &str) {
    Api::<Registry>::namespaced(c.client.clone(), ns)
        .create(
            &PostParams::default(),
            &object(
                json!({"apiVersion": "registry-operator.dev/v1alpha1", "kind": "Registry",
                "metadata": {"name": "dist"}, "spec": {"external": {"url": url}}}),
            ),
        )
        .await
        .expect("creating the Registry");
    Api::<RetentionPolicy>::namespaced(c.client.clone(), ns)
        .create(
            &PostParams::default(),
            &object(
                json!({"apiVersion": "registry-operator.dev/v1alpha1", "kind": "RetentionPolicy",
                "metadata": {"name": "fleet"}, "spec": {"registryRef": {"name": "dist"},
                "mode": "Enforce", "repositories": {"include": ["fleet/**"]},
                "keep": [{"mostRecent": 1}]}}),
            ),
        )
        .await
        .expect("creating the RetentionPolicy");
}

async fn lease(c: &Cluster, ns: &str) -> Option<Lease> {
    Api::<Lease>::namespaced(c.client.clone(), ns)
        .get_opt("registry-operator")
        .await
        .ok()
        .flatten()
}

async fn lease_holder(c: &Cluster, ns: &str) -> Option<String> {
    lease(c, ns).await?.spec?.holder_identity
}

async fn policy(c: &Cluster, ns: &str) -> RetentionPolicy {
    Api::<RetentionPolicy>::namespaced(c.client.clone(), ns)
        .get("fleet")
        .await
        .expect("reading the policy")
}

/// The Events (events.k8s.io) about the policy with `reason`.
async fn policy_events(c: &Cluster, ns: &str, reason: &str) -> Vec<Event> {
    Api::<Event>::namespaced(c.client.clone(), ns)
        .list(&Default::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .filter(|e| {
            e.reason.as_deref() == Some(reason)
                && e.regarding
                    .as_ref()
                    .is_some_and(|r| r.name.as_deref() == Some("fleet"))
        })
        .collect()
}

const RUNS: &str = "registry_operator_retention_runs_total";

/// Starts the operator (replica `replica-a`) as the chart's ServiceAccount in `ns` and waits
/// until it serves, holds the Lease and has listed the images in use.
async fn start_leader(c: &Cluster, ns: &str) -> OperatorProcess {
    let sa = c.operator_identity(ns).await;
    let mut op = OperatorProcess::start(&sa, ns, Some("replica-a"), LEASE);
    op.wait_ready().await;
    wait_for_within(
        "replica-a to take the Lease",
        Duration::from_secs(60),
        || async { (lease_holder(c, ns).await.as_deref() == Some("replica-a")).then_some(()) },
    )
    .await;
    wait_for_within(
        "the operator's index of images in use to list",
        Duration::from_secs(60),
        || async {
            (op.metric("registry_operator_in_use_synced").await == Some(1.0)).then_some(())
        },
    )
    .await;
    op
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_server_paused_longer_than_the_lease_stops_deletions_as_not_leader_and_the_same_process_finishes_once_it_resumes(
) {
    let registry = TestRegistry::start();
    seed(&registry.url).await;
    let proxy = FaultProxy::start(&registry.url).await;
    let (hold, release) = Fault::hold();
    proxy.inject(FaultRule::new(hold).method("DELETE"));
    let cp = ControlPlane::start("pause").await;
    let c = &cp.cluster;
    c.install_crds().await;
    let ns = c.namespace("pause").await;
    let mut op = start_leader(c, &ns).await;
    let pid = op.pid();
    create_registry_and_policy(c, &ns, proxy.url()).await;

    // The first repositories are past the fence; their DELETEs wait at the proxy.
    wait_for_within(
        "the run's first DELETEs",
        Duration::from_secs(60),
        || async { (proxy.count("DELETE") > 0).then_some(()) },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    cp.pause().await;
    let paused = Instant::now();
    // Longer than the Lease: the leader cannot have renewed it, another replica could hold it.
    tokio::time::sleep(Duration::from_secs(LEASE + 2)).await;
    // The held deletions go on (they passed the fence before the pause); the next
    // repositories ask the fence, whose read of the Lease gets no answer within 2 s.
    release.release();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let sent = proxy.count("DELETE");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        proxy.count("DELETE"),
        sent,
        "a DELETE was sent while the API server, and so the Lease, could not be read"
    );
    let candidates = (REPOS * (TAGS - 1)) as u64;
    assert!(
        sent < candidates,
        "every deletion went ahead ({sent} of {candidates}) although the Lease could not be read"
    );
    cp.resume().await;
    assert!(paused.elapsed() > Duration::from_secs(LEASE));

    // The run ends saying why it stopped: its condition, until the retry, and a Warning Event.
    let message = wait_for_within(
        "the policy's NotLeader condition",
        Duration::from_secs(60),
        || async {
            let status = policy(c, &ns).await.status?;
            status
                .conditions
                .into_iter()
                .find(|cond| cond.reason == "NotLeader")
                .map(|cond| cond.message)
        },
    )
    .await;
    assert!(
        message.contains("did not answer a read of the leader Lease"),
        "the condition says why: {message}"
    );
    let event = wait_for_within(
        "the run's NotLeader Event",
        Duration::from_secs(30),
        || async { policy_events(c, &ns, "NotLeader").await.into_iter().next() },
    )
    .await;
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    // Then the same process, never restarted, tries again and finishes the job.
    let expected = kept(&[]);
    wait_for_within(
        "the retried run to delete the rest",
        Duration::from_secs(90),
        || async { (registry_content(&registry.url).await == expected).then_some(()) },
    )
    .await;
    assert!(
        op.running() && op.pid() == pid,
        "the operator was restarted or exited:\n{}",
        op.log_tail(30)
    );
    let run = wait_for_within(
        "the retried run's status",
        Duration::from_secs(30),
        || async {
            let run = policy(c, &ns).await.status?.last_run?;
            (run.completion_time.is_some() && run.outcome == RunOutcome::Succeeded).then_some(run)
        },
    )
    .await;
    assert_eq!(
        sent + run.deleted as u64,
        candidates,
        "the retried run deleted what the interrupted one had left: {run:?}"
    );
    assert_eq!(
        proxy.count("DELETE"),
        candidates,
        "each candidate was deleted once"
    );
    assert_eq!(lease_holder(c, &ns).await.as_deref(), Some("replica-a"));
    assert_eq!(forbidden(c, &op.username), Vec::<String>::new());
    op.stop();
}

/// Writes a Pod's status as a kubelet does once its container runs (there is no kubelet): the
/// image it was asked for and the digest it resolved to.
async fn write_status_as_kubelet(pods: &Api<Pod>, name: &str, image: &str, image_id: &str) {
    pods.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {
            "phase": "Running",
            "containerStatuses": [{
                "name": "app", "image": image, "imageID": image_id,
                "ready": true, "restartCount": 0, "started": true,
                "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}},
            }],
        }})),
    )
    .await
    .unwrap_or_else(|e| panic!("writing {name}'s status: {e}"));
}

/// Bytes of the audit log so far: what the API server logs from here on comes after.
fn audit_len(c: &Cluster) -> usize {
    std::fs::metadata(c.audit_log()).map_or(0, |m| m.len() as usize)
}

/// `username`'s requests logged in bytes `range` of the audit log (to its end if shorter), as
/// the audit events.
fn logged(c: &Cluster, username: &str, range: std::ops::Range<usize>) -> Vec<Value> {
    let text = std::fs::read_to_string(c.audit_log()).unwrap_or_default();
    let quoted = format!("\"username\":\"{username}\"");
    let end = range.end.min(text.len());
    text.get(range.start.min(end)..end)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(&quoted))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect()
}

/// `verb resource` of `username`'s requests logged from byte `from` of the audit log on.
fn requests_since(c: &Cluster, username: &str, from: usize) -> Vec<String> {
    logged(c, username, from..usize::MAX)
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["verb"].as_str().unwrap_or_default(),
                e["objectRef"]["resource"].as_str().unwrap_or_default()
            )
        })
        .collect()
}

/// `username`'s requests in bytes `range` of the audit log that the API server refused (403).
fn forbidden_in(c: &Cluster, username: &str, range: std::ops::Range<usize>) -> Vec<String> {
    logged(c, username, range)
        .iter()
        .filter(|e| e["responseStatus"]["code"] == 403)
        .map(|e| {
            format!(
                "{} {}",
                e["verb"].as_str().unwrap_or_default(),
                e["requestURI"].as_str().unwrap_or_default()
            )
        })
        .collect()
}

/// Creates a Pod running `image` of repository `r` (pushed as `pushed`) and writes its status as
/// a kubelet would.
async fn pod_running(
    c: &Cluster,
    ns: &str,
    name: &str,
    host: &str,
    r: usize,
    tag: &str,
    pushed: &Pushed,
) {
    let image = format!("{host}/{}:{tag}", repo(r));
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), ns);
    pods.create(
        &PostParams::default(),
        &object(
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "app", "image": image}]}}),
        ),
    )
    .await
    .unwrap_or_else(|e| panic!("creating Pod {name}: {e}"));
    let image_id = format!("{host}/{}@{}", repo(r), pushed.digest);
    write_status_as_kubelet(&pods, name, &image, &image_id).await;
}

const SUCCEEDED: &str = "outcome=\"Succeeded\"";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_server_restarted_mid_run_loses_no_run_doubles_none_and_deletes_nothing_the_policy_keeps(
) {
    let registry = TestRegistry::start();
    let images = seed(&registry.url).await;
    let proxy = FaultProxy::start(&registry.url).await;
    let (hold, release) = Fault::hold();
    proxy.inject(FaultRule::new(hold).method("DELETE"));
    let host = proxy.url().trim_start_matches("http://").to_string();
    let cp = ControlPlane::start("restart").await;
    let c = &cp.cluster;
    c.install_crds().await;
    let ns = c.namespace("restart").await;
    let mut op = start_leader(c, &ns).await;
    let pid = op.pid();
    // A Pod runs r15's oldest image, a candidate of the policy's keeps.
    pod_running(c, &ns, "old-app", &host, 15, "v1", &images[15][0]).await;
    wait_for_within(
        "the operator to see the Pod",
        Duration::from_secs(30),
        || async {
            (op.metric("registry_operator_in_use_objects").await >= Some(1.0)).then_some(())
        },
    )
    .await;
    create_registry_and_policy(c, &ns, proxy.url()).await;
    wait_for_within(
        "the run's first DELETEs",
        Duration::from_secs(60),
        || async { (proxy.count("DELETE") > 0).then_some(()) },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Mid-run: the first repositories' DELETEs are held while the API server restarts. They
    // go on once it is back, or after 20 s (the registry client gives up on a request after
    // 30 s), whichever comes first; the other repositories' deletions then ask the fence and
    // the index of images in use, which fail closed while the API server is away.
    let before = audit_len(c);
    let release = std::sync::Arc::new(release);
    let timer = tokio::spawn({
        let release = release.clone();
        async move {
            tokio::time::sleep(Duration::from_secs(20)).await;
            release.release();
        }
    });
    let restart = Instant::now();
    cp.restart_apiserver().await;
    eprintln!("the API server restarted in {:?}", restart.elapsed());
    release.release();
    timer.abort();
    // The operator's watches come back on the new API server.
    for resource in ["pods", "retentionpolicies", "registries"] {
        wait_for_within(
            &format!("the operator to watch {resource} on the restarted API server"),
            Duration::from_secs(60),
            || async {
                requests_since(c, &op.username, before)
                    .iter()
                    .any(|r| r == &format!("watch {resource}"))
                    .then_some(())
            },
        )
        .await;
    }

    // Not lost: the job is done — every candidate deleted, r15:v1 (the Pod's) kept — and the
    // policy's status says so; a run interrupted by the restart is retried.
    let expected = kept(&[(15, "v1")]);
    wait_for_within("the run to finish", Duration::from_secs(120), || async {
        (registry_content(&registry.url).await == expected).then_some(())
    })
    .await;
    let run = wait_for_within("the run's status", Duration::from_secs(60), || async {
        policy(c, &ns)
            .await
            .status?
            .last_run
            .filter(|r| r.completion_time.is_some() && r.outcome == RunOutcome::Succeeded)
    })
    .await;
    // A restarted API server answers 403 for a moment, until its RBAC caches are filled: the
    // chart's grants are checked before the restart and from here on.
    let settled = audit_len(c);
    assert_eq!(run.generation, Some(1), "{run:?}");
    let candidates = (REPOS * (TAGS - 1)) as u64;
    assert_eq!(
        proxy.count("DELETE"),
        candidates - 1,
        "each candidate but the Pod's deleted once"
    );
    // Not doubled: the policy the watch listed again (with its status from before the run)
    // started no second run.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        op.metric_sum(RUNS, SUCCEEDED).await,
        1.0,
        "runs that did the job:\n{}",
        op.log_tail(40)
    );

    // After the restart the watches see what changes: a newer image in r14 makes v3 a
    // candidate, a Pod that starts now runs it, and a run requested now keeps it.
    Seeder::new(&registry.url, None)
        .push_image(&repo(14), Some("v4"), "14-4", "2025-01-04T00:00:00Z")
        .await;
    pod_running(c, &ns, "new-app", &host, 14, "v3", &images[14][2]).await;
    wait_for_within(
        "the operator to see the new Pod",
        Duration::from_secs(30),
        || async {
            (op.metric("registry_operator_in_use_objects").await >= Some(2.0)).then_some(())
        },
    )
    .await;
    Api::<RetentionPolicy>::namespaced(c.client.clone(), &ns)
        .patch(
            "fleet",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {
                "registry-operator.dev/run-requested-at": "after-the-restart"}}})),
        )
        .await
        .expect("requesting a run");
    wait_for_within("the requested run", Duration::from_secs(60), || async {
        let status = policy(c, &ns).await.status?;
        let done = status.last_run_request.as_deref() == Some("after-the-restart")
            && status.last_run?.outcome == RunOutcome::Succeeded;
        done.then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        op.metric_sum(RUNS, SUCCEEDED).await,
        2.0,
        "one more run, not two"
    );
    assert_eq!(tags(&registry.url, &repo(14)).await, ["v3", "v4"]);
    assert_eq!(
        proxy.count("DELETE"),
        candidates - 1,
        "the requested run deleted nothing"
    );
    assert!(
        op.running() && op.pid() == pid,
        "the operator was restarted or exited:\n{}",
        op.log_tail(30)
    );
    assert_eq!(
        forbidden_in(c, &op.username, 0..before),
        Vec::<String>::new()
    );
    assert_eq!(
        forbidden_in(c, &op.username, settled..usize::MAX),
        Vec::<String>::new()
    );
    op.stop();
}
