//! The manifest graph of one repository, with every edge in both directions — the indexes
//! listing a manifest, the subjects a referrer refers to (its own `subject` and every subject
//! its `sha256-<hex>` tags name), the referrers of a subject — and the one question a
//! deletion asks of it: *what else still needs this manifest?*
//!
//! The planner decides which manifests go by digest; [`veto`] then takes back every one that
//! something staying still needs (a tag on it that stays, an index listing it that stays, a
//! subject of it that stays, a reference in use), until nothing staying needs anything
//! going. It is the last word: whatever the earlier steps decided, a manifest that anything
//! kept, protected or running still needs is never deleted (DESIGN invariants 2 and 9).

use std::collections::HashMap;
use std::fmt;

use super::inventory::{Digest, ManifestId, Repository, TagName};
use super::name::SharedName;

/// Adjacency lists of one relation, packed: `items[offsets[i]..offsets[i + 1]]`.
#[derive(Debug, Clone, Default)]
struct Lists {
    offsets: Vec<u32>,
    items: Vec<ManifestId>,
}

impl Lists {
    /// Packs `(from, to)` pairs over `n` nodes; duplicates are dropped.
    fn new(n: usize, mut edges: Vec<(ManifestId, ManifestId)>) -> Lists {
        if edges.is_empty() {
            return Lists::default();
        }
        edges.sort_unstable();
        edges.dedup();
        let mut offsets = vec![0u32; n + 1];
        for (from, _) in &edges {
            offsets[from.index() + 1] += 1;
        }
        for i in 0..n {
            offsets[i + 1] += offsets[i];
        }
        Lists {
            offsets,
            items: edges.into_iter().map(|(_, to)| to).collect(),
        }
    }

    fn of(&self, id: ManifestId) -> &[ManifestId] {
        let i = id.index();
        match (self.offsets.get(i), self.offsets.get(i + 1)) {
            (Some(&a), Some(&b)) => &self.items[a as usize..b as usize],
            _ => &[],
        }
    }
}

/// Every edge of a repository's manifests, both ways.
#[derive(Debug, Clone, Default)]
pub struct Graph {
    children: Lists,
    parents: Lists,
    subjects: Lists,
    referrers: Lists,
}

impl Graph {
    /// The graph of `repo` (ids out of range are left out: the planner refuses such
    /// inventories before asking).
    pub fn new(repo: &Repository) -> Graph {
        let n = repo.manifests.len();
        let ok = |id: ManifestId| id.index() < n;
        let mut children = Vec::new();
        let mut subjects = Vec::new();
        for (i, m) in repo.manifests.iter().enumerate() {
            let id = ManifestId(i as u32);
            children.extend(m.children.iter().filter(|c| ok(**c)).map(|c| (id, *c)));
            if let Some(s) = m.subject.filter(|s| ok(*s)) {
                subjects.push((id, s));
            }
        }
        for t in &repo.tags {
            if let Some(s) = t.subject.filter(|s| ok(*s) && ok(t.manifest)) {
                subjects.push((t.manifest, s));
            }
        }
        let flip = |v: &[(ManifestId, ManifestId)]| v.iter().map(|(a, b)| (*b, *a)).collect();
        Graph {
            parents: Lists::new(n, flip(&children)),
            referrers: Lists::new(n, flip(&subjects)),
            children: Lists::new(n, children),
            subjects: Lists::new(n, subjects),
        }
    }

    /// The manifests `id` lists (an index's children).
    pub fn children(&self, id: ManifestId) -> &[ManifestId] {
        self.children.of(id)
    }

    /// The indexes listing `id`.
    pub fn parents(&self, id: ManifestId) -> &[ManifestId] {
        self.parents.of(id)
    }

    /// Every subject `id` refers to: its own `subject` and those its referrer tags name.
    pub fn subjects(&self, id: ManifestId) -> &[ManifestId] {
        self.subjects.of(id)
    }

    /// The referrers of `id`.
    pub fn referrers(&self, id: ManifestId) -> &[ManifestId] {
        self.referrers.of(id)
    }
}

/// What still needs a manifest, so that it is not deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// A tag on it stays.
    Tag(TagName),
    /// An index that stays lists it.
    Index(Digest),
    /// It is a referrer (signature, SBOM) of this subject, which stays.
    Subject(Digest),
    /// Something in the cluster runs it, an index listing it, or an image it lists.
    InUse {
        /// Who (`Pod team-a/web-7f9`).
        by: SharedName,
        /// The digest it runs.
        digest: Digest,
    },
}

impl fmt::Display for Need {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Need::Tag(t) => write!(f, "tag {t} stays on it"),
            Need::Index(d) => write!(f, "index {}, which stays, lists it", d.short()),
            Need::Subject(d) => write!(f, "it is also a referrer of {}, which stays", d.short()),
            Need::InUse { by, digest } => write!(f, "in use by {by} (as {})", digest.short()),
        }
    }
}

/// Who runs each manifest of a repository by digest ([`digest_users`]): four bytes per
/// manifest and the few users by digest, rather than a user per manifest.
#[derive(Debug, Clone, Default)]
pub struct DigestUsers {
    /// Per manifest, the index in `sources` of its first user, or [`NOBODY`].
    of: Vec<u32>,
    /// The manifests run by digest, with their users, in order.
    sources: Vec<(SharedName, Digest)>,
}

const NOBODY: u32 = u32::MAX;

impl DigestUsers {
    /// Who runs `id` (itself, an index listing it or an image it lists), and as which digest.
    pub fn get(&self, id: ManifestId) -> Option<(&SharedName, &Digest)> {
        let i = *self.of.get(id.index())?;
        self.sources.get(i as usize).map(|(by, d)| (by, d))
    }

    /// Whether nothing in the repository is run by digest.
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }
}

/// Who runs each manifest of `repo` by digest — itself, an index that lists it at any depth,
/// or a manifest it lists at any depth — as the first `(user, digest)` pair in order, so the
/// answer does not depend on listing order. Empty when nothing in the repository is run by
/// digest.
pub fn digest_users(
    repo: &Repository,
    graph: &Graph,
    users: &HashMap<Digest, SharedName>,
) -> DigestUsers {
    let mut sources: Vec<(SharedName, Digest, ManifestId)> = repo
        .manifests
        .iter()
        .enumerate()
        .filter_map(|(i, m)| {
            users
                .get(&m.digest)
                .map(|by| (by.clone(), m.digest.clone(), ManifestId(i as u32)))
        })
        .collect();
    if sources.is_empty() {
        return DigestUsers::default();
    }
    sources.sort();
    let n = repo.manifests.len();
    // Sources are sorted: the first source reaching a node is the one with the least index.
    let mut of = vec![NOBODY; n];
    // Up (indexes listing a run image) and down (images a run index lists), each node
    // labelled by the first source that reaches it; a node already reached in the same
    // direction by an earlier source has had everything beyond it reached too.
    for up in [true, false] {
        let mut seen = vec![false; n];
        let mut stack = Vec::new();
        for (s, (_, _, id)) in sources.iter().enumerate() {
            let s = s as u32;
            stack.push(*id);
            while let Some(x) = stack.pop() {
                if std::mem::replace(&mut seen[x.index()], true) {
                    continue;
                }
                let slot = &mut of[x.index()];
                *slot = (*slot).min(s);
                let next = if up {
                    graph.parents(x)
                } else {
                    graph.children(x)
                };
                stack.extend(next.iter().copied().filter(|y| !seen[y.index()]));
            }
        }
    }
    DigestUsers {
        of,
        sources: sources.into_iter().map(|(by, d, _)| (by, d)).collect(),
    }
}

/// Takes back every deletion that something staying still needs, until none is left: a
/// manifest in `going` stays when `staying_tag` names a tag on it that stays, when `in_use`
/// (from [`digest_users`]) names a user, when an index listing it stays, or when one of its
/// subjects stays. Taking one back can make others needed (the images the index lists, the
/// referrers of the subject), which are looked at again. Returns why each manifest was
/// taken back, by id.
pub fn veto(
    repo: &Repository,
    graph: &Graph,
    going: &mut [bool],
    staying_tag: &[Option<TagName>],
    in_use: &DigestUsers,
) -> HashMap<ManifestId, Need> {
    let digest = |id: ManifestId| repo.manifests[id.index()].digest.clone();
    let need = |x: ManifestId, going: &[bool]| -> Option<Need> {
        if let Some(Some(t)) = staying_tag.get(x.index()) {
            return Some(Need::Tag(t.clone()));
        }
        if let Some((by, d)) = in_use.get(x) {
            return Some(Need::InUse {
                by: by.clone(),
                digest: d.clone(),
            });
        }
        let first_staying = |ids: &[ManifestId]| {
            ids.iter()
                .filter(|p| !going[p.index()])
                .map(|p| digest(*p))
                .min()
        };
        if let Some(p) = first_staying(graph.parents(x)) {
            return Some(Need::Index(p));
        }
        first_staying(graph.subjects(x)).map(Need::Subject)
    };
    let mut vetoed = HashMap::new();
    let mut work: Vec<ManifestId> = (0..going.len())
        .filter(|&i| going[i])
        .map(|i| ManifestId(i as u32))
        .collect();
    // Each manifest is taken back at most once and then adds its neighbours: this ends.
    while let Some(x) = work.pop() {
        if !going[x.index()] {
            continue;
        }
        let Some(why) = need(x, going) else { continue };
        going[x.index()] = false;
        vetoed.insert(x, why);
        work.extend(graph.children(x).iter().copied());
        work.extend(graph.referrers(x).iter().copied());
    }
    vetoed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retention::inventory::RepositoryBuilder;

    fn hex(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn id(repo: &Repository, c: char) -> ManifestId {
        let i = repo
            .manifests
            .iter()
            .position(|m| m.digest.to_string() == hex(c))
            .unwrap();
        ManifestId(i as u32)
    }

    #[test]
    fn a_manifest_an_untagged_index_inside_a_staying_index_lists_is_taken_back() {
        let mut b = RepositoryBuilder::new("r");
        b.child(&hex('1'), &hex('2'));
        b.child(&hex('2'), &hex('3'));
        b.tag("stable", &hex('1'));
        b.tag("old", &hex('3'));
        let repo = b.build();
        let g = Graph::new(&repo);
        let mut going = vec![false; repo.manifests.len()];
        going[id(&repo, '3').index()] = true;
        let no_tags = vec![None; going.len()];
        let why = veto(&repo, &g, &mut going, &no_tags, &DigestUsers::default());
        assert!(going.iter().all(|g| !g));
        assert_eq!(
            why.get(&id(&repo, '3')),
            Some(&Need::Index(Digest::new(&hex('2'))))
        );
    }

    #[test]
    fn a_referrer_of_two_subjects_is_taken_back_while_one_stays_and_so_are_its_referrers() {
        let sig = |c: char| format!("sha256-{}.sbom", c.to_string().repeat(64));
        let mut b = RepositoryBuilder::new("r");
        b.tag("a", &hex('a'));
        b.tag("b", &hex('b'));
        b.tag(&sig('a'), &hex('5'));
        b.tag(&sig('b'), &hex('5'));
        b.subject(&hex('6'), &hex('5'));
        let repo = b.build();
        let g = Graph::new(&repo);
        let mut going = vec![false; repo.manifests.len()];
        for c in ['a', '5', '6'] {
            going[id(&repo, c).index()] = true;
        }
        let no_tags = vec![None; going.len()];
        let why = veto(&repo, &g, &mut going, &no_tags, &DigestUsers::default());
        assert!(going[id(&repo, 'a').index()]);
        assert!(!going[id(&repo, '5').index()] && !going[id(&repo, '6').index()]);
        assert_eq!(
            why.get(&id(&repo, '5')),
            Some(&Need::Subject(Digest::new(&hex('b'))))
        );
        assert_eq!(
            why.get(&id(&repo, '6')),
            Some(&Need::Subject(Digest::new(&hex('5'))))
        );
    }

    #[test]
    fn users_of_an_index_reach_its_images_and_users_of_an_image_its_indexes() {
        let mut b = RepositoryBuilder::new("r");
        b.child(&hex('1'), &hex('2'));
        b.child(&hex('2'), &hex('3'));
        b.id(&hex('4'));
        let repo = b.build();
        let g = Graph::new(&repo);
        let mut users = HashMap::new();
        users.insert(
            Digest::new(&hex('2')),
            crate::retention::decision::shared_name("Pod a/b"),
        );
        let found = digest_users(&repo, &g, &users);
        for c in ['1', '2', '3'] {
            assert_eq!(
                found.get(id(&repo, c)),
                Some((
                    &crate::retention::decision::shared_name("Pod a/b"),
                    &Digest::new(&hex('2'))
                ))
            );
        }
        assert_eq!(found.get(id(&repo, '4')), None);
    }
}
