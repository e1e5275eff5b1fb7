//! Leader election on the real API server of the test run (tests/support/cluster.rs), as the
//! chart's ServiceAccount (its leader-election Role grants the Lease in the release namespace):
//! the deletion fence says yes only while the Lease, read fresh, names this replica and is
//! within its duration; of two replicas (`registry-operator run` processes) exactly one
//! reconciles and deletes, and when it is killed the other takes over once the Lease runs out —
//! never before — and carries on.
//!
//! Needs the control plane: run with scripts/test.sh (or set REGISTRY_OPERATOR_TEST_KUBECONFIG).
//! The API server paused or restarted (the fence's other no): tests/operator_faults.rs.

mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, Patch, PatchParams, PostParams};
use registry_operator::api::{Registry, RetentionPolicy};
use registry_operator::controller::runtime::{lease_fence, LeaderElection};
use registry_operator::oci::{ClientOptions, Credentials, RegistryClient};
use serde_json::{json, Value};

use support::cluster::{wait_for_within, Cluster};
use support::control_plane::{forbidden, OperatorProcess};
use support::registry::TestRegistry;
use support::seed::Seeder;

fn object<K: serde::de::DeserializeOwned>(v: Value) -> K {
    serde_json::from_value(v).expect("fixture")
}

async fn cluster() -> Cluster {
    let c = Cluster::connect().await;
    c.install_crds().await;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_may_delete_only_while_the_lease_names_it_and_is_fresh() {
    let c = cluster().await;
    let ns = c.namespace("fence").await;
    let sa = c.operator_identity(&ns).await;
    let le = LeaderElection {
        namespace: ns.clone(),
        lease: "registry-operator".into(),
        identity: "operator-0".into(),
    };
    // As the operator asks it: with its ServiceAccount's grants.
    let fence = lease_fence(sa.client.clone(), &le, Duration::from_secs(5));
    // no Lease at all: no
    let err = fence().await.unwrap_err();
    assert!(
        err.contains(&format!(
            "cannot read the leader Lease {ns}/registry-operator"
        )),
        "{err}"
    );
    let leases: Api<Lease> = Api::namespaced(c.client.clone(), &ns);
    let renewed = |ago: i64| {
        (jiff::Timestamp::now() - jiff::SignedDuration::from_secs(ago))
            .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
            .to_string()
    };
    leases
        .create(
            &PostParams::default(),
            &object(json!({
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": "registry-operator"},
                "spec": {"holderIdentity": "operator-1", "leaseDurationSeconds": 15,
                         "renewTime": renewed(1)},
            })),
        )
        .await
        .unwrap();
    // another replica holds it: no
    let err = fence().await.unwrap_err();
    assert!(err.contains("held by \"operator-1\""), "{err}");
    let hold =
        |ago: i64| json!({"spec": {"holderIdentity": "operator-0", "renewTime": renewed(ago)}});
    leases
        .patch(
            "registry-operator",
            &PatchParams::default(),
            &Patch::Merge(hold(1)),
        )
        .await
        .unwrap();
    fence().await.unwrap();
    // ours, renewed 14 s ago: it runs out before a yes stops being trusted (2 s), so no
    leases
        .patch(
            "registry-operator",
            &PatchParams::default(),
            &Patch::Merge(hold(14)),
        )
        .await
        .unwrap();
    let err = fence().await.unwrap_err();
    assert!(err.contains("runs out in less than 2s"), "{err}");
    // ours, but not renewed within its 15 s: this replica may be cut off, so no
    leases
        .patch(
            "registry-operator",
            &PatchParams::default(),
            &Patch::Merge(hold(60)),
        )
        .await
        .unwrap();
    let err = fence().await.unwrap_err();
    assert!(err.contains("last renewed"), "{err}");
    assert_eq!(forbidden(&c, &sa.username), Vec::<String>::new());
}

/// Lease duration of the two-replica test (seconds); renewed every 4 s.
const LEASE: u64 = 6;
const DELETED: &str =
    "registry_operator_retention_tags_deleted_total{controller=\"retentionpolicy\"}";
const RECONCILES: &str = "registry_operator_reconciles_total{controller=\"retentionpolicy\"}";
const LEADER: &str = "registry_operator_leader";

async fn tags(url: &str, repository: &str) -> Vec<String> {
    let client = RegistryClient::new(url, Credentials::Anonymous, ClientOptions::default())
        .expect("a registry client");
    let mut t = client.tags(repository).await.unwrap_or_default();
    t.sort();
    t
}

/// The Lease's holder and last renewal.
async fn lease(c: &Cluster, ns: &str) -> Option<(String, jiff::Timestamp)> {
    let spec = Api::<Lease>::namespaced(c.client.clone(), ns)
        .get_opt("registry-operator")
        .await
        .ok()
        .flatten()?
        .spec?;
    Some((spec.holder_identity?, spec.renew_time?.0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_replicas_only_the_leader_deletes_and_when_it_is_killed_the_other_takes_over_once_the_lease_runs_out(
) {
    let registry = TestRegistry::start();
    let seeder = Seeder::new(&registry.url, None);
    for r in ["app/a", "app/b"] {
        for t in 1..=3 {
            seeder
                .push_image(
                    r,
                    Some(&format!("v{t}")),
                    &format!("{r}-{t}"),
                    &format!("2025-01-0{t}T00:00:00Z"),
                )
                .await;
        }
    }
    let c = cluster().await;
    let ns = c.namespace("replicas").await;
    let sa = c.operator_identity(&ns).await;
    let mut a = OperatorProcess::start(&sa, &ns, Some("replica-a"), LEASE);
    a.wait_ready().await;
    wait_for_within(
        "replica-a to take the Lease",
        Duration::from_secs(60),
        || async { (lease(&c, &ns).await?.0 == "replica-a").then_some(()) },
    )
    .await;
    let mut b = OperatorProcess::start(&sa, &ns, Some("replica-b"), LEASE);
    b.wait_ready().await;
    assert_eq!(a.metric(LEADER).await, Some(1.0), "replica-a leads");
    assert_eq!(b.metric(LEADER).await, Some(0.0), "replica-b waits");
    let build_info = format!(
        "registry_operator_build_info{{version=\"{}\"}}",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(b.metric(&build_info).await, Some(1.0));

    Api::<Registry>::namespaced(c.client.clone(), &ns)
        .create(
            &PostParams::default(),
            &object(
                json!({"apiVersion": "registry-operator.dev/v1alpha1", "kind": "Registry",
                "metadata": {"name": "dist"}, "spec": {"external": {"url": registry.url}}}),
            ),
        )
        .await
        .unwrap();
    let rps: Api<RetentionPolicy> = Api::namespaced(c.client.clone(), &ns);
    rps.create(
        &PostParams::default(),
        &object(
            json!({"apiVersion": "registry-operator.dev/v1alpha1", "kind": "RetentionPolicy",
            "metadata": {"name": "apps"}, "spec": {"registryRef": {"name": "dist"},
            "mode": "Enforce", "repositories": {"include": ["app/**"]},
            "keep": [{"mostRecent": 1}]}}),
        ),
    )
    .await
    .unwrap();
    let run = wait_for_within("the Enforce run", Duration::from_secs(60), || async {
        rps.get("apps")
            .await
            .ok()?
            .status?
            .last_run
            .filter(|r| r.completion_time.is_some())
    })
    .await;
    assert_eq!(run.deleted, 4, "{run:?}");
    assert_eq!(tags(&registry.url, "app/a").await, ["v3"]);
    assert_eq!(tags(&registry.url, "app/b").await, ["v3"]);
    assert_eq!(a.metric(DELETED).await, Some(4.0), "the leader deleted");
    assert_eq!(b.metric(DELETED).await, Some(0.0), "the standby deleted");
    assert_eq!(
        b.metric(RECONCILES).await,
        Some(0.0),
        "the standby reconciled a policy"
    );
    // The leader's health checks reached the real registry: answered 2xx, and timed.
    assert!(
        a.metric(r#"registry_operator_registry_requests_total{operation="Ping",code="2xx"}"#)
            .await
            .is_some_and(|n| n >= 1.0),
        "{:?}",
        a.metric_sum("registry_operator_registry_requests_total", "")
            .await
    );
    assert!(
        a.metric_sum(
            "registry_operator_registry_request_duration_seconds_count",
            r#"operation="Ping""#
        )
        .await
            >= 1.0
    );
    assert_eq!(
        b.metric_sum("registry_operator_registry_requests_total", "")
            .await,
        0.0,
        "the standby sent requests to the registry"
    );

    // Kill the leader: it cannot release the Lease.
    let (_, before_kill) = lease(&c, &ns).await.expect("the Lease");
    a.kill();
    let killed = Instant::now();
    // Poll the Lease until replica-b holds it, remembering replica-a's last renewal.
    let mut last_renewal_by_a = before_kill;
    let (holder, acquired, after) = loop {
        assert!(
            killed.elapsed() < Duration::from_secs(LEASE * 3),
            "replica-b did not take the Lease within {} s of the kill:\n{}",
            LEASE * 3,
            b.log_tail(30)
        );
        match lease(&c, &ns).await {
            Some((holder, renewed)) if holder == "replica-a" => last_renewal_by_a = renewed,
            Some((holder, renewed)) => break (holder, renewed, killed.elapsed()),
            None => {}
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(holder, "replica-b");
    // Never two leaders: b's first renewal comes after a's Lease ran out.
    assert!(
        acquired >= last_renewal_by_a + jiff::SignedDuration::from_secs(LEASE as i64),
        "replica-b took the Lease at {acquired}, before replica-a's ran out ({last_renewal_by_a} + {LEASE} s)"
    );
    // Within the Lease's duration of the kill, plus the lease manager's pause of up to 1 s
    // after releasing an expired Lease, its requests and this test's polling.
    assert!(
        after <= Duration::from_secs(LEASE + 3),
        "replica-b took over {after:?} after the kill (Lease {LEASE} s)"
    );
    eprintln!("replica-b took over {after:?} after replica-a was killed (Lease {LEASE} s)");
    wait_for_within(
        "replica-b's leader gauge",
        Duration::from_secs(10),
        || async { (b.metric(LEADER).await == Some(1.0)).then_some(()) },
    )
    .await;

    // The new leader reconciles: a newer image makes v3 a candidate; b deletes it.
    for r in ["app/a", "app/b"] {
        seeder
            .push_image(r, Some("v4"), &format!("{r}-4"), "2025-01-04T00:00:00Z")
            .await;
    }
    rps.patch(
        "apps",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {
            "registry-operator.dev/run-requested-at": "after-the-takeover"}}})),
    )
    .await
    .unwrap();
    wait_for_within("replica-b's run", Duration::from_secs(60), || async {
        (b.metric(DELETED).await == Some(2.0)).then_some(())
    })
    .await;
    assert_eq!(tags(&registry.url, "app/a").await, ["v4"]);
    assert_eq!(tags(&registry.url, "app/b").await, ["v4"]);
    assert!(b.running(), "replica-b exited:\n{}", b.log_tail(30));
    assert_eq!(forbidden(&c, &sa.username), Vec::<String>::new());
    b.stop();
}
