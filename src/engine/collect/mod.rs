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

mod repository;

use futures::stream::{self, StreamExt};

use crate::oci::{self, Denial, OciError, Refused, RegistryClient};
use crate::retention::{Capabilities, Inventory, Repository};
use repository::collect_repository;

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
