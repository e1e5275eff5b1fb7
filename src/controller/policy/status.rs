//! Status: the condition to keep when nothing ran, the pending retry, and the write.

use std::time::Duration;

use jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;

use super::reconcile::Outcome;
use super::schedule::Schedule;
use super::view::{Kind, PolicyView};
use super::PolicyContext;
use crate::api::retention::{
    ClusterRetentionPolicy, RetentionPolicy, RetentionPolicyStatus, RunOutcome,
};
use crate::controller::conditions::{conditions_for, differ_ignoring_timestamps, Health, Reason};
use crate::controller::error::ControllerError;
use crate::controller::metrics::FailureLabels;
use crate::controller::status_patch::status_patch;

/// When the last run failed on a problem that may pass: the time its retry is due. It is
/// recorded as `nextRunTime` ahead of the schedule (a time the schedule gives is no retry).
pub(super) fn pending_retry(
    status: &RetentionPolicyStatus,
    schedule: Option<&Schedule>,
) -> Option<Timestamp> {
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
pub(super) fn current_health(status: &RetentionPolicyStatus) -> Health {
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
        None => Health::reconciling(Reason::Pending, "waiting for the first run"),
    }
}

pub(super) fn status_changed(old: &RetentionPolicyStatus, new: &RetentionPolicyStatus) -> bool {
    let mut a = old.clone();
    let mut b = new.clone();
    let ca = std::mem::take(&mut a.conditions);
    let cb = std::mem::take(&mut b.conditions);
    a != b || differ_ignoring_timestamps(&ca, &cb)
}

pub(super) async fn finish(
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
