//! A run repository by repository against a real CNCF distribution registry: what it writes as
//! it goes is the report a run holding the whole registry makes, its totals are exact when a
//! limit blocks it, and what it holds is only what it may delete.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use registry_operator::api::retention::{PolicyMode, RetentionRules};
use registry_operator::engine::{run_policy, run_policy_streamed, Hold, RunOptions, RunResult};
use registry_operator::oci::{ClientOptions, Credentials, RegistryClient, RetryPolicy};
use registry_operator::retention::{
    Action, JsonWriter, LimitBreach, PlanDigest, Policy, RepositoryPlan, TableWriter, Totals,
};
use support::proxy::{Fault, FaultProxy, FaultRule};
use support::registry::TestRegistry;
use support::seed::Seeder;

fn client(url: &str) -> RegistryClient {
    let options = ClientOptions {
        retry: RetryPolicy {
            max_retries: 1,
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(10),
            max_retry_after: Duration::from_secs(1),
        },
        ..ClientOptions::default()
    };
    RegistryClient::new(url, Credentials::Anonymous, options).unwrap()
}

fn days_ago(days: i64) -> String {
    (jiff::Timestamp::now() - jiff::SignedDuration::from_hours(24 * days)).to_string()
}

fn policy(mode: PolicyMode, extra: &str) -> Policy {
    let yaml = format!(
        "mode: Plan\nrepositories: {{include: ['s/**']}}\nkeep:\n  - tags: {{regex: '.*'}}\n    mostRecent: 2\ndeleteReferrers: true\n{extra}"
    );
    let mut rules: RetentionRules = serde_yaml::from_str(&yaml).unwrap();
    rules.mode = mode;
    Policy::compile("team-s/keep-two", &rules).unwrap()
}

/// Seeds `s/r0` … `s/r5` (five images each, one of them tagged twice, the oldest signed
/// through the tag schema), `s/r3` with a two-platform index, and `t/x` outside the scope.
async fn seed(url: &str) {
    let s = Seeder::new(url, None);
    for r in 0..6 {
        let repo = format!("s/r{r}");
        let mut oldest = None;
        for t in 0..5 {
            let img = s
                .push_image(
                    &repo,
                    Some(&format!("v{t}")),
                    &format!("{r}-{t}"),
                    &days_ago(20 - t),
                )
                .await;
            if t == 1 {
                s.tag(&repo, "v1-alias", &img).await;
            }
            oldest.get_or_insert(img);
        }
        if let Some(img) = &oldest {
            let sig = s
                .push_referrer(&repo, img, "application/vnd.dev.cosign.signature", "sig")
                .await;
            s.push_referrers_tag(
                &repo,
                img,
                &[(&sig, "application/vnd.dev.cosign.signature")],
            )
            .await;
        }
    }
    s.push_index("s/r3", "multi", "m", &days_ago(30)).await;
    s.push_image("t/x", Some("x1"), "x1", &days_ago(30)).await;
}

/// The tags of every seeded repository.
async fn all_tags(c: &RegistryClient) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for r in 0..6 {
        let repo = format!("s/r{r}");
        for t in c.tags(&repo).await.unwrap() {
            out.insert(format!("{repo}:{t}"));
        }
    }
    out
}

/// Runs `policy` repository by repository, holding only what it may delete, and writes the
/// JSON document and the table of every tag as the repositories come.
async fn streamed(
    c: &RegistryClient,
    policy: &Policy,
    options: &RunOptions,
    now: jiff::Timestamp,
) -> (RunResult, serde_json::Value, String, Vec<String>) {
    let options = RunOptions {
        hold: Hold::Deletions,
        ..options.clone()
    };
    let mut json = JsonWriter::new(Vec::new(), policy.name(), policy.mode(), now).unwrap();
    let mut table = TableWriter::new(Vec::new(), policy.mode(), true);
    let mut order = Vec::new();
    let mut digest = PlanDigest::new();
    let result = run_policy_streamed(c, policy, &options, now, &mut |r: &RepositoryPlan| {
        order.push(r.name.to_string());
        digest.add(r);
        json.repository(r).unwrap();
        table.repository(r).unwrap();
    })
    .await
    .unwrap();
    let totals = Totals::of(&result.plan, result.incomplete.clone(), digest.finish());
    let json = json.finish(&totals, &[]).unwrap();
    let table = table.finish(&result.plan.policy, &totals).unwrap();
    (
        result,
        serde_json::from_slice(&json).unwrap(),
        String::from_utf8(table).unwrap(),
        order,
    )
}

/// A table's lines with their padding collapsed (a streamed table's columns are as wide as
/// what came so far, a collected one's as the widest of all).
fn cells(table: &str) -> Vec<String> {
    table
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_streamed_json_and_table_say_what_the_report_of_the_whole_registry_says() {
    let reg = TestRegistry::start();
    seed(&reg.url).await;
    // One repository cannot be listed: it is reported incomplete, in its place.
    let proxy = FaultProxy::start(&reg.url).await;
    proxy.inject(FaultRule::new(Fault::Status(500)).path_contains("/v2/s/r4/tags/list"));
    let c = client(proxy.url());
    let pol = policy(PolicyMode::Plan, "");
    let now = jiff::Timestamp::now();

    let whole = run_policy(&c, &pol, &RunOptions::default(), now)
        .await
        .unwrap();
    let (result, document, table, order) = streamed(&c, &pol, &RunOptions::default(), now).await;

    let report = whole.report();
    let expected = serde_json::to_value(&report).unwrap();
    assert_eq!(document, expected);
    assert!(report.summary.planned_deletions >= 10 && report.summary.errors == 1);
    // Decisions first, in name order, the totals after.
    let keys: Vec<&str> = document
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "policy",
            "mode",
            "now",
            "decisions",
            "summary",
            "planDigest",
            "incompleteRepositories"
        ]
    );
    // the stream, which forgot every repository, names the digest of the whole plan
    assert_eq!(document["planDigest"], whole.plan.digest());
    assert_eq!(result.plan_digest, whole.plan_digest);
    assert_eq!(whole.plan_digest, whole.plan.digest());
    assert_eq!(order, ["s/r0", "s/r1", "s/r2", "s/r3", "s/r4", "s/r5"]);
    assert_eq!(cells(&table), cells(&report.render_table(true)));
    // A Plan-mode run holds nothing but its totals and candidates.
    assert!(result.inventory.repositories.is_empty() && result.plan.repositories.is_empty());
    assert_eq!(result.plan.counts, whole.plan.counts);
    assert_eq!(result.summary().message, whole.summary().message);
    assert_eq!(result.candidates(None), whole.candidates(None));
    assert_eq!(result.incomplete_line(3), whole.incomplete_line(3));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_past_the_deletion_limit_is_blocked_with_the_exact_totals_and_holds_nothing() {
    let reg = TestRegistry::start();
    seed(&reg.url).await;
    let c = client(&reg.url);
    let before = all_tags(&c).await;
    let now = jiff::Timestamp::now();
    let planned = run_policy(
        &c,
        &policy(PolicyMode::Plan, ""),
        &RunOptions::default(),
        now,
    )
    .await
    .unwrap();
    let deletions = planned.plan.counts.deletions;
    assert!(deletions > 4, "{deletions}");

    let pol = policy(PolicyMode::Enforce, "limits: {maxDeletionsPerRun: 4}\n");
    let (result, document, table, _) = streamed(&c, &pol, &RunOptions::default(), now).await;

    assert_eq!(
        result.blocked,
        Some(LimitBreach::MaxDeletionsPerRun {
            planned: deletions,
            limit: 4
        })
    );
    assert_eq!(result.plan.counts, planned.plan.counts);
    assert!(result.inventory.repositories.is_empty() && result.plan.repositories.is_empty());
    assert!(result.execution.is_none());
    assert_eq!(result.execute_requests.mutating, 0);
    assert_eq!(
        result.summary().message.unwrap(),
        format!(
            "nothing deleted: the plan deletes {deletions} tags, more than limits.maxDeletionsPerRun (4)"
        )
    );
    assert_eq!(document["summary"]["plannedDeletions"], deletions);
    assert!(
        document["blastRadiusExceeded"]
            .as_str()
            .unwrap()
            .contains(&format!("deletes {deletions} tags")),
        "{document}"
    );
    assert!(table.contains("nothing will be deleted"), "{table}");
    assert_eq!(all_tags(&c).await, before);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_enforce_run_holds_only_the_repositories_it_deletes_in_and_deletes_what_the_plan_said() {
    let reg = TestRegistry::start();
    seed(&reg.url).await;
    // `s/r2` keeps everything: another policy's keep entry vetoes its deletions.
    let others = vec![Policy::compile(
        "team-s/hold-r2",
        &serde_yaml::from_str::<RetentionRules>(
            "mode: Plan\nrepositories: {include: ['s/r2']}\nkeep: [{tags: {regex: '.*'}}]",
        )
        .unwrap(),
    )
    .unwrap()];
    let options = RunOptions {
        others,
        ..RunOptions::default()
    };
    let c = client(&reg.url);
    let now = jiff::Timestamp::now();
    let shown = run_policy(&c, &policy(PolicyMode::Plan, ""), &options, now)
        .await
        .unwrap()
        .report();
    let survivors: BTreeSet<String> = shown
        .decisions
        .iter()
        .filter(|d| d.action != Action::Delete)
        .map(|d| format!("{}:{}", d.repository, d.tag))
        .collect();

    let (result, _, _, _) = streamed(&c, &policy(PolicyMode::Enforce, ""), &options, now).await;

    let held: Vec<&str> = result
        .inventory
        .repositories
        .iter()
        .map(|r| &*r.name)
        .collect();
    assert_eq!(held, ["s/r0", "s/r1", "s/r3", "s/r4", "s/r5"]);
    let exec = result.execution.as_ref().expect("executed");
    assert_eq!(exec.counts.errors, 0, "{:?}", exec.items);
    assert_eq!(exec.counts.deleted_tags, shown.summary.planned_deletions);
    assert_eq!(all_tags(&c).await, survivors);
}
