//! Deletes: by tag (zot) and by digest (every registry), 404 being success.

use reqwest::Method;

use super::request::{error_code, Req};
use super::RegistryClient;
use crate::oci::digest::validate_digest;
use crate::oci::error::{OciError, Operation, Result};
use crate::oci::redact::redact_url;
use crate::oci::reference::validate_tag;

/// How a delete ended (both are success).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// The registry accepted the delete (202 or 200).
    Deleted,
    /// The registry answered 404: the thing was already gone.
    AlreadyGone,
}

impl RegistryClient {
    /// DELETEs a manifest by tag or digest. 2xx is [`DeleteOutcome::Deleted`]; 404, and 400
    /// `NAME_UNKNOWN`, are [`DeleteOutcome::AlreadyGone`]; a status in `refused` is the
    /// registry refusing this kind of delete, turned into an error by `refusal` (URL, status,
    /// error code).
    async fn delete(
        &self,
        repository: &str,
        reference: &str,
        refused: &[u16],
        refusal: fn(String, u16, Option<String>) -> OciError,
    ) -> Result<DeleteOutcome> {
        let url = self.manifest_url(repository, reference)?;
        let mut req = Req::new(Operation::DeleteManifest, Method::DELETE, url)
            .scope(format!("repository:{repository}:delete"));
        // Never repeated blind (invariant 10): the caller re-checks what it deletes and then
        // retries (see `engine::execute`).
        req.retry = false;
        let resp = self.execute(req).await?;
        let code = error_code(&resp.body);
        match resp.status.as_u16() {
            200 | 202 | 204 => Ok(DeleteOutcome::Deleted),
            404 => Ok(DeleteOutcome::AlreadyGone),
            400 if code.as_deref() == Some("NAME_UNKNOWN") => Ok(DeleteOutcome::AlreadyGone),
            s if refused.contains(&s) => Err(refusal(redact_url(&resp.url), s, code)),
            _ => Err(self.status_error(Operation::DeleteManifest, &resp)),
        }
    }

    /// Deletes one tag, leaving the manifest and its other tags in place (zot). Registries that
    /// can only delete by digest (distribution: `400 DIGEST_INVALID`, or 405) give
    /// [`OciError::TagDeleteUnsupported`], so the caller can fall back to
    /// [`delete_manifest`](Self::delete_manifest) when every tag on the digest is going.
    pub async fn delete_tag(&self, repository: &str, tag: &str) -> Result<DeleteOutcome> {
        validate_tag(tag)?;
        self.delete(repository, tag, &[400, 405], |url, status, code| {
            OciError::TagDeleteUnsupported { url, status, code }
        })
        .await
    }

    /// Deletes a manifest by digest — in every registry this removes **every tag** pointing to
    /// it. 404 is success ([`DeleteOutcome::AlreadyGone`]); 405, 400 `UNSUPPORTED` and 409 are
    /// [`OciError::DeleteNotAllowed`] (deletes disabled, or still referenced by an index).
    pub async fn delete_manifest(&self, repository: &str, digest: &str) -> Result<DeleteOutcome> {
        validate_digest(digest)?;
        self.delete(repository, digest, &[400, 405, 409], |url, status, code| {
            OciError::DeleteNotAllowed { url, status, code }
        })
        .await
    }
}
