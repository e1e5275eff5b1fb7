//! One repository read into the inventory: its tags resolved, the manifests they reach read
//! (indexes level by level), ages found, and referrers linked to their subjects.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use futures::stream::{self, StreamExt};

use super::{failure, Failure, Mode, RepositoryDenial};
use crate::engine::graph::MAX_DEPTH;
use crate::oci::digest::referrer_tag_subject;
use crate::oci::{self, Manifest, ManifestContent, OciError, RegistryClient, TagStats};
use crate::retention::inventory::{DigestRepr, Time};
use crate::retention::{ManifestId, Repository, RepositoryBuilder};

/// What one tag resolved to.
struct Resolved {
    tag: String,
    digest: String,
    media_type: String,
    size: u64,
    /// The manifest's content, when it was fetched (GET) rather than only HEADed.
    manifest: Option<Manifest>,
}

/// Reads repository `name`: marked incomplete, with the first failure as the reason, when a
/// read failed, and with the refusal of the account when that was the failure.
pub(super) async fn collect_repository(
    client: &RegistryClient,
    name: &str,
    mode: Mode,
    lookups: usize,
) -> (Repository, Option<RepositoryDenial>) {
    let mut b = RepositoryBuilder::new(name);
    let mut denied = None;
    if let Err(why) = fill_repository(client, name, mode, lookups, &mut b).await {
        b.incomplete(&why.message);
        denied = why.denial.map(|denial| RepositoryDenial {
            repository: name.to_string(),
            denial,
            message: why.message,
        });
    }
    (b.build(), denied)
}

/// Where the age of a manifest that was read comes from.
enum Own {
    /// Its `created` annotation.
    Created(Time),
    /// Its image config's `created` (read only when the age is needed).
    Config(DigestRepr),
    /// An index without a `created` annotation: its first child's age.
    FirstChild(ManifestId),
}

/// One repository being read. The builder is the one store of what is known: a manifest's
/// bytes are dropped as soon as it is read, and what the ages and the nested indexes still
/// need is kept beside it in a few bytes per manifest — a repository can hold half a million
/// tags.
struct Reading<'b> {
    b: &'b mut RepositoryBuilder,
    /// Media and artifact types, each held once.
    kinds: HashSet<Arc<str>>,
    /// By manifest id: read (GET), so what it says of itself wins over what an index or a
    /// HEAD said of it.
    read: Vec<bool>,
    /// By manifest id: a tag points at it.
    tagged: Vec<bool>,
    /// By manifest id: a tag points at it that zot gave no push time, so its age is read.
    untimed: Vec<bool>,
    /// Where each read manifest's age comes from, by id once sorted.
    own: Vec<(ManifestId, Own)>,
}

fn flag(flags: &mut Vec<bool>, id: ManifestId) {
    if flags.len() <= id.index() {
        flags.resize(id.index() + 1, false);
    }
    flags[id.index()] = true;
}

fn has(flags: &[bool], id: ManifestId) -> bool {
    flags.get(id.index()).copied().unwrap_or(false)
}

impl Reading<'_> {
    fn kind(&mut self, kind: &str) -> Arc<str> {
        if let Some(known) = self.kinds.get(kind) {
            return known.clone();
        }
        let kind: Arc<str> = Arc::from(kind);
        self.kinds.insert(kind.clone());
        kind
    }

    fn media_type(&self, id: ManifestId) -> Option<&str> {
        self.b.get(id).media.as_ref()?.media_type.as_deref()
    }

    /// What a HEAD (or zot's search) said of a tagged manifest: its media type and size,
    /// unless it was read.
    fn head(&mut self, id: ManifestId, media_type: &str, size: u64) {
        if has(&self.read, id) {
            return;
        }
        let kind = self.index_kind(media_type);
        let entry = self.b.get_mut(id);
        let artifact = entry.media.as_ref().and_then(|m| m.artifact_type.clone());
        set_media(entry, kind, artifact);
        if size > 0 {
            entry.size = Some(size);
        }
    }

    /// The media type to keep of a manifest: an index's (the graph tells by it whether an
    /// index's children are known); a plain image's is not needed.
    fn index_kind(&mut self, media_type: &str) -> Option<Arc<str>> {
        oci::media_types::is_index(media_type).then(|| self.kind(media_type))
    }

    /// Records a manifest that was read: what it is, what it lists and refers to, and where
    /// its age comes from; a tagged one takes its `created` annotation as its age at once.
    fn manifest(&mut self, id: ManifestId, m: &Manifest) {
        if has(&self.read, id) {
            return;
        }
        flag(&mut self.read, id);
        let kind = self.index_kind(&m.media_type);
        let artifact = m.artifact_type().map(|a| self.kind(&a));
        let created = m.created_annotation().map(Time::from);
        let tagged = has(&self.tagged, id);
        let entry = self.b.get_mut(id);
        let artifact = artifact.or_else(|| entry.media.as_ref()?.artifact_type.clone());
        set_media(entry, kind, artifact);
        entry.size = Some(total_size(m));
        if tagged && created.is_some() {
            entry.created = created;
        }
        let mut children = Vec::with_capacity(m.children().len());
        for child in m.children() {
            let c = self.b.id(child.digest().as_ref());
            let kind = self.index_kind(child.media_type().as_ref());
            let artifact = child
                .artifact_type()
                .as_ref()
                .map(|a| self.kind(a.as_ref()));
            let read = has(&self.read, c);
            let entry = self.b.get_mut(c);
            let known = entry.media.as_deref().cloned().unwrap_or_default();
            // What a manifest says of itself wins over what an index says of it.
            let kind = if read {
                known.media_type
            } else {
                known.media_type.or(kind)
            };
            set_media(entry, kind, known.artifact_type.or(artifact));
            entry.size.get_or_insert(child.size());
            children.push(c);
        }
        let first = children.first().copied();
        self.b.children(id, children);
        if let Some(subject) = m.subject() {
            let s = self.b.id(subject.digest().as_ref());
            self.b.refers(id, s);
        }
        if let Some(own) = own_age(m, first) {
            self.own.push((id, own));
        }
    }

    /// The tagged manifests, by id.
    fn tagged(&self) -> Vec<ManifestId> {
        (0..self.tagged.len() as u32)
            .map(ManifestId)
            .filter(|id| has(&self.tagged, *id))
            .collect()
    }

    fn digest(&self, id: ManifestId) -> String {
        self.b.get(id).digest.to_string()
    }
}

/// A config digest as the registry is asked for it.
fn config_name(digest: &&DigestRepr) -> String {
    digest.to_string()
}

/// Sets what a manifest is: kept only when there is something to keep.
fn set_media(
    entry: &mut crate::retention::Manifest,
    media_type: Option<Arc<str>>,
    artifact_type: Option<Arc<str>>,
) {
    entry.media = (media_type.is_some() || artifact_type.is_some()).then(|| {
        Box::new(crate::retention::MediaInfo {
            media_type,
            artifact_type,
        })
    });
}

/// Where the age of `m` comes from: its annotation, else its image config, else (an index)
/// its first child, `first`.
fn own_age(m: &Manifest, first: Option<ManifestId>) -> Option<Own> {
    if let Some(t) = m.created_annotation() {
        return Some(Own::Created(Time::from(t)));
    }
    if let Some(c) = config_of(m) {
        return Some(Own::Config(DigestRepr::parse(&c)));
    }
    m.is_index().then_some(first).flatten().map(Own::FirstChild)
}

/// The config to read for an image's age: an image (not an artifact) without a `created`
/// annotation.
fn config_of(m: &Manifest) -> Option<String> {
    (m.artifact_type().is_none() && m.created_annotation().is_none())
        .then(|| m.config_digest())
        .flatten()
}

/// Where a repository is read from, and how.
#[derive(Clone, Copy)]
struct Origin<'a> {
    client: &'a RegistryClient,
    name: &'a str,
    mode: Mode,
    lookups: usize,
}

/// Lists and resolves one repository into `b`; the first failure is returned as the reason
/// the repository is incomplete.
async fn fill_repository(
    client: &RegistryClient,
    name: &str,
    mode: Mode,
    lookups: usize,
    b: &mut RepositoryBuilder,
) -> Result<(), Failure> {
    let at = Origin {
        client,
        name,
        mode,
        lookups,
    };
    let mut tags = match client.tags(name).await {
        Ok(tags) => tags,
        // A repository the policy names that does not exist (yet): nothing to decide.
        Err(OciError::NotFound { .. }) if mode.named => return Ok(()),
        Err(e) => return Err(failure("listing tags failed", e)),
    };
    // In name order, so that a repository is numbered the same way however the answers
    // arrive.
    tags.sort_unstable();
    tags.dedup();
    let stats: HashMap<String, TagStats> = if mode.search {
        client
            .zot_tag_stats(name)
            .await
            .map_err(|e| failure("reading push and pull times failed", e))?
            .into_iter()
            .map(|s| (s.tag.clone(), s))
            .collect()
    } else {
        HashMap::new()
    };
    let mut r = Reading {
        b,
        kinds: HashSet::new(),
        read: Vec::new(),
        tagged: Vec::new(),
        untimed: Vec::new(),
        own: Vec::new(),
    };
    // Elsewhere than on zot every tag's manifest is read: room for them at once.
    if !mode.zot {
        r.own.reserve_exact(tags.len());
    }
    let listed = resolve_tags(at, &mut r, tags, &stats).await?;
    read_only_headed(at, &mut r, &listed).await?;
    read_nested_indexes(at, &mut r).await?;
    set_ages(at, &mut r).await?;
    link_listed_indexes(&mut r, &listed);
    if mode.referrers && mode.referrers_api {
        add_untagged_referrers(at, &mut r).await?;
    }
    Ok(())
}

/// Every tag to a digest: one request per tag at most, each answer recorded as it comes.
/// Returns the images of each tagged index as zot's search lists them: taken from there, the
/// index is not fetched — a GET of a tagged index counts as a pull in zot's statistics.
async fn resolve_tags<'s>(
    at: Origin<'_>,
    r: &mut Reading<'_>,
    tags: Vec<String>,
    stats: &'s HashMap<String, TagStats>,
) -> Result<BTreeMap<ManifestId, &'s [String]>, Failure> {
    let Origin {
        client,
        name,
        mode,
        lookups,
    } = at;
    let mut listed: BTreeMap<ManifestId, &[String]> = BTreeMap::new();
    let mut resolving = stream::iter(tags)
        .map(|tag| {
            let stat = stats.get(&tag);
            async move { resolve_tag(client, name, tag, stat, mode).await }
        })
        .buffered(lookups);
    while let Some(resolved) = resolving.next().await {
        let Some(t) = resolved? else { continue };
        let id = r.b.id(&t.digest);
        flag(&mut r.tagged, id);
        let stat = stats.get(&t.tag);
        // zot's push time stands in for every tag of a digest; without it the age is read.
        if stat.is_none_or(|s| s.pushed.is_none() && s.tagged.is_none()) {
            flag(&mut r.untimed, id);
        }
        let stat = stat.filter(|s| s.digest == t.digest);
        if oci::media_types::is_index(&t.media_type) {
            // An index listed with no images is read after all: fail toward knowing more.
            if let Some(images) = stat.and_then(|s| s.images.as_deref()) {
                if !images.is_empty() {
                    listed.insert(id, images);
                }
            }
        }
        let tag = r.b.tag(&t.tag, &t.digest);
        match stat {
            Some(s) => {
                // When the tag was set, where zot says (a new tag on an old image is young).
                tag.tagged = s.tagged.is_some();
                tag.pushed = s.tagged.or(s.pushed).map(Time::from);
                tag.last_pulled = s.last_pulled.map(Time::from);
            }
            // Left out of the search answer (pushed while it was paged, say): unknown, not
            // "never pulled" — zot's own retention keeps such tags too.
            None => tag.pull_unknown = mode.search,
        }
        match &t.manifest {
            Some(m) => r.manifest(id, m),
            None => r.head(id, &t.media_type, t.size),
        }
    }
    Ok(listed)
}

/// Manifests that were only HEADed (zot): fetch indexes once for their children (unless
/// the search `listed` them), and images whose age the search API did not give.
async fn read_only_headed(
    at: Origin<'_>,
    r: &mut Reading<'_>,
    listed: &BTreeMap<ManifestId, &[String]>,
) -> Result<(), Failure> {
    let missing: Vec<ManifestId> = r
        .tagged()
        .into_iter()
        .filter(|id| {
            let index = r.media_type(*id).is_some_and(oci::media_types::is_index);
            ((index && !listed.contains_key(id)) || has(&r.untimed, *id)) && !has(&r.read, *id)
        })
        .collect();
    let digests: Vec<String> = missing.iter().map(|id| r.digest(*id)).collect();
    let mut reading = read_each(at.client, at.name, digests, at.lookups, Gone::Failure);
    for id in missing {
        match reading.next().await {
            Some(Ok(Some(m))) => r.manifest(id, &m),
            Some(Ok(None)) | None => {}
            Some(Err(e)) => return Err(e),
        }
    }
    Ok(())
}

/// Indexes inside indexes: everything a listed tag reaches, level by level.
async fn read_nested_indexes(at: Origin<'_>, r: &mut Reading<'_>) -> Result<(), Failure> {
    let mut frontier: Vec<ManifestId> = (0..r.read.len() as u32)
        .map(ManifestId)
        .filter(|id| has(&r.read, *id))
        .collect();
    let mut gone: HashSet<ManifestId> = HashSet::new();
    let mut depth = 0;
    loop {
        let mut wanted: Vec<ManifestId> = frontier
            .iter()
            .flat_map(|id| r.b.get(*id).children.iter().copied())
            .filter(|c| {
                r.media_type(*c).is_some_and(oci::media_types::is_index)
                    && !has(&r.read, *c)
                    && !gone.contains(c)
            })
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        if wanted.is_empty() {
            return Ok(());
        }
        if depth > MAX_DEPTH {
            return Err(Failure::from(format!(
                "indexes are nested more than {} levels deep",
                MAX_DEPTH
            )));
        }
        depth += 1;
        let digests: Vec<String> = wanted.iter().map(|id| r.digest(*id)).collect();
        let mut reading = read_each(at.client, at.name, digests, at.lookups, Gone::Skipped);
        for id in &wanted {
            match reading.next().await {
                Some(Ok(Some(m))) => r.manifest(*id, &m),
                // A nested index that is gone (404) lists nothing that could need keeping.
                Some(Ok(None)) | None => {
                    gone.insert(*id);
                }
                Some(Err(e)) => return Err(e),
            }
        }
        drop(reading);
        frontier = wanted;
    }
}

/// Ages: config `created` of images (one read per distinct config), else the `created`
/// annotation; an index without one takes its first child's.
async fn set_ages(at: Origin<'_>, r: &mut Reading<'_>) -> Result<(), Failure> {
    r.own.sort_unstable_by_key(|(id, _)| *id);
    let own = std::mem::take(&mut r.own);
    let own_of = |id: ManifestId| -> Option<&Own> {
        own.binary_search_by_key(&id, |(i, _)| *i)
            .ok()
            .map(|i| &own[i].1)
    };
    let child_own = read_first_children(at, r, &own).await?;
    let child_of = |c: ManifestId| own_of(c).or_else(|| child_own.get(&c));
    let mut configs: Vec<&DigestRepr> = Vec::new();
    for (id, o) in &own {
        if !has(&r.untimed, *id) {
            continue;
        }
        match o {
            Own::Config(c) => configs.push(c),
            Own::FirstChild(c) => {
                if let Some(Own::Config(c)) = child_of(*c) {
                    configs.push(c);
                }
            }
            Own::Created(_) => {}
        }
    }
    configs.sort_unstable();
    configs.dedup();
    let times = config_times(at, &configs).await?;
    let config_time = |c: &DigestRepr| -> Option<Time> {
        let i = configs.binary_search(&c).ok()?;
        times.get(i).copied().flatten()
    };
    let age_of = |o: &Own| -> Option<Time> {
        match o {
            Own::Created(t) => Some(*t),
            Own::Config(c) => config_time(c),
            Own::FirstChild(_) => None,
        }
    };
    for (id, o) in &own {
        if !has(&r.tagged, *id) {
            continue;
        }
        let age = age_of(o).or_else(|| match o {
            Own::FirstChild(c) if has(&r.untimed, *id) => child_of(*c).and_then(age_of),
            _ => None,
        });
        let entry = r.b.get_mut(*id);
        entry.created = entry.created.or(age);
    }
    Ok(())
}

/// Where the age of each first child comes from that an index in need of an age names and
/// that was not read: one GET per child.
async fn read_first_children(
    at: Origin<'_>,
    r: &Reading<'_>,
    own: &[(ManifestId, Own)],
) -> Result<HashMap<ManifestId, Own>, Failure> {
    let first_children: Vec<ManifestId> = own
        .iter()
        .filter(|(id, _)| has(&r.untimed, *id))
        .filter_map(|(_, o)| match o {
            Own::FirstChild(c) if !has(&r.read, *c) => Some(*c),
            _ => None,
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut child_own: HashMap<ManifestId, Own> = HashMap::new();
    let digests: Vec<String> = first_children.iter().map(|id| r.digest(*id)).collect();
    let mut reading = read_each(at.client, at.name, digests, at.lookups, Gone::Failure);
    for id in &first_children {
        match reading.next().await {
            Some(Ok(Some(m))) => {
                if let Some(o) = own_age(&m, None) {
                    child_own.insert(*id, o);
                }
            }
            Some(Ok(None)) | None => {}
            Some(Err(e)) => return Err(e),
        }
    }
    Ok(child_own)
}

/// The `created` time of each image config, in the order of `configs`.
async fn config_times(
    at: Origin<'_>,
    configs: &[&DigestRepr],
) -> Result<Vec<Option<Time>>, Failure> {
    let Origin {
        client,
        name,
        lookups,
        ..
    } = at;
    let mut times: Vec<Option<Time>> = Vec::with_capacity(configs.len());
    let mut reading = stream::iter(configs.iter().map(config_name))
        .map(|c| async move { client.config_created(name, &c).await })
        .buffered(lookups);
    while let Some(t) = reading.next().await {
        let t = t.map_err(|e| failure("reading an image config failed", e))?;
        times.push(t.map(Time::from));
    }
    Ok(times)
}

/// Indexes known from the search only: what they list, nested indexes flattened; and a
/// tag-schema index lists the referrers of the digest its tag names.
fn link_listed_indexes(r: &mut Reading<'_>, listed: &BTreeMap<ManifestId, &[String]>) {
    for (id, images) in listed {
        if !has(&r.read, *id) {
            let children: Vec<ManifestId> = images.iter().map(|i| r.b.id(i)).collect();
            r.b.children(*id, children);
        }
    }
    let schema: Vec<(ManifestId, String)> =
        r.b.tags()
            .iter()
            .filter_map(|t| referrer_tag_subject(&t.name).map(|s| (t.manifest, s)))
            .collect();
    for (index, subject) in schema {
        let s = r.b.id(&subject);
        for c in r.b.get(index).children.clone() {
            r.b.refers(c, s);
        }
    }
}

/// Untagged referrers from the referrers API (read when they may be deleted).
async fn add_untagged_referrers(at: Origin<'_>, r: &mut Reading<'_>) -> Result<(), Failure> {
    let Origin {
        client,
        name,
        lookups,
        ..
    } = at;
    let subjects: Vec<String> = r.tagged().into_iter().map(|id| r.digest(id)).collect();
    let mut found = stream::iter(subjects)
        .map(|d| async move {
            let found = client.referrers(name, &d).await;
            (d, found)
        })
        .buffered(lookups);
    while let Some((subject, found)) = found.next().await {
        let found =
            found.map_err(|e| failure(format!("listing the referrers of {subject} failed"), e))?;
        let s = r.b.id(&subject);
        for d in found.descriptors {
            let id = r.b.id(d.digest().as_ref());
            r.b.refers(id, s);
            let kind = r.index_kind(d.media_type().as_ref());
            let artifact = d.artifact_type().as_ref().map(|a| r.kind(a.as_ref()));
            let entry = r.b.get_mut(id);
            set_media(entry, kind, artifact);
            entry.size.get_or_insert(d.size());
        }
    }
    Ok(())
}

/// Resolves one tag: zot's search answer where it has one, else `HEAD` on zot, else `GET`.
/// `Ok(None)`: the tag vanished since the listing (nothing to decide about).
async fn resolve_tag(
    client: &RegistryClient,
    repo: &str,
    tag: String,
    stat: Option<&TagStats>,
    mode: Mode,
) -> Result<Option<Resolved>, Failure> {
    if let Some(s) = stat {
        if let Some(mt) = s.media_type.as_deref().filter(|mt| !mt.is_empty()) {
            if oci::digest::is_digest(&s.digest) {
                return Ok(Some(Resolved {
                    tag,
                    digest: s.digest.clone(),
                    media_type: mt.to_string(),
                    size: 0,
                    manifest: None,
                }));
            }
        }
    }
    if mode.zot {
        let head = client
            .head_manifest(repo, &tag)
            .await
            .map_err(|e| failure(format!("resolving tag {tag} failed"), e))?;
        return Ok(head.map(|h| Resolved {
            tag,
            digest: h.digest,
            media_type: h.media_type,
            size: h.size,
            manifest: None,
        }));
    }
    match client.get_manifest(repo, &tag).await {
        Ok(m) => Ok(Some(Resolved {
            tag,
            digest: m.digest.clone(),
            media_type: m.media_type.clone(),
            size: m.raw.len() as u64,
            manifest: Some(m),
        })),
        Err(OciError::NotFound { .. }) => Ok(None),
        Err(e) => Err(failure(format!("reading tag {tag} failed"), e)),
    }
}

/// What a 404 for a manifest asked for by digest means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gone {
    /// It is a failure: the repository is incomplete.
    Failure,
    /// It is an answer: the manifest is gone (`None`).
    Skipped,
}

/// GETs each digest once, `lookups` at a time, and yields the answers in the order asked.
fn read_each<'a>(
    client: &'a RegistryClient,
    repo: &'a str,
    digests: Vec<String>,
    lookups: usize,
    gone: Gone,
) -> impl futures::Stream<Item = Result<Option<Manifest>, Failure>> + 'a {
    stream::iter(digests)
        .map(move |d| async move {
            match client.get_manifest(repo, &d).await {
                Ok(m) => Ok(Some(m)),
                Err(OciError::NotFound { .. }) if gone == Gone::Skipped => Ok(None),
                Err(e) => Err(failure(format!("reading manifest {d} failed"), e)),
            }
        })
        .buffered(lookups.max(1))
}

/// Manifest, config and layer sizes of an image; the manifest's own size otherwise.
fn total_size(m: &Manifest) -> u64 {
    let own = m.raw.len() as u64;
    match &m.content {
        ManifestContent::Image(i) => {
            own + i.config().size() + i.layers().iter().map(|l| l.size()).sum::<u64>()
        }
        _ => own,
    }
}
