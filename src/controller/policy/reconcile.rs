//! One reconcile of a policy: validate → is a run due → may it start → run → fold the results
//! into status, condition and Event.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::events::EventType;
use tracing::{info, warn};

use super::run::run_on_registries;
use super::status::{current_health, pending_retry, Outcome};
use super::summary;
use super::targets::target_registries;
use super::trigger::{self, PolicyState, Trigger, RUN_REQUESTED_AT};
use super::validate::validate;
use super::view::{Kind, PolicyView};
use super::PolicyContext;
use crate::api::retention::RetentionPolicyStatus;
use crate::controller::conditions::{Health, Reason, READY};
use crate::controller::context::Context;
use crate::controller::error::ControllerError;
use crate::controller::metrics::{ControllerLabels, RunLabels};

pub(super) async fn reconcile_view(
    view: &PolicyView,
    pctx: &PolicyContext,
) -> Result<Outcome, ControllerError> {
    let ctx = &pctx.ctx;
    let now = Timestamp::now();
    let mut status = view.status.clone();
    status.observed_generation = view.generation;
    let resync = SignedDuration::try_from(ctx.settings.policy_resync)
        .unwrap_or(SignedDuration::from_hours(1));

    let (policy, schedule) = match validate(view) {
        Ok(valid) => valid,
        Err(problems) => {
            status.next_run_time = None;
            return Ok(Outcome {
                health: Health::stalled(Reason::InvalidSpec, problems),
                requeue: ctx.settings.policy_resync,
                status,
                ran: false,
            });
        }
    };

    let credentials_changed = super::credentials::changed_since_refusal(view, ctx).await;
    let state = PolicyState {
        generation: view.generation,
        last_run_generation: view.status.last_run.as_ref().and_then(|r| r.generation),
        last_run_start: view.status.last_run.as_ref().map(|r| r.start_time.0),
        requested: view.annotations.get(RUN_REQUESTED_AT).map(String::as_str),
        last_request: view.status.last_run_request.as_deref(),
        schedule: schedule.as_ref(),
        suspended: view.rules.suspend.unwrap_or(false),
        retry_at: pending_retry(&view.status, schedule.as_ref()),
        credentials_changed,
    };
    if state.suspended {
        return Ok(suspended(view, ctx, &state, status).await);
    }
    let Some(trigger) = trigger::due(&state, now) else {
        status.next_run_time = trigger::next_run(&state).map(|t| t.to_string());
        let requeue = trigger::requeue_after(&state, now, resync);
        return Ok(Outcome {
            health: current_health(&view.status),
            requeue: requeue.unsigned_abs(),
            status,
            ran: false,
        });
    };
    if let Some(health) = waiting(view, pctx).await {
        return Ok(Outcome {
            health,
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
    let (runs, held) = run_on_registries(view, &policy, registries, pctx, now).await?;
    for (reg_key, result, _) in &runs {
        if let Err(e) = result {
            warn!(policy = %view.display, registry = %reg_key, reason = %e.reason(), error = %e, "retention run failed");
        }
    }
    let cluster = matches!(view.kind, Kind::Cluster { .. });
    let start = summary::started(Time(started), view.rules.mode, view.generation);
    let held = held.as_ref().map(|(_, m)| m.as_str());
    let mut tally = summary::fold(start, &runs, held, cluster);
    tally.summary.completion_time = Some(Time(Timestamp::now()));
    let labels = ControllerLabels {
        controller: view.controller(),
    };
    let deleted = u64::try_from(tally.summary.deleted).unwrap_or(0);
    if deleted > 0 {
        ctx.metrics
            .tags_deleted
            .get_or_create(&labels)
            .inc_by(deleted);
    }
    ctx.metrics
        .runs
        .get_or_create(&RunLabels {
            controller: view.controller(),
            mode: view.rules.mode.to_string(),
            outcome: format!("{:?}", tally.summary.outcome),
        })
        .inc();

    status.last_run = Some(tally.summary.clone());
    status.candidates = std::mem::take(&mut tally.candidates);
    if let Trigger::Requested(value) = &trigger {
        status.last_run_request = Some(value.clone());
    }
    // A run that failed on a problem that may pass (an unreachable registry, a missing
    // Secret) is tried again after the controller's backoff, growing per failure up to its
    // maximum; the retry time is `nextRunTime`, so it survives a restart. A failure only a
    // person can fix (Stalled) waits for a change instead.
    let completed = Timestamp::now();
    let retry_at = tally
        .retries()
        .then(|| ctx.backoff(&format!("policy/{}", view.display)))
        .and_then(|wait| SignedDuration::try_from(wait).ok())
        .and_then(|wait| completed.checked_add(wait).ok());
    let after = PolicyState {
        last_run_start: Some(started),
        last_run_generation: view.generation,
        retry_at,
        credentials_changed: false,
        ..state
    };
    status.next_run_time = trigger::next_run(&after).map(|t| t.to_string());
    let requeue = trigger::requeue_after(&after, completed, resync);

    let (health, event_type, reason) = tally.verdict(view.rules.mode);
    ctx.publish(
        &view.object_ref,
        event_type,
        reason.as_str(),
        "Run",
        tally.summary.message.as_deref().unwrap_or_default(),
    )
    .await;
    Ok(Outcome {
        health,
        requeue: requeue.unsigned_abs(),
        status,
        ran: true,
    })
}

/// A suspended policy: no run of any kind; a request made meanwhile is reported (once) and
/// runs on resume.
async fn suspended(
    view: &PolicyView,
    ctx: &Context,
    state: &PolicyState<'_>,
    mut status: RetentionPolicyStatus,
) -> Outcome {
    status.next_run_time = None;
    let message = match trigger::pending_request(state) {
        Some(value) => format!(
            "suspended (spec.suspend): the run requested by {RUN_REQUESTED_AT}={value} has not started; it starts when spec.suspend is false"
        ),
        None => "suspended (spec.suspend): no scheduled, spec-change or requested runs; one run starts when spec.suspend is false".to_string(),
    };
    let reported = view.status.conditions.iter().any(|c| {
        c.type_ == READY && c.reason == Reason::Suspended.as_str() && c.message == message
    });
    if !reported && trigger::pending_request(state).is_some() {
        ctx.publish(
            &view.object_ref,
            EventType::Normal,
            Reason::Suspended.as_str(),
            "Run",
            &message,
        )
        .await;
    }
    Outcome {
        health: Health::ready(Reason::Suspended, message),
        requeue: ctx.settings.policy_resync,
        status,
        ran: false,
    }
}

/// What a due run still waits for, as the condition to report meanwhile. Protections need
/// the in-use index: without it nothing may be deleted, and a plan would list running images
/// as candidates, so neither mode runs before it has synced. Other policies veto from the
/// policy caches, which must have listed once.
async fn waiting(view: &PolicyView, pctx: &PolicyContext) -> Option<Health> {
    if view.rules.protects_in_use() && !pctx.in_use.synced() {
        return Some(Health::reconciling(
            Reason::WaitingForInUseIndex,
            "waiting for the list of images Pods run before planning",
        ));
    }
    if !pctx.caches_ready().await {
        return Some(Health::reconciling(
            Reason::WaitingForCaches,
            "waiting for the list of retention policies",
        ));
    }
    None
}
