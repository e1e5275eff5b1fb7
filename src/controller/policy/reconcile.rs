//! One reconcile of a policy: validate, decide whether a run is due, and run.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use kube::api::{Api, ListParams};
use kube::runtime::events::EventType;
use kube::ResourceExt;
use tracing::{info, warn};

use super::run::{plan_on_registry, run_limit_breach};
use super::schedule::Schedule;
use super::status::{current_health, pending_retry};
use super::targets::target_registries;
use super::trigger::{self, PolicyState, Trigger, RUN_REQUESTED_AT};
use super::view::{Kind, PolicyView};
use super::{selector, PolicyContext};
use crate::api::retention::{
    Candidate, PolicyMode, RetentionPolicyStatus, RunOutcome, RunSummary, MAX_STATUS_CANDIDATES,
};
use crate::api::Registry;
use crate::controller::conditions::{Health, Reason, READY};
use crate::controller::endpoint::endpoint;
use crate::controller::error::ControllerError;
use crate::controller::metrics::{ControllerLabels, RunLabels};
use crate::engine::Interruption;
use crate::retention::Policy;

/// The outcome of one reconcile, before it is written to status.
pub(super) struct Outcome {
    pub(super) health: Health,
    pub(super) requeue: Duration,
    pub(super) status: RetentionPolicyStatus,
    /// A run happened and published its own Event.
    pub(super) ran: bool,
}

pub(super) async fn reconcile_view(
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
            health: Health::stalled(Reason::InvalidSpec, problems.join("; ")),
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
        let reported = view.status.conditions.iter().any(|c| {
            c.type_ == READY && c.reason == Reason::Suspended.as_str() && c.message == message
        });
        if !reported && trigger::pending_request(&state).is_some() {
            ctx.publish(
                &view.object_ref,
                EventType::Normal,
                Reason::Suspended.as_str(),
                "Run",
                &message,
            )
            .await;
        }
        return Ok(Outcome {
            health: Health::ready(Reason::Suspended, message),
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
                Reason::WaitingForInUseIndex,
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
                Reason::WaitingForCaches,
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
                health: Health::reconciling(e.reason(), e.to_string()),
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
    let mut unreachable: Option<(Reason, String)> = None;
    // The first error only a person can fix (another policy on the registry is invalid, a
    // credentials Secret is malformed): the policy is Stalled with its reason, not retried.
    let mut permanent: Option<(Reason, String)> = None;
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
                if let Some((by, message)) =
                    result.execution.as_ref().and_then(|e| e.interruption())
                {
                    unreachable = Some((by.reason(), format!("{reg_key}: {message}")));
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
                warn!(policy = %view.display, registry = %reg_key, reason = %e.reason(), error = %e, "retention run failed");
                messages.push(m.clone());
                if e.is_permanent() {
                    permanent.get_or_insert((e.reason(), m));
                } else {
                    // Transient: the registry, unless the operator itself held the run back.
                    let reason = e
                        .interruption()
                        .map_or(Reason::RegistryUnreachable, Interruption::reason);
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
            Health::stalled(Reason::BlastRadiusExceeded, b.clone()),
            EventType::Warning,
            Reason::BlastRadiusExceeded,
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
            Reason::Planned
        } else {
            Reason::Enforced
        };
        (Health::ready(reason, message), EventType::Normal, reason)
    };
    ctx.publish(
        &view.object_ref,
        event_type,
        reason.as_str(),
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
