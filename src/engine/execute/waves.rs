//! One repository's mutations: the checks that hold deletions back (tags added since the
//! listing, the fence, images in use now), then waves of the mutations whose dependencies
//! are settled.

use std::collections::{HashMap, HashSet};

use futures::stream::{self, StreamExt};

use super::attempt::run_one;
use super::gate::{DeleteGate, Gate};
use super::{InUseSource, Interruption, ItemResult, Progress};
use crate::oci::RegistryClient;
use crate::retention::{InUse, Mutation, Repository};

/// What every repository of one execution shares.
pub(super) struct Shared<'a> {
    pub(super) client: &'a RegistryClient,
    pub(super) in_use: Option<&'a InUseSource>,
    pub(super) fence: Option<&'a Gate>,
    pub(super) deletes: &'a DeleteGate,
    /// Deletions in flight in one repository.
    pub(super) in_flight: usize,
    pub(super) progress: Option<Progress>,
    /// Mutations of the whole plan, for the progress callback.
    pub(super) total: u64,
}

/// One repository's mutations and what the inventory knows of it.
pub(super) struct RepositoryInput<'a> {
    pub(super) repository: &'a str,
    /// The mutations, each with its position in the plan.
    pub(super) items: Vec<(usize, &'a Mutation)>,
    /// Digest → the indexes that list it.
    pub(super) parents: &'a HashMap<String, Vec<String>>,
    /// The tags the listing saw.
    pub(super) listed: &'a HashSet<&'a str>,
    pub(super) inventory: Option<&'a Repository>,
}

/// Where one repository's run stands: which digests are settled (and whether they went) and
/// the results so far, each with its position in the plan.
struct Ledger {
    settled: HashMap<String, bool>,
    out: Vec<(usize, ItemResult)>,
    progress: Option<Progress>,
    total: u64,
}

impl Ledger {
    /// Item `i` is finished with `r`, and reported to the progress callback.
    fn report(&mut self, i: usize, r: ItemResult) {
        if let Some(p) = &self.progress {
            p(1, self.total);
        }
        self.out.push((i, r));
    }

    /// `m` (item `i`) is held back with `r`: what it would delete stays, and whatever waits
    /// for it is blocked.
    fn hold(&mut self, i: usize, m: &Mutation, r: ItemResult) {
        self.settled.insert(m.digest().to_string(), false);
        self.report(i, r);
    }
}

/// Runs one repository's mutations: those whose dependencies are settled go together, in
/// waves, until none is left.
pub(super) async fn run_repository(
    shared: &Shared<'_>,
    input: RepositoryInput<'_>,
) -> Vec<(usize, ItemResult)> {
    let RepositoryInput {
        repository,
        mut items,
        parents,
        listed,
        inventory,
    } = input;
    let plan = Doomed::of(&items);
    let mut ledger = Ledger {
        settled: HashMap::new(),
        out: Vec::with_capacity(items.len()),
        progress: shared.progress.clone(),
        total: shared.total,
    };
    // Deleting by digest removes every tag on the manifest, also one added since the
    // listing: look for new tags first, and keep the manifests they point at.
    if !plan.deleting.is_empty() {
        hold_newly_tagged(shared, repository, listed, &plan, &mut items, &mut ledger).await;
    }
    if let Some(gate) = shared.fence {
        if let Err(why) = gate.check().await {
            for (i, m) in items {
                let r = ItemResult::Interrupted {
                    by: Interruption::NotLeader,
                    message: why.clone(),
                };
                ledger.hold(i, m, r);
            }
            return ledger.out;
        }
    }
    if let Some(source) = shared.in_use {
        hold_in_use(
            shared,
            source,
            repository,
            inventory,
            &mut items,
            &mut ledger,
        )
        .await;
    }
    let pending: Vec<(usize, &Mutation, Vec<String>)> = items
        .into_iter()
        .map(|(i, m)| (i, m, plan.dependencies(m, parents)))
        .collect();
    run_waves(shared, pending, &mut ledger).await;
    ledger.out
}

/// The digests a repository's mutations remove.
struct Doomed {
    /// Digests this plan deletes in the repository: only those are waited for.
    deleting: HashSet<String>,
    /// Digests whose tags this plan deletes one by one (zot): a referrer of one waits for
    /// them, and is skipped if one of them did not happen.
    untagging: HashSet<String>,
}

impl Doomed {
    fn of(items: &[(usize, &Mutation)]) -> Doomed {
        let mut doomed = Doomed {
            deleting: HashSet::new(),
            untagging: HashSet::new(),
        };
        for (_, m) in items {
            match m {
                Mutation::DeleteManifest { digest, .. } => {
                    doomed.deleting.insert(digest.to_string())
                }
                Mutation::DeleteTag { digest, .. } => doomed.untagging.insert(digest.to_string()),
            };
        }
        doomed
    }

    /// The deletions `m` waits for: the indexes listing it and its subject, where this plan
    /// deletes them.
    fn dependencies(&self, m: &Mutation, parents: &HashMap<String, Vec<String>>) -> Vec<String> {
        match m {
            Mutation::DeleteTag { .. } => Vec::new(),
            Mutation::DeleteManifest {
                digest, subject, ..
            } => {
                let mut d: Vec<String> = parents
                    .get(&digest.to_string())
                    .into_iter()
                    .flatten()
                    .filter(|p| self.deleting.contains(*p) && **p != digest.to_string())
                    .map(|p| p.to_string())
                    .collect();
                if let Some(s) = subject.as_ref().filter(|s| {
                    self.deleting.contains(&s.to_string())
                        || self.untagging.contains(&s.to_string())
                }) {
                    d.push(s.to_string());
                }
                d
            }
        }
    }
}

/// Holds back every manifest deletion whose digest a tag the plan does not delete now points
/// at. Fails closed: without a fresh listing no digest is deleted here (tag deletions touch
/// nothing else and go on).
async fn hold_newly_tagged(
    shared: &Shared<'_>,
    repository: &str,
    listed: &HashSet<&str>,
    plan: &Doomed,
    items: &mut Vec<(usize, &Mutation)>,
    ledger: &mut Ledger,
) {
    let going: HashSet<&str> = items
        .iter()
        .flat_map(|(_, m)| match m {
            Mutation::DeleteManifest { tags, .. } => tags.iter().map(|t| &**t).collect(),
            Mutation::DeleteTag { tag, .. } => vec![&**tag],
        })
        .collect();
    let found = new_tags_on(
        shared.client,
        repository,
        listed,
        &going,
        &plan.deleting,
        shared.in_flight,
    )
    .await;
    items.retain(|(i, m)| {
        let Mutation::DeleteManifest { digest, .. } = m else {
            return true;
        };
        let r = match &found {
            Ok(tagged) => match tagged.get(&digest.to_string()) {
                Some(tag) => ItemResult::Tagged { tag: tag.clone() },
                None => return true,
            },
            Err(reason) => ItemResult::Failed {
                reason: reason.clone(),
            },
        };
        ledger.hold(*i, m, r);
        false
    });
}

/// Pods started since the plan: holds back what they use, and what that needs (an in-memory
/// lookup; a `GET` only for a digest in use that the inventory does not know). When that
/// cannot be vouched for, nothing left is deleted.
async fn hold_in_use(
    shared: &Shared<'_>,
    source: &InUseSource,
    repository: &str,
    inventory: Option<&Repository>,
    items: &mut Vec<(usize, &Mutation)>,
    ledger: &mut Ledger,
) {
    let now = source(&|r| r == repository);
    let needed = match &now {
        Ok(in_use) => super::super::graph::in_use_closure(
            shared.client,
            repository,
            inventory,
            in_use,
            shared.in_flight,
        )
        .await
        .map_err(|why| format!("reading what the images in use need: {why}")),
        Err(why) => Err(format!("images in use cannot be checked: {why}")),
    };
    items.retain(|(i, m)| {
        let verdict = match (&now, &needed) {
            (Ok(in_use), Ok(needed)) => used_by(in_use, m)
                .or_else(|| needed.get(&m.digest().to_string()).cloned())
                .map(|by| ItemResult::InUse { by }),
            (_, Err(why)) => Some(ItemResult::Interrupted {
                by: Interruption::InUseUnknown,
                message: why.clone(),
            }),
            (Err(why), Ok(_)) => Some(ItemResult::Interrupted {
                by: Interruption::InUseUnknown,
                message: format!("images in use cannot be checked: {why}"),
            }),
        };
        let Some(r) = verdict else {
            return true;
        };
        ledger.hold(*i, m, r);
        false
    });
}

/// Runs the mutations in waves: each wave sends every mutation whose dependencies went,
/// and blocks those with a dependency that did not.
async fn run_waves(
    shared: &Shared<'_>,
    mut pending: Vec<(usize, &Mutation, Vec<String>)>,
    ledger: &mut Ledger,
) {
    // Each wave settles at least one item, so this ends within `pending.len()` waves.
    for _ in 0..=pending.len() {
        if pending.is_empty() {
            break;
        }
        let mut ready = Vec::new();
        let mut waiting = Vec::new();
        for (i, m, d) in pending {
            if let Some(failed) = d.iter().find(|x| ledger.settled.get(*x) == Some(&false)) {
                let r = ItemResult::Blocked {
                    waiting_for: failed.clone(),
                };
                if let Mutation::DeleteManifest { digest, .. } = m {
                    ledger.settled.insert(digest.to_string(), false);
                }
                ledger.report(i, r);
            } else if d.iter().all(|x| ledger.settled.contains_key(x)) {
                ready.push((i, m));
            } else {
                waiting.push((i, m, d));
            }
        }
        if ready.is_empty() && !waiting.is_empty() {
            // A cycle (cannot happen with a consistent plan): fail closed.
            for (i, _, _) in waiting {
                ledger.out.push((
                    i,
                    ItemResult::Failed {
                        reason: "its dependencies form a cycle".to_string(),
                    },
                ));
            }
            break;
        }
        run_wave(shared, ready, ledger).await;
        pending = waiting;
    }
}

/// Sends one wave's mutations, at most `in_flight` at a time, and settles them.
async fn run_wave(shared: &Shared<'_>, ready: Vec<(usize, &Mutation)>, ledger: &mut Ledger) {
    // Built eagerly (see `execute`): keeps this future Send for any lifetime.
    let work: Vec<_> = ready
        .into_iter()
        .map(|(i, m)| {
            run_one_reporting(
                shared.client,
                i,
                m,
                shared.deletes,
                shared.fence,
                shared.progress.clone(),
                shared.total,
            )
        })
        .collect();
    let done: Vec<(usize, &Mutation, ItemResult)> = stream::iter(work)
        .buffer_unordered(shared.in_flight)
        .collect()
        .await;
    for (i, m, r) in done {
        match m {
            Mutation::DeleteManifest { digest, .. } => {
                ledger.settled.insert(digest.to_string(), r.is_done());
            }
            Mutation::DeleteTag { digest, .. } => {
                let ok = ledger.settled.get(&digest.to_string()).is_none_or(|ok| *ok);
                ledger.settled.insert(digest.to_string(), ok && r.is_done());
            }
        }
        ledger.out.push((i, r));
    }
}

/// Runs one mutation and reports it to the progress callback.
async fn run_one_reporting<'a>(
    client: &RegistryClient,
    i: usize,
    m: &'a Mutation,
    deletes: &DeleteGate,
    fence: Option<&Gate>,
    progress: Option<Progress>,
    total: u64,
) -> (usize, &'a Mutation, ItemResult) {
    let r = run_one(client, m, deletes, fence).await;
    if let Some(p) = &progress {
        p(1, total);
    }
    (i, m, r)
}

/// Who uses what `m` would delete: its digest, or any tag it removes.
fn used_by(in_use: &InUse, m: &Mutation) -> Option<String> {
    let (repository, digest, tags): (&str, String, Vec<&str>) = match m {
        Mutation::DeleteTag {
            repository,
            tag,
            digest,
        } => (repository, digest.to_string(), vec![&**tag]),
        Mutation::DeleteManifest {
            repository,
            digest,
            tags,
            ..
        } => (
            repository,
            digest.to_string(),
            tags.iter().map(|t| &**t).collect(),
        ),
    };
    in_use
        .digest_user(repository, &digest)
        .or_else(|| tags.iter().find_map(|t| in_use.tag_user(repository, t)))
        .map(str::to_string)
}

/// Tags of `repository` that now point at a digest in `deleting` although the plan does
/// not delete them (digest → tag): one tags listing, then one `HEAD` per tag that was not
/// `listed` (added since) and one per listed tag the plan keeps (`going` are the tags the
/// plan deletes) — a kept tag moved onto a doomed digest during the run, as in a rollback.
async fn new_tags_on(
    client: &RegistryClient,
    repository: &str,
    listed: &HashSet<&str>,
    going: &HashSet<&str>,
    deleting: &HashSet<String>,
    in_flight: usize,
) -> Result<HashMap<String, String>, String> {
    let tags = client
        .tags(repository)
        .await
        .map_err(|e| format!("re-listing the tags before deleting failed: {e}"))?;
    // Built eagerly (see `execute`): keeps this future Send for any lifetime.
    let work: Vec<_> = tags
        .iter()
        .filter(|t| !going.contains(t.as_str()))
        .map(|tag| resolve(client, repository, tag, !listed.contains(tag.as_str())))
        .collect();
    let heads: Vec<Result<(String, Option<String>), String>> = stream::iter(work)
        .buffer_unordered(in_flight.max(1))
        .collect()
        .await;
    let mut tagged: HashMap<String, String> = HashMap::new();
    for h in heads {
        let (tag, digest) = h?;
        if let Some(d) = digest.filter(|d| deleting.contains(d)) {
            let slot = tagged.entry(d).or_insert_with(|| tag.clone());
            if tag < *slot {
                *slot = tag;
            }
        }
    }
    Ok(tagged)
}

/// What `tag` points at now (`None`: gone).
async fn resolve(
    client: &RegistryClient,
    repository: &str,
    tag: &str,
    new: bool,
) -> Result<(String, Option<String>), String> {
    match client.head_manifest(repository, tag).await {
        Ok(h) => Ok((tag.to_string(), h.map(|h| h.digest))),
        Err(e) if new => Err(format!(
            "resolving tag {tag}, new since the listing, failed: {e}"
        )),
        Err(e) => Err(format!("re-resolving kept tag {tag} failed: {e}")),
    }
}
