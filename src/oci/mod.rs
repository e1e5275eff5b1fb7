//! The OCI Distribution API client: the operator's hands on registries.
//!
//! It knows the Distribution API (and zot's extensions to it) and nothing of policies or
//! Kubernetes. Entry point: [`RegistryClient`], one per registry, cheap to clone.
//!
//! - [`reference`](mod@reference): repository and tag grammar, full image references;
//! - [`digest`]: the digest grammar, sha256, and the referrers tag schema's tags;
//! - [`host`]: registry host names — one primitive and the forms built on it;
//! - [`address`]: which addresses the client may connect to, judged at connect time;
//! - [`auth`]: credentials (user/password, docker config, Secret data) and challenges;
//! - [`transport`]: options, retry policy, `Link` / `Retry-After` parsing, request counters;
//! - [`manifest`]: manifests and indexes parsed with `oci-spec`;
//! - [`redact`]: URL redaction for errors and logs;
//! - [`trust`]: which token realm may receive the credentials (the public suffix list);
//! - [`error`]: the one error type, with `reason()`, and which statuses are worth a retry.

#![warn(missing_docs)]

pub mod address;
pub mod auth;
pub mod cache;
mod client;
pub mod digest;
pub mod error;
pub mod host;
pub mod manifest;
pub mod redact;
pub mod reference;
pub mod transport;
pub mod trust;

pub use address::{AddressPolicy, AddressRefused, AddressRule, Resolver};
pub use auth::{credentials_from_secret_data, Credentials, DockerConfig};
pub use cache::AgeCache;
pub use client::{
    parse_base_url, ArtifactManifest, BlobOutcome, Capabilities, DeleteOutcome, Health,
    MountOutcome, PushedArtifact, PushedBlob, Referrers, ReferrersSource, RegistryClient,
    SubjectLink, TagCheck, TagHeads, TagStats, ZotInfo, DEFAULT_CHUNK_BYTES, EMPTY_CONFIG,
    EMPTY_CONFIG_MEDIA_TYPE,
};
pub use error::{Denial, OciError, Operation, PushRefusal, Refused, Result};
pub use manifest::{media_types, Manifest, ManifestContent, ManifestHead};
pub use reference::ImageReference;
pub use transport::{ClientOptions, RequestObserver, RequestStats, RetryPolicy};
