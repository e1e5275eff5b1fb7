//! The retention engine end to end against a real CNCF distribution 2.8 registry: seeded with
//! shared digests, image indexes, referrers (tag schema and `subject`), nested project paths
//! and spread ages; pruned through the engine API and through the CLI binary.

mod support;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use registry_operator::api::retention::{PolicyMode, RetentionRules, RunOutcome};
use registry_operator::engine::{
    collect_inventory, execute, run_policy, CollectOptions, ExecuteError, ExecuteOptions,
    InUseSource, ItemResult, RunOptions,
};
use registry_operator::oci::{
    AgeCache, ClientOptions, Credentials, Operation, RegistryClient, RetryPolicy,
};
use registry_operator::retention::{plan, InUse, Mutation, Policy, Protections};
use support::proxy::{Fault, FaultProxy, FaultRule};
use support::registry::TestRegistry;
use support::seed::{Pushed, Seeder};

const BIN: &str = env!("CARGO_BIN_EXE_registry-operator");

fn options() -> ClientOptions {
    ClientOptions {
        retry: RetryPolicy {
            max_retries: 2,
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(20),
            max_retry_after: Duration::from_secs(1),
        },
        ..ClientOptions::default()
    }
}

fn client(url: &str) -> RegistryClient {
    RegistryClient::new(url, Credentials::Anonymous, options()).unwrap()
}

fn days_ago(days: i64) -> String {
    (jiff::Timestamp::now() - jiff::SignedDuration::from_hours(24 * days)).to_string()
}

fn policy(name: &str, mode: PolicyMode, rules_yaml: &str) -> Policy {
    let mut rules: RetentionRules = serde_yaml::from_str(rules_yaml).unwrap();
    rules.mode = mode;
    Policy::compile(name, &rules).unwrap()
}

/// `mode` is overridden by the caller; keeps the two newest images and `v2`.
const KEEP_TWO: &str = r#"
mode: Plan
repositories: {include: ["p/**"]}
keep:
  - tags: {regex: '^v2$'}
  - tags: {regex: '.*'}
    mostRecent: 2
deleteReferrers: true
"#;

async fn tags(c: &RegistryClient, repo: &str) -> BTreeSet<String> {
    c.tags(repo).await.unwrap().into_iter().collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// What [`seed_projects`] pushed into `p/a`.
struct Seeded {
    img1: Pushed,
    img2: Pushed,
    index: Pushed,
    img5: Pushed,
    signature_tag: String,
}

/// Seeds the project `p` (`p`, `p/a`, `p/a/b`) and an unrelated `other/x`:
///
/// `p/a`: v1 (10 days, signed through the referrers tag schema), v2 + v2-alias (9 days, one
/// image), v3 (8 days, a two-platform index), v4 (2 days, with a tagged SBOM `sbom-v4`
/// whose `subject` is v4), v5 + latest (1 day).
/// `p/a/b`: old1 (5 days), old2 (4 days), new (1 day). `p`: root (30 days). `other/x`: x1
/// (30 days).
async fn seed_projects(s: &Seeder) -> Seeded {
    let repo = "p/a";
    let img1 = s.push_image(repo, Some("v1"), "v1", &days_ago(10)).await;
    let sig = s
        .push_referrer(repo, &img1, "application/vnd.dev.cosign.signature", "sig1")
        .await;
    s.push_referrers_tag(
        repo,
        &img1,
        &[(&sig, "application/vnd.dev.cosign.signature")],
    )
    .await;
    let img2 = s.push_image(repo, Some("v2"), "v2", &days_ago(9)).await;
    s.tag(repo, "v2-alias", &img2).await;
    let index = s.push_index(repo, "v3", "v3", &days_ago(8)).await;
    let img4 = s.push_image(repo, Some("v4"), "v4", &days_ago(2)).await;
    let sbom = s
        .push_referrer(repo, &img4, "application/spdx+json", "sbom4")
        .await;
    s.tag(repo, "sbom-v4", &sbom).await;
    let img5 = s.push_image(repo, Some("v5"), "v5", &days_ago(1)).await;
    s.tag(repo, "latest", &img5).await;
    s.push_image("p/a/b", Some("old1"), "old1", &days_ago(5))
        .await;
    s.push_image("p/a/b", Some("old2"), "old2", &days_ago(4))
        .await;
    s.push_image("p/a/b", Some("new"), "new", &days_ago(1))
        .await;
    s.push_image("p", Some("root"), "root", &days_ago(30)).await;
    s.push_image("other/x", Some("x1"), "x1", &days_ago(30))
        .await;
    Seeded {
        signature_tag: img1.digest.replacen(':', "-", 1),
        img1,
        img2,
        index,
        img5,
    }
}

/// What `p/a` holds after [`KEEP_TWO`] is applied.
const P_A_AFTER: &[&str] = &["latest", "sbom-v4", "v2", "v2-alias", "v4", "v5"];

#[tokio::test]
async fn apply_leaves_exactly_the_tags_the_policy_keeps_and_nothing_a_kept_tag_needs() {
    let reg = TestRegistry::start();
    let s = Seeder::new(&reg.url, None);
    let seeded = seed_projects(&s).await;
    let c = client(&reg.url);
    let pol = policy("ns/keep-two", PolicyMode::Enforce, KEEP_TWO);
    let result = run_policy(&c, &pol, &RunOptions::default(), jiff::Timestamp::now())
        .await
        .unwrap();
    let exec = result.execution.as_ref().expect("executed");
    assert_eq!(exec.counts.errors, 0, "{:?}", exec.items);
    assert_eq!(result.outcome(), RunOutcome::Succeeded);

    assert_eq!(tags(&c, "p/a").await, set(P_A_AFTER));
    assert_eq!(tags(&c, "p/a/b").await, set(&["new", "old2"]));
    // out of scope: `p/**` does not match `p` itself, and `other/x` is another project
    assert_eq!(tags(&c, "p").await, set(&["root"]));
    assert_eq!(tags(&c, "other/x").await, set(&["x1"]));
    // the deleted image, its signature (tag schema) and the index are gone by digest
    assert!(c
        .head_manifest("p/a", &seeded.img1.digest)
        .await
        .unwrap()
        .is_none());
    assert!(c
        .head_manifest("p/a", &seeded.index.digest)
        .await
        .unwrap()
        .is_none());
    assert!(!tags(&c, "p/a").await.contains(&seeded.signature_tag));
    // the shared image stays, with both its tags
    assert!(c
        .head_manifest("p/a", &seeded.img2.digest)
        .await
        .unwrap()
        .is_some());
    let summary = result.summary();
    assert_eq!(summary.deleted, 4, "v1, its signature tag, v3 and old1");
    assert_eq!(summary.mode, PolicyMode::Enforce);
}

#[tokio::test]
async fn a_tag_re_pushed_between_plan_and_execute_survives_on_its_new_image() {
    let reg = TestRegistry::start();
    let s = Seeder::new(&reg.url, None);
    let seeded = seed_projects(&s).await;
    let c = client(&reg.url);
    let pol = policy("ns/keep-two", PolicyMode::Enforce, KEEP_TWO);
    let inventory = collect_inventory(&c, |r| pol.in_scope(r), &CollectOptions::default())
        .await
        .unwrap();
    let planned = plan(
        &pol,
        &[],
        &inventory,
        &Protections::default(),
        jiff::Timestamp::now(),
    );
    // someone pushes a new image as v1 after the plan was made
    let fresh = s
        .push_image("p/a", Some("v1"), "v1-again", &days_ago(0))
        .await;
    let exec = execute(&c, &planned, &inventory, &ExecuteOptions::default())
        .await
        .unwrap();
    assert_eq!(exec.counts.changed, 1);
    assert_eq!(exec.counts.errors, 0);
    let head = c.head_manifest("p/a", "v1").await.unwrap().unwrap();
    assert_eq!(head.digest, fresh.digest);
    // the old v1 image stays too (its deletion was skipped), and so does its signature
    assert!(c
        .head_manifest("p/a", &seeded.img1.digest)
        .await
        .unwrap()
        .is_some());
    assert!(tags(&c, "p/a").await.contains(&seeded.signature_tag));
    let skipped: Vec<_> = exec
        .items
        .iter()
        .filter(|i| !i.result.is_done())
        .map(|i| i.result.clone())
        .collect();
    assert!(
        skipped
            .iter()
            .any(|r| matches!(r, ItemResult::Changed { tag, .. } if tag == "v1")),
        "{skipped:?}"
    );
    // everything else was pruned
    assert!(!tags(&c, "p/a").await.contains("v3"));
    assert_eq!(tags(&c, "p/a/b").await, set(&["new", "old2"]));
}

#[tokio::test]
async fn a_tag_added_to_a_doomed_image_between_plan_and_execute_keeps_the_image_and_the_tag() {
    let reg = TestRegistry::start();
    let s = Seeder::new(&reg.url, None);
    let seeded = seed_projects(&s).await;
    let c = client(&reg.url);
    let pol = policy("ns/keep-two", PolicyMode::Enforce, KEEP_TWO);
    let inventory = collect_inventory(&c, |r| pol.in_scope(r), &CollectOptions::default())
        .await
        .unwrap();
    let planned = plan(
        &pol,
        &[],
        &inventory,
        &Protections::default(),
        jiff::Timestamp::now(),
    );
    // a rollback: someone tags the old v3 index `prod` after the listing; distribution
    // deletes by digest, which would take `prod` with it
    s.tag("p/a", "prod", &seeded.index).await;
    let exec = execute(&c, &planned, &inventory, &ExecuteOptions::default())
        .await
        .unwrap();
    assert_eq!(exec.counts.errors, 0);
    assert!(
        exec.items
            .iter()
            .any(|i| matches!(&i.result, ItemResult::Tagged { tag } if tag == "prod")),
        "{:?}",
        exec.items
    );
    let prod = c.head_manifest("p/a", "prod").await.unwrap().unwrap();
    assert_eq!(prod.digest, seeded.index.digest);
    // the index's platform images stay with it
    for child in &seeded.index.children {
        assert!(c
            .head_manifest("p/a", &child.digest)
            .await
            .unwrap()
            .is_some());
    }
    // the rest of the plan went ahead
    let left = tags(&c, "p/a").await;
    assert!(
        !left.contains("v1") && left.contains("v3") && left.contains("prod"),
        "{left:?}"
    );
    assert_eq!(tags(&c, "p/a/b").await, set(&["new", "old2"]));
}

#[tokio::test]
async fn images_with_placeholder_build_times_have_unknown_age_and_are_not_deleted() {
    let reg = TestRegistry::start();
    let s = Seeder::new(&reg.url, None);
    // reproducible builds: ko/Jib/Nix write the epoch, buildpacks 1980, ggcr the zero time
    for (tag, created) in [
        ("ko", "1970-01-01T00:00:00Z"),
        ("pack", "1980-01-01T00:00:01Z"),
        ("ggcr", "0001-01-01T00:00:00Z"),
    ] {
        s.push_image("q/app", Some(tag), tag, created).await;
    }
    s.push_image("q/app", Some("old"), "old", &days_ago(30))
        .await;
    s.push_image("q/app", Some("new"), "new", &days_ago(2))
        .await;
    let c = client(&reg.url);
    let pol = policy(
        "ns/newest",
        PolicyMode::Enforce,
        "mode: Plan\nrepositories: {include: ['q/**']}\nkeep: [{mostRecent: 1}]\nprotect: {minAge: 24h}\n",
    );
    let result = run_policy(&c, &pol, &RunOptions::default(), jiff::Timestamp::now())
        .await
        .unwrap();
    assert_eq!(tags(&c, "q/app").await, set(&["ggcr", "ko", "new", "pack"]));
    for d in result.report().decisions {
        match d.tag.as_str() {
            "ko" | "pack" | "ggcr" => assert!(d.reason.contains("age unknown"), "{d:?}"),
            "new" => assert!(d.reason.contains("1st most recent"), "{d:?}"),
            // distribution has no push times: the age is the build time, and says so
            _ => assert!(d.reason.starts_with("delete: built 30d ago"), "{d:?}"),
        }
    }
}

#[tokio::test]
async fn a_listing_fault_in_one_repository_leaves_it_untouched_while_others_are_pruned() {
    let reg = TestRegistry::start();
    let s = Seeder::new(&reg.url, None);
    seed_projects(&s).await;
    let proxy = FaultProxy::start(&reg.url).await;
    proxy.inject(FaultRule::new(Fault::Status(503)).path_contains("/v2/p/a/b/tags/list"));
    let c = client(proxy.url());
    let pol = policy("ns/keep-two", PolicyMode::Enforce, KEEP_TWO);
    let result = run_policy(&c, &pol, &RunOptions::default(), jiff::Timestamp::now())
        .await
        .unwrap();
    assert_eq!(result.plan.counts.errors, 1);
    assert_eq!(result.outcome(), RunOutcome::PartiallyFailed);
    let direct = client(&reg.url);
    assert_eq!(tags(&direct, "p/a/b").await, set(&["new", "old1", "old2"]));
    assert_eq!(tags(&direct, "p/a").await, set(P_A_AFTER));
    // a manifest read failing (not the listing) also fails the repository closed
    let reg2 = TestRegistry::start();
    let s2 = Seeder::new(&reg2.url, None);
    seed_projects(&s2).await;
    let proxy2 = FaultProxy::start(&reg2.url).await;
    proxy2.inject(FaultRule::new(Fault::Reset).path_contains("/v2/p/a/b/manifests/old2"));
    let c2 = client(proxy2.url());
    let result = run_policy(&c2, &pol, &RunOptions::default(), jiff::Timestamp::now())
        .await
        .unwrap();
    assert_eq!(result.plan.counts.errors, 1);
    let direct2 = client(&reg2.url);
    assert_eq!(tags(&direct2, "p/a/b").await, set(&["new", "old1", "old2"]));
    assert_eq!(tags(&direct2, "p/a").await, set(P_A_AFTER));
}

#[tokio::test]
async fn plan_sends_no_delete_put_post_or_patch_request() {
    let reg = TestRegistry::start();
    let s = Seeder::new(&reg.url, None);
    seed_projects(&s).await;
    let proxy = FaultProxy::start(&reg.url).await;
    let c = client(proxy.url());
    let pol = policy("ns/keep-two", PolicyMode::Plan, KEEP_TWO);
    let result = run_policy(&c, &pol, &RunOptions::default(), jiff::Timestamp::now())
        .await
        .unwrap();
    assert_eq!(result.plan.counts.deletions, 4);
    assert!(result.execution.is_none());
    for method in ["DELETE", "PUT", "POST", "PATCH"] {
        assert_eq!(proxy.count(method), 0, "{method} requests in a plan");
    }
    assert!(proxy.count("GET") > 0);
    assert_eq!(c.stats().mutating, 0);
    assert_eq!(result.summary().would_delete, 4);
    assert_eq!(result.summary().deleted, 0);
    assert_eq!(tags(&client(&reg.url), "p/a").await.len(), 9);
}

#[tokio::test]
async fn the_executor_refuses_a_plan_mode_plan_and_a_blast_radius_breach_without_a_request() {
    let reg = TestRegistry::start();
    let s = Seeder::new(&reg.url, None);
    seed_projects(&s).await;
    let c = client(&reg.url);
    let pol = policy("ns/keep-two", PolicyMode::Plan, KEEP_TWO);
    let inventory = collect_inventory(&c, |r| pol.in_scope(r), &CollectOptions::default())
        .await
        .unwrap();
    let now = jiff::Timestamp::now();
    let p = plan(&pol, &[], &inventory, &Protections::default(), now);
    c.reset_stats();
    let r = execute(&c, &p, &inventory, &ExecuteOptions::default()).await;
    assert_eq!(r, Err(ExecuteError::PlanMode));
    let limited = policy(
        "ns/limited",
        PolicyMode::Enforce,
        &format!("{KEEP_TWO}\nlimits: {{maxDeletionsPerRun: 3}}\n"),
    );
    let p = plan(&limited, &[], &inventory, &Protections::default(), now);
    let r = execute(&c, &p, &inventory, &ExecuteOptions::default()).await;
    assert!(matches!(r, Err(ExecuteError::BlastRadius(_))), "{r:?}");
    assert_eq!(c.stats().total, 0);
    let result = run_policy(&c, &limited, &RunOptions::default(), now)
        .await
        .unwrap();
    assert_eq!(result.outcome(), RunOutcome::Blocked);
    assert_eq!(result.execute_requests.total, 0);
    assert_eq!(tags(&c, "p/a").await.len(), 9);
}

#[tokio::test]
async fn in_use_references_supplied_as_data_protect_their_images() {
    let reg = TestRegistry::start();
    let s = Seeder::new(&reg.url, None);
    let seeded = seed_projects(&s).await;
    let c = client(&reg.url);
    let pol = policy("ns/keep-two", PolicyMode::Enforce, KEEP_TWO);
    let mut in_use = InUse::new();
    in_use.add_tag("p/a", "v1", "Pod team-a/web-1");
    // a Pod runs one platform of the v3 index, by digest
    in_use.add_digest("p/a", &seeded.index.children[1].digest, "Pod team-a/arm-1");
    let options = RunOptions {
        protections: Protections { in_use },
        ..RunOptions::default()
    };
    let result = run_policy(&c, &pol, &options, jiff::Timestamp::now())
        .await
        .unwrap();
    let mut expected = set(P_A_AFTER);
    expected.extend(set(&["v1", "v3"]));
    expected.insert(seeded.signature_tag.clone());
    assert_eq!(tags(&c, "p/a").await, expected);
    let reasons: Vec<String> = result
        .report()
        .decisions
        .iter()
        .filter(|d| d.repository == "p/a" && (d.tag == "v1" || d.tag == "v3"))
        .map(|d| d.reason.clone())
        .collect();
    assert!(reasons[0].contains("Pod team-a/web-1"), "{reasons:?}");
    assert!(reasons[1].contains("Pod team-a/arm-1"), "{reasons:?}");
}

/// (repository, tag) references the test changes while a run goes on.
type SharedRefs = Arc<std::sync::Mutex<Vec<(String, String)>>>;

/// An in-use source over a list the test changes while the run goes on, counting its calls.
fn shared_in_use() -> (SharedRefs, Arc<std::sync::atomic::AtomicUsize>, InUseSource) {
    let refs: SharedRefs = Arc::default();
    let calls: Arc<std::sync::atomic::AtomicUsize> = Arc::default();
    let (r, c) = (refs.clone(), calls.clone());
    let source: InUseSource = Arc::new(move |in_scope: &dyn Fn(&str) -> bool| {
        c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mut in_use = InUse::new();
        for (repo, tag) in r.lock().unwrap().iter().filter(|(repo, _)| in_scope(repo)) {
            in_use.add_tag(repo, tag, "Pod team-a/late-1");
        }
        Ok(in_use)
    });
    (refs, calls, source)
}

#[tokio::test]
async fn a_pod_started_while_the_registry_is_read_protects_its_image() {
    let reg = TestRegistry::start();
    let s = Seeder::new(&reg.url, None);
    seed_projects(&s).await;
    // reading p/a takes a while (a large registry), and meanwhile a Pod starts on v1
    let proxy = FaultProxy::start(&reg.url).await;
    proxy.inject(
        FaultRule::new(Fault::Delay(Duration::from_millis(600))).path_contains("/v2/p/a/tags/list"),
    );
    let (refs, _, source) = shared_in_use();
    let c = client(proxy.url());
    let pol = policy("ns/keep-two", PolicyMode::Enforce, KEEP_TWO);
    let options = RunOptions {
        in_use_source: Some(source),
        ..RunOptions::default()
    };
    let later = refs.clone();
    let pod = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        later.lock().unwrap().push(("p/a".into(), "v1".into()));
    });
    let result = run_policy(&c, &pol, &options, jiff::Timestamp::now())
        .await
        .unwrap();
    pod.await.unwrap();
    let v1 = result
        .report()
        .decisions
        .into_iter()
        .find(|d| d.repository == "p/a" && d.tag == "v1")
        .unwrap();
    assert!(v1.reason.contains("in use by Pod team-a/late-1"), "{v1:?}");
    assert!(tags(&client(&reg.url), "p/a").await.contains("v1"));
}

#[tokio::test]
async fn a_pod_started_after_the_plan_keeps_its_image_from_deletion() {
    let reg = TestRegistry::start();
    let s = Seeder::new(&reg.url, None);
    seed_projects(&s).await;
    let (refs, calls, source) = shared_in_use();
    let c = client(&reg.url);
    let pol = policy("ns/keep-two", PolicyMode::Enforce, KEEP_TWO);
    let inventory = collect_inventory(&c, |r| pol.in_scope(r), &CollectOptions::default())
        .await
        .unwrap();
    let planned = plan(
        &pol,
        &[],
        &inventory,
        &Protections::default(),
        jiff::Timestamp::now(),
    );
    // planned for deletion; then a Pod starts on v1 and another on old1
    refs.lock().unwrap().push(("p/a".into(), "v1".into()));
    refs.lock().unwrap().push(("p/a/b".into(), "old1".into()));
    let options = ExecuteOptions {
        in_use: Some(source),
        ..ExecuteOptions::default()
    };
    let exec = execute(&c, &planned, &inventory, &options).await.unwrap();
    assert_eq!(exec.counts.in_use, 2, "{:?}", exec.items);
    assert_eq!(exec.counts.errors, 0);
    assert!(calls.load(std::sync::atomic::Ordering::SeqCst) >= 2);
    assert!(exec
        .items
        .iter()
        .any(|i| matches!(&i.result, ItemResult::InUse { by } if by == "Pod team-a/late-1")));
    let left = tags(&c, "p/a").await;
    assert!(left.contains("v1") && !left.contains("v3"), "{left:?}");
    assert_eq!(tags(&c, "p/a/b").await, set(&["new", "old1", "old2"]));
}

#[tokio::test]
async fn a_fence_that_says_no_stops_the_run_before_any_deletion() {
    let reg = TestRegistry::start();
    seed_projects(&Seeder::new(&reg.url, None)).await;
    let c = client(&reg.url);
    let pol = policy("ns/keep-two", PolicyMode::Enforce, KEEP_TWO);
    let mut options = RunOptions::default();
    options.execute.fence = Some(Arc::new(|| {
        Box::pin(async { Err("the Lease is held by another replica".to_string()) })
    }));
    let err = run_policy(&c, &pol, &options, jiff::Timestamp::now())
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "NotLeader");
    assert!(err.to_string().contains("held by another replica"), "{err}");
    assert_eq!(c.stats().mutating, 0);
    assert_eq!(tags(&c, "p/a").await.len(), 9);
}

#[tokio::test]
async fn losing_the_lease_part_way_stops_the_remaining_repositories_and_says_why() {
    let reg = TestRegistry::start();
    seed_projects(&Seeder::new(&reg.url, None)).await;
    // p/a's first deletion takes over 2 s, so the fence is asked again before p/a/b
    let proxy = FaultProxy::start(&reg.url).await;
    proxy.inject(
        FaultRule::new(Fault::Delay(Duration::from_millis(2200)))
            .method("DELETE")
            .path_contains("/v2/p/a/manifests")
            .times(1),
    );
    let c = client(proxy.url());
    let pol = policy("ns/keep-two", PolicyMode::Enforce, KEEP_TWO);
    let asked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut options = RunOptions::default();
    options.execute.repositories_in_flight = 1;
    let count = asked.clone();
    options.execute.fence = Some(Arc::new(move || {
        let n = count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Box::pin(async move {
            if n == 0 {
                Ok(())
            } else {
                Err("the Lease is held by operator-1".to_string())
            }
        })
    }));
    let result = run_policy(&c, &pol, &options, jiff::Timestamp::now())
        .await
        .unwrap();
    let exec = result.execution.as_ref().unwrap();
    assert_eq!(
        exec.interrupted(),
        Some(("NotLeader", "the Lease is held by operator-1"))
    );
    assert_eq!(result.outcome(), RunOutcome::PartiallyFailed);
    // p/a's first deletions went ahead; the referrer they leave behind waited for them,
    // asked the fence after the Lease was lost and stayed, as did p/a/b
    let direct = client(&reg.url);
    let left = tags(&direct, "p/a").await;
    let after = set(P_A_AFTER);
    let extra: Vec<_> = left.difference(&after).collect();
    assert!(
        left.is_superset(&after) && extra.len() == 1 && extra[0].starts_with("sha256-"),
        "{left:?}"
    );
    assert_eq!(tags(&direct, "p/a/b").await, set(&["new", "old1", "old2"]));
}

#[tokio::test]
async fn a_delete_tried_again_asks_the_fence_afresh_and_is_not_sent_once_the_lease_is_lost() {
    let reg = TestRegistry::start();
    seed_projects(&Seeder::new(&reg.url, None)).await;
    // p/a's first DELETE fails (503): the client would try it again after a short backoff
    let proxy = FaultProxy::start(&reg.url).await;
    proxy.inject(
        FaultRule::new(Fault::Status(503))
            .method("DELETE")
            .path_contains("/v2/p/a/manifests")
            .times(1),
    );
    let c = client(proxy.url());
    let pol = policy("ns/keep-two", PolicyMode::Enforce, KEEP_TWO);
    let asked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut options = RunOptions::default();
    options.execute.repositories_in_flight = 1;
    let count = asked.clone();
    // Yes once (before the first deletion, trusted for 2 s); no from then on.
    options.execute.fence = Some(Arc::new(move || {
        let n = count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Box::pin(async move {
            if n == 0 {
                Ok(())
            } else {
                Err("the Lease is held by operator-1".to_string())
            }
        })
    }));
    let result = run_policy(&c, &pol, &options, jiff::Timestamp::now())
        .await
        .unwrap();
    let exec = result.execution.as_ref().unwrap();
    assert_eq!(
        exec.interrupted(),
        Some(("NotLeader", "the Lease is held by operator-1"))
    );
    // the retry asked the fence (within the 2 s a yes is trusted) and was not sent: the
    // refused DELETE went out once, and nothing else after it
    let p_a: Vec<_> = exec
        .items
        .iter()
        .filter(|i| i.mutation.repository() == "p/a")
        .collect();
    assert!(asked.load(std::sync::atomic::Ordering::SeqCst) >= 2);
    let stopped: Vec<_> = p_a
        .iter()
        .filter(|i| matches!(i.result, ItemResult::Interrupted { .. }))
        .collect();
    assert!(!stopped.is_empty(), "{:?}", exec.items);
    let deleted = p_a
        .iter()
        .filter(|i| matches!(i.result, ItemResult::Deleted))
        .count();
    assert_eq!(
        proxy.count("DELETE"),
        deleted as u64 + 1,
        "{:?}",
        exec.items
    );
    // what the refused DELETE was for is still there; p/a/b was not touched
    let direct = client(&reg.url);
    let left = tags(&direct, "p/a").await;
    let kept_by_the_fence: Vec<String> = stopped
        .iter()
        .flat_map(|i| match &i.mutation {
            Mutation::DeleteManifest { tags, .. } => tags.iter().map(|t| t.to_string()).collect(),
            Mutation::DeleteTag { tag, .. } => vec![tag.to_string()],
        })
        .collect();
    for t in P_A_AFTER
        .iter()
        .map(|t| t.to_string())
        .chain(kept_by_the_fence)
    {
        assert!(left.contains(&t), "{t} is gone: {left:?}");
    }
    assert_eq!(tags(&direct, "p/a/b").await, set(&["new", "old1", "old2"]));
}

#[tokio::test]
async fn re_running_an_applied_plan_deletes_nothing_new() {
    let reg = TestRegistry::start();
    let s = Seeder::new(&reg.url, None);
    seed_projects(&s).await;
    let c = client(&reg.url);
    let pol = policy("ns/keep-two", PolicyMode::Enforce, KEEP_TWO);
    let inventory = collect_inventory(&c, |r| pol.in_scope(r), &CollectOptions::default())
        .await
        .unwrap();
    let p = plan(
        &pol,
        &[],
        &inventory,
        &Protections::default(),
        jiff::Timestamp::now(),
    );
    let first = execute(&c, &p, &inventory, &ExecuteOptions::default())
        .await
        .unwrap();
    assert_eq!(first.counts.deleted_tags, 4);
    let after_first = tags(&c, "p/a").await;
    let again = execute(&c, &p, &inventory, &ExecuteOptions::default())
        .await
        .unwrap();
    assert_eq!(again.counts.deleted_tags, 0);
    assert_eq!(again.counts.deleted_manifests, 0);
    assert_eq!(again.counts.errors, 0);
    assert_eq!(again.counts.already_gone as usize, p.mutations().count());
    assert_eq!(tags(&c, "p/a").await, after_first);
    // and a fresh run plans nothing more
    let fresh = run_policy(&c, &pol, &RunOptions::default(), jiff::Timestamp::now())
        .await
        .unwrap();
    assert_eq!(fresh.plan.counts.deletions, 0);
    assert_eq!(fresh.execute_requests.mutating, 0);
}

#[tokio::test]
async fn runs_sharing_an_age_cache_read_each_config_once_and_plan_the_same() {
    let reg = TestRegistry::start();
    let s = Seeder::new(&reg.url, None);
    seed_projects(&s).await;
    let pol = policy("ns/keep-two", PolicyMode::Plan, KEEP_TWO);
    let cache = Arc::new(AgeCache::default());
    let shared = || {
        RegistryClient::new(
            &reg.url,
            Credentials::Anonymous,
            ClientOptions {
                age_cache: Some(cache.clone()),
                ..options()
            },
        )
        .unwrap()
    };
    // Two runs, each with its own client, as the operator's scheduled runs are.
    let (first_client, second_client) = (shared(), shared());
    let first = run_policy(
        &first_client,
        &pol,
        &RunOptions::default(),
        jiff::Timestamp::now(),
    )
    .await
    .unwrap();
    let second = run_policy(
        &second_client,
        &pol,
        &RunOptions::default(),
        jiff::Timestamp::now(),
    )
    .await
    .unwrap();
    let configs_read = first_client.stats().get(Operation::GetBlob);
    assert!(
        configs_read >= 5,
        "the first run reads the configs ({configs_read})"
    );
    assert_eq!(cache.len() as u64, configs_read);
    assert_eq!(
        second_client.stats().get(Operation::GetBlob),
        0,
        "the second run reads no config"
    );
    let decisions = |r: &registry_operator::engine::RunResult| -> Vec<String> {
        r.report()
            .decisions
            .iter()
            .map(|d| {
                format!(
                    "{} {} {} {:?} {}",
                    d.repository, d.tag, d.digest, d.action, d.reason
                )
            })
            .collect()
    };
    assert_eq!(decisions(&first), decisions(&second));
    assert_eq!(second.plan.counts.deletions, 4);
    // A client without the shared cache reads them again.
    let own = client(&reg.url);
    run_policy(&own, &pol, &RunOptions::default(), jiff::Timestamp::now())
        .await
        .unwrap();
    assert_eq!(own.stats().get(Operation::GetBlob), configs_read);
}

// ------------------------------------------------------------------ the CLI binary

fn write_policy(dir: &std::path::Path, extra: &str) -> std::path::PathBuf {
    let path = dir.join("policy.yaml");
    let text = format!(
        "apiVersion: registry-operator.dev/v1alpha1\nkind: RetentionPolicy\nmetadata:\n  name: keep-two\n  namespace: team-a\nspec:\n  registryRef: {{name: local}}\n  mode: Enforce\n  repositories: {{include: [\"p/**\"]}}\n  keep:\n    - tags: {{regex: '^v2$'}}\n    - tags: {{regex: '.*'}}\n      mostRecent: 2\n  deleteReferrers: true\n{extra}"
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn cli(args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .env_remove("REGISTRY_USERNAME")
        .env_remove("REGISTRY_PASSWORD")
        .env("DOCKER_CONFIG", "/nonexistent")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_plan_names_the_same_plan_digest_on_an_unchanged_registry_and_another_after_a_push() {
    let reg = TestRegistry::start();
    let s = Seeder::new(&reg.url, None);
    seed_projects(&s).await;
    let dir = tempfile::tempdir().unwrap();
    let file = write_policy(dir.path(), "");
    let plan_digest = |output: &str| {
        let out = cli(&[
            "retention",
            "plan",
            "--registry",
            &reg.url,
            "--policy",
            file.to_str().unwrap(),
            "-o",
            output,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let json_digest = |stdout: Vec<u8>| -> String {
        let report: serde_json::Value = serde_json::from_slice(&stdout).unwrap();
        report["planDigest"].as_str().unwrap().to_string()
    };
    let first = json_digest(plan_digest("json"));
    assert!(first.starts_with("sha256:") && first.len() == 71, "{first}");
    assert_eq!(json_digest(plan_digest("json")), first);
    // the text output's summary line names it
    let table = String::from_utf8(plan_digest("table")).unwrap();
    let summary = table
        .lines()
        .find(|l| l.starts_with("policy team-a/keep-two"))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(
        summary.ends_with(&format!("; plan digest {first}")),
        "{summary}"
    );

    s.push_image("p/a", Some("v9"), "pushed later", &days_ago(0))
        .await;
    let after = json_digest(plan_digest("json"));
    assert_ne!(after, first);
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_plan_prints_the_decisions_as_json_and_deletes_nothing_even_in_enforce_mode() {
    let reg = TestRegistry::start();
    seed_projects(&Seeder::new(&reg.url, None)).await;
    let dir = tempfile::tempdir().unwrap();
    let file = write_policy(dir.path(), "");
    let out = cli(&[
        "retention",
        "plan",
        "--registry",
        &reg.url,
        "--policy",
        file.to_str().unwrap(),
        "-o",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["policy"], "team-a/keep-two");
    assert_eq!(report["summary"]["plannedDeletions"], 4);
    assert_eq!(report["requests"]["collect"]["mutating"], 0);
    assert!(String::from_utf8_lossy(&out.stderr).contains("0 mutating"));
    assert_eq!(tags(&client(&reg.url), "p/a").await.len(), 9);
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_apply_deletes_what_the_plan_showed_and_a_second_apply_deletes_nothing() {
    let reg = TestRegistry::start();
    seed_projects(&Seeder::new(&reg.url, None)).await;
    let dir = tempfile::tempdir().unwrap();
    let file = write_policy(dir.path(), "");
    let args = [
        "retention",
        "apply",
        "--registry",
        &reg.url,
        "--policy",
        file.to_str().unwrap(),
    ];
    let out = cli(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("applied: deleted 4 tags"), "{stdout}");
    assert_eq!(tags(&client(&reg.url), "p/a").await, set(P_A_AFTER));
    let out = cli(&args);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("applied: deleted 0 tags"));
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_apply_over_the_blast_radius_exits_3_names_the_limit_and_deletes_nothing() {
    let reg = TestRegistry::start();
    seed_projects(&Seeder::new(&reg.url, None)).await;
    let dir = tempfile::tempdir().unwrap();
    let file = write_policy(dir.path(), "  limits: {maxDeletionsPerRun: 2}\n");
    let out = cli(&[
        "retention",
        "apply",
        "--registry",
        &reg.url,
        "--policy",
        file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("limits.maxDeletionsPerRun"), "{stderr}");
    assert!(stderr.contains("execute 0 requests"), "{stderr}");
    assert_eq!(tags(&client(&reg.url), "p/a").await.len(), 9);
}

#[test]
fn cli_rejects_a_policy_file_with_an_unknown_field_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_policy(dir.path(), "  keepForever: true\n");
    let out = cli(&[
        "retention",
        "plan",
        "--registry",
        "http://127.0.0.1:9",
        "--policy",
        file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("keepForever"));
}

#[test]
fn cli_help_documents_the_exit_codes() {
    let out = cli(&["retention", "apply", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("3 a blast-radius limit"), "{help}");
}

#[tokio::test(flavor = "multi_thread")]
async fn purge_project_removes_the_projects_tags_except_protected_ones_and_wants_consent() {
    let reg = TestRegistry::start();
    let seeded = seed_projects(&Seeder::new(&reg.url, None)).await;
    let c = client(&reg.url);
    let base = ["purge-project", "--registry", &reg.url, "--project", "p"];
    // no --yes and no terminal: refused, nothing deleted
    let out = cli(&base);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--yes"));
    assert_eq!(tags(&c, "p").await, set(&["root"]));
    // --dry-run plans only
    let mut dry = base.to_vec();
    dry.push("--dry-run");
    let out = cli(&dry);
    assert!(out.status.success());
    assert_eq!(tags(&c, "p/a").await.len(), 9);
    // with --yes and v5 in use
    let dir = tempfile::tempdir().unwrap();
    let in_use = dir.path().join("in-use.txt");
    std::fs::write(&in_use, "# running\np/a:v5\n").unwrap();
    let mut yes = base.to_vec();
    yes.extend(["--yes", "--in-use", in_use.to_str().unwrap()]);
    let out = cli(&yes);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(tags(&c, "p").await, BTreeSet::new());
    assert_eq!(tags(&c, "p/a/b").await, BTreeSet::new());
    // v5 is in use; latest shares its image, so it cannot go without it on distribution
    assert_eq!(tags(&c, "p/a").await, set(&["latest", "v5"]));
    assert!(c
        .head_manifest("p/a", &seeded.img5.digest)
        .await
        .unwrap()
        .is_some());
    assert_eq!(tags(&c, "other/x").await, set(&["x1"]));
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_in_use_lines_as_in_a_pod_spec_protect_and_a_line_that_protects_nothing_is_exit_2() {
    let reg = TestRegistry::start();
    let seeded = seed_projects(&Seeder::new(&reg.url, None)).await;
    let dir = tempfile::tempdir().unwrap();
    let file = write_policy(dir.path(), "");
    let host = reg.url.trim_start_matches("http://");
    let in_use = dir.path().join("in-use.txt");
    let plan_with = |lines: String| {
        std::fs::write(&in_use, lines).unwrap();
        cli(&[
            "retention",
            "plan",
            "--registry",
            &reg.url,
            "--policy",
            file.to_str().unwrap(),
            "--in-use",
            in_use.to_str().unwrap(),
            "-o",
            "json",
        ])
    };
    // pinned `tag@digest`, with this registry's host: the image is protected
    let out = plan_with(format!("{host}/p/a:v1@{}\n", seeded.img1.digest));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let v1 = report["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["repository"] == "p/a" && d["tag"] == "v1")
        .unwrap();
    assert_eq!(v1["action"], "protect", "{v1}");
    assert!(
        v1["reason"].as_str().unwrap().contains("in-use.txt:1"),
        "{v1}"
    );
    // a truncated digest would protect nothing: refused, with the line named
    let short = &seeded.img1.digest[..20];
    let out = plan_with(format!("# ok\np/a:v2\np/a@{short}\n"));
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("in-use.txt:3"), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_names_each_repository_it_could_not_read_in_the_table_the_json_and_the_error() {
    let reg = TestRegistry::start();
    seed_projects(&Seeder::new(&reg.url, None)).await;
    let proxy = FaultProxy::start(&reg.url).await;
    proxy.inject(FaultRule::new(Fault::Status(503)).path_contains("/v2/p/a/b/tags/list"));
    let dir = tempfile::tempdir().unwrap();
    let file = write_policy(dir.path(), "");
    let args = |output: &'static str| {
        cli(&[
            "retention",
            "apply",
            "--registry",
            proxy.url(),
            "--policy",
            file.to_str().unwrap(),
            "-o",
            output,
        ])
    };
    let out = args("table");
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("incomplete: p/a/b: listing tags failed"),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("1 repository could not be read completely and was left untouched: p/a/b (listing tags failed"),
        "{stderr}"
    );
    // the readable repository was pruned, the unreadable one left alone
    let direct = client(&reg.url);
    assert_eq!(tags(&direct, "p/a").await, set(P_A_AFTER));
    assert_eq!(tags(&direct, "p/a/b").await, set(&["new", "old1", "old2"]));
    let out = args("json");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["incompleteRepositories"][0]["repository"], "p/a/b");
    assert!(report["incompleteRepositories"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("503"));
}

#[test]
fn cli_explains_a_registry_url_without_scheme_and_a_missing_policy_file_as_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_policy(dir.path(), "");
    for registry in ["127.0.0.1:5000", "localhost:5000"] {
        let out = cli(&[
            "retention",
            "plan",
            "--registry",
            registry,
            "--policy",
            file.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("write http://{registry} or https://{registry}")),
            "{stderr}"
        );
    }
    let out = cli(&[
        "retention",
        "plan",
        "--registry",
        "http://127.0.0.1:9",
        "--policy",
        "/nonexistent/policy.yaml",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/policy.yaml"));
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_takes_a_url_ending_in_v2_and_a_policy_file_ending_in_a_document_separator() {
    let reg = TestRegistry::start();
    seed_projects(&Seeder::new(&reg.url, None)).await;
    let dir = tempfile::tempdir().unwrap();
    // helm and kustomize end documents with `---`
    let file = write_policy(dir.path(), "---\n");
    let out = cli(&[
        "retention",
        "plan",
        "--registry",
        &format!("{}/v2/", reg.url),
        "--policy",
        file.to_str().unwrap(),
        "-o",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["summary"]["plannedDeletions"], 4);
}

/// A docker credential helper (the docker protocol: `get`, server on stdin, JSON out) that
/// knows one server.
fn write_credential_helper(dir: &std::path::Path, server: &str, user: &str, secret: &str) {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("docker-credential-testhelper");
    let script = format!(
        "#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread server\nif [ \"$server\" = \"{server}\" ]; then\n  printf '{{\"ServerURL\":\"%s\",\"Username\":\"{user}\",\"Secret\":\"{secret}\"}}' \"$server\"\nelse\n  echo 'credentials not found in native keychain'; exit 1\nfi\n"
    );
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_asks_the_docker_credential_helper_the_config_names() {
    let reg = TestRegistry::start_with_auth("robot", "s3cret");
    seed_projects(&Seeder::new(
        &reg.url,
        Some(("robot".to_string(), "s3cret".to_string())),
    ))
    .await;
    let host = reg.url.trim_start_matches("http://").to_string();
    let dir = tempfile::tempdir().unwrap();
    let file = write_policy(dir.path(), "");
    let docker = dir.path().join("docker");
    std::fs::create_dir(&docker).unwrap();
    std::fs::write(
        docker.join("config.json"),
        format!("{{\"auths\": {{\"{host}\": {{}}}}, \"credsStore\": \"testhelper\"}}"),
    )
    .unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let run = |path: &str| {
        Command::new(BIN)
            .args(["retention", "plan", "--registry", &reg.url, "--policy"])
            .arg(&file)
            .env_remove("REGISTRY_USERNAME")
            .env_remove("REGISTRY_PASSWORD")
            .env("DOCKER_CONFIG", &docker)
            .env("PATH", path)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    // the helper is not installed: a clear error, not an anonymous 401
    let out = run("/usr/bin:/bin");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("docker-credential-testhelper"), "{stderr}");
    // installed, it answers for this host and the plan goes through
    write_credential_helper(&bin, &host, "robot", "s3cret");
    let out = run(&format!("{}:/usr/bin:/bin", bin.display()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("4 would delete"));
}

#[tokio::test(flavor = "multi_thread")]
async fn purge_project_over_its_limit_names_max_deletions_and_deletes_nothing() {
    let reg = TestRegistry::start();
    seed_projects(&Seeder::new(&reg.url, None)).await;
    let out = cli(&[
        "purge-project",
        "--registry",
        &reg.url,
        "--project",
        "p",
        "--yes",
        "--max-deletions",
        "3",
    ]);
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("raise --max-deletions"), "{stderr}");
    assert_eq!(tags(&client(&reg.url), "p/a").await.len(), 9);
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_apply_json_says_how_each_deletion_ended() {
    let reg = TestRegistry::start();
    seed_projects(&Seeder::new(&reg.url, None)).await;
    let dir = tempfile::tempdir().unwrap();
    let file = write_policy(dir.path(), "");
    let out = cli(&[
        "retention",
        "apply",
        "--registry",
        &reg.url,
        "--policy",
        file.to_str().unwrap(),
        "-o",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let decision = |repo: &str, tag: &str| {
        report["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["repository"] == repo && d["tag"] == tag)
            .cloned()
            .unwrap()
    };
    assert_eq!(decision("p/a", "v1")["outcome"], "deleted");
    assert_eq!(decision("p/a/b", "old1")["outcome"], "deleted");
    assert!(decision("p/a", "v2").get("outcome").is_none());
    assert_eq!(report["execution"]["deletedTags"], 4);
}

/// A hostile registry on 127.0.0.1 whose catalog is `total` bytes of 4 KiB names, streamed
/// (close-delimited) as long as the client reads; every other path is an empty 200 (`/v2/`)
/// or 404. Returns its URL and the bytes of catalog it managed to write.
fn endless_catalog(total: usize) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let written = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let sent = written.clone();
    std::thread::spawn(move || {
        // Bounded: at most 64 connections, then the thread ends.
        for stream in listener.incoming().take(64) {
            let Ok(mut stream) = stream else { return };
            let mut line = String::new();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).map(|n| n == 0).unwrap_or(true) || h == "\r\n" {
                    break;
                }
            }
            let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
            if path.starts_with("/v2/_catalog") {
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n{\"repositories\":[",
                );
                let name = "a".repeat(4000);
                let mut n = 0usize;
                while n < total {
                    let item = format!("\"{name}{n:08}\",");
                    if stream.write_all(item.as_bytes()).is_err() {
                        break;
                    }
                    n += item.len();
                    sent.fetch_add(item.len(), std::sync::atomic::Ordering::SeqCst);
                }
                let _ = stream.write_all(b"\"z\"]}");
            } else if path == "/v2/" {
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
                );
            } else {
                let _ = stream.write_all(
                    b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
            }
        }
    });
    (url, written)
}

/// The peak resident memory (`VmHWM`, bytes) of a running process, if it still runs.
fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[test]
fn a_100_mib_catalog_ends_with_a_clear_error_under_the_memory_limit_and_decides_nothing() {
    const CATALOG: usize = 100 * 1024 * 1024;
    let (url, written) = endless_catalog(CATALOG);
    let dir = tempfile::tempdir().unwrap();
    let file = write_policy(dir.path(), "");
    let mut child = Command::new(BIN)
        .args(["retention", "plan", "--registry", &url, "--policy"])
        .arg(&file)
        .env_remove("REGISTRY_USERNAME")
        .env_remove("REGISTRY_PASSWORD")
        .env("DOCKER_CONFIG", "/nonexistent")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Sample the peak while it runs (bounded: 120 s).
    let mut peak = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
        if let Some(p) = peak_rss(child.id()) {
            peak = peak.max(p);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("the catalog holds more than 67108864 bytes of names"),
        "{stderr}"
    );
    assert!(
        out.stdout.is_empty(),
        "no plan is printed from a partial catalog"
    );
    // The client stopped reading near its 64 MiB budget, far below the chart's 256 MiB
    // memory limit, and long before the catalog's end.
    assert!(peak < 200 * 1024 * 1024, "peak RSS {} MiB", peak >> 20);
    let sent = written.load(std::sync::atomic::Ordering::SeqCst);
    assert!(sent < CATALOG, "the whole catalog was read ({sent} bytes)");
    eprintln!(
        "catalog budget: peak RSS {} MiB, {} MiB of the 100 MiB catalog written",
        peak >> 20,
        sent >> 20
    );
}
