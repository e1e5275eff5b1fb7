//! Listings: `_catalog` and `tags/list`, following `Link` pages; an error, never a short
//! list, when a page is lost.
//!
//! A page's body is parsed as it arrives ([`ListingParser`]), not buffered: CNCF
//! distribution 2.8 ignores `n` on `tags/list` and sends every tag in one body — 12 MiB for
//! 500,000 tags, more than the client's body cap, which bounds manifests, not listings. What
//! a listing may hold is bounded instead: [`MAX_LISTING_ENTRIES`] names of at most
//! [`MAX_ENTRY_BYTES`] each, and [`max_listing_bytes`](crate::oci::ClientOptions) in all.

use std::collections::HashSet;

use reqwest::{Method, StatusCode};
use url::Url;

use super::request::{BodySink, Req, Resp, SinkStop};
use super::{pull_scope, RegistryClient};
use crate::oci::error::{OciError, Operation, Result};
use crate::oci::redact::redact_url;
use crate::oci::reference::validate_repository;
use crate::oci::transport::parse_next_link;

/// Turns one page's (capped) body into its items.
type PageExtractor = dyn Fn(&[u8]) -> std::result::Result<Vec<String>, String> + Sync;

/// How a page's body becomes its items.
enum PageItems<'a> {
    /// A listing's names under this key, parsed as the body arrives ([`ListingParser`]).
    Names(&'static str),
    /// The whole body, capped, through a function (referrers pages).
    Extract(&'a PageExtractor),
}

/// Most pages a single listing may take before it is declared runaway.
pub(super) const MAX_PAGES: usize = 100_000;
/// How often a tag listing restarts when the registry loses its `last` cursor (zot 404s on a
/// `last` tag deleted between pages).
const TAG_LIST_RESTARTS: usize = 2;
/// Most names one listing (all its pages) may hold.
pub(super) const MAX_LISTING_ENTRIES: usize = 20_000_000;
/// Longest name in a listing, as sent (escapes included); the distribution spec allows 255
/// bytes for a repository name and 128 for a tag.
pub(super) const MAX_ENTRY_BYTES: usize = 4096;

impl RegistryClient {
    /// Every page from `first` on, each body (capped) through `extract`.
    pub(super) async fn paginate(
        &self,
        op: Operation,
        first: Url,
        scope: Option<String>,
        extract: &PageExtractor,
    ) -> std::result::Result<Vec<String>, (usize, OciError)> {
        self.paginate_with(op, first, scope, PageItems::Extract(extract))
            .await
    }

    /// Every page from `first` on; an error names the page that failed (0-based).
    async fn paginate_with(
        &self,
        op: Operation,
        first: Url,
        scope: Option<String>,
        items: PageItems<'_>,
    ) -> std::result::Result<Vec<String>, (usize, OciError)> {
        let mut out = Vec::new();
        let mut url = first;
        let mut seen: HashSet<String> = HashSet::new();
        let budget = self.inner.options.max_listing_bytes;
        let mut held: u64 = 0;
        for page in 0..MAX_PAGES {
            seen.insert(url.as_str().to_string());
            let mut req = Req::new(op, Method::GET, url.clone()).accept("application/json");
            req.scope = scope.clone();
            let (resp, found) = match &items {
                PageItems::Names(field) => {
                    let mut parser = ListingParser::new(field, MAX_LISTING_ENTRIES - out.len())
                        .with_budget(budget.saturating_sub(held), budget);
                    let resp = self
                        .execute_with(req, Some(&mut parser))
                        .await
                        .map_err(|e| (page, e))?;
                    if resp.status != StatusCode::OK {
                        return Err((page, self.status_error(op, &resp)));
                    }
                    held += parser.held_bytes();
                    (resp, parser.into_items())
                }
                PageItems::Extract(extract) => {
                    let resp = self.execute(req).await.map_err(|e| (page, e))?;
                    if resp.status != StatusCode::OK {
                        return Err((page, self.status_error(op, &resp)));
                    }
                    let found =
                        extract(&resp.body).map_err(|m| (page, self.invalid_body(op, &resp, m)))?;
                    (resp, found)
                }
            };
            let empty_page = found.is_empty();
            out.extend(found);
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
            let mut next = None;
            for v in resp.headers.get_all(reqwest::header::LINK) {
                let v = v.to_str().map_err(|_| bad("not ASCII".to_string()))?;
                if let Some(n) = parse_next_link(v).map_err(bad)? {
                    next = Some(n);
                    break;
                }
            }
            let Some(next) = next else {
                return Ok(out);
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
        let scope = Some("registry:catalog:*".to_string());
        let list = match self
            .paginate_with(
                Operation::Catalog,
                url.clone(),
                scope.clone(),
                PageItems::Names("repositories"),
            )
            .await
        {
            Err((0, e)) if is_page_size_refusal(&e) => {
                // the registry refuses our `n`: let it choose the page size
                url.set_query(None);
                self.paginate_with(
                    Operation::Catalog,
                    url.clone(),
                    scope,
                    PageItems::Names("repositories"),
                )
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
        let mut restarts = 0;
        loop {
            match self
                .paginate_with(
                    Operation::Tags,
                    url.clone(),
                    Some(pull_scope(repository)),
                    PageItems::Names("tags"),
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

/// A listing's items sorted, each once (in place: a listing can hold millions).
fn sorted_unique(mut list: Vec<String>) -> Vec<String> {
    list.sort_unstable();
    list.dedup();
    list
}

/// Where the parser is in the listing document `{"<field>": ["a", "b"], "other": …}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    /// Before the opening `{`.
    Start,
    /// After `{`: a key or `}`.
    FirstKey,
    /// After `,` in the object: a key.
    Key,
    /// After a key: `:`.
    Colon { listing: bool },
    /// After `:`: the value.
    Value { listing: bool },
    /// After `[` of the listing: a name or `]`.
    FirstItem,
    /// After `,` in the listing: a name.
    Item,
    /// After a name: `,` or `]`.
    AfterItem,
    /// Inside a value that is skipped, this deep.
    Skip(usize),
    /// After a value: `,` or `}`.
    AfterValue,
    /// After the closing `}`.
    End,
}

/// What the lexer is in the middle of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lex {
    Between,
    /// A string; `escaped`: the previous byte was a backslash.
    Str {
        escaped: bool,
    },
    /// A number, `true`, `false` or `null`.
    Scalar,
}

/// Parses a listing page (`_catalog`'s `repositories` or `tags/list`'s `tags`) as its chunks
/// arrive, keeping only the names: the body is never held whole. Other keys (`name`) are
/// skipped whatever their value; a missing or `null` list is empty. Bounded: at most `room`
/// names, each at most [`MAX_ENTRY_BYTES`] as sent, taking at most `bytes_room` bytes in
/// memory (see [`name_cost`]), values nested at most 64 deep.
pub(super) struct ListingParser {
    field: &'static str,
    room: usize,
    bytes_room: u64,
    /// The whole listing's budget, for the error.
    bytes_limit: u64,
    held: u64,
    over_budget: bool,
    items: Vec<String>,
    at: At,
    lex: Lex,
    token: Vec<u8>,
    offset: u64,
}

/// What a name costs the listing's byte budget: its bytes and the `String` holding them.
fn name_cost(name: &str) -> u64 {
    (name.len() + std::mem::size_of::<String>()) as u64
}

/// Deepest nesting of a skipped value.
const MAX_DEPTH: usize = 64;

impl ListingParser {
    pub(super) fn new(field: &'static str, room: usize) -> Self {
        ListingParser {
            field,
            room,
            bytes_room: u64::MAX,
            bytes_limit: u64::MAX,
            held: 0,
            over_budget: false,
            items: Vec::new(),
            at: At::Start,
            lex: Lex::Between,
            token: Vec::new(),
            offset: 0,
        }
    }

    /// At most `room` bytes of names more, of a listing whose budget is `limit`.
    pub(super) fn with_budget(mut self, room: u64, limit: u64) -> Self {
        self.bytes_room = room;
        self.bytes_limit = limit;
        self
    }

    /// Bytes the names parsed so far take.
    pub(super) fn held_bytes(&self) -> u64 {
        self.held
    }

    pub(super) fn into_items(self) -> Vec<String> {
        self.items
    }

    /// Turns a parse error into the sink's, telling a budget overrun apart.
    fn stop(&self, message: String) -> SinkStop {
        if self.over_budget {
            SinkStop::OverBudget {
                what: self.what(),
                limit: self.bytes_limit,
            }
        } else {
            SinkStop::Invalid(message)
        }
    }

    fn what(&self) -> &'static str {
        if self.field == "tags" {
            "tag list"
        } else {
            "catalog"
        }
    }

    fn bad(&self, message: impl std::fmt::Display) -> String {
        format!(
            "{} is not valid JSON at byte {}: {message}",
            self.what(),
            self.offset
        )
    }

    /// One structural byte (`{}[]:,`).
    fn punct(&mut self, b: u8) -> std::result::Result<(), String> {
        self.at = match (self.at, b) {
            (At::Start, b'{') => At::FirstKey,
            (At::FirstKey | At::AfterValue, b'}') => At::End,
            (At::Colon { listing }, b':') => At::Value { listing },
            (At::Value { listing: true }, b'[') => At::FirstItem,
            (At::Value { listing: false }, b'[' | b'{') => At::Skip(1),
            (At::FirstItem | At::AfterItem, b']') => At::AfterValue,
            (At::AfterItem, b',') => At::Item,
            (At::AfterValue, b',') => At::Key,
            (At::Skip(d), b'[' | b'{') if d < MAX_DEPTH => At::Skip(d + 1),
            (At::Skip(_), b'[' | b'{') => return Err(self.bad("nested too deep")),
            (At::Skip(1), b']' | b'}') => At::AfterValue,
            (At::Skip(d), b']' | b'}') => At::Skip(d - 1),
            (At::Skip(d), b',' | b':') => At::Skip(d),
            (at, b) => {
                return Err(self.bad(format!("unexpected {:?} ({at:?})", b as char)));
            }
        };
        Ok(())
    }

    /// A complete string token (in `self.token`, without its quotes).
    fn string(&mut self) -> std::result::Result<(), String> {
        let decode = |raw: &[u8]| -> std::result::Result<String, String> {
            let mut quoted = Vec::with_capacity(raw.len() + 2);
            quoted.push(b'"');
            quoted.extend_from_slice(raw);
            quoted.push(b'"');
            serde_json::from_slice::<String>(&quoted).map_err(|e| e.to_string())
        };
        self.at = match self.at {
            At::FirstKey | At::Key => {
                let key = decode(&self.token).map_err(|e| self.bad(e))?;
                At::Colon {
                    listing: key == self.field,
                }
            }
            At::Value { listing: false } => At::AfterValue,
            At::Skip(d) => At::Skip(d),
            At::FirstItem | At::Item => {
                if self.items.len() >= self.room {
                    return Err(format!(
                        "{} holds more than {MAX_LISTING_ENTRIES} names",
                        self.what()
                    ));
                }
                let name = decode(&self.token).map_err(|e| self.bad(e))?;
                self.held += name_cost(&name);
                if self.held > self.bytes_room {
                    self.over_budget = true;
                    return Err(format!("{} outgrew its byte budget", self.what()));
                }
                self.items.push(name);
                At::AfterItem
            }
            at => return Err(self.bad(format!("unexpected string ({at:?})"))),
        };
        self.token.clear();
        Ok(())
    }

    /// A complete scalar token (in `self.token`).
    fn scalar(&mut self) -> std::result::Result<(), String> {
        self.at = match self.at {
            At::Value { listing: true } if self.token == b"null" => At::AfterValue,
            At::Value { listing: false } => At::AfterValue,
            At::Skip(d) => At::Skip(d),
            // the token is the registry's bytes: say where, not what
            at => return Err(self.bad(format!("unexpected value ({at:?})"))),
        };
        self.token.clear();
        Ok(())
    }
}

impl BodySink for ListingParser {
    fn reset(&mut self) {
        *self = ListingParser::new(self.field, self.room)
            .with_budget(self.bytes_room, self.bytes_limit);
    }

    fn push(&mut self, chunk: &[u8]) -> std::result::Result<(), SinkStop> {
        self.push_bytes(chunk).map_err(|m| self.stop(m))
    }

    fn finish(&mut self) -> std::result::Result<(), SinkStop> {
        self.finish_body().map_err(|m| self.stop(m))
    }
}

impl ListingParser {
    fn push_bytes(&mut self, chunk: &[u8]) -> std::result::Result<(), String> {
        for &b in chunk {
            match self.lex {
                Lex::Str { escaped } => {
                    if !escaped && b == b'"' {
                        self.lex = Lex::Between;
                        self.string()?;
                    } else {
                        if self.token.len() >= MAX_ENTRY_BYTES {
                            return Err(format!(
                                "{} holds a string longer than {MAX_ENTRY_BYTES} bytes",
                                self.what()
                            ));
                        }
                        self.token.push(b);
                        self.lex = Lex::Str {
                            escaped: !escaped && b == b'\\',
                        };
                    }
                }
                Lex::Scalar if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'+' | b'.') => {
                    if self.token.len() >= MAX_ENTRY_BYTES {
                        return Err(self.bad("a value too long"));
                    }
                    self.token.push(b);
                }
                Lex::Scalar | Lex::Between => {
                    if self.lex == Lex::Scalar {
                        self.lex = Lex::Between;
                        self.scalar()?;
                    }
                    match b {
                        b' ' | b'\t' | b'\n' | b'\r' => {}
                        b'"' => self.lex = Lex::Str { escaped: false },
                        b'{' | b'}' | b'[' | b']' | b':' | b',' => self.punct(b)?,
                        _ if self.at != At::End && (b.is_ascii_alphanumeric() || b == b'-') => {
                            self.lex = Lex::Scalar;
                            self.token.push(b);
                        }
                        _ => return Err(self.bad(format!("unexpected {:?}", b as char))),
                    }
                }
            }
            self.offset += 1;
        }
        Ok(())
    }

    fn finish_body(&mut self) -> std::result::Result<(), String> {
        if self.lex == Lex::Scalar {
            self.lex = Lex::Between;
            self.scalar()?;
        }
        if self.lex != Lex::Between || self.at != At::End {
            return Err(self.bad("the body ended early"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_in_chunks(
        body: &[u8],
        field: &'static str,
        chunk: usize,
    ) -> Result<Vec<String>, String> {
        let mut p = ListingParser::new(field, 1000);
        for c in body.chunks(chunk.max(1)) {
            p.push_bytes(c)?;
        }
        p.finish_body()?;
        Ok(p.into_items())
    }

    #[test]
    fn a_listing_split_anywhere_gives_the_same_names() {
        let body = br#" {"name" : "team/a\"pp", "extra": {"x": [1, 2.5e3, {"y": null}], "z": true},
            "tags": ["v1", "l\u00e4test", "a\\b" , "v10"] , "after": -3 }
"#;
        let want = vec!["v1", "l\u{e4}test", "a\\b", "v10"];
        for chunk in 1..body.len() + 1 {
            assert_eq!(
                parse_in_chunks(body, "tags", chunk).unwrap(),
                want,
                "chunks of {chunk}"
            );
        }
    }

    #[test]
    fn a_missing_or_null_list_is_empty_and_the_catalog_reads_its_own_key() {
        assert_eq!(
            parse_in_chunks(br#"{"name":"a","tags":null}"#, "tags", 3).unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(
            parse_in_chunks(br#"{}"#, "tags", 1).unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(
            parse_in_chunks(
                br#"{"tags":["x"],"repositories":["a/b","c"]}"#,
                "repositories",
                5
            )
            .unwrap(),
            vec!["a/b", "c"]
        );
    }

    #[test]
    fn a_truncated_or_malformed_listing_is_an_error_not_a_short_list() {
        for bad in [
            &br#"{"tags":["v1","v2""#[..],
            br#"{"tags":["v1","v2"]"#,
            br#"{"tags":["v1",]}"#,
            br#"{"tags":["v1" "v2"]}"#,
            br#"{"tags":[1,2]}"#,
            br#"{"tags":"v1"}"#,
            br#"{"tags":["v1"]} x"#,
            br#"["v1"]"#,
            br#"{"tags":["bad \x escape"]}"#,
            br#"{"a":1,}"#,
            b"",
        ] {
            assert!(
                parse_in_chunks(bad, "tags", 4).is_err(),
                "{:?} was accepted",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn a_listing_holds_at_most_its_room_and_no_endless_name() {
        let mut p = ListingParser::new("tags", 2);
        assert!(p
            .push_bytes(br#"{"tags":["a","b","c"]}"#)
            .unwrap_err()
            .contains("more than"));
        let long = format!(r#"{{"tags":["{}"]}}"#, "x".repeat(MAX_ENTRY_BYTES + 1));
        let mut p = ListingParser::new("tags", 10);
        assert!(p
            .push_bytes(long.as_bytes())
            .unwrap_err()
            .contains("longer than"));
    }

    #[test]
    fn a_retried_page_starts_over() {
        let mut p = ListingParser::new("tags", 10);
        p.push_bytes(br#"{"tags":["a","b""#).unwrap();
        p.reset();
        p.push_bytes(br#"{"tags":["c"]}"#).unwrap();
        p.finish_body().unwrap();
        assert_eq!(p.into_items(), vec!["c"]);
    }

    #[test]
    fn a_listing_over_its_byte_budget_stops_as_over_budget_not_as_invalid() {
        // two names of 10 bytes cost 2 * (10 + 24) = 68 bytes; a budget of 60 holds one
        let mut p = ListingParser::new("repositories", 1000).with_budget(60, 60);
        let stop = p
            .push(br#"{"repositories":["aaaaaaaaaa","bbbbbbbbbb"]}"#)
            .unwrap_err();
        assert!(
            matches!(
                stop,
                SinkStop::OverBudget {
                    what: "catalog",
                    limit: 60
                }
            ),
            "{stop:?}"
        );
        let mut p = ListingParser::new("repositories", 1000).with_budget(68, 68);
        p.push(br#"{"repositories":["aaaaaaaaaa","bbbbbbbbbb"]}"#)
            .unwrap();
        p.finish().unwrap();
        assert_eq!(p.held_bytes(), 68);
    }
}
