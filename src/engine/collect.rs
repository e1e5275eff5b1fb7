//! The inventory builder: reads one registry through the [`RegistryClient`] into the plain
//! [`Inventory`] the planner decides on.
//!
//! Reads are chosen to be few and to leave zot's pull statistics alone (DESIGN invariant 8):
//!
//! - the catalog once (paginated), filtered by the policy's scope **before** any tag listing;
//! - one tag listing per repository in scope;
//! - on zot: the search API for every tag's digest, media type, push and pull time (one query
//!   per repository, which also lists the images of each index, nested indexes flattened),
//!   then a `HEAD` only for tags the search did not report, and a `GET` only for an index the
//!   search did not list; nothing that counts as a pull (zot counts a `GET` of a tagged
//!   manifest, index or image, never a `HEAD` or a `GET` of an untagged one);
//! - elsewhere (no pull statistics to skew): one `GET` of the manifest per tag, which gives
//!   digest, media type, size, config, children and subject in one request, then one config
//!   blob read per distinct config (for `created`) and, for an index without a `created`
//!   annotation, its first child once;
//! - indexes listed by indexes (untagged ones included), level by level (see
//!   [`graph`](super::graph), which also reads the digests in use that no tag reaches);
//! - referrers only when the policy may delete them: from the `sha256-<hex>` tags already
//!   listed (tag schema), or from the referrers API when the registry has one.
//!
//! A repository whose listing or any lookup failed (after the client's retries) is marked
//! incomplete, so nothing in it is deleted this run (invariant 1). A failed catalog fails the
//! whole collection: without it, no repository can be known complete — unless the registry
//! refuses the account the catalog (Harbor, GitLab and ECR-style robot accounts) and the policy
//! names its repositories without wildcards: then those are read one by one.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use futures::stream::{self, StreamExt};

use crate::oci::digest::referrer_tag_subject;
use crate::oci::{
    self, Denial, Manifest, ManifestContent, OciError, Refused, RegistryClient, TagStats,
};
use crate::retention::inventory::Time;
use crate::retention::{Capabilities, Inventory, Repository, RepositoryBuilder};

/// How the inventory is collected.
#[derive(Debug, Clone)]
pub struct CollectOptions {
    /// Repositories listed at the same time.
    pub repositories_in_flight: usize,
    /// Lookups (manifests, configs) in flight per repository. The client's own
    /// `max_concurrency` bounds the total across repositories.
    pub lookups_in_flight: usize,
    /// Discover untagged referrers (signatures, SBOMs) of the images: needed only when the
    /// policy deletes referrers (`deleteReferrers: true` or `purge: true`).
    pub referrers: bool,
    /// The repositories the policy names without wildcards, when every include entry is such
    /// a name: read one by one when the registry refuses the account the catalog.
    pub named: Option<Vec<String>>,
}

impl Default for CollectOptions {
    fn default() -> Self {
        CollectOptions {
            repositories_in_flight: 8,
            lookups_in_flight: 16,
            referrers: false,
            named: None,
        }
    }
}

/// Why no inventory could be collected at all.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// The repository catalog could not be listed completely.
    #[error("listing the repositories failed: {0}")]
    Catalog(#[source] OciError),
    /// The registry's capabilities could not be detected.
    #[error("detecting the registry's capabilities failed: {0}")]
    Capabilities(#[source] OciError),
}

impl CollectError {
    /// The PascalCase reason for conditions, events and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            CollectError::Catalog(e) | CollectError::Capabilities(e) => e.reason(),
        }
    }

    /// How the registry refused the account, when it did.
    pub fn denial(&self) -> Option<oci::Denial> {
        match self {
            CollectError::Catalog(e) | CollectError::Capabilities(e) => e.denial(),
        }
    }
}

/// A repository the registry refused the account (401, 403): it is incomplete, and the run
/// says who was refused what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryDenial {
    /// The repository.
    pub repository: String,
    /// How the registry refused.
    pub denial: Denial,
    /// What was refused, with the registry's answer.
    pub message: String,
}

/// An inventory and the repositories in it the registry refused the account.
#[derive(Debug, Clone)]
pub struct Collected {
    /// The inventory.
    pub inventory: Inventory,
    /// Repositories that could not be read because the account was refused, by name.
    pub denied: Vec<RepositoryDenial>,
    /// The catalog was refused and the policy's named repositories were read instead.
    pub named_only: bool,
}

/// Why a repository could not be read completely: for people, and how the registry refused
/// the account when that is why.
struct Failure {
    message: String,
    denial: Option<Denial>,
}

impl From<String> for Failure {
    /// A failure that is no refusal of the account (graph reads report theirs as text).
    fn from(message: String) -> Self {
        Failure {
            message,
            denial: None,
        }
    }
}

fn failure(what: impl std::fmt::Display, e: OciError) -> Failure {
    Failure {
        message: format!("{what}: {e}"),
        denial: e.denial(),
    }
}

/// How the collector reads this registry.
#[derive(Debug, Clone, Copy)]
struct Mode {
    /// zot: use the search API and HEAD, never GET a plain image.
    zot: bool,
    /// zot's search API answers.
    search: bool,
    /// The referrers API answers (else the tag schema is used).
    referrers_api: bool,
    /// Discover referrers at all.
    referrers: bool,
    /// The repositories were named, not listed: an unknown one is absent, not a failure.
    named: bool,
}

/// Collects the inventory of every repository that `in_scope` accepts.
///
/// Repositories outside the scope are neither listed nor included. The result is sorted by
/// repository name; its capabilities say whether tags can be deleted on their own (zot) and
/// whether pull statistics are known (zot's search API).
pub async fn collect_inventory(
    client: &RegistryClient,
    in_scope: impl Fn(&str) -> bool,
    options: &CollectOptions,
) -> Result<Inventory, CollectError> {
    Ok(collect(client, in_scope, options).await?.inventory)
}

/// [`collect_inventory`], also telling which repositories the registry refused the account,
/// and whether the repositories were named rather than listed (the catalog was refused).
pub async fn collect(
    client: &RegistryClient,
    in_scope: impl Fn(&str) -> bool,
    options: &CollectOptions,
) -> Result<Collected, CollectError> {
    let listing = list(client, in_scope, options).await?;
    let capabilities = listing.capabilities();
    let named_only = listing.named_only;
    let read: Vec<(Repository, Option<RepositoryDenial>)> =
        listing.read(client, options).collect::<Vec<_>>().await;
    let (mut repos, denied): (Vec<Repository>, Vec<Option<RepositoryDenial>>) =
        read.into_iter().unzip();
    let mut denied: Vec<RepositoryDenial> = denied.into_iter().flatten().collect();
    repos.sort_by(|a, b| a.name.cmp(&b.name));
    denied.sort_by(|a, b| a.repository.cmp(&b.repository));
    Ok(Collected {
        inventory: Inventory {
            capabilities,
            repositories: repos,
        },
        denied,
        named_only,
    })
}

/// The repositories of a registry that a run reads, in name order, and how to read them:
/// what [`list`] returns and [`read`](Self::read) consumes, one repository at a time.
pub struct Listing {
    /// The repositories in scope, sorted by name, each once.
    pub repositories: Vec<String>,
    /// The catalog was refused and the policy's named repositories are read instead.
    pub named_only: bool,
    mode: Mode,
}

/// Lists the repositories `in_scope` accepts (the catalog, or the named ones when the
/// registry refuses the account the catalog) and detects how to read them; nothing of any
/// repository is read yet.
pub async fn list(
    client: &RegistryClient,
    in_scope: impl Fn(&str) -> bool,
    options: &CollectOptions,
) -> Result<Listing, CollectError> {
    let caps = client
        .capabilities()
        .await
        .map_err(CollectError::Capabilities)?;
    let (listed, named) = match (client.catalog().await, &options.named) {
        (Ok(all), _) => (all, false),
        (Err(e), Some(names)) if e.denial() == Some(Denial::PermissionDenied(Refused::Catalog)) => {
            tracing::debug!(error = %e, "catalog refused; reading the named repositories");
            (names.clone(), true)
        }
        (Err(e), _) => return Err(CollectError::Catalog(e)),
    };
    let mut repositories: Vec<String> = listed.into_iter().filter(|r| in_scope(r)).collect();
    repositories.sort();
    repositories.dedup();
    let mut mode = Mode {
        zot: caps.zot.is_some(),
        search: caps.search,
        referrers_api: caps.zot.is_some(),
        referrers: options.referrers,
        named,
    };
    if mode.referrers && !mode.referrers_api {
        mode.referrers_api = probe_referrers_api(client, &repositories).await;
    }
    Ok(Listing {
        repositories,
        named_only: named,
        mode,
    })
}

impl Listing {
    /// What the registry supports, for the planner.
    pub fn capabilities(&self) -> Capabilities {
        Capabilities {
            delete_by_tag: self.mode.zot,
            pull_stats: self.mode.search,
        }
    }

    /// Reads the repositories, `options.repositories_in_flight` at a time, and yields each
    /// one's inventory (with the registry's refusal, if it refused the account) in name
    /// order: a repository read before an earlier one is finished waits for it, so at most
    /// that many inventories are held at once.
    pub fn read<'a>(
        self,
        client: &'a RegistryClient,
        options: &CollectOptions,
    ) -> impl futures::Stream<Item = (Repository, Option<RepositoryDenial>)> + Send + 'a {
        let mode = self.mode;
        let lookups = options.lookups_in_flight.max(1);
        stream::iter(self.repositories)
            .map(move |name| async move { collect_repository(client, &name, mode, lookups).await })
            .buffered(options.repositories_in_flight.max(1))
    }
}

/// Asks the first repository whether the registry has the referrers API. A registry without
/// it answers 404 (distribution 2.8); any failure counts as "no API" (the tag schema, read
/// from the listings, still finds the referrers clients wrote there).
async fn probe_referrers_api(client: &RegistryClient, repositories: &[String]) -> bool {
    const PROBE: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    let Some(repo) = repositories.first() else {
        return false;
    };
    matches!(
        client.referrers(repo, PROBE).await,
        Ok(oci::Referrers {
            source: oci::ReferrersSource::Api,
            ..
        })
    )
}

/// What one tag resolved to.
struct Resolved {
    tag: String,
    digest: String,
    media_type: String,
    size: u64,
    /// The manifest's content, when it was fetched (GET) rather than only HEADed.
    manifest: Option<Manifest>,
}

async fn collect_repository(
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

/// Lists and resolves one repository into `b`; the first failure is returned as the reason
/// the repository is incomplete.
async fn fill_repository(
    client: &RegistryClient,
    name: &str,
    mode: Mode,
    lookups: usize,
    b: &mut RepositoryBuilder,
) -> Result<(), Failure> {
    let tags = match client.tags(name).await {
        Ok(tags) => tags,
        // A repository the policy names that does not exist (yet): nothing to decide.
        Err(OciError::NotFound { .. }) if mode.named => return Ok(()),
        Err(e) => return Err(failure("listing tags failed", e)),
    };
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

    // 1. Every tag to a digest: one request per tag at most.
    let resolved: Vec<Result<Option<Resolved>, Failure>> = stream::iter(tags)
        .map(|tag| {
            let stat = stats.get(&tag);
            async move { resolve_tag(client, name, tag, stat, mode).await }
        })
        .buffer_unordered(lookups)
        .collect()
        .await;
    let mut manifests: BTreeMap<String, Manifest> = BTreeMap::new();
    let mut heads: BTreeMap<String, (String, u64)> = BTreeMap::new();
    let mut tagged: Vec<Resolved> = Vec::with_capacity(resolved.len());
    for r in resolved {
        let Some(mut r) = r? else { continue };
        if let Some(m) = r.manifest.take() {
            manifests.entry(r.digest.clone()).or_insert(m);
        }
        heads
            .entry(r.digest.clone())
            .or_insert((r.media_type.clone(), r.size));
        tagged.push(r);
    }
    tagged.sort_by(|a, b| a.tag.cmp(&b.tag));

    // zot's push time stands in for every tag of a digest; without it the age must be read.
    let untimed: BTreeSet<&str> = tagged
        .iter()
        .filter(|t| {
            stats
                .get(&t.tag)
                .is_none_or(|s| s.pushed.is_none() && s.tagged.is_none())
        })
        .map(|t| t.digest.as_str())
        .collect();
    let needs_age = |digest: &str| -> bool { untimed.contains(digest) };

    // The images of each tagged index as zot's search lists them: taken from there, the index
    // is not fetched — a GET of a tagged index counts as a pull in zot's statistics.
    let listed: BTreeMap<&str, &[String]> = tagged
        .iter()
        .filter(|t| oci::media_types::is_index(&t.media_type))
        .filter_map(|t| {
            let s = stats.get(&t.tag).filter(|s| s.digest == t.digest)?;
            // An index listed with no images is read after all: fail toward knowing more.
            let images = s.images.as_deref().filter(|i| !i.is_empty())?;
            Some((t.digest.as_str(), images))
        })
        .collect();

    // 2. Manifests that were only HEADed (zot): fetch indexes once for their children (unless
    //    the search listed them), and images whose age the search API did not give.
    let missing: Vec<String> = heads
        .iter()
        .filter(|(d, (mt, _))| {
            ((oci::media_types::is_index(mt) && !listed.contains_key(d.as_str())) || needs_age(d))
                && !manifests.contains_key(*d)
        })
        .map(|(d, _)| d.clone())
        .collect();
    for m in fetch_all(client, name, missing, lookups).await? {
        manifests.insert(m.digest.clone(), m);
    }
    // Indexes inside indexes: everything a listed tag reaches.
    super::graph::fetch_nested(client, name, &mut manifests, lookups).await?;

    // 3. Ages: config `created` of images (one read per distinct config), else the
    //    `created` annotation; an index without one takes its first child's.
    let mut first_children: BTreeMap<String, String> = BTreeMap::new();
    for (digest, m) in &manifests {
        if m.is_index() && m.created_annotation().is_none() && needs_age(digest) {
            if let Some(child) = m.children().first() {
                first_children.insert(digest.clone(), child.digest().to_string());
            }
        }
    }
    let child_digests: BTreeSet<String> = first_children
        .values()
        .filter(|c| !manifests.contains_key(*c))
        .cloned()
        .collect();
    let children = fetch_all(client, name, child_digests.into_iter().collect(), lookups).await?;
    let mut child_manifests: BTreeMap<String, Manifest> = BTreeMap::new();
    for c in children {
        child_manifests.insert(c.digest.clone(), c);
    }
    let config_of = |m: &Manifest| -> Option<String> {
        (m.artifact_type().is_none() && m.created_annotation().is_none())
            .then(|| m.config_digest())
            .flatten()
    };
    let mut configs: BTreeSet<String> = BTreeSet::new();
    for (digest, m) in &manifests {
        if !needs_age(digest) {
            continue;
        }
        if let Some(c) = config_of(m) {
            configs.insert(c);
        }
        if let Some(child) = first_children
            .get(digest)
            .and_then(|c| manifests.get(c).or_else(|| child_manifests.get(c)))
        {
            if let Some(c) = config_of(child) {
                configs.insert(c);
            }
        }
    }
    let created: HashMap<String, Option<jiff::Timestamp>> = stream::iter(configs)
        .map(|c| async move {
            let r = client.config_created(name, &c).await;
            (c, r)
        })
        .buffer_unordered(lookups)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .map(|(c, r)| r.map(|t| (c.clone(), t)))
        .collect::<Result<_, _>>()
        .map_err(|e| failure("reading an image config failed", e))?;
    let age_of = |m: &Manifest| -> Option<jiff::Timestamp> {
        m.created_annotation()
            .or_else(|| config_of(m).and_then(|c| created.get(&c).copied().flatten()))
    };

    // 4. Fill the builder: manifests, children, subjects, then the tags.
    for (digest, (media_type, size)) in &heads {
        let m = manifests.get(digest);
        let entry = b.manifest(digest);
        let media = entry.media.get_or_insert_with(Default::default);
        media.media_type = Some(Arc::from(media_type.as_str()));
        entry.size = m.map(total_size).or((*size > 0).then_some(*size));
        if let Some(m) = m {
            if let Some(media) = entry.media.as_mut() {
                media.artifact_type = m.artifact_type().map(|a| Arc::from(a.as_str()));
            }
            entry.created = age_of(m)
                .or_else(|| {
                    first_children
                        .get(digest)
                        .and_then(|c| manifests.get(c).or_else(|| child_manifests.get(c)))
                        .and_then(age_of)
                })
                .map(Time::from);
        }
    }
    for (digest, m) in &manifests {
        for child in m.children() {
            let c = child.digest().to_string();
            b.child(digest, &c);
            let entry = b.manifest(&c);
            let media = entry.media.get_or_insert_with(Default::default);
            media.media_type = Some(Arc::from(child.media_type().to_string().as_str()));
            if media.artifact_type.is_none() {
                media.artifact_type = child
                    .artifact_type()
                    .as_ref()
                    .map(|a| Arc::from(a.to_string().as_str()));
            }
            entry.size.get_or_insert(child.size());
        }
        if let Some(subject) = m.subject() {
            b.subject(digest, subject.digest().as_ref());
        }
    }
    // Indexes known from the search only: what they list, nested indexes flattened.
    for (digest, images) in listed.iter().filter(|(d, _)| !manifests.contains_key(**d)) {
        for image in images.iter() {
            b.child(digest, image);
        }
    }
    for t in &tagged {
        // A tag-schema index lists the referrers of the digest its tag names.
        if let Some(subject) = referrer_tag_subject(&t.tag) {
            let listed_by_search = || listed.get(t.digest.as_str()).copied().unwrap_or_default();
            match manifests.get(&t.digest) {
                Some(m) => {
                    for r in m.children() {
                        b.subject(r.digest().as_ref(), &subject);
                    }
                }
                None => {
                    for r in listed_by_search() {
                        b.subject(r, &subject);
                    }
                }
            }
        }
        let tag = b.tag(&t.tag, &t.digest);
        match stats.get(&t.tag).filter(|s| s.digest == t.digest) {
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
    }

    // 5. Untagged referrers from the referrers API, when they may be deleted.
    if mode.referrers && mode.referrers_api {
        let subjects: Vec<String> = heads.keys().cloned().collect();
        let found: Vec<(String, oci::Result<oci::Referrers>)> = stream::iter(subjects)
            .map(|d| async move {
                let r = client.referrers(name, &d).await;
                (d, r)
            })
            .buffer_unordered(lookups)
            .collect()
            .await;
        for (subject, r) in found {
            let r =
                r.map_err(|e| failure(format!("listing the referrers of {subject} failed"), e))?;
            for d in r.descriptors {
                let digest = d.digest().to_string();
                b.subject(&digest, &subject);
                let entry = b.manifest(&digest);
                let media = entry.media.get_or_insert_with(Default::default);
                media.media_type = Some(Arc::from(d.media_type().to_string().as_str()));
                media.artifact_type = d
                    .artifact_type()
                    .as_ref()
                    .map(|a| Arc::from(a.to_string().as_str()));
                entry.size.get_or_insert(d.size());
            }
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

/// GETs each digest once.
async fn fetch_all(
    client: &RegistryClient,
    repo: &str,
    digests: Vec<String>,
    lookups: usize,
) -> Result<Vec<Manifest>, Failure> {
    stream::iter(digests)
        .map(|d| async move {
            client
                .get_manifest(repo, &d)
                .await
                .map_err(|e| failure(format!("reading manifest {d} failed"), e))
        })
        .buffer_unordered(lookups)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
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
