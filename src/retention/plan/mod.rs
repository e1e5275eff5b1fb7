//! The planner: policy + inventory + protections + `now` → a [`Plan`]. Pure and
//! deterministic: the same inputs in any listing order give the same plan.

mod ages;
mod digest;
mod keeps;
mod limits;
mod manifests;
mod repository;
#[cfg(test)]
mod tests;

pub use digest::PlanDigest;
pub use limits::{check_limits, count_breach, LimitBreach};
use repository::{consistency, incomplete, plan_repository};

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use jiff::Timestamp;

use super::decision::{shared_name, Action, Decision, Seconds, SharedName};
use super::inventory::{Capabilities, Completeness, Digest, Inventory, Repository, TagName};
use super::policy::{Limits, Policy};
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

/// The policies among `others` whose keep entries veto `policy`'s deletions: not `policy`
/// itself, only those with keep entries, by name — so the policy a veto names does not depend
/// on the order given.
fn vetoing<'p>(policy: &Policy, others: &'p [Policy]) -> Vec<&'p Policy> {
    let mut others: Vec<&Policy> = others
        .iter()
        .filter(|o| o.name() != policy.name() && !o.entries.is_empty())
        .collect();
    others.sort_by(|a, b| a.name().cmp(b.name()));
    others
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
    let others = vetoing(policy, others);
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
    let notes = notes(&unsupported);
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
        let others = vetoing(policy, others);
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
