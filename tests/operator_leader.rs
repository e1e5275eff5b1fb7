//! The deletion fence of a leader-elected operator, against the Kubernetes API test double:
//! a replica deletes only while the Lease, read fresh, names it and is within its duration.

mod support;

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, Patch, PatchParams, PostParams};
use registry_operator::controller::runtime::{lease_fence, LeaderElection};
use serde_json::json;

use support::operator::Harness;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_may_delete_only_while_the_lease_names_it_and_is_fresh() {
    let h = Harness::start().await;
    let le = LeaderElection {
        namespace: "default".into(),
        lease: "registry-operator".into(),
        identity: "operator-0".into(),
    };
    let fence = lease_fence(h.client.clone(), &le, std::time::Duration::from_secs(5));
    // no Lease at all: no
    let err = fence().await.unwrap_err();
    assert!(
        err.contains("cannot read the leader Lease default/registry-operator"),
        "{err}"
    );
    let leases: Api<Lease> = Api::namespaced(h.client.clone(), "default");
    let renewed = |ago: i64| {
        (jiff::Timestamp::now() - jiff::SignedDuration::from_secs(ago))
            .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
            .to_string()
    };
    leases
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": "registry-operator"},
                "spec": {"holderIdentity": "operator-1", "leaseDurationSeconds": 15,
                         "renewTime": renewed(1)},
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    // another replica took over: no
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
    h.stop().await;
}
