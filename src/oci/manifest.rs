//! Manifests and indexes as the registry serves them, parsed with the `oci-spec` types.

use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};
use serde::Serialize;

/// Media types of manifests and indexes.
pub mod media_types {
    /// OCI image manifest.
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    /// OCI image index.
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    /// Docker image manifest, schema 2.
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    /// Docker manifest list, schema 2.
    pub const DOCKER_MANIFEST_LIST: &str =
        "application/vnd.docker.distribution.manifest.list.v2+json";
    /// Docker schema 1 (signed), legacy.
    pub const DOCKER_SCHEMA1_SIGNED: &str =
        "application/vnd.docker.distribution.manifest.v1+prettyjws";
    /// Docker schema 1, legacy.
    pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
    /// The `Accept` header sent for manifests: every type above. Distribution answers 404 for
    /// an OCI manifest when no OCI type is accepted.
    pub const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.index.v1+json, \
         application/vnd.oci.image.manifest.v1+json, \
         application/vnd.docker.distribution.manifest.list.v2+json, \
         application/vnd.docker.distribution.manifest.v2+json, \
         application/vnd.docker.distribution.manifest.v1+prettyjws;q=0.5, \
         application/vnd.docker.distribution.manifest.v1+json;q=0.5";

    /// True for index types (OCI index, Docker manifest list).
    pub fn is_index(media_type: &str) -> bool {
        media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
    }
}

/// What a `HEAD` of a manifest tells.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct ManifestHead {
    /// The manifest's digest (`Docker-Content-Digest`).
    pub digest: String,
    /// Its media type (`Content-Type`), empty when the registry sent none.
    pub media_type: String,
    /// Its size in bytes (`Content-Length`).
    pub size: u64,
}

impl ManifestHead {
    /// True when this is an image index or Docker manifest list.
    pub fn is_index(&self) -> bool {
        media_types::is_index(&self.media_type)
    }
}

/// The parsed content of a manifest.
#[derive(Debug, Clone, PartialEq)]
pub enum ManifestContent {
    /// An image (or artifact) manifest: config and layers.
    Image(Box<ImageManifest>),
    /// An image index / manifest list: child manifests.
    Index(Box<ImageIndex>),
    /// Another type (e.g. Docker schema 1): kept as raw bytes only.
    Other,
}

/// A manifest as fetched: digest, media type, raw bytes and parsed content.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// Digest of the raw bytes.
    pub digest: String,
    /// Media type (from `Content-Type`, else the body's `mediaType`, else inferred).
    pub media_type: String,
    /// The bytes as served.
    pub raw: Vec<u8>,
    /// The parsed content.
    pub content: ManifestContent,
}

impl Manifest {
    /// Parses `raw`; the media type comes from `content_type`, else from the body. Errors are
    /// messages for an invalid-response error.
    pub(crate) fn parse(
        digest: String,
        content_type: Option<String>,
        raw: Vec<u8>,
    ) -> Result<Self, String> {
        let v: serde_json::Value = serde_json::from_slice(&raw)
            .map_err(|e| format!("manifest {}", super::error::json_problem(&e)))?;
        if !v.is_object() {
            return Err("manifest is not a JSON object".to_string());
        }
        let body_type = v
            .get("mediaType")
            .and_then(|m| m.as_str())
            .map(str::to_string);
        let media_type = content_type
            .filter(|c| c.starts_with("application/vnd."))
            .or(body_type)
            .unwrap_or_else(|| {
                if v.get("manifests").is_some() {
                    media_types::OCI_INDEX.to_string()
                } else {
                    media_types::OCI_MANIFEST.to_string()
                }
            });
        let content = if media_types::is_index(&media_type) {
            let idx: ImageIndex = serde_json::from_value(v)
                .map_err(|e| format!("index {}", super::error::json_problem(&e)))?;
            ManifestContent::Index(Box::new(idx))
        } else if media_type == media_types::OCI_MANIFEST
            || media_type == media_types::DOCKER_MANIFEST
            || v.get("config").is_some()
        {
            let m: ImageManifest = serde_json::from_value(v)
                .map_err(|e| format!("manifest {}", super::error::json_problem(&e)))?;
            ManifestContent::Image(Box::new(m))
        } else {
            ManifestContent::Other
        };
        Ok(Manifest {
            digest,
            media_type,
            raw,
            content,
        })
    }

    /// Digest, media type and size, as a HEAD would give them.
    pub fn head(&self) -> ManifestHead {
        ManifestHead {
            digest: self.digest.clone(),
            media_type: self.media_type.clone(),
            size: self.raw.len() as u64,
        }
    }

    /// True for an image index / manifest list.
    pub fn is_index(&self) -> bool {
        matches!(self.content, ManifestContent::Index(_))
    }

    /// The child manifests of an index (empty for anything else).
    pub fn children(&self) -> &[Descriptor] {
        match &self.content {
            ManifestContent::Index(i) => i.manifests(),
            _ => &[],
        }
    }

    /// The `subject` descriptor (this manifest refers to another: signature, SBOM, ...).
    pub fn subject(&self) -> Option<&Descriptor> {
        match &self.content {
            ManifestContent::Image(m) => m.subject().as_ref(),
            ManifestContent::Index(i) => i.subject().as_ref(),
            ManifestContent::Other => None,
        }
    }

    /// The digest of the config blob of an image manifest.
    pub fn config_digest(&self) -> Option<String> {
        match &self.content {
            ManifestContent::Image(m) => Some(m.config().digest().to_string()),
            _ => None,
        }
    }

    /// The `artifactType` (or, for manifests, the config media type when it is not an image
    /// config), identifying signatures, SBOMs and other artifacts.
    pub fn artifact_type(&self) -> Option<String> {
        match &self.content {
            ManifestContent::Image(m) => {
                m.artifact_type()
                    .as_ref()
                    .map(|t| t.to_string())
                    .or_else(|| {
                        let c = m.config().media_type().to_string();
                        (c != "application/vnd.oci.image.config.v1+json"
                            && c != "application/vnd.docker.container.image.v1+json")
                            .then_some(c)
                    })
            }
            ManifestContent::Index(i) => i.artifact_type().as_ref().map(|t| t.to_string()),
            ManifestContent::Other => None,
        }
    }

    /// An annotation of the manifest or index.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        let a = match &self.content {
            ManifestContent::Image(m) => m.annotations().as_ref(),
            ManifestContent::Index(i) => i.annotations().as_ref(),
            ManifestContent::Other => None,
        };
        a.and_then(|a| a.get(key)).map(String::as_str)
    }

    /// The `org.opencontainers.image.created` annotation, parsed; `None` when it is missing,
    /// unparseable or a placeholder (see [`build_time`]).
    pub fn created_annotation(&self) -> Option<jiff::Timestamp> {
        self.annotation("org.opencontainers.image.created")
            .and_then(build_time)
    }
}

/// Build times before this (2000-01-01T00:00:00Z) are placeholders, not times.
const EARLIEST_BUILD_TIME: i64 = 946_684_800;

/// An image's build time (config `created`, or the `created` annotation) as a usable age, or
/// `None` when it is missing, unparseable or a placeholder. Reproducible builds write fixed
/// times — ko, Jib, Bazel's rules_oci and Nix the Unix epoch, buildpacks 1980-01-01,
/// go-containerregistry the zero time 0001-01-01 — and taking those as real would make an
/// image pushed a minute ago look decades old, past every `minAge`. Such an image has an
/// unknown age instead, which protects it.
pub fn build_time(s: &str) -> Option<jiff::Timestamp> {
    let t: jiff::Timestamp = s.trim().parse().ok()?;
    (t.as_second() >= EARLIEST_BUILD_TIME).then_some(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reproducible_build_placeholders_are_no_build_time() {
        for placeholder in [
            "1970-01-01T00:00:00Z",
            "1980-01-01T00:00:01Z",
            "0001-01-01T00:00:00Z",
            "1999-12-31T23:59:59Z",
        ] {
            assert_eq!(build_time(placeholder), None, "{placeholder}");
        }
        assert_eq!(build_time("not a time"), None);
        let t = build_time("2026-11-20T10:00:00.5+01:00").unwrap();
        assert_eq!(t.to_string(), "2026-11-20T09:00:00.5Z");
    }

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn index_children_and_manifest_subject_are_exposed() {
        let idx = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{{"mediaType":"{}","digest":"{D}","size":7,"platform":{{"architecture":"arm64","os":"linux"}}}}],"annotations":{{"org.opencontainers.image.created":"2026-01-02T03:04:05Z"}}}}"#,
            media_types::OCI_INDEX,
            media_types::OCI_MANIFEST
        );
        let m = Manifest::parse("d".into(), None, idx.into_bytes()).unwrap();
        assert!(m.is_index());
        assert_eq!(m.children().len(), 1);
        assert_eq!(m.children()[0].digest().to_string(), D);
        assert_eq!(
            m.created_annotation().map(|t| t.to_string()),
            Some("2026-01-02T03:04:05Z".to_string())
        );
        let man = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","artifactType":"application/vnd.example.sig","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{D}","size":2}},"layers":[],"subject":{{"mediaType":"{}","digest":"{D}","size":9}}}}"#,
            media_types::OCI_MANIFEST,
            media_types::OCI_MANIFEST
        );
        let m = Manifest::parse(
            "d".into(),
            Some(media_types::OCI_MANIFEST.into()),
            man.into_bytes(),
        )
        .unwrap();
        assert_eq!(
            m.subject().map(|s| s.digest().to_string()),
            Some(D.to_string())
        );
        assert_eq!(m.config_digest(), Some(D.to_string()));
        assert_eq!(
            m.artifact_type().as_deref(),
            Some("application/vnd.example.sig")
        );
    }

    #[test]
    fn garbage_manifests_are_errors_not_panics() {
        for bad in [
            "",
            "null",
            "[]",
            "{\"manifests\": 3}",
            "{\"config\": {}}",
            "\u{0}",
        ] {
            assert!(
                Manifest::parse("d".into(), None, bad.as_bytes().to_vec()).is_err(),
                "{bad}"
            );
        }
    }

    proptest! {
        #[test]
        fn manifest_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Manifest::parse("d".into(), None, bytes);
        }
    }
}
