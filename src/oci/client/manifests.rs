//! Manifests and what hangs off them: HEAD and GET by tag or digest, the re-check before a
//! delete, config `created` times, and referrers (API or tag schema).

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use url::Url;

use super::request::Req;
use super::{pull_scope, RegistryClient};
use crate::oci::digest::{is_digest, referrers_tag, sha256_digest, validate_digest};
use crate::oci::error::{OciError, Operation, Result};
use crate::oci::manifest::{media_types, Manifest, ManifestHead};
use crate::oci::redact::redact_url;
use crate::oci::reference::{validate_manifest_reference, validate_repository, validate_tag};

/// Where a referrers list came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReferrersSource {
    /// The referrers API (`GET /v2/<name>/referrers/<digest>`).
    Api,
    /// The fallback tag schema (`<name>:sha256-<hex>` index), the registry having no API.
    TagSchema,
}

/// The manifests whose `subject` is a given digest.
#[derive(Debug, Clone, PartialEq)]
pub struct Referrers {
    /// Where the list came from.
    pub source: ReferrersSource,
    /// One descriptor per referrer (digest, media type, artifact type, annotations).
    pub descriptors: Vec<oci_spec::image::Descriptor>,
}

/// The result of [`RegistryClient::head_tags`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagHeads {
    /// Tag → what its HEAD told.
    pub heads: std::collections::BTreeMap<String, ManifestHead>,
    /// Tags that answered 404 (deleted since they were listed), sorted.
    pub vanished: Vec<String>,
}

/// What a tag resolves to now, compared with what a plan saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagCheck {
    /// The tag still points to the expected digest.
    Unchanged(ManifestHead),
    /// The tag now points to another digest (re-pushed).
    Moved(ManifestHead),
    /// The tag no longer exists.
    Gone,
}

impl RegistryClient {
    pub(super) fn manifest_url(&self, repository: &str, reference: &str) -> Result<Url> {
        validate_repository(repository)?;
        validate_manifest_reference(reference)?;
        self.url(&format!("v2/{repository}/manifests/{reference}"))
    }

    /// `HEAD` a manifest by tag or digest: digest, media type and size, with every OCI and
    /// Docker manifest and index type in `Accept`. `Ok(None)` when it does not exist (404).
    /// Costs no pull in zot's statistics. A registry that sends no `Docker-Content-Digest` on
    /// HEAD is asked with GET instead.
    pub async fn head_manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<Option<ManifestHead>> {
        let url = self.manifest_url(repository, reference)?;
        let req = Req::new(Operation::HeadManifest, Method::HEAD, url)
            .scope(pull_scope(repository))
            .accept(media_types::ACCEPT_MANIFESTS);
        let resp = self.execute(req).await?;
        match resp.status.as_u16() {
            200 => {}
            404 => return Ok(None),
            _ => return Err(self.status_error(Operation::HeadManifest, &resp)),
        }
        let digest = resp
            .header("docker-content-digest")
            .map(str::trim)
            .filter(|d| is_digest(d))
            .map(str::to_string);
        let Some(digest) = digest else {
            let m = self.get_manifest(repository, reference).await?;
            return Ok(Some(m.head()));
        };
        if is_digest(reference) && reference != digest {
            return Err(OciError::DigestMismatch {
                url: redact_url(&resp.url),
                expected: reference.to_string(),
                actual: digest,
            });
        }
        let media_type = resp
            .header("content-type")
            .map(|c| c.split(';').next().unwrap_or("").trim().to_string())
            .unwrap_or_default();
        let size = resp
            .header("content-length")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        Ok(Some(ManifestHead {
            digest,
            media_type,
            size,
        }))
    }

    /// `HEAD`s every tag of `tags` in `repository`, as many at once as the client's
    /// concurrency allows. Fails as a whole when any HEAD fails (an inventory with a hole must
    /// not drive deletions); tags that vanished between listing and HEAD (404) are returned in
    /// [`TagHeads::vanished`].
    pub async fn head_tags(&self, repository: &str, tags: &[String]) -> Result<TagHeads> {
        use futures::stream::{self, StreamExt, TryStreamExt};
        validate_repository(repository)?;
        let found: Vec<(String, Option<ManifestHead>)> = stream::iter(tags)
            .map(|t| async move {
                validate_tag(t)?;
                Ok::<_, OciError>((t.clone(), self.head_manifest(repository, t).await?))
            })
            .buffer_unordered(self.inner.options.max_concurrency)
            .try_collect()
            .await?;
        let mut out = TagHeads::default();
        for (t, h) in found {
            match h {
                Some(h) => {
                    out.heads.insert(t, h);
                }
                None => out.vanished.push(t),
            }
        }
        out.vanished.sort();
        Ok(out)
    }

    /// `GET` a manifest or index by tag or digest and parse it. Content fetched by digest is
    /// verified against that digest. A missing manifest is [`OciError::NotFound`].
    ///
    /// In zot this counts as a pull; prefer [`head_manifest`](Self::head_manifest) where the
    /// digest is enough.
    pub async fn get_manifest(&self, repository: &str, reference: &str) -> Result<Manifest> {
        let url = self.manifest_url(repository, reference)?;
        let req = Req::new(Operation::GetManifest, Method::GET, url)
            .scope(pull_scope(repository))
            .accept(media_types::ACCEPT_MANIFESTS);
        let resp = self.execute(req).await?;
        if resp.status != StatusCode::OK {
            return Err(self.status_error(Operation::GetManifest, &resp));
        }
        let computed = sha256_digest(&resp.body);
        let digest = if is_digest(reference) {
            if reference.starts_with("sha256:") && reference != computed {
                return Err(OciError::DigestMismatch {
                    url: redact_url(&resp.url),
                    expected: reference.to_string(),
                    actual: computed,
                });
            }
            reference.to_string()
        } else {
            match resp.header("docker-content-digest").map(str::trim) {
                Some(d) if d.starts_with("sha256:") && d != computed => {
                    return Err(OciError::DigestMismatch {
                        url: redact_url(&resp.url),
                        expected: d.to_string(),
                        actual: computed,
                    })
                }
                Some(d) if is_digest(d) => d.to_string(),
                _ => computed,
            }
        };
        let content_type = resp
            .header("content-type")
            .map(|c| c.split(';').next().unwrap_or("").trim().to_string());
        Manifest::parse(digest, content_type, resp.body.clone())
            .map_err(|m| self.invalid_body(Operation::GetManifest, &resp, m))
    }

    /// Re-resolves `tag` right before a delete: is it still on `expected_digest`?
    pub async fn check_tag(
        &self,
        repository: &str,
        tag: &str,
        expected_digest: &str,
    ) -> Result<TagCheck> {
        validate_tag(tag)?;
        Ok(match self.head_manifest(repository, tag).await? {
            None => TagCheck::Gone,
            Some(h) if h.digest == expected_digest => TagCheck::Unchanged(h),
            Some(h) => TagCheck::Moved(h),
        })
    }

    /// The `created` time of an image config blob. Remembered by digest in the client's
    /// [`AgeCache`] (its own, or the one [`ClientOptions::age_cache`] shares), so a config is
    /// read once. `Ok(None)` when the config has no usable `created` (missing, unparseable,
    /// or a reproducible-build placeholder: [`crate::oci::manifest::build_time`]). The blob is
    /// verified against its digest before it is believed.
    pub async fn config_created(
        &self,
        repository: &str,
        config_digest: &str,
    ) -> Result<Option<jiff::Timestamp>> {
        validate_repository(repository)?;
        validate_digest(config_digest)?;
        if let Some(c) = self.inner.created_cache.get(config_digest) {
            return Ok(c);
        }
        let url = self.url(&format!("v2/{repository}/blobs/{config_digest}"))?;
        let req = Req::new(Operation::GetBlob, Method::GET, url).scope(pull_scope(repository));
        let resp = self.execute(req).await?;
        if resp.status != StatusCode::OK {
            return Err(self.status_error(Operation::GetBlob, &resp));
        }
        if config_digest.starts_with("sha256:") {
            let actual = sha256_digest(&resp.body);
            if actual != config_digest {
                return Err(OciError::DigestMismatch {
                    url: redact_url(&resp.url),
                    expected: config_digest.to_string(),
                    actual,
                });
            }
        }
        #[derive(Deserialize)]
        struct Created {
            #[serde(default)]
            created: Option<serde_json::Value>,
        }
        let c: Created = serde_json::from_slice(&resp.body).map_err(|e| {
            self.invalid_body(
                Operation::GetBlob,
                &resp,
                format!("config {}", crate::oci::error::json_problem(&e)),
            )
        })?;
        let created = c
            .created
            .and_then(|v| v.as_str().and_then(crate::oci::manifest::build_time));
        self.inner.created_cache.insert(config_digest, created);
        Ok(created)
    }

    /// The referrers of `digest` (signatures, SBOMs, attestations whose `subject` it is): from
    /// the referrers API, or — when the registry has none (404) — from the `sha256-<hex>` tag
    /// of the referrers tag schema (empty when that tag does not exist).
    pub async fn referrers(&self, repository: &str, digest: &str) -> Result<Referrers> {
        validate_repository(repository)?;
        validate_digest(digest)?;
        let url = self.url(&format!("v2/{repository}/referrers/{digest}"))?;
        let req = Req::new(Operation::Referrers, Method::GET, url)
            .scope(pull_scope(repository))
            .accept(media_types::OCI_INDEX);
        let resp = self.execute(req).await?;
        let ct = resp
            .header("content-type")
            .map(|c| c.split(';').next().unwrap_or("").trim().to_string());
        if resp.status == StatusCode::OK && ct.as_deref() == Some(media_types::OCI_INDEX) {
            let idx: oci_spec::image::ImageIndex =
                serde_json::from_slice(&resp.body).map_err(|e| {
                    self.invalid_body(
                        Operation::Referrers,
                        &resp,
                        format!("referrers index {}", crate::oci::error::json_problem(&e)),
                    )
                })?;
            let mut descriptors = idx.manifests().clone();
            // The API may page its answer with `Link` headers, as tag listings do.
            if let Some(next) = self.next_page(Operation::Referrers, &resp)? {
                let extract = |body: &[u8]| -> std::result::Result<Vec<String>, String> {
                    let idx: oci_spec::image::ImageIndex =
                        serde_json::from_slice(body).map_err(|e| {
                            format!("referrers index {}", crate::oci::error::json_problem(&e))
                        })?;
                    idx.manifests()
                        .iter()
                        .map(|d| serde_json::to_string(d).map_err(|e| e.to_string()))
                        .collect()
                };
                let more: Vec<String> = self
                    .paginate(
                        Operation::Referrers,
                        next,
                        Some(pull_scope(repository)),
                        &extract,
                    )
                    .await
                    .map_err(|(page, e)| {
                        Self::incomplete(Operation::Referrers, &resp.url, page + 1, e)
                    })?;
                for d in more {
                    descriptors.push(serde_json::from_str(&d).map_err(|e| {
                        self.invalid_body(
                            Operation::Referrers,
                            &resp,
                            format!("referrer {}", crate::oci::error::json_problem(&e)),
                        )
                    })?);
                }
            }
            return Ok(Referrers {
                source: ReferrersSource::Api,
                descriptors,
            });
        }
        if !matches!(resp.status.as_u16(), 200 | 404 | 405) {
            return Err(self.status_error(Operation::Referrers, &resp));
        }
        // No referrers API: the tag schema.
        let tag = referrers_tag(digest)?;
        if self.head_manifest(repository, &tag).await?.is_none() {
            return Ok(Referrers {
                source: ReferrersSource::TagSchema,
                descriptors: Vec::new(),
            });
        }
        let m = self.get_manifest(repository, &tag).await?;
        Ok(Referrers {
            source: ReferrersSource::TagSchema,
            descriptors: m.children().to_vec(),
        })
    }
}
