//! The HTTP side: the distribution API (and zot's extensions on the zot flavor) over hyper,
//! answered from the [`Store`].

use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::content::{
    rfc3339, Flavor, Kind, RepoId, Shape, OCI_INDEX, OCI_MANIFEST, SIGNATURE_TYPE,
};
use crate::table::{parse_digest, Hash, Store, Table};

/// Requests served, by kind.
#[derive(Debug, Default)]
pub struct Counters {
    /// `GET /v2/`.
    pub ping: AtomicU64,
    /// `_catalog` pages.
    pub catalog: AtomicU64,
    /// `tags/list` pages.
    pub tags: AtomicU64,
    /// `GET` of a manifest.
    pub manifest_get: AtomicU64,
    /// `HEAD` of a manifest.
    pub manifest_head: AtomicU64,
    /// `GET`/`HEAD` of a blob.
    pub blob: AtomicU64,
    /// Referrers API.
    pub referrers: AtomicU64,
    /// zot search queries.
    pub search: AtomicU64,
    /// `DELETE`s.
    pub delete: AtomicU64,
    /// Anything else (mgmt, discovery, unknown paths).
    pub other: AtomicU64,
}

/// A snapshot of [`Counters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// `GET /v2/`.
    pub ping: u64,
    /// `_catalog` pages.
    pub catalog: u64,
    /// `tags/list` pages.
    pub tags: u64,
    /// `GET` of a manifest.
    pub manifest_get: u64,
    /// `HEAD` of a manifest.
    pub manifest_head: u64,
    /// `GET`/`HEAD` of a blob.
    pub blob: u64,
    /// Referrers API.
    pub referrers: u64,
    /// zot search queries.
    pub search: u64,
    /// `DELETE`s.
    pub delete: u64,
    /// Anything else.
    pub other: u64,
}

impl Stats {
    /// Every request.
    pub fn total(&self) -> u64 {
        self.ping
            + self.catalog
            + self.tags
            + self.manifest_get
            + self.manifest_head
            + self.blob
            + self.referrers
            + self.search
            + self.delete
            + self.other
    }

    /// As JSON.
    pub fn to_json(&self) -> String {
        format!(
            r#"{{"ping":{},"catalog":{},"tags":{},"manifestGet":{},"manifestHead":{},"blob":{},"referrers":{},"search":{},"delete":{},"other":{},"total":{}}}"#,
            self.ping,
            self.catalog,
            self.tags,
            self.manifest_get,
            self.manifest_head,
            self.blob,
            self.referrers,
            self.search,
            self.delete,
            self.other,
            self.total()
        )
    }
}

impl Counters {
    /// The counts now.
    pub fn snapshot(&self) -> Stats {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            ping: l(&self.ping),
            catalog: l(&self.catalog),
            tags: l(&self.tags),
            manifest_get: l(&self.manifest_get),
            manifest_head: l(&self.manifest_head),
            blob: l(&self.blob),
            referrers: l(&self.referrers),
            search: l(&self.search),
            delete: l(&self.delete),
            other: l(&self.other),
        }
    }
}

/// The shared state of a running registry.
pub struct State {
    /// Tables and deletions.
    pub store: Store,
    /// Requests served.
    pub counters: Counters,
}

type Resp = Response<Full<Bytes>>;

fn base(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Resp {
    let len = body.len();
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(
        "docker-distribution-api-version",
        HeaderValue::from_static("registry/2.0"),
    );
    r
}

fn json(status: StatusCode, body: String) -> Resp {
    base(status, "application/json; charset=utf-8", body.into_bytes())
}

fn error(status: StatusCode, code: &str, message: &str) -> Resp {
    json(
        status,
        format!(r#"{{"errors":[{{"code":"{code}","message":"{message}"}}]}}"#) + "\n",
    )
}

fn page_not_found() -> Resp {
    base(
        StatusCode::NOT_FOUND,
        "text/plain; charset=utf-8",
        b"404 page not found\n".to_vec(),
    )
}

/// Percent-decodes a query value (`+` is a space).
fn decode(v: &str) -> String {
    let hexval = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hexval(b[i + 1]), hexval(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes a query value as Go's `url.QueryEscape` does for names and tags.
fn encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?
        .split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| decode(v))
}

/// The `n` of a listing.
enum PageSize {
    Default,
    N(u64),
    Invalid,
}

fn page_size(query: Option<&str>) -> PageSize {
    match query_param(query, "n") {
        None => PageSize::Default,
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n >= 0 => PageSize::N(n as u64),
            _ => PageSize::Invalid,
        },
    }
}

/// Serves `shape` on `listener` until the task is dropped.
pub async fn serve(state: Arc<State>, listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(&state, req).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(state: &State, req: Request<Incoming>) -> Resp {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let query = query.as_deref();
    let c = &state.counters;
    let count = |a: &AtomicU64| {
        a.fetch_add(1, Ordering::Relaxed);
    };
    let shape = state.store.shape();
    if path == "/_synthetic/stats" {
        return json(StatusCode::OK, c.snapshot().to_json());
    }
    if path == "/v2/" || path == "/v2" {
        count(&c.ping);
        return json(StatusCode::OK, "{}".to_string());
    }
    if path == "/v2/_catalog" && method == Method::GET {
        count(&c.catalog);
        return catalog(shape, query);
    }
    if path == "/v2/_zot/ext/mgmt" && method == Method::GET {
        count(&c.other);
        if shape.flavor != Flavor::Zot {
            return page_not_found();
        }
        return base(
            StatusCode::OK,
            "text/plain; charset=utf-8",
            br#"{"distSpecVersion":"1.1.1","commit":"v2.1.20","releaseTag":"v2.1.20","binaryType":"-sync-search","http":{"auth":{}}}"#.to_vec(),
        );
    }
    if path == "/v2/_zot/ext/search" && method == Method::POST {
        count(&c.search);
        if shape.flavor != Flavor::Zot {
            return page_not_found();
        }
        let body = match Limited::new(req.into_body(), 64 * 1024).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => return error(StatusCode::BAD_REQUEST, "BAD_REQUEST", "body too large"),
        };
        return search(&state.store, &body);
    }
    let Some(rest) = path.strip_prefix("/v2/") else {
        count(&c.other);
        return page_not_found();
    };
    let accept = req
        .headers()
        .get_all(hyper::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    if let Some(name) = rest.strip_suffix("/tags/list") {
        count(&c.tags);
        if method != Method::GET {
            return page_not_found();
        }
        return tags(&state.store, name, query);
    }
    if let Some((name, reference)) = rest.rsplit_once("/manifests/") {
        match method {
            Method::GET => count(&c.manifest_get),
            Method::HEAD => count(&c.manifest_head),
            Method::DELETE => count(&c.delete),
            _ => count(&c.other),
        }
        return match method {
            Method::GET | Method::HEAD => manifest(
                &state.store,
                name,
                reference,
                &accept,
                method == Method::HEAD,
            ),
            Method::DELETE => delete(&state.store, name, reference),
            _ => error(
                StatusCode::METHOD_NOT_ALLOWED,
                "UNSUPPORTED",
                "The operation is unsupported.",
            ),
        };
    }
    if let Some((name, digest)) = rest.rsplit_once("/blobs/") {
        count(&c.blob);
        if method != Method::GET && method != Method::HEAD {
            return page_not_found();
        }
        return blob(&state.store, name, digest, method == Method::HEAD);
    }
    if let Some((name, digest)) = rest.rsplit_once("/referrers/") {
        count(&c.referrers);
        if shape.flavor != Flavor::Zot || method != Method::GET {
            return page_not_found();
        }
        return referrers(&state.store, name, digest);
    }
    count(&c.other);
    page_not_found()
}

fn catalog(shape: &Shape, query: Option<&str>) -> Resp {
    let n = match (page_size(query), shape.flavor) {
        // distribution 2.8.2: without (or with an unreadable) `n`, pages of 100; more than
        // 1000 is refused
        (PageSize::Default | PageSize::Invalid, Flavor::Distribution) => 100,
        (PageSize::N(n), Flavor::Distribution) if n > 1000 => {
            return json(
                StatusCode::BAD_REQUEST,
                format!(
                    r#"{{"errors":[{{"code":"PAGINATION_NUMBER_INVALID","message":"invalid number of results requested","detail":{{"n":{n}}}}}]}}"#
                ) + "\n",
            );
        }
        // zot: without `n`, everything
        (PageSize::Default, Flavor::Zot) => u64::MAX,
        (PageSize::Invalid, Flavor::Zot) => {
            return error(
                StatusCode::BAD_REQUEST,
                "PAGINATION_NUMBER_INVALID",
                "invalid number of results requested",
            )
        }
        (PageSize::N(n), _) => n,
    };
    let start = query_param(query, "last")
        .map(|l| shape.catalog_after(&l))
        .unwrap_or(0);
    let len = shape.catalog_len();
    let end = start.saturating_add(n).min(len);
    let mut body = String::from(r#"{"repositories":["#);
    let mut last = String::new();
    for p in start..end {
        let Some(r) = shape.repo_at(p) else { break };
        if p > start {
            body.push(',');
        }
        last = shape.repo_name(r);
        body.push('"');
        body.push_str(&last);
        body.push('"');
    }
    body.push_str("]}\n");
    let mut resp = json(StatusCode::OK, body);
    if end < len && end > start {
        let link = format!(r#"</v2/_catalog?last={}&n={n}>; rel="next""#, encode(&last));
        if let Ok(v) = HeaderValue::from_str(&link) {
            resp.headers_mut().insert(hyper::header::LINK, v);
        }
    }
    resp
}

fn name_unknown(name: &str) -> Resp {
    json(
        StatusCode::NOT_FOUND,
        format!(
            r#"{{"errors":[{{"code":"NAME_UNKNOWN","message":"repository name not known to registry","detail":{{"name":"{name}"}}}}]}}"#
        ) + "\n",
    )
}

fn manifest_unknown() -> Resp {
    error(
        StatusCode::NOT_FOUND,
        "MANIFEST_UNKNOWN",
        "manifest unknown",
    )
}

/// One repository's tags in sorted order: the builds and `latest` (positions below the tag
/// count), then the signature tags.
struct TagSeq<'a> {
    store: &'a Store,
    table: &'a Table,
    repo: RepoId,
    count: u64,
}

impl TagSeq<'_> {
    fn len(&self) -> u64 {
        self.count + self.table.signature_tags.len() as u64
    }

    fn write_name(&self, p: u64, out: &mut String) {
        if p < self.count {
            self.store.shape().write_tag_name(self.repo, p, out);
        } else if let Some((t, _)) = self.table.signature_tags.get((p - self.count) as usize) {
            out.push_str(t);
        }
    }

    fn name(&self, p: u64) -> String {
        let mut s = String::new();
        self.write_name(p, &mut s);
        s
    }

    /// Whether the tag at `p` still exists.
    fn alive(&self, p: u64) -> bool {
        if !self.store.any_deleted() {
            return true;
        }
        if p < self.count {
            let i = self.store.shape().image_of_tag(self.repo, p);
            !self.store.tag_deleted(self.repo, p)
                && !self
                    .store
                    .manifest_deleted(self.repo, &self.table.images[i as usize].top)
        } else {
            let Some((_, i)) = self.table.signature_tags.get((p - self.count) as usize) else {
                return false;
            };
            self.table.images[*i as usize]
                .signature
                .is_some_and(|(d, _)| !self.store.manifest_deleted(self.repo, &d))
        }
    }

    /// The first position after `last`.
    fn after(&self, last: &str) -> u64 {
        let a = crate::content::partition(self.count, |p| self.name(p).as_str() <= last);
        if a < self.count {
            return a;
        }
        let sigs = &self.table.signature_tags;
        self.count + sigs.partition_point(|(t, _)| t.as_str() <= last) as u64
    }

    /// The position of an existing tag.
    fn find(&self, tag: &str) -> Option<u64> {
        let p = match self.store.shape().parse_tag(self.repo, tag) {
            Some(k) => k,
            None => {
                let at = self
                    .table
                    .signature_tags
                    .binary_search_by(|(t, _)| t.as_str().cmp(tag))
                    .ok()?;
                self.count + at as u64
            }
        };
        self.alive(p).then_some(p)
    }
}

fn tags(store: &Store, name: &str, query: Option<&str>) -> Resp {
    let shape = store.shape();
    let Some(repo) = shape.parse_repo(name) else {
        return name_unknown(name);
    };
    // The digests are needed only for signature tags and after deletions: a listing of the
    // huge repository costs no table.
    let needs_table = store.any_deleted()
        || (shape.flavor == Flavor::Distribution
            && shape.referrer_percent > 0
            && repo != RepoId::Huge);
    let table = if needs_table {
        store.table(repo)
    } else {
        Arc::new(Table::empty())
    };
    let seq = TagSeq {
        store,
        table: &table,
        repo,
        count: shape.tag_count(repo),
    };
    let paged = shape.flavor == Flavor::Zot || shape.tag_pages;
    let (start, n) = if paged {
        let n = match page_size(query) {
            PageSize::Default => u64::MAX,
            PageSize::N(n) => n,
            PageSize::Invalid => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "PAGINATION_NUMBER_INVALID",
                    "invalid number of results requested",
                )
            }
        };
        let start = match query_param(query, "last") {
            None => 0,
            // zot: `last` must be a tag that exists
            Some(l) if shape.flavor == Flavor::Zot => match seq.find(&l) {
                Some(p) => p + 1,
                None => return manifest_unknown(),
            },
            Some(l) => seq.after(&l),
        };
        (start, n)
    } else {
        (0, u64::MAX)
    };
    let len = seq.len();
    let mut body = String::with_capacity(((len - start.min(len)).min(n) as usize) * 26 + 64);
    body.push_str(r#"{"name":""#);
    body.push_str(name);
    body.push_str(r#"","tags":["#);
    let mut taken = 0u64;
    let mut last_at = None;
    let mut more = false;
    let mut p = start;
    while p < len {
        if seq.alive(p) {
            if taken == n {
                more = true;
                break;
            }
            if taken > 0 {
                body.push(',');
            }
            body.push('"');
            seq.write_name(p, &mut body);
            body.push('"');
            taken += 1;
            last_at = Some(p);
        }
        p += 1;
    }
    body.push_str("]}\n");
    let mut resp = json(StatusCode::OK, body);
    if let (true, Some(l)) = (more, last_at) {
        let link = format!(
            r#"</v2/{name}/tags/list?last={}&n={n}>; rel="next""#,
            encode(&seq.name(l))
        );
        if let Ok(v) = HeaderValue::from_str(&link) {
            resp.headers_mut().insert(hyper::header::LINK, v);
        }
    }
    resp
}

/// What a manifest reference names: (image, kind), when it exists.
fn resolve(store: &Store, table: &Table, repo: RepoId, reference: &str) -> Option<(u64, Kind)> {
    let shape = store.shape();
    if reference.starts_with("sha256:") {
        let d = parse_digest(reference)?;
        let (i, kind) = table.lookup(&d)?;
        return (kind.is_manifest() && !store.manifest_deleted(repo, &d)).then_some((i, kind));
    }
    let seq = TagSeq {
        store,
        table,
        repo,
        count: shape.tag_count(repo),
    };
    let p = seq.find(reference)?;
    if p < seq.count {
        Some((shape.image_of_tag(repo, p), Kind::Top))
    } else {
        let i = table.signature_tag(reference)?;
        Some((i, Kind::Signature))
    }
}

fn with_digest(mut r: Resp, digest: &str) -> Resp {
    if let Ok(v) = HeaderValue::from_str(digest) {
        r.headers_mut().insert("docker-content-digest", v.clone());
    }
    if let Ok(v) = HeaderValue::from_str(&format!("\"{digest}\"")) {
        r.headers_mut().insert(hyper::header::ETAG, v);
    }
    r
}

/// A body-less answer with the headers of `body` (HEAD).
fn head_of(mut r: Resp) -> Resp {
    let len = r.headers().get(CONTENT_LENGTH).cloned();
    *r.body_mut() = Full::new(Bytes::new());
    if let Some(l) = len {
        r.headers_mut().insert(CONTENT_LENGTH, l);
    }
    r
}

fn manifest(store: &Store, name: &str, reference: &str, accept: &str, head: bool) -> Resp {
    let shape = store.shape();
    let Some(repo) = shape.parse_repo(name) else {
        return name_unknown(name);
    };
    let table = store.table(repo);
    let Some((i, kind)) = resolve(store, &table, repo, reference) else {
        return manifest_unknown();
    };
    let doc = shape.doc(repo, i, kind);
    // distribution 2.8 answers 404 for an OCI manifest the client does not accept
    if shape.flavor == Flavor::Distribution && !accept.contains(doc.media_type) {
        return manifest_unknown();
    }
    let r = with_digest(base(StatusCode::OK, doc.media_type, doc.bytes), &doc.digest);
    if head {
        head_of(r)
    } else {
        r
    }
}

fn blob(store: &Store, name: &str, digest: &str, head: bool) -> Resp {
    let shape = store.shape();
    let Some(repo) = shape.parse_repo(name) else {
        return name_unknown(name);
    };
    let table = store.table(repo);
    let found = parse_digest(digest)
        .and_then(|d| table.lookup(&d))
        .filter(|(_, k)| !k.is_manifest());
    let Some((i, kind)) = found else {
        return error(
            StatusCode::NOT_FOUND,
            "BLOB_UNKNOWN",
            "blob unknown to registry",
        );
    };
    let doc = shape.doc(repo, i, kind);
    let r = with_digest(
        base(StatusCode::OK, "application/octet-stream", doc.bytes),
        &doc.digest,
    );
    if head {
        head_of(r)
    } else {
        r
    }
}

fn delete(store: &Store, name: &str, reference: &str) -> Resp {
    let shape = store.shape();
    let Some(repo) = shape.parse_repo(name) else {
        return name_unknown(name);
    };
    let table = store.table(repo);
    let accepted = || {
        base(
            StatusCode::ACCEPTED,
            "text/plain; charset=utf-8",
            Vec::new(),
        )
    };
    if let Some(d) = reference
        .starts_with("sha256:")
        .then(|| parse_digest(reference))
        .flatten()
    {
        let exists = resolve(store, &table, repo, reference).is_some();
        if exists && store.delete_manifest(repo, d) {
            return accepted();
        }
        return manifest_unknown();
    }
    if shape.flavor == Flavor::Distribution {
        // distribution 2.8 parses the reference as a digest
        return error(
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
            "provided digest did not match uploaded content",
        );
    }
    let seq = TagSeq {
        store,
        table: &table,
        repo,
        count: shape.tag_count(repo),
    };
    match seq.find(reference) {
        Some(p) if p < seq.count && store.delete_tag(repo, p) => accepted(),
        _ => manifest_unknown(),
    }
}

fn referrers(store: &Store, name: &str, digest: &str) -> Resp {
    let shape = store.shape();
    let Some(d) = parse_digest(digest) else {
        return error(StatusCode::BAD_REQUEST, "DIGEST_INVALID", "invalid digest");
    };
    let mut listed = String::new();
    if let Some(repo) = shape.parse_repo(name) {
        let table = store.table(repo);
        if let Some((i, Kind::Top)) = table.lookup(&d) {
            if let Some((sig, size)) = table.images[i as usize].signature {
                if !store.manifest_deleted(repo, &sig) {
                    listed = format!(
                        r#"{{"mediaType":"{OCI_MANIFEST}","digest":"sha256:{}","size":{size},"artifactType":"{SIGNATURE_TYPE}","annotations":{{"org.opencontainers.image.created":"{}"}}}}"#,
                        hex::encode(sig),
                        rfc3339(shape.created(repo, i) + 3600)
                    );
                }
            }
        }
    }
    base(
        StatusCode::OK,
        OCI_INDEX,
        format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{listed}]}}"#)
            .into_bytes(),
    )
}

/// A number after `key` in a GraphQL query (`limit: 500`).
fn number_after(query: &str, key: &str) -> Option<u64> {
    let at = query.find(key)? + key.len();
    let digits: String = query[at..]
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

fn search(store: &Store, body: &[u8]) -> Resp {
    let shape = store.shape();
    let query = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("query").and_then(|q| q.as_str()).map(str::to_string))
        .unwrap_or_default();
    let repo_name = query
        .split_once("repo: \"")
        .and_then(|(_, r)| r.split_once('"'))
        .map(|(r, _)| r.to_string())
        .unwrap_or_default();
    let limit = number_after(&query, "limit:").unwrap_or(u64::MAX).max(1);
    let offset = number_after(&query, "offset:").unwrap_or(0);
    let tagged = query.contains("TaggedTimestamp");
    let manifests = query.contains("Manifests");
    let mut results = String::new();
    let mut total = 0u64;
    let mut items = 0u64;
    if let Some(repo) = shape.parse_repo(&repo_name) {
        let table = store.table(repo);
        let seq = TagSeq {
            store,
            table: &table,
            repo,
            count: shape.tag_count(repo),
        };
        let hexd = |h: &Hash| format!("sha256:{}", hex::encode(h));
        let mut name = String::new();
        for p in 0..seq.count {
            if !seq.alive(p) {
                continue;
            }
            total += 1;
            if total <= offset || items >= limit {
                continue;
            }
            items += 1;
            let i = shape.image_of_tag(repo, p);
            let rec = &table.images[i as usize];
            let pushed = rfc3339(shape.created(repo, i));
            name.clear();
            seq.write_name(p, &mut name);
            if !results.is_empty() {
                results.push(',');
            }
            let media = if rec.index { OCI_INDEX } else { OCI_MANIFEST };
            let _ = write!(
                results,
                r#"{{"RepoName":"{repo_name}","Tag":"{name}","Digest":"{}","MediaType":"{media}","PushTimestamp":"{pushed}","LastPullTimestamp":"1970-01-01T00:00:00Z","DownloadCount":0"#,
                hexd(&rec.top)
            );
            if tagged {
                let _ = write!(results, r#","TaggedTimestamp":"{pushed}""#);
            }
            if manifests {
                let images: Vec<String> = match &rec.children {
                    Some(c) => c
                        .iter()
                        .map(|h| format!(r#"{{"Digest":"{}"}}"#, hexd(h)))
                        .collect(),
                    None => vec![format!(r#"{{"Digest":"{}"}}"#, hexd(&rec.top))],
                };
                let _ = write!(results, r#","Manifests":[{}]"#, images.join(","));
            }
            results.push('}');
        }
    }
    json(
        StatusCode::OK,
        format!(
            r#"{{"data":{{"ImageList":{{"Page":{{"TotalCount":{total},"ItemCount":{items}}},"Results":[{results}]}}}}}}"#
        ),
    )
}
