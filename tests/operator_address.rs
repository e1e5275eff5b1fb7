//! The address policy on the real control plane, with the operator as the chart's
//! ServiceAccount: an external Registry pointing at cloud metadata (by literal, or by a name
//! that resolves there), at another namespace's Service, or — for an operator that does not
//! allow it — at loopback is `Ready=False` with reason `AddressNotAllowed` and a message naming
//! the rule, and nothing is connected to. The operator resolves through the test resolver
//! (the client's seam), which maps test names to addresses and records every connection
//! attempt; only 127.0.0.1 is ever contacted. The test names have three labels: a two-label
//! `<svc>.<ns>` whose last label is no public suffix (`reg.test`) is another namespace's
//! Service by the in-cluster rule.
//!
//! Needs the control plane: run with scripts/test.sh (or set REGISTRY_OPERATOR_TEST_KUBECONFIG).

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, PostParams};
use registry_operator::api::Registry;
use registry_operator::oci::{AddressPolicy, ClientOptions, Resolver};
use serde_json::json;

use support::cluster::{fast_settings, wait_for, Harness, Setup};
use support::http::{serve, Response};
use support::registry::TestRegistry;
use support::resolver::TestResolver;

fn external(name: &str, url: &str) -> Registry {
    serde_json::from_value(json!({
        "apiVersion": "registry-operator.dev/v1alpha1", "kind": "Registry",
        "metadata": {"name": name},
        "spec": {"external": {"url": url}},
    }))
    .expect("fixture")
}

async fn ready(regs: &Api<Registry>, name: &str, reason: &str) -> Condition {
    wait_for(&format!("{name}: Ready with reason {reason}"), || async {
        let r = regs.get(name).await.ok()?;
        r.status?
            .conditions
            .into_iter()
            .find(|c| c.type_ == "Ready" && c.reason == reason)
    })
    .await
}

fn with_resolver(resolver: &Arc<TestResolver>, allow_loopback: bool) -> Setup {
    let mut settings = fast_settings();
    settings.registry_client = ClientOptions {
        address_policy: AddressPolicy { allow_loopback },
        resolver: Some(resolver.clone() as Arc<dyn Resolver>),
        ..settings.registry_client
    };
    Setup {
        settings,
        ..Setup::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registries_at_metadata_addresses_or_other_namespaces_services_are_refused_and_never_contacted(
) {
    let real = TestRegistry::start();
    let port = real.url.rsplit(':').next().expect("port").to_string();
    // Through the resolver seam: the name maps to this address, and TestResolver refuses any
    // non-loopback address at the connector, so no packet leaves this host even if the policy
    // were broken.
    let resolver = TestResolver::new(&[
        ("metadata.cloud.test", "169.254.169.254"),
        ("reg.lab.test", "127.0.0.1"),
    ]);
    let h = Harness::start_setup("address", with_resolver(&resolver, true)).await;
    let regs: Api<Registry> = Api::namespaced(h.client.clone(), &h.ns);
    for (name, url) in [
        // a literal whose connection, were the check to fail, would stay on this host
        ("literal", "http://0.0.0.0:5000".to_string()),
        ("rebound", "http://metadata.cloud.test:5000".to_string()),
        ("other-team", "http://zot.other-team.svc:5000".to_string()),
        ("dist", format!("http://reg.lab.test:{port}")),
    ] {
        regs.create(&PostParams::default(), &external(name, &url))
            .await
            .expect("create Registry");
    }

    // A registry the policy allows, reached through the same resolver: Ready.
    ready(&regs, "dist", "Available").await;

    let literal = ready(&regs, "literal", "AddressNotAllowed").await;
    assert_eq!(literal.status, "False");
    assert!(
        literal
            .message
            .contains("address 0.0.0.0 is not allowed by the unspecified-address rule"),
        "{}",
        literal.message
    );

    let rebound = ready(&regs, "rebound", "AddressNotAllowed").await;
    assert_eq!(rebound.status, "False");
    assert!(
        rebound.message.contains(
            "metadata.cloud.test: address 169.254.169.254 not allowed by the cloud-metadata rule"
        ),
        "{}",
        rebound.message
    );

    let other = ready(&regs, "other-team", "AddressNotAllowed").await;
    assert_eq!(other.status, "False");
    assert!(
        other
            .message
            .contains("names a Service of namespace \"other-team\"")
            && other
                .message
                .contains("not allowed by the cross-namespace-service rule"),
        "{}",
        other.message
    );
    let stalled = regs
        .get("other-team")
        .await
        .expect("get")
        .status
        .expect("status")
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Stalled")
        .expect("Stalled");
    assert_eq!(
        (stalled.status.as_str(), stalled.reason.as_str()),
        ("True", "AddressNotAllowed")
    );

    // The name was resolved, and refused before any connection; the Service name was refused
    // before it was even resolved; only loopback reached the connector.
    let resolved = resolver.resolved();
    assert!(
        resolved.iter().any(|n| n == "metadata.cloud.test"),
        "{resolved:?}"
    );
    assert!(
        !resolved.iter().any(|n| n.contains("other-team")),
        "{resolved:?}"
    );
    let connecting = resolver.connecting();
    assert!(!connecting.is_empty());
    assert!(
        connecting
            .iter()
            .all(|(n, a)| n == "reg.lab.test" && a.is_loopback()),
        "{connecting:?}"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_that_does_not_allow_loopback_refuses_a_registry_on_127_0_0_1_without_a_request(
) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let server = serve(move |_req| {
        counted.fetch_add(1, Ordering::SeqCst);
        async { Response::status(200).into() }
    })
    .await;
    let resolver = TestResolver::new(&[("local.lab.test", "127.0.0.1")]);
    let h = Harness::start_setup("loopback", with_resolver(&resolver, false)).await;
    let regs: Api<Registry> = Api::namespaced(h.client.clone(), &h.ns);
    let port = server.addr.port();
    regs.create(&PostParams::default(), &external("literal", &server.url))
        .await
        .expect("create");
    regs.create(
        &PostParams::default(),
        &external("named", &format!("http://local.lab.test:{port}")),
    )
    .await
    .expect("create");
    for name in ["literal", "named"] {
        let c = ready(&regs, name, "AddressNotAllowed").await;
        assert!(
            c.message.contains("not allowed by the loopback rule"),
            "{name}: {}",
            c.message
        );
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the registry got no request"
    );
    assert_eq!(resolver.connecting(), []);
    h.stop().await;
}
