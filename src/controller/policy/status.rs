//! Status: the condition to keep when nothing ran, the pending retry, and the write.

use std::time::Duration;

use jiff::Timestamp;
use kube::api::Api;
use kube::runtime::controller::Action;

use super::schedule::Schedule;
use super::view::{Kind, PolicyView};
use super::PolicyContext;
use crate::api::retention::{
    ClusterRetentionPolicy, RetentionPolicy, RetentionPolicyStatus, RunOutcome,
};
use crate::controller::conditions::{Health, Reason};
use crate::controller::error::ControllerError;
use crate::controller::reconcile::{conditioned_status, write_status, Write};

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

/// The outcome of one reconcile, before it is written to status.
pub(super) struct Outcome {
    pub(super) health: Health,
    pub(super) requeue: Duration,
    pub(super) status: RetentionPolicyStatus,
    /// A run happened and published its own Event.
    pub(super) ran: bool,
}

conditioned_status!(RetentionPolicyStatus, differs_besides_conditions);

/// Whether the statuses differ outside their conditions.
fn differs_besides_conditions(old: &RetentionPolicyStatus, new: &RetentionPolicyStatus) -> bool {
    let mut a = old.clone();
    let mut b = new.clone();
    a.conditions = Vec::new();
    b.conditions = Vec::new();
    a != b
}

/// The status step (see [`write_status`]), then the requeue; a policy that is Ready again
/// forgets its failures.
pub(super) async fn finish(
    view: &PolicyView,
    pctx: &PolicyContext,
    outcome: Outcome,
) -> Result<Action, ControllerError> {
    let ctx = &pctx.ctx;
    let now = Timestamp::now();
    // A run publishes its own Event.
    let write = Write {
        always: false,
        quiet: outcome.ran,
    };
    let (old, new, health) = (&view.status, outcome.status, &outcome.health);
    match &view.kind {
        Kind::Namespaced { namespace, .. } => {
            let api = Api::<RetentionPolicy>::namespaced(ctx.client.clone(), namespace);
            write_status(ctx, view.object(api), old, new, health, now, write).await?;
        }
        Kind::Cluster { .. } => {
            let api = Api::<ClusterRetentionPolicy>::all(ctx.client.clone());
            write_status(ctx, view.object(api), old, new, health, now, write).await?;
        }
    }
    if matches!(outcome.health, Health::Ready { .. }) {
        ctx.reset_backoff(&format!("policy/{}", view.display));
    }
    Ok(Action::requeue(outcome.requeue.max(Duration::from_secs(1))))
}
