//! Which manifests go with the tags that go, referrers after their subjects.

use std::collections::HashMap;

use super::ages::{age_of, Ages};
use super::keeps::NONE;
use super::{Ctx, Mutation, RepoOut};
use crate::retention::decision::{Decision, DeleteReason, ProtectReason, ReferrerKept, Seconds};
use crate::retention::graph::{veto, DigestUsers, Graph, Need};
use crate::retention::inventory::{Digest, ManifestId, Repository, TagName};

/// What happens to each manifest of a repository, by [`ManifestId`] index.
pub(super) struct ManifestFates {
    /// The manifest is a referrer: it has a subject, or a referrer tag names one.
    pub(super) referrer: Vec<bool>,
    /// The manifest's subject: its own, else the first by digest its referrer tags name.
    pub(super) subject_of: Vec<Option<ManifestId>>,
    /// The manifest is deleted.
    pub(super) going: Vec<bool>,
    /// A manifest kept because an index that stays lists it: the first such index by digest.
    pub(super) blocked_by: HashMap<ManifestId, ManifestId>,
    /// For a referrer deleted with its subject, the cascade round (1 and up) that added it.
    pub(super) round: Vec<u32>,
}

/// Which manifests go entirely — every tag on them goes — and which are held back because an
/// index that stays lists them (at any depth).
pub(super) fn manifest_fates(repo: &Repository, decisions: &[Option<Decision>]) -> ManifestFates {
    let m = repo.manifests.len();
    let man = |id: ManifestId| &repo.manifests[id.index()];
    let mut tag_count = vec![0u32; m];
    let mut delete_count = vec![0u32; m];
    let mut referrer = vec![false; m];
    let mut subject_of: Vec<Option<ManifestId>> =
        repo.manifests.iter().map(|x| x.subject).collect();
    for (i, t) in repo.tags.iter().enumerate() {
        let id = t.manifest.index();
        tag_count[id] += 1;
        if let Some(s) = t.subject {
            referrer[id] = true;
            // A manifest's own subject wins; else the first subject by digest its tags name.
            if repo.manifests[id].subject.is_none() {
                let slot = &mut subject_of[id];
                if slot.is_none_or(|cur| man(s).digest < man(cur).digest) {
                    *slot = Some(s);
                }
            }
        } else if decisions[i].as_ref().is_some_and(Decision::is_delete) {
            delete_count[id] += 1;
        }
    }
    for (id, x) in repo.manifests.iter().enumerate() {
        referrer[id] |= x.subject.is_some();
    }
    let mut going: Vec<bool> = (0..m)
        .map(|id| !referrer[id] && tag_count[id] > 0 && delete_count[id] == tag_count[id])
        .collect();
    // An index that stays keeps its children (and theirs).
    let mut blocked_by: HashMap<ManifestId, ManifestId> = HashMap::new();
    let mut stack: Vec<usize> = (0..m)
        .filter(|&p| !going[p] && !repo.manifests[p].children.is_empty())
        .collect();
    while let Some(p) = stack.pop() {
        for &c in &repo.manifests[p].children {
            if going[c.index()] {
                going[c.index()] = false;
                if !repo.manifests[c.index()].children.is_empty() {
                    stack.push(c.index());
                }
            }
            // Name the staying parent first by digest, whatever the listing order.
            let parent = ManifestId(p as u32);
            blocked_by
                .entry(c)
                .and_modify(|b| {
                    if man(parent).digest < man(*b).digest {
                        *b = parent;
                    }
                })
                .or_insert(parent);
        }
    }
    ManifestFates {
        referrer,
        subject_of,
        going,
        blocked_by,
        round: vec![0u32; m],
    }
}

/// Referrers of manifests that go, cascading round by round (a signature of a signature
/// goes the round after the one it signs). A referrer may go only if every tag on it is a
/// referrer tag old enough to go, it was not created within the grace period, nothing runs
/// it, and every index listing it goes too.
pub(super) fn cascade_referrers(
    repo: &Repository,
    ages: &Ages,
    min_age: Seconds,
    now: Seconds,
    run_by_digest: &DigestUsers,
    fates: &mut ManifestFates,
) {
    let m = repo.manifests.len();
    let referrer = &fates.referrer;
    let referrers: Vec<usize> = (0..m).filter(|&id| referrer[id]).collect();
    if referrers.is_empty() {
        return;
    }
    let mut parents: HashMap<usize, Vec<usize>> = HashMap::new();
    for (p, x) in repo.manifests.iter().enumerate() {
        for c in &x.children {
            if referrer[c.index()] {
                parents.entry(c.index()).or_default().push(p);
            }
        }
    }
    let mut deletable: Vec<bool> = (0..m)
        .map(|id| {
            referrer[id]
                && repo.manifests[id]
                    .created
                    .is_none_or(|c| now - c.unix_seconds() >= min_age)
        })
        .collect();
    for (i, t) in repo.tags.iter().enumerate() {
        let ok = t.subject.is_some() && ages.get(i).is_none_or(|a| a >= min_age);
        deletable[t.manifest.index()] &= ok;
    }
    for &id in &referrers {
        if run_by_digest.get(ManifestId(id as u32)).is_some() {
            deletable[id] = false;
        }
    }
    let going = &mut fates.going;
    let mut r = 1;
    loop {
        let mut added = Vec::new();
        for &id in &referrers {
            if going[id] || !deletable[id] {
                continue;
            }
            let subject_goes = fates.subject_of[id].is_some_and(|s| going[s.index()]);
            let parents_go = parents
                .get(&id)
                .is_none_or(|ps| ps.iter().all(|&p| going[p]));
            if subject_goes && parents_go {
                added.push(id);
            }
        }
        if added.is_empty() {
            break;
        }
        for id in added {
            going[id] = true;
            fates.round[id] = r;
        }
        r += 1;
    }
}

/// Referrer tags follow their manifest; a tag deletion is planned where the registry can
/// delete tags alone, and becomes a protection where it cannot and the image stays (another
/// tag, or an index, still needs it).
#[allow(clippy::too_many_arguments)]
pub(super) fn settle_tags(
    ctx: &Ctx<'_>,
    repo: &Repository,
    ages: &Ages,
    min_age: Seconds,
    delete_referrers: bool,
    fates: &ManifestFates,
    vetoed: &HashMap<ManifestId, Need>,
    decisions: &mut [Option<Decision>],
    out: &mut RepoOut,
) {
    let going = &fates.going;
    let still_needed = |id: usize| {
        vetoed
            .get(&ManifestId(id as u32))
            .map(|need| ProtectReason::StillNeeded {
                need: Box::new(need.clone()),
            })
    };
    // Per manifest, the first tag by name on it that stays, or NONE.
    let mut staying: Vec<u32> = vec![NONE; repo.manifests.len()];
    for (i, t) in repo.tags.iter().enumerate() {
        if t.subject.is_none() && !decisions[i].as_ref().is_some_and(Decision::is_delete) {
            let slot = &mut staying[t.manifest.index()];
            if *slot == NONE || t.name < repo.tags[*slot as usize].name {
                *slot = i as u32;
            }
        }
    }
    for (i, t) in repo.tags.iter().enumerate() {
        let id = t.manifest.index();
        if t.subject.is_some() {
            let subject_of = fates.subject_of[id];
            let subject = subject_of.or(t.subject).map(|s| digest_of(repo, s));
            let subject = subject.unwrap_or_else(|| Digest::new("unknown"));
            let subject_goes = subject_of.is_some_and(|s| going[s.index()]);
            decisions[i] = Some(if going[id] {
                Decision::Delete(DeleteReason::Referrer { subject })
            } else if let Some(needed) = still_needed(id).filter(|_| subject_goes) {
                Decision::Protect(needed)
            } else if !subject_goes {
                Decision::Protect(ProtectReason::Referrer {
                    subject,
                    why: ReferrerKept::SubjectStays,
                })
            } else if !delete_referrers {
                Decision::Protect(ProtectReason::Referrer {
                    subject,
                    why: ReferrerKept::DeleteReferrersOff,
                })
            } else if let Some(age) = ages.get(i).filter(|a| *a < min_age) {
                Decision::Protect(ProtectReason::TooYoung {
                    of: age_of(t),
                    age,
                    min_age,
                })
            } else {
                Decision::Protect(ProtectReason::Referrer {
                    subject,
                    why: ReferrerKept::StillNeeded,
                })
            });
            continue;
        }
        let Some(Decision::Delete(_)) = decisions[i] else {
            continue;
        };
        if going[id] {
            continue;
        }
        if ctx.caps.delete_by_tag {
            if !ctx.mutations {
                continue;
            }
            out.mutations.push((
                0,
                Mutation::DeleteTag {
                    repository: repo.name.clone(),
                    tag: t.name.clone(),
                    digest: repo.manifests[id].digest.clone(),
                },
            ));
        } else {
            let staying = (staying[id] != NONE).then_some(staying[id] as usize);
            let reason = match (staying, fates.blocked_by.get(&t.manifest)) {
                (Some(s), _) => ProtectReason::SharedImage {
                    with_tag: Box::new(repo.tags[s].name.clone()),
                },
                (None, Some(p)) => ProtectReason::IndexChild {
                    index: digest_of(repo, *p),
                },
                (None, None) => still_needed(id).unwrap_or(ProtectReason::SharedImage {
                    with_tag: Box::new(TagName::from("another reference")),
                }),
            };
            decisions[i] = Some(Decision::Protect(reason));
        }
    }
}

/// The manifests that go: counted (with the bytes they free) in every mode, and deleted in
/// Enforce mode — indexes before manifests, referrers after their subjects, round by round —
/// each with the tags it takes along.
pub(super) fn plan_manifest_deletions(
    ctx: &Ctx<'_>,
    repo: &Repository,
    fates: &ManifestFates,
    out: &mut RepoOut,
) {
    let going = &fates.going;
    // The tags on manifests that go, by manifest then name: four bytes a tag, read in
    // manifest order below.
    let mut tags_on: Vec<u32> = Vec::new();
    if ctx.mutations {
        tags_on = (0..repo.tags.len() as u32)
            .filter(|&i| going[repo.tags[i as usize].manifest.index()])
            .collect();
        let key = |i: &u32| {
            let t = &repo.tags[*i as usize];
            (t.manifest, &t.name)
        };
        tags_on.sort_unstable_by(|a, b| key(a).cmp(&key(b)));
    }
    let mut next = 0;
    for (id, x) in repo.manifests.iter().enumerate() {
        if !going[id] {
            continue;
        }
        out.manifest_deletions += 1;
        if let Some(size) = x.size {
            out.reclaimable = Some(out.reclaimable.unwrap_or(0).saturating_add(size));
        }
        if !ctx.mutations {
            continue;
        }
        let start = next;
        while tags_on
            .get(next)
            .is_some_and(|&i| repo.tags[i as usize].manifest.index() == id)
        {
            next += 1;
        }
        let tags: Box<[TagName]> = tags_on[start..next]
            .iter()
            .map(|&i| repo.tags[i as usize].name.clone())
            .collect();
        let referrer = fates.referrer[id];
        if ctx.caps.delete_by_tag && !referrer && !tags.is_empty() {
            // Tag by tag: deleting by digest would also take a kept tag moved onto the image
            // during the run; the untagged manifest is left to the registry's own garbage
            // collection.
            for tag in tags.into_vec() {
                out.mutations.push((
                    0,
                    Mutation::DeleteTag {
                        repository: repo.name.clone(),
                        tag,
                        digest: x.digest.clone(),
                    },
                ));
            }
            continue;
        }
        let phase = if referrer {
            2 + fates.round[id]
        } else if x.children.is_empty() {
            2
        } else {
            1
        };
        out.mutations.push((
            phase,
            Mutation::DeleteManifest {
                repository: repo.name.clone(),
                digest: x.digest.clone(),
                tags,
                subject: referrer
                    .then(|| fates.subject_of[id].map(|s| digest_of(repo, s)))
                    .flatten(),
            },
        ));
    }
}

pub(super) fn digest_of(repo: &Repository, id: ManifestId) -> Digest {
    repo.manifest(id)
        .map_or_else(|| Digest::new("unknown"), |m| m.digest.clone())
}

/// The last word on what goes by digest ([`veto`]): nothing that stays — a tag, an index, a
/// subject, a user by digest — loses a manifest it needs. Returns what needs each manifest
/// taken back.
pub(super) fn still_needed(
    repo: &Repository,
    graph: &Graph,
    decisions: &[Option<Decision>],
    fates: &mut ManifestFates,
    run_by_digest: &DigestUsers,
) -> HashMap<ManifestId, Need> {
    if !fates.going.iter().any(|g| *g) {
        return HashMap::new();
    }
    let mut staying_tag: Vec<Option<TagName>> = vec![None; repo.manifests.len()];
    for (i, t) in repo.tags.iter().enumerate() {
        if t.subject.is_none() && !decisions[i].as_ref().is_some_and(Decision::is_delete) {
            let slot = &mut staying_tag[t.manifest.index()];
            if slot.as_ref().is_none_or(|s| t.name < *s) {
                *slot = Some(t.name.clone());
            }
        }
    }
    veto(repo, graph, &mut fates.going, &staying_tag, run_by_digest)
}
