//! The executor: carries out a [`Plan`]'s mutations against the registry, carefully.
//!
//! - It refuses a `Plan`-mode plan and a plan that breaches its blast-radius limits, before
//!   any request (invariants 6 and 7).
//! - Before each deletion it re-resolves the tag with a `HEAD` (for a manifest, its first
//!   tag) and skips the deletion when it now points elsewhere (invariant 3): reported as
//!   skipped, not an error. One re-check and one DELETE per deletion.
//! - Deleting by digest removes every tag on the manifest, so before the first one in a
//!   repository its tags are listed again: a manifest that a tag added since the listing
//!   points at is kept (one tags listing per repository, one `HEAD` per new tag). A tag that
//!   was listed and kept, then moved onto a doomed manifest during the run, is not seen: that
//!   would take a `HEAD` of every kept tag.
//! - Tags are deleted alone where the plan says so (zot); manifests by digest. A 404 is
//!   success (already gone), so re-running an applied plan deletes nothing new.
//! - Repositories run concurrently; within one, a manifest waits for the index that lists it
//!   and a referrer for its subject, and is skipped if that deletion did not happen.
//! - Per-item failures are reported and the rest goes on.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use futures::stream::{self, StreamExt};

use crate::api::common::condition::Reason;
use crate::api::retention::PolicyMode;
use crate::oci::{DeleteOutcome, RegistryClient, TagCheck};
use crate::retention::{InUse, Inventory, LimitBreach, Mutation, Plan};

/// Called as mutations finish, with how many just finished and how many the plan has in all
/// (for progress bars).
pub type Progress = Arc<dyn Fn(u64, u64) + Send + Sync>;

/// Says whether this process may still delete (the operator: whether it still holds its
/// leader Lease); an error names why not. Asked before the first deletion and again before
/// each repository's (at most every 2 s), so a replica that lost the Lease — cut off from
/// the API server, say — stops instead of racing the new leader.
pub type Fence =
    Arc<dyn Fn() -> futures::future::BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// Which images are in use *now*, in the repositories the argument accepts; an error when
/// that cannot be vouched for (the operator's index of Pods is relisting). A run asks after
/// reading the registry (for the plan) and again before each repository's deletions, so a
/// Pod created while the registry was read, or while other repositories were pruned, still
/// protects its image.
pub type InUseSource = Arc<dyn Fn(&dyn Fn(&str) -> bool) -> Result<InUse, String> + Send + Sync>;

/// How a plan is executed.
#[derive(Clone)]
pub struct ExecuteOptions {
    /// Repositories worked on at the same time.
    pub repositories_in_flight: usize,
    /// Deletions in flight per repository. The client's `max_concurrency` bounds the total.
    pub deletions_in_flight: usize,
    /// Progress callback.
    pub progress: Option<Progress>,
    /// Asked before each repository's deletions: a mutation whose tag or digest is in use
    /// by then is skipped.
    pub in_use: Option<InUseSource>,
    /// Asked before deleting anything, and before each repository's deletions.
    pub fence: Option<Fence>,
}

impl Default for ExecuteOptions {
    fn default() -> Self {
        ExecuteOptions {
            repositories_in_flight: 8,
            deletions_in_flight: 8,
            progress: None,
            in_use: None,
            fence: None,
        }
    }
}

impl fmt::Debug for ExecuteOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecuteOptions")
            .field("repositories_in_flight", &self.repositories_in_flight)
            .field("deletions_in_flight", &self.deletions_in_flight)
            .field("progress", &self.progress.is_some())
            .field("in_use", &self.in_use.is_some())
            .field("fence", &self.fence.is_some())
            .finish()
    }
}

/// Why a plan was not executed at all (nothing was sent to the registry).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecuteError {
    /// The plan was made in `Plan` mode: it must not change anything.
    #[error("the plan was made in Plan mode; it is not executed")]
    PlanMode,
    /// The plan breaches a blast-radius limit.
    #[error("{0}")]
    BlastRadius(#[from] LimitBreach),
    /// The fence said no before the first deletion (this replica may no longer lead).
    #[error("not deleting: {0}")]
    Fenced(String),
}

impl ExecuteError {
    /// The reason for conditions, events and metrics.
    pub fn reason(&self) -> Reason {
        match self {
            ExecuteError::PlanMode => Reason::PlanMode,
            ExecuteError::BlastRadius(_) => Reason::BlastRadiusExceeded,
            ExecuteError::Fenced(_) => Interruption::NotLeader.reason(),
        }
    }
}

/// What stopped a run part-way from outside the registry: worth retrying, and no fault of the
/// registry's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interruption {
    /// This replica no longer leads (the execute fence said no).
    NotLeader,
    /// The images in use cannot be vouched for (the operator is listing Pods again).
    InUseUnknown,
}

impl Interruption {
    /// The reason for conditions, events and metrics.
    pub fn reason(self) -> Reason {
        match self {
            Interruption::NotLeader => Reason::NotLeader,
            Interruption::InUseUnknown => Reason::WaitingForInUseIndex,
        }
    }
}

/// How one mutation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemResult {
    /// Deleted.
    Deleted,
    /// Already gone (the tag or manifest no longer existed): success.
    AlreadyGone,
    /// Skipped: a tag now points at another digest than the plan saw (re-pushed).
    Changed {
        /// The tag that moved.
        tag: String,
        /// The digest it points at now.
        now: String,
    },
    /// Skipped: a tag that was not in the listing now points at the manifest (someone tagged
    /// the image during the run); deleting by digest would remove that tag too.
    Tagged {
        /// The new tag.
        tag: String,
    },
    /// Skipped: a Pod or workload started using the image (by tag or digest) after the plan.
    InUse {
        /// Who uses it (`Pod team-a/web-7f9`).
        by: String,
    },
    /// Skipped: the deletion it depends on (its index, its subject) did not happen.
    Blocked {
        /// Which deletion did not happen.
        waiting_for: String,
    },
    /// Failed.
    Failed {
        /// What went wrong.
        reason: String,
    },
    /// Not attempted: the run was stopped part-way by something outside the registry (this
    /// replica no longer leads, or the images in use cannot be checked); worth retrying.
    Interrupted {
        /// What stopped it.
        by: Interruption,
        /// Why, for people.
        message: String,
    },
}

impl ItemResult {
    /// Deleted or already gone.
    pub fn is_done(&self) -> bool {
        matches!(self, ItemResult::Deleted | ItemResult::AlreadyGone)
    }
}

impl fmt::Display for ItemResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ItemResult::Deleted => f.write_str("deleted"),
            ItemResult::AlreadyGone => f.write_str("already gone"),
            ItemResult::Changed { tag, now } => {
                write!(f, "skipped: tag {tag} now points at {now}")
            }
            ItemResult::Tagged { tag } => {
                write!(f, "skipped: tag {tag} was added to it since the listing")
            }
            ItemResult::InUse { by } => write!(f, "skipped: now in use by {by}"),
            ItemResult::Blocked { waiting_for } => {
                write!(f, "skipped: {waiting_for} was not deleted")
            }
            ItemResult::Failed { reason } => write!(f, "failed: {reason}"),
            ItemResult::Interrupted { message, .. } => write!(f, "not done: {message}"),
        }
    }
}

/// One mutation and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemOutcome {
    /// What was to be done.
    pub mutation: Mutation,
    /// How it ended.
    pub result: ItemResult,
}

/// Counts of an execution.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExecutionCounts {
    /// Tags removed (alone, or with their manifest).
    pub deleted_tags: u64,
    /// Manifests deleted by digest.
    pub deleted_manifests: u64,
    /// Mutations whose target was already gone.
    pub already_gone: u64,
    /// Mutations skipped because a tag was re-pushed, or added to the image, since the
    /// listing.
    pub changed: u64,
    /// Mutations skipped because the image came into use after the plan.
    pub in_use: u64,
    /// Mutations skipped because what they depend on was not deleted.
    pub blocked: u64,
    /// Mutations that failed.
    pub errors: u64,
}

/// What an execution did, in plan order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Execution {
    /// Every mutation of the plan with its result, in plan order.
    pub items: Vec<ItemOutcome>,
    /// The counts.
    pub counts: ExecutionCounts,
}

impl Execution {
    /// The failed and skipped items, for people.
    pub fn problems(&self) -> impl Iterator<Item = &ItemOutcome> {
        self.items.iter().filter(|i| !i.result.is_done())
    }

    /// Why the run stopped part-way, when it did: the first interruption and its message.
    pub fn interruption(&self) -> Option<(Interruption, &str)> {
        self.items.iter().find_map(|i| match &i.result {
            ItemResult::Interrupted { by, message } => Some((*by, message.as_str())),
            _ => None,
        })
    }

    /// [`interruption`](Self::interruption) with the interruption's reason as its string.
    pub fn interrupted(&self) -> Option<(&'static str, &str)> {
        self.interruption()
            .map(|(by, message)| (by.reason().as_str(), message))
    }

    /// One sentence with the counts.
    pub fn headline(&self) -> String {
        let c = self.counts;
        format!(
            "deleted {} tags ({} manifests), {} already gone, {} skipped because tags changed since the listing, {} skipped because they came into use, {} skipped because a dependency was not deleted, {} errors",
            c.deleted_tags, c.deleted_manifests, c.already_gone, c.changed, c.in_use, c.blocked, c.errors
        )
    }
}

/// Executes `plan` against `client`. `inventory` is the one the plan was made from (it tells
/// which manifests are children of which indexes).
///
/// Refuses, without any request, a `Plan`-mode plan and one that breaches its limits.
pub async fn execute(
    client: &RegistryClient,
    plan: &Plan,
    inventory: &Inventory,
    options: &ExecuteOptions,
) -> Result<Execution, ExecuteError> {
    if plan.mode == PolicyMode::Plan {
        return Err(ExecuteError::PlanMode);
    }
    plan.check_blast_radius()?;
    let fence = options.fence.clone().map(Gate::new);
    if let Some(gate) = &fence {
        gate.check().await.map_err(ExecuteError::Fenced)?;
    }
    // Mutations by repository, keeping plan order and each one's position.
    let mut by_repo: BTreeMap<&str, Vec<(usize, &Mutation)>> = BTreeMap::new();
    for (i, m) in plan.mutations().enumerate() {
        by_repo.entry(m.repository()).or_default().push((i, m));
    }
    let parents: HashMap<&str, HashMap<String, Vec<String>>> = inventory
        .repositories
        .iter()
        .filter(|r| by_repo.contains_key(&*r.name))
        .map(|r| {
            let mut p: HashMap<String, Vec<String>> = HashMap::new();
            for m in &r.manifests {
                for c in &m.children {
                    if let Some(child) = r.manifest(*c) {
                        p.entry(child.digest.to_string())
                            .or_default()
                            .push(m.digest.to_string());
                    }
                }
            }
            (&*r.name, p)
        })
        .collect();
    let listed: HashMap<&str, HashSet<&str>> = inventory
        .repositories
        .iter()
        .filter(|r| by_repo.contains_key(&*r.name))
        .map(|r| (&*r.name, r.tags.iter().map(|t| &*t.name).collect()))
        .collect();
    let empty = HashMap::new();
    let no_tags = HashSet::new();
    let per_repo = options.deletions_in_flight.max(1);
    let total = plan.mutations().count() as u64;
    // The futures are built eagerly so that no closure over borrowed data ends up inside the
    // stream's type: that keeps this future `Send` for any lifetime, as a kube-rs reconciler
    // (the operator's policy controller) requires.
    let work: Vec<_> = by_repo
        .into_iter()
        .map(|(repo, items)| {
            let parents = parents.get(repo).unwrap_or(&empty);
            run_repository(
                client,
                repo,
                items,
                parents,
                listed.get(repo).unwrap_or(&no_tags),
                options.in_use.as_ref(),
                fence.as_ref(),
                per_repo,
                options.progress.clone(),
                total,
            )
        })
        .collect();
    let results: Vec<Vec<(usize, ItemResult)>> = stream::iter(work)
        .buffer_unordered(options.repositories_in_flight.max(1))
        .collect()
        .await;
    let mut slots: Vec<Option<ItemResult>> = vec![None; plan.mutations().count()];
    for (i, r) in results.into_iter().flatten() {
        slots[i] = Some(r);
    }
    let mut execution = Execution::default();
    for (m, r) in plan.mutations().zip(slots) {
        let result = r.unwrap_or(ItemResult::Failed {
            reason: "not executed".to_string(),
        });
        let c = &mut execution.counts;
        match (&result, m) {
            (ItemResult::Deleted, Mutation::DeleteTag { .. }) => c.deleted_tags += 1,
            (ItemResult::Deleted, Mutation::DeleteManifest { tags, .. }) => {
                c.deleted_manifests += 1;
                c.deleted_tags += tags.len() as u64;
            }
            (ItemResult::AlreadyGone, _) => c.already_gone += 1,
            (ItemResult::Changed { .. } | ItemResult::Tagged { .. }, _) => c.changed += 1,
            (ItemResult::InUse { .. }, _) => c.in_use += 1,
            (ItemResult::Blocked { .. }, _) => c.blocked += 1,
            (ItemResult::Failed { .. } | ItemResult::Interrupted { .. }, _) => c.errors += 1,
        }
        execution.items.push(ItemOutcome {
            mutation: m.clone(),
            result,
        });
    }
    Ok(execution)
}

/// Runs one mutation and reports it to the progress callback.
async fn run_one_reporting<'a>(
    client: &RegistryClient,
    i: usize,
    m: &'a Mutation,
    progress: Option<Progress>,
    total: u64,
) -> (usize, &'a Mutation, ItemResult) {
    let r = run_one(client, m).await;
    if let Some(p) = &progress {
        p(1, total);
    }
    (i, m, r)
}

/// Runs one repository's mutations: those whose dependencies are settled go together, in
/// waves, until none is left.
#[allow(clippy::too_many_arguments)]
async fn run_repository(
    client: &RegistryClient,
    repository: &str,
    items: Vec<(usize, &Mutation)>,
    parents: &HashMap<String, Vec<String>>,
    listed: &HashSet<&str>,
    in_use: Option<&InUseSource>,
    fence: Option<&Gate>,
    in_flight: usize,
    progress: Option<Progress>,
    total: u64,
) -> Vec<(usize, ItemResult)> {
    // Digests this plan deletes in the repository: only those are waited for.
    let deleting: HashSet<String> = items
        .iter()
        .filter_map(|(_, m)| match m {
            Mutation::DeleteManifest { digest, .. } => Some(digest.to_string()),
            Mutation::DeleteTag { .. } => None,
        })
        .collect();
    // Deleting by digest removes every tag on the manifest, also one added since the
    // listing: look for new tags first, and keep the manifests they point at.
    let mut settled: HashMap<String, bool> = HashMap::new();
    let mut out = Vec::with_capacity(items.len());
    let mut items = items;
    if !deleting.is_empty() {
        match new_tags_on(client, repository, listed, &deleting).await {
            Ok(tagged) => {
                items.retain(|(i, m)| {
                    let Mutation::DeleteManifest { digest, .. } = m else {
                        return true;
                    };
                    let Some(tag) = tagged.get(&digest.to_string()) else {
                        return true;
                    };
                    settled.insert(digest.to_string(), false);
                    if let Some(p) = &progress {
                        p(1, total);
                    }
                    out.push((*i, ItemResult::Tagged { tag: tag.clone() }));
                    false
                });
            }
            Err(reason) => {
                // Fail closed: without a fresh listing no digest is deleted here (tag
                // deletions touch nothing else and go on).
                items.retain(|(i, m)| {
                    let Mutation::DeleteManifest { digest, .. } = m else {
                        return true;
                    };
                    settled.insert(digest.to_string(), false);
                    if let Some(p) = &progress {
                        p(1, total);
                    }
                    out.push((
                        *i,
                        ItemResult::Failed {
                            reason: reason.clone(),
                        },
                    ));
                    false
                });
            }
        }
    }
    if let Some(gate) = fence {
        if let Err(why) = gate.check().await {
            for (i, m) in items {
                if let Mutation::DeleteManifest { digest, .. } = m {
                    settled.insert(digest.to_string(), false);
                }
                if let Some(p) = &progress {
                    p(1, total);
                }
                out.push((
                    i,
                    ItemResult::Interrupted {
                        by: Interruption::NotLeader,
                        message: why.clone(),
                    },
                ));
            }
            return out;
        }
    }
    // Pods started since the plan: skip what they use (an in-memory lookup, no request).
    if let Some(source) = in_use {
        let now = source(&|r| r == repository);
        items.retain(|(i, m)| {
            let verdict = match &now {
                Ok(in_use) => used_by(in_use, m).map(|by| ItemResult::InUse { by }),
                Err(why) => Some(ItemResult::Interrupted {
                    by: Interruption::InUseUnknown,
                    message: format!("images in use cannot be checked: {why}"),
                }),
            };
            let Some(r) = verdict else {
                return true;
            };
            if let Mutation::DeleteManifest { digest, .. } = m {
                settled.insert(digest.to_string(), false);
            }
            if let Some(p) = &progress {
                p(1, total);
            }
            out.push((*i, r));
            false
        });
    }
    let deps = |m: &Mutation| -> Vec<String> {
        match m {
            Mutation::DeleteTag { .. } => Vec::new(),
            Mutation::DeleteManifest {
                digest, subject, ..
            } => {
                let mut d: Vec<String> = parents
                    .get(&digest.to_string())
                    .into_iter()
                    .flatten()
                    .filter(|p| deleting.contains(*p) && **p != digest.to_string())
                    .map(|p| p.to_string())
                    .collect();
                if let Some(s) = subject
                    .as_ref()
                    .filter(|s| deleting.contains(&s.to_string()))
                {
                    d.push(s.to_string());
                }
                d
            }
        }
    };
    let mut pending: Vec<(usize, &Mutation, Vec<String>)> =
        items.into_iter().map(|(i, m)| (i, m, deps(m))).collect();
    // Each wave settles at least one item, so this ends within `pending.len()` waves.
    for _ in 0..=pending.len() {
        if pending.is_empty() {
            break;
        }
        let mut ready = Vec::new();
        let mut waiting = Vec::new();
        for (i, m, d) in pending {
            if let Some(failed) = d.iter().find(|x| settled.get(*x) == Some(&false)) {
                let r = ItemResult::Blocked {
                    waiting_for: failed.clone(),
                };
                if let Mutation::DeleteManifest { digest, .. } = m {
                    settled.insert(digest.to_string(), false);
                }
                if let Some(p) = &progress {
                    p(1, total);
                }
                out.push((i, r));
            } else if d.iter().all(|x| settled.contains_key(x)) {
                ready.push((i, m));
            } else {
                waiting.push((i, m, d));
            }
        }
        if ready.is_empty() && !waiting.is_empty() {
            // A cycle (cannot happen with a consistent plan): fail closed.
            for (i, _, _) in waiting {
                out.push((
                    i,
                    ItemResult::Failed {
                        reason: "its dependencies form a cycle".to_string(),
                    },
                ));
            }
            break;
        }
        // Built eagerly (see `execute`): keeps this future Send for any lifetime.
        let work: Vec<_> = ready
            .into_iter()
            .map(|(i, m)| run_one_reporting(client, i, m, progress.clone(), total))
            .collect();
        let done: Vec<(usize, &Mutation, ItemResult)> = stream::iter(work)
            .buffer_unordered(in_flight)
            .collect()
            .await;
        for (i, m, r) in done {
            if let Mutation::DeleteManifest { digest, .. } = m {
                settled.insert(digest.to_string(), r.is_done());
            }
            out.push((i, r));
        }
        pending = waiting;
    }
    out
}

/// A [`Fence`] asked at most every 2 s: a yes is trusted that long.
struct Gate {
    fence: Fence,
    last_yes: std::sync::Mutex<Option<std::time::Instant>>,
}

impl Gate {
    fn new(fence: Fence) -> Gate {
        Gate {
            fence,
            last_yes: std::sync::Mutex::new(None),
        }
    }

    async fn check(&self) -> Result<(), String> {
        let fresh = self
            .last_yes
            .lock()
            .map(|t| t.is_some_and(|t| t.elapsed() < std::time::Duration::from_secs(2)))
            .unwrap_or(false);
        if fresh {
            return Ok(());
        }
        (self.fence)().await?;
        if let Ok(mut t) = self.last_yes.lock() {
            *t = Some(std::time::Instant::now());
        }
        Ok(())
    }
}

/// Who uses what `m` would delete: its digest, or any tag it removes.
fn used_by(in_use: &InUse, m: &Mutation) -> Option<String> {
    let (repository, digest, tags): (&str, String, Vec<&str>) = match m {
        Mutation::DeleteTag {
            repository,
            tag,
            digest,
        } => (repository, digest.to_string(), vec![&**tag]),
        Mutation::DeleteManifest {
            repository,
            digest,
            tags,
            ..
        } => (
            repository,
            digest.to_string(),
            tags.iter().map(|t| &**t).collect(),
        ),
    };
    in_use
        .digest_user(repository, &digest)
        .or_else(|| tags.iter().find_map(|t| in_use.tag_user(repository, t)))
        .map(str::to_string)
}

/// Tags of `repository` that were not `listed` and now point at a digest in `deleting`
/// (digest → tag): one tags listing, and one `HEAD` per new tag.
async fn new_tags_on(
    client: &RegistryClient,
    repository: &str,
    listed: &HashSet<&str>,
    deleting: &HashSet<String>,
) -> Result<HashMap<String, String>, String> {
    let tags = client
        .tags(repository)
        .await
        .map_err(|e| format!("re-listing the tags before deleting failed: {e}"))?;
    let mut tagged = HashMap::new();
    for tag in tags.iter().filter(|t| !listed.contains(t.as_str())) {
        let head = client
            .head_manifest(repository, tag)
            .await
            .map_err(|e| format!("resolving tag {tag}, new since the listing, failed: {e}"))?;
        if let Some(h) = head.filter(|h| deleting.contains(&h.digest)) {
            tagged.entry(h.digest).or_insert_with(|| tag.clone());
        }
    }
    Ok(tagged)
}

/// Re-checks and carries out one mutation.
async fn run_one(client: &RegistryClient, m: &Mutation) -> ItemResult {
    let failed = |what: &str, e: crate::oci::OciError| ItemResult::Failed {
        reason: format!("{what}: {e}"),
    };
    match m {
        Mutation::DeleteTag {
            repository,
            tag,
            digest,
        } => {
            match client.check_tag(repository, tag, &digest.to_string()).await {
                Ok(TagCheck::Unchanged(_)) => {}
                Ok(TagCheck::Gone) => return ItemResult::AlreadyGone,
                Ok(TagCheck::Moved(now)) => {
                    return ItemResult::Changed {
                        tag: tag.to_string(),
                        now: now.digest,
                    }
                }
                Err(e) => return failed(&format!("re-checking tag {tag}"), e),
            }
            match client.delete_tag(repository, tag).await {
                Ok(DeleteOutcome::Deleted) => ItemResult::Deleted,
                Ok(DeleteOutcome::AlreadyGone) => ItemResult::AlreadyGone,
                Err(e) => failed(&format!("deleting tag {tag}"), e),
            }
        }
        Mutation::DeleteManifest {
            repository,
            digest,
            tags,
            ..
        } => {
            // One re-check per deletion: deleting by digest cannot remove a tag that moved
            // to another digest, so what the re-check guards is the plan's premise — a tag
            // re-pushed since the listing means the image is being worked on, and the whole
            // deletion is skipped. Re-checking every alias would cost a HEAD per alias and
            // protect nothing more.
            if let Some(tag) = tags.first() {
                match client.check_tag(repository, tag, &digest.to_string()).await {
                    Ok(TagCheck::Unchanged(_) | TagCheck::Gone) => {}
                    Ok(TagCheck::Moved(now)) => {
                        return ItemResult::Changed {
                            tag: tag.to_string(),
                            now: now.digest,
                        }
                    }
                    Err(e) => return failed(&format!("re-checking tag {tag}"), e),
                }
            }
            match client
                .delete_manifest(repository, &digest.to_string())
                .await
            {
                Ok(DeleteOutcome::Deleted) => ItemResult::Deleted,
                Ok(DeleteOutcome::AlreadyGone) => ItemResult::AlreadyGone,
                Err(e) => failed(&format!("deleting {}", digest.short()), e),
            }
        }
    }
}
