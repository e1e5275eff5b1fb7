//! What the registry holds, generated from the [`Shape`] and the repository, tag and image
//! numbers: names, manifests, configs, layers, indexes and signatures, byte for byte the same
//! on every call (so digests are stable), with no state per tag.

use sha2::{Digest as _, Sha256};

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI gzip layer.
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// The empty config of artifacts.
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// The artifact type of the signatures.
pub const SIGNATURE_TYPE: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
/// The media type of a signature's payload.
const SIGNATURE_LAYER: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The empty blob `{}`.
pub const EMPTY_BLOB: &[u8] = b"{}";
/// The repository of [`Shape::huge_tags`] tags.
pub const HUGE_REPOSITORY: &str = "project-huge/app";
/// The architectures of an index's children.
const ARCHES: [&str; 2] = ["amd64", "arm64"];

/// Which registry the synthetic one answers as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// CNCF distribution 2.8 (Debian's `docker-registry`): `_catalog` pages by 100 without
    /// `n` and refuses `n` > 1000; `tags/list` ignores `n` and `last` (one body, no `Link`)
    /// unless [`Shape::tag_pages`]; DELETE by digest only (by tag: 400 `DIGEST_INVALID`);
    /// no referrers API (signatures are found through their `sha256-<hex>.sig` tags).
    Distribution,
    /// zot v2.1: `/v2/_zot/ext/mgmt`, the search extension's `ImageList` with push times and
    /// the images of each index, `tags/list` paged with `n`/`last` (an unknown `last` is 404),
    /// `_catalog` unlimited without `n`, DELETE by tag, the referrers API (signatures untagged).
    Zot,
}

/// The registry's shape: everything it serves follows from these numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    /// Varies every digest.
    pub seed: u64,
    /// Repositories `project-NNNNN/service-MM` (100 per project).
    pub repositories: u64,
    /// Tags per repository: `build-NNNNNNNN-hhhhhh` … and `latest` (on the newest build's
    /// image).
    pub tags: u64,
    /// Distinct images per repository (tags beyond them share digests: build `k` shows image
    /// `k mod images`); 0 = one image per tag.
    pub images: u64,
    /// Share of images (percent) that are multi-arch indexes of two images (amd64, arm64).
    pub index_percent: u64,
    /// Share of images (percent) with a signature (a referrer with `subject`).
    pub referrer_percent: u64,
    /// Tags of one more repository, [`HUGE_REPOSITORY`] (0 = none): one plain image per tag,
    /// no index, no signature.
    pub huge_tags: u64,
    /// Which registry it answers as.
    pub flavor: Flavor,
    /// Distribution only: page `tags/list` by `n`/`last` as distribution 3 does (2.8 does not).
    pub tag_pages: bool,
    /// Unix seconds of "now": the images were built over the `span_days` before it, the newest
    /// last, evenly spread (a few seconds of jitter, never reordering them).
    pub now: i64,
    /// Days the build times of a repository's images span.
    pub span_days: i64,
}

impl Default for Shape {
    fn default() -> Self {
        Shape {
            seed: 1,
            repositories: 100,
            tags: 10,
            images: 0,
            index_percent: 10,
            referrer_percent: 5,
            huge_tags: 0,
            flavor: Flavor::Distribution,
            tag_pages: false,
            // 2026-12-01T00:00:00Z
            now: 1_796_083_200,
            span_days: 365,
        }
    }
}

/// A repository of the shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RepoId {
    /// `project-{n/100:05}/service-{n%100:02}`.
    Numbered(u64),
    /// [`HUGE_REPOSITORY`].
    Huge,
}

/// What a digest names in a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The image's manifest, or its index when it is multi-arch.
    Top,
    /// The child image of an index for an architecture (0 amd64, 1 arm64).
    Child(u8),
    /// The config blob of the image (or of a child) for an architecture.
    Config(u8),
    /// The layer blob of the image (or of a child) for an architecture.
    Layer(u8),
    /// The image's signature manifest.
    Signature,
    /// The signature's payload blob.
    SignaturePayload,
    /// The empty blob `{}` (config of the signatures).
    Empty,
}

impl Kind {
    /// Whether the digest is a manifest (else a blob).
    pub fn is_manifest(self) -> bool {
        matches!(self, Kind::Top | Kind::Child(_) | Kind::Signature)
    }
}

/// A document and its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Doc {
    /// The bytes served.
    pub bytes: Vec<u8>,
    /// `sha256:<hex>` of the bytes.
    pub digest: String,
    /// Its media type.
    pub media_type: &'static str,
}

impl Doc {
    fn new(bytes: Vec<u8>, media_type: &'static str) -> Doc {
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
        Doc {
            bytes,
            digest,
            media_type,
        }
    }
}

/// A manifest to push, with the tags to set on it.
#[derive(Debug, Clone)]
pub struct Push {
    /// The manifest.
    pub manifest: Doc,
    /// Tags pointing at it (empty: pushed by digest only).
    pub tags: Vec<String>,
}

/// Everything one repository holds, in push order (blobs, then children before their index
/// and subjects before their signatures): what a seeder sends to a real registry to hold the
/// same data.
#[derive(Debug, Clone, Default)]
pub struct Content {
    /// Blobs (configs, layers, payloads, the empty blob), each once.
    pub blobs: Vec<Vec<u8>>,
    /// Manifests in push order.
    pub manifests: Vec<Push>,
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

impl Shape {
    fn mix(&self, repo: RepoId, n: u64, salt: u64) -> u64 {
        let r = match repo {
            RepoId::Numbered(r) => r,
            RepoId::Huge => u64::MAX,
        };
        splitmix(splitmix(splitmix(self.seed ^ salt.rotate_left(17)) ^ r) ^ n)
    }

    /// How many repositories the catalog lists.
    pub fn catalog_len(&self) -> u64 {
        self.repositories + u64::from(self.huge_tags > 0)
    }

    /// The repository at catalog position `pos` (the catalog is sorted).
    pub fn repo_at(&self, pos: u64) -> Option<RepoId> {
        if pos < self.repositories {
            Some(RepoId::Numbered(pos))
        } else if pos == self.repositories && self.huge_tags > 0 {
            Some(RepoId::Huge)
        } else {
            None
        }
    }

    /// A repository's name.
    pub fn repo_name(&self, repo: RepoId) -> String {
        match repo {
            RepoId::Numbered(r) => format!("project-{:05}/service-{:02}", r / 100, r % 100),
            RepoId::Huge => HUGE_REPOSITORY.to_string(),
        }
    }

    /// The repository a name names, if the shape has it.
    pub fn parse_repo(&self, name: &str) -> Option<RepoId> {
        if name == HUGE_REPOSITORY {
            return (self.huge_tags > 0).then_some(RepoId::Huge);
        }
        let rest = name.strip_prefix("project-")?;
        let (project, service) = rest.split_once("/service-")?;
        if project.len() != 5 || service.len() != 2 {
            return None;
        }
        if !project
            .bytes()
            .chain(service.bytes())
            .all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let r = project.parse::<u64>().ok()? * 100 + service.parse::<u64>().ok()?;
        (r < self.repositories).then_some(RepoId::Numbered(r))
    }

    /// The first catalog position whose name sorts after `last`.
    pub fn catalog_after(&self, last: &str) -> u64 {
        partition(self.catalog_len(), |p| {
            self.repo_at(p)
                .is_some_and(|r| self.repo_name(r).as_str() <= last)
        })
    }

    /// Tags of a repository (`latest` included; signature tags not).
    pub fn tag_count(&self, repo: RepoId) -> u64 {
        match repo {
            RepoId::Numbered(_) => self.tags.max(1),
            RepoId::Huge => self.huge_tags.max(1),
        }
    }

    /// Distinct images of a repository.
    pub fn image_count(&self, repo: RepoId) -> u64 {
        let builds = self.tag_count(repo).saturating_sub(1).max(1);
        match repo {
            RepoId::Numbered(_) if self.images > 0 => self.images.min(builds),
            _ => builds,
        }
    }

    /// The name of tag `k` (0-based; the last is `latest`), in sorted order.
    pub fn tag_name(&self, repo: RepoId, k: u64) -> String {
        let mut s = String::with_capacity(22);
        self.write_tag_name(repo, k, &mut s);
        s
    }

    /// Appends the name of tag `k` to `out`.
    pub fn write_tag_name(&self, repo: RepoId, k: u64, out: &mut String) {
        use std::fmt::Write as _;
        if k + 1 >= self.tag_count(repo) {
            out.push_str("latest");
        } else {
            let _ = write!(out, "build-{k:08}-{:06x}", self.mix(repo, k, 7) & 0xff_ffff);
        }
    }

    /// The position of a (non-signature) tag by name.
    pub fn parse_tag(&self, repo: RepoId, tag: &str) -> Option<u64> {
        if tag == "latest" {
            return Some(self.tag_count(repo) - 1);
        }
        let rest = tag.strip_prefix("build-")?;
        let (num, _) = rest.split_once('-')?;
        if num.len() != 8 {
            return None;
        }
        let k: u64 = num.parse().ok()?;
        (k + 1 < self.tag_count(repo) && self.tag_name(repo, k) == tag).then_some(k)
    }

    /// The image tag `k` shows: build `k` image `k mod images`, `latest` the newest build's.
    pub fn image_of_tag(&self, repo: RepoId, k: u64) -> u64 {
        let builds = self.tag_count(repo).saturating_sub(1);
        let k = if k + 1 >= self.tag_count(repo) {
            builds.saturating_sub(1)
        } else {
            k
        };
        k % self.image_count(repo)
    }

    /// Whether image `i` is a multi-arch index (never in the huge repository, whose images
    /// are all plain).
    pub fn is_index(&self, repo: RepoId, i: u64) -> bool {
        repo != RepoId::Huge && self.mix(repo, i, 1) % 100 < self.index_percent
    }

    /// Whether image `i` has a signature (never in the huge repository).
    pub fn is_signed(&self, repo: RepoId, i: u64) -> bool {
        repo != RepoId::Huge && self.mix(repo, i, 2) % 100 < self.referrer_percent
    }

    /// Unix seconds when image `i` was built: spread over `span_days` before `now`, older
    /// images first, the newest one `span / images` before `now`.
    pub fn created(&self, repo: RepoId, i: u64) -> i64 {
        let d = self.image_count(repo) as i64;
        let span = self.span_days.max(1) * 86_400;
        let step = (span / d).max(1);
        let jitter = (self.mix(repo, i, 3) % (step as u64 / 4).max(1)) as i64;
        self.now - span * (d - i as i64) / d - jitter
    }

    /// RFC 3339 form of [`created`](Self::created).
    pub fn created_rfc3339(&self, repo: RepoId, i: u64) -> String {
        rfc3339(self.created(repo, i))
    }

    /// The layer blob of image `i` (or of its child) for architecture `arch`.
    pub fn layer(&self, repo: RepoId, i: u64, arch: u8) -> Doc {
        let name = self.repo_name(repo);
        let text = format!(
            "synthetic layer {} {name} {i} {}\n",
            self.seed,
            ARCHES[arch as usize % 2]
        );
        Doc::new(text.into_bytes(), OCI_LAYER)
    }

    /// Layer, config and manifest of image `i` (or of its child) for architecture `arch`,
    /// each built once.
    pub fn image_parts(&self, repo: RepoId, i: u64, arch: u8) -> [Doc; 3] {
        let layer = self.layer(repo, i, arch);
        let name = self.repo_name(repo);
        let config = format!(
            r#"{{"architecture":"{}","os":"linux","created":"{}","config":{{"Labels":{{"synthetic.repository":"{name}","synthetic.image":"{i}"}}}},"rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
            ARCHES[arch as usize % 2],
            self.created_rfc3339(repo, i),
            layer.digest
        );
        let config = Doc::new(config.into_bytes(), OCI_CONFIG);
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"{OCI_CONFIG}","digest":"{}","size":{}}},"layers":[{{"mediaType":"{OCI_LAYER}","digest":"{}","size":{}}}]}}"#,
            config.digest,
            config.bytes.len(),
            layer.digest,
            layer.bytes.len()
        );
        let manifest = Doc::new(manifest.into_bytes(), OCI_MANIFEST);
        [layer, config, manifest]
    }

    /// The config blob of image `i` (or of its child) for architecture `arch`.
    pub fn config(&self, repo: RepoId, i: u64, arch: u8) -> Doc {
        let [_, config, _] = self.image_parts(repo, i, arch);
        config
    }

    /// The image manifest of image `i` (or of its child) for architecture `arch`.
    pub fn image_manifest(&self, repo: RepoId, i: u64, arch: u8) -> Doc {
        let [_, _, manifest] = self.image_parts(repo, i, arch);
        manifest
    }

    /// The index of image `i` (two children), with an `org.opencontainers.image.created`
    /// annotation.
    pub fn index(&self, repo: RepoId, i: u64) -> Doc {
        let children = [
            self.image_manifest(repo, i, 0),
            self.image_manifest(repo, i, 1),
        ];
        self.index_of(repo, i, &children)
    }

    /// The index of image `i` listing `children` (amd64, arm64).
    pub fn index_of(&self, repo: RepoId, i: u64, children: &[Doc; 2]) -> Doc {
        let listed: Vec<String> = children
            .iter()
            .zip(ARCHES)
            .map(|(c, arch)| {
                format!(
                    r#"{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":{},"platform":{{"architecture":"{arch}","os":"linux"}}}}"#,
                    c.digest,
                    c.bytes.len(),
                )
            })
            .collect();
        let text = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{}],"annotations":{{"org.opencontainers.image.created":"{}"}}}}"#,
            listed.join(","),
            self.created_rfc3339(repo, i)
        );
        Doc::new(text.into_bytes(), OCI_INDEX)
    }

    /// Image `i`'s own manifest or index.
    pub fn top(&self, repo: RepoId, i: u64) -> Doc {
        if self.is_index(repo, i) {
            self.index(repo, i)
        } else {
            self.image_manifest(repo, i, 0)
        }
    }

    /// The payload blob of image `i`'s signature.
    pub fn signature_payload(&self, repo: RepoId, i: u64, subject: &str) -> Doc {
        let name = self.repo_name(repo);
        let text = format!("synthetic signature {} {name} {i} {subject}\n", self.seed);
        Doc::new(text.into_bytes(), SIGNATURE_LAYER)
    }

    /// Image `i`'s signature: an artifact whose `subject` is the image, built an hour after it.
    pub fn signature(&self, repo: RepoId, i: u64) -> Doc {
        self.signature_of(repo, i, &self.top(repo, i))
    }

    /// The signature of image `i` whose manifest or index is `subject`.
    pub fn signature_of(&self, repo: RepoId, i: u64, subject: &Doc) -> Doc {
        let payload = self.signature_payload(repo, i, &subject.digest);
        let text = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","artifactType":"{SIGNATURE_TYPE}","config":{{"mediaType":"{OCI_EMPTY}","digest":"{}","size":2}},"layers":[{{"mediaType":"{SIGNATURE_LAYER}","digest":"{}","size":{}}}],"subject":{{"mediaType":"{}","digest":"{}","size":{}}},"annotations":{{"org.opencontainers.image.created":"{}"}}}}"#,
            empty_digest(),
            payload.digest,
            payload.bytes.len(),
            subject.media_type,
            subject.digest,
            subject.bytes.len(),
            rfc3339(self.created(repo, i) + 3600)
        );
        Doc::new(text.into_bytes(), OCI_MANIFEST)
    }

    /// The signature tag (cosign's tag schema) of a subject digest.
    pub fn signature_tag(subject: &str) -> String {
        format!("{}.sig", subject.replacen(':', "-", 1))
    }

    /// The document a digest-table entry names.
    pub fn doc(&self, repo: RepoId, i: u64, kind: Kind) -> Doc {
        match kind {
            Kind::Top => self.top(repo, i),
            Kind::Child(a) => self.image_manifest(repo, i, a),
            Kind::Config(a) => self.config(repo, i, a),
            Kind::Layer(a) => self.layer(repo, i, a),
            Kind::Signature => self.signature(repo, i),
            Kind::SignaturePayload => {
                let subject = self.top(repo, i);
                self.signature_payload(repo, i, &subject.digest)
            }
            Kind::Empty => Doc::new(EMPTY_BLOB.to_vec(), OCI_EMPTY),
        }
    }

    /// Everything a repository holds, in push order, with its tags — for seeding a real
    /// registry with the same data. Signatures are tagged with the tag schema on the
    /// distribution flavor and left untagged on zot (found through the referrers API).
    pub fn content(&self, repo: RepoId) -> Content {
        let mut c = Content::default();
        let images = self.image_count(repo);
        let mut tags_of: Vec<Vec<String>> = vec![Vec::new(); images as usize];
        for k in 0..self.tag_count(repo) {
            tags_of[self.image_of_tag(repo, k) as usize].push(self.tag_name(repo, k));
        }
        let mut any_signature = false;
        for (i, tags) in (0..images).zip(tags_of) {
            let arches: &[u8] = if self.is_index(repo, i) {
                &[0, 1]
            } else {
                &[0]
            };
            for &a in arches {
                c.blobs.push(self.layer(repo, i, a).bytes);
                c.blobs.push(self.config(repo, i, a).bytes);
            }
            if self.is_index(repo, i) {
                for a in 0..2 {
                    c.manifests.push(Push {
                        manifest: self.image_manifest(repo, i, a),
                        tags: Vec::new(),
                    });
                }
            }
            let top = self.top(repo, i);
            let subject = top.digest.clone();
            c.manifests.push(Push {
                manifest: top,
                tags,
            });
            if self.is_signed(repo, i) {
                any_signature = true;
                c.blobs
                    .push(self.signature_payload(repo, i, &subject).bytes);
                let tags = match self.flavor {
                    Flavor::Distribution => vec![Self::signature_tag(&subject)],
                    Flavor::Zot => Vec::new(),
                };
                c.manifests.push(Push {
                    manifest: self.signature(repo, i),
                    tags,
                });
            }
        }
        if any_signature {
            c.blobs.push(EMPTY_BLOB.to_vec());
        }
        c
    }
}

/// `sha256:<hex>` of the empty blob `{}`.
pub fn empty_digest() -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(EMPTY_BLOB)))
}

/// RFC 3339 (UTC, seconds) of Unix seconds.
pub fn rfc3339(secs: i64) -> String {
    jiff::Timestamp::from_second(secs)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_string())
}

/// The first position in `0..len` for which `before` is false (`before` holds on a prefix).
pub(crate) fn partition(len: u64, before: impl Fn(u64) -> bool) -> u64 {
    let (mut lo, mut hi) = (0u64, len);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if before(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_as_their_numbers_and_parse_back() {
        let s = Shape {
            repositories: 250,
            tags: 12,
            huge_tags: 30,
            ..Shape::default()
        };
        let names: Vec<String> = (0..s.catalog_len())
            .map(|p| s.repo_name(s.repo_at(p).unwrap()))
            .collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        for p in 0..s.catalog_len() {
            let r = s.repo_at(p).unwrap();
            assert_eq!(s.parse_repo(&s.repo_name(r)), Some(r));
            let tags: Vec<String> = (0..s.tag_count(r)).map(|k| s.tag_name(r, k)).collect();
            let mut sorted = tags.clone();
            sorted.sort();
            assert_eq!(tags, sorted);
            for (k, t) in tags.iter().enumerate() {
                assert_eq!(s.parse_tag(r, t), Some(k as u64));
            }
        }
        assert_eq!(s.parse_repo("project-00003/service-00"), None);
        assert_eq!(s.catalog_after(""), 0);
        assert_eq!(s.catalog_after("project-00001/service-00"), 101);
        assert_eq!(s.catalog_after("zzz"), s.catalog_len());
    }

    #[test]
    fn documents_are_the_same_on_every_call_and_newer_images_are_newer() {
        let s = Shape {
            index_percent: 50,
            referrer_percent: 50,
            ..Shape::default()
        };
        let r = RepoId::Numbered(7);
        assert_eq!(s.signature(r, 3), s.signature(r, 3));
        for i in 1..s.image_count(r) {
            assert!(s.created(r, i) > s.created(r, i - 1));
        }
        assert!(s.created(r, s.image_count(r) - 1) < s.now);
        let c = s.content(r);
        assert_eq!(
            c.manifests.iter().map(|p| p.tags.len()).sum::<usize>() as u64,
            s.tag_count(r) + (0..s.image_count(r)).filter(|i| s.is_signed(r, *i)).count() as u64
        );
    }
}
