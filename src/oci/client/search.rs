//! zot: detection (its management endpoint, else extension discovery) and its search
//! extension (GraphQL `ImageList`) with the types of its answer.

use reqwest::{Method, StatusCode};
use serde::Deserialize;

use super::listing::MAX_PAGES;
use super::request::Req;
use super::{pull_scope, RegistryClient};
use crate::oci::error::{is_retryable_status, OciError, Operation, Result};
use crate::oci::redact::redact_url;
use crate::oci::reference::validate_repository;

/// What the registry can do beyond the Distribution API.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// Set when the registry is zot.
    pub zot: Option<ZotInfo>,
    /// zot's search extension (GraphQL) answers: push/pull statistics are available.
    pub search: bool,
}

/// What zot's management endpoint reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ZotInfo {
    /// `releaseTag`, e.g. `v2.1.20`.
    pub release: Option<String>,
    /// `distSpecVersion`.
    pub dist_spec_version: Option<String>,
    /// `binaryType` (`-minimal` for zot-minimal).
    pub binary_type: Option<String>,
}

/// Per-tag statistics from zot's search extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagStats {
    /// The tag.
    pub tag: String,
    /// The digest the tag points to.
    pub digest: String,
    /// The manifest media type, when reported.
    pub media_type: Option<String>,
    /// When the image was pushed.
    pub pushed: Option<jiff::Timestamp>,
    /// When the tag was set on the image (`TaggedTimestamp`, zot v2.1.15 and later; zot
    /// reports the push time where it has no tag time).
    pub tagged: Option<jiff::Timestamp>,
    /// When the image was last pulled (`None`: never).
    pub last_pulled: Option<jiff::Timestamp>,
    /// How often the image was downloaded.
    pub download_count: Option<u64>,
    /// For an index: the images it lists (`Manifests`), which zot reports flattened — the
    /// images of an index nested in it are listed in its place, the nested index is not.
    /// `None` when not reported (then the index must be read for its children).
    pub images: Option<Vec<String>>,
}

impl RegistryClient {
    /// Detects zot (its management endpoint `/v2/_zot/ext/mgmt`, else the extension discovery
    /// `/v2/_oci/ext/discover`) and its search extension. Cached for the client's life.
    pub async fn capabilities(&self) -> Result<Capabilities> {
        self.inner
            .capabilities
            .get_or_try_init(|| self.detect_capabilities())
            .await
            .cloned()
    }

    async fn detect_capabilities(&self) -> Result<Capabilities> {
        if let Some(body) = self.probe("v2/_zot/ext/mgmt").await? {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct Mgmt {
                #[serde(default)]
                dist_spec_version: Option<String>,
                #[serde(default)]
                release_tag: Option<String>,
                #[serde(default)]
                binary_type: Option<String>,
            }
            if let Ok(m) = serde_json::from_slice::<Mgmt>(&body) {
                return Ok(Capabilities {
                    zot: Some(ZotInfo {
                        release: m.release_tag.filter(|s| !s.is_empty()),
                        dist_spec_version: m.dist_spec_version,
                        binary_type: m.binary_type,
                    }),
                    // zot serves mgmt only when search is enabled
                    search: true,
                });
            }
        }
        if let Some(body) = self.probe("v2/_oci/ext/discover").await? {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) {
                let text = v.to_string();
                let search = text.contains("/_zot/ext/search");
                if search || text.contains("_zot") {
                    return Ok(Capabilities {
                        zot: Some(ZotInfo::default()),
                        search,
                    });
                }
            }
        }
        Ok(Capabilities::default())
    }

    /// GETs a discovery endpoint: its body when it answers 200, `None` for any other final
    /// answer (the endpoint is not there), an error for an answer worth retrying later.
    async fn probe(&self, path: &str) -> Result<Option<Vec<u8>>> {
        let req = Req::new(Operation::Capabilities, Method::GET, self.url(path)?)
            .accept("application/json");
        let resp = self.execute(req).await?;
        if resp.status == StatusCode::OK {
            Ok(Some(resp.body))
        } else if is_retryable_status(resp.status.as_u16()) {
            Err(self.status_error(Operation::Capabilities, &resp))
        } else {
            Ok(None)
        }
    }

    /// Per-tag push time, last pull time and download count of `repository` from zot's search
    /// extension (`ImageList`, paged), sorted by tag. [`OciError::Unsupported`] when the
    /// registry has no search extension; an error, never a short list, when paging breaks.
    pub async fn zot_tag_stats(&self, repository: &str) -> Result<Vec<TagStats>> {
        validate_repository(repository)?;
        if !self.capabilities().await?.search {
            return Err(OciError::Unsupported {
                url: self.base_url().to_string(),
                what: "zot search extension",
            });
        }
        let url = self.url("v2/_zot/ext/search")?;
        let limit = self.inner.options.search_page_size.max(1) as u64;
        // `TaggedTimestamp` exists from zot v2.1.15; asking an older zot for it fails the query.
        let tagged_field = self
            .capabilities()
            .await?
            .zot
            .and_then(|z| z.release)
            .and_then(|r| r.parse::<crate::zot::version::ZotVersion>().ok())
            .is_some_and(|v| v >= crate::zot::version::ZotVersion::new(2, 1, 15));
        let tagged_field = if tagged_field { " TaggedTimestamp" } else { "" };
        let mut offset: u64 = 0;
        let mut out: std::collections::BTreeMap<String, TagStats> = Default::default();
        // Paging is by offset: a tag pushed or deleted meanwhile shifts the pages, showing
        // one tag twice or skipping one. Either makes the answer untrustworthy.
        let changed = |what: String| OciError::IncompleteListing {
            op: Operation::Search,
            url: redact_url(&url),
            message: format!("the tags changed while the search was paged ({what})"),
        };
        // Bounded: a registry reporting a huge TotalCount while answering pages (or the same
        // page again) must not keep the run, and the registry's run lock, forever.
        for _ in 0..MAX_PAGES {
            // `repository` passed the name grammar: it cannot break out of the string literal.
            let query = format!(
                "{{ ImageList(repo: \"{repository}\", requestedPage: {{limit: {limit}, offset: {offset}, sortBy: ALPHABETIC_ASC}}) \
                 {{ Page {{ TotalCount ItemCount }} Results {{ RepoName Tag Digest MediaType PushTimestamp{tagged_field} LastPullTimestamp DownloadCount Manifests {{ Digest }} }} }} }}"
            );
            let body = serde_json::to_vec(&serde_json::json!({ "query": query })).map_err(|e| {
                OciError::InvalidConfig {
                    message: format!("encoding search query: {e}"),
                }
            })?;
            let mut req = Req::new(Operation::Search, Method::POST, url.clone())
                .scope(pull_scope(repository))
                .accept("application/json");
            req.body = Some((body.into(), "application/json".into()));
            let resp = self.execute(req).await?;
            if resp.status != StatusCode::OK {
                return Err(self.status_error(Operation::Search, &resp));
            }
            let page: SearchResponse = serde_json::from_slice(&resp.body).map_err(|e| {
                self.invalid_body(
                    Operation::Search,
                    &resp,
                    format!("search answer {}", crate::oci::error::json_problem(&e)),
                )
            })?;
            if let Some(e) = page.errors.as_ref().and_then(|e| e.first()) {
                return Err(self.invalid_body(
                    Operation::Search,
                    &resp,
                    format!(
                        "search error: {}",
                        bounded(e.message.as_deref().unwrap_or("unknown"), 200)
                    ),
                ));
            }
            let list = page.data.and_then(|d| d.image_list).ok_or_else(|| {
                self.invalid_body(Operation::Search, &resp, "no ImageList in answer")
            })?;
            let total = list.page.as_ref().and_then(|p| p.total_count);
            let results = list.results.unwrap_or_default();
            let n = results.len() as u64;
            let before = out.len();
            for r in results {
                if r.repo_name.as_deref().is_some_and(|n| n != repository) {
                    continue;
                }
                let (Some(tag), Some(digest)) = (r.tag, r.digest) else {
                    continue;
                };
                let again = out.insert(
                    tag.clone(),
                    TagStats {
                        tag,
                        digest,
                        media_type: r.media_type,
                        pushed: r.push_timestamp.as_deref().and_then(parse_zot_time),
                        tagged: r.tagged_timestamp.as_deref().and_then(parse_zot_time),
                        last_pulled: r.last_pull_timestamp.as_deref().and_then(parse_zot_time),
                        download_count: r.download_count,
                        images: r
                            .manifests
                            .map(|ms| ms.into_iter().filter_map(|m| m.digest).collect()),
                    },
                );
                if let Some(again) = again {
                    return Err(changed(format!("tag {} was listed twice", again.tag)));
                }
            }
            offset += n;
            // The end: a short page, or as many as the registry says it has. A missing
            // TotalCount reads on to the short page.
            if n < limit || total.is_some_and(|t| offset >= t) {
                if let Some(t) = total.filter(|t| offset < *t) {
                    return Err(OciError::IncompleteListing {
                        op: Operation::Search,
                        url: redact_url(&url),
                        message: format!("search returned {offset} of {t} images"),
                    });
                }
                if let Some(t) = total.filter(|t| *t != offset) {
                    return Err(changed(format!(
                        "{offset} answered, {t} counted at the end"
                    )));
                }
                return Ok(out.into_values().collect());
            }
            if out.len() == before {
                return Err(OciError::IncompleteListing {
                    op: Operation::Search,
                    url: redact_url(&url),
                    message: format!("search page at offset {offset} added no tag"),
                });
            }
        }
        Err(OciError::IncompleteListing {
            op: Operation::Search,
            url: redact_url(&url),
            message: format!("more than {MAX_PAGES} search pages"),
        })
    }
}

/// `s` cut to at most `max` bytes at a character boundary, with `…` when cut: text from a
/// registry that ends up in a status.
fn bounded(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &s[..cut])
}

fn parse_zot_time(s: &str) -> Option<jiff::Timestamp> {
    let t: jiff::Timestamp = s.parse().ok()?;
    // zot reports "never" as the Unix epoch (1970-01-01, seen on v2.1.11 and v2.1.20); older
    // answers and other servers may send Go's zero time (0001-01-01): both are "never"
    (t.as_second() > 0).then_some(t)
}

#[derive(Deserialize)]
struct SearchResponse {
    #[serde(default)]
    data: Option<SearchData>,
    #[serde(default)]
    errors: Option<Vec<SearchError>>,
}

#[derive(Deserialize)]
struct SearchError {
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize)]
struct SearchData {
    #[serde(rename = "ImageList", default)]
    image_list: Option<ImageList>,
}

#[derive(Deserialize)]
struct ImageList {
    #[serde(rename = "Page", default)]
    page: Option<PageInfo>,
    #[serde(rename = "Results", default)]
    results: Option<Vec<ImageSummary>>,
}

#[derive(Deserialize)]
struct PageInfo {
    #[serde(rename = "TotalCount", default)]
    total_count: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ImageSummary {
    #[serde(default)]
    repo_name: Option<String>,
    #[serde(default)]
    tag: Option<String>,
    #[serde(default)]
    digest: Option<String>,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    push_timestamp: Option<String>,
    #[serde(default)]
    tagged_timestamp: Option<String>,
    #[serde(default)]
    last_pull_timestamp: Option<String>,
    #[serde(default)]
    download_count: Option<u64>,
    #[serde(default)]
    manifests: Option<Vec<ManifestSummary>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ManifestSummary {
    #[serde(default)]
    digest: Option<String>,
}
