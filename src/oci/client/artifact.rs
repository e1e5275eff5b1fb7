//! The one OCI artifact writer: blobs (one request, or chunk by chunk from a reader),
//! cross-repository mounts, artifact manifests read back and verified, the referrers tag
//! schema kept for registries without the referrers API; and the readers that go with it
//! (a layer blob verified by digest, a repository's artifacts by tag prefix).
//!
//! No write is retried blind (the spirit of invariant 10): an upload step that failed leaves
//! its session abandoned (`DELETE` of the upload location) and the error to the caller, who
//! may start again — blobs and manifests are content-addressed, so a second push of the same
//! bytes is harmless. Only reads (`HEAD`/`GET`) go through the retry policy.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;

use bytes::Bytes;
use oci_spec::image::{Descriptor, ImageIndex, ImageManifest, MediaType};
use reqwest::header::{HeaderName, CONTENT_RANGE};
use reqwest::{Method, StatusCode};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt};
use url::Url;

use super::request::{error_code, BodySink, Req, Resp, SinkStop};
use super::{pull_scope, RegistryClient};
use crate::oci::digest::{is_digest, referrers_tag, sha256_digest, validate_digest};
use crate::oci::error::{OciError, Operation, Result};
use crate::oci::manifest::{media_types, ManifestHead};
use crate::oci::redact::redact_url;
use crate::oci::reference::{validate_repository, validate_tag};

/// The media type of the empty config of an artifact manifest.
pub const EMPTY_CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
/// The empty config's bytes: `{}`.
pub const EMPTY_CONFIG: &[u8] = b"{}";
/// The chunk size of [`RegistryClient::push_blob_file`]: what one `PATCH` carries, and about
/// what the upload holds in memory at a time.
pub const DEFAULT_CHUNK_BYTES: usize = 4 * 1024 * 1024;

fn push_scope(repo: &str) -> String {
    format!("repository:{repo}:pull,push")
}

/// How a blob got into the repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobOutcome {
    /// The repository had it already (`HEAD` 200): nothing was uploaded.
    AlreadyPresent,
    /// Uploaded in one `PUT`.
    Uploaded,
    /// Uploaded in this many `PATCH` chunks, closed by a `PUT`.
    UploadedChunked(u32),
    /// Mounted from another repository of the registry: nothing was uploaded.
    Mounted,
}

/// A blob in a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedBlob {
    /// Its digest (`sha256:…`).
    pub digest: String,
    /// Its size in bytes.
    pub size: u64,
    /// How it got there.
    pub outcome: BlobOutcome,
}

impl PushedBlob {
    /// A descriptor of the blob as a layer of `media_type`.
    pub fn descriptor(&self, media_type: &str) -> Result<Descriptor> {
        let digest = self
            .digest
            .parse::<oci_spec::image::Digest>()
            .map_err(|e| OciError::invalid("digest", &self.digest, e.to_string()))?;
        Ok(Descriptor::new(
            MediaType::from(media_type),
            self.size,
            digest,
        ))
    }
}

/// The answer to a cross-repository mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountOutcome {
    /// The registry linked the blob into the repository (201): nothing was uploaded.
    Mounted,
    /// The registry declined (202: it opened an upload instead — the blob is not in the source,
    /// the account may not read the source, or the registry does not mount). The upload it
    /// opened was abandoned; push the blob instead.
    Declined,
}

/// An artifact manifest to push: an OCI image manifest with `artifactType`, the empty config,
/// `layers` (blobs already pushed to the repository), an optional `subject` and annotations.
#[derive(Debug, Clone, PartialEq)]
pub struct ArtifactManifest {
    /// `artifactType` (`application/vnd.example.ledger.v1+json`).
    pub artifact_type: String,
    /// The layers, in order.
    pub layers: Vec<Descriptor>,
    /// The manifest this artifact is about (found through its referrers); it is in the same
    /// repository, as the distribution spec has it.
    pub subject: Option<Descriptor>,
    /// The manifest's annotations.
    pub annotations: BTreeMap<String, String>,
}

/// How the subject learnt of its new referrer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectLink {
    /// The manifest has no subject.
    None,
    /// The registry indexes it itself (it answered the push with `OCI-Subject`).
    Api,
    /// The registry has no referrers API: the writer added it to the subject's referrers tag
    /// schema index (`sha256-<hex>`).
    TagSchema,
}

/// An artifact manifest in the repository, read back and verified.
#[derive(Debug, Clone, PartialEq)]
pub struct PushedArtifact {
    /// Its digest, which the registry's copy was read back by and hashes to.
    pub digest: String,
    /// Its size in bytes.
    pub size: u64,
    /// The exact bytes pushed (and read back).
    pub bytes: Vec<u8>,
    /// How the subject knows of it.
    pub subject_link: SubjectLink,
}

impl PushedArtifact {
    /// A descriptor of the manifest (to use it as another artifact's subject).
    pub fn descriptor(&self) -> Result<Descriptor> {
        PushedBlob {
            digest: self.digest.clone(),
            size: self.size,
            outcome: BlobOutcome::Uploaded,
        }
        .descriptor(media_types::OCI_MANIFEST)
    }
}

impl RegistryClient {
    /// The URL an upload continues at: the answer's `Location`, relative to the request, and
    /// on the registry's own origin (the credentials go nowhere else).
    fn upload_location(&self, op: Operation, resp: &Resp) -> Result<Url> {
        let loc = resp
            .header("location")
            .ok_or_else(|| self.invalid_body(op, resp, "upload answer without Location"))?;
        let url = resp
            .url
            .join(loc)
            .map_err(|e| self.invalid_body(op, resp, format!("upload Location: {e}")))?;
        if url.origin() != self.inner.base.origin() {
            return Err(self.invalid_body(
                op,
                resp,
                "upload Location points to another origin; nothing was sent there",
            ));
        }
        Ok(url)
    }

    /// The error of a refused or failed write: 405 and 400 `UNSUPPORTED` are
    /// [`OciError::PushNotAllowed`], the rest as for reads.
    fn write_error(&self, op: Operation, resp: &Resp) -> OciError {
        let code = error_code(&resp.body);
        match resp.status.as_u16() {
            405 => OciError::PushNotAllowed {
                op,
                url: redact_url(&resp.url),
                status: 405,
                code,
            },
            400 if code.as_deref() == Some("UNSUPPORTED") => OciError::PushNotAllowed {
                op,
                url: redact_url(&resp.url),
                status: 400,
                code,
            },
            _ => self.status_error(op, resp),
        }
    }

    /// A write: one attempt, never repeated blind.
    async fn write(
        &self,
        op: Operation,
        method: Method,
        url: Url,
        repository: &str,
        body: Option<(Bytes, Cow<'static, str>)>,
        headers: Vec<(HeaderName, String)>,
    ) -> Result<Resp> {
        let mut req = Req::new(op, method, url).scope(push_scope(repository));
        req.retry = false;
        req.body = body;
        req.headers = headers;
        self.execute(req).await
    }

    /// Abandons an upload session (best effort: the registry purges stale uploads itself).
    async fn cancel_upload(&self, repository: &str, location: Url) {
        let r = self
            .write(
                Operation::CancelUpload,
                Method::DELETE,
                location,
                repository,
                None,
                Vec::new(),
            )
            .await;
        if let Err(e) = r {
            tracing::debug!(error = %e, "abandoning an upload failed");
        }
    }

    /// Whether `repository` holds the blob `digest` (`HEAD`, retried as any read).
    pub async fn blob_exists(&self, repository: &str, digest: &str) -> Result<bool> {
        validate_repository(repository)?;
        validate_digest(digest)?;
        let url = self.url(&format!("v2/{repository}/blobs/{digest}"))?;
        let req = Req::new(Operation::HeadBlob, Method::HEAD, url).scope(pull_scope(repository));
        let resp = self.execute(req).await?;
        match resp.status.as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(self.status_error(Operation::HeadBlob, &resp)),
        }
    }

    /// Opens an upload session (`POST …/blobs/uploads/`, 202) and returns its location.
    async fn start_upload(&self, repository: &str) -> Result<Url> {
        let url = self.url(&format!("v2/{repository}/blobs/uploads/"))?;
        let resp = self
            .write(
                Operation::StartUpload,
                Method::POST,
                url,
                repository,
                None,
                Vec::new(),
            )
            .await?;
        if resp.status != StatusCode::ACCEPTED {
            return Err(self.write_error(Operation::StartUpload, &resp));
        }
        self.upload_location(Operation::StartUpload, &resp)
    }

    /// Closes an upload (`PUT <location>?digest=`, with `last` as its final bytes) and checks
    /// that the registry stored it under `digest`.
    async fn complete_upload(
        &self,
        repository: &str,
        mut location: Url,
        digest: &str,
        last: Bytes,
    ) -> Result<()> {
        location.query_pairs_mut().append_pair("digest", digest);
        let resp = self
            .write(
                Operation::CompleteUpload,
                Method::PUT,
                location,
                repository,
                Some((last, "application/octet-stream".into())),
                Vec::new(),
            )
            .await?;
        if resp.status != StatusCode::CREATED {
            return Err(self.write_error(Operation::CompleteUpload, &resp));
        }
        match resp.header("docker-content-digest").map(str::trim) {
            Some(d) if d != digest => Err(OciError::DigestMismatch {
                url: redact_url(&resp.url),
                expected: digest.to_string(),
                actual: d.to_string(),
            }),
            _ => Ok(()),
        }
    }

    /// Pushes a blob held in memory: nothing when the repository has it already, else one
    /// upload session closed by a single `PUT` with the bytes (`POST` + `PUT`).
    pub async fn push_blob(&self, repository: &str, bytes: Bytes) -> Result<PushedBlob> {
        let digest = sha256_digest(&bytes);
        let size = bytes.len() as u64;
        if self.blob_exists(repository, &digest).await? {
            return Ok(PushedBlob {
                digest,
                size,
                outcome: BlobOutcome::AlreadyPresent,
            });
        }
        let location = self.start_upload(repository).await?;
        if let Err(e) = self
            .complete_upload(repository, location.clone(), &digest, bytes)
            .await
        {
            self.cancel_upload(repository, location).await;
            return Err(e);
        }
        Ok(PushedBlob {
            digest,
            size,
            outcome: BlobOutcome::Uploaded,
        })
    }

    /// Pushes the file at `path` in [`DEFAULT_CHUNK_BYTES`] chunks, holding one chunk in memory
    /// at a time: the file is hashed first (nothing is sent when the repository has the blob),
    /// then streamed; a file that changed in between is an error and its upload abandoned.
    pub async fn push_blob_file(&self, repository: &str, path: &Path) -> Result<PushedBlob> {
        validate_repository(repository)?;
        let io_error = |e: std::io::Error| OciError::InvalidConfig {
            message: format!("reading blob file {}: {e}", path.display()),
        };
        let mut file = tokio::fs::File::open(path).await.map_err(io_error)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        let mut size = 0u64;
        loop {
            let n = file.read(&mut buf).await.map_err(io_error)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            size += n as u64;
        }
        let digest = format!("sha256:{}", hex::encode(hasher.finalize()));
        if self.blob_exists(repository, &digest).await? {
            return Ok(PushedBlob {
                digest,
                size,
                outcome: BlobOutcome::AlreadyPresent,
            });
        }
        let file = tokio::fs::File::open(path).await.map_err(io_error)?;
        self.push_blob_reader(repository, file, DEFAULT_CHUNK_BYTES, Some(&digest))
            .await
    }

    /// Pushes what `reader` yields as a chunked upload: `PATCH`es of `chunk_bytes` (the most
    /// held in memory), closed by a `PUT` with the digest computed on the way. With `expected`,
    /// bytes that hash otherwise are an error and nothing is stored. Any failure abandons the
    /// upload session, so no half-written blob is left.
    pub async fn push_blob_reader<R: AsyncRead + Unpin + Send>(
        &self,
        repository: &str,
        mut reader: R,
        chunk_bytes: usize,
        expected: Option<&str>,
    ) -> Result<PushedBlob> {
        validate_repository(repository)?;
        if let Some(d) = expected {
            validate_digest(d)?;
        }
        if chunk_bytes == 0 {
            return Err(OciError::InvalidConfig {
                message: "chunk size must be at least 1 byte".to_string(),
            });
        }
        let mut location = self.start_upload(repository).await?;
        let mut hasher = Sha256::new();
        let mut offset = 0u64;
        let mut chunks = 0u32;
        let result: Result<String> = async {
            loop {
                // a fresh buffer per chunk, handed to the request without a copy: the upload
                // holds about one chunk at a time
                let mut buf = bytes::BytesMut::zeroed(chunk_bytes);
                let mut filled = 0;
                while filled < chunk_bytes {
                    let n = reader.read(&mut buf[filled..]).await.map_err(|e| {
                        OciError::InvalidConfig {
                            message: format!("reading the blob to push: {e}"),
                        }
                    })?;
                    if n == 0 {
                        break;
                    }
                    filled += n;
                }
                if filled == 0 {
                    break;
                }
                hasher.update(&buf[..filled]);
                buf.truncate(filled);
                let chunk = buf.freeze();
                let range = format!("{}-{}", offset, offset + filled as u64 - 1);
                let resp = self
                    .write(
                        Operation::UploadChunk,
                        Method::PATCH,
                        location.clone(),
                        repository,
                        Some((chunk, "application/octet-stream".into())),
                        vec![(CONTENT_RANGE, range)],
                    )
                    .await?;
                if resp.status != StatusCode::ACCEPTED {
                    return Err(self.write_error(Operation::UploadChunk, &resp));
                }
                location = self.upload_location(Operation::UploadChunk, &resp)?;
                offset += filled as u64;
                chunks += 1;
                if filled < chunk_bytes {
                    break;
                }
            }
            let digest = format!("sha256:{}", hex::encode(hasher.clone().finalize()));
            if let Some(e) = expected.filter(|e| *e != digest) {
                return Err(OciError::DigestMismatch {
                    url: redact_url(&location),
                    expected: e.to_string(),
                    actual: digest,
                });
            }
            self.complete_upload(repository, location.clone(), &digest, Bytes::new())
                .await?;
            Ok(digest)
        }
        .await;
        match result {
            Ok(digest) => Ok(PushedBlob {
                digest,
                size: offset,
                outcome: BlobOutcome::UploadedChunked(chunks),
            }),
            Err(e) => {
                self.cancel_upload(repository, location).await;
                Err(e)
            }
        }
    }

    /// Mounts blob `digest` of repository `from` into `repository` (`POST
    /// …/blobs/uploads/?mount=&from=`), uploading nothing. A registry that declines (202)
    /// gets its opened upload abandoned, and [`MountOutcome::Declined`] tells the caller to
    /// push the blob instead.
    pub async fn mount_blob(
        &self,
        repository: &str,
        from: &str,
        digest: &str,
    ) -> Result<MountOutcome> {
        validate_repository(repository)?;
        validate_repository(from)?;
        validate_digest(digest)?;
        let mut url = self.url(&format!("v2/{repository}/blobs/uploads/"))?;
        url.query_pairs_mut()
            .append_pair("mount", digest)
            .append_pair("from", from);
        let resp = self
            .write(
                Operation::MountBlob,
                Method::POST,
                url,
                repository,
                None,
                Vec::new(),
            )
            .await?;
        match resp.status {
            StatusCode::CREATED => Ok(MountOutcome::Mounted),
            StatusCode::ACCEPTED => {
                if let Ok(location) = self.upload_location(Operation::MountBlob, &resp) {
                    self.cancel_upload(repository, location).await;
                }
                Ok(MountOutcome::Declined)
            }
            _ => Err(self.write_error(Operation::MountBlob, &resp)),
        }
    }

    /// `PUT`s manifest `bytes` of `media_type` under `reference`; checks the digest the
    /// registry answers with. Returns whether the registry took note of a subject
    /// (`OCI-Subject`).
    async fn put_manifest(
        &self,
        repository: &str,
        reference: &str,
        bytes: Bytes,
        media_type: Cow<'static, str>,
        digest: &str,
    ) -> Result<bool> {
        let url = self.manifest_url(repository, reference)?;
        let resp = self
            .write(
                Operation::PutManifest,
                Method::PUT,
                url,
                repository,
                Some((bytes, media_type)),
                Vec::new(),
            )
            .await?;
        if resp.status != StatusCode::CREATED {
            return Err(self.write_error(Operation::PutManifest, &resp));
        }
        match resp.header("docker-content-digest").map(str::trim) {
            Some(d) if d != digest => Err(OciError::DigestMismatch {
                url: redact_url(&resp.url),
                expected: digest.to_string(),
                actual: d.to_string(),
            }),
            _ => Ok(resp.header("oci-subject").is_some()),
        }
    }

    /// Pushes manifest `bytes` of `media_type` as they are (a copy of a manifest or index read
    /// elsewhere: same bytes, same digest) under `reference` — a tag, or their digest — and
    /// returns their digest, checked against the one the registry answers with. The blobs and
    /// child manifests it names must be in the repository already.
    pub async fn push_manifest(
        &self,
        repository: &str,
        reference: &str,
        bytes: Bytes,
        media_type: &str,
    ) -> Result<String> {
        let valid_type = media_type.len() <= 255
            && media_type.split_once('/').is_some_and(|(t, s)| {
                let ok = |p: &str| {
                    !p.is_empty()
                        && p.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
                };
                ok(t) && ok(s)
            });
        if !valid_type {
            return Err(OciError::invalid(
                "media type",
                media_type,
                "not a type/subtype media type",
            ));
        }
        let digest = sha256_digest(&bytes);
        if is_digest(reference) && reference != digest {
            return Err(OciError::DigestMismatch {
                url: redact_url(&self.manifest_url(repository, reference)?),
                expected: reference.to_string(),
                actual: digest,
            });
        }
        self.put_manifest(
            repository,
            reference,
            bytes,
            Cow::Owned(media_type.to_string()),
            &digest,
        )
        .await?;
        Ok(digest)
    }

    /// Pushes an artifact manifest — the empty config (`{}`) pushed first when missing —
    /// under its digest, or under `tag` when given; reads it back by digest and checks it is
    /// byte for byte what was pushed (a registry that rewrites it is an error). With a
    /// subject on a registry without the referrers API, adds it to the subject's referrers
    /// tag schema index, as OCI 1.1 clients do. The layers must be in the repository already
    /// ([`push_blob`](Self::push_blob), [`push_blob_file`](Self::push_blob_file),
    /// [`mount_blob`](Self::mount_blob)).
    pub async fn push_artifact(
        &self,
        repository: &str,
        artifact: &ArtifactManifest,
        tag: Option<&str>,
    ) -> Result<PushedArtifact> {
        validate_repository(repository)?;
        if let Some(t) = tag {
            validate_tag(t)?;
        }
        let config = self
            .push_blob(repository, Bytes::from_static(EMPTY_CONFIG))
            .await?
            .descriptor(EMPTY_CONFIG_MEDIA_TYPE)?;
        let invalid = |m: String| OciError::InvalidConfig {
            message: format!("artifact manifest: {m}"),
        };
        let mut builder = oci_spec::image::ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .artifact_type(MediaType::from(artifact.artifact_type.as_str()))
            .config(config)
            .layers(artifact.layers.clone());
        if let Some(s) = &artifact.subject {
            builder = builder.subject(s.clone());
        }
        if !artifact.annotations.is_empty() {
            builder = builder.annotations(
                artifact
                    .annotations
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect::<std::collections::HashMap<_, _>>(),
            );
        }
        let manifest: ImageManifest = builder.build().map_err(|e| invalid(e.to_string()))?;
        let bytes = serde_json::to_vec(&manifest).map_err(|e| invalid(e.to_string()))?;
        let digest = sha256_digest(&bytes);
        let size = bytes.len() as u64;
        let subject_indexed = self
            .put_manifest(
                repository,
                tag.unwrap_or(&digest),
                Bytes::from(bytes.clone()),
                media_types::OCI_MANIFEST.into(),
                &digest,
            )
            .await?;
        let back = self.get_manifest(repository, &digest).await?;
        if back.raw != bytes {
            return Err(OciError::DigestMismatch {
                url: redact_url(&self.manifest_url(repository, &digest)?),
                expected: digest.clone(),
                actual: sha256_digest(&back.raw),
            });
        }
        let subject_link = match &artifact.subject {
            None => SubjectLink::None,
            Some(_) if subject_indexed => SubjectLink::Api,
            Some(s) => {
                let mut me = Descriptor::new(MediaType::ImageManifest, size, {
                    digest
                        .parse::<oci_spec::image::Digest>()
                        .map_err(|e| invalid(e.to_string()))?
                });
                me.set_artifact_type(Some(MediaType::from(artifact.artifact_type.as_str())));
                if !artifact.annotations.is_empty() {
                    me.set_annotations(Some(
                        artifact
                            .annotations
                            .iter()
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect(),
                    ));
                }
                self.add_to_referrers_tag(repository, s.digest().as_ref(), me)
                    .await?;
                SubjectLink::TagSchema
            }
        };
        Ok(PushedArtifact {
            digest,
            size,
            bytes,
            subject_link,
        })
    }

    /// Adds `referrer` to the referrers tag schema index of `subject` (a read, then a write:
    /// two writers at once may lose one of their additions, as the schema allows).
    async fn add_to_referrers_tag(
        &self,
        repository: &str,
        subject: &str,
        referrer: Descriptor,
    ) -> Result<()> {
        let tag = referrers_tag(subject)?;
        let mut manifests: Vec<Descriptor> = match self.head_manifest(repository, &tag).await? {
            Some(_) => self
                .get_manifest(repository, &tag)
                .await?
                .children()
                .to_vec(),
            None => Vec::new(),
        };
        if manifests.iter().any(|d| d.digest() == referrer.digest()) {
            return Ok(());
        }
        manifests.push(referrer);
        let index: ImageIndex = oci_spec::image::ImageIndexBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageIndex)
            .manifests(manifests)
            .build()
            .map_err(|e| OciError::InvalidConfig {
                message: format!("referrers index: {e}"),
            })?;
        let bytes = serde_json::to_vec(&index).map_err(|e| OciError::InvalidConfig {
            message: format!("referrers index: {e}"),
        })?;
        let digest = sha256_digest(&bytes);
        self.put_manifest(
            repository,
            &tag,
            Bytes::from(bytes),
            media_types::OCI_INDEX.into(),
            &digest,
        )
        .await?;
        Ok(())
    }

    /// Fetches blob `digest` (an artifact's layer), at most the client's body cap, and checks
    /// it hashes to `digest`.
    pub async fn fetch_blob(&self, repository: &str, digest: &str) -> Result<Vec<u8>> {
        validate_repository(repository)?;
        validate_digest(digest)?;
        let url = self.url(&format!("v2/{repository}/blobs/{digest}"))?;
        let req = Req::new(Operation::GetBlob, Method::GET, url).scope(pull_scope(repository));
        let resp = self.execute(req).await?;
        if resp.status != StatusCode::OK {
            return Err(self.status_error(Operation::GetBlob, &resp));
        }
        let actual = if digest.starts_with("sha256:") {
            sha256_digest(&resp.body)
        } else {
            return Err(OciError::invalid(
                "digest",
                digest,
                "only sha256 blobs can be verified",
            ));
        };
        if actual != digest {
            return Err(OciError::DigestMismatch {
                url: redact_url(&resp.url),
                expected: digest.to_string(),
                actual,
            });
        }
        Ok(resp.body)
    }

    /// Fetches blob `digest` into the file at `path` (created or truncated), streamed — a
    /// blob of any size holds one network chunk in memory — and checks it hashes to `digest`
    /// and has at most `max_bytes` (a descriptor's `size`). On any failure the file is
    /// removed. Returns the size.
    pub async fn fetch_blob_to_file(
        &self,
        repository: &str,
        digest: &str,
        path: &Path,
        max_bytes: u64,
    ) -> Result<u64> {
        validate_repository(repository)?;
        validate_digest(digest)?;
        if !digest.starts_with("sha256:") {
            return Err(OciError::invalid(
                "digest",
                digest,
                "only sha256 blobs can be verified",
            ));
        }
        let file = std::fs::File::create(path).map_err(|e| OciError::InvalidConfig {
            message: format!("creating {}: {e}", path.display()),
        })?;
        let mut sink = FileSink {
            file,
            hasher: Sha256::new(),
            size: 0,
            max_bytes,
            io_error: None,
        };
        let url = self.url(&format!("v2/{repository}/blobs/{digest}"))?;
        let req = Req::new(Operation::GetBlob, Method::GET, url).scope(pull_scope(repository));
        let result = self.execute_with(req, Some(&mut sink)).await;
        let outcome = match result {
            Err(e) => Err(e),
            Ok(resp) if resp.status != StatusCode::OK => {
                Err(self.status_error(Operation::GetBlob, &resp))
            }
            Ok(resp) => {
                let actual = format!("sha256:{}", hex::encode(sink.hasher.clone().finalize()));
                if actual != digest {
                    Err(OciError::DigestMismatch {
                        url: redact_url(&resp.url),
                        expected: digest.to_string(),
                        actual,
                    })
                } else {
                    Ok(sink.size)
                }
            }
        };
        let outcome = match (outcome, sink.io_error.take()) {
            (Err(_), Some(message)) => Err(OciError::InvalidConfig {
                message: format!("writing {}: {message}", path.display()),
            }),
            (o, _) => o,
        };
        if outcome.is_err() {
            let _ = std::fs::remove_file(path);
        }
        outcome
    }

    /// The artifacts (manifests) of `repository` whose tag starts with `prefix`, by tag. An
    /// unknown repository has none.
    pub async fn artifacts_by_tag_prefix(
        &self,
        repository: &str,
        prefix: &str,
    ) -> Result<BTreeMap<String, ManifestHead>> {
        let tags = match self.tags(repository).await {
            Ok(t) => t,
            Err(OciError::NotFound { .. }) => return Ok(BTreeMap::new()),
            Err(e) => return Err(e),
        };
        let wanted: Vec<String> = tags.into_iter().filter(|t| t.starts_with(prefix)).collect();
        Ok(self.head_tags(repository, &wanted).await?.heads)
    }
}

/// Where [`RegistryClient::fetch_blob_to_file`] streams a blob: the file, hashed on the way.
struct FileSink {
    file: std::fs::File,
    hasher: Sha256,
    size: u64,
    max_bytes: u64,
    /// The file's own failure, told apart from the registry's.
    io_error: Option<String>,
}

impl BodySink for FileSink {
    fn reset(&mut self) {
        use std::io::Seek as _;
        self.hasher = Sha256::new();
        self.size = 0;
        if let Err(e) = self.file.set_len(0).and_then(|()| self.file.rewind()) {
            self.io_error = Some(e.to_string());
        }
    }

    fn push(&mut self, chunk: &[u8]) -> std::result::Result<(), SinkStop> {
        use std::io::Write as _;
        if let Some(e) = &self.io_error {
            return Err(SinkStop::Invalid(format!("writing the blob: {e}")));
        }
        self.size += chunk.len() as u64;
        if self.size > self.max_bytes {
            return Err(SinkStop::Invalid(format!(
                "blob is larger than the {} bytes expected",
                self.max_bytes
            )));
        }
        self.hasher.update(chunk);
        self.file.write_all(chunk).map_err(|e| {
            self.io_error = Some(e.to_string());
            SinkStop::Invalid(format!("writing the blob: {e}"))
        })
    }

    fn finish(&mut self) -> std::result::Result<(), SinkStop> {
        use std::io::Write as _;
        self.file.flush().map_err(|e| {
            self.io_error = Some(e.to_string());
            SinkStop::Invalid(format!("writing the blob: {e}"))
        })
    }
}
