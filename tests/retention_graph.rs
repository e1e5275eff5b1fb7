//! Deletion safety over the whole manifest graph, end to end on a real CNCF distribution
//! registry: untagged indexes inside kept indexes, images a Pod runs by the digest of an
//! untagged index, one referrer of several subjects, and tags moved during a run.

mod support;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use registry_operator::api::retention::{PolicyMode, RetentionRules};
use registry_operator::engine::{
    collect_inventory, execute, run_policy, CollectOptions, ExecuteOptions, InUseSource,
    ItemResult, RunOptions, RunResult,
};
use registry_operator::oci::{ClientOptions, Credentials, RegistryClient, RetryPolicy};
use registry_operator::retention::{plan, InUse, Policy, Protections};
use support::proxy::{Fault, FaultProxy, FaultRule};
use support::registry::TestRegistry;
use support::seed::{sha256, Pushed, Seeder, OCI_EMPTY, OCI_INDEX, OCI_MANIFEST};

fn client(url: &str) -> RegistryClient {
    let options = ClientOptions {
        retry: RetryPolicy {
            max_retries: 2,
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(20),
            max_retry_after: Duration::from_secs(1),
        },
        ..ClientOptions::default()
    };
    RegistryClient::new(url, Credentials::Anonymous, options).unwrap()
}

fn days_ago(days: i64) -> String {
    (jiff::Timestamp::now() - jiff::SignedDuration::from_hours(24 * days)).to_string()
}

fn enforce(rules_yaml: &str) -> Policy {
    let rules: RetentionRules =
        serde_yaml::from_str(&format!("mode: Enforce\n{rules_yaml}")).unwrap();
    assert_eq!(rules.mode, PolicyMode::Enforce);
    Policy::compile("ns/graph", &rules).unwrap()
}

async fn tags(c: &RegistryClient, repo: &str) -> BTreeSet<String> {
    c.tags(repo).await.unwrap().into_iter().collect()
}

async fn exists(c: &RegistryClient, repo: &str, digest: &str) -> bool {
    c.head_manifest(repo, digest).await.unwrap().is_some()
}

/// Pushes an index listing `children` (images or indexes) by digest, and under `tag` if given.
async fn push_index_of(
    s: &Seeder,
    repo: &str,
    tag: Option<&str>,
    children: &[&Pushed],
    created: &str,
) -> Pushed {
    let manifests: Vec<_> = children
        .iter()
        .map(|c| serde_json::json!({"mediaType": c.media_type, "digest": c.digest, "size": c.size()}))
        .collect();
    let bytes = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests,
        "annotations": {"org.opencontainers.image.created": created},
    }))
    .unwrap();
    let digest = sha256(&bytes);
    s.put_manifest(repo, &digest, &bytes, OCI_INDEX).await;
    let pushed = Pushed {
        digest,
        media_type: OCI_INDEX,
        bytes,
        config_digest: None,
        children: children.iter().map(|c| (*c).clone()).collect(),
    };
    if let Some(t) = tag {
        s.tag(repo, t, &pushed).await;
    }
    pushed
}

/// The reason the run gave for `repo:tag`.
fn reason(result: &RunResult, repo: &str, tag: &str) -> String {
    result
        .report()
        .decisions
        .iter()
        .find(|d| d.repository == repo && d.tag == tag)
        .map(|d| format!("{:?}: {}", d.action, d.reason))
        .unwrap_or_else(|| panic!("no decision for {repo}:{tag}"))
}

/// Case 1: `stable` → index I1 → untagged index I2 → platform image M, and M carries an old
/// tag of its own. Keeping `stable` keeps everything it reaches.
#[tokio::test]
async fn a_kept_index_keeps_an_image_it_reaches_through_an_untagged_index_whatever_its_own_tag_says(
) {
    let reg = TestRegistry::start();
    let s = Seeder::new(&reg.url, None);
    let repo = "g/nested";
    let amd = s
        .push_image_with(repo, Some("old-amd64"), "m", &days_ago(20), "amd64", None)
        .await;
    let arm = s
        .push_image_with(repo, None, "m", &days_ago(20), "arm64", None)
        .await;
    let inner = push_index_of(&s, repo, None, &[&amd, &arm], &days_ago(20)).await;
    let outer = push_index_of(&s, repo, Some("stable"), &[&inner], &days_ago(20)).await;
    let c = client(&reg.url);
    let pol = enforce("repositories: {include: ['g/**']}\nkeep:\n  - tags: {regex: 'stable'}\n");

    let result = run_policy(&c, &pol, &RunOptions::default(), jiff::Timestamp::now())
        .await
        .unwrap();

    let exec = result.execution.as_ref().expect("executed");
    assert_eq!(exec.counts.errors, 0, "{:?}", exec.items);
    for d in [&outer.digest, &inner.digest, &amd.digest, &arm.digest] {
        assert!(exists(&c, repo, d).await, "{d} was deleted");
    }
    assert_eq!(
        tags(&c, repo).await,
        ["old-amd64", "stable"].map(String::from).into()
    );
    let why = reason(&result, repo, "old-amd64");
    assert!(
        why.starts_with("Protect") && why.contains(&inner.digest[..19]),
        "{why}"
    );
}

/// Case 2: `latest` was re-pushed, so the index a Deployment still runs by digest is
/// untagged; its platform images carry old tags of their own.
#[tokio::test]
async fn images_of_an_untagged_index_a_pod_runs_by_digest_are_not_deleted_for_their_old_tags() {
    let reg = TestRegistry::start();
    let s = Seeder::new(&reg.url, None);
    let repo = "g/pinned";
    let amd = s
        .push_image_with(
            repo,
            Some("ci-1-amd64"),
            "ci-1",
            &days_ago(20),
            "amd64",
            None,
        )
        .await;
    let arm = s
        .push_image_with(
            repo,
            Some("ci-1-arm64"),
            "ci-1",
            &days_ago(20),
            "arm64",
            None,
        )
        .await;
    let running = push_index_of(&s, repo, Some("latest"), &[&amd, &arm], &days_ago(20)).await;
    // `latest` moves on; the running index is now untagged
    s.push_index(repo, "latest", "ci-2", &days_ago(1)).await;
    let c = client(&reg.url);
    let pol = enforce("repositories: {include: ['g/**']}\nkeep:\n  - tags: {regex: 'latest'}\n");
    let mut in_use = InUse::new();
    in_use.add_digest(repo, &running.digest, "Deployment team-a/web");
    let options = RunOptions {
        protections: Protections { in_use },
        ..RunOptions::default()
    };

    let result = run_policy(&c, &pol, &options, jiff::Timestamp::now())
        .await
        .unwrap();

    let exec = result.execution.as_ref().expect("executed");
    assert_eq!(exec.counts.errors, 0, "{:?}", exec.items);
    for d in [&running.digest, &amd.digest, &arm.digest] {
        assert!(exists(&c, repo, d).await, "{d} was deleted");
    }
    for tag in ["ci-1-amd64", "ci-1-arm64"] {
        let why = reason(&result, repo, tag);
        assert!(
            why.starts_with("Protect") && why.contains("Deployment team-a/web"),
            "{why}"
        );
    }
}

/// An SBOM without a `subject` field, as cosign writes it: found only by its tags.
async fn push_plain_sbom(s: &Seeder, repo: &str) -> Pushed {
    let empty = s.push_blob(repo, b"{}").await;
    let payload = b"spdx of a and b".to_vec();
    let layer = s.push_blob(repo, &payload).await;
    let bytes = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/spdx+json",
        "config": {"mediaType": OCI_EMPTY, "digest": empty, "size": 2},
        "layers": [{"mediaType": "application/spdx+json", "digest": layer, "size": payload.len()}],
    }))
    .unwrap();
    let digest = sha256(&bytes);
    s.put_manifest(repo, &digest, &bytes, OCI_MANIFEST).await;
    Pushed {
        digest,
        media_type: OCI_MANIFEST,
        bytes,
        config_digest: Some(empty),
        children: Vec::new(),
    }
}

fn cosign_tag(subject: &Pushed, suffix: &str) -> String {
    format!("{}.{suffix}", subject.digest.replacen(':', "-", 1))
}

/// Case 3: one SBOM tagged as the referrer of A and of B (cosign's tag schema). A goes, B is
/// kept: B keeps its SBOM.
#[tokio::test]
async fn a_referrer_of_two_subjects_stays_while_one_of_them_stays() {
    let reg = TestRegistry::start();
    let s = Seeder::new(&reg.url, None);
    let repo = "g/sbom";
    let x = s.push_image(repo, None, "x", &days_ago(20)).await;
    let y = s.push_image(repo, None, "y", &days_ago(20)).await;
    // The subject that goes has the smaller digest: the planner once took the smaller of a
    // referrer's subjects as its only one.
    let (a, b) = if x.digest < y.digest { (x, y) } else { (y, x) };
    s.tag(repo, "a", &a).await;
    s.tag(repo, "b", &b).await;
    let sbom = push_plain_sbom(&s, repo).await;
    s.tag(repo, &cosign_tag(&a, "sbom"), &sbom).await;
    s.tag(repo, &cosign_tag(&b, "sbom"), &sbom).await;
    let c = client(&reg.url);
    let pol = enforce(
        "repositories: {include: ['g/**']}\nkeep:\n  - tags: {regex: 'b'}\ndeleteReferrers: true\n",
    );

    let result = run_policy(&c, &pol, &RunOptions::default(), jiff::Timestamp::now())
        .await
        .unwrap();

    let exec = result.execution.as_ref().expect("executed");
    assert_eq!(exec.counts.errors, 0, "{:?}", exec.items);
    assert!(!exists(&c, repo, &a.digest).await, "a should go");
    assert!(exists(&c, repo, &b.digest).await);
    assert!(exists(&c, repo, &sbom.digest).await, "b lost its SBOM");
    assert!(tags(&c, repo).await.contains(&cosign_tag(&b, "sbom")));
    let why = reason(&result, repo, &cosign_tag(&a, "sbom"));
    assert!(
        why.starts_with("Protect") && why.contains(&b.digest[..19]),
        "{why}"
    );
}

/// Case 6: a DELETE answered 429 is tried again after the wait, and the tag is re-resolved
/// first: a tag re-pushed during the wait is left alone, and so is the image it left.
#[tokio::test]
async fn a_delete_answered_429_is_retried_only_after_re_resolving_the_tag() {
    let reg = TestRegistry::start();
    let s = Seeder::new(&reg.url, None);
    let repo = "g/retry";
    let doomed = s.push_image(repo, Some("old"), "old", &days_ago(20)).await;
    s.push_image(repo, Some("new"), "new", &days_ago(1)).await;
    let proxy = FaultProxy::start(&reg.url).await;
    proxy.inject(
        FaultRule::new(Fault::RetryAfter {
            status: 429,
            seconds: 1,
        })
        .method("DELETE")
        .times(1),
    );
    let c = client(proxy.url());
    let pol = enforce("repositories: {include: ['g/**']}\nkeep:\n  - tags: {regex: 'new'}\n");
    // While the engine waits out the Retry-After, someone pushes a new image as `old`.
    let repush = {
        let s = s.clone();
        let counts = proxy.counter();
        tokio::spawn(async move {
            for _ in 0..500 {
                if counts("DELETE") >= 1 {
                    return Some(
                        s.push_image(repo, Some("old"), "old-again", &days_ago(0))
                            .await,
                    );
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            None
        })
    };

    let result = run_policy(&c, &pol, &RunOptions::default(), jiff::Timestamp::now())
        .await
        .unwrap();
    let fresh = repush.await.unwrap().expect("the DELETE was sent");

    let exec = result.execution.as_ref().expect("executed");
    assert!(
        matches!(&exec.items[0].result, ItemResult::Changed { tag, now } if tag == "old" && *now == fresh.digest),
        "{:?}",
        exec.items
    );
    assert_eq!(proxy.count("DELETE"), 1, "no blind second DELETE");
    assert!(
        exists(&c, repo, &doomed.digest).await,
        "the retry deleted the old image"
    );
    let old = c.head_manifest(repo, "old").await.unwrap().unwrap();
    assert_eq!(old.digest, fresh.digest);
}

/// Case 7 on distribution: a listed tag the plan keeps (`prod`) is moved onto an image the
/// plan deletes, after the listing — a rollback. Deleting that digest would take `prod`.
#[tokio::test]
async fn a_kept_tag_moved_onto_a_doomed_image_during_the_run_keeps_the_image() {
    let reg = TestRegistry::start();
    let s = Seeder::new(&reg.url, None);
    let repo = "g/rollback";
    let doomed = s.push_image(repo, Some("v1"), "v1", &days_ago(20)).await;
    s.push_image(repo, Some("v2"), "v2", &days_ago(10)).await;
    let current = s.push_image(repo, Some("prod"), "v3", &days_ago(1)).await;
    let proxy = FaultProxy::start(&reg.url).await;
    let c = client(proxy.url());
    let pol = enforce("repositories: {include: ['g/**']}\nkeep:\n  - tags: {regex: 'prod'}\n");
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
    assert_eq!(planned.counts.deletions, 2, "v1 and v2");
    // the rollback: prod goes back to v1's image
    s.tag(repo, "prod", &doomed).await;
    proxy.reset_counts();

    let exec = execute(&c, &planned, &inventory, &ExecuteOptions::default())
        .await
        .unwrap();
    let (listings, heads) = (proxy.count_path("GET", "/tags/list"), proxy.count("HEAD"));

    assert!(
        exec.items
            .iter()
            .any(|i| matches!(&i.result, ItemResult::Tagged { tag } if tag == "prod")),
        "{:?}",
        exec.items
    );
    assert_eq!(exec.counts.deleted_manifests, 1, "v2 still goes");
    assert!(exists(&c, repo, &doomed.digest).await);
    assert!(exists(&c, repo, &current.digest).await);
    assert_eq!(
        c.head_manifest(repo, "prod").await.unwrap().unwrap().digest,
        doomed.digest
    );
    // The cost: one tags listing, one HEAD of the kept tag, then one re-check per deletion
    // still carried out (v2's).
    assert_eq!(listings, 1);
    assert_eq!(heads, 1 + 1);
}

/// A Pod started after the plan, on an untagged index the plan never read: before the
/// repository's deletions the executor reads the index and keeps what it lists.
#[tokio::test]
async fn a_pod_started_after_the_plan_on_an_untagged_index_keeps_the_images_it_lists() {
    let reg = TestRegistry::start();
    let s = Seeder::new(&reg.url, None);
    let repo = "g/late";
    let amd = s
        .push_image_with(
            repo,
            Some("ci-1-amd64"),
            "ci-1",
            &days_ago(20),
            "amd64",
            None,
        )
        .await;
    let arm = s
        .push_image_with(
            repo,
            Some("ci-1-arm64"),
            "ci-1",
            &days_ago(20),
            "arm64",
            None,
        )
        .await;
    let running = push_index_of(&s, repo, None, &[&amd, &arm], &days_ago(20)).await;
    s.push_image(repo, Some("latest"), "ci-2", &days_ago(1))
        .await;
    let c = client(&reg.url);
    let pol = enforce("repositories: {include: ['g/**']}\nkeep:\n  - tags: {regex: 'latest'}\n");
    // Nothing runs it when the plan is made; by the deletions, a Pod does.
    let calls = Arc::new(AtomicUsize::new(0));
    let source: InUseSource = {
        let calls = calls.clone();
        let digest = running.digest.clone();
        Arc::new(move |_: &dyn Fn(&str) -> bool| {
            let mut in_use = InUse::new();
            if calls.fetch_add(1, Ordering::SeqCst) > 0 {
                in_use.add_digest(repo, &digest, "Pod team-a/late-1");
            }
            Ok(in_use)
        })
    };
    let options = RunOptions {
        in_use_source: Some(source),
        ..RunOptions::default()
    };

    let result = run_policy(&c, &pol, &options, jiff::Timestamp::now())
        .await
        .unwrap();

    assert_eq!(
        result.plan.counts.deletions, 2,
        "the plan deletes both old tags"
    );
    let exec = result.execution.as_ref().expect("executed");
    assert_eq!(exec.counts.in_use, 2, "{:?}", exec.items);
    for d in [&running.digest, &amd.digest, &arm.digest] {
        assert!(exists(&c, repo, d).await, "{d} was deleted");
    }
    assert!(calls.load(Ordering::SeqCst) >= 2);
}

/// An index that lists an index deleted since (distribution does not stop that) is read as
/// far as it goes: what is gone needs nothing, and the repository is still pruned.
#[tokio::test]
async fn an_index_listing_a_nested_index_that_is_gone_does_not_hold_the_repository_back() {
    let reg = TestRegistry::start();
    let s = Seeder::new(&reg.url, None);
    let repo = "g/dangling";
    let amd = s
        .push_image_with(repo, None, "m", &days_ago(20), "amd64", None)
        .await;
    let inner = push_index_of(&s, repo, None, &[&amd], &days_ago(20)).await;
    push_index_of(&s, repo, Some("stable"), &[&inner], &days_ago(20)).await;
    let old = s.push_image(repo, Some("old"), "old", &days_ago(20)).await;
    let c = client(&reg.url);
    c.delete_manifest(repo, &inner.digest).await.unwrap();
    let pol = enforce("repositories: {include: ['g/**']}\nkeep:\n  - tags: {regex: 'stable'}\n");

    let result = run_policy(&c, &pol, &RunOptions::default(), jiff::Timestamp::now())
        .await
        .unwrap();

    assert!(
        result.incomplete_line(3).is_none(),
        "{:?}",
        result.incomplete_line(3)
    );
    assert!(!exists(&c, repo, &old.digest).await, "old should go");
    assert_eq!(tags(&c, repo).await, ["stable"].map(String::from).into());
}
