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

mod attempt;
mod gate;
mod waves;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use futures::stream::{self, StreamExt};

use crate::api::common::condition::Reason;
use crate::api::retention::PolicyMode;
use crate::oci::{Denial, RegistryClient};
use crate::retention::{InUse, Inventory, LimitBreach, Mutation, Plan, Repository};
use gate::{DeleteGate, Gate};
use waves::{run_repository, RepositoryInput, Shared};

/// Called as mutations finish, with how many just finished and how many the plan has in all
/// (for progress bars).
pub type Progress = Arc<dyn Fn(u64, u64) + Send + Sync>;

/// Says whether this process may still delete (the operator: whether it still holds its
/// leader Lease); an error names why not. Asked before the first deletion, before each
/// repository's and before every DELETE request — a yes is trusted for [`FENCE_TRUST`], and a
/// DELETE tried again after a failure always asks afresh — so a replica that lost the Lease
/// (cut off from the API server, say) stops instead of racing the new leader. Its first no
/// stands for the rest of the execution: what is left is not deleted, even if a later answer
/// would be yes (the run is retried with a fresh plan). A fence must
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
    let known = Known::of(inventory, &by_repo);
    let shared = Shared {
        client,
        in_use: options.in_use.as_ref(),
        fence: fence.as_ref(),
        deletes: &deletes,
        in_flight: options.deletions_in_flight.max(1),
        progress: options.progress.clone(),
        total: plan.mutations().count() as u64,
    };
    let empty = HashMap::new();
    let no_tags = HashSet::new();
    // The futures are built eagerly so that no closure over borrowed data ends up inside the
    // stream's type: that keeps this future `Send` for any lifetime, as a kube-rs reconciler
    // (the operator's policy controller) requires.
    let work: Vec<_> = by_repo
        .into_iter()
        .map(|(repo, items)| {
            let input = RepositoryInput {
                repository: repo,
                items,
                parents: known.parents.get(repo).unwrap_or(&empty),
                listed: known.listed.get(repo).unwrap_or(&no_tags),
                inventory: known.repositories.get(repo).copied(),
            };
            run_repository(&shared, input)
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
    let mut execution = tally(plan, slots);
    execution.refused = deletes.refusal();
    Ok(execution)
}

/// What the inventory knows of the repositories the plan changes.
struct Known<'a> {
    /// Per repository: digest → the indexes that list it.
    parents: HashMap<&'a str, HashMap<String, Vec<String>>>,
    /// Per repository: the tags the listing saw.
    listed: HashMap<&'a str, HashSet<&'a str>>,
    repositories: HashMap<&'a str, &'a Repository>,
}

impl<'a> Known<'a> {
    fn of(inventory: &'a Inventory, by_repo: &BTreeMap<&str, Vec<(usize, &Mutation)>>) -> Self {
        let changed = || {
            inventory
                .repositories
                .iter()
                .filter(|r| by_repo.contains_key(&*r.name))
        };
        let parents = changed()
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
        let listed = changed()
            .map(|r| (&*r.name, r.tags.iter().map(|t| &*t.name).collect()))
            .collect();
        let repositories = changed().map(|r| (&*r.name, r)).collect();
        Known {
            parents,
            listed,
            repositories,
        }
    }
}

/// The execution: each mutation in plan order with its result (one never reached "not
/// executed"), and the counts.
fn tally(plan: &Plan, slots: Vec<Option<ItemResult>>) -> Execution {
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
    execution
}
