//! One repository's plan: its tags' decisions, then what carries them out.

use std::sync::Arc;

use super::ages::{age_of, ceil_secs, tag_ages, Ages};
use super::keeps::{evaluate_keeps, Keeps};
use super::manifests::{
    cascade_referrers, digest_of, manifest_fates, plan_manifest_deletions, settle_tags,
    still_needed,
};
use super::{Ctx, Mutation, RepoOut, RepositoryPlan, TagDecision};
use crate::retention::decision::{Decision, DeleteReason, KeepReason, ProtectReason, Seconds};
use crate::retention::graph::{digest_users, DigestUsers, Graph};
use crate::retention::inventory::{ManifestId, Repository};

/// Ids out of range make the inventory unusable for this repository: fail closed.
pub(super) fn consistency(repo: &Repository) -> Result<(), &'static str> {
    let m = repo.manifests.len();
    let ok = |id: ManifestId| id.index() < m;
    let tags_ok = repo
        .tags
        .iter()
        .all(|t| ok(t.manifest) && t.subject.is_none_or(ok));
    let manifests_ok = repo
        .manifests
        .iter()
        .all(|x| x.children.iter().all(|c| ok(*c)) && x.subject.is_none_or(ok));
    if tags_ok && manifests_ok {
        Ok(())
    } else {
        Err("the inventory refers to manifests it does not list")
    }
}

pub(super) fn incomplete(group: &[&Repository], reason: Arc<str>) -> RepositoryPlan {
    let mut tags: Vec<TagDecision> = group
        .iter()
        .flat_map(|repo| {
            let reason = reason.clone();
            repo.tags.iter().map(move |t| TagDecision {
                tag: t.name.clone(),
                digest: digest_of(repo, t.manifest),
                decision: Decision::Protect(ProtectReason::IncompleteRepository {
                    reason: reason.clone(),
                }),
            })
        })
        .collect();
    tags.sort_by(|a, b| a.tag.cmp(&b.tag).then_with(|| a.digest.cmp(&b.digest)));
    RepositoryPlan {
        name: group
            .first()
            .map_or_else(|| Arc::from(""), |r| r.name.clone()),
        incomplete: Some(reason),
        tags,
        mutations: Vec::new(),
    }
}

/// Plans one complete, consistent repository. Fails (and the repository is then treated as
/// incomplete) when a tag name is listed twice.
pub(super) fn plan_repository(
    ctx: &Ctx<'_>,
    repo: &Repository,
    out: &mut RepoOut,
    unsupported: &mut [u64],
) -> Result<RepositoryPlan, &'static str> {
    let policy = ctx.policy;
    let min_age = ceil_secs(policy.min_age);
    let ages = tag_ages(repo, ctx.now_secs);
    let keeps = policy.deletes_anything().then(|| {
        evaluate_keeps(
            policy,
            repo,
            &ages,
            ctx.caps,
            ctx.now_secs,
            Some(unsupported),
        )
    });
    let graph = Graph::new(repo);
    let run_by_digest = match ctx.in_use.digests.get(&*repo.name) {
        Some(users) if policy.in_use => digest_users(repo, &graph, users),
        _ => DigestUsers::default(),
    };
    let mut decisions =
        decide_chosen_tags(ctx, repo, keeps.as_ref(), &ages, min_age, &run_by_digest);
    // Scratch goes as soon as it has served: the largest repository bounds a run's memory.
    drop(keeps);
    let mut fates = manifest_fates(repo, &decisions);
    let delete_referrers = policy.delete_referrers || policy.purge;
    if delete_referrers {
        cascade_referrers(
            repo,
            &ages,
            min_age,
            ctx.now_secs,
            &run_by_digest,
            &mut fates,
        );
    }
    let vetoed = still_needed(repo, &graph, &decisions, &mut fates, &run_by_digest);
    settle_tags(
        ctx,
        repo,
        &ages,
        min_age,
        delete_referrers,
        &fates,
        &vetoed,
        &mut decisions,
        out,
    );
    drop((vetoed, graph, run_by_digest, ages));
    plan_manifest_deletions(ctx, repo, &fates, out);
    drop(fates);
    finish_repository(repo, decisions, out)
}

/// The decisions of the tags people chose: this policy's keeps (`None`: the policy deletes
/// nothing), then protections, most telling first — in use by tag, in use by digest, another
/// policy's keep, unknown age, the grace period — else deletion. Referrer tags are left
/// undecided: they follow their subject ([`settle_tags`]).
pub(super) fn decide_chosen_tags(
    ctx: &Ctx<'_>,
    repo: &Repository,
    keeps: Option<&Keeps>,
    ages: &Ages,
    min_age: Seconds,
    run_by_digest: &DigestUsers,
) -> Vec<Option<Decision>> {
    let policy = ctx.policy;
    let now = ctx.now_secs;
    let tag_users = if policy.in_use {
        ctx.in_use.tags.get(&*repo.name)
    } else {
        None
    };
    let mut other_keeps: Vec<Option<Keeps>> = Vec::new();
    let mut decisions: Vec<Option<Decision>> = vec![None; repo.tags.len()];
    for (i, t) in repo.tags.iter().enumerate() {
        if t.subject.is_some() {
            continue;
        }
        let Some(keeps) = keeps else {
            decisions[i] = Some(Decision::Keep(KeepReason::NoKeepEntries));
            continue;
        };
        if let Some(k) = keeps.kept[i] {
            decisions[i] = Some(Decision::Keep(k));
            continue;
        }
        // Protections, most telling first.
        if let Some(by) = tag_users.and_then(|u| u.get(&*t.name)) {
            decisions[i] = Some(Decision::Protect(ProtectReason::InUse {
                by: by.clone(),
                digest: None,
            }));
            continue;
        }
        if let Some((by, d)) = run_by_digest.get(t.manifest) {
            decisions[i] = Some(Decision::Protect(ProtectReason::InUse {
                by: by.clone(),
                digest: Some(d.clone()),
            }));
            continue;
        }
        if !ctx.others.is_empty() && other_keeps.is_empty() {
            other_keeps = ctx
                .others
                .iter()
                .map(|o| {
                    o.in_scope(&repo.name)
                        .then(|| evaluate_keeps(o, repo, ages, ctx.caps, now, None))
                })
                .collect();
        }
        let veto = ctx.others.iter().zip(&other_keeps).find_map(|(o, k)| {
            k.as_ref()
                .and_then(|k| k.kept[i])
                .map(|reason| ProtectReason::OtherPolicy {
                    policy: o.shared_name(),
                    reason: Box::new(reason),
                })
        });
        if let Some(veto) = veto {
            decisions[i] = Some(Decision::Protect(veto));
            continue;
        }
        let Some(age) = ages.get(i) else {
            decisions[i] = Some(Decision::Protect(ProtectReason::UnknownAge));
            continue;
        };
        if age < min_age {
            decisions[i] = Some(Decision::Protect(ProtectReason::TooYoung {
                of: age_of(t),
                age,
                min_age,
            }));
            continue;
        }
        decisions[i] = Some(Decision::Delete(if policy.purge {
            DeleteReason::Purge { of: age_of(t), age }
        } else {
            DeleteReason::NotKept {
                of: age_of(t),
                age,
                selected_by: keeps.selected[i],
                misses: policy.misses.clone(),
            }
        }));
    }
    decisions
}

/// The repository's plan: every tag's decision by name, the mutations in execution order.
/// Fails when a tag name is listed twice.
pub(super) fn finish_repository(
    repo: &Repository,
    decisions: Vec<Option<Decision>>,
    out: &mut RepoOut,
) -> Result<RepositoryPlan, &'static str> {
    let mut tags: Vec<TagDecision> = repo
        .tags
        .iter()
        .zip(decisions)
        .map(|(t, d)| TagDecision {
            tag: t.name.clone(),
            digest: repo.manifests[t.manifest.index()].digest.clone(),
            decision: d.unwrap_or(Decision::Protect(ProtectReason::UnknownAge)),
        })
        .collect();
    tags.sort_unstable_by(|a, b| a.tag.cmp(&b.tag));
    if tags.windows(2).any(|w| w[0].tag == w[1].tag) {
        return Err("a tag is listed twice");
    }
    // By phase, then tag or digest: within a phase all mutations are of one kind.
    out.mutations.sort_by(|(pa, a), (pb, b)| {
        pa.cmp(pb).then_with(|| match (a, b) {
            (Mutation::DeleteTag { tag: x, .. }, Mutation::DeleteTag { tag: y, .. }) => x.cmp(y),
            _ => a.digest().cmp(b.digest()),
        })
    });
    // Collected in place, then the spare room (the phases, the growth) handed back.
    let mut mutations: Vec<Mutation> = std::mem::take(&mut out.mutations)
        .into_iter()
        .map(|(_, m)| m)
        .collect();
    mutations.shrink_to_fit();
    Ok(RepositoryPlan {
        name: repo.name.clone(),
        incomplete: None,
        tags,
        mutations,
    })
}
