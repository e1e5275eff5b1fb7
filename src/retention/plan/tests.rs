use super::*;

use crate::api::retention::RetentionRules;
use jiff::SignedDuration;

use crate::retention::inventory::{RepositoryBuilder, Tag, Time};

/// `count` repositories `team-{r % teams}/svc-{r}` of `tags` tags `ci-{t}` each, pushed 30 h
/// apart, `per_image` tags to an image; every `incomplete_every`th repository incomplete.
fn repositories(
    now: Timestamp,
    count: u64,
    teams: u64,
    tags: u64,
    per_image: u64,
    incomplete_every: u64,
) -> Vec<Repository> {
    let mut repositories = Vec::new();
    for r in 0..count {
        let mut b = RepositoryBuilder::new(&format!("team-{}/svc-{r}", r % teams));
        for t in 0..tags {
            let digest = format!("sha256:{:064x}", r * 1_000 + t / per_image);
            let pushed = now.checked_sub(SignedDuration::from_hours(t as i64 * 30));
            b.tag(&format!("ci-{t}"), &digest).pushed = pushed.ok().map(Time::from);
        }
        if r % incomplete_every == 0 {
            b.incomplete("listing failed");
        }
        repositories.push(b.build());
    }
    repositories
}

/// An inventory of a registry that deletes only by digest and keeps no pull statistics.
fn inventory(repositories: Vec<Repository>) -> Inventory {
    Inventory {
        capabilities: Capabilities {
            delete_by_tag: false,
            pull_stats: false,
        },
        repositories,
    }
}

#[test]
fn planning_on_several_threads_gives_the_same_plan_as_on_one() {
    let now: Timestamp = "2026-11-01T00:00:00Z".parse().unwrap();
    let inventory = inventory(repositories(now, 1_200, 7, 100, 2, 50));
    let rules: RetentionRules = serde_yaml::from_str(
        "mode: Enforce\nrepositories: {include: ['**']}\nkeep: [{mostRecent: 5}, {pulledWithin: 1h, tags: {regex: 'ci-1'}}]",
    )
    .unwrap();
    let policy = Policy::compile("p", &rules).unwrap();
    let mut protections = Protections::default();
    protections
        .in_use
        .add_tag("team-3/svc-10", "ci-40", "Pod a/b");
    let one = plan_with_threads(&policy, &[], &inventory, &protections, now, 1);
    let four = plan_with_threads(&policy, &[], &inventory, &protections, now, 4);
    assert_eq!(one.counts.tags, 120_000);
    assert!(one.counts.deletions > 0 && !one.notes.is_empty());
    assert_eq!(one, four);
}

#[test]
fn planning_repository_by_repository_gives_the_same_plan_as_planning_the_registry() {
    let now: Timestamp = "2026-11-01T00:00:00Z".parse().unwrap();
    let mut repositories = repositories(now, 60, 3, 40, 3, 17);
    // In name order, as a run reads them (the catalog's order).
    repositories.sort_by(|a, b| a.name.cmp(&b.name));
    let inventory = inventory(repositories);
    let rules: RetentionRules = serde_yaml::from_str(
        "mode: Enforce\nrepositories: {include: ['team-1/**', 'team-2/**']}\nkeep: [{mostRecent: 5}, {pulledWithin: 1h, tags: {regex: 'ci-1.*'}}]",
    )
    .unwrap();
    let policy = Policy::compile("p", &rules).unwrap();
    let other: RetentionRules = serde_yaml::from_str(
        "mode: Plan\nrepositories: {include: ['**']}\nkeep: [{tags: {regex: 'ci-3.'}}]",
    )
    .unwrap();
    let others = vec![Policy::compile("o", &other).unwrap()];
    let mut protections = Protections::default();
    protections
        .in_use
        .add_tag("team-1/svc-4", "ci-30", "Pod a/b");
    let whole = plan(&policy, &others, &inventory, &protections, now);

    let mut planner = RepositoryPlanner::new(&policy, &others, inventory.capabilities, now);
    let kept: Vec<RepositoryPlan> = inventory
        .repositories
        .iter()
        .filter_map(|r| planner.plan_repository(r, &protections.in_use))
        .collect();
    let streamed = planner.finish(kept);
    assert!(whole.counts.deletions > 0 && whole.counts.errors > 0);
    assert!(!whole.notes.is_empty() && whole.out_of_scope_repositories == 20);
    assert_eq!(streamed, whole);
}

#[test]
fn a_decision_and_a_tag_decision_stay_small_for_a_million_tags() {
    assert!(std::mem::size_of::<Decision>() <= 32);
    assert!(std::mem::size_of::<TagDecision>() <= 64);
    assert!(std::mem::size_of::<Mutation>() <= 56);
    assert!(std::mem::size_of::<Tag>() <= 56);
}
