//! One mutation: re-check, DELETE, and a DELETE tried again after a transient failure.

use std::future::Future;

use super::gate::{DeleteGate, Gate};
use super::{Interruption, ItemResult};
use crate::oci::{DeleteOutcome, OciError, RegistryClient, TagCheck};
use crate::retention::{Digest, Mutation};

/// Re-checks and carries out one mutation. A DELETE answered 429 or 5xx (or lost on the
/// way) is tried again after the wait the registry asked for — or the client's backoff —
/// and each time the tag is re-resolved first (invariant 10): a tag re-pushed during the
/// wait is left alone. Once the registry refused the account a deletion, nothing is tried.
pub(super) async fn run_one(
    client: &RegistryClient,
    m: &Mutation,
    deletes: &DeleteGate,
    fence: Option<&Gate>,
) -> ItemResult {
    let policy = &client.options().retry;
    let mut retries = 0;
    loop {
        if let Some(stopped) = deletes.stopped() {
            return stopped;
        }
        // Before every DELETE request; a retry asks afresh (the failure may have been the
        // network that also cut this replica off from the API server).
        if let Some(gate) = fence {
            let asked = if retries == 0 {
                gate.check().await
            } else {
                gate.check_fresh().await
            };
            if let Err(why) = asked {
                return ItemResult::Interrupted {
                    by: Interruption::NotLeader,
                    message: why,
                };
            }
        }
        match attempt(client, m, deletes, fence).await {
            Ok(r) => return r,
            Err(Transient { reason, wait }) => {
                if retries >= policy.max_retries {
                    return ItemResult::Failed { reason };
                }
                retries += 1;
                let wait = wait.unwrap_or_else(|| policy.backoff(retries));
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// A DELETE that failed in a way worth another re-check and try.
struct Transient {
    /// What failed, for the report if no try is left.
    reason: String,
    /// What the registry asked to wait (`Retry-After`, capped by the client's policy).
    wait: Option<std::time::Duration>,
}

/// One re-check and DELETE; `Err` for a DELETE to try again. A refusal of the account
/// (401, 403) is recorded in `deletes`, which then lets no other deletion through.
async fn attempt(
    client: &RegistryClient,
    m: &Mutation,
    deletes: &DeleteGate,
    fence: Option<&Gate>,
) -> Result<ItemResult, Transient> {
    match m {
        Mutation::DeleteTag {
            repository,
            tag,
            digest,
        } => {
            if let Some(r) = recheck(client, deletes, repository, tag, digest, true).await {
                return Ok(r);
            }
            if let Some(stop) = fenced(fence).await {
                return Ok(stop);
            }
            let what = format!("deleting tag {tag}");
            delete(deletes, what, client.delete_tag(repository, tag)).await
        }
        Mutation::DeleteManifest {
            repository,
            digest,
            tags,
            ..
        } => {
            // One re-check per deletion: deleting by digest cannot remove a tag that moved
            // to another digest, so what the re-check guards is the plan's premise — a tag
            // re-pushed since the listing means the image is being worked on, and the whole
            // deletion is skipped. Re-checking every alias would cost a HEAD per alias and
            // protect nothing more.
            if let Some(tag) = tags.first() {
                if let Some(r) = recheck(client, deletes, repository, tag, digest, false).await {
                    return Ok(r);
                }
            }
            if let Some(stop) = fenced(fence).await {
                return Ok(stop);
            }
            let digest_text = digest.to_string();
            let what = format!("deleting {}", digest.short());
            delete(
                deletes,
                what,
                client.delete_manifest(repository, &digest_text),
            )
            .await
        }
    }
}

/// The fence asked once more between the re-check and the DELETE (a slow re-check may have
/// outlasted the last yes): the item's result when it says no.
async fn fenced(fence: Option<&Gate>) -> Option<ItemResult> {
    let why = fence?.check().await.err()?;
    Some(ItemResult::Interrupted {
        by: Interruption::NotLeader,
        message: why,
    })
}

/// Re-resolves `tag` before a deletion: `None` while it still points at `digest` (or is gone,
/// unless `gone_is_done`: deleting that very tag); else the item's result — already gone,
/// changed, or the re-check's failure.
async fn recheck(
    client: &RegistryClient,
    deletes: &DeleteGate,
    repository: &str,
    tag: &str,
    digest: &Digest,
    gone_is_done: bool,
) -> Option<ItemResult> {
    match client.check_tag(repository, tag, &digest.to_string()).await {
        Ok(TagCheck::Unchanged(_)) => None,
        Ok(TagCheck::Gone) if gone_is_done => Some(ItemResult::AlreadyGone),
        Ok(TagCheck::Gone) => None,
        Ok(TagCheck::Moved(now)) => Some(ItemResult::Changed {
            tag: tag.to_string(),
            now: now.digest,
        }),
        Err(e) => Some(failed(deletes, &format!("re-checking tag {tag}"), e)),
    }
}

/// Sends one DELETE (`what`, for the report) through `deletes` and reads its outcome: a 404
/// is success, a 429, 5xx or lost request is `Err` (worth another re-check and try).
async fn delete<F>(deletes: &DeleteGate, what: String, request: F) -> Result<ItemResult, Transient>
where
    F: Future<Output = crate::oci::Result<DeleteOutcome>>,
{
    let e = match deletes.send(&what, request).await {
        None => {
            return Ok(deletes.stopped().unwrap_or(ItemResult::NotAttempted {
                because: "an earlier deletion was refused".to_string(),
            }))
        }
        Some(Ok(DeleteOutcome::Deleted)) => return Ok(ItemResult::Deleted),
        Some(Ok(DeleteOutcome::AlreadyGone)) => return Ok(ItemResult::AlreadyGone),
        Some(Err(e)) => e,
    };
    let wait = match &e {
        OciError::ServerError { retry_after, .. } => Some(*retry_after),
        OciError::Unreachable { .. } => Some(None),
        _ => None,
    };
    match wait {
        Some(wait) => Err(Transient {
            wait,
            reason: format!("{what}: {e}"),
        }),
        None => Ok(failed(deletes, &what, e)),
    }
}

/// A request's failure as the item's result; a refusal of the account is recorded in
/// `deletes`.
fn failed(deletes: &DeleteGate, what: &str, e: OciError) -> ItemResult {
    match e.denial() {
        Some(denial) => {
            let reason = format!("{what}: {e}");
            deletes.refuse(denial, reason.clone());
            ItemResult::Refused { denial, reason }
        }
        None => ItemResult::Failed {
            reason: format!("{what}: {e}"),
        },
    }
}
