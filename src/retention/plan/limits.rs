//! The blast-radius limits, checked on a plan before the first deletion.

use crate::api::common::condition::Reason;
use crate::retention::policy::Limits;

/// A limit the plan breaches; nothing may be deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LimitBreach {
    /// More tag deletions than `limits.maxDeletionsPerRun`.
    #[error("the plan deletes {planned} tags, more than limits.maxDeletionsPerRun ({limit})")]
    MaxDeletionsPerRun {
        /// Tag deletions planned.
        planned: u64,
        /// The limit.
        limit: u64,
    },
    /// More tag deletions than `limits.maxDeletionPercent` of the tags in scope.
    #[error("the plan deletes {planned} of {in_scope} tags in scope, more than limits.maxDeletionPercent ({percent}%)")]
    MaxDeletionPercent {
        /// Tag deletions planned.
        planned: u64,
        /// Tags in scope.
        in_scope: u64,
        /// The limit.
        percent: u8,
    },
}

impl LimitBreach {
    /// The condition reason (`Stalled=True`).
    pub fn reason(&self) -> Reason {
        Reason::BlastRadiusExceeded
    }

    /// The policy field whose limit was breached.
    pub fn field(&self) -> &'static str {
        match self {
            LimitBreach::MaxDeletionsPerRun { .. } => "limits.maxDeletionsPerRun",
            LimitBreach::MaxDeletionPercent { .. } => "limits.maxDeletionPercent",
        }
    }
}

/// Checks `deletions` tag deletions out of `in_scope` tags against the limits. The count
/// limit is checked first. Exactly at a limit passes.
pub fn check_limits(limits: Limits, deletions: u64, in_scope: u64) -> Result<(), LimitBreach> {
    if let Some(breach) = count_breach(limits, deletions) {
        return Err(breach);
    }
    if let Some(percent) = limits.max_deletion_percent {
        if u128::from(deletions) * 100 > u128::from(percent) * u128::from(in_scope) {
            return Err(LimitBreach::MaxDeletionPercent {
                planned: deletions,
                in_scope,
                percent,
            });
        }
    }
    Ok(())
}

/// The count limit alone: `deletions` tag deletions past `limits.maxDeletionsPerRun` breach
/// it whatever the tags in scope, so a run that counts its deletions as it goes knows it is
/// blocked as soon as this says so.
pub fn count_breach(limits: Limits, deletions: u64) -> Option<LimitBreach> {
    (deletions > limits.max_deletions_per_run).then_some(LimitBreach::MaxDeletionsPerRun {
        planned: deletions,
        limit: limits.max_deletions_per_run,
    })
}
