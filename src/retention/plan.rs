//! The planner: policy + inventory + protections + `now` → a [`Plan`]. Pure and
//! deterministic: the same inputs in any listing order give the same plan.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};

use super::decision::{
    shared_name, Action, AgeOf, Decision, DeleteReason, KeepReason, ProtectReason, ReferrerKept,
    Seconds, SemverLine, SharedName,
};
use super::graph::{digest_users, veto, DigestUsers, Graph, Need};
use super::inventory::{
    Capabilities, Completeness, Digest, Inventory, ManifestId, Repository, Tag, TagName, Time,
};
use super::policy::{Entry, Limits, Policy};
use crate::api::common::condition::Reason;
use crate::api::retention::PolicyMode;

/// References the cluster runs, per repository of the registry being planned: by tag and by
/// digest (`status.containerStatuses[].imageID`). Host names are already resolved to this
/// registry by the caller.
#[derive(Debug, Clone, Default)]
pub struct InUse {
    tags: HashMap<Arc<str>, HashMap<Arc<str>, SharedName>>,
    digests: HashMap<Arc<str>, HashMap<Digest, SharedName>>,
}

impl InUse {
    /// No references.
    pub fn new() -> Self {
        InUse::default()
    }

    /// Records that `by` (`Pod team-a/web-7f9`) runs `repository:tag`. When several users
    /// run it, reasons name the first by name.
    pub fn add_tag(&mut self, repository: &str, tag: &str, by: &str) {
        add(&mut self.tags, repository, Arc::<str>::from(tag), by);
    }

    /// Records that `by` runs `repository@digest` (an index or a platform manifest).
    pub fn add_digest(&mut self, repository: &str, digest: &str, by: &str) {
        add(&mut self.digests, repository, Digest::new(digest), by);
    }

    /// Whether nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.tags.is_empty() && self.digests.is_empty()
    }

    /// The digests run in `repository`.
    pub fn digests<'a>(&'a self, repository: &str) -> impl Iterator<Item = &'a Digest> + 'a {
        self.digests
            .get(repository)
            .into_iter()
            .flat_map(|d| d.keys())
    }

    /// Who runs `repository:tag`, if anyone.
    pub fn tag_user(&self, repository: &str, tag: &str) -> Option<&str> {
        self.tags.get(repository)?.get(tag).map(|by| &***by)
    }

    /// Who runs `repository@digest`, if anyone.
    pub fn digest_user(&self, repository: &str, digest: &str) -> Option<&str> {
        self.digests
            .get(repository)?
            .get(&Digest::new(digest))
            .map(|by| &***by)
    }
}

fn add<K: std::hash::Hash + Eq>(
    map: &mut HashMap<Arc<str>, HashMap<K, SharedName>>,
    repository: &str,
    key: K,
    by: &str,
) {
    let users = match map.get_mut(repository) {
        Some(users) => users,
        None => map.entry(Arc::from(repository)).or_default(),
    };
    match users.get_mut(&key) {
        Some(current) if by < &***current => *current = shared_name(by),
        Some(_) => {}
        None => {
            users.insert(key, shared_name(by));
        }
    }
}

/// What must never be deleted, supplied as data.
#[derive(Debug, Clone, Default)]
pub struct Protections {
    /// Images the cluster runs.
    pub in_use: InUse,
}

/// The decision for one tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagDecision {
    /// Tag name.
    pub tag: TagName,
    /// The digest the tag pointed at when listed.
    pub digest: Digest,
    /// What happens to it, and why.
    pub decision: Decision,
}

/// The plan for one in-scope repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryPlan {
    /// Repository name.
    pub name: Arc<str>,
    /// Set when the listing was incomplete: every tag is then protected.
    pub incomplete: Option<Arc<str>>,
    /// Every tag's decision, by tag name.
    pub tags: Vec<TagDecision>,
    /// What to change in this repository, in execution order: tag deletions, then index
    /// and manifest deletions, then referrers after their subjects. Empty in `Plan` mode and
    /// for incomplete repositories.
    pub mutations: Vec<Mutation>,
}

/// One change to make to the registry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mutation {
    /// Delete one tag; its image stays (for other tags or index parents). Only planned on
    /// registries that can delete tags on their own. The executor re-resolves the tag first
    /// and skips it unless it still points at `digest`.
    DeleteTag {
        /// Repository.
        repository: Arc<str>,
        /// Tag.
        tag: TagName,
        /// The digest it must still point at.
        digest: Digest,
    },
    /// Delete a manifest by digest, with every tag on it (all of which the plan deletes).
    /// The executor re-resolves each tag first and skips the whole deletion if one now
    /// points elsewhere.
    DeleteManifest {
        /// Repository.
        repository: Arc<str>,
        /// The manifest.
        digest: Digest,
        /// The tags pointing at it when listed (possibly none, for untagged referrers).
        tags: Box<[TagName]>,
        /// For a referrer: its subject, deleted earlier in the plan. Skip this deletion if
        /// the subject's deletion did not happen.
        subject: Option<Digest>,
    },
}

impl Mutation {
    /// The repository the mutation touches.
    pub fn repository(&self) -> &str {
        match self {
            Mutation::DeleteTag { repository, .. }
            | Mutation::DeleteManifest { repository, .. } => repository,
        }
    }

    /// The digest the mutation removes (a manifest) or un-tags (a tag).
    pub fn digest(&self) -> &Digest {
        match self {
            Mutation::DeleteTag { digest, .. } | Mutation::DeleteManifest { digest, .. } => digest,
        }
    }
}

/// Counts over the in-scope repositories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// In-scope repositories.
    pub repositories: u64,
    /// Tags in them.
    pub tags: u64,
    /// Tags kept by keep entries.
    pub kept: u64,
    /// Tags kept by protections.
    pub protected: u64,
    /// Tags deleted (Enforce) or that would be (Plan).
    pub deletions: u64,
    /// Manifests deleted by digest (or that would be).
    pub manifest_deletions: u64,
    /// Repositories whose listing was incomplete.
    pub errors: u64,
    /// Sum of the known sizes of the manifests deleted by digest; `None` when none is known.
    pub reclaimable_bytes: Option<u64>,
}

/// A limit the plan breaches; nothing may be deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LimitBreach {
    /// More tag deletions than `limits.maxDeletionsPerRun`.
    #[error("the plan deletes {planned} tags, more than limits.maxDeletionsPerRun ({limit})")]
    MaxDeletionsPerRun {
        /// Tag deletions planned.
        planned: u64,
        /// The limit.
        limit: u64,
    },
    /// More tag deletions than `limits.maxDeletionPercent` of the tags in scope.
    #[error("the plan deletes {planned} of {in_scope} tags in scope, more than limits.maxDeletionPercent ({percent}%)")]
    MaxDeletionPercent {
        /// Tag deletions planned.
        planned: u64,
        /// Tags in scope.
        in_scope: u64,
        /// The limit.
        percent: u8,
    },
}

impl LimitBreach {
    /// The condition reason (`Stalled=True`).
    pub fn reason(&self) -> Reason {
        Reason::BlastRadiusExceeded
    }

    /// The policy field whose limit was breached.
    pub fn field(&self) -> &'static str {
        match self {
            LimitBreach::MaxDeletionsPerRun { .. } => "limits.maxDeletionsPerRun",
            LimitBreach::MaxDeletionPercent { .. } => "limits.maxDeletionPercent",
        }
    }
}

/// Checks `deletions` tag deletions out of `in_scope` tags against the limits. The count
/// limit is checked first. Exactly at a limit passes.
pub fn check_limits(limits: Limits, deletions: u64, in_scope: u64) -> Result<(), LimitBreach> {
    if deletions > limits.max_deletions_per_run {
        return Err(LimitBreach::MaxDeletionsPerRun {
            planned: deletions,
            limit: limits.max_deletions_per_run,
        });
    }
    if let Some(percent) = limits.max_deletion_percent {
        if u128::from(deletions) * 100 > u128::from(percent) * u128::from(in_scope) {
            return Err(LimitBreach::MaxDeletionPercent {
                planned: deletions,
                in_scope,
                percent,
            });
        }
    }
    Ok(())
}

/// The outcome of planning one policy against one registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The policy's name.
    pub policy: Arc<str>,
    /// The policy's mode. In `Plan` mode every repository's `mutations` is empty.
    pub mode: PolicyMode,
    /// The time the plan was computed for.
    pub now: Timestamp,
    /// The policy's blast-radius limits.
    pub limits: Limits,
    /// Every in-scope repository, by name, with its decisions and mutations.
    pub repositories: Vec<RepositoryPlan>,
    /// Counts over the in-scope repositories.
    pub counts: Counts,
    /// Repositories in the inventory outside the policy's scope (untouched).
    pub out_of_scope_repositories: u64,
    /// Things people should know about the plan (unsupported criteria, …).
    pub notes: Vec<String>,
}

impl Plan {
    /// Checks the plan's deletions against the policy's limits. Runs in both modes, so a
    /// `Plan`-mode policy shows whether enforcing it would be blocked.
    pub fn check_blast_radius(&self) -> Result<(), LimitBreach> {
        check_limits(self.limits, self.counts.deletions, self.counts.tags)
    }

    /// The mutations to execute, only once the blast-radius check passes (invariant 6):
    /// what an executor should call.
    pub fn checked_mutations(&self) -> Result<impl Iterator<Item = &Mutation>, LimitBreach> {
        self.check_blast_radius()?;
        Ok(self.mutations())
    }

    /// Every mutation, repository by repository, in execution order. None in `Plan` mode.
    pub fn mutations(&self) -> impl Iterator<Item = &Mutation> {
        self.repositories.iter().flat_map(|r| r.mutations.iter())
    }

    /// Every tag decision with its repository.
    pub fn decisions(&self) -> impl Iterator<Item = (&RepositoryPlan, &TagDecision)> {
        self.repositories
            .iter()
            .flat_map(|r| r.tags.iter().map(move |t| (r, t)))
    }
}

/// Plans `policy` against `inventory`.
///
/// `others` are the other policies that apply to the same registry (namespaced or cluster,
/// any mode): their keep entries veto this policy's deletions in the repositories they
/// cover. A policy in `others` with the same name as `policy` is ignored.
pub fn plan(
    policy: &Policy,
    others: &[Policy],
    inventory: &Inventory,
    protections: &Protections,
    now: Timestamp,
) -> Plan {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    plan_with_threads(policy, others, inventory, protections, now, threads.min(8))
}

/// [`plan`] on at most `max_threads` threads (the result does not depend on it).
fn plan_with_threads(
    policy: &Policy,
    others: &[Policy],
    inventory: &Inventory,
    protections: &Protections,
    now: Timestamp,
    max_threads: usize,
) -> Plan {
    // By name, so the policy a veto names does not depend on the order given.
    let mut others: Vec<&Policy> = others
        .iter()
        .filter(|o| o.name() != policy.name() && !o.entries.is_empty())
        .collect();
    others.sort_by(|a, b| a.name().cmp(b.name()));
    let ctx = Ctx {
        now_secs: now.as_second(),
        policy,
        others,
        caps: inventory.capabilities,
        in_use: &protections.in_use,
        mutations: policy.mode() == PolicyMode::Enforce,
    };
    let mut groups: BTreeMap<&str, Vec<&Repository>> = BTreeMap::new();
    let mut out_of_scope = 0;
    for repo in &inventory.repositories {
        if policy.in_scope(&repo.name) {
            groups.entry(&repo.name).or_default().push(repo);
        } else {
            out_of_scope += 1;
        }
    }
    let groups: Vec<Vec<&Repository>> = groups.into_values().collect();
    let planned = plan_groups(&ctx, &groups, max_threads);

    let mut counts = Counts::default();
    let mut repositories = Vec::with_capacity(groups.len());
    let mut reclaimable: Option<u64> = None;
    let mut unsupported = vec![0u64; policy.entries.len()];
    for (results, chunk_unsupported) in planned {
        for (u, c) in unsupported.iter_mut().zip(chunk_unsupported) {
            *u += c;
        }
        for (repo_plan, out) in results {
            tally(&mut counts, &mut reclaimable, &repo_plan, &out);
            repositories.push(repo_plan);
        }
    }
    counts.reclaimable_bytes = reclaimable;
    let notes = unsupported
        .iter()
        .enumerate()
        .filter(|(_, n)| **n > 0)
        .map(|(e, n)| {
            format!(
                "keep[{e}]: pulledWithin needs pull statistics, which this registry does not keep; the {n} tags the entry selects are kept"
            )
        })
        .collect();
    Plan {
        policy: policy.name_arc(),
        mode: policy.mode(),
        now,
        limits: policy.limits(),
        repositories,
        counts,
        out_of_scope_repositories: out_of_scope,
        notes,
    }
}

struct Ctx<'a> {
    now_secs: Seconds,
    policy: &'a Policy,
    others: Vec<&'a Policy>,
    caps: Capabilities,
    in_use: &'a InUse,
    /// Whether to build mutations (Enforce mode).
    mutations: bool,
}

/// Plans of one run of consecutive repositories, with the per-entry counts of tags kept
/// for want of pull statistics.
type ChunkPlans = (Vec<(RepositoryPlan, RepoOut)>, Vec<u64>);

/// Plans the repository groups (one group per name; more than one repository in a group
/// means it was listed twice), on several threads when there is enough work. Repositories
/// are independent, and the results come back in the groups' order, so the plan is the same
/// whatever the number of threads.
fn plan_groups(ctx: &Ctx<'_>, groups: &[Vec<&Repository>], max_threads: usize) -> Vec<ChunkPlans> {
    const MIN_TAGS_PER_THREAD: usize = 50_000;
    let tags: usize = groups.iter().flatten().map(|r| r.tags.len()).sum();
    let threads = max_threads.min(tags / MIN_TAGS_PER_THREAD).max(1);
    if threads == 1 {
        return vec![plan_chunk(ctx, groups)];
    }
    // Consecutive chunks of about equal tag counts.
    let mut chunks = Vec::with_capacity(threads);
    let mut start = 0;
    let mut acc = 0;
    for (i, g) in groups.iter().enumerate() {
        acc += g.iter().map(|r| r.tags.len()).sum::<usize>();
        if acc * threads >= tags * (chunks.len() + 1) && chunks.len() + 1 < threads {
            chunks.push(&groups[start..=i]);
            start = i + 1;
        }
    }
    chunks.push(&groups[start..]);
    std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                scope.spawn(move || {
                    // A regex shared between threads hands its search caches around under a
                    // lock; each thread gets its own copies instead.
                    let policy = ctx.policy.clone();
                    let others: Vec<Policy> = ctx.others.iter().map(|o| (*o).clone()).collect();
                    let local = Ctx {
                        policy: &policy,
                        others: others.iter().collect(),
                        ..*ctx
                    };
                    plan_chunk(&local, chunk)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

/// Adds one planned repository to the run's counts (and its reclaimable bytes, when known).
fn tally(
    counts: &mut Counts,
    reclaimable: &mut Option<u64>,
    repo_plan: &RepositoryPlan,
    out: &RepoOut,
) {
    counts.repositories += 1;
    counts.errors += u64::from(repo_plan.incomplete.is_some());
    for t in &repo_plan.tags {
        counts.tags += 1;
        match t.decision.action() {
            Action::Keep => counts.kept += 1,
            Action::Protect => counts.protected += 1,
            Action::Delete => counts.deletions += 1,
        }
    }
    counts.manifest_deletions += out.manifest_deletions;
    if let Some(bytes) = out.reclaimable {
        *reclaimable = Some(reclaimable.unwrap_or(0).saturating_add(bytes));
    }
}

fn plan_chunk(ctx: &Ctx<'_>, groups: &[Vec<&Repository>]) -> ChunkPlans {
    let mut unsupported = vec![0u64; ctx.policy.entries.len()];
    let mut results = Vec::with_capacity(groups.len());
    for group in groups {
        let mut out = RepoOut::default();
        let repo_plan = match group.as_slice() {
            [repo] => match (&repo.completeness, consistency(repo)) {
                (Completeness::Incomplete { reason }, _) => incomplete(group, reason.clone()),
                (Completeness::Complete, Err(why)) => incomplete(group, Arc::from(why)),
                (Completeness::Complete, Ok(())) => {
                    plan_repository(ctx, repo, &mut out, &mut unsupported).unwrap_or_else(|why| {
                        out = RepoOut::default();
                        incomplete(group, Arc::from(why))
                    })
                }
            },
            _ => incomplete(
                group,
                Arc::from(format!("the repository was listed {} times", group.len())),
            ),
        };
        results.push((repo_plan, out));
    }
    (results, unsupported)
}

/// Per-repository results besides the decisions. Mutations carry a sort key: phase, then a
/// name.
#[derive(Default)]
struct RepoOut {
    /// Each with its phase: tag deletions 0, indexes 1, manifests 2, referrers 3 and up.
    mutations: Vec<(u32, Mutation)>,
    manifest_deletions: u64,
    reclaimable: Option<u64>,
}

/// Whole seconds, rounded up: a policy duration of `1.5s` keeps and protects for 2 s.
fn ceil_secs(d: SignedDuration) -> Seconds {
    d.as_secs() + Seconds::from(d.subsec_nanos() > 0)
}

/// Ids out of range make the inventory unusable for this repository: fail closed.
fn consistency(repo: &Repository) -> Result<(), &'static str> {
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

fn digest_of(repo: &Repository, id: ManifestId) -> Digest {
    repo.manifest(id)
        .map_or_else(|| Digest::new("unknown"), |m| m.digest.clone())
}

fn incomplete(group: &[&Repository], reason: Arc<str>) -> RepositoryPlan {
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

/// What keep entries decide for each tag of a repository.
struct Keeps {
    /// The first entry (and criterion) that keeps each tag.
    kept: Vec<Option<KeepReason>>,
    /// Bit `e` set: entry `e` selects the tag.
    selected: Vec<u64>,
}

fn parse_version(tag: &str) -> Option<semver::Version> {
    semver::Version::parse(tag.strip_prefix('v').unwrap_or(tag)).ok()
}

/// Evaluates a policy's keep entries over a complete repository. Referrer tags are never
/// selected: they follow their subject. `ages` are the tags' ages in seconds.
fn evaluate_keeps(
    policy: &Policy,
    repo: &Repository,
    ages: &Ages,
    caps: Capabilities,
    now: Seconds,
    mut unsupported: Option<&mut [u64]>,
) -> Keeps {
    let n = repo.tags.len();
    let mut kept: Vec<Option<KeepReason>> = vec![None; n];
    let mut selected = vec![0u64; n];
    let mut sel: Vec<usize> = Vec::with_capacity(n);
    let mut scratch = RankScratch::default();
    for (e, entry) in policy.entries.iter().enumerate() {
        let num = u8::try_from(e + 1).unwrap_or(u8::MAX);
        sel.clear();
        for (i, t) in repo.tags.iter().enumerate() {
            if t.subject.is_none() && entry.selector.matches(&t.name) {
                sel.push(i);
                selected[i] |= 1 << e;
            }
        }
        if sel.is_empty() {
            continue;
        }
        if !entry.has_criteria() {
            for &i in &sel {
                kept[i].get_or_insert(KeepReason::Selected { entry: num });
            }
            continue;
        }
        if let Some(of) = entry.most_recent {
            most_recent(repo, ages, &sel, num, of, &mut kept, &mut scratch);
        }
        if let Some(within) = entry.pushed_within.map(ceil_secs) {
            for &i in &sel {
                if let Some(age) = ages.get(i).filter(|a| *a <= within) {
                    kept[i].get_or_insert(KeepReason::PushedWithin {
                        entry: num,
                        of: age_of(&repo.tags[i]),
                        age,
                        within,
                    });
                }
            }
        }
        if let Some(within) = entry.pulled_within.map(ceil_secs) {
            if caps.pull_stats {
                for &i in &sel {
                    if repo.tags[i].pull_unknown {
                        kept[i].get_or_insert(KeepReason::PullUnknown { entry: num });
                        continue;
                    }
                    let ago = repo.tags[i].last_pulled.map(|p| now - p.unix_seconds());
                    if let Some(ago) = ago.filter(|a| *a <= within) {
                        kept[i].get_or_insert(KeepReason::PulledWithin {
                            entry: num,
                            ago,
                            within,
                        });
                    }
                }
            } else {
                if let Some(u) = unsupported.as_deref_mut().and_then(|u| u.get_mut(e)) {
                    *u += sel.len() as u64;
                }
                for &i in &sel {
                    kept[i].get_or_insert(KeepReason::PullStatsUnavailable { entry: num });
                }
            }
        }
        if entry.semver.is_some() {
            semver_keeps(repo, entry, &sel, num, &mut kept);
        }
    }
    Keeps { kept, selected }
}

/// Buffers `most_recent` reuses across entries: per manifest, the newest selected tag and
/// the rank.
#[derive(Default)]
struct RankScratch {
    best: Vec<u32>,
    rank: Vec<u32>,
    images: Vec<(ManifestId, usize)>,
}

const NONE: u32 = u32::MAX;

/// `mostRecent`: ranks the images carrying a selected tag by their newest selected tag's
/// push time (ties: the greater tag name counts as newer) and keeps the selected tags of
/// the first `of`. Images whose every selected tag has an unknown age are not ranked (such
/// tags are protected anyway) and so do not take a place.
fn most_recent(
    repo: &Repository,
    ages: &Ages,
    sel: &[usize],
    entry: u8,
    of: u32,
    kept: &mut [Option<KeepReason>],
    scratch: &mut RankScratch,
) {
    let m = repo.manifests.len();
    let RankScratch { best, rank, images } = scratch;
    best.clear();
    best.resize(m, NONE);
    // Is tag a newer than tag b? Smaller age is newer; equal ages: the greater name.
    let newer = |a: usize, b: usize| -> bool {
        match (ages.get(a), ages.get(b)) {
            (Some(x), Some(y)) if x != y => x < y,
            _ => repo.tags[a].name > repo.tags[b].name,
        }
    };
    images.clear();
    for &i in sel {
        if ages.get(i).is_none() {
            continue;
        }
        let id = repo.tags[i].manifest;
        let slot = &mut best[id.index()];
        if *slot == NONE {
            *slot = i as u32;
            images.push((id, i));
        } else if newer(i, *slot as usize) {
            *slot = i as u32;
        }
    }
    for img in images.iter_mut() {
        img.1 = best[img.0.index()] as usize;
    }
    let take = (of as usize).min(images.len());
    let cmp = |a: &(ManifestId, usize), b: &(ManifestId, usize)| {
        let (x, y) = (a.1, b.1);
        ages.get(x)
            .cmp(&ages.get(y))
            .then_with(|| repo.tags[y].name.cmp(&repo.tags[x].name))
    };
    if take < images.len() && take > 0 {
        images.select_nth_unstable_by(take - 1, cmp);
    }
    images.truncate(take);
    images.sort_unstable_by(cmp);
    rank.clear();
    rank.resize(m, 0);
    for (r, (id, _)) in images.iter().enumerate() {
        rank[id.index()] = r as u32 + 1;
    }
    for &i in sel {
        let r = rank[repo.tags[i].manifest.index()];
        if r > 0 {
            kept[i].get_or_insert(KeepReason::MostRecent { entry, rank: r, of });
        }
    }
}

/// `semver`: among the selected tags that parse as versions (optional `v` prefix;
/// pre-releases only when included), keeps the tags of the `N` highest distinct versions
/// of each major (`latestPerMajor`) and of each major.minor line (`latestPerMinor`).
fn semver_keeps(
    repo: &Repository,
    entry: &Entry,
    sel: &[usize],
    num: u8,
    kept: &mut [Option<KeepReason>],
) {
    let Some(rule) = entry.semver else { return };
    let mut versions: Vec<(semver::Version, usize)> = sel
        .iter()
        .filter_map(|&i| parse_version(&repo.tags[i].name).map(|v| (v, i)))
        .filter(|(v, _)| rule.prereleases || v.pre.is_empty())
        .collect();
    if versions.is_empty() {
        return;
    }
    type LineOf = fn(&semver::Version) -> SemverLine;
    let lines: [(Option<u32>, LineOf); 2] = [
        (rule.per_major, |v| {
            SemverLine::Major(u32::try_from(v.major).unwrap_or(u32::MAX))
        }),
        (rule.per_minor, |v| {
            SemverLine::Minor(
                u32::try_from(v.major).unwrap_or(u32::MAX),
                u32::try_from(v.minor).unwrap_or(u32::MAX),
            )
        }),
    ];

    for (of, line_of) in lines {
        let Some(of) = of else { continue };
        let key = |v: &semver::Version| match line_of(v) {
            SemverLine::Major(_) => (v.major, 0),
            SemverLine::Minor(..) => (v.major, v.minor),
        };
        // By line, then highest version first; tag name breaks ties between `v1.0.0` and
        // `1.0.0` so the order does not depend on listing order.
        versions.sort_by(|a, b| {
            key(&a.0)
                .cmp(&key(&b.0))
                .then_with(|| b.0.cmp(&a.0))
                .then_with(|| repo.tags[a.1].name.cmp(&repo.tags[b.1].name))
        });
        let mut rank = 0u32;
        let mut prev: Option<(&semver::Version, (u64, u64))> = None;
        for (v, i) in &versions {
            match prev {
                Some((pv, pk)) if pk == key(v) => {
                    if pv != v {
                        rank += 1;
                    }
                }
                _ => rank = 1,
            }
            prev = Some((v, key(v)));
            if rank <= of {
                kept[*i].get_or_insert(KeepReason::Semver {
                    entry: num,
                    rank,
                    of,
                    line: line_of(v),
                });
            }
        }
    }
}

/// Plans one complete, consistent repository. Fails (and the repository is then treated as
/// incomplete) when a tag name is listed twice.
fn plan_repository(
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

/// The last word on what goes by digest ([`veto`]): nothing that stays — a tag, an index, a
/// subject, a user by digest — loses a manifest it needs. Returns what needs each manifest
/// taken back.
fn still_needed(
    repo: &Repository,
    graph: &Graph,
    decisions: &[Option<Decision>],
    fates: &mut ManifestFates,
    run_by_digest: &DigestUsers,
) -> HashMap<ManifestId, Need> {
    if !fates.going.iter().any(|g| *g) {
        return HashMap::new();
    }
    let mut staying_tag: Vec<Option<TagName>> = vec![None; repo.manifests.len()];
    for (i, t) in repo.tags.iter().enumerate() {
        if t.subject.is_none() && !decisions[i].as_ref().is_some_and(Decision::is_delete) {
            let slot = &mut staying_tag[t.manifest.index()];
            if slot.as_ref().is_none_or(|s| t.name < *s) {
                *slot = Some(t.name.clone());
            }
        }
    }
    veto(repo, graph, &mut fates.going, &staying_tag, run_by_digest)
}

/// Which time a tag's age is measured from.
fn age_of(t: &Tag) -> AgeOf {
    match (t.pushed, t.tagged) {
        (Some(_), true) => AgeOf::Tagged,
        (Some(_), false) => AgeOf::Pushed,
        (None, _) => AgeOf::Built,
    }
}

/// Each tag's age in seconds at `now`: from its push time, else its image's build time.
/// Kept as the times (eight bytes a tag), the age worked out when asked.
struct Ages {
    times: Vec<Option<Time>>,
    now: Seconds,
}

impl Ages {
    /// The age of tag `i`, if known.
    fn get(&self, i: usize) -> Option<Seconds> {
        self.times
            .get(i)
            .copied()
            .flatten()
            .map(|t| self.now - t.unix_seconds())
    }
}

fn tag_ages(repo: &Repository, now: Seconds) -> Ages {
    Ages {
        times: repo
            .tags
            .iter()
            .map(|t| t.pushed.or(repo.manifests[t.manifest.index()].created))
            .collect(),
        now,
    }
}

/// The decisions of the tags people chose: this policy's keeps (`None`: the policy deletes
/// nothing), then protections, most telling first — in use by tag, in use by digest, another
/// policy's keep, unknown age, the grace period — else deletion. Referrer tags are left
/// undecided: they follow their subject ([`settle_tags`]).
fn decide_chosen_tags(
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

/// What happens to each manifest of a repository, by [`ManifestId`] index.
struct ManifestFates {
    /// The manifest is a referrer: it has a subject, or a referrer tag names one.
    referrer: Vec<bool>,
    /// The manifest's subject: its own, else the first by digest its referrer tags name.
    subject_of: Vec<Option<ManifestId>>,
    /// The manifest is deleted.
    going: Vec<bool>,
    /// A manifest kept because an index that stays lists it: the first such index by digest.
    blocked_by: HashMap<ManifestId, ManifestId>,
    /// For a referrer deleted with its subject, the cascade round (1 and up) that added it.
    round: Vec<u32>,
}

/// Which manifests go entirely — every tag on them goes — and which are held back because an
/// index that stays lists them (at any depth).
fn manifest_fates(repo: &Repository, decisions: &[Option<Decision>]) -> ManifestFates {
    let m = repo.manifests.len();
    let man = |id: ManifestId| &repo.manifests[id.index()];
    let mut tag_count = vec![0u32; m];
    let mut delete_count = vec![0u32; m];
    let mut referrer = vec![false; m];
    let mut subject_of: Vec<Option<ManifestId>> =
        repo.manifests.iter().map(|x| x.subject).collect();
    for (i, t) in repo.tags.iter().enumerate() {
        let id = t.manifest.index();
        tag_count[id] += 1;
        if let Some(s) = t.subject {
            referrer[id] = true;
            // A manifest's own subject wins; else the first subject by digest its tags name.
            if repo.manifests[id].subject.is_none() {
                let slot = &mut subject_of[id];
                if slot.is_none_or(|cur| man(s).digest < man(cur).digest) {
                    *slot = Some(s);
                }
            }
        } else if decisions[i].as_ref().is_some_and(Decision::is_delete) {
            delete_count[id] += 1;
        }
    }
    for (id, x) in repo.manifests.iter().enumerate() {
        referrer[id] |= x.subject.is_some();
    }
    let mut going: Vec<bool> = (0..m)
        .map(|id| !referrer[id] && tag_count[id] > 0 && delete_count[id] == tag_count[id])
        .collect();
    // An index that stays keeps its children (and theirs).
    let mut blocked_by: HashMap<ManifestId, ManifestId> = HashMap::new();
    let mut stack: Vec<usize> = (0..m)
        .filter(|&p| !going[p] && !repo.manifests[p].children.is_empty())
        .collect();
    while let Some(p) = stack.pop() {
        for &c in &repo.manifests[p].children {
            if going[c.index()] {
                going[c.index()] = false;
                if !repo.manifests[c.index()].children.is_empty() {
                    stack.push(c.index());
                }
            }
            // Name the staying parent first by digest, whatever the listing order.
            let parent = ManifestId(p as u32);
            blocked_by
                .entry(c)
                .and_modify(|b| {
                    if man(parent).digest < man(*b).digest {
                        *b = parent;
                    }
                })
                .or_insert(parent);
        }
    }
    ManifestFates {
        referrer,
        subject_of,
        going,
        blocked_by,
        round: vec![0u32; m],
    }
}

/// Referrers of manifests that go, cascading round by round (a signature of a signature
/// goes the round after the one it signs). A referrer may go only if every tag on it is a
/// referrer tag old enough to go, it was not created within the grace period, nothing runs
/// it, and every index listing it goes too.
fn cascade_referrers(
    repo: &Repository,
    ages: &Ages,
    min_age: Seconds,
    now: Seconds,
    run_by_digest: &DigestUsers,
    fates: &mut ManifestFates,
) {
    let m = repo.manifests.len();
    let referrer = &fates.referrer;
    let referrers: Vec<usize> = (0..m).filter(|&id| referrer[id]).collect();
    if referrers.is_empty() {
        return;
    }
    let mut parents: HashMap<usize, Vec<usize>> = HashMap::new();
    for (p, x) in repo.manifests.iter().enumerate() {
        for c in &x.children {
            if referrer[c.index()] {
                parents.entry(c.index()).or_default().push(p);
            }
        }
    }
    let mut deletable: Vec<bool> = (0..m)
        .map(|id| {
            referrer[id]
                && repo.manifests[id]
                    .created
                    .is_none_or(|c| now - c.unix_seconds() >= min_age)
        })
        .collect();
    for (i, t) in repo.tags.iter().enumerate() {
        let ok = t.subject.is_some() && ages.get(i).is_none_or(|a| a >= min_age);
        deletable[t.manifest.index()] &= ok;
    }
    for &id in &referrers {
        if run_by_digest.get(ManifestId(id as u32)).is_some() {
            deletable[id] = false;
        }
    }
    let going = &mut fates.going;
    let mut r = 1;
    loop {
        let mut added = Vec::new();
        for &id in &referrers {
            if going[id] || !deletable[id] {
                continue;
            }
            let subject_goes = fates.subject_of[id].is_some_and(|s| going[s.index()]);
            let parents_go = parents
                .get(&id)
                .is_none_or(|ps| ps.iter().all(|&p| going[p]));
            if subject_goes && parents_go {
                added.push(id);
            }
        }
        if added.is_empty() {
            break;
        }
        for id in added {
            going[id] = true;
            fates.round[id] = r;
        }
        r += 1;
    }
}

/// Referrer tags follow their manifest; a tag deletion is planned where the registry can
/// delete tags alone, and becomes a protection where it cannot and the image stays (another
/// tag, or an index, still needs it).
#[allow(clippy::too_many_arguments)]
fn settle_tags(
    ctx: &Ctx<'_>,
    repo: &Repository,
    ages: &Ages,
    min_age: Seconds,
    delete_referrers: bool,
    fates: &ManifestFates,
    vetoed: &HashMap<ManifestId, Need>,
    decisions: &mut [Option<Decision>],
    out: &mut RepoOut,
) {
    let going = &fates.going;
    let still_needed = |id: usize| {
        vetoed
            .get(&ManifestId(id as u32))
            .map(|need| ProtectReason::StillNeeded {
                need: Box::new(need.clone()),
            })
    };
    // Per manifest, the first tag by name on it that stays, or NONE.
    let mut staying: Vec<u32> = vec![NONE; repo.manifests.len()];
    for (i, t) in repo.tags.iter().enumerate() {
        if t.subject.is_none() && !decisions[i].as_ref().is_some_and(Decision::is_delete) {
            let slot = &mut staying[t.manifest.index()];
            if *slot == NONE || t.name < repo.tags[*slot as usize].name {
                *slot = i as u32;
            }
        }
    }
    for (i, t) in repo.tags.iter().enumerate() {
        let id = t.manifest.index();
        if t.subject.is_some() {
            let subject_of = fates.subject_of[id];
            let subject = subject_of.or(t.subject).map(|s| digest_of(repo, s));
            let subject = subject.unwrap_or_else(|| Digest::new("unknown"));
            let subject_goes = subject_of.is_some_and(|s| going[s.index()]);
            decisions[i] = Some(if going[id] {
                Decision::Delete(DeleteReason::Referrer { subject })
            } else if let Some(needed) = still_needed(id).filter(|_| subject_goes) {
                Decision::Protect(needed)
            } else if !subject_goes {
                Decision::Protect(ProtectReason::Referrer {
                    subject,
                    why: ReferrerKept::SubjectStays,
                })
            } else if !delete_referrers {
                Decision::Protect(ProtectReason::Referrer {
                    subject,
                    why: ReferrerKept::DeleteReferrersOff,
                })
            } else if let Some(age) = ages.get(i).filter(|a| *a < min_age) {
                Decision::Protect(ProtectReason::TooYoung {
                    of: age_of(t),
                    age,
                    min_age,
                })
            } else {
                Decision::Protect(ProtectReason::Referrer {
                    subject,
                    why: ReferrerKept::StillNeeded,
                })
            });
            continue;
        }
        let Some(Decision::Delete(_)) = decisions[i] else {
            continue;
        };
        if going[id] {
            continue;
        }
        if ctx.caps.delete_by_tag {
            if !ctx.mutations {
                continue;
            }
            out.mutations.push((
                0,
                Mutation::DeleteTag {
                    repository: repo.name.clone(),
                    tag: t.name.clone(),
                    digest: repo.manifests[id].digest.clone(),
                },
            ));
        } else {
            let staying = (staying[id] != NONE).then_some(staying[id] as usize);
            let reason = match (staying, fates.blocked_by.get(&t.manifest)) {
                (Some(s), _) => ProtectReason::SharedImage {
                    with_tag: Box::new(repo.tags[s].name.clone()),
                },
                (None, Some(p)) => ProtectReason::IndexChild {
                    index: digest_of(repo, *p),
                },
                (None, None) => still_needed(id).unwrap_or(ProtectReason::SharedImage {
                    with_tag: Box::new(TagName::from("another reference")),
                }),
            };
            decisions[i] = Some(Decision::Protect(reason));
        }
    }
}

/// The manifests that go: counted (with the bytes they free) in every mode, and deleted in
/// Enforce mode — indexes before manifests, referrers after their subjects, round by round —
/// each with the tags it takes along.
fn plan_manifest_deletions(
    ctx: &Ctx<'_>,
    repo: &Repository,
    fates: &ManifestFates,
    out: &mut RepoOut,
) {
    let going = &fates.going;
    // The tags on manifests that go, by manifest then name: four bytes a tag, read in
    // manifest order below.
    let mut tags_on: Vec<u32> = Vec::new();
    if ctx.mutations {
        tags_on = (0..repo.tags.len() as u32)
            .filter(|&i| going[repo.tags[i as usize].manifest.index()])
            .collect();
        let key = |i: &u32| {
            let t = &repo.tags[*i as usize];
            (t.manifest, &t.name)
        };
        tags_on.sort_unstable_by(|a, b| key(a).cmp(&key(b)));
    }
    let mut next = 0;
    for (id, x) in repo.manifests.iter().enumerate() {
        if !going[id] {
            continue;
        }
        out.manifest_deletions += 1;
        if let Some(size) = x.size {
            out.reclaimable = Some(out.reclaimable.unwrap_or(0).saturating_add(size));
        }
        if !ctx.mutations {
            continue;
        }
        let start = next;
        while tags_on
            .get(next)
            .is_some_and(|&i| repo.tags[i as usize].manifest.index() == id)
        {
            next += 1;
        }
        let tags: Box<[TagName]> = tags_on[start..next]
            .iter()
            .map(|&i| repo.tags[i as usize].name.clone())
            .collect();
        let referrer = fates.referrer[id];
        if ctx.caps.delete_by_tag && !referrer && !tags.is_empty() {
            // Tag by tag: deleting by digest would also take a kept tag moved onto the image
            // during the run; the untagged manifest is left to the registry's own garbage
            // collection.
            for tag in tags.into_vec() {
                out.mutations.push((
                    0,
                    Mutation::DeleteTag {
                        repository: repo.name.clone(),
                        tag,
                        digest: x.digest.clone(),
                    },
                ));
            }
            continue;
        }
        let phase = if referrer {
            2 + fates.round[id]
        } else if x.children.is_empty() {
            2
        } else {
            1
        };
        out.mutations.push((
            phase,
            Mutation::DeleteManifest {
                repository: repo.name.clone(),
                digest: x.digest.clone(),
                tags,
                subject: referrer
                    .then(|| fates.subject_of[id].map(|s| digest_of(repo, s)))
                    .flatten(),
            },
        ));
    }
}

/// The repository's plan: every tag's decision by name, the mutations in execution order.
/// Fails when a tag name is listed twice.
fn finish_repository(
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

impl fmt::Display for Mutation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mutation::DeleteTag {
                repository,
                tag,
                digest,
            } => write!(f, "delete tag {repository}:{tag} ({})", digest.short()),
            Mutation::DeleteManifest {
                repository,
                digest,
                tags,
                subject,
            } => {
                write!(f, "delete manifest {repository}@{digest}")?;
                if !tags.is_empty() {
                    write!(f, " with tags {}", tags.join(", "))?;
                }
                if let Some(s) = subject {
                    write!(f, " (referrer of {})", s.short())?;
                }
                Ok(())
            }
        }
    }
}

/// Plans a registry one repository at a time, as its inventory is read: each repository's
/// decisions are made exactly as [`plan`] makes them (every decision is per repository, the
/// other policies' vetoes too), and the plan's counts and notes are kept as totals, so that a
/// run need not hold the whole registry. [`finish`](Self::finish) makes the [`Plan`] from the
/// totals and the repositories the caller chose to keep.
pub struct RepositoryPlanner<'a> {
    policy: &'a Policy,
    others: Vec<&'a Policy>,
    caps: Capabilities,
    now: Timestamp,
    counts: Counts,
    reclaimable: Option<u64>,
    unsupported: Vec<u64>,
    out_of_scope: u64,
}

impl<'a> RepositoryPlanner<'a> {
    /// A planner of `policy` at `now` on a registry with `capabilities`; `others` as for
    /// [`plan`].
    pub fn new(
        policy: &'a Policy,
        others: &'a [Policy],
        capabilities: Capabilities,
        now: Timestamp,
    ) -> Self {
        let mut others: Vec<&Policy> = others
            .iter()
            .filter(|o| o.name() != policy.name() && !o.entries.is_empty())
            .collect();
        others.sort_by(|a, b| a.name().cmp(b.name()));
        RepositoryPlanner {
            policy,
            others,
            caps: capabilities,
            now,
            counts: Counts::default(),
            reclaimable: None,
            unsupported: vec![0; policy.entries.len()],
            out_of_scope: 0,
        }
    }

    /// Plans one repository with the images `in_use` as of its reading, and adds it to the
    /// totals; `None` (counted as out of scope) when the policy does not cover it. Each
    /// repository is to be given once.
    pub fn plan_repository(&mut self, repo: &Repository, in_use: &InUse) -> Option<RepositoryPlan> {
        if !self.policy.in_scope(&repo.name) {
            self.out_of_scope += 1;
            return None;
        }
        let ctx = Ctx {
            now_secs: self.now.as_second(),
            policy: self.policy,
            others: self.others.clone(),
            caps: self.caps,
            in_use,
            mutations: self.policy.mode() == PolicyMode::Enforce,
        };
        let (mut results, unsupported) = plan_chunk(&ctx, &[vec![repo]]);
        for (u, c) in self.unsupported.iter_mut().zip(unsupported) {
            *u += c;
        }
        let (repo_plan, out) = results.pop()?;
        tally(&mut self.counts, &mut self.reclaimable, &repo_plan, &out);
        Some(repo_plan)
    }

    /// The totals so far (tag deletions among them, for the blast-radius limits).
    pub fn counts(&self) -> Counts {
        Counts {
            reclaimable_bytes: self.reclaimable,
            ..self.counts
        }
    }

    /// The plan: the totals and notes of every repository planned, with `repositories` — the
    /// ones the caller kept, by name — as its repositories.
    pub fn finish(self, repositories: Vec<RepositoryPlan>) -> Plan {
        let counts = self.counts();
        Plan {
            policy: self.policy.name_arc(),
            mode: self.policy.mode(),
            now: self.now,
            limits: self.policy.limits(),
            repositories,
            counts,
            out_of_scope_repositories: self.out_of_scope,
            notes: notes(&self.unsupported),
        }
    }
}

/// The notes of a plan: the keep entries whose `pulledWithin` could not be judged.
fn notes(unsupported: &[u64]) -> Vec<String> {
    unsupported
        .iter()
        .enumerate()
        .filter(|(_, n)| **n > 0)
        .map(|(e, n)| {
            format!(
                "keep[{e}]: pulledWithin needs pull statistics, which this registry does not keep; the {n} tags the entry selects are kept"
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::api::retention::RetentionRules;
    use crate::retention::inventory::{RepositoryBuilder, Time};

    #[test]
    fn planning_on_several_threads_gives_the_same_plan_as_on_one() {
        let now: Timestamp = "2026-11-01T00:00:00Z".parse().unwrap();
        let mut repositories = Vec::new();
        for r in 0..1_200 {
            let mut b = RepositoryBuilder::new(&format!("team-{}/svc-{r}", r % 7));
            for t in 0..100u64 {
                let digest = format!("sha256:{:064x}", r * 1_000 + t / 2);
                let pushed = now.checked_sub(SignedDuration::from_hours(t as i64 * 30));
                b.tag(&format!("ci-{t}"), &digest).pushed = pushed.ok().map(Time::from);
            }
            if r % 50 == 0 {
                b.incomplete("listing failed");
            }
            repositories.push(b.build());
        }
        let inventory = Inventory {
            capabilities: Capabilities {
                delete_by_tag: false,
                pull_stats: false,
            },
            repositories,
        };
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
        let mut repositories = Vec::new();
        for r in 0..60u64 {
            let mut b = RepositoryBuilder::new(&format!("team-{}/svc-{r}", r % 3));
            for t in 0..40u64 {
                let digest = format!("sha256:{:064x}", r * 1_000 + t / 3);
                let pushed = now.checked_sub(SignedDuration::from_hours(t as i64 * 30));
                b.tag(&format!("ci-{t}"), &digest).pushed = pushed.ok().map(Time::from);
            }
            if r % 17 == 0 {
                b.incomplete("listing failed");
            }
            repositories.push(b.build());
        }
        // In name order, as a run reads them (the catalog's order).
        repositories.sort_by(|a, b| a.name.cmp(&b.name));
        let inventory = Inventory {
            capabilities: Capabilities {
                delete_by_tag: false,
                pull_stats: false,
            },
            repositories,
        };
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
}
