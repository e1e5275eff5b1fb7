//! Status that tells the truth about credentials and permissions, on the real control plane
//! (tests/support/cluster.rs) with the operator as the chart's ServiceAccount, against a real
//! distribution registry with htpasswd — directly, and behind the fault proxy answering 403 to
//! DELETE or to `_catalog` as a read-only or catalog-less robot account gets.
//!
//! A wrong password stalls the Registry (`CredentialsAccepted=False`) and its policy
//! (`CredentialsRejected`), each with an Event naming the Secret and key; no run is retried in
//! a loop; correcting the Secret is enough to recover, without restarting the operator.
//!
//! Needs the control plane: run with scripts/test.sh (or set REGISTRY_OPERATOR_TEST_KUBECONFIG).

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use registry_operator::api::{Registry, RetentionPolicy};
use serde_json::{json, Value};

use support::cluster::{wait_for, Harness};
use support::proxy::{Fault, FaultProxy, FaultRule};
use support::registry::TestRegistry;
use support::seed::Seeder;

fn object<K: serde::de::DeserializeOwned>(v: Value) -> K {
    serde_json::from_value(v).expect("fixture")
}

fn days_ago(days: i64) -> String {
    (jiff::Timestamp::now() - jiff::SignedDuration::from_hours(24 * days)).to_string()
}

/// `team/api` and `team/web`, three images each, 1 to 3 days old.
async fn seed(url: &str, auth: Option<(String, String)>) {
    let s = Seeder::new(url, auth);
    for repo in ["team/api", "team/web"] {
        for day in 1..=3 {
            s.push_image(
                repo,
                Some(&format!("v{day}")),
                &format!("{repo}{day}"),
                &days_ago(4 - day),
            )
            .await;
        }
    }
}

fn basic_auth_secret(name: &str, user: &str, password: &str) -> Secret {
    object(json!({
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/basic-auth",
        "metadata": {"name": name},
        "stringData": {"username": user, "password": password},
    }))
}

fn external(name: &str, url: &str, secret: &str) -> Registry {
    object(json!({
        "apiVersion": "registry-operator.dev/v1alpha1", "kind": "Registry",
        "metadata": {"name": name},
        "spec": {"external": {"url": url, "credentialsSecretRef": {"name": secret}}},
    }))
}

fn policy(name: &str, registry: &str, mode: &str, include: &[&str]) -> RetentionPolicy {
    object(json!({
        "apiVersion": "registry-operator.dev/v1alpha1", "kind": "RetentionPolicy",
        "metadata": {"name": name},
        "spec": {"registryRef": {"name": registry}, "mode": mode,
                 "repositories": {"include": include}, "keep": [{"mostRecent": 1}]},
    }))
}

fn condition(conditions: &[Condition], type_: &str) -> Option<Condition> {
    conditions.iter().find(|c| c.type_ == type_).cloned()
}

async fn registry_condition(regs: &Api<Registry>, name: &str, type_: &str) -> Option<Condition> {
    let r = regs.get(name).await.ok()?;
    condition(&r.status?.conditions, type_)
}

async fn policy_ready(rps: &Api<RetentionPolicy>, name: &str) -> Option<Condition> {
    let p = rps.get(name).await.ok()?;
    condition(&p.status?.conditions, "Ready")
}

/// Waits until the Registry's condition `type_` has `status` and `reason`.
async fn registry_says(
    regs: &Api<Registry>,
    name: &str,
    type_: &str,
    status: &str,
    reason: &str,
) -> Condition {
    wait_for(&format!("{name}: {type_}={status} {reason}"), || async {
        registry_condition(regs, name, type_)
            .await
            .filter(|c| c.status == status && c.reason == reason)
    })
    .await
}

/// Waits until the policy's Ready condition has `status` and `reason`.
async fn policy_says(
    rps: &Api<RetentionPolicy>,
    name: &str,
    status: &str,
    reason: &str,
) -> Condition {
    wait_for(&format!("{name}: Ready={status} {reason}"), || async {
        policy_ready(rps, name)
            .await
            .filter(|c| c.status == status && c.reason == reason)
    })
    .await
}

/// Every retention run the operator counted, whatever its labels.
async fn runs(h: &Harness) -> f64 {
    let text = reqwest::get(&h.metrics_url)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with("registry_operator_retention_runs_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The operator's status writes to the policy `name`, from the audit log.
fn policy_status_writes(h: &Harness, name: &str) -> usize {
    h.operator_requests()
        .iter()
        .filter(|e| {
            e.resource == "retentionpolicies"
                && e.subresource == "status"
                && e.name == name
                && matches!(e.verb.as_str(), "patch" | "update")
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_stalls_registry_and_policy_without_retries_until_the_secret_is_fixed() {
    let real = TestRegistry::start_with_auth("robot", "right password");
    seed(&real.url, real.auth.clone()).await;
    let h = Harness::start("creds").await;
    let ns = h.ns.clone();
    let secrets: Api<Secret> = Api::namespaced(h.client.clone(), &ns);
    secrets
        .create(
            &PostParams::default(),
            &basic_auth_secret("robot", "robot", "wrong password"),
        )
        .await
        .unwrap();
    // A refused policy runs again when a credentials Secret is written after its run started
    // (to the second, as the API server stamps it): let that second pass.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let regs: Api<Registry> = Api::namespaced(h.client.clone(), &ns);
    regs.create(
        &PostParams::default(),
        &external("dist", &real.url, "robot"),
    )
    .await
    .unwrap();

    // The Registry: up (GET /v2/ answers 401), but the credentials are rejected.
    let accepted = registry_says(
        &regs,
        "dist",
        "CredentialsAccepted",
        "False",
        "CredentialsRejected",
    )
    .await;
    let secret_named = format!("Secret {ns}/robot (key password)");
    assert!(
        accepted.message.contains(&secret_named),
        "{}",
        accepted.message
    );
    assert!(
        !accepted.message.contains("wrong password"),
        "{}",
        accepted.message
    );
    let ready = registry_condition(&regs, "dist", "Ready").await.unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "CredentialsRejected"),
        "Ready reflects the credentials"
    );
    let events = wait_for("a CredentialsRejected event on the Registry", || async {
        Some(h.events("dist", "CredentialsRejected").await).filter(|e| !e.is_empty())
    })
    .await;
    assert!(
        events[0]
            .note
            .as_deref()
            .unwrap_or_default()
            .contains(&secret_named),
        "{:?}",
        events[0].note
    );

    // The policy says why, names the Registry and the Secret, and is not retried.
    let rps: Api<RetentionPolicy> = Api::namespaced(h.client.clone(), &ns);
    rps.create(
        &PostParams::default(),
        &policy("web", "dist", "Plan", &["team/**"]),
    )
    .await
    .unwrap();
    let stalled = policy_says(&rps, "web", "False", "CredentialsRejected").await;
    assert!(
        stalled.message.contains(&format!("Registry {ns}/dist"))
            && stalled.message.contains(&secret_named),
        "{}",
        stalled.message
    );
    wait_for("a CredentialsRejected event on the policy", || async {
        Some(h.events("web", "CredentialsRejected").await).filter(|e| !e.is_empty())
    })
    .await;
    let first_run = rps
        .get("web")
        .await
        .unwrap()
        .status
        .unwrap()
        .last_run
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (runs_before, writes_before) = (runs(&h).await, policy_status_writes(&h, "web"));
    // Backoff is 200 ms doubling to 2 s here: a retry loop would run 4 times in 8 s.
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(runs(&h).await, runs_before, "no run is retried");
    assert_eq!(
        policy_status_writes(&h, "web"),
        writes_before,
        "no status writes at rest"
    );
    let still = rps
        .get("web")
        .await
        .unwrap()
        .status
        .unwrap()
        .last_run
        .unwrap();
    assert_eq!(still.start_time, first_run.start_time);

    // Correct the Secret: both recover, the operator untouched.
    secrets
        .patch(
            "robot",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"password": "right password"}})),
        )
        .await
        .unwrap();
    let accepted = registry_says(
        &regs,
        "dist",
        "CredentialsAccepted",
        "True",
        "CredentialsAccepted",
    )
    .await;
    assert!(
        accepted.message.contains(&secret_named),
        "{}",
        accepted.message
    );
    registry_says(&regs, "dist", "Ready", "True", "Available").await;
    policy_says(&rps, "web", "True", "Planned").await;
    let run = rps
        .get("web")
        .await
        .unwrap()
        .status
        .unwrap()
        .last_run
        .unwrap();
    assert_eq!(
        run.would_delete, 4,
        "v1 and v2 of both repositories: {run:?}"
    );
    assert_eq!(runs(&h).await, runs_before + 1.0, "exactly one more run");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_account_is_refused_one_delete_and_a_catalog_less_one_is_told_so() {
    let real = TestRegistry::start_with_auth("robot", "pw");
    seed(&real.url, real.auth.clone()).await;
    let read_only = FaultProxy::start(&real.url).await;
    read_only.inject(FaultRule::new(Fault::Status(403)).method("DELETE"));
    let no_catalog = FaultProxy::start(&real.url).await;
    no_catalog.inject(FaultRule::new(Fault::Status(403)).path_contains("/v2/_catalog"));

    let h = Harness::start("perms").await;
    let ns = h.ns.clone();
    let secrets: Api<Secret> = Api::namespaced(h.client.clone(), &ns);
    secrets
        .create(
            &PostParams::default(),
            &basic_auth_secret("robot", "robot", "pw"),
        )
        .await
        .unwrap();
    let regs: Api<Registry> = Api::namespaced(h.client.clone(), &ns);
    regs.create(
        &PostParams::default(),
        &external("ro", read_only.url(), "robot"),
    )
    .await
    .unwrap();
    regs.create(
        &PostParams::default(),
        &external("nocat", no_catalog.url(), "robot"),
    )
    .await
    .unwrap();

    // Read-only: the credentials are accepted; Enforce stops at the first refused DELETE.
    registry_says(
        &regs,
        "ro",
        "CredentialsAccepted",
        "True",
        "CredentialsAccepted",
    )
    .await;
    // A refused run is run again when its credentials Secret was written since the run
    // started, to the second (the API server's time stamps have no more): start it in a later
    // second than the Secret, so that this run is the only one.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let rps: Api<RetentionPolicy> = Api::namespaced(h.client.clone(), &ns);
    rps.create(
        &PostParams::default(),
        &policy("prune", "ro", "Enforce", &["team/**"]),
    )
    .await
    .unwrap();
    let denied = policy_says(&rps, "prune", "False", "PermissionDenied").await;
    assert!(
        denied.message.contains("mode: Plan works")
            && denied.message.contains("Enforce needs delete rights")
            && denied.message.contains(&format!("Secret {ns}/robot")),
        "{}",
        denied.message
    );
    assert_eq!(read_only.count("DELETE"), 1, "stopped at the first refusal");
    let run = rps
        .get("prune")
        .await
        .unwrap()
        .status
        .unwrap()
        .last_run
        .unwrap();
    assert_eq!(run.deleted, 0, "{run:?}");
    wait_for("a PermissionDenied event on the policy", || async {
        Some(h.events("prune", "PermissionDenied").await).filter(|e| !e.is_empty())
    })
    .await;

    // Catalog-less: accepted, and the Registry says the catalog is refused.
    let refused = registry_says(
        &regs,
        "nocat",
        "CredentialsAccepted",
        "True",
        "CatalogRefused",
    )
    .await;
    assert!(
        refused.message.contains("refuses the account the catalog"),
        "{}",
        refused.message
    );
    registry_says(&regs, "nocat", "Ready", "True", "Available").await;
    wait_for("a CatalogRefused event on the Registry", || async {
        Some(h.events("nocat", "CatalogRefused").await).filter(|e| !e.is_empty())
    })
    .await;
    // A wildcard needs the catalog; named repositories do not.
    rps.create(
        &PostParams::default(),
        &policy("all", "nocat", "Plan", &["team/**"]),
    )
    .await
    .unwrap();
    rps.create(
        &PostParams::default(),
        &policy("named", "nocat", "Plan", &["team/api", "team/web"]),
    )
    .await
    .unwrap();
    let all = policy_says(&rps, "all", "False", "PermissionDenied").await;
    assert!(
        all.message.contains("may not list the catalog"),
        "{}",
        all.message
    );
    policy_says(&rps, "named", "True", "Planned").await;
    let run = rps
        .get("named")
        .await
        .unwrap()
        .status
        .unwrap()
        .last_run
        .unwrap();
    assert_eq!(run.would_delete, 4, "{run:?}");
    h.stop().await;
}
