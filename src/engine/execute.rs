//! The executor: carries out a [`Plan`]'s mutations against the registry, carefully.
//!
//! - It refuses a `Plan`-mode plan and a plan that breaches its blast-radius limits, before
//!   any request (invariants 6 and 7).
//! - Before each deletion it re-resolves the tag with a `HEAD` (for a manifest, its first
//!   tag) and skips the deletion when it now points elsewhere (invariant 3): reported as
//!   skipped, not an error. One re-check and one DELETE per deletion. A DELETE answered 429
//!   or 5xx is tried again after the wait, re-checking first (invariant 10): the client never
//!   repeats a DELETE itself.
//! - Deleting by digest removes every tag on the manifest, so before the first one in a
//!   repository its tags are listed again and every tag the plan does not delete is
//!   resolved: a manifest that a tag added since the listing, or a kept tag moved during the
//!   run, points at is kept (one tags listing per repository, one `HEAD` per tag the plan
//!   does not delete there).
//! - Tags are deleted alone where the plan says so (zot, where every tag goes on its own);
//!   manifests by digest. A 404 is success (already gone), so re-running an applied plan
//!   deletes nothing new.
//! - Repositories run concurrently; within one, a manifest waits for the index that lists it
//!   and a referrer for its subject, and is skipped if that deletion did not happen.
//! - Per-item failures are reported and the rest goes on — except a refusal of the account
//!   (401, 403): until one DELETE has been accepted they go one at a time, and the first
//!   refused stops the run; nothing after it is attempted (a read-only account would
//!   otherwise be refused once per planned deletion).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use futures::stream::{self, StreamExt};

use crate::api::common::condition::Reason;
use crate::api::retention::PolicyMode;
use crate::oci::{DeleteOutcome, Denial, RegistryClient, TagCheck};
use crate::retention::{InUse, Inventory, LimitBreach, Mutation, Plan, Repository};

/// Called as mutations finish, with how many just finished and how many the plan has in all
/// (for progress bars).
pub type Progress = Arc<dyn Fn(u64, u64) + Send + Sync>;

/// Says whether this process may still delete (the operator: whether it still holds its
/// leader Lease); an error names why not. Asked before the first deletion, before each
/// repository's and before every DELETE request — a yes is trusted for [`FENCE_TRUST`], and a
/// DELETE tried again after a failure always asks afresh — so a replica that lost the Lease
/// (cut off from the API server, say) stops instead of racing the new leader. A fence must
/// answer yes only when it will still hold for [`FENCE_TRUST`] after the answer.
pub type Fence =
    Arc<dyn Fn() -> futures::future::BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// How long a [`Fence`]'s yes is trusted before it is asked again.
pub const FENCE_TRUST: std::time::Duration = std::time::Duration::from_secs(2);

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
    /// Asked before deleting anything, before each repository's deletions and before every
    /// DELETE request (afresh before one tried again).
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
            ExecuteError::BlastRadius(b) => b.reason(),
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
    /// Skipped: a tag the plan does not delete — new since the listing, or a kept tag moved —
    /// now points at the manifest (someone tagged the image during the run, as in a
    /// rollback); deleting by digest would remove that tag too.
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
    /// The registry refused the account this mutation (401, 403): the run stops here.
    Refused {
        /// How it refused.
        denial: Denial,
        /// What was refused, with the registry's answer.
        reason: String,
    },
    /// Not attempted: the registry refused the account an earlier mutation of the run.
    NotAttempted {
        /// The refusal that stopped the run.
        because: String,
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
            ItemResult::Refused { reason, .. } => write!(f, "refused: {reason}"),
            ItemResult::NotAttempted { because } => {
                write!(
                    f,
                    "not attempted: the registry refused an earlier deletion ({because})"
                )
            }
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
    /// Mutations that failed (a refused one included).
    pub errors: u64,
    /// Mutations not attempted because the registry refused the account an earlier one.
    pub not_attempted: u64,
}

/// What an execution did, in plan order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Execution {
    /// Every mutation of the plan with its result, in plan order.
    pub items: Vec<ItemOutcome>,
    /// The counts.
    pub counts: ExecutionCounts,
    /// The registry's refusal of the account that stopped the run, with what was refused.
    pub refused: Option<(Denial, String)>,
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
        let line = format!(
            "deleted {} tags ({} manifests), {} already gone, {} skipped because tags changed since the listing, {} skipped because they came into use, {} skipped because a dependency was not deleted, {} errors",
            c.deleted_tags, c.deleted_manifests, c.already_gone, c.changed, c.in_use, c.blocked, c.errors
        );
        match &self.refused {
            Some((_, why)) => format!(
                "{line}; stopped at the first refusal, {} deletions not attempted: {why}",
                c.not_attempted
            ),
            None => line,
        }
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
    let deletes = DeleteGate::default();
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
    let repositories: HashMap<&str, &Repository> = inventory
        .repositories
        .iter()
        .filter(|r| by_repo.contains_key(&*r.name))
        .map(|r| (&*r.name, r))
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
                repositories.get(repo).copied(),
                options.in_use.as_ref(),
                fence.as_ref(),
                &deletes,
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
            (
                ItemResult::Failed { .. }
                | ItemResult::Interrupted { .. }
                | ItemResult::Refused { .. },
                _,
            ) => c.errors += 1,
            (ItemResult::NotAttempted { .. }, _) => c.not_attempted += 1,
        }
        execution.items.push(ItemOutcome {
            mutation: m.clone(),
            result,
        });
    }
    execution.refused = deletes.refusal();
    Ok(execution)
}

/// Runs one mutation and reports it to the progress callback.
async fn run_one_reporting<'a>(
    client: &RegistryClient,
    i: usize,
    m: &'a Mutation,
    deletes: &DeleteGate,
    fence: Option<&Gate>,
    progress: Option<Progress>,
    total: u64,
) -> (usize, &'a Mutation, ItemResult) {
    let r = run_one(client, m, deletes, fence).await;
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
    inventory: Option<&Repository>,
    in_use: Option<&InUseSource>,
    fence: Option<&Gate>,
    deletes: &DeleteGate,
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
    // Digests whose tags this plan deletes one by one (zot): a referrer of one waits for
    // them, and is skipped if one of them did not happen.
    let untagging: HashSet<String> = items
        .iter()
        .filter_map(|(_, m)| match m {
            Mutation::DeleteTag { digest, .. } => Some(digest.to_string()),
            Mutation::DeleteManifest { .. } => None,
        })
        .collect();
    // Deleting by digest removes every tag on the manifest, also one added since the
    // listing: look for new tags first, and keep the manifests they point at.
    let mut settled: HashMap<String, bool> = HashMap::new();
    let mut out = Vec::with_capacity(items.len());
    let mut items = items;
    if !deleting.is_empty() {
        let going: HashSet<&str> = items
            .iter()
            .flat_map(|(_, m)| match m {
                Mutation::DeleteManifest { tags, .. } => tags.iter().map(|t| &**t).collect(),
                Mutation::DeleteTag { tag, .. } => vec![&**tag],
            })
            .collect();
        let found = new_tags_on(client, repository, listed, &going, &deleting, in_flight).await;
        match found {
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
                settled.insert(m.digest().to_string(), false);
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
    // Pods started since the plan: skip what they use, and what that needs (an in-memory
    // lookup; a `GET` only for a digest in use that the inventory does not know).
    if let Some(source) = in_use {
        let now = source(&|r| r == repository);
        let needed = match &now {
            Ok(in_use) => {
                super::graph::in_use_closure(client, repository, inventory, in_use, in_flight)
                    .await
                    .map_err(|why| format!("reading what the images in use need: {why}"))
            }
            Err(why) => Err(format!("images in use cannot be checked: {why}")),
        };
        items.retain(|(i, m)| {
            let verdict = match (&now, &needed) {
                (Ok(in_use), Ok(needed)) => used_by(in_use, m)
                    .or_else(|| needed.get(&m.digest().to_string()).cloned())
                    .map(|by| ItemResult::InUse { by }),
                (_, Err(why)) => Some(ItemResult::Interrupted {
                    by: Interruption::InUseUnknown,
                    message: why.clone(),
                }),
                (Err(why), Ok(_)) => Some(ItemResult::Interrupted {
                    by: Interruption::InUseUnknown,
                    message: format!("images in use cannot be checked: {why}"),
                }),
            };
            let Some(r) = verdict else {
                return true;
            };
            settled.insert(m.digest().to_string(), false);
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
                if let Some(s) = subject.as_ref().filter(|s| {
                    deleting.contains(&s.to_string()) || untagging.contains(&s.to_string())
                }) {
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
            .map(|(i, m)| run_one_reporting(client, i, m, deletes, fence, progress.clone(), total))
            .collect();
        let done: Vec<(usize, &Mutation, ItemResult)> = stream::iter(work)
            .buffer_unordered(in_flight)
            .collect()
            .await;
        for (i, m, r) in done {
            match m {
                Mutation::DeleteManifest { digest, .. } => {
                    settled.insert(digest.to_string(), r.is_done());
                }
                Mutation::DeleteTag { digest, .. } => {
                    let ok = settled.get(&digest.to_string()).is_none_or(|ok| *ok);
                    settled.insert(digest.to_string(), ok && r.is_done());
                }
            }
            out.push((i, r));
        }
        pending = waiting;
    }
    out
}

/// A [`Fence`] asked at most every [`FENCE_TRUST`]: a yes is trusted that long, counted from
/// when it was asked. One question at a time: deletions that need an answer together wait for
/// the same read.
struct Gate {
    fence: Fence,
    last_yes: tokio::sync::Mutex<Option<std::time::Instant>>,
}

impl Gate {
    fn new(fence: Fence) -> Gate {
        Gate {
            fence,
            last_yes: tokio::sync::Mutex::new(None),
        }
    }

    /// The fence's answer, asked again when its last yes is older than [`FENCE_TRUST`].
    async fn check(&self) -> Result<(), String> {
        self.ask(false).await
    }

    /// The fence's answer, asked now whatever it said last.
    async fn check_fresh(&self) -> Result<(), String> {
        self.ask(true).await
    }

    async fn ask(&self, fresh: bool) -> Result<(), String> {
        let mut last_yes = self.last_yes.lock().await;
        if !fresh && last_yes.is_some_and(|t| t.elapsed() < FENCE_TRUST) {
            return Ok(());
        }
        let asked = std::time::Instant::now();
        *last_yes = None;
        (self.fence)().await?;
        *last_yes = Some(asked);
        Ok(())
    }
}

/// Lets deletions through until the registry refuses the account one: while none has been
/// accepted yet they go one at a time, so a read-only account is refused exactly once; after
/// a refusal none is sent.
#[derive(Default)]
struct DeleteGate {
    accepted: std::sync::atomic::AtomicBool,
    alone: tokio::sync::Mutex<()>,
    refused: std::sync::Mutex<Option<(Denial, String)>>,
}

impl DeleteGate {
    fn refusal(&self) -> Option<(Denial, String)> {
        self.refused.lock().map(|r| r.clone()).unwrap_or(None)
    }

    /// Records the first refusal.
    fn refuse(&self, denial: Denial, why: String) {
        if let Ok(mut r) = self.refused.lock() {
            r.get_or_insert((denial, why));
        }
    }

    /// The item for a mutation not attempted after a refusal, if there was one.
    fn stopped(&self) -> Option<ItemResult> {
        self.refusal()
            .map(|(_, because)| ItemResult::NotAttempted { because })
    }

    /// Sends one delete (`what`, for the report) through the gate; None when an earlier one
    /// was refused. A refusal is recorded before the next delete may go.
    async fn send<F>(&self, what: &str, delete: F) -> Option<crate::oci::Result<DeleteOutcome>>
    where
        F: std::future::Future<Output = crate::oci::Result<DeleteOutcome>>,
    {
        use std::sync::atomic::Ordering;
        let _alone = if self.accepted.load(Ordering::Acquire) {
            None
        } else {
            Some(self.alone.lock().await)
        };
        if self.refusal().is_some() {
            return None;
        }
        let r = delete.await;
        match &r {
            Ok(_) => self.accepted.store(true, Ordering::Release),
            Err(e) => {
                if let Some(denial) = e.denial() {
                    self.refuse(denial, format!("{what}: {e}"));
                }
            }
        }
        Some(r)
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

/// Tags of `repository` that now point at a digest in `deleting` although the plan does
/// not delete them (digest → tag): one tags listing, then one `HEAD` per tag that was not
/// `listed` (added since) and one per listed tag the plan keeps (`going` are the tags the
/// plan deletes) — a kept tag moved onto a doomed digest during the run, as in a rollback.
async fn new_tags_on(
    client: &RegistryClient,
    repository: &str,
    listed: &HashSet<&str>,
    going: &HashSet<&str>,
    deleting: &HashSet<String>,
    in_flight: usize,
) -> Result<HashMap<String, String>, String> {
    let tags = client
        .tags(repository)
        .await
        .map_err(|e| format!("re-listing the tags before deleting failed: {e}"))?;
    // Built eagerly (see `execute`): keeps this future Send for any lifetime.
    let work: Vec<_> = tags
        .iter()
        .filter(|t| !going.contains(t.as_str()))
        .map(|tag| resolve(client, repository, tag, !listed.contains(tag.as_str())))
        .collect();
    let heads: Vec<Result<(String, Option<String>), String>> = stream::iter(work)
        .buffer_unordered(in_flight.max(1))
        .collect()
        .await;
    let mut tagged: HashMap<String, String> = HashMap::new();
    for h in heads {
        let (tag, digest) = h?;
        if let Some(d) = digest.filter(|d| deleting.contains(d)) {
            let slot = tagged.entry(d).or_insert_with(|| tag.clone());
            if tag < *slot {
                *slot = tag;
            }
        }
    }
    Ok(tagged)
}

/// What `tag` points at now (`None`: gone).
async fn resolve(
    client: &RegistryClient,
    repository: &str,
    tag: &str,
    new: bool,
) -> Result<(String, Option<String>), String> {
    match client.head_manifest(repository, tag).await {
        Ok(h) => Ok((tag.to_string(), h.map(|h| h.digest))),
        Err(e) if new => Err(format!(
            "resolving tag {tag}, new since the listing, failed: {e}"
        )),
        Err(e) => Err(format!("re-resolving kept tag {tag} failed: {e}")),
    }
}

/// Re-checks and carries out one mutation. A DELETE answered 429 or 5xx (or lost on the
/// way) is tried again after the wait the registry asked for — or the client's backoff —
/// and each time the tag is re-resolved first (invariant 10): a tag re-pushed during the
/// wait is left alone. Once the registry refused the account a deletion, nothing is tried.
async fn run_one(
    client: &RegistryClient,
    m: &Mutation,
    deletes: &DeleteGate,
    fence: Option<&Gate>,
) -> ItemResult {
    let policy = &client.options().retry;
    let mut retries = 0;
    loop {
        if let Some(stopped) = deletes.stopped() {
            return stopped;
        }
        // Before every DELETE request; a retry asks afresh (the failure may have been the
        // network that also cut this replica off from the API server).
        if let Some(gate) = fence {
            let asked = if retries == 0 {
                gate.check().await
            } else {
                gate.check_fresh().await
            };
            if let Err(why) = asked {
                return ItemResult::Interrupted {
                    by: Interruption::NotLeader,
                    message: why,
                };
            }
        }
        match attempt(client, m, deletes).await {
            Ok(r) => return r,
            Err(Transient { reason, wait }) => {
                if retries >= policy.max_retries {
                    return ItemResult::Failed { reason };
                }
                retries += 1;
                let wait = wait.unwrap_or_else(|| policy.backoff(retries));
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// A DELETE that failed in a way worth another re-check and try.
struct Transient {
    /// What failed, for the report if no try is left.
    reason: String,
    /// What the registry asked to wait (`Retry-After`, capped by the client's policy).
    wait: Option<std::time::Duration>,
}

/// One re-check and DELETE; `Err` for a DELETE to try again. A refusal of the account
/// (401, 403) is recorded in `deletes`, which then lets no other deletion through.
async fn attempt(
    client: &RegistryClient,
    m: &Mutation,
    deletes: &DeleteGate,
) -> Result<ItemResult, Transient> {
    let failed = |what: &str, e: crate::oci::OciError| match e.denial() {
        Some(denial) => {
            let reason = format!("{what}: {e}");
            deletes.refuse(denial, reason.clone());
            ItemResult::Refused { denial, reason }
        }
        None => ItemResult::Failed {
            reason: format!("{what}: {e}"),
        },
    };
    let deleting = |what: String, e: crate::oci::OciError| {
        let wait = match &e {
            crate::oci::OciError::ServerError { retry_after, .. } => Some(*retry_after),
            crate::oci::OciError::Unreachable { .. } => Some(None),
            _ => None,
        };
        match wait {
            Some(wait) => Err(Transient {
                wait,
                reason: format!("{what}: {e}"),
            }),
            None => Ok(failed(&what, e)),
        }
    };
    match m {
        Mutation::DeleteTag {
            repository,
            tag,
            digest,
        } => {
            match client.check_tag(repository, tag, &digest.to_string()).await {
                Ok(TagCheck::Unchanged(_)) => {}
                Ok(TagCheck::Gone) => return Ok(ItemResult::AlreadyGone),
                Ok(TagCheck::Moved(now)) => {
                    return Ok(ItemResult::Changed {
                        tag: tag.to_string(),
                        now: now.digest,
                    })
                }
                Err(e) => return Ok(failed(&format!("re-checking tag {tag}"), e)),
            }
            let what = format!("deleting tag {tag}");
            match deletes
                .send(&what, client.delete_tag(repository, tag))
                .await
            {
                None => Ok(deletes.stopped().unwrap_or(ItemResult::NotAttempted {
                    because: "an earlier deletion was refused".to_string(),
                })),
                Some(Ok(DeleteOutcome::Deleted)) => Ok(ItemResult::Deleted),
                Some(Ok(DeleteOutcome::AlreadyGone)) => Ok(ItemResult::AlreadyGone),
                Some(Err(e)) => deleting(what, e),
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
                        return Ok(ItemResult::Changed {
                            tag: tag.to_string(),
                            now: now.digest,
                        })
                    }
                    Err(e) => return Ok(failed(&format!("re-checking tag {tag}"), e)),
                }
            }
            let digest_text = digest.to_string();
            let what = format!("deleting {}", digest.short());
            match deletes
                .send(&what, client.delete_manifest(repository, &digest_text))
                .await
            {
                None => Ok(deletes.stopped().unwrap_or(ItemResult::NotAttempted {
                    because: "an earlier deletion was refused".to_string(),
                })),
                Some(Ok(DeleteOutcome::Deleted)) => Ok(ItemResult::Deleted),
                Some(Ok(DeleteOutcome::AlreadyGone)) => Ok(ItemResult::AlreadyGone),
                Some(Err(e)) => deleting(what, e),
            }
        }
    }
}
