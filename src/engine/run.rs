//! One run of one policy against one registry: collect → plan → check → execute. Used by the
//! CLI (`retention plan|apply`, `purge-project`) and by the policy controller, which supplies
//! the other policies' keeps and the images the cluster runs.

use std::borrow::Cow;

use futures::StreamExt;
use jiff::Timestamp;

use super::collect::{CollectError, CollectOptions, RepositoryDenial};
use super::execute::{execute, ExecuteError, ExecuteOptions, Execution, InUseSource, Interruption};
use super::graph::add_in_use_to;
use crate::api::retention::{Candidate, PolicyMode, RunOutcome, RunSummary, MAX_STATUS_CANDIDATES};
use crate::oci::{Denial, RegistryClient, RequestStats};
use crate::retention::{
    candidate, candidates, count_breach, headline, plan, InUse, IncompleteRepository, Inventory,
    LimitBreach, Limits, Plan, PlanDigest, Policy, Protections, Report, Repository, RepositoryPlan,
    RepositoryPlanner, Summary,
};

/// What a run holds of what it planned, besides the totals (which are always exact).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Hold {
    /// Every repository's inventory and decisions: [`RunResult::report`] shows them all, and
    /// [`enforce_shown`] can re-plan them. Memory grows with the registry.
    #[default]
    Everything,
    /// Only what the executor may still need: in `Enforce` mode, the inventories and plans of
    /// the repositories with mutations, as long as the tag deletions planned so far are
    /// within `limits.maxDeletionsPerRun` (past it the run is blocked and nothing is
    /// deleted, so nothing more is held); nothing in `Plan` mode. Each repository's
    /// decisions are handed to the caller's sink as it is planned, and then dropped: memory
    /// is that of the repositories in flight, the deletions held and the status candidates,
    /// whatever the number of repositories.
    Deletions,
}

/// What a run needs besides the client and the policy.
#[derive(Clone, Default)]
pub struct RunOptions {
    /// Other policies on the same registry: their keep entries veto deletions.
    pub others: Vec<Policy>,
    /// Images the cluster runs (or a list the CLI was given).
    pub protections: Protections,
    /// Where the images in use are read when they matter — after the registry was read, for
    /// the plan, and before each repository's deletions — instead of `protections.in_use`
    /// (the operator's index of Pods and workloads).
    pub in_use_source: Option<InUseSource>,
    /// How to read the registry. `referrers` is switched on by the run when the policy can
    /// delete referrers.
    pub collect: CollectOptions,
    /// How to execute.
    pub execute: ExecuteOptions,
    /// What the run holds of what it planned.
    pub hold: Hold,
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("others", &self.others.len())
            .field("protections", &self.protections)
            .field("in_use_source", &self.in_use_source.is_some())
            .field("collect", &self.collect)
            .field("execute", &self.execute)
            .field("hold", &self.hold)
            .finish()
    }
}

/// What one run did.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// The inventory the plan was made from: every repository in scope, or — when the run
    /// held only its deletions ([`Hold::Deletions`]) — those the executor needed.
    pub inventory: Inventory,
    /// The plan. Its counts and notes cover every repository in scope; its repositories are
    /// those of [`inventory`](Self::inventory).
    pub plan: Plan,
    /// The repositories that could not be read completely, by name, with why.
    pub incomplete: Vec<IncompleteRepository>,
    /// The plan digest of every decision of the run (also of the repositories the run did
    /// not hold): see [`Plan::digest`](crate::retention::Plan::digest).
    pub plan_digest: String,
    /// The first [`MAX_STATUS_CANDIDATES`] tags the plan deletes (or would), by repository
    /// and tag, without their registry.
    pub candidates: Vec<Candidate>,
    /// Set when a blast-radius limit stopped an `Enforce` run: nothing was deleted.
    pub blocked: Option<LimitBreach>,
    /// The execution (`Enforce` runs that were not blocked).
    pub execution: Option<Execution>,
    /// Repositories the registry refused the account (they are incomplete: nothing in them
    /// is deleted).
    pub denied: Vec<RepositoryDenial>,
    /// The registry refused the account the catalog, and the repositories the policy names
    /// were read instead.
    pub named_only: bool,
    /// Requests made while collecting the inventory.
    pub collect_requests: RequestStats,
    /// Requests made while executing (re-checks and deletions).
    pub execute_requests: RequestStats,
    /// When the run started.
    pub started: Timestamp,
    /// When the inventory was complete (the plan and any execution follow).
    pub collected: Timestamp,
    /// When it ended.
    pub finished: Timestamp,
}

/// Why a run could not plan at all.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The registry could not be inventoried.
    #[error(transparent)]
    Collect(#[from] CollectError),
    /// Which images are in use could not be vouched for after the registry was read.
    #[error("images in use cannot be checked: {0}")]
    InUse(String),
    /// The execute fence said no before the first deletion: nothing was deleted.
    #[error("nothing deleted: {0}")]
    Fenced(String),
}

impl RunError {
    /// The PascalCase reason of what failed (the registry client's, for a failed inventory).
    pub fn reason(&self) -> &'static str {
        match self {
            RunError::Collect(e) => e.reason(),
            RunError::InUse(_) => Interruption::InUseUnknown.reason().as_str(),
            RunError::Fenced(_) => Interruption::NotLeader.reason().as_str(),
        }
    }

    /// How the registry refused the account, when that is why no inventory could be made.
    pub fn denial(&self) -> Option<crate::oci::Denial> {
        match self {
            RunError::Collect(e) => e.denial(),
            RunError::InUse(_) | RunError::Fenced(_) => None,
        }
    }

    /// What stopped the run from outside the registry, when that is why it failed.
    pub fn interruption(&self) -> Option<Interruption> {
        match self {
            RunError::Collect(_) => None,
            RunError::InUse(_) => Some(Interruption::InUseUnknown),
            RunError::Fenced(_) => Some(Interruption::NotLeader),
        }
    }
}

/// Runs `policy` against the registry behind `client` at time `now`.
///
/// In `Plan` mode nothing but reads is sent. In `Enforce` mode the blast-radius limits are
/// checked on the plan first; a breach deletes nothing and is reported in
/// [`RunResult::blocked`].
pub async fn run_policy(
    client: &RegistryClient,
    policy: &Policy,
    options: &RunOptions,
    now: Timestamp,
) -> Result<RunResult, RunError> {
    run_policy_streamed(client, policy, options, now, &mut |_| {}).await
}

/// [`run_policy`], handing each repository's plan to `sink` as it is made (in name order).
pub async fn run_policy_streamed(
    client: &RegistryClient,
    policy: &Policy,
    options: &RunOptions,
    now: Timestamp,
    sink: &mut (dyn FnMut(&RepositoryPlan) + Send),
) -> Result<RunResult, RunError> {
    let planned = plan_policy_streamed(client, policy, options, now, sink).await?;
    planned.execute(client, options).await
}

/// The first half of [`run_policy`]: collects the inventory and plans, sending only reads.
/// A run over several registries plans them all, checks its limits on the total, and then
/// [executes](ReadyToExecute::execute) or [holds](ReadyToExecute::hold) every plan.
pub async fn plan_policy(
    client: &RegistryClient,
    policy: &Policy,
    options: &RunOptions,
    now: Timestamp,
) -> Result<ReadyToExecute, RunError> {
    plan_policy_streamed(client, policy, options, now, &mut |_| {}).await
}

/// [`plan_policy`], repository by repository: each one in scope is read (with the
/// bounded concurrency of `options.collect`, in name order), the images in use are asked for
/// after its reading (from `options.in_use_source`, else `options.protections`), what they
/// run that no tag reaches is added, it is planned, its plan is handed to `sink`, and it is
/// kept only as `options.hold` says. The totals, the incomplete repositories and the status
/// candidates are kept as the run goes.
pub async fn plan_policy_streamed(
    client: &RegistryClient,
    policy: &Policy,
    options: &RunOptions,
    now: Timestamp,
    sink: &mut (dyn FnMut(&RepositoryPlan) + Send),
) -> Result<ReadyToExecute, RunError> {
    let started = Timestamp::now();
    let before = client.stats();
    let mut collect = options.collect.clone();
    collect.referrers |= policy.delete_referrers || policy.is_purge();
    collect.named = policy.named_repositories().map(<[String]>::to_vec);
    let listing = super::collect::list(client, |r| policy.in_scope(r), &collect).await?;
    let named_only = listing.named_only;
    let capabilities = listing.capabilities();
    let mut planner = RepositoryPlanner::new(policy, &options.others, capabilities, now);
    let mut held = Held::new(policy, options.hold);
    let mut denied = Vec::new();
    let mut incomplete = Vec::new();
    let mut candidates: Vec<Candidate> = Vec::new();
    let mut digest = PlanDigest::new();
    let mut repositories = Box::pin(listing.read(client, &collect));
    while let Some((mut repo, denial)) = repositories.next().await {
        denied.extend(denial);
        // The images in use as of now, after the (possibly long) read of the repository.
        let in_use: Cow<'_, InUse> = match &options.in_use_source {
            Some(source) => {
                let name = repo.name.clone();
                Cow::Owned(source(&|r| r == &*name).map_err(RunError::InUse)?)
            }
            None => Cow::Borrowed(&options.protections.in_use),
        };
        // What they run that no tag reaches (an untagged index), with all it lists.
        add_in_use_to(client, &mut repo, &in_use, collect.lookups_in_flight).await;
        let Some(repo_plan) = planner.plan_repository(&repo, &in_use) else {
            continue;
        };
        sink(&repo_plan);
        digest.add(&repo_plan);
        incomplete.extend(IncompleteRepository::of(&repo_plan));
        let room = MAX_STATUS_CANDIDATES.saturating_sub(candidates.len());
        candidates.extend(
            repo_plan
                .tags
                .iter()
                .filter(|t| t.decision.is_delete())
                .take(room)
                .map(|t| candidate(None, &repo_plan, t)),
        );
        held.offer(repo, repo_plan, planner.counts().deletions);
    }
    drop(repositories);
    denied.sort_by(|a, b| a.repository.cmp(&b.repository));
    let collected_at = Timestamp::now();
    let collect_requests = diff(&client.stats(), &before);
    let (repositories, plans) = held.into_parts();
    Ok(ReadyToExecute {
        inventory: Inventory {
            capabilities,
            repositories,
        },
        plan: planner.finish(plans),
        incomplete,
        plan_digest: digest.finish(),
        candidates,
        denied,
        named_only,
        collect_requests,
        started,
        collected: collected_at,
    })
}

/// What a run keeps of the repositories it planned (see [`Hold`]).
struct Held {
    hold: Hold,
    enforce: bool,
    limits: Limits,
    /// The deletions planned passed the limit: nothing is held any more.
    over: bool,
    repositories: Vec<Repository>,
    plans: Vec<RepositoryPlan>,
}

impl Held {
    fn new(policy: &Policy, hold: Hold) -> Held {
        Held {
            hold,
            enforce: policy.mode() == PolicyMode::Enforce,
            limits: policy.limits(),
            over: false,
            repositories: Vec::new(),
            plans: Vec::new(),
        }
    }

    /// Keeps `repo` and its plan, or drops them; `deletions` counts the tag deletions
    /// planned so far, this repository's included.
    fn offer(&mut self, repo: Repository, plan: RepositoryPlan, deletions: u64) {
        match self.hold {
            Hold::Everything => {}
            Hold::Deletions if !self.enforce || self.over => return,
            Hold::Deletions if count_breach(self.limits, deletions).is_some() => {
                // The run is blocked whatever comes next: nothing of it will be executed.
                self.over = true;
                self.repositories = Vec::new();
                self.plans = Vec::new();
                return;
            }
            Hold::Deletions if plan.mutations.is_empty() => return,
            Hold::Deletions => {}
        }
        self.repositories.push(repo);
        self.plans.push(plan);
    }

    fn into_parts(self) -> (Vec<Repository>, Vec<RepositoryPlan>) {
        (self.repositories, self.plans)
    }
}

/// A plan with the inventory it was made from, not executed yet: what [`plan_policy`] returns
/// and [`execute`](Self::execute) or [`hold`](Self::hold) consume.
#[derive(Debug, Clone)]
pub struct ReadyToExecute {
    /// The inventory the plan was made from.
    pub inventory: Inventory,
    /// The plan (its repositories: those of the inventory).
    pub plan: Plan,
    /// The repositories that could not be read completely.
    pub incomplete: Vec<IncompleteRepository>,
    /// The plan digest of every decision planned (held or not).
    pub plan_digest: String,
    /// The status candidates, without their registry.
    pub candidates: Vec<Candidate>,
    /// Repositories the registry refused the account.
    pub denied: Vec<RepositoryDenial>,
    /// The catalog was refused and the named repositories were read instead.
    pub named_only: bool,
    collect_requests: RequestStats,
    started: Timestamp,
    collected: Timestamp,
}

impl ReadyToExecute {
    /// Executes the plan (refused, with nothing sent, in `Plan` mode or when the plan breaches
    /// its own limits). The images in use are read again before each repository's deletions
    /// when `options` has a source of them; an error when the fence says no before the first
    /// deletion.
    pub async fn execute(
        self,
        client: &RegistryClient,
        options: &RunOptions,
    ) -> Result<RunResult, RunError> {
        let before = client.stats();
        let mut execute_options = options.execute.clone();
        if execute_options.in_use.is_none() {
            execute_options.in_use = options.in_use_source.clone();
        }
        let (blocked, execution) =
            match execute(client, &self.plan, &self.inventory, &execute_options).await {
                Ok(x) => (None, Some(x)),
                Err(ExecuteError::PlanMode) => (None, None),
                Err(ExecuteError::BlastRadius(b)) => (Some(b), None),
                Err(ExecuteError::Fenced(why)) => return Err(RunError::Fenced(why)),
            };
        Ok(self.finish(blocked, execution, diff(&client.stats(), &before)))
    }

    /// Executes nothing because `breach` stops the run this plan is part of.
    pub fn hold(self, breach: LimitBreach) -> RunResult {
        self.finish(Some(breach), None, RequestStats::default())
    }

    fn finish(
        self,
        blocked: Option<LimitBreach>,
        execution: Option<Execution>,
        execute_requests: RequestStats,
    ) -> RunResult {
        RunResult {
            inventory: self.inventory,
            plan: self.plan,
            incomplete: self.incomplete,
            plan_digest: self.plan_digest,
            candidates: self.candidates,
            blocked,
            execution,
            denied: self.denied,
            named_only: self.named_only,
            collect_requests: self.collect_requests,
            execute_requests,
            started: self.started,
            collected: self.collected,
            finished: Timestamp::now(),
        }
    }
}

/// Enforces exactly the plan a person was shown: re-plans `shown`'s inventory, at the same
/// `now`, with `policy` (in `Enforce` mode) — the planner is pure, so the decisions are the
/// ones shown — and executes it, re-checking every tag before its deletion. Nothing is listed
/// again: a tag pushed after `shown` was collected is in no decision and is not touched.
/// `purge-project` uses it after asking for confirmation.
pub async fn enforce_shown(
    client: &RegistryClient,
    policy: &Policy,
    options: &RunOptions,
    shown: RunResult,
) -> Result<RunResult, RunError> {
    let policy = policy.clone().with_mode(PolicyMode::Enforce);
    let plan = plan(
        &policy,
        &options.others,
        &shown.inventory,
        &options.protections,
        shown.plan.now,
    );
    ReadyToExecute {
        inventory: shown.inventory,
        incomplete: incomplete_of(&plan),
        candidates: candidates(&plan, None),
        plan_digest: plan.digest(),
        plan,
        denied: shown.denied,
        named_only: shown.named_only,
        collect_requests: shown.collect_requests,
        started: shown.started,
        collected: shown.collected,
    }
    .execute(client, options)
    .await
}

/// The incomplete repositories of a plan that holds every repository.
fn incomplete_of(plan: &Plan) -> Vec<IncompleteRepository> {
    plan.repositories
        .iter()
        .filter_map(IncompleteRepository::of)
        .collect()
}

/// `a - b`, operation by operation.
pub fn diff(a: &RequestStats, b: &RequestStats) -> RequestStats {
    let mut out = a.clone();
    for (op, n) in out.by_operation.iter_mut() {
        *n = n.saturating_sub(b.get(*op));
    }
    out.total = a.total.saturating_sub(b.total);
    out.retries = a.retries.saturating_sub(b.retries);
    out.mutating = a.mutating.saturating_sub(b.mutating);
    out
}

impl RunResult {
    /// The plan as a report: counts and every tag's decision as a sentence. Built on demand —
    /// at a million tags it costs about a second and 400 MiB, which the operator, needing
    /// only counts and a bounded candidate list, never pays. It lists the decisions of the
    /// repositories the run held: all of them with [`Hold::Everything`] (the CLI streams its
    /// table and JSON instead, as the repositories are planned).
    pub fn report(&self) -> Report {
        Report::new(&self.plan)
    }

    /// The status candidates: the first [`MAX_STATUS_CANDIDATES`] tags the plan deletes (or
    /// would), naming `registry` (`namespace/name`, for cluster policies).
    pub fn candidates(&self, registry: Option<&str>) -> Vec<Candidate> {
        self.candidates
            .iter()
            .map(|c| Candidate {
                registry: registry.map(str::to_owned),
                ..c.clone()
            })
            .collect()
    }

    /// `2 repositories could not be read completely and were left untouched: a (why); b
    /// (why)`, naming at most `max` of them; `None` when every repository was read.
    pub fn incomplete_line(&self, max: usize) -> Option<String> {
        let repos: Vec<String> = self
            .incomplete
            .iter()
            .map(|r| format!("{} ({})", r.repository, r.reason))
            .collect();
        if repos.is_empty() {
            return None;
        }
        let shown = repos.len().min(max.max(1));
        let more = match repos.len() - shown {
            0 => String::new(),
            n => format!("; and {n} more"),
        };
        let (noun, verb) = if repos.len() == 1 {
            ("repository", "was")
        } else {
            ("repositories", "were")
        };
        Some(format!(
            "{} {noun} could not be read completely and {verb} left untouched: {}{more}",
            repos.len(),
            repos[..shown].join("; ")
        ))
    }

    /// How the registry refused the account, when it did, with what was refused: a deletion
    /// (the run stopped there), else the first repository it could not read.
    pub fn denial(&self) -> Option<(Denial, String)> {
        if let Some(r) = self.execution.as_ref().and_then(|e| e.refused.clone()) {
            return Some(r);
        }
        let first = self.denied.first()?;
        let more = match self.denied.len() {
            1 => String::new(),
            n => format!(" (and {} more repositories)", n - 1),
        };
        Some((
            first.denial,
            format!("repository {}: {}{more}", first.repository, first.message),
        ))
    }

    /// The outcome for a policy's status.
    pub fn outcome(&self) -> RunOutcome {
        if self.blocked.is_some() {
            return RunOutcome::Blocked;
        }
        let failed = self.execution.as_ref().map_or(0, |e| e.counts.errors);
        if failed > 0 || self.plan.counts.errors > 0 {
            RunOutcome::PartiallyFailed
        } else {
            RunOutcome::Succeeded
        }
    }

    /// The `lastRun` of a policy's status.
    pub fn summary(&self) -> RunSummary {
        let c = self.plan.counts;
        let i = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let exec = self.execution.as_ref().map(|e| e.counts);
        let (deleted, would_delete) = match (self.plan.mode, exec) {
            (PolicyMode::Enforce, Some(x)) => (x.deleted_tags, 0),
            _ => (0, c.deletions),
        };
        let errors = c.errors + exec.map_or(0, |x| x.errors);
        let message = match (&self.blocked, &self.execution) {
            (Some(b), _) => format!("nothing deleted: {b}"),
            (None, Some(e)) => e.headline(),
            (None, None) => headline(&self.plan.policy, self.plan.mode, &Summary::of(&self.plan)),
        };
        let message = match self.incomplete_line(3) {
            Some(line) => format!("{message}; {line}"),
            None => message,
        };
        let message = if self.named_only {
            format!("{message}; the registry refuses the account the catalog: the repositories repositories.include names were read one by one")
        } else {
            message
        };
        RunSummary {
            start_time: k8s_time(self.started),
            completion_time: Some(k8s_time(self.finished)),
            mode: self.plan.mode,
            outcome: self.outcome(),
            registries: 1,
            repositories: i(c.repositories),
            tags: i(c.tags),
            kept: i(c.kept),
            protected: i(c.protected),
            deleted: i(deleted),
            would_delete: i(would_delete),
            errors: i(errors),
            reclaimable_bytes: c.reclaimable_bytes.map(i),
            message: Some(message),
            generation: None,
        }
    }
}

fn k8s_time(t: Timestamp) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t)
}
