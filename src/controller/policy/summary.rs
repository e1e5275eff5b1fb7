//! The pure fold of a run's results — one per registry — into what the policy's status, its
//! condition and its Event say: the `lastRun` summary, the bounded candidate list, the
//! message, and which problem (if any) the run ends on.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::events::EventType;

use crate::api::retention::{Candidate, PolicyMode, RunOutcome, RunSummary, MAX_STATUS_CANDIDATES};
use crate::controller::conditions::{Health, Reason};
use crate::controller::error::ControllerError;
use crate::engine::{Interruption, RunResult};

/// One registry's part of a run: `namespace/name` of its Registry object, how it ended, and
/// — when it read what it could but the registry refused the account a repository or a
/// deletion — the reason and message for that.
pub(super) type RegistryRun = (
    String,
    Result<RunResult, ControllerError>,
    Option<(Reason, String)>,
);

/// A run's results, folded.
#[derive(Debug)]
pub(super) struct Tally {
    /// The `lastRun` (its completion time is set by the caller).
    pub(super) summary: RunSummary,
    /// The candidates, at most [`MAX_STATUS_CANDIDATES`].
    pub(super) candidates: Vec<Candidate>,
    /// A blast-radius limit stopped the run: why.
    pub(super) blast: Option<String>,
    /// The last failure that may pass: the registry's, or the operator's own state.
    pub(super) unreachable: Option<(Reason, String)>,
    /// The first failure only a person can fix (another policy on the registry is invalid, a
    /// credentials Secret is malformed): the policy is Stalled with its reason, not retried.
    pub(super) permanent: Option<(Reason, String)>,
}

/// An empty summary of a run that started at `started`.
pub(super) fn started(started: Time, mode: PolicyMode, generation: Option<i64>) -> RunSummary {
    RunSummary {
        start_time: started,
        completion_time: None,
        mode,
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
        generation,
    }
}

/// Folds `runs` into `summary`. `held`: the message of the breach of the run's limits that
/// stopped every registry's part (nothing was executed); `cluster`: candidates name their
/// registry.
pub(super) fn fold(
    mut summary: RunSummary,
    runs: &[RegistryRun],
    held: Option<&str>,
    cluster: bool,
) -> Tally {
    let mut candidates: Vec<Candidate> = Vec::new();
    let mut messages = Vec::new();
    let mut blast: Option<String> = None;
    let mut unreachable: Option<(Reason, String)> = None;
    let mut permanent: Option<(Reason, String)> = None;
    for (reg_key, result, access) in runs {
        match result {
            Ok(result) => {
                // Refused a repository or a deletion: only new credentials or rights help,
                // so the policy is Stalled (not retried) with what was refused.
                if let Some((reason, message)) = access {
                    permanent.get_or_insert((*reason, format!("{reg_key}: {message}")));
                }
                // Stopped part-way by the operator's own state (lost the Lease, in-use index
                // relisting): reported like a transient failure, so the run is retried.
                if let Some((by, message)) =
                    result.execution.as_ref().and_then(|e| e.interruption())
                {
                    unreachable = Some((by.reason(), format!("{reg_key}: {message}")));
                }
                let s = result.summary();
                summary.absorb(&s);
                if let (Some(b), None) = (&result.blocked, held) {
                    summary.outcome = RunOutcome::Blocked;
                    blast = Some(format!("{reg_key}: {b}"));
                }
                let reg_name = cluster.then_some(reg_key.as_str());
                let room = MAX_STATUS_CANDIDATES.saturating_sub(candidates.len());
                candidates.extend(result.candidates(reg_name).into_iter().take(room));
                if let Some(m) = s.message.filter(|_| held.is_none()) {
                    messages.push(if runs.len() > 1 {
                        format!("{reg_key}: {m}")
                    } else {
                        m
                    });
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
    if let Some(m) = held {
        summary.outcome = RunOutcome::Blocked;
        messages.insert(0, m.to_string());
        blast = Some(m.to_string());
    }
    if runs.is_empty() {
        messages.push("no Registry matches the policy's selectors".into());
    }
    summary.message = Some(messages.join("; "));
    Tally {
        summary,
        candidates,
        blast,
        unreachable,
        permanent,
    }
}

impl Tally {
    /// Whether the run failed only on problems that may pass, so it is tried again after the
    /// controller's backoff (a breach or a failure only a person can fix waits for a change).
    pub(super) fn retries(&self) -> bool {
        self.blast.is_none() && self.permanent.is_none() && self.unreachable.is_some()
    }

    /// The condition and the Event of the run: a breach of the limits, then a failure only a
    /// person can fix (Stalled), then one that may pass (Reconciling), else Ready with
    /// `Planned` or `Enforced`.
    pub(super) fn verdict(&self, mode: PolicyMode) -> (Health, EventType, Reason) {
        if let Some(b) = &self.blast {
            let reason = Reason::BlastRadiusExceeded;
            (
                Health::stalled(reason, b.clone()),
                EventType::Warning,
                reason,
            )
        } else if let Some((reason, m)) = &self.permanent {
            (
                Health::stalled(reason, m.clone()),
                EventType::Warning,
                *reason,
            )
        } else if let Some((reason, u)) = &self.unreachable {
            (
                Health::reconciling(reason, u.clone()),
                EventType::Warning,
                *reason,
            )
        } else {
            let message = self.summary.message.clone().unwrap_or_default();
            let reason = if mode == PolicyMode::Plan {
                Reason::Planned
            } else {
                Reason::Enforced
            };
            (Health::ready(reason, message), EventType::Normal, reason)
        }
    }
}
