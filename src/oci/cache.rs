//! A bounded memory of image config `created` times, by config digest.
//!
//! A config blob is content-addressed: the blob behind `sha256:…` is the same bytes in every
//! repository of every registry, so its `created` time never changes. Reading a config is the
//! most expensive request of an inventory (distribution 2.8 spends about twice the CPU on a
//! blob GET as on a manifest GET), so a long-lived process — the operator, whose scheduled
//! runs see mostly the same images again — keeps the times it has read and asks the registry
//! only for configs it has not seen.
//!
//! Only SHA-256 digests are remembered, and only after the client verified the blob against
//! its digest: a registry cannot plant a time for another registry's image. The memory is
//! bounded; when full, the oldest entries are forgotten first.

use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;

use hashbrown::HashTable;
use jiff::Timestamp;

use super::digest::sha256_bytes;

/// Entries kept by [`AgeCache::default`]: about 6 MiB when full (each entry its 32-byte key,
/// its time and a 4-byte slot in the index).
pub const DEFAULT_AGE_CACHE_ENTRIES: usize = 100_000;

/// Config `created` times by config digest, bounded, shared by every client it is given to
/// (see [`ClientOptions::age_cache`](super::ClientOptions::age_cache)).
pub struct AgeCache {
    capacity: usize,
    inner: Mutex<Entries>,
}

/// The remembered configs in a ring, in the order they were first remembered, and an index
/// of their slots by digest. Once the ring is full, the oldest slot is the next one written:
/// memory never grows past the capacity, and the index never needs more room.
#[derive(Default)]
struct Entries {
    ring: Vec<([u8; 32], Option<Timestamp>)>,
    /// The slot the next new config takes once the ring is full: the oldest.
    next: usize,
    index: HashTable<u32>,
    hasher: RandomState,
}

impl Entries {
    fn slot(&self, key: &[u8; 32]) -> Option<usize> {
        let hash = self.hasher.hash_one(key);
        self.index
            .find(hash, |&i| self.ring[i as usize].0 == *key)
            .map(|&i| i as usize)
    }
}

impl Default for AgeCache {
    fn default() -> Self {
        AgeCache::new(DEFAULT_AGE_CACHE_ENTRIES)
    }
}

impl std::fmt::Debug for AgeCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgeCache")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish()
    }
}

impl AgeCache {
    /// A cache remembering at most `capacity` configs (0 remembers nothing).
    pub fn new(capacity: usize) -> Self {
        AgeCache {
            // Slots are numbered with 32 bits.
            capacity: capacity.min(u32::MAX as usize),
            inner: Mutex::new(Entries::default()),
        }
    }

    /// The remembered `created` of `config_digest`: `Some(None)` when the config is known to
    /// have none, `None` when it was never read (or was forgotten).
    pub fn get(&self, config_digest: &str) -> Option<Option<Timestamp>> {
        let key = sha256_bytes(config_digest)?;
        let e = self.lock();
        e.slot(&key).map(|i| e.ring[i].1)
    }

    /// Remembers the `created` of a config whose bytes were verified against `config_digest`.
    /// Digests other than SHA-256 are not remembered.
    pub fn insert(&self, config_digest: &str, created: Option<Timestamp>) {
        let Some(key) = sha256_bytes(config_digest) else {
            return;
        };
        if self.capacity == 0 {
            return;
        }
        let mut guard = self.lock();
        let e = &mut *guard;
        if let Some(i) = e.slot(&key) {
            e.ring[i].1 = created;
            return;
        }
        let slot = if e.ring.len() < self.capacity {
            if e.ring.len() == e.ring.capacity() {
                let more = e.ring.len().max(16).min(self.capacity - e.ring.len());
                e.ring.reserve_exact(more);
            }
            e.ring.push((key, created));
            e.ring.len() - 1
        } else {
            // Full: the oldest config is forgotten, and its slot is the new one's.
            let slot = e.next;
            e.next = (slot + 1) % self.capacity;
            let old = e.hasher.hash_one(e.ring[slot].0);
            if let Ok(entry) = e.index.find_entry(old, |&i| i as usize == slot) {
                entry.remove();
            }
            e.ring[slot] = (key, created);
            slot
        };
        let (ring, hasher) = (&e.ring, &e.hasher);
        e.index
            .insert_unique(hasher.hash_one(key), slot as u32, |&i| {
                hasher.hash_one(ring[i as usize].0)
            });
    }

    /// Configs remembered now.
    pub fn len(&self) -> usize {
        self.lock().ring.len()
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets everything.
    pub fn clear(&self) {
        let mut e = self.lock();
        e.ring = Vec::new();
        e.index = HashTable::new();
        e.next = 0;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // A panic while holding the lock cannot leave the entries inconsistent in a way that
        // matters (at worst a slot the index does not find), so poisoning is ignored.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(n: u8) -> String {
        format!("sha256:{}", format!("{n:02x}").repeat(32))
    }

    #[test]
    fn remembers_times_and_configs_without_one() {
        let c = AgeCache::new(10);
        let t: Timestamp = "2026-01-02T03:04:05Z".parse().unwrap();
        assert_eq!(c.get(&digest(1)), None);
        c.insert(&digest(1), Some(t));
        c.insert(&digest(2), None);
        assert_eq!(c.get(&digest(1)), Some(Some(t)));
        assert_eq!(c.get(&digest(2)), Some(None));
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn forgets_the_oldest_when_full() {
        let c = AgeCache::new(2);
        c.insert(&digest(1), None);
        c.insert(&digest(2), None);
        c.insert(&digest(1), None); // already there: not a new entry
        c.insert(&digest(3), None);
        assert_eq!(c.len(), 2);
        assert_eq!(c.get(&digest(1)), None, "the oldest entry goes first");
        assert_eq!(c.get(&digest(2)), Some(None));
        assert_eq!(c.get(&digest(3)), Some(None));
    }

    #[test]
    fn after_many_configs_it_holds_exactly_the_newest_ones() {
        let c = AgeCache::new(100);
        let key = |n: u32| format!("sha256:{:064x}", n);
        for n in 0..1_000u32 {
            c.insert(&key(n), None);
            // Seen again while remembered: still one entry, its place unchanged.
            if n >= 10 {
                c.insert(&key(n - 10), None);
            }
        }
        assert_eq!(c.len(), 100);
        assert!((0..900).all(|n| c.get(&key(n)).is_none()));
        assert!((900..1_000).all(|n| c.get(&key(n)) == Some(None)));
    }

    #[test]
    fn only_well_formed_sha256_digests_are_remembered() {
        let c = AgeCache::new(10);
        for d in [
            "sha512:".to_string() + &"ab".repeat(64),
            "sha256:ABCD".to_string(),
            "sha256:".to_string() + &"zz".repeat(32),
            "sha256:".to_string() + &"AB".repeat(32),
        ] {
            c.insert(&d, None);
            assert_eq!(c.get(&d), None, "{d}");
        }
        assert!(c.is_empty());
        let zero = AgeCache::new(0);
        zero.insert(&digest(1), None);
        assert!(zero.is_empty(), "capacity 0 remembers nothing");
    }
}
