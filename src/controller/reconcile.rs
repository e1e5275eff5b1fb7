//! What both reconcilers share, written once: the reconcile timer and its metrics, the error
//! policy (capped backoff for what may pass, waiting for a change for what only a person can
//! fix), and the status step — kstatus conditions from the reconcile's [`Health`], a merge
//! patch only when the status changed (timestamps aside), and for a problem one Warning Event
//! when it appears or changes and one count in `reconcile_failures_total` per reconcile.

use std::fmt::Debug;
use std::future::Future;
use std::time::Instant;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::warn;

use super::conditions::{
    conditions_for, differ_ignoring_timestamps, extra_condition, Extra, Health,
};
use super::context::Context;
use super::error::ControllerError;
use super::metrics::{ControllerLabels, FailureLabels};
use super::status_patch::status_patch;

/// A status with kstatus conditions, as the status step sees it.
pub trait ConditionedStatus: Serialize {
    /// The conditions.
    fn conditions(&self) -> &[Condition];
    /// Replaces the conditions.
    fn set_conditions(&mut self, conditions: Vec<Condition>);
    /// Whether `new` differs from `self` outside the conditions in anything worth a write.
    fn differs_besides_conditions(&self, new: &Self) -> bool;
}

/// Implements [`ConditionedStatus`] for a status type with a `conditions` field, given the
/// function that compares two of them outside their conditions.
macro_rules! conditioned_status {
    ($status:ty, $differs:path) => {
        impl $crate::controller::reconcile::ConditionedStatus for $status {
            fn conditions(&self) -> &[::k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition] {
                &self.conditions
            }

            fn set_conditions(
                &mut self,
                conditions: Vec<::k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>,
            ) {
                self.conditions = conditions;
            }

            fn differs_besides_conditions(&self, new: &Self) -> bool {
                $differs(self, new)
            }
        }
    };
}
pub(crate) use conditioned_status;

/// Whether `new` is worth writing over `old`: it differs outside its conditions, or its
/// conditions differ in more than their timestamps.
pub fn status_changed<S: ConditionedStatus>(old: &S, new: &S) -> bool {
    old.differs_besides_conditions(new)
        || differ_ignoring_timestamps(old.conditions(), new.conditions())
}

/// Runs one reconcile of `controller`, counted in `reconciles_total` and timed in
/// `reconcile_duration_seconds`.
pub async fn timed<T>(
    ctx: &Context,
    controller: &'static str,
    reconcile: impl Future<Output = T>,
) -> T {
    let labels = ControllerLabels { controller };
    ctx.metrics.reconciles.get_or_create(&labels).inc();
    let started = Instant::now();
    let result = reconcile.await;
    ctx.metrics
        .durations
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    result
}

/// Counts one failed reconcile of `controller` under `reason`.
fn count_failure(ctx: &Context, controller: &'static str, reason: &str) {
    ctx.metrics
        .failures
        .get_or_create(&FailureLabels {
            controller,
            reason: reason.to_string(),
        })
        .inc();
}

/// Requeues after a reconcile returned an error: counted and logged; a permanent error waits
/// for a change, a transient one backs off (per `key`, capped).
pub fn error_policy(
    ctx: &Context,
    controller: &'static str,
    key: &str,
    error: &ControllerError,
) -> Action {
    let reason = error.reason();
    count_failure(ctx, controller, reason.as_str());
    warn!(controller, object = %key, %reason, %error, "reconcile failed");
    if error.is_permanent() {
        Action::await_change()
    } else {
        Action::requeue(ctx.backoff(key))
    }
}

/// The object whose status a reconcile writes.
pub struct Object<'a, K> {
    /// Where its status is patched.
    pub api: Api<K>,
    /// Its name.
    pub name: &'a str,
    /// For its Events.
    pub reference: &'a ObjectReference,
    /// Which controller reconciles it (the metric label).
    pub controller: &'static str,
    /// The generation the new status was computed for.
    pub generation: Option<i64>,
}

/// How the status step should treat one reconcile's result.
#[derive(Debug, Clone, Copy, Default)]
pub struct Write {
    /// Write even when nothing changed (the object has no status yet).
    pub always: bool,
    /// A run already published its own Event: publish none for a problem.
    pub quiet: bool,
}

/// The status step: sets `new`'s conditions from `health` (as of `now`), patches the status
/// subresource when it changed from `old` (or `write.always`), and for a failure — Stalled,
/// or Reconciling for a problem rather than progress — publishes one Warning Event when the
/// conditions changed and counts the reconcile as failed, like one that returns an error.
pub async fn write_status<K, S>(
    ctx: &Context,
    object: Object<'_, K>,
    old: &S,
    new: S,
    health: &Health,
    now: Timestamp,
    write: Write,
) -> Result<(), ControllerError>
where
    K: Clone + DeserializeOwned + Debug,
    S: ConditionedStatus,
{
    write_status_with(ctx, object, old, new, health, &[], now, write).await
}

/// [`write_status`] with conditions of the object's own besides the kstatus ones. When one
/// of them changes, it is told in an Event too — Normal when it is `True` for its type's
/// good reason, Warning otherwise — unless it is `False`: then `Ready` says the same and
/// publishes its own.
#[allow(clippy::too_many_arguments)]
pub async fn write_status_with<K, S>(
    ctx: &Context,
    object: Object<'_, K>,
    old: &S,
    mut new: S,
    health: &Health,
    extra: &[Extra],
    now: Timestamp,
    write: Write,
) -> Result<(), ControllerError>
where
    K: Clone + DeserializeOwned + Debug,
    S: ConditionedStatus,
{
    let mut conditions = conditions_for(old.conditions(), health, object.generation, now);
    let mut extra_changed = Vec::new();
    for e in extra {
        let c = extra_condition(old.conditions(), e, object.generation, now);
        let before = old.conditions().iter().find(|p| p.type_ == e.type_);
        if before.is_none_or(|p| {
            (&p.status, &p.reason, &p.message) != (&c.status, &c.reason, &c.message)
        }) {
            extra_changed.push(e);
        }
        conditions.push(c);
    }
    new.set_conditions(conditions);
    let conditions_changed = differ_ignoring_timestamps(old.conditions(), new.conditions());
    if write.always || status_changed(old, &new) {
        // Fields that became empty (a cleared health error, no candidates, no next run) are
        // sent as null: a merge patch without them would leave the previous values in place,
        // and every later reconcile would see a difference and write again.
        let patch = status_patch(old, &new)?;
        object
            .api
            .patch_status(object.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
    }
    if let Some(reason) = health.failure_reason() {
        // One Event per problem: when it appears or changes, not on every pass.
        if conditions_changed && !write.quiet {
            ctx.publish(
                object.reference,
                EventType::Warning,
                reason,
                "Reconcile",
                health.message(),
            )
            .await;
        }
        count_failure(ctx, object.controller, reason);
    }
    for e in extra_changed {
        let type_ = match e.status {
            "True" if e.reason.as_str() == e.type_ => EventType::Normal,
            "True" => EventType::Warning,
            _ => continue,
        };
        ctx.publish(
            object.reference,
            type_,
            e.reason.as_str(),
            "Reconcile",
            &e.message,
        )
        .await;
    }
    Ok(())
}

/// Drives a controller (its `run` stream, drained) until it ends, and ends it at `shutdown` if
/// its cache had not listed yet. kube-runtime holds a controller's reconciles until its cache
/// has listed once, and a graceful shutdown stops the watch that would fill it: a SIGTERM in
/// the first instant after start would wait forever (until the kubelet kills the pod). No
/// reconcile can have started then, so there is nothing to wait for. Once the cache has
/// listed, the controller's own graceful shutdown lets running reconciles finish.
pub async fn run_controller<K>(
    controller: &'static str,
    run: impl Future<Output = ()>,
    cache: kube::runtime::reflector::Store<K>,
    shutdown: impl Future<Output = ()>,
) where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    use futures::FutureExt;
    let unlisted_at_shutdown = async move {
        shutdown.await;
        if cache.wait_until_ready().now_or_never().is_none() {
            return;
        }
        futures::future::pending::<()>().await;
    };
    tokio::select! {
        () = run => {}
        () = unlisted_at_shutdown => {
            tracing::info!(controller, "stopped before its cache had listed");
        }
    }
}
