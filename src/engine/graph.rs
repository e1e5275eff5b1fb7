//! Collecting the graph a decision needs beyond the tags: the indexes nested inside listed
//! indexes (an untagged index inside a tagged one), and the manifests the cluster runs by
//! digest that no tag points at any more (the index a Deployment still runs after `latest`
//! moved on), with everything they list.
//!
//! Requests: one `GET` per nested index and one `GET` per in-use digest the listing did not
//! reach (a 404 — the digest is not in this repository — is not an error). Nesting is
//! followed [`MAX_DEPTH`] levels deep; a deeper graph makes the repository incomplete, so
//! nothing in it is deleted (fail closed).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use futures::stream::{self, StreamExt};

use crate::oci::{self, Manifest, OciError, RegistryClient};
use crate::retention::graph::Graph;
use crate::retention::{InUse, Inventory, ManifestId, Repository, RepositoryBuilder};

/// How many levels of indexes inside indexes are followed.
pub const MAX_DEPTH: usize = 8;

/// GETs, level by level, every index listed by an index in `manifests` that is not in it
/// yet, until none is left (one that is gone, a 404, lists nothing and is left out). The
/// first failure is returned as the reason the repository is incomplete. Returns how many
/// manifests were fetched.
pub async fn fetch_nested(
    client: &RegistryClient,
    repo: &str,
    manifests: &mut BTreeMap<String, Manifest>,
    lookups: usize,
) -> Result<u64, String> {
    let mut fetched = 0u64;
    let mut gone: BTreeSet<String> = BTreeSet::new();
    for _ in 0..=MAX_DEPTH {
        let wanted: BTreeSet<String> = manifests
            .values()
            .flat_map(|m| m.children())
            .filter(|c| oci::media_types::is_index(c.media_type().as_ref()))
            .map(|c| c.digest().to_string())
            .filter(|d| !manifests.contains_key(d) && !gone.contains(d))
            .collect();
        if wanted.is_empty() {
            return Ok(fetched);
        }
        for (d, m) in fetch(client, repo, wanted, lookups).await? {
            match m {
                Some(m) => {
                    fetched += 1;
                    manifests.insert(d, m);
                }
                // A nested index that is gone (404) lists nothing that could need keeping.
                None => {
                    gone.insert(d);
                }
            }
        }
    }
    Err(format!(
        "indexes are nested more than {MAX_DEPTH} levels deep"
    ))
}

/// GETs each digest once: `None` for a 404.
async fn fetch(
    client: &RegistryClient,
    repo: &str,
    digests: BTreeSet<String>,
    lookups: usize,
) -> Result<Vec<(String, Option<Manifest>)>, String> {
    stream::iter(digests)
        .map(|d| async move {
            match client.get_manifest(repo, &d).await {
                Ok(m) => Ok((d, Some(m))),
                Err(OciError::NotFound { .. }) => Ok((d, None)),
                Err(e) => Err(format!("reading manifest {d} failed: {e}")),
            }
        })
        .buffer_unordered(lookups.max(1))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

/// Adds to each complete repository of `inventory` the manifests `in_use` runs by digest
/// that it does not know yet (with the indexes nested in them and every edge), so that the
/// planner sees what they need. A repository where such a read fails becomes incomplete.
/// Returns how many manifests were fetched.
pub async fn add_in_use(
    client: &RegistryClient,
    inventory: &mut Inventory,
    in_use: &InUse,
    lookups: usize,
) -> u64 {
    let mut fetched = 0;
    for repo in &mut inventory.repositories {
        fetched += add_in_use_to(client, repo, in_use, lookups).await;
    }
    fetched
}

/// [`add_in_use`] for one repository (a complete one; an incomplete one is left alone).
pub async fn add_in_use_to(
    client: &RegistryClient,
    repo: &mut Repository,
    in_use: &InUse,
    lookups: usize,
) -> u64 {
    if !repo.is_complete() || in_use.digests(&repo.name).next().is_none() {
        return 0;
    }
    let known: BTreeSet<String> = repo
        .manifests
        .iter()
        .filter(|m| {
            // An index known only from a descriptor has not been read: its children
            // are unknown.
            !(m.children.is_empty()
                && m.media
                    .as_ref()
                    .and_then(|x| x.media_type.as_deref())
                    .is_some_and(oci::media_types::is_index))
        })
        .map(|m| m.digest.to_string())
        .collect();
    let wanted: BTreeSet<String> = in_use
        .digests(&repo.name)
        .map(|d| d.to_string())
        .filter(|d| oci::digest::is_digest(d) && !known.contains(d))
        .collect();
    if wanted.is_empty() {
        return 0;
    }
    let mut fetched = 0;
    let name = repo.name.clone();
    let mut b = RepositoryBuilder::resume(std::mem::take(repo));
    match read_in_use(client, &name, wanted, lookups).await {
        Ok(manifests) => {
            fetched += manifests.len() as u64;
            for (digest, m) in &manifests {
                add(&mut b, digest, m);
            }
        }
        Err(why) => b.incomplete(&why),
    }
    *repo = b.build();
    fetched
}

async fn read_in_use(
    client: &RegistryClient,
    repo: &str,
    wanted: BTreeSet<String>,
    lookups: usize,
) -> Result<BTreeMap<String, Manifest>, String> {
    let mut manifests: BTreeMap<String, Manifest> = fetch(client, repo, wanted, lookups)
        .await?
        .into_iter()
        .filter_map(|(d, m)| m.map(|m| (d, m)))
        .collect();
    fetch_nested(client, repo, &mut manifests, lookups).await?;
    Ok(manifests)
}

/// Records one fetched manifest, its children and its subject.
fn add(b: &mut RepositoryBuilder, digest: &str, m: &Manifest) {
    let entry = b.manifest(digest);
    let media = entry.media.get_or_insert_with(Default::default);
    media.media_type = Some(Arc::from(m.media_type.as_str()));
    entry.size.get_or_insert(m.raw.len() as u64);
    for child in m.children() {
        let c = child.digest().to_string();
        b.child(digest, &c);
        let entry = b.manifest(&c);
        let media = entry.media.get_or_insert_with(Default::default);
        if media.media_type.is_none() {
            media.media_type = Some(Arc::from(child.media_type().to_string().as_str()));
        }
        entry.size.get_or_insert(child.size());
    }
    if let Some(subject) = m.subject() {
        b.subject(digest, subject.digest().as_ref());
    }
}

/// Every digest of repository `name` that what `in_use` runs there needs, with who runs it:
/// each digest run, every manifest it lists at any depth, and every index listing it at any
/// depth — as the planner protects them. The executor asks before a repository's deletions,
/// with the images in use as of then. Digests the inventory `repo` does not know (a Pod
/// started after the plan on an untagged index) are read, with what they list: one `GET`
/// each; a 404 is no error, another failure is returned.
pub async fn in_use_closure(
    client: &RegistryClient,
    name: &str,
    repo: Option<&Repository>,
    in_use: &InUse,
    lookups: usize,
) -> Result<HashMap<String, String>, String> {
    let mut needed: HashMap<String, String> = HashMap::new();
    let mut sources: Vec<(String, String)> = in_use
        .digests(name)
        .filter_map(|d| {
            let d = d.to_string();
            in_use
                .digest_user(name, &d)
                .map(|by| (d.clone(), by.to_string()))
        })
        .collect();
    if sources.is_empty() {
        return Ok(needed);
    }
    sources.sort();
    let empty = Repository::default();
    let repo = repo.unwrap_or(&empty);
    let ids: HashMap<String, ManifestId> = repo
        .manifests
        .iter()
        .enumerate()
        .map(|(i, m)| (m.digest.to_string(), ManifestId(i as u32)))
        .collect();
    let graph = Graph::new(repo);
    let mut mark = |d: String, by: &str| {
        needed.entry(d).or_insert_with(|| by.to_string());
    };
    let walk = |from: ManifestId, up: bool, mark: &mut dyn FnMut(String)| {
        let mut seen = HashSet::new();
        let mut stack = vec![from];
        while let Some(x) = stack.pop() {
            if !seen.insert(x) {
                continue;
            }
            if let Some(m) = repo.manifest(x) {
                mark(m.digest.to_string());
            }
            stack.extend(if up {
                graph.parents(x)
            } else {
                graph.children(x)
            });
        }
    };
    let mut unknown: BTreeMap<String, String> = BTreeMap::new();
    for (digest, by) in &sources {
        match ids.get(digest) {
            Some(id) => {
                walk(*id, true, &mut |d| mark(d, by));
                walk(*id, false, &mut |d| mark(d, by));
            }
            None if oci::digest::is_digest(digest) => {
                unknown.insert(digest.clone(), by.clone());
            }
            None => {}
        }
    }
    if unknown.is_empty() {
        return Ok(needed);
    }
    let read = read_in_use(client, name, unknown.keys().cloned().collect(), lookups).await?;
    // Who runs each fetched manifest: the first user whose digest reaches it.
    for (digest, by) in &unknown {
        let mut stack = vec![digest.clone()];
        let mut seen = HashSet::new();
        while let Some(d) = stack.pop() {
            if !seen.insert(d.clone()) {
                continue;
            }
            mark(d.clone(), by);
            if let Some(m) = read.get(&d) {
                stack.extend(m.children().iter().map(|c| c.digest().to_string()));
            } else if let Some(id) = ids.get(&d) {
                walk(*id, false, &mut |x| mark(x, by));
            }
        }
    }
    Ok(needed)
}
