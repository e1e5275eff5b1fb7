//! The RetentionPolicy and ClusterRetentionPolicy reconcilers.
//!
//! A run happens when a policy is created or its spec changes, when its schedule is due, and
//! when the `registry-operator.dev/run-requested-at` annotation gets a new value — never while
//! `spec.suspend` is true (a request made then waits; resuming starts one run). A run resolves
//! the target registries, the other policies that apply to each (their keep entries veto
//! deletions), and the images the cluster runs; then the engine plans and, in Enforce mode,
//! deletes. Never two runs against one registry at once. Status carries the last run, a bounded
//! list of candidates and kstatus conditions; Events tell what happened.

pub mod schedule;
pub mod selector;
pub mod trigger;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::{self, reflector, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Resource, ResourceExt};
use tokio::sync::Mutex as AsyncMutex;
use tracing::{info, warn};

use self::schedule::Schedule;
use self::trigger::{PolicyState, Trigger, RUN_REQUESTED_AT};
use crate::api::retention::{
    Candidate, ClusterRetentionPolicy, PolicyMode, RetentionPolicy, RetentionPolicyStatus,
    RetentionRules, RunOutcome, RunSummary, MAX_STATUS_CANDIDATES,
};
use crate::api::Registry;
use crate::controller::conditions::{
    conditions_for, differ_ignoring_timestamps, Health, PENDING, WAITING_FOR_CACHES,
    WAITING_FOR_IN_USE_INDEX,
};
use crate::controller::context::Context;
use crate::controller::endpoint::endpoint;
use crate::controller::error::ControllerError;
use crate::controller::inuse::InUseIndex;
use crate::controller::metrics::{ControllerLabels, FailureLabels, RunLabels};
use crate::controller::status_patch::status_patch;
use crate::controller::target;
use crate::engine::{plan_policy, InUseSource, Planned, RunOptions, RunResult};
use crate::oci::RegistryClient;
use crate::retention::{check_limits, LimitBreach, Policy};

/// Serialises runs per registry endpoint (see [`endpoint`]) across both policy controllers,
/// whichever Registry objects name it.
#[derive(Default)]
pub struct RunLocks(std::sync::Mutex<HashMap<String, Arc<AsyncMutex<()>>>>);

impl RunLocks {
    fn lock_for(&self, registry: &str) -> Arc<AsyncMutex<()>> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(registry.to_string()).or_default().clone()
    }
}

/// What the policy controllers share beyond [`Context`].
pub struct PolicyContext {
    /// The common context.
    pub ctx: Arc<Context>,
    /// Images the cluster runs.
    pub in_use: InUseIndex,
    /// One lock per registry endpoint.
    pub locks: RunLocks,
    /// Every RetentionPolicy (watch cache), for the vetoes of other policies.
    pub policies: Store<RetentionPolicy>,
    /// Every ClusterRetentionPolicy (watch cache).
    pub cluster_policies: Store<ClusterRetentionPolicy>,
}

impl PolicyContext {
    /// A policy context whose policy caches are fed by watches started here; runs wait until
    /// both caches have listed once (an unseen policy could not veto).
    pub fn start(ctx: Arc<Context>, in_use: InUseIndex) -> Self {
        let client = ctx.client.clone();
        let (policies, writer) = reflector::store();
        let rp = reflector(
            writer,
            watcher(
                Api::<RetentionPolicy>::all(client.clone()),
                watcher::Config::default(),
            ),
        );
        tokio::spawn(
            rp.default_backoff()
                .for_each(|_| futures::future::ready(())),
        );
        let (cluster_policies, writer) = reflector::store();
        let crp = reflector(
            writer,
            watcher(
                Api::<ClusterRetentionPolicy>::all(client),
                watcher::Config::default(),
            ),
        );
        tokio::spawn(
            crp.default_backoff()
                .for_each(|_| futures::future::ready(())),
        );
        PolicyContext {
            ctx,
            in_use,
            locks: RunLocks::default(),
            policies,
            cluster_policies,
        }
    }

    async fn caches_ready(&self) -> bool {
        let wait = async {
            let _ = self.policies.wait_until_ready().await;
            let _ = self.cluster_policies.wait_until_ready().await;
        };
        tokio::time::timeout(Duration::from_secs(30), wait)
            .await
            .is_ok()
    }
}

/// Which kind of policy, with what it needs to find its registries.
#[derive(Clone)]
enum Kind {
    Namespaced {
        namespace: String,
        registry: String,
    },
    Cluster {
        registries: k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
        namespaces: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,
    },
}

/// A policy of either kind, as the shared reconcile sees it.
struct PolicyView {
    kind: Kind,
    /// `namespace/name` or `name`: how reasons and other policies refer to it.
    display: String,
    name: String,
    generation: Option<i64>,
    annotations: BTreeMap<String, String>,
    rules: RetentionRules,
    status: RetentionPolicyStatus,
    object_ref: k8s_openapi::api::core::v1::ObjectReference,
}

impl PolicyView {
    fn controller(&self) -> &'static str {
        match self.kind {
            Kind::Namespaced { .. } => "retentionpolicy",
            Kind::Cluster { .. } => "clusterretentionpolicy",
        }
    }
}

fn namespaced_view(p: &RetentionPolicy) -> PolicyView {
    let namespace = p.namespace().unwrap_or_default();
    PolicyView {
        kind: Kind::Namespaced {
            namespace: namespace.clone(),
            registry: p.spec.registry_ref.name.clone(),
        },
        display: format!("{namespace}/{}", p.name_any()),
        name: p.name_any(),
        generation: p.metadata.generation,
        annotations: p.annotations().clone(),
        rules: p.spec.rules.clone(),
        status: p.status.clone().unwrap_or_default(),
        object_ref: p.object_ref(&()),
    }
}

fn cluster_view(p: &ClusterRetentionPolicy) -> PolicyView {
    PolicyView {
        kind: Kind::Cluster {
            registries: p.spec.registry_selector.clone(),
            namespaces: p.spec.namespace_selector.clone(),
        },
        display: p.name_any(),
        name: p.name_any(),
        generation: p.metadata.generation,
        annotations: p.annotations().clone(),
        rules: p.spec.rules.clone(),
        status: p.status.clone().unwrap_or_default(),
        object_ref: p.object_ref(&()),
    }
}

/// The outcome of one reconcile, before it is written to status.
struct Outcome {
    health: Health,
    requeue: Duration,
    status: RetentionPolicyStatus,
    /// A run happened and published its own Event.
    ran: bool,
}

async fn reconcile_view(
    view: &PolicyView,
    pctx: &PolicyContext,
) -> Result<Outcome, ControllerError> {
    let ctx = &pctx.ctx;
    let now = Timestamp::now();
    let mut status = view.status.clone();
    status.observed_generation = view.generation;

    // Validate: everything a person must fix is reported at once.
    let mut problems = Vec::new();
    let policy = match Policy::compile(&view.display, &view.rules) {
        Ok(p) => Some(p),
        Err(e) => {
            problems.push(e.to_string());
            None
        }
    };
    let schedule = match view.rules.schedule.as_deref().map(Schedule::parse) {
        Some(Ok(s)) => Some(s),
        Some(Err(e)) => {
            problems.push(e.to_string());
            None
        }
        None => None,
    };
    if let Kind::Cluster {
        registries,
        namespaces,
    } = &view.kind
    {
        for s in std::iter::once(registries).chain(namespaces.iter()) {
            if let Err(e) = selector::validate(s) {
                problems.push(e.to_string());
            }
        }
    }
    let Some(policy) = policy.filter(|_| problems.is_empty()) else {
        status.next_run_time = None;
        return Ok(Outcome {
            health: Health::stalled("InvalidSpec", problems.join("; ")),
            requeue: ctx.settings.policy_resync,
            status,
            ran: false,
        });
    };

    let state = PolicyState {
        generation: view.generation,
        last_run_generation: view.status.last_run.as_ref().and_then(|r| r.generation),
        last_run_start: view.status.last_run.as_ref().map(|r| r.start_time.0),
        requested: view.annotations.get(RUN_REQUESTED_AT).map(String::as_str),
        last_request: view.status.last_run_request.as_deref(),
        schedule: schedule.as_ref(),
        suspended: view.rules.suspend.unwrap_or(false),
        retry_at: pending_retry(&view.status, schedule.as_ref()),
    };
    if state.suspended {
        // No run of any kind; a request made meanwhile is reported and runs on resume.
        status.next_run_time = None;
        let message = match trigger::pending_request(&state) {
            Some(value) => format!(
                "suspended (spec.suspend): the run requested by {RUN_REQUESTED_AT}={value} has not started; it starts when spec.suspend is false"
            ),
            None => "suspended (spec.suspend): no scheduled, spec-change or requested runs; one run starts when spec.suspend is false".to_string(),
        };
        let reported = view
            .status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.reason == "Suspended" && c.message == message);
        if !reported && trigger::pending_request(&state).is_some() {
            ctx.publish(
                &view.object_ref,
                EventType::Normal,
                "Suspended",
                "Run",
                &message,
            )
            .await;
        }
        return Ok(Outcome {
            health: Health::ready("Suspended", message),
            requeue: ctx.settings.policy_resync,
            status,
            ran: false,
        });
    }
    let Some(trigger) = trigger::due(&state, now) else {
        status.next_run_time = trigger::next_run(&state).map(|t| t.to_string());
        let requeue = trigger::requeue_after(
            &state,
            now,
            SignedDuration::try_from(ctx.settings.policy_resync)
                .unwrap_or(SignedDuration::from_hours(1)),
        );
        let health = current_health(&view.status);
        return Ok(Outcome {
            health,
            requeue: requeue.unsigned_abs(),
            status,
            ran: false,
        });
    };

    // Protections need the in-use index: without it nothing may be deleted, and a plan would
    // list running images as candidates, so neither mode runs before it has synced.
    if view.rules.protects_in_use() && !pctx.in_use.synced() {
        return Ok(Outcome {
            health: Health::reconciling(
                WAITING_FOR_IN_USE_INDEX,
                "waiting for the list of images Pods run before planning",
            ),
            requeue: Duration::from_secs(2),
            status,
            ran: false,
        });
    }

    if !pctx.caches_ready().await {
        return Ok(Outcome {
            health: Health::reconciling(
                WAITING_FOR_CACHES,
                "waiting for the list of retention policies",
            ),
            requeue: Duration::from_secs(2),
            status,
            ran: false,
        });
    }
    let registries = match target_registries(view, ctx).await {
        Ok(r) => r,
        Err(e @ ControllerError::RegistryNotFound { .. }) => {
            return Ok(Outcome {
                health: Health::reconciling("RegistryNotFound", e.to_string()),
                requeue: ctx.backoff(&format!("policy/{}", view.display)),
                status,
                ran: false,
            })
        }
        Err(e) => return Err(e),
    };

    info!(policy = %view.display, ?trigger, registries = registries.len(), mode = %view.rules.mode, "retention run");
    let started = Timestamp::now();
    let mut summary = RunSummary {
        start_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(started),
        completion_time: None,
        mode: view.rules.mode,
        outcome: RunOutcome::Succeeded,
        registries: 0,
        repositories: 0,
        tags: 0,
        kept: 0,
        protected: 0,
        deleted: 0,
        would_delete: 0,
        errors: 0,
        reclaimable_bytes: None,
        message: None,
        generation: view.generation,
    };
    let mut candidates: Vec<Candidate> = Vec::new();
    let mut messages = Vec::new();
    let mut blast: Option<String> = None;
    let mut unreachable: Option<(&'static str, String)> = None;
    // The first error only a person can fix (another policy on the registry is invalid, a
    // credentials Secret is malformed): the policy is Stalled with its reason, not retried.
    let mut permanent: Option<(&'static str, String)> = None;
    let cluster = matches!(view.kind, Kind::Cluster { .. });
    // Every Registry object: several may name one actual registry, which is what runs are
    // serialised on and what other policies' keeps veto on.
    let all_registries = Api::<Registry>::all(ctx.client.clone())
        .list(&ListParams::default())
        .await?
        .items;
    // One actual registry is run once, whichever of the Registry objects naming it the
    // policy selected (the first by namespace/name): twice would send every request twice and
    // count its deletions twice against the limits.
    let mut seen = std::collections::BTreeSet::new();
    let registries: Vec<Registry> = registries
        .into_iter()
        .filter(|r| seen.insert(endpoint(r, &ctx.settings.cluster_domain)))
        .collect();
    let endpoints: Vec<String> = registries
        .iter()
        .map(|r| endpoint(r, &ctx.settings.cluster_domain))
        .collect();
    // Every endpoint's lock for the whole run, taken in one global order (sorted) so that runs
    // holding several cannot deadlock.
    let mut keys = endpoints.clone();
    keys.sort();
    keys.dedup();
    let mut guards = Vec::with_capacity(keys.len());
    for key in &keys {
        guards.push(pctx.locks.lock_for(key).lock_owned().await);
    }
    // Plan every registry before executing anything: the limits hold for the run as a whole.
    let mut planned = Vec::with_capacity(registries.len());
    for (registry, key) in registries.iter().zip(&endpoints) {
        // Boxed: the run's future is large, and erasing its type keeps the reconciler's future
        // provably Send (rustc cannot see through it otherwise).
        let plan: futures::future::BoxFuture<'_, _> = Box::pin(plan_on_registry(
            view,
            &policy,
            registry,
            key,
            &all_registries,
            pctx,
            now,
        ));
        planned.push(plan.await);
    }
    let held = run_limit_breach(view, &registries, &planned);
    let mut results = Vec::with_capacity(planned.len());
    for p in planned {
        results.push(match p {
            Ok(ready) => {
                let run: futures::future::BoxFuture<'_, _> =
                    Box::pin(ready.execute(ctx, held.as_ref().map(|(b, _)| *b)));
                run.await
            }
            Err(e) => Err(e),
        });
    }
    drop(guards);
    for (registry, result) in registries.iter().zip(results) {
        let reg_key = format!(
            "{}/{}",
            registry.namespace().unwrap_or_default(),
            registry.name_any()
        );
        match result {
            Ok(result) => {
                // Stopped part-way by the operator's own state (lost the Lease, in-use index
                // relisting): reported like a transient failure, so the run is retried.
                if let Some((reason, message)) =
                    result.execution.as_ref().and_then(|e| e.interrupted())
                {
                    unreachable = Some((reason, format!("{reg_key}: {message}")));
                }
                let s = result.summary();
                summary.registries += 1;
                summary.repositories += s.repositories;
                summary.tags += s.tags;
                summary.kept += s.kept;
                summary.protected += s.protected;
                summary.deleted += s.deleted;
                summary.would_delete += s.would_delete;
                summary.errors += s.errors;
                summary.reclaimable_bytes = match (summary.reclaimable_bytes, s.reclaimable_bytes) {
                    (Some(a), Some(b)) => Some(a + b),
                    (a, b) => a.or(b),
                };
                if s.outcome == RunOutcome::PartiallyFailed
                    && summary.outcome == RunOutcome::Succeeded
                {
                    summary.outcome = RunOutcome::PartiallyFailed;
                }
                if let (Some(b), None) = (&result.blocked, &held) {
                    summary.outcome = RunOutcome::Blocked;
                    blast = Some(format!("{reg_key}: {b}"));
                }
                let reg_name = cluster.then_some(reg_key.as_str());
                let room = MAX_STATUS_CANDIDATES.saturating_sub(candidates.len());
                candidates.extend(
                    crate::retention::candidates(&result.plan, reg_name)
                        .into_iter()
                        .take(room),
                );
                if let Some(m) = s.message.filter(|_| held.is_none()) {
                    messages.push(if registries.len() > 1 {
                        format!("{reg_key}: {m}")
                    } else {
                        m
                    });
                }
                let deleted = u64::try_from(s.deleted).unwrap_or(0);
                if deleted > 0 {
                    ctx.metrics
                        .tags_deleted
                        .get_or_create(&ControllerLabels {
                            controller: view.controller(),
                        })
                        .inc_by(deleted);
                }
            }
            Err(e) => {
                summary.errors += 1;
                summary.outcome = if summary.registries == 0 {
                    RunOutcome::Failed
                } else {
                    RunOutcome::PartiallyFailed
                };
                let m = format!("{reg_key}: {e}");
                warn!(policy = %view.display, registry = %reg_key, reason = e.reason(), error = %e, "retention run failed");
                messages.push(m.clone());
                if e.is_permanent() {
                    permanent.get_or_insert((e.reason(), m));
                } else {
                    // Transient: the registry, unless the operator itself held the run back.
                    let reason = match e.reason() {
                        r @ ("NotLeader" | "WaitingForInUseIndex") => r,
                        _ => "RegistryUnreachable",
                    };
                    unreachable = Some((reason, m));
                }
            }
        }
    }
    if let Some((_, m)) = held {
        summary.outcome = RunOutcome::Blocked;
        messages.insert(0, m.clone());
        blast = Some(m);
    }
    if registries.is_empty() {
        messages.push("no Registry matches the policy's selectors".into());
    }
    summary.completion_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        Timestamp::now(),
    ));
    summary.message = Some(messages.join("; "));
    ctx.metrics
        .runs
        .get_or_create(&RunLabels {
            controller: view.controller(),
            mode: view.rules.mode.to_string(),
            outcome: format!("{:?}", summary.outcome),
        })
        .inc();

    summary.generation = view.generation;
    status.last_run = Some(summary.clone());
    status.candidates = candidates;
    if let Trigger::Requested(value) = &trigger {
        status.last_run_request = Some(value.clone());
    }
    // A run that failed on a problem that may pass (an unreachable registry, a missing
    // Secret) is tried again after the controller's backoff, growing per failure up to its
    // maximum; the retry time is `nextRunTime`, so it survives a restart. A failure only a
    // person can fix (Stalled) waits for a change instead.
    let completed = Timestamp::now();
    let retry_at = (blast.is_none() && permanent.is_none() && unreachable.is_some())
        .then(|| ctx.backoff(&format!("policy/{}", view.display)))
        .and_then(|wait| SignedDuration::try_from(wait).ok())
        .and_then(|wait| completed.checked_add(wait).ok());
    let after = PolicyState {
        last_run_start: Some(started),
        last_run_generation: view.generation,
        retry_at,
        ..state
    };
    status.next_run_time = trigger::next_run(&after).map(|t| t.to_string());
    let requeue = trigger::requeue_after(
        &after,
        completed,
        SignedDuration::try_from(ctx.settings.policy_resync)
            .unwrap_or(SignedDuration::from_hours(1)),
    );

    let (health, event_type, reason) = if let Some(b) = &blast {
        (
            Health::stalled("BlastRadiusExceeded", b.clone()),
            EventType::Warning,
            "BlastRadiusExceeded",
        )
    } else if let Some((reason, m)) = &permanent {
        (
            Health::stalled(reason, m.clone()),
            EventType::Warning,
            *reason,
        )
    } else if let Some((reason, u)) = &unreachable {
        (
            Health::reconciling(reason, u.clone()),
            EventType::Warning,
            *reason,
        )
    } else {
        let message = summary.message.clone().unwrap_or_default();
        let reason = if view.rules.mode == PolicyMode::Plan {
            "Planned"
        } else {
            "Enforced"
        };
        (Health::ready(reason, message), EventType::Normal, reason)
    };
    ctx.publish(
        &view.object_ref,
        event_type,
        reason,
        "Run",
        summary.message.as_deref().unwrap_or_default(),
    )
    .await;
    Ok(Outcome {
        health,
        requeue: requeue.unsigned_abs(),
        status,
        ran: true,
    })
}

/// When the last run failed on a problem that may pass: the time its retry is due. It is
/// recorded as `nextRunTime` ahead of the schedule (a time the schedule gives is no retry).
fn pending_retry(status: &RetentionPolicyStatus, schedule: Option<&Schedule>) -> Option<Timestamp> {
    let last = status.last_run.as_ref()?;
    if !matches!(
        last.outcome,
        RunOutcome::Failed | RunOutcome::PartiallyFailed
    ) {
        return None;
    }
    let at: Timestamp = status.next_run_time.as_deref()?.parse().ok()?;
    let scheduled = schedule.and_then(|s| s.next_after(last.start_time.0));
    scheduled.is_none_or(|s| at < s).then_some(at)
}

/// The condition to keep when nothing ran: the last run's, or Ready/Waiting for a new policy.
fn current_health(status: &RetentionPolicyStatus) -> Health {
    let find = |t: &str| {
        status
            .conditions
            .iter()
            .find(|c| c.type_ == t && c.status == "True")
    };
    if let Some(c) = find("Stalled") {
        return Health::stalled(&c.reason, c.message.clone());
    }
    if let Some(c) = find("Ready") {
        return Health::ready(&c.reason, c.message.clone());
    }
    match status.conditions.iter().find(|c| c.type_ == "Ready") {
        Some(c) => Health::reconciling(&c.reason, c.message.clone()),
        None => Health::reconciling(PENDING, "waiting for the first run"),
    }
}

/// The registries a policy applies to.
async fn target_registries(
    view: &PolicyView,
    ctx: &Context,
) -> Result<Vec<Registry>, ControllerError> {
    match &view.kind {
        Kind::Namespaced {
            namespace,
            registry,
        } => {
            let api: Api<Registry> = Api::namespaced(ctx.client.clone(), namespace);
            let reg =
                api.get_opt(registry)
                    .await?
                    .ok_or_else(|| ControllerError::RegistryNotFound {
                        namespace: namespace.clone(),
                        name: registry.clone(),
                    })?;
            Ok(vec![reg])
        }
        Kind::Cluster {
            registries,
            namespaces,
        } => {
            let all: Api<Registry> = Api::all(ctx.client.clone());
            let mut out: Vec<Registry> = all
                .list(&ListParams::default())
                .await?
                .items
                .into_iter()
                .filter(|r| selector::matches(registries, r.labels()))
                .collect();
            if let Some(ns_selector) = namespaces {
                let ns_api: Api<Namespace> = Api::all(ctx.client.clone());
                let matching: Vec<String> = ns_api
                    .list(&ListParams::default())
                    .await?
                    .items
                    .into_iter()
                    .filter(|n| selector::matches(ns_selector, n.labels()))
                    .map(|n| n.name_any())
                    .collect();
                out.retain(|r| r.namespace().is_some_and(|ns| matching.contains(&ns)));
            }
            out.sort_by_key(|r| (r.namespace(), r.name_any()));
            Ok(out)
        }
    }
}

/// The other policies applying to the registry at `endpoint` — through `registry` or any other
/// Registry object in `all_registries` naming the same endpoint — compiled. An invalid one
/// cannot veto reliably, so it makes the run fail closed in Enforce mode; a cluster policy
/// whose selector is invalid counts as applying wherever its valid requirements allow.
async fn other_policies(
    view: &PolicyView,
    registry: &Registry,
    endpoint_key: &str,
    all_registries: &[Registry],
    pctx: &PolicyContext,
) -> Result<Vec<Policy>, ControllerError> {
    let ctx = &pctx.ctx;
    let id = |r: &Registry| (r.namespace().unwrap_or_default(), r.name_any());
    let mut same = vec![registry];
    same.extend(all_registries.iter().filter(|r| {
        id(r) != id(registry) && endpoint(r, &ctx.settings.cluster_domain) == endpoint_key
    }));
    let mut out = Vec::new();
    let mut invalid = Vec::new();
    // From the watch caches, not the API: a run must not list every policy of the cluster.
    for p in pctx.policies.state() {
        let ns = p.namespace().unwrap_or_default();
        if !same
            .iter()
            .any(|r| id(r) == (ns.clone(), p.spec.registry_ref.name.clone()))
        {
            continue;
        }
        let name = format!("{ns}/{}", p.name_any());
        if name == view.display && matches!(view.kind, Kind::Namespaced { .. }) {
            continue;
        }
        match Policy::compile(&name, &p.spec.rules) {
            Ok(c) => out.push(c),
            Err(e) => invalid.push(format!("RetentionPolicy {name} ({})", problems_of(&e))),
        }
    }
    let cluster_policies = pctx.cluster_policies.state();
    let mut namespace_labels: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    if !cluster_policies.is_empty() {
        let ns_api: Api<Namespace> = Api::all(ctx.client.clone());
        for r in &same {
            if let std::collections::btree_map::Entry::Vacant(e) =
                namespace_labels.entry(r.namespace().unwrap_or_default())
            {
                let labels = ns_api
                    .get_opt(e.key())
                    .await?
                    .map(|n| n.labels().clone())
                    .unwrap_or_default();
                e.insert(labels);
            }
        }
    }
    let no_labels = BTreeMap::new();
    for p in cluster_policies {
        let name = p.name_any();
        if name == view.display && matches!(view.kind, Kind::Cluster { .. }) {
            continue;
        }
        let selectors =
            std::iter::once(&p.spec.registry_selector).chain(p.spec.namespace_selector.as_ref());
        let mut problems: Vec<String> = selectors
            .filter_map(|s| selector::validate(s).err())
            .map(|e| e.to_string())
            .collect();
        // An invalid selector must not be read as selecting nothing: the policy then counts
        // as applying to every registry its author may have meant.
        let test = if problems.is_empty() {
            selector::matches
        } else {
            selector::may_match
        };
        let selects = same.iter().any(|r| {
            let ns = r.namespace().unwrap_or_default();
            test(&p.spec.registry_selector, r.labels())
                && p.spec
                    .namespace_selector
                    .as_ref()
                    .is_none_or(|s| test(s, namespace_labels.get(&ns).unwrap_or(&no_labels)))
        });
        if !selects {
            continue;
        }
        match Policy::compile(&name, &p.spec.rules) {
            Ok(c) if problems.is_empty() => out.push(c),
            Ok(_) => invalid.push(format!(
                "ClusterRetentionPolicy {name} ({})",
                problems.join("; ")
            )),
            Err(e) => {
                problems.push(problems_of(&e));
                invalid.push(format!(
                    "ClusterRetentionPolicy {name} ({})",
                    problems.join("; ")
                ));
            }
        }
    }
    if !invalid.is_empty() && view.rules.mode == PolicyMode::Enforce {
        let (applies, is, its, it) = if invalid.len() == 1 {
            ("applies", "is", "its", "it")
        } else {
            ("apply", "are", "their", "them")
        };
        return Err(ControllerError::InvalidSpec(format!(
            "nothing deleted: {} also {applies} to this registry and {is} invalid, so {its} keep entries cannot be honoured; fix or delete {it}",
            invalid.join(", ")
        )));
    }
    Ok(out)
}

/// An invalid policy's problems, `; `-separated.
fn problems_of(e: &crate::retention::InvalidPolicy) -> String {
    e.errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// One registry's part of a run, planned and not executed yet.
struct PlannedRun {
    planned: Planned,
    client: RegistryClient,
    options: RunOptions,
}

impl PlannedRun {
    /// Executes the plan, or nothing when `held` (a breach of the run's limits) stops the run.
    async fn execute(
        self,
        ctx: &Context,
        held: Option<LimitBreach>,
    ) -> Result<RunResult, ControllerError> {
        let result = match held {
            Some(b) => Ok(self.planned.hold(b)),
            None => self.planned.execute(&self.client, &self.options).await,
        };
        ctx.metrics.count_requests(&self.client.stats());
        result.map_err(|e| ControllerError::Run {
            reason: e.reason(),
            message: e.to_string(),
        })
    }
}

async fn plan_on_registry(
    view: &PolicyView,
    policy: &Policy,
    registry: &Registry,
    endpoint_key: &str,
    all_registries: &[Registry],
    pctx: &PolicyContext,
    now: Timestamp,
) -> Result<PlannedRun, ControllerError> {
    let ctx = &pctx.ctx;
    let t = target::resolve_with(ctx, registry).await?;
    let client = t.client()?;
    let others = other_policies(view, registry, endpoint_key, all_registries, pctx).await?;
    // Read when it matters (after the registry was read, and before each repository's
    // deletions), not now: reading a large registry takes minutes.
    let in_use_source: Option<InUseSource> = view.rules.protects_in_use().then(|| {
        let index = pctx.in_use.clone();
        // Every host name any Registry object for this endpoint declares (its aliases too).
        let domain = &ctx.settings.cluster_domain;
        let mut hosts = t.hosts.clone();
        for same in all_registries
            .iter()
            .filter(|r| endpoint(r, domain) == endpoint_key)
        {
            hosts.extend(target::hosts(same, domain));
        }
        hosts.sort();
        hosts.dedup();
        let source: InUseSource = Arc::new(move |in_scope: &dyn Fn(&str) -> bool| {
            if !index.synced() {
                return Err("the operator is listing Pods and workloads again".to_string());
            }
            Ok(index.for_hosts(&hosts, in_scope).to_in_use())
        });
        source
    });
    let mut options = RunOptions {
        others,
        in_use_source,
        ..RunOptions::default()
    };
    options.execute.fence = ctx.fence.clone();
    let planned = plan_policy(&client, policy, &options, now).await;
    if let Some(ages) = &ctx.settings.registry_client.age_cache {
        ctx.metrics
            .age_cache_configs
            .set(i64::try_from(ages.len()).unwrap_or(i64::MAX));
    }
    match planned {
        Ok(planned) => Ok(PlannedRun {
            planned,
            client,
            options,
        }),
        Err(e) => {
            // Counted whether or not the run succeeded: the requests were sent either way.
            ctx.metrics.count_requests(&client.stats());
            Err(ControllerError::Run {
                reason: e.reason(),
                message: e.to_string(),
            })
        }
    }
}

/// The breach that stops an Enforce run over several registries as a whole, with the message
/// for its status: one registry's plan breaching the limits, or all of them together (the
/// count, and the percentage of every tag in scope). A run over one registry is checked by
/// the engine as it executes.
fn run_limit_breach(
    view: &PolicyView,
    registries: &[Registry],
    planned: &[Result<PlannedRun, ControllerError>],
) -> Option<(LimitBreach, String)> {
    let plans: Vec<(&Registry, &PlannedRun)> = registries
        .iter()
        .zip(planned)
        .filter_map(|(r, p)| p.as_ref().ok().map(|p| (r, p)))
        .collect();
    if view.rules.mode != PolicyMode::Enforce || plans.len() < 2 {
        return None;
    }
    let n = plans.len();
    let head = format!("nothing deleted on any of the {n} registries of this run");
    let deletions = plans
        .iter()
        .map(|(_, p)| p.planned.plan.counts.deletions)
        .sum();
    let in_scope = plans.iter().map(|(_, p)| p.planned.plan.counts.tags).sum();
    let limits = plans[0].1.planned.plan.limits;
    if let Err(b) = check_limits(limits, deletions, in_scope) {
        let what = match b {
            LimitBreach::MaxDeletionsPerRun { planned, limit } => format!(
                "together they would delete {planned} tags, more than limits.maxDeletionsPerRun ({limit}), which counts every registry of a run"
            ),
            LimitBreach::MaxDeletionPercent {
                planned,
                in_scope,
                percent,
            } => format!(
                "together they would delete {planned} of {in_scope} tags in scope, more than limits.maxDeletionPercent ({percent}%), which counts every registry of a run"
            ),
        };
        return Some((b, format!("{head}: {what}")));
    }
    plans.iter().find_map(|(r, p)| {
        let b = p.planned.plan.check_blast_radius().err()?;
        let reg_key = format!("{}/{}", r.namespace().unwrap_or_default(), r.name_any());
        Some((b, format!("{head}: {reg_key}: {b}")))
    })
}

fn status_changed(old: &RetentionPolicyStatus, new: &RetentionPolicyStatus) -> bool {
    let mut a = old.clone();
    let mut b = new.clone();
    let ca = std::mem::take(&mut a.conditions);
    let cb = std::mem::take(&mut b.conditions);
    a != b || differ_ignoring_timestamps(&ca, &cb)
}

async fn finish(
    view: &PolicyView,
    pctx: &PolicyContext,
    outcome: Outcome,
) -> Result<Action, ControllerError> {
    let ctx = &pctx.ctx;
    let mut status = outcome.status;
    status.conditions = conditions_for(
        &view.status.conditions,
        &outcome.health,
        view.generation,
        Timestamp::now(),
    );
    if status_changed(&view.status, &status) {
        // Fields that became empty (no candidates, no next run) are sent as null: a merge
        // patch without them would leave the previous values in place.
        let patch = status_patch(&view.status, &status)?;
        match &view.kind {
            Kind::Namespaced { namespace, .. } => {
                let api: Api<RetentionPolicy> = Api::namespaced(ctx.client.clone(), namespace);
                api.patch_status(&view.name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await?;
            }
            Kind::Cluster { .. } => {
                let api: Api<ClusterRetentionPolicy> = Api::all(ctx.client.clone());
                api.patch_status(&view.name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await?;
            }
        }
    }
    if matches!(outcome.health, Health::Ready { .. }) {
        ctx.reset_backoff(&format!("policy/{}", view.display));
    }
    // A reconcile that ends in a failure condition counts as failed, like one that returns an
    // error (counted in error_policy_for).
    if let Some(reason) = outcome.health.failure_reason() {
        // One Event per problem, when it appears or changes (a run publishes its own).
        if !outcome.ran && differ_ignoring_timestamps(&view.status.conditions, &status.conditions) {
            ctx.publish(
                &view.object_ref,
                EventType::Warning,
                reason,
                "Reconcile",
                outcome.health.message(),
            )
            .await;
        }
        ctx.metrics
            .failures
            .get_or_create(&FailureLabels {
                controller: view.controller(),
                reason: reason.to_string(),
            })
            .inc();
    }
    Ok(Action::requeue(outcome.requeue.max(Duration::from_secs(1))))
}

async fn reconcile_common(
    view: PolicyView,
    pctx: Arc<PolicyContext>,
) -> Result<Action, ControllerError> {
    let labels = ControllerLabels {
        controller: view.controller(),
    };
    pctx.ctx.metrics.reconciles.get_or_create(&labels).inc();
    let started = std::time::Instant::now();
    let outcome = reconcile_view(&view, &pctx).await;
    let result = match outcome {
        Ok(o) => finish(&view, &pctx, o).await,
        Err(e) if e.is_permanent() => {
            let status = RetentionPolicyStatus {
                observed_generation: view.generation,
                ..view.status.clone()
            };
            finish(
                &view,
                &pctx,
                Outcome {
                    health: Health::stalled(e.reason(), e.to_string()),
                    requeue: pctx.ctx.settings.policy_resync,
                    status,
                    ran: false,
                },
            )
            .await
        }
        Err(e) => Err(e),
    };
    pctx.ctx
        .metrics
        .durations
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    result
}

/// Reconciles one RetentionPolicy.
pub async fn reconcile_namespaced(
    p: Arc<RetentionPolicy>,
    pctx: Arc<PolicyContext>,
) -> Result<Action, ControllerError> {
    reconcile_common(namespaced_view(&p), pctx).await
}

/// Reconciles one ClusterRetentionPolicy.
pub async fn reconcile_cluster(
    p: Arc<ClusterRetentionPolicy>,
    pctx: Arc<PolicyContext>,
) -> Result<Action, ControllerError> {
    reconcile_common(cluster_view(&p), pctx).await
}

fn error_policy_for(
    controller: &'static str,
    key: String,
    error: &ControllerError,
    pctx: &PolicyContext,
) -> Action {
    pctx.ctx
        .metrics
        .failures
        .get_or_create(&FailureLabels {
            controller,
            reason: error.reason().into(),
        })
        .inc();
    warn!(policy = %key, reason = error.reason(), error = %error, "reconcile failed");
    Action::requeue(pctx.ctx.backoff(&format!("policy/{key}")))
}

fn error_policy_namespaced(
    p: Arc<RetentionPolicy>,
    e: &ControllerError,
    c: Arc<PolicyContext>,
) -> Action {
    error_policy_for(
        "retentionpolicy",
        format!("{}/{}", p.namespace().unwrap_or_default(), p.name_any()),
        e,
        &c,
    )
}

fn error_policy_cluster(
    p: Arc<ClusterRetentionPolicy>,
    e: &ControllerError,
    c: Arc<PolicyContext>,
) -> Action {
    error_policy_for("clusterretentionpolicy", p.name_any(), e, &c)
}

/// Runs the RetentionPolicy controller (in `namespace`, or everywhere) until `shutdown`.
pub async fn run_namespaced(
    pctx: Arc<PolicyContext>,
    namespace: Option<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let client = pctx.ctx.client.clone();
    let api: Api<RetentionPolicy> = match &namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    Controller::new(api, watcher::Config::default())
        .graceful_shutdown_on(shutdown)
        .run(reconcile_namespaced, error_policy_namespaced, pctx)
        .for_each(|_| async {})
        .await;
}

/// Runs the ClusterRetentionPolicy controller until `shutdown`.
pub async fn run_cluster(
    pctx: Arc<PolicyContext>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let api: Api<ClusterRetentionPolicy> = Api::all(pctx.ctx.client.clone());
    Controller::new(api, watcher::Config::default())
        .graceful_shutdown_on(shutdown)
        .run(reconcile_cluster, error_policy_cluster, pctx)
        .for_each(|_| async {})
        .await;
}
