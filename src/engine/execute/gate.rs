//! The two gates every DELETE passes: the fence (does this replica still lead?) and the
//! account (has the registry refused it a deletion?).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{Fence, ItemResult, FENCE_TRUST};
use crate::oci::{DeleteOutcome, Denial};

/// A [`Fence`] asked at most every [`FENCE_TRUST`]: a yes is trusted that long, counted from
/// when it was asked. One question at a time: deletions that need an answer together wait for
/// the same read.
pub(super) struct Gate {
    fence: Fence,
    state: tokio::sync::Mutex<Asked>,
}

/// What the fence said last.
#[derive(Default)]
struct Asked {
    /// When the last yes was asked for.
    yes: Option<std::time::Instant>,
    /// The first no, for the rest of the execution: a run that lost the fence once stops
    /// (its retry makes a fresh plan) rather than going on where an answer came back later.
    no: Option<String>,
}

impl Gate {
    pub(super) fn new(fence: Fence) -> Gate {
        Gate {
            fence,
            state: tokio::sync::Mutex::new(Asked::default()),
        }
    }

    /// The fence's answer, asked again when its last yes is older than [`FENCE_TRUST`].
    pub(super) async fn check(&self) -> Result<(), String> {
        self.ask(false).await
    }

    /// The fence's answer, asked now whatever it said last (a no stays a no).
    pub(super) async fn check_fresh(&self) -> Result<(), String> {
        self.ask(true).await
    }

    async fn ask(&self, fresh: bool) -> Result<(), String> {
        let mut state = self.state.lock().await;
        if let Some(why) = &state.no {
            return Err(why.clone());
        }
        if !fresh && state.yes.is_some_and(|t| t.elapsed() < FENCE_TRUST) {
            return Ok(());
        }
        let asked = std::time::Instant::now();
        state.yes = None;
        if let Err(why) = (self.fence)().await {
            state.no = Some(why.clone());
            return Err(why);
        }
        state.yes = Some(asked);
        Ok(())
    }
}

/// Lets deletions through until the registry refuses the account one: while none has been
/// accepted yet they go one at a time, so a read-only account is refused exactly once; after
/// a refusal none is sent.
#[derive(Default)]
pub(super) struct DeleteGate {
    accepted: AtomicBool,
    alone: tokio::sync::Mutex<()>,
    refused: std::sync::Mutex<Option<(Denial, String)>>,
}

impl DeleteGate {
    pub(super) fn refusal(&self) -> Option<(Denial, String)> {
        self.refused.lock().map(|r| r.clone()).unwrap_or(None)
    }

    /// Records the first refusal.
    pub(super) fn refuse(&self, denial: Denial, why: String) {
        if let Ok(mut r) = self.refused.lock() {
            r.get_or_insert((denial, why));
        }
    }

    /// The item for a mutation not attempted after a refusal, if there was one.
    pub(super) fn stopped(&self) -> Option<ItemResult> {
        self.refusal()
            .map(|(_, because)| ItemResult::NotAttempted { because })
    }

    /// Sends one delete (`what`, for the report) through the gate; None when an earlier one
    /// was refused. A refusal is recorded before the next delete may go.
    pub(super) async fn send<F>(
        &self,
        what: &str,
        delete: F,
    ) -> Option<crate::oci::Result<DeleteOutcome>>
    where
        F: Future<Output = crate::oci::Result<DeleteOutcome>>,
    {
        let _alone = if self.accepted.load(Ordering::Acquire) {
            None
        } else {
            Some(self.alone.lock().await)
        };
        if self.refusal().is_some() {
            return None;
        }
        let r = delete.await;
        match &r {
            Ok(_) => self.accepted.store(true, Ordering::Release),
            Err(e) => {
                if let Some(denial) = e.denial() {
                    self.refuse(denial, format!("{what}: {e}"));
                }
            }
        }
        Some(r)
    }
}
