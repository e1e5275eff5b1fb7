//! What a policy's keep entries decide: `mostRecent`, `semver` and the time windows.

use super::ages::{age_of, ceil_secs, Ages};
use crate::retention::decision::{KeepReason, Seconds, SemverLine};
use crate::retention::inventory::{Capabilities, ManifestId, Repository};
use crate::retention::policy::{Entry, Policy};

/// What keep entries decide for each tag of a repository.
pub(super) struct Keeps {
    /// The first entry (and criterion) that keeps each tag.
    pub(super) kept: Vec<Option<KeepReason>>,
    /// Bit `e` set: entry `e` selects the tag.
    pub(super) selected: Vec<u64>,
}

pub(super) fn parse_version(tag: &str) -> Option<semver::Version> {
    semver::Version::parse(tag.strip_prefix('v').unwrap_or(tag)).ok()
}

/// Evaluates a policy's keep entries over a complete repository. Referrer tags are never
/// selected: they follow their subject. `ages` are the tags' ages in seconds.
pub(super) fn evaluate_keeps(
    policy: &Policy,
    repo: &Repository,
    ages: &Ages,
    caps: Capabilities,
    now: Seconds,
    mut unsupported: Option<&mut [u64]>,
) -> Keeps {
    let n = repo.tags.len();
    let mut kept: Vec<Option<KeepReason>> = vec![None; n];
    let mut selected = vec![0u64; n];
    let mut sel: Vec<usize> = Vec::with_capacity(n);
    let mut scratch = RankScratch::default();
    for (e, entry) in policy.entries.iter().enumerate() {
        let num = u8::try_from(e + 1).unwrap_or(u8::MAX);
        sel.clear();
        for (i, t) in repo.tags.iter().enumerate() {
            if t.subject.is_none() && entry.selector.matches(&t.name) {
                sel.push(i);
                selected[i] |= 1 << e;
            }
        }
        if sel.is_empty() {
            continue;
        }
        if !entry.has_criteria() {
            for &i in &sel {
                kept[i].get_or_insert(KeepReason::Selected { entry: num });
            }
            continue;
        }
        if let Some(of) = entry.most_recent {
            most_recent(repo, ages, &sel, num, of, &mut kept, &mut scratch);
        }
        if let Some(within) = entry.pushed_within.map(ceil_secs) {
            for &i in &sel {
                if let Some(age) = ages.get(i).filter(|a| *a <= within) {
                    kept[i].get_or_insert(KeepReason::PushedWithin {
                        entry: num,
                        of: age_of(&repo.tags[i]),
                        age,
                        within,
                    });
                }
            }
        }
        if let Some(within) = entry.pulled_within.map(ceil_secs) {
            if caps.pull_stats {
                for &i in &sel {
                    if repo.tags[i].pull_unknown {
                        kept[i].get_or_insert(KeepReason::PullUnknown { entry: num });
                        continue;
                    }
                    let ago = repo.tags[i].last_pulled.map(|p| now - p.unix_seconds());
                    if let Some(ago) = ago.filter(|a| *a <= within) {
                        kept[i].get_or_insert(KeepReason::PulledWithin {
                            entry: num,
                            ago,
                            within,
                        });
                    }
                }
            } else {
                if let Some(u) = unsupported.as_deref_mut().and_then(|u| u.get_mut(e)) {
                    *u += sel.len() as u64;
                }
                for &i in &sel {
                    kept[i].get_or_insert(KeepReason::PullStatsUnavailable { entry: num });
                }
            }
        }
        if entry.semver.is_some() {
            semver_keeps(repo, entry, &sel, num, &mut kept);
        }
    }
    Keeps { kept, selected }
}

/// Buffers `most_recent` reuses across entries: per manifest, the newest selected tag and
/// the rank.
#[derive(Default)]
pub(super) struct RankScratch {
    pub(super) best: Vec<u32>,
    pub(super) rank: Vec<u32>,
    pub(super) images: Vec<(ManifestId, usize)>,
}

pub(super) const NONE: u32 = u32::MAX;

/// `mostRecent`: ranks the images carrying a selected tag by their newest selected tag's
/// push time (ties: the greater tag name counts as newer) and keeps the selected tags of
/// the first `of`. Images whose every selected tag has an unknown age are not ranked (such
/// tags are protected anyway) and so do not take a place.
pub(super) fn most_recent(
    repo: &Repository,
    ages: &Ages,
    sel: &[usize],
    entry: u8,
    of: u32,
    kept: &mut [Option<KeepReason>],
    scratch: &mut RankScratch,
) {
    let m = repo.manifests.len();
    let RankScratch { best, rank, images } = scratch;
    best.clear();
    best.resize(m, NONE);
    // Is tag a newer than tag b? Smaller age is newer; equal ages: the greater name.
    let newer = |a: usize, b: usize| -> bool {
        match (ages.get(a), ages.get(b)) {
            (Some(x), Some(y)) if x != y => x < y,
            _ => repo.tags[a].name > repo.tags[b].name,
        }
    };
    images.clear();
    for &i in sel {
        if ages.get(i).is_none() {
            continue;
        }
        let id = repo.tags[i].manifest;
        let slot = &mut best[id.index()];
        if *slot == NONE {
            *slot = i as u32;
            images.push((id, i));
        } else if newer(i, *slot as usize) {
            *slot = i as u32;
        }
    }
    for img in images.iter_mut() {
        img.1 = best[img.0.index()] as usize;
    }
    let take = (of as usize).min(images.len());
    let cmp = |a: &(ManifestId, usize), b: &(ManifestId, usize)| {
        let (x, y) = (a.1, b.1);
        ages.get(x)
            .cmp(&ages.get(y))
            .then_with(|| repo.tags[y].name.cmp(&repo.tags[x].name))
    };
    if take < images.len() && take > 0 {
        images.select_nth_unstable_by(take - 1, cmp);
    }
    images.truncate(take);
    images.sort_unstable_by(cmp);
    rank.clear();
    rank.resize(m, 0);
    for (r, (id, _)) in images.iter().enumerate() {
        rank[id.index()] = r as u32 + 1;
    }
    for &i in sel {
        let r = rank[repo.tags[i].manifest.index()];
        if r > 0 {
            kept[i].get_or_insert(KeepReason::MostRecent { entry, rank: r, of });
        }
    }
}

/// `semver`: among the selected tags that parse as versions (optional `v` prefix;
/// pre-releases only when included), keeps the tags of the `N` highest distinct versions
/// of each major (`latestPerMajor`) and of each major.minor line (`latestPerMinor`).
pub(super) fn semver_keeps(
    repo: &Repository,
    entry: &Entry,
    sel: &[usize],
    num: u8,
    kept: &mut [Option<KeepReason>],
) {
    let Some(rule) = entry.semver else { return };
    let mut versions: Vec<(semver::Version, usize)> = sel
        .iter()
        .filter_map(|&i| parse_version(&repo.tags[i].name).map(|v| (v, i)))
        .filter(|(v, _)| rule.prereleases || v.pre.is_empty())
        .collect();
    if versions.is_empty() {
        return;
    }
    type LineOf = fn(&semver::Version) -> SemverLine;
    let lines: [(Option<u32>, LineOf); 2] = [
        (rule.per_major, |v| {
            SemverLine::Major(u32::try_from(v.major).unwrap_or(u32::MAX))
        }),
        (rule.per_minor, |v| {
            SemverLine::Minor(
                u32::try_from(v.major).unwrap_or(u32::MAX),
                u32::try_from(v.minor).unwrap_or(u32::MAX),
            )
        }),
    ];

    for (of, line_of) in lines {
        let Some(of) = of else { continue };
        let key = |v: &semver::Version| match line_of(v) {
            SemverLine::Major(_) => (v.major, 0),
            SemverLine::Minor(..) => (v.major, v.minor),
        };
        // By line, then highest version first; tag name breaks ties between `v1.0.0` and
        // `1.0.0` so the order does not depend on listing order.
        versions.sort_by(|a, b| {
            key(&a.0)
                .cmp(&key(&b.0))
                .then_with(|| b.0.cmp(&a.0))
                .then_with(|| repo.tags[a.1].name.cmp(&repo.tags[b.1].name))
        });
        let mut rank = 0u32;
        let mut prev: Option<(&semver::Version, (u64, u64))> = None;
        for (v, i) in &versions {
            match prev {
                Some((pv, pk)) if pk == key(v) => {
                    if pv != v {
                        rank += 1;
                    }
                }
                _ => rank = 1,
            }
            prev = Some((v, key(v)));
            if rank <= of {
                kept[*i].get_or_insert(KeepReason::Semver {
                    entry: num,
                    rank,
                    of,
                    line: line_of(v),
                });
            }
        }
    }
}
