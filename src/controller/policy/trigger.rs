//! Whether a retention policy should run now, and when to look again. Pure: the reconciler
//! passes the policy's state and the clock.

use jiff::{SignedDuration, Timestamp};

use super::schedule::Schedule;

/// Annotation whose new value requests one run.
pub const RUN_REQUESTED_AT: &str = "registry-operator.dev/run-requested-at";

/// Why a run starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// Never ran at this generation: the policy is new or its spec changed.
    SpecChanged,
    /// The run-requested-at annotation has a value not acted upon yet.
    Requested(String),
    /// The schedule is due.
    Scheduled,
    /// The last run failed on a problem that may pass (an unreachable registry, a missing
    /// Secret), and its retry is due.
    Retry,
    /// The last run was refused by the registry (credentials rejected, permission denied),
    /// and a credentials Secret it used changed since.
    CredentialsChanged,
}

/// What the reconciler knows about a policy when deciding.
#[derive(Debug, Clone)]
pub struct PolicyState<'a> {
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// Generation of the last completed run (the status' `observedGeneration`).
    pub last_run_generation: Option<i64>,
    /// Start of the last run.
    pub last_run_start: Option<Timestamp>,
    /// Current value of the run-requested-at annotation.
    pub requested: Option<&'a str>,
    /// The value acted upon last (status `lastRunRequest`).
    pub last_request: Option<&'a str>,
    /// Parsed schedule, if any.
    pub schedule: Option<&'a Schedule>,
    /// `spec.suspend`.
    pub suspended: bool,
    /// When the last run failed on a problem that may pass: when to try again.
    pub retry_at: Option<Timestamp>,
    /// The last run was refused by the registry and a credentials Secret of its registries
    /// changed since it started.
    pub credentials_changed: bool,
}

/// Decides whether to run now. A suspended policy never runs: not on its schedule, not for a
/// spec change (setting `suspend: true` is one) and not on request; a request made meanwhile
/// stays pending (see [`pending_request`]). Resuming is a spec change, so it starts one run.
pub fn due(state: &PolicyState<'_>, now: Timestamp) -> Option<Trigger> {
    if state.suspended {
        return None;
    }
    if let Some(value) = pending_request(state) {
        return Some(Trigger::Requested(value.to_string()));
    }
    if state.last_run_start.is_none() || state.generation != state.last_run_generation {
        return Some(Trigger::SpecChanged);
    }
    if state.credentials_changed {
        return Some(Trigger::CredentialsChanged);
    }
    if state.retry_at.is_some_and(|at| at <= now) {
        return Some(Trigger::Retry);
    }
    let next = next_scheduled(state)?;
    (next <= now).then_some(Trigger::Scheduled)
}

/// The run-requested-at value no run has acted upon yet, if any.
pub fn pending_request<'a>(state: &PolicyState<'a>) -> Option<&'a str> {
    state
        .requested
        .filter(|value| state.last_request != Some(*value))
}

/// When the next run is due: the schedule's next time, or the retry of a failed run when that
/// comes first (None without either, or while suspended).
pub fn next_run(state: &PolicyState<'_>) -> Option<Timestamp> {
    if state.suspended {
        return None;
    }
    match (next_scheduled(state), state.retry_at) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// When the next scheduled run is due (None without a schedule or while suspended).
pub fn next_scheduled(state: &PolicyState<'_>) -> Option<Timestamp> {
    if state.suspended {
        return None;
    }
    let schedule = state.schedule?;
    let last = state.last_run_start?;
    schedule.next_after(last)
}

/// How long to wait before reconciling again: until the next run, capped so a clock jump or a
/// missed watch event is noticed within `cap`.
pub fn requeue_after(
    state: &PolicyState<'_>,
    now: Timestamp,
    cap: SignedDuration,
) -> SignedDuration {
    match next_run(state) {
        Some(next) => {
            let wait = now.duration_until(next);
            wait.clamp(SignedDuration::from_secs(1), cap)
        }
        None => cap,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn base<'a>(schedule: Option<&'a Schedule>) -> PolicyState<'a> {
        PolicyState {
            generation: Some(2),
            last_run_generation: Some(2),
            last_run_start: Some(ts("2026-11-23T03:00:00Z")),
            requested: None,
            last_request: None,
            schedule,
            suspended: false,
            retry_at: None,
            credentials_changed: false,
        }
    }

    #[test]
    fn a_refused_run_runs_again_once_its_secret_changed_and_not_before() {
        let every = Schedule::parse("@every 6h").unwrap();
        let mut s = base(Some(&every));
        assert_eq!(due(&s, ts("2026-11-23T04:00:00Z")), None, "no retry loop");
        s.credentials_changed = true;
        assert_eq!(
            due(&s, ts("2026-11-23T04:00:00Z")),
            Some(Trigger::CredentialsChanged)
        );
        s.suspended = true;
        assert_eq!(due(&s, ts("2026-11-23T04:00:00Z")), None);
    }

    #[test]
    fn a_new_or_changed_policy_runs_at_once() {
        let mut s = base(None);
        s.last_run_start = None;
        assert_eq!(
            due(&s, ts("2026-11-23T03:00:00Z")),
            Some(Trigger::SpecChanged)
        );
        let mut s = base(None);
        s.generation = Some(3);
        assert_eq!(
            due(&s, ts("2026-11-23T03:00:01Z")),
            Some(Trigger::SpecChanged)
        );
    }

    #[test]
    fn a_new_annotation_value_requests_exactly_one_run() {
        let mut s = base(None);
        s.requested = Some("2026-11-23T04:00");
        assert_eq!(
            due(&s, ts("2026-11-23T04:00:00Z")),
            Some(Trigger::Requested("2026-11-23T04:00".into()))
        );
        s.last_request = Some("2026-11-23T04:00");
        assert_eq!(due(&s, ts("2026-11-23T04:00:05Z")), None);
    }

    #[test]
    fn a_schedule_is_due_at_its_time_and_not_before() {
        let every = Schedule::parse("@every 6h").unwrap();
        let s = base(Some(&every));
        assert_eq!(due(&s, ts("2026-11-23T08:59:59Z")), None);
        assert_eq!(
            due(&s, ts("2026-11-23T09:00:00Z")),
            Some(Trigger::Scheduled)
        );
        assert_eq!(
            requeue_after(
                &s,
                ts("2026-11-23T08:00:00Z"),
                SignedDuration::from_hours(24)
            ),
            SignedDuration::from_hours(1)
        );
        assert_eq!(
            requeue_after(&s, ts("2026-11-23T08:00:00Z"), SignedDuration::from_mins(5)),
            SignedDuration::from_mins(5)
        );
    }

    #[test]
    fn a_suspended_policy_runs_neither_on_schedule_nor_spec_change_nor_request() {
        let every = Schedule::parse("@every 6h").unwrap();
        let mut s = base(Some(&every));
        s.suspended = true;
        assert_eq!(due(&s, ts("2026-11-24T09:00:00Z")), None);
        // Setting suspend: true bumps the generation: that must not start a run.
        s.generation = Some(3);
        assert_eq!(due(&s, ts("2026-11-24T09:00:00Z")), None);
        s.requested = Some("now");
        assert_eq!(due(&s, ts("2026-11-24T09:00:00Z")), None);
        assert_eq!(pending_request(&s), Some("now"), "the request waits");
        assert_eq!(next_run(&s), None);
    }

    #[test]
    fn resuming_runs_once_and_serves_a_pending_request() {
        let mut s = base(None);
        s.generation = Some(4);
        s.requested = Some("now");
        assert_eq!(
            due(&s, ts("2026-11-24T09:00:00Z")),
            Some(Trigger::Requested("now".into()))
        );
        s.requested = None;
        assert_eq!(
            due(&s, ts("2026-11-24T09:00:00Z")),
            Some(Trigger::SpecChanged)
        );
    }

    #[test]
    fn a_transiently_failed_run_is_retried_when_its_backoff_ends() {
        let mut s = base(None);
        s.retry_at = Some(ts("2026-11-23T03:00:04Z"));
        assert_eq!(due(&s, ts("2026-11-23T03:00:03Z")), None);
        assert_eq!(
            requeue_after(
                &s,
                ts("2026-11-23T03:00:01Z"),
                SignedDuration::from_mins(10)
            ),
            SignedDuration::from_secs(3)
        );
        assert_eq!(next_run(&s), Some(ts("2026-11-23T03:00:04Z")));
        assert_eq!(
            due(&s, ts("2026-11-23T03:00:04Z")),
            Some(Trigger::Retry),
            "no schedule and no edit needed"
        );
        // A schedule due sooner comes first; a suspended policy does not retry.
        let every = Schedule::parse("@every 6h").unwrap();
        let mut s = base(Some(&every));
        s.retry_at = Some(ts("2026-11-23T12:00:00Z"));
        assert_eq!(next_run(&s), Some(ts("2026-11-23T09:00:00Z")));
        s.suspended = true;
        assert_eq!(due(&s, ts("2026-11-23T12:00:00Z")), None);
        assert_eq!(next_run(&s), None);
    }
}
