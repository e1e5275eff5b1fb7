//! Listings: `_catalog` and `tags/list`, following `Link` pages; an error, never a short
//! list, when a page is lost.

use std::collections::{BTreeSet, HashSet};

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use url::Url;

use super::request::Req;
use super::request::Resp;
use super::{pull_scope, RegistryClient};
use crate::oci::error::{OciError, Operation, Result};
use crate::oci::redact::redact_url;
use crate::oci::reference::validate_repository;
use crate::oci::transport::parse_next_link;

/// Turns one listing page's body into its items.
type PageExtractor = dyn Fn(&[u8]) -> std::result::Result<Vec<String>, String> + Sync;

/// Most pages a single listing may take before it is declared runaway.
pub(super) const MAX_PAGES: usize = 100_000;
/// How often a tag listing restarts when the registry loses its `last` cursor (zot 404s on a
/// `last` tag deleted between pages).
const TAG_LIST_RESTARTS: usize = 2;

impl RegistryClient {
    pub(super) async fn paginate(
        &self,
        op: Operation,
        first: Url,
        scope: Option<String>,
        extract: &PageExtractor,
    ) -> std::result::Result<Vec<String>, (usize, OciError)> {
        let mut out = Vec::new();
        let mut url = first;
        let mut seen: HashSet<String> = HashSet::new();
        for page in 0..MAX_PAGES {
            seen.insert(url.as_str().to_string());
            let mut req = Req::new(op, Method::GET, url.clone()).accept("application/json");
            req.scope = scope.clone();
            let resp = self.execute(req).await.map_err(|e| (page, e))?;
            if resp.status != StatusCode::OK {
                return Err((page, self.status_error(op, &resp)));
            }
            let items = extract(&resp.body).map_err(|m| (page, self.invalid_body(op, &resp, m)))?;
            let empty_page = items.is_empty();
            out.extend(items);
            let mut next = None;
            for v in resp.headers.get_all(reqwest::header::LINK) {
                let bad = |message: String| {
                    (
                        page,
                        OciError::InvalidLink {
                            op,
                            url: redact_url(&url),
                            message,
                        },
                    )
                };
                let v = v.to_str().map_err(|_| bad("not ASCII".to_string()))?;
                if let Some(n) = parse_next_link(v).map_err(bad)? {
                    next = Some(n);
                    break;
                }
            }
            let Some(next) = next else {
                return Ok(out);
            };
            let bad = |message: String| {
                (
                    page,
                    OciError::InvalidLink {
                        op,
                        url: redact_url(&url),
                        message,
                    },
                )
            };
            let next_url = url
                .join(&next)
                .map_err(|e| bad(format!("next page is not a URL: {e}")))?;
            if next_url.scheme() != url.scheme()
                || next_url.host_str() != url.host_str()
                || next_url.port_or_known_default() != url.port_or_known_default()
            {
                return Err(bad(format!(
                    "next page {} is on another host",
                    redact_url(&next_url)
                )));
            }
            if seen.contains(next_url.as_str()) {
                if empty_page {
                    // an empty last page that links to itself: the end (zot may answer an
                    // empty final page)
                    return Ok(out);
                }
                return Err(bad("next page was already fetched (loop)".to_string()));
            }
            url = next_url;
        }
        Err((
            MAX_PAGES,
            OciError::IncompleteListing {
                op,
                url: redact_url(&url),
                message: format!("more than {MAX_PAGES} pages"),
            },
        ))
    }

    /// The first page of the listing at `path`, asking for the configured page size.
    fn listing_url(&self, path: &str) -> Result<Url> {
        let mut url = self.url(path)?;
        url.query_pairs_mut()
            .append_pair("n", &self.inner.options.page_size.to_string());
        Ok(url)
    }

    /// The next page a response's `Link` header names, on the same host.
    pub(super) fn next_page(&self, op: Operation, resp: &Resp) -> Result<Option<Url>> {
        let bad = |message: String| OciError::InvalidLink {
            op,
            url: redact_url(&resp.url),
            message,
        };
        for v in resp.headers.get_all(reqwest::header::LINK) {
            let v = v.to_str().map_err(|_| bad("not ASCII".to_string()))?;
            if let Some(n) = parse_next_link(v).map_err(bad)? {
                let next = resp
                    .url
                    .join(&n)
                    .map_err(|e| bad(format!("next page is not a URL: {e}")))?;
                if next.scheme() != resp.url.scheme()
                    || next.host_str() != resp.url.host_str()
                    || next.port_or_known_default() != resp.url.port_or_known_default()
                {
                    return Err(bad(format!(
                        "next page {} is on another host",
                        redact_url(&next)
                    )));
                }
                return Ok(Some(next));
            }
        }
        Ok(None)
    }

    pub(super) fn incomplete(op: Operation, url: &Url, page: usize, e: OciError) -> OciError {
        if page == 0 {
            e
        } else {
            OciError::IncompleteListing {
                op,
                url: redact_url(url),
                message: format!("page {} failed: {e}", page + 1),
            }
        }
    }

    /// Every repository in the registry (`GET /v2/_catalog`, following `Link` pages), sorted
    /// and deduplicated. Fails — never returns a short list — when any page fails after retries.
    pub async fn catalog(&self) -> Result<Vec<String>> {
        let mut url = self.listing_url("v2/_catalog")?;
        #[derive(Deserialize)]
        struct Catalog {
            repositories: Option<Vec<String>>,
        }
        let extract = |b: &[u8]| -> std::result::Result<Vec<String>, String> {
            let c: Catalog =
                serde_json::from_slice(b).map_err(|e| format!("catalog is not JSON: {e}"))?;
            Ok(c.repositories.unwrap_or_default())
        };
        let scope = Some("registry:catalog:*".to_string());
        let list = match self
            .paginate(Operation::Catalog, url.clone(), scope.clone(), &extract)
            .await
        {
            Err((0, e)) if is_page_size_refusal(&e) => {
                // the registry refuses our `n`: let it choose the page size
                url.set_query(None);
                self.paginate(Operation::Catalog, url.clone(), scope, &extract)
                    .await
            }
            other => other,
        }
        .map_err(|(p, e)| Self::incomplete(Operation::Catalog, &url, p, e))?;
        Ok(sorted_unique(list))
    }

    /// One request that needs the account, not only a reachable registry: the first entry
    /// of the catalog (`GET /v2/_catalog?n=1`, with a `registry:catalog:*` token on bearer
    /// registries). Ok when the registry lists it; otherwise its answer as an error — 401
    /// (credentials rejected or missing) and 403 (the catalog refused) give a
    /// [`denial`](OciError::denial). One attempt, no retries: the health check's.
    pub async fn probe_catalog(&self) -> Result<()> {
        let mut url = self.url("v2/_catalog")?;
        url.query_pairs_mut().append_pair("n", "1");
        let mut req = Req::new(Operation::Catalog, Method::GET, url)
            .accept("application/json")
            .scope("registry:catalog:*".to_string());
        req.retry = false;
        let resp = self.execute(req).await?;
        if resp.status == StatusCode::OK {
            Ok(())
        } else {
            Err(self.status_error(Operation::Catalog, &resp))
        }
    }

    /// The repositories of a project: `prefix` itself and every `prefix/…`, sorted.
    pub async fn repositories_under(&self, prefix: &str) -> Result<Vec<String>> {
        let p = prefix.trim_end_matches('/');
        validate_repository(p)?;
        let nested = format!("{p}/");
        Ok(self
            .catalog()
            .await?
            .into_iter()
            .filter(|r| r == p || r.starts_with(&nested))
            .collect())
    }

    /// Every tag of `repository` (`GET /v2/<name>/tags/list`, following `Link` pages), sorted
    /// and deduplicated. An unknown repository is [`OciError::NotFound`]. When the registry
    /// loses the `last` cursor between pages (zot answers 404 when that tag was deleted), the
    /// listing restarts; a listing that cannot complete is an error, never a short list.
    pub async fn tags(&self, repository: &str) -> Result<Vec<String>> {
        validate_repository(repository)?;
        let url = self.listing_url(&format!("v2/{repository}/tags/list"))?;
        #[derive(Deserialize)]
        struct TagList {
            tags: Option<Vec<String>>,
        }
        let extract = |b: &[u8]| -> std::result::Result<Vec<String>, String> {
            let t: TagList =
                serde_json::from_slice(b).map_err(|e| format!("tag list is not JSON: {e}"))?;
            Ok(t.tags.unwrap_or_default())
        };
        let mut restarts = 0;
        loop {
            match self
                .paginate(
                    Operation::Tags,
                    url.clone(),
                    Some(pull_scope(repository)),
                    &extract,
                )
                .await
            {
                Ok(list) => return Ok(sorted_unique(list)),
                Err((page, OciError::NotFound { .. }))
                    if page > 0 && restarts < TAG_LIST_RESTARTS =>
                {
                    restarts += 1;
                    tracing::debug!(
                        repository,
                        "tag pagination cursor lost; restarting the listing"
                    );
                }
                Err((page, e)) => return Err(Self::incomplete(Operation::Tags, &url, page, e)),
            }
        }
    }
}

/// 400 `PAGINATION_NUMBER_INVALID` (distribution: `n` > 1000) or another 400 on the first
/// page of a listing that asked for a page size.
fn is_page_size_refusal(e: &OciError) -> bool {
    matches!(e, OciError::UnexpectedStatus { status: 400, .. })
}

/// A listing's items sorted, each once.
fn sorted_unique(list: Vec<String>) -> Vec<String> {
    list.into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}
