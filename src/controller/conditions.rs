//! kstatus conditions: `Ready` always present, `Reconciling` and `Stalled` only while true, each
//! with `observedGeneration`; a condition's `lastTransitionTime` changes only when its status does.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

pub use crate::api::common::condition::{Reason, READY, RECONCILING, STALLED};

/// `Reconciling` reasons that mean work is under way, not that something is wrong: they are
/// neither counted in `reconcile_failures_total` nor published as Warning events.
pub const PROGRESS_REASONS: [Reason; 4] = [
    Reason::RollingOut,
    Reason::WaitingForInUseIndex,
    Reason::WaitingForCaches,
    Reason::Pending,
];

/// The state a reconcile wants to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Everything is as declared.
    Ready { reason: String, message: String },
    /// Work is under way (rolling out, waiting for pods, a run in progress).
    Reconciling { reason: String, message: String },
    /// Cannot progress without a change by a person (invalid spec, blast radius exceeded).
    Stalled { reason: String, message: String },
}

impl Health {
    /// Ready with a reason and message.
    pub fn ready(reason: impl AsRef<str>, message: impl Into<String>) -> Self {
        Health::Ready {
            reason: reason.as_ref().into(),
            message: message.into(),
        }
    }
    /// Reconciling with a reason and message.
    pub fn reconciling(reason: impl AsRef<str>, message: impl Into<String>) -> Self {
        Health::Reconciling {
            reason: reason.as_ref().into(),
            message: message.into(),
        }
    }
    /// Stalled with a reason and message.
    pub fn stalled(reason: impl AsRef<str>, message: impl Into<String>) -> Self {
        Health::Stalled {
            reason: reason.as_ref().into(),
            message: message.into(),
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        match self {
            Health::Ready { message, .. }
            | Health::Reconciling { message, .. }
            | Health::Stalled { message, .. } => message,
        }
    }

    /// The reason, when this is a failure: Stalled, or Reconciling for a problem (an
    /// unreachable registry, a missing Secret or Registry) rather than for progress
    /// ([`PROGRESS_REASONS`]).
    pub fn failure_reason(&self) -> Option<&str> {
        match self {
            Health::Ready { .. } => None,
            Health::Stalled { reason, .. } => Some(reason),
            Health::Reconciling { reason, .. } => {
                let progress = PROGRESS_REASONS.iter().any(|p| p.as_str() == reason);
                (!progress).then_some(reason.as_str())
            }
        }
    }
}

/// Returns the conditions describing `health` at `generation`, keeping each existing
/// condition's `lastTransitionTime` when its status did not change.
pub fn conditions_for(
    previous: &[Condition],
    health: &Health,
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    let make = |type_: &str, status: bool, reason: &str, message: &str| {
        let status = if status { "True" } else { "False" }.to_string();
        let last = previous
            .iter()
            .find(|c| c.type_ == type_ && c.status == status)
            .map(|c| c.last_transition_time.clone())
            .unwrap_or(Time(now));
        Condition {
            type_: type_.to_string(),
            status,
            reason: reason.to_string(),
            message: message.to_string(),
            observed_generation: generation,
            last_transition_time: last,
        }
    };
    match health {
        Health::Ready { reason, message } => vec![make(READY, true, reason, message)],
        Health::Reconciling { reason, message } => {
            vec![
                make(READY, false, reason, message),
                make(RECONCILING, true, reason, message),
            ]
        }
        Health::Stalled { reason, message } => {
            vec![
                make(READY, false, reason, message),
                make(STALLED, true, reason, message),
            ]
        }
    }
}

/// A condition of its own besides the kstatus ones (a Registry's `CredentialsAccepted`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extra {
    /// The condition type.
    pub type_: &'static str,
    /// `True`, `False` or `Unknown`.
    pub status: &'static str,
    /// Why.
    pub reason: Reason,
    /// For people.
    pub message: String,
}

/// The condition for `extra` at `generation`, keeping the previous `lastTransitionTime` when
/// its status did not change.
pub fn extra_condition(
    previous: &[Condition],
    extra: &Extra,
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    let last = previous
        .iter()
        .find(|c| c.type_ == extra.type_ && c.status == extra.status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    Condition {
        type_: extra.type_.to_string(),
        status: extra.status.to_string(),
        reason: extra.reason.as_str().to_string(),
        message: extra.message.clone(),
        observed_generation: generation,
        last_transition_time: last,
    }
}

/// Whether two condition lists differ in anything but transition timestamps — the test for
/// "status changed" that keeps reconcilers from writing on every pass.
pub fn differ_ignoring_timestamps(a: &[Condition], b: &[Condition]) -> bool {
    let key = |c: &Condition| {
        (
            c.type_.clone(),
            c.status.clone(),
            c.reason.clone(),
            c.message.clone(),
            c.observed_generation,
        )
    };
    let mut ka: Vec<_> = a.iter().map(key).collect();
    let mut kb: Vec<_> = b.iter().map(key).collect();
    ka.sort();
    kb.sort();
    ka != kb
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn ready_is_always_present_and_stalled_only_when_true() {
        let c = conditions_for(
            &[],
            &Health::ready("Succeeded", "ok"),
            Some(3),
            t("2026-11-23T03:00:00Z"),
        );
        assert_eq!(c.len(), 1);
        assert_eq!(
            (
                c[0].type_.as_str(),
                c[0].status.as_str(),
                c[0].observed_generation
            ),
            (READY, "True", Some(3))
        );
        let c = conditions_for(
            &c,
            &Health::stalled("InvalidSpec", "bad regex"),
            Some(4),
            t("2026-11-23T03:01:00Z"),
        );
        let types: Vec<_> = c
            .iter()
            .map(|c| (c.type_.as_str(), c.status.as_str()))
            .collect();
        assert_eq!(types, vec![(READY, "False"), (STALLED, "True")]);
    }

    #[test]
    fn stalled_and_problem_reasons_are_failures_progress_is_not() {
        assert_eq!(Health::ready("Available", "").failure_reason(), None);
        assert_eq!(
            Health::stalled("InvalidSpec", "").failure_reason(),
            Some("InvalidSpec")
        );
        assert_eq!(
            Health::reconciling("RegistryUnreachable", "").failure_reason(),
            Some("RegistryUnreachable")
        );
        for reason in PROGRESS_REASONS {
            assert_eq!(Health::reconciling(reason, "").failure_reason(), None);
        }
    }

    #[test]
    fn transition_time_only_moves_when_the_status_flips() {
        let first = conditions_for(
            &[],
            &Health::ready("Succeeded", "a"),
            Some(1),
            t("2026-11-23T03:00:00Z"),
        );
        let again = conditions_for(
            &first,
            &Health::ready("Succeeded", "b"),
            Some(1),
            t("2026-11-23T04:00:00Z"),
        );
        assert_eq!(again[0].last_transition_time, first[0].last_transition_time);
        let flipped = conditions_for(
            &again,
            &Health::stalled("X", "y"),
            Some(1),
            t("2026-11-23T05:00:00Z"),
        );
        assert_eq!(
            flipped[0].last_transition_time,
            Time(t("2026-11-23T05:00:00Z"))
        );
    }

    #[test]
    fn only_content_changes_count_as_a_status_change() {
        let a = conditions_for(
            &[],
            &Health::ready("Succeeded", "ok"),
            Some(1),
            t("2026-11-23T03:00:00Z"),
        );
        let mut b = a.clone();
        b[0].last_transition_time = Time(t("2026-11-24T03:00:00Z"));
        assert!(!differ_ignoring_timestamps(&a, &b));
        b[0].message = "changed".into();
        assert!(differ_ignoring_timestamps(&a, &b));
    }
}
