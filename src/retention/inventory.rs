//! The inventory: what one registry holds in the repositories a run looks at, as plain data.
//!
//! The inventory builder (registry-facing, elsewhere) fills it from the registry client; tests
//! and benchmarks build synthetic ones. The largest repository bounds a run's memory, so a tag
//! is kept small: its name is a [`TagName`] (short names inline, no allocation), its times
//! eight bytes each, and manifests are interned per repository — a tag points at a
//! [`ManifestId`], an index at its children's ids, a referrer at its subject's id. A
//! [`Digest`] is one shared allocation of its 32 bytes, which the plan refers to without
//! copying; a media type is kept once per repository.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::num::NonZeroI64;
use std::sync::Arc;

use hashbrown::HashTable;
use jiff::Timestamp;

use crate::oci::digest::{referrer_tag_subject, sha256_bytes};

/// What the registry can do and tell, which changes how a plan is carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Capabilities {
    /// A tag can be deleted on its own, leaving its image and other tags in place (zot).
    /// When false (CNCF distribution), only whole manifests can be deleted by digest, which
    /// removes every tag on them.
    pub delete_by_tag: bool,
    /// The registry reports when each tag was last pulled (zot's search extension); without
    /// it `pulledWithin` cannot be judged.
    pub pull_stats: bool,
}

/// A content digest (`sha256:<hex>`). Eight bytes, cheap to clone; a sha256 digest is kept
/// as its 32 bytes, anything else as written.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(Arc<DigestRepr>);

/// How a digest is stored. Ordered so that sha256 digests compare like their hex form.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum DigestRepr {
    Sha256([u8; 32]),
    Other(Box<str>),
}

impl DigestRepr {
    /// A digest as written: its 32 bytes when it is a sha256 digest.
    pub(crate) fn parse(digest: &str) -> DigestRepr {
        match sha256_bytes(digest) {
            Some(bytes) => DigestRepr::Sha256(bytes),
            None => DigestRepr::Other(digest.into()),
        }
    }
}

impl Digest {
    /// Wraps a digest string as the registry reported it.
    pub fn new(digest: &str) -> Self {
        Digest(Arc::new(DigestRepr::parse(digest)))
    }

    /// The algorithm and first 12 hex digits (`sha256:0123456789ab`), for tables and reasons.
    pub fn short(&self) -> String {
        let full = self.to_string();
        let end = full.find(':').map_or(12, |i| i + 13);
        full.get(..end).unwrap_or(&full).to_owned()
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

impl fmt::Display for DigestRepr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DigestRepr::Sha256(bytes) => {
                f.write_str("sha256:")?;
                for b in bytes {
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
            DigestRepr::Other(s) => f.write_str(s),
        }
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl From<&str> for Digest {
    fn from(s: &str) -> Self {
        Digest::new(s)
    }
}

/// A tag name: 24 bytes, with names of up to 22 bytes held inline — `latest`, `v1.27.3`,
/// and the CI names of the usual shapes (`main-20261102-abcdef0`, `pr-1234-abcdef0`,
/// `1.27.3-alpine3.19`) — and longer ones behind one shared allocation, so that the
/// inventory, the plan and its mutations hold a tag's name without an allocation each.
/// Dereferences to `str`; compares, orders and hashes like it.
#[derive(Clone)]
pub struct TagName(NameRepr);

/// Longest name held inline.
const INLINE: usize = 22;

#[derive(Clone)]
enum NameRepr {
    Inline { len: u8, bytes: [u8; INLINE] },
    Shared(Arc<str>),
}

impl TagName {
    fn bytes(&self) -> &[u8] {
        match &self.0 {
            NameRepr::Inline { len, bytes } => bytes.get(..usize::from(*len)).unwrap_or_default(),
            NameRepr::Shared(s) => s.as_bytes(),
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            // Always whole: inline bytes are only ever copied from a `str` of that length.
            NameRepr::Inline { .. } => std::str::from_utf8(self.bytes()).unwrap_or_default(),
            NameRepr::Shared(s) => s,
        }
    }
}

impl From<&str> for TagName {
    fn from(s: &str) -> TagName {
        if s.len() <= INLINE {
            let mut bytes = [0u8; INLINE];
            bytes[..s.len()].copy_from_slice(s.as_bytes());
            TagName(NameRepr::Inline {
                len: s.len() as u8,
                bytes,
            })
        } else {
            TagName(NameRepr::Shared(Arc::from(s)))
        }
    }
}

impl From<String> for TagName {
    fn from(s: String) -> TagName {
        TagName::from(s.as_str())
    }
}

impl From<&String> for TagName {
    fn from(s: &String) -> TagName {
        TagName::from(s.as_str())
    }
}

impl From<Arc<str>> for TagName {
    fn from(s: Arc<str>) -> TagName {
        if s.len() <= INLINE {
            TagName::from(&*s)
        } else {
            TagName(NameRepr::Shared(s))
        }
    }
}

impl std::ops::Deref for TagName {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for TagName {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl std::borrow::Borrow<str> for TagName {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for TagName {
    fn eq(&self, other: &TagName) -> bool {
        self.bytes() == other.bytes()
    }
}

impl Eq for TagName {}

impl PartialEq<str> for TagName {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for TagName {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialOrd for TagName {
    fn partial_cmp(&self, other: &TagName) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for TagName {
    fn cmp(&self, other: &TagName) -> std::cmp::Ordering {
        // UTF-8 bytes order like the characters they encode.
        self.bytes().cmp(other.bytes())
    }
}

impl std::hash::Hash for TagName {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // As `str` hashes, so that a map keyed by names can be asked with a `&str`.
        self.as_str().hash(state);
    }
}

impl fmt::Display for TagName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for TagName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// A point in time, to the second: what the planner needs of push, pull and creation
/// times. Eight bytes even as an `Option`, which matters for a million tags.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Time(NonZeroI64);

/// Seconds are stored shifted by 2^62 so that no representable time is zero.
const TIME_OFFSET: i64 = 1 << 62;

impl Time {
    /// The time `seconds` after the Unix epoch (negative: before). Clamped to ±2^61 s.
    pub fn from_unix_seconds(seconds: i64) -> Time {
        let clamped = seconds.clamp(-(1 << 61), 1 << 61);
        Time(NonZeroI64::new(clamped + TIME_OFFSET).unwrap_or(NonZeroI64::MAX))
    }

    /// Seconds since the Unix epoch.
    pub fn unix_seconds(self) -> i64 {
        self.0.get() - TIME_OFFSET
    }

    /// As a jiff timestamp (the epoch if out of jiff's range).
    pub fn timestamp(self) -> Timestamp {
        Timestamp::from_second(self.unix_seconds()).unwrap_or(Timestamp::UNIX_EPOCH)
    }
}

impl From<Timestamp> for Time {
    fn from(ts: Timestamp) -> Time {
        Time::from_unix_seconds(ts.as_second())
    }
}

impl fmt::Debug for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.timestamp())
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.timestamp())
    }
}

/// Index of a manifest in its repository's [`Repository::manifests`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ManifestId(pub u32);

impl ManifestId {
    /// The index into [`Repository::manifests`].
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Everything known about one registry for one run.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    /// What the registry supports.
    pub capabilities: Capabilities,
    /// The repositories listed, in any order. Out-of-scope repositories may be present; the
    /// planner ignores them.
    pub repositories: Vec<Repository>,
}

/// Whether a repository was listed completely.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Completeness {
    /// Every tag, manifest and referrer was listed.
    #[default]
    Complete,
    /// Something failed (a page of tags, a manifest, the referrers); nothing in the
    /// repository is deleted this run.
    Incomplete {
        /// What failed, for people (`tags/list page 3: 503 Service Unavailable`).
        reason: Arc<str>,
    },
}

/// One repository: its tags and the manifests they and their indexes point at.
#[derive(Debug, Clone, Default)]
pub struct Repository {
    /// Repository name (`team-a/web`).
    pub name: Arc<str>,
    /// Whether the listing is complete.
    pub completeness: Completeness,
    /// The tags, each name at most once, in any order.
    pub tags: Vec<Tag>,
    /// Every manifest known: tagged ones, index children, referrers, untagged ones.
    pub manifests: Vec<Manifest>,
}

/// One tag.
#[derive(Debug, Clone)]
pub struct Tag {
    /// Tag name.
    pub name: TagName,
    /// The manifest the tag resolved to when listed.
    pub manifest: ManifestId,
    /// When the tag was pushed (zot's search API), if known. When unknown, the manifest's
    /// `created` time stands in.
    pub pushed: Option<Time>,
    /// Set when `pushed` is when the tag was set on the image (zot's `TaggedTimestamp`)
    /// rather than when the image was pushed.
    pub tagged: bool,
    /// When the tag was last pulled, if the registry keeps pull statistics and it was pulled.
    pub last_pulled: Option<Time>,
    /// Set when the registry keeps pull statistics but did not report this tag's (zot's
    /// search answer left it out): whether it was pulled is unknown, which is not "never".
    pub pull_unknown: bool,
    /// Set when the tag is a referrer tag rather than an image people chose to tag: a
    /// `sha256-<hex>` tag of the referrers tag schema (possibly with a `.sig`/`.att`/`.sbom`
    /// suffix, as cosign writes), or a tag on a manifest with a `subject`. Such tags follow
    /// their subject instead of being judged by keep entries.
    pub subject: Option<ManifestId>,
}

/// One manifest or index.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// Its digest.
    pub digest: Digest,
    /// Its media type and artifact type, where fetched (the planner does not need them).
    pub media: Option<Box<MediaInfo>>,
    /// Total size in bytes (manifest, config and layers), if known.
    pub size: Option<u64>,
    /// The image config's `created` time or the `org.opencontainers.image.created` annotation.
    pub created: Option<Time>,
    /// For an index: the manifests it lists.
    pub children: Box<[ManifestId]>,
    /// For a referrer (signature, SBOM, attestation): the manifest it refers to.
    pub subject: Option<ManifestId>,
}

/// What a manifest is, as its media types say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MediaInfo {
    /// Its media type (`application/vnd.oci.image.index.v1+json`, …).
    pub media_type: Option<Arc<str>>,
    /// Its `artifactType` (or config media type for artifacts), if any.
    pub artifact_type: Option<Arc<str>>,
}

impl Manifest {
    /// A manifest about which only the digest is known.
    pub fn new(digest: Digest) -> Self {
        Manifest {
            digest,
            media: None,
            size: None,
            created: None,
            children: Box::new([]),
            subject: None,
        }
    }
}

impl Repository {
    /// The manifest behind an id of this repository.
    pub fn manifest(&self, id: ManifestId) -> Option<&Manifest> {
        self.manifests.get(id.index())
    }

    /// Whether the repository was listed completely.
    pub fn is_complete(&self) -> bool {
        matches!(self.completeness, Completeness::Complete)
    }
}

/// Builds a [`Repository`], interning digests and resolving referrer tags.
///
/// Its indexes cost a few bytes per manifest and tag on top of the repository (one
/// repository can hold half a million tags): the digest index holds ids only, hashed by the
/// digests the repository already holds, and the tag index is made only once tags come out
/// of name order (a registry lists them sorted).
#[derive(Default)]
pub struct RepositoryBuilder {
    repo: Repository,
    ids: HashTable<ManifestId>,
    hasher: RandomState,
    /// The tags by name, once they came out of order; until then, a tag listed again is the
    /// last one.
    tag_index: Option<HashMap<TagName, u32>>,
}

impl fmt::Debug for RepositoryBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RepositoryBuilder")
            .field("repo", &self.repo)
            .finish_non_exhaustive()
    }
}

/// The position of each tag, by name.
fn index_of(tags: &[Tag]) -> HashMap<TagName, u32> {
    tags.iter()
        .enumerate()
        .map(|(i, t)| (t.name.clone(), i as u32))
        .collect()
}

/// Grows `v` by a quarter when full rather than doubling it: a large repository's lists
/// are then never more than a quarter empty.
fn room<T>(v: &mut Vec<T>) {
    if v.len() == v.capacity() {
        v.reserve_exact(v.len() / 4 + 16);
    }
}

impl RepositoryBuilder {
    /// Starts an empty, complete repository.
    pub fn new(name: &str) -> Self {
        RepositoryBuilder {
            repo: Repository {
                name: Arc::from(name),
                ..Repository::default()
            },
            ..RepositoryBuilder::default()
        }
    }

    /// Continues building a repository already built, to add what was read later.
    pub fn resume(repo: Repository) -> Self {
        let mut b = RepositoryBuilder {
            repo,
            ..RepositoryBuilder::default()
        };
        b.ids.reserve(b.repo.manifests.len(), |_| 0);
        for i in 0..b.repo.manifests.len() {
            let id = ManifestId(i as u32);
            let hash = b.hasher.hash_one(&*b.repo.manifests[i].digest.0);
            let manifests = &b.repo.manifests;
            let hasher = &b.hasher;
            b.ids.insert_unique(hash, id, |x| {
                hasher.hash_one(&*manifests[x.index()].digest.0)
            });
        }
        // Without an index the tags must stay in strict name order (see `listed`).
        let sorted = b.repo.tags.windows(2).all(|w| w[0].name < w[1].name);
        b.tag_index = (!sorted).then(|| index_of(&b.repo.tags));
        b
    }

    /// Starts an empty repository with room for `tags` tags and `manifests` manifests.
    pub fn with_capacity(name: &str, tags: usize, manifests: usize) -> Self {
        let mut b = RepositoryBuilder::new(name);
        b.repo.tags.reserve_exact(tags);
        b.repo.manifests.reserve_exact(manifests);
        b.ids.reserve(manifests, |_| 0);
        b
    }

    /// The id of a digest, adding a manifest that knows only its digest if it is new.
    pub fn id(&mut self, digest: &str) -> ManifestId {
        let repr = DigestRepr::parse(digest);
        let hash = self.hasher.hash_one(&repr);
        let manifests = &self.repo.manifests;
        if let Some(id) = self
            .ids
            .find(hash, |x| *manifests[x.index()].digest.0 == repr)
        {
            return *id;
        }
        let id = ManifestId(self.repo.manifests.len() as u32);
        room(&mut self.repo.manifests);
        self.repo
            .manifests
            .push(Manifest::new(Digest(Arc::new(repr))));
        let manifests = &self.repo.manifests;
        let hasher = &self.hasher;
        self.ids.insert_unique(hash, id, |x| {
            hasher.hash_one(&*manifests[x.index()].digest.0)
        });
        id
    }

    /// The manifest behind an id this builder gave.
    pub fn get(&self, id: ManifestId) -> &Manifest {
        &self.repo.manifests[id.index()]
    }

    /// The manifest behind an id this builder gave, to fill in what is known about it.
    pub fn get_mut(&mut self, id: ManifestId) -> &mut Manifest {
        &mut self.repo.manifests[id.index()]
    }

    /// The manifests so far, by id.
    pub fn manifests(&self) -> &[Manifest] {
        &self.repo.manifests
    }

    /// The tags so far.
    pub fn tags(&self) -> &[Tag] {
        &self.repo.tags
    }

    /// The manifest of a digest, added if new, to fill in what is known about it.
    pub fn manifest(&mut self, digest: &str) -> &mut Manifest {
        let id = self.id(digest);
        &mut self.repo.manifests[id.index()]
    }

    /// Records that `index` lists `child`.
    pub fn child(&mut self, index: &str, child: &str) {
        let child = self.id(child);
        let index = self.id(index);
        self.children(index, [child]);
    }

    /// Records that `index` lists each of `children` (each once, in the order first given).
    pub fn children(&mut self, index: ManifestId, children: impl IntoIterator<Item = ManifestId>) {
        let list = &mut self.repo.manifests[index.index()].children;
        let mut all = std::mem::take(list).into_vec();
        for child in children {
            if !all.contains(&child) {
                all.push(child);
            }
        }
        *list = all.into_boxed_slice();
    }

    /// Records that `referrer` refers to `subject`.
    /// A manifest has one subject: a second, different one means the listing contradicts
    /// itself, and the repository becomes incomplete (the smaller digest is kept, so the
    /// result does not depend on listing order).
    pub fn subject(&mut self, referrer: &str, subject: &str) {
        let subject = self.id(subject);
        let id = self.id(referrer);
        self.refers(id, subject);
    }

    /// [`subject`](Self::subject) by ids.
    pub fn refers(&mut self, id: ManifestId, subject: ManifestId) {
        match self.repo.manifests[id.index()].subject {
            Some(current) if current != subject => {
                let referrer = self.repo.manifests[id.index()].digest.to_string();
                self.incomplete(&format!("{referrer} was listed with two subjects"));
                let digest = |id: ManifestId| &self.repo.manifests[id.index()].digest;
                if digest(subject) < digest(current) {
                    self.repo.manifests[id.index()].subject = Some(subject);
                }
            }
            _ => self.repo.manifests[id.index()].subject = Some(subject),
        }
    }

    /// Adds (or, listed again, updates) a tag pointing at `digest`. A tag listed twice with
    /// different digests makes the repository incomplete: the listing contradicts itself.
    pub fn tag(&mut self, name: &str, digest: &str) -> &mut Tag {
        let manifest = self.id(digest);
        let subject = referrer_tag_subject(name).map(|s| self.id(&s));
        if let Some(i) = self.listed(name) {
            let listed = self.repo.tags[i].manifest;
            if listed != manifest {
                self.incomplete(&format!(
                    "tag {name} was listed twice with different digests"
                ));
                // Keep the smaller digest, so the result does not depend on listing order.
                let digest = |id: ManifestId| &self.repo.manifests[id.index()].digest;
                if digest(manifest) < digest(listed) {
                    self.repo.tags[i].manifest = manifest;
                }
            }
            return &mut self.repo.tags[i];
        }
        let name = TagName::from(name);
        if let Some(index) = &mut self.tag_index {
            index.insert(name.clone(), self.repo.tags.len() as u32);
        }
        room(&mut self.repo.tags);
        self.repo.tags.push(Tag {
            name,
            manifest,
            pushed: None,
            tagged: false,
            last_pulled: None,
            pull_unknown: false,
            subject,
        });
        let last = self.repo.tags.len() - 1;
        &mut self.repo.tags[last]
    }

    /// The tag named `name`, if it was added. While tags come in name order, only the last
    /// one can be; the first one out of order makes the index of every name.
    fn listed(&mut self, name: &str) -> Option<usize> {
        if self.tag_index.is_none() {
            match self.repo.tags.last() {
                None => return None,
                Some(last) if last.name.as_str() < name => return None,
                Some(last) if last.name.as_str() == name => return Some(self.repo.tags.len() - 1),
                Some(_) => self.tag_index = Some(index_of(&self.repo.tags)),
            }
        }
        self.tag_index
            .as_ref()
            .and_then(|index| index.get(name))
            .map(|&i| i as usize)
    }

    /// Marks the repository incomplete (of several reasons, the smallest is kept).
    pub fn incomplete(&mut self, reason: &str) {
        // The smallest, so that the result does not depend on the order in which a
        // contradictory listing was read.
        let keep = match &self.repo.completeness {
            Completeness::Incomplete { reason: current } => reason < &**current,
            _ => true,
        };
        if keep {
            self.repo.completeness = Completeness::Incomplete {
                reason: Arc::from(reason),
            };
        }
    }

    /// Finishes the repository: a tag on a manifest with a subject becomes a referrer tag.
    /// The repository is then made as small as it can be: a media type written once per
    /// manifest is kept once per repository, and the lists lose their spare room.
    pub fn build(mut self) -> Repository {
        drop(std::mem::take(&mut self.ids));
        drop(self.tag_index.take());
        for tag in &mut self.repo.tags {
            if tag.subject.is_none() {
                tag.subject = self.repo.manifests[tag.manifest.index()].subject;
            }
        }
        let mut kinds: HashSet<Arc<str>> = HashSet::new();
        let mut share = |s: &mut Option<Arc<str>>| {
            if let Some(x) = s {
                match kinds.get(&**x) {
                    Some(known) => *x = known.clone(),
                    None => {
                        kinds.insert(x.clone());
                    }
                }
            }
        };
        for m in &mut self.repo.manifests {
            if let Some(media) = &mut m.media {
                share(&mut media.media_type);
                share(&mut media.artifact_type);
                if media.media_type.is_none() && media.artifact_type.is_none() {
                    m.media = None;
                }
            }
        }
        self.repo.tags.shrink_to_fit();
        self.repo.manifests.shrink_to_fit();
        self.repo
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn referrer_tags_name_their_subject() {
        let want = Some(format!("sha256:{HEX}"));
        assert_eq!(referrer_tag_subject(&format!("sha256-{HEX}")), want);
        assert_eq!(referrer_tag_subject(&format!("sha256-{HEX}.sig")), want);
        assert_eq!(referrer_tag_subject(&format!("sha256-{HEX}.")), None);
        assert_eq!(referrer_tag_subject("sha256-abc"), None);
        assert_eq!(referrer_tag_subject("v1.2.3"), None);
        let long = HEX.repeat(2);
        assert_eq!(
            referrer_tag_subject(&format!("sha512-{long}.sig")),
            Some(format!("sha512:{long}"))
        );
        assert_eq!(referrer_tag_subject(&format!("sha512-{HEX}")), None);
    }

    #[test]
    fn the_builder_interns_digests_and_resolves_referrer_tags() {
        let mut b = RepositoryBuilder::new("team-a/web");
        b.tag("v1", "sha256:aa");
        b.tag("latest", "sha256:aa");
        b.tag(&format!("sha256-{HEX}.sig"), "sha256:sig");
        b.subject("sha256:sbom", "sha256:aa");
        b.tag("sbom", "sha256:sbom");
        let repo = b.build();
        assert_eq!(repo.tags[0].manifest, repo.tags[1].manifest);
        let sig_subject = repo.tags[2].subject.and_then(|id| repo.manifest(id));
        assert_eq!(
            sig_subject.map(|m| m.digest.to_string()),
            Some(format!("sha256:{HEX}"))
        );
        assert_eq!(repo.tags[3].subject, Some(repo.tags[0].manifest));
        assert!(repo.is_complete());
    }

    #[test]
    fn a_tag_listed_twice_with_different_digests_makes_the_repository_incomplete() {
        let mut b = RepositoryBuilder::new("r");
        b.tag("v1", "sha256:aa");
        b.tag("v1", "sha256:bb");
        assert!(!b.build().is_complete());
    }

    #[test]
    fn a_tag_listed_again_out_of_name_order_is_found_and_contradictions_make_it_incomplete() {
        // In name order the builder keeps no index of names; the first tag out of order
        // makes one, and a name listed again is then found wherever it is.
        let mut b = RepositoryBuilder::new("r");
        for name in ["a", "c", "e"] {
            b.tag(name, "sha256:aa");
        }
        b.tag("b", "sha256:aa");
        b.tag("c", "sha256:aa").pushed = Some(Time::from_unix_seconds(7));
        b.tag("e", "sha256:aa");
        assert_eq!(b.tags().len(), 4);
        let c = b.tags().iter().find(|t| t.name == "c").unwrap();
        assert_eq!(c.pushed, Some(Time::from_unix_seconds(7)));
        let complete = b.build();
        assert!(complete.is_complete());

        let mut b = RepositoryBuilder::new("r");
        for name in ["a", "c", "b"] {
            b.tag(name, "sha256:aa");
        }
        b.tag("a", "sha256:bb");
        let repo = b.build();
        assert_eq!(repo.tags.len(), 3);
        assert!(!repo.is_complete());

        // Resumed, a repository's tags may be in any order: a name listed again is found.
        let mut b = RepositoryBuilder::resume(repo);
        b.tag("c", "sha256:aa");
        assert_eq!(b.build().tags.len(), 3);
    }

    #[test]
    fn short_digests_keep_the_algorithm_and_twelve_hex_digits() {
        assert_eq!(
            Digest::new(&format!("sha256:{HEX}")).short(),
            "sha256:0123456789ab"
        );
        assert_eq!(Digest::new("sha256:aa").short(), "sha256:aa");
    }

    #[test]
    fn digests_print_as_written_and_order_like_their_text() {
        for text in [
            format!("sha256:{HEX}"),
            "sha512:abc".into(),
            "sha256:ABC".into(),
        ] {
            assert_eq!(Digest::new(&text).to_string(), text);
        }
        let a = Digest::new(&format!("sha256:{}", "0".repeat(64)));
        let b = Digest::new(&format!("sha256:{}", "f".repeat(64)));
        assert!(a < b);
        assert_eq!(a, Digest::new(&a.to_string()));
        assert_eq!(std::mem::size_of::<Digest>(), 8);
    }

    #[test]
    fn tag_names_short_or_long_read_compare_and_hash_like_their_text() {
        use std::collections::HashMap;
        let texts = [
            "",
            "v1",
            "latest",
            "ci-0000042",
            "exactly-14-by",
            "fifteen-bytes-x",
            "exactly-22-bytes-long!",
            "twenty-three-bytes-long",
            "main-20261102-abcdef0",
            "größe-ü",
        ];
        let names: Vec<TagName> = texts.iter().map(|t| TagName::from(*t)).collect();
        for (name, text) in names.iter().zip(texts) {
            assert_eq!(name.as_str(), text);
            assert_eq!(name.to_string(), text);
            assert_eq!(*name, *text);
        }
        let mut by_name: Vec<&TagName> = names.iter().collect();
        by_name.sort();
        let mut by_text = texts.to_vec();
        by_text.sort();
        assert_eq!(
            by_name.iter().map(|n| n.as_str()).collect::<Vec<_>>(),
            by_text
        );
        let index: HashMap<TagName, usize> = names.iter().cloned().zip(0..).collect();
        for (i, text) in texts.iter().enumerate() {
            assert_eq!(index.get(*text), Some(&i));
        }
        assert_eq!(std::mem::size_of::<TagName>(), 24);
    }

    #[test]
    fn a_built_repository_keeps_each_media_type_once() {
        let mut b = RepositoryBuilder::new("r");
        for d in ["sha256:aa", "sha256:bb"] {
            b.tag(d, d);
            b.manifest(d).media = Some(Box::new(MediaInfo {
                media_type: Some(Arc::from("application/vnd.oci.image.manifest.v1+json")),
                artifact_type: None,
            }));
        }
        b.manifest("sha256:cc").media = Some(Box::default());
        let repo = b.build();
        let kind = |i: usize| {
            repo.manifests[i]
                .media
                .as_ref()
                .and_then(|m| m.media_type.clone())
        };
        let (a, b) = (kind(0), kind(1));
        assert!(a.is_some() && b.is_some());
        assert!(Arc::ptr_eq(a.as_ref().unwrap(), b.as_ref().unwrap()));
        assert_eq!(repo.manifests[2].media, None);
    }

    #[test]
    fn times_keep_their_order_and_the_epoch() {
        let epoch = Time::from(Timestamp::UNIX_EPOCH);
        assert_eq!(epoch.unix_seconds(), 0);
        assert!(Time::from_unix_seconds(-1) < epoch && epoch < Time::from_unix_seconds(1));
        assert_eq!(std::mem::size_of::<Option<Time>>(), 8);
    }
}
