//! The digests of one repository, computed when the repository is first asked for and kept
//! in a small cache of recently used repositories: what turns a digest in a request back
//! into the image it belongs to.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::content::{empty_digest, Flavor, Kind, RepoId, Shape};

/// A digest as bytes.
pub type Hash = [u8; 32];

/// `sha256:<hex>` to bytes.
pub fn parse_digest(d: &str) -> Option<Hash> {
    let hex_part = d.strip_prefix("sha256:")?;
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_part, &mut out).ok()?;
    Some(out)
}

fn hash_of(digest: &str) -> Hash {
    parse_digest(digest).unwrap_or([0; 32])
}

/// What the table knows of one image.
#[derive(Debug, Clone)]
pub struct ImageRec {
    /// Digest of its manifest or index.
    pub top: Hash,
    /// Whether it is an index.
    pub index: bool,
    /// The children of an index (amd64, arm64).
    pub children: Option<Box<[Hash; 2]>>,
    /// Its signature's digest and size, when signed.
    pub signature: Option<(Hash, u32)>,
}

/// The digests of one repository.
#[derive(Debug)]
pub struct Table {
    /// Every digest with what it names, sorted by digest.
    entries: Vec<(Hash, u64, Kind)>,
    /// Per image.
    pub images: Vec<ImageRec>,
    /// Signature tags (distribution flavor) and their image, sorted by tag.
    pub signature_tags: Vec<(String, u64)>,
}

impl Table {
    /// Builds the table of `repo`.
    pub fn build(shape: &Shape, repo: RepoId) -> Table {
        let n = shape.image_count(repo);
        let mut entries = Vec::with_capacity(n as usize * 4);
        let mut images = Vec::with_capacity(n as usize);
        let mut signature_tags = Vec::new();
        for i in 0..n {
            let index = shape.is_index(repo, i);
            let top;
            let mut children = None;
            if index {
                let a = shape.image_parts(repo, i, 0);
                let b = shape.image_parts(repo, i, 1);
                for (arch, parts) in [(0u8, &a), (1u8, &b)] {
                    entries.push((hash_of(&parts[0].digest), i, Kind::Layer(arch)));
                    entries.push((hash_of(&parts[1].digest), i, Kind::Config(arch)));
                    entries.push((hash_of(&parts[2].digest), i, Kind::Child(arch)));
                }
                children = Some(Box::new([hash_of(&a[2].digest), hash_of(&b[2].digest)]));
                let [_, _, ma] = a;
                let [_, _, mb] = b;
                top = shape.index_of(repo, i, &[ma, mb]);
            } else {
                let [layer, config, manifest] = shape.image_parts(repo, i, 0);
                entries.push((hash_of(&layer.digest), i, Kind::Layer(0)));
                entries.push((hash_of(&config.digest), i, Kind::Config(0)));
                top = manifest;
            }
            entries.push((hash_of(&top.digest), i, Kind::Top));
            let mut signature = None;
            if shape.is_signed(repo, i) {
                let payload = shape.signature_payload(repo, i, &top.digest);
                let sig = shape.signature_of(repo, i, &top);
                entries.push((hash_of(&payload.digest), i, Kind::SignaturePayload));
                entries.push((hash_of(&sig.digest), i, Kind::Signature));
                signature = Some((hash_of(&sig.digest), sig.bytes.len() as u32));
                if shape.flavor == Flavor::Distribution {
                    signature_tags.push((Shape::signature_tag(&top.digest), i));
                }
            }
            images.push(ImageRec {
                top: hash_of(&top.digest),
                index,
                children,
                signature,
            });
        }
        if images.iter().any(|i| i.signature.is_some()) {
            entries.push((hash_of(&empty_digest()), 0, Kind::Empty));
        }
        entries.sort_unstable_by_key(|e| e.0);
        entries.dedup_by(|a, b| a.0 == b.0);
        signature_tags.sort();
        Table {
            entries,
            images,
            signature_tags,
        }
    }

    /// A table of nothing: for listings that need no digest.
    pub fn empty() -> Table {
        Table {
            entries: Vec::new(),
            images: Vec::new(),
            signature_tags: Vec::new(),
        }
    }

    /// What a digest names: (image, kind).
    pub fn lookup(&self, digest: &Hash) -> Option<(u64, Kind)> {
        let at = self.entries.binary_search_by(|e| e.0.cmp(digest)).ok()?;
        let (_, i, k) = self.entries[at];
        Some((i, k))
    }

    /// The image a signature tag names.
    pub fn signature_tag(&self, tag: &str) -> Option<u64> {
        let at = self
            .signature_tags
            .binary_search_by(|(t, _)| t.as_str().cmp(tag))
            .ok()?;
        Some(self.signature_tags[at].1)
    }
}

struct Slot {
    table: OnceLock<Arc<Table>>,
}

/// The tables of recently used repositories, and the deletions (the only state that grows
/// with use: one entry per DELETE).
pub struct Store {
    shape: Shape,
    capacity: usize,
    clock: AtomicU64,
    tables: Mutex<HashMap<RepoId, (Arc<Slot>, u64)>>,
    any_deleted: AtomicBool,
    deleted_manifests: Mutex<HashSet<(RepoId, Hash)>>,
    deleted_tags: Mutex<HashSet<(RepoId, u64)>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Store {
    /// A store for `shape` keeping the tables of at most `capacity` repositories.
    pub fn new(shape: Shape, capacity: usize) -> Store {
        Store {
            shape,
            capacity: capacity.max(1),
            clock: AtomicU64::new(0),
            tables: Mutex::new(HashMap::new()),
            any_deleted: AtomicBool::new(false),
            deleted_manifests: Mutex::new(HashSet::new()),
            deleted_tags: Mutex::new(HashSet::new()),
        }
    }

    /// The shape served.
    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    /// The table of `repo`, built on first use (one builder; others wait for it).
    pub fn table(&self, repo: RepoId) -> Arc<Table> {
        let now = self.clock.fetch_add(1, Ordering::Relaxed);
        let slot = {
            let mut tables = lock(&self.tables);
            if let Some((slot, used)) = tables.get_mut(&repo) {
                *used = now;
                slot.clone()
            } else {
                if tables.len() >= self.capacity {
                    if let Some(oldest) =
                        tables.iter().min_by_key(|(_, (_, u))| *u).map(|(r, _)| *r)
                    {
                        tables.remove(&oldest);
                    }
                }
                let slot = Arc::new(Slot {
                    table: OnceLock::new(),
                });
                tables.insert(repo, (slot.clone(), now));
                slot
            }
        };
        slot.table
            .get_or_init(|| Arc::new(Table::build(&self.shape, repo)))
            .clone()
    }

    /// Whether anything was deleted at all (lets the common case skip the sets).
    pub fn any_deleted(&self) -> bool {
        self.any_deleted.load(Ordering::Relaxed)
    }

    /// Whether a manifest was deleted by digest.
    pub fn manifest_deleted(&self, repo: RepoId, digest: &Hash) -> bool {
        self.any_deleted() && lock(&self.deleted_manifests).contains(&(repo, *digest))
    }

    /// Whether tag `k` was deleted on its own (zot).
    pub fn tag_deleted(&self, repo: RepoId, k: u64) -> bool {
        self.any_deleted() && lock(&self.deleted_tags).contains(&(repo, k))
    }

    /// Records a deletion by digest; false when it was already gone.
    pub fn delete_manifest(&self, repo: RepoId, digest: Hash) -> bool {
        self.any_deleted.store(true, Ordering::Relaxed);
        lock(&self.deleted_manifests).insert((repo, digest))
    }

    /// Records the deletion of tag `k`; false when it was already gone.
    pub fn delete_tag(&self, repo: RepoId, k: u64) -> bool {
        self.any_deleted.store(true, Ordering::Relaxed);
        lock(&self.deleted_tags).insert((repo, k))
    }

    /// Deletions recorded: (manifests by digest, tags).
    pub fn deletions(&self) -> (usize, usize) {
        (
            lock(&self.deleted_manifests).len(),
            lock(&self.deleted_tags).len(),
        )
    }
}
