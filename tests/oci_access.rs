//! The registry refusing the account, against a real distribution registry: with htpasswd (a
//! wrong password, then the right one), and behind the fault proxy answering 403 to `_catalog`
//! or to DELETE as Harbor, GitLab or zot's access control do for robot and read-only
//! accounts. Each refusal says what it is (credentials rejected or missing, permission denied
//! for the catalog, a repository, a deletion), is never retried, and a read-only account is
//! refused exactly one DELETE.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use registry_operator::api::retention::{PolicyMode, RetentionRules};
use registry_operator::engine::{run_policy, ItemResult, RunOptions};
use registry_operator::oci::{
    ClientOptions, Credentials, Denial, Operation, Refused, RegistryClient, RetryPolicy,
};
use registry_operator::retention::Policy;
use support::proxy::{Fault, FaultProxy, FaultRule};
use support::registry::TestRegistry;
use support::seed::Seeder;

fn options() -> ClientOptions {
    ClientOptions {
        retry: RetryPolicy {
            max_retries: 3,
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(20),
            max_retry_after: Duration::from_secs(1),
        },
        ..ClientOptions::default()
    }
}

fn days_ago(days: i64) -> String {
    (jiff::Timestamp::now() - jiff::SignedDuration::from_hours(24 * days)).to_string()
}

fn policy(mode: PolicyMode, include: &[&str]) -> Policy {
    let include: Vec<String> = include.iter().map(|s| format!("{s:?}")).collect();
    let yaml = format!(
        "mode: Plan\nrepositories: {{include: [{}]}}\nkeep:\n  - mostRecent: 1\n",
        include.join(", ")
    );
    let mut rules: RetentionRules = serde_yaml::from_str(&yaml).unwrap();
    rules.mode = mode;
    Policy::compile("ns/robot", &rules).unwrap()
}

/// Three repositories of three images each, 1 to 3 days old.
async fn seed(url: &str, auth: Option<(String, String)>) {
    let s = Seeder::new(url, auth);
    for repo in ["team/api", "team/web", "team/worker"] {
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

async fn tags(c: &RegistryClient, repo: &str) -> BTreeSet<String> {
    c.tags(repo).await.unwrap().into_iter().collect()
}

#[tokio::test]
async fn a_wrong_password_is_credentials_rejected_not_retried_and_the_right_one_is_accepted() {
    let reg = TestRegistry::start_with_auth("robot", "right password");
    seed(&reg.url, reg.auth.clone()).await;

    let wrong = RegistryClient::new(
        &reg.url,
        Credentials::basic("robot", "wrong password"),
        options(),
    )
    .unwrap();
    // GET /v2/ answers 401 either way: the registry is up, that says nothing of the account.
    assert!(wrong.check().await.unwrap().auth_required);
    let e = wrong.probe_catalog().await.unwrap_err();
    assert_eq!(e.denial(), Some(Denial::CredentialsRejected), "{e}");
    assert_eq!(e.reason(), "CredentialsRejected");
    assert!(
        !e.is_transient(),
        "a refusal lasts until the Secret changes"
    );
    assert!(e.to_string().contains("rejects the credentials"), "{e}");
    assert!(!e.to_string().contains("wrong password"), "{e}");
    let run = run_policy(
        &wrong,
        &policy(PolicyMode::Plan, &["team/**"]),
        &RunOptions::default(),
        jiff::Timestamp::now(),
    )
    .await
    .unwrap_err();
    assert_eq!(run.denial(), Some(Denial::CredentialsRejected), "{run}");
    assert_eq!(wrong.stats().retries, 0, "a 401 is not retried");

    // No credentials at all: the registry wants some.
    let anonymous = RegistryClient::new(&reg.url, Credentials::Anonymous, options()).unwrap();
    let e = anonymous.probe_catalog().await.unwrap_err();
    assert_eq!(e.denial(), Some(Denial::CredentialsRequired), "{e}");

    // The corrected password: the same probe and the same run succeed.
    let right = RegistryClient::new(
        &reg.url,
        Credentials::basic("robot", "right password"),
        options(),
    )
    .unwrap();
    right.probe_catalog().await.unwrap();
    let result = run_policy(
        &right,
        &policy(PolicyMode::Plan, &["team/**"]),
        &RunOptions::default(),
        jiff::Timestamp::now(),
    )
    .await
    .unwrap();
    assert_eq!(
        result.plan.counts.deletions, 6,
        "two of three per repository"
    );
    assert!(result.denial().is_none());
}

#[tokio::test]
async fn a_refused_catalog_is_permission_denied_and_a_policy_naming_its_repositories_still_plans() {
    let reg = TestRegistry::start();
    seed(&reg.url, None).await;
    let proxy = FaultProxy::start(&reg.url).await;
    proxy.inject(FaultRule::new(Fault::Status(403)).path_contains("/v2/_catalog"));
    let c = RegistryClient::new(proxy.url(), Credentials::Anonymous, options()).unwrap();

    let e = c.probe_catalog().await.unwrap_err();
    assert_eq!(
        e.denial(),
        Some(Denial::PermissionDenied(Refused::Catalog)),
        "{e}"
    );
    assert!(e.to_string().contains("may not list the catalog"), "{e}");

    // With a wildcard the repositories cannot be known: the run says the catalog is refused.
    let e = run_policy(
        &c,
        &policy(PolicyMode::Plan, &["team/**"]),
        &RunOptions::default(),
        jiff::Timestamp::now(),
    )
    .await
    .unwrap_err();
    assert_eq!(
        e.denial(),
        Some(Denial::PermissionDenied(Refused::Catalog)),
        "{e}"
    );
    assert_eq!(c.stats().retries, 0, "a 403 is not retried");

    // Named without wildcards (one of them not in the registry): read one by one.
    proxy.reset_counts();
    let result = run_policy(
        &c,
        &policy(PolicyMode::Plan, &["team/api", "team/web", "team/gone"]),
        &RunOptions::default(),
        jiff::Timestamp::now(),
    )
    .await
    .unwrap();
    assert!(result.named_only);
    assert!(result.denial().is_none());
    let repos: Vec<&str> = result.plan.repositories.iter().map(|r| &*r.name).collect();
    assert!(
        repos.contains(&"team/api") && repos.contains(&"team/web"),
        "{repos:?}"
    );
    assert_eq!(result.plan.counts.deletions, 4, "v1 and v2 of api and web");
    assert_eq!(
        result.plan.counts.errors, 0,
        "an unknown named repository is absent"
    );
    assert_eq!(proxy.count_path("GET", "/v2/_catalog"), 1, "asked once");
    assert!(
        result
            .summary()
            .message
            .unwrap_or_default()
            .contains("refuses the account the catalog"),
        "the status says how it was read"
    );
}

#[tokio::test]
async fn a_read_only_account_is_refused_exactly_one_delete_and_nothing_is_deleted() {
    let reg = TestRegistry::start();
    seed(&reg.url, None).await;
    let proxy = FaultProxy::start(&reg.url).await;
    proxy.inject(FaultRule::new(Fault::Status(403)).method("DELETE"));
    let c = RegistryClient::new(proxy.url(), Credentials::Anonymous, options()).unwrap();

    // Plan mode works with the account: it only reads.
    let planned = run_policy(
        &c,
        &policy(PolicyMode::Plan, &["team/**"]),
        &RunOptions::default(),
        jiff::Timestamp::now(),
    )
    .await
    .unwrap();
    assert_eq!(planned.plan.counts.deletions, 6);
    assert!(planned.denial().is_none());
    assert_eq!(proxy.count("DELETE"), 0);

    let result = run_policy(
        &c,
        &policy(PolicyMode::Enforce, &["team/**"]),
        &RunOptions::default(),
        jiff::Timestamp::now(),
    )
    .await
    .unwrap();
    assert_eq!(proxy.count("DELETE"), 1, "stopped at the first refusal");
    assert_eq!(c.stats().get(Operation::DeleteManifest), 1);
    let exec = result.execution.as_ref().unwrap();
    assert_eq!(exec.counts.deleted_tags, 0);
    assert_eq!(exec.counts.not_attempted, 5, "{:?}", exec.items);
    assert_eq!(
        exec.items
            .iter()
            .filter(|i| matches!(i.result, ItemResult::Refused { .. }))
            .count(),
        1
    );
    let (denial, why) = result.denial().unwrap();
    assert_eq!(denial, Denial::PermissionDenied(Refused::Delete));
    assert!(why.contains("permission denied (403)"), "{why}");
    assert!(
        exec.headline().contains("5 deletions not attempted"),
        "{}",
        exec.headline()
    );
    let direct = RegistryClient::new(&reg.url, Credentials::Anonymous, options()).unwrap();
    for repo in ["team/api", "team/web", "team/worker"] {
        assert_eq!(tags(&direct, repo).await.len(), 3, "{repo} untouched");
    }

    // Delete rights granted: the same run deletes what it planned.
    proxy.clear();
    let result = run_policy(
        &c,
        &policy(PolicyMode::Enforce, &["team/**"]),
        &RunOptions::default(),
        jiff::Timestamp::now(),
    )
    .await
    .unwrap();
    let exec = result.execution.as_ref().unwrap();
    assert_eq!(exec.counts.deleted_tags, 6, "{:?}", exec.items);
    assert!(result.denial().is_none());
}
