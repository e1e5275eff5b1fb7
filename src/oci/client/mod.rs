//! [`RegistryClient`]: one pooled HTTP client per registry, shared by cloning.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, ACCEPT, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use tokio::sync::{OnceCell, Semaphore};
use url::Url;

use super::auth::{parse_challenges, Credentials, TokenResponse};
use super::cache::AgeCache;
use super::error::{OciError, Operation, Result};
use super::manifest::{media_types, Manifest, ManifestHead};
use super::redact::redact_url;
use super::reference::{
    is_digest, referrers_tag, sha256_digest, validate_digest, validate_manifest_reference,
    validate_repository, validate_tag,
};
use super::transport::{
    is_retryable_status, parse_next_link, parse_retry_after, ClientOptions, Counters, RequestStats,
};

/// Turns one listing page's body into its items.
type PageExtractor = dyn Fn(&[u8]) -> std::result::Result<Vec<String>, String> + Sync;

/// Most pages a single listing may take before it is declared runaway.
const MAX_PAGES: usize = 100_000;
/// How often a tag listing restarts when the registry loses its `last` cursor (zot 404s on a
/// `last` tag deleted between pages).
const TAG_LIST_RESTARTS: usize = 2;
/// Safety margin subtracted from a bearer token's lifetime.
const TOKEN_MARGIN: Duration = Duration::from_secs(10);

/// A client for one OCI Distribution API registry.
///
/// Cheap to clone (an `Arc` inside) and safe to use from many tasks: every clone shares the
/// connection pool, the concurrency limit, the token cache, the config-blob cache and the
/// request counters.
#[derive(Clone)]
pub struct RegistryClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("base_url", &self.inner.base_redacted)
            .field("credentials", &self.inner.credentials)
            .finish_non_exhaustive()
    }
}

struct Inner {
    http: reqwest::Client,
    base: Url,
    base_redacted: String,
    credentials: Credentials,
    options: ClientOptions,
    permits: Semaphore,
    counters: Counters,
    auth: Mutex<AuthState>,
    created_cache: Arc<AgeCache>,
    capabilities: OnceCell<Capabilities>,
}

#[derive(Default)]
struct AuthState {
    /// Set once the registry answered with a Bearer challenge.
    bearer: Option<BearerRealm>,
    /// Tokens per scope key with their expiry.
    tokens: HashMap<String, (String, Instant)>,
}

#[derive(Clone)]
struct BearerRealm {
    realm: Url,
    service: Option<String>,
}

/// What a healthy `GET /v2/` told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// The status: 200, or 401 when the registry wants credentials (still healthy).
    pub status: u16,
    /// Time to the answer.
    pub latency: Duration,
    /// True when the registry answered 401.
    pub auth_required: bool,
    /// The `Docker-Distribution-API-Version` header, when sent.
    pub api_version: Option<String>,
}

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
    /// When the image was last pulled (`None`: never).
    pub last_pulled: Option<jiff::Timestamp>,
    /// How often the image was downloaded.
    pub download_count: Option<u64>,
}

/// Where a referrers list came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReferrersSource {
    /// The referrers API (`GET /v2/<name>/referrers/<digest>`).
    Api,
    /// The fallback tag schema (`<name>:sha256-<hex>` index), the registry having no API.
    TagSchema,
}

/// The manifests whose `subject` is a given digest.
#[derive(Debug, Clone, PartialEq)]
pub struct Referrers {
    /// Where the list came from.
    pub source: ReferrersSource,
    /// One descriptor per referrer (digest, media type, artifact type, annotations).
    pub descriptors: Vec<oci_spec::image::Descriptor>,
}

/// How a delete ended (both are success).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// The registry accepted the delete (202 or 200).
    Deleted,
    /// The registry answered 404: the thing was already gone.
    AlreadyGone,
}

/// The result of [`RegistryClient::head_tags`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagHeads {
    /// Tag → what its HEAD told.
    pub heads: std::collections::BTreeMap<String, ManifestHead>,
    /// Tags that answered 404 (deleted since they were listed), sorted.
    pub vanished: Vec<String>,
}

/// What a tag resolves to now, compared with what a plan saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagCheck {
    /// The tag still points to the expected digest.
    Unchanged(ManifestHead),
    /// The tag now points to another digest (re-pushed).
    Moved(ManifestHead),
    /// The tag no longer exists.
    Gone,
}

struct Req {
    op: Operation,
    method: Method,
    url: Url,
    scope: Option<String>,
    accept: Option<&'static str>,
    body: Option<(Vec<u8>, &'static str)>,
    retry: bool,
    auth_retry: bool,
}

impl Req {
    fn new(op: Operation, method: Method, url: Url) -> Self {
        Req {
            op,
            method,
            url,
            scope: None,
            accept: None,
            body: None,
            retry: true,
            auth_retry: true,
        }
    }
    fn scope(mut self, scope: String) -> Self {
        self.scope = Some(scope);
        self
    }
    fn accept(mut self, accept: &'static str) -> Self {
        self.accept = Some(accept);
        self
    }
}

struct Resp {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
    url: Url,
    attempts: u32,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

enum ReadError {
    TooLarge,
    Transport(String),
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<ErrorEntry>,
}

#[derive(Deserialize)]
struct ErrorEntry {
    #[serde(default)]
    code: Option<String>,
}

fn error_code(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .and_then(|b| b.errors.into_iter().find_map(|e| e.code))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn pull_scope(repo: &str) -> String {
    format!("repository:{repo}:pull")
}

impl RegistryClient {
    /// A client for the registry at `base_url` (`https://reg.example.com`, optionally with a
    /// path prefix before `/v2/`). User info in the URL is used as basic credentials when
    /// `credentials` is anonymous, and never printed.
    pub fn new(base_url: &str, credentials: Credentials, options: ClientOptions) -> Result<Self> {
        let mut base = parse_base_url(base_url)?;
        let mut credentials = credentials;
        if !base.username().is_empty() {
            if credentials == Credentials::Anonymous {
                let user = percent_decode(base.username());
                let pass = percent_decode(base.password().unwrap_or(""));
                credentials = Credentials::basic(user, pass);
            }
            let _ = base.set_username("");
            let _ = base.set_password(None);
        }
        if options.max_concurrency == 0 {
            return Err(OciError::InvalidConfig {
                message: "max_concurrency must be at least 1".to_string(),
            });
        }
        let mut builder = reqwest::Client::builder()
            .user_agent(options.user_agent.clone())
            .timeout(options.timeout)
            .connect_timeout(options.connect_timeout)
            .pool_max_idle_per_host(options.max_concurrency)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::limited(5));
        if let Some(pem) = &options.ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| {
                OciError::InvalidConfig {
                    message: format!("CA bundle is not valid PEM: {e}"),
                }
            })?;
            if certs.is_empty() {
                return Err(OciError::InvalidConfig {
                    message: "CA bundle holds no certificate".to_string(),
                });
            }
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        if options.insecure_skip_tls_verify {
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        let http = builder.build().map_err(|e| OciError::InvalidConfig {
            message: format!("building the HTTP client: {e}"),
        })?;
        let base_redacted = redact_url(&base).trim_end_matches('/').to_string();
        let created_cache = options.age_cache.clone().unwrap_or_default();
        Ok(RegistryClient {
            inner: Arc::new(Inner {
                http,
                base_redacted,
                permits: Semaphore::new(options.max_concurrency),
                base,
                credentials,
                options,
                counters: Counters::default(),
                auth: Mutex::new(AuthState::default()),
                created_cache,
                capabilities: OnceCell::new(),
            }),
        })
    }

    /// The registry's base URL, redacted, without trailing slash.
    pub fn base_url(&self) -> &str {
        &self.inner.base_redacted
    }

    /// `host[:port]` of the registry (as Pod images and docker config name it).
    pub fn host(&self) -> String {
        let b = &self.inner.base;
        match (b.host_str(), b.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => String::new(),
        }
    }

    /// The options the client was built with.
    pub fn options(&self) -> &ClientOptions {
        &self.inner.options
    }

    /// Request counters since creation (or the last [`reset_stats`](Self::reset_stats)).
    pub fn stats(&self) -> RequestStats {
        self.inner.counters.snapshot()
    }

    /// Zeroes the request counters.
    pub fn reset_stats(&self) {
        self.inner.counters.reset();
    }

    /// Forgets cached config `created` times and bearer tokens (capabilities stay cached).
    /// The times are forgotten for every client sharing the same
    /// [`age_cache`](ClientOptions::age_cache).
    pub fn clear_caches(&self) {
        self.inner.created_cache.clear();
        lock(&self.inner.auth).tokens.clear();
    }

    fn url(&self, path: &str) -> Result<Url> {
        self.inner
            .base
            .join(path)
            .map_err(|e| OciError::InvalidConfig {
                message: format!("building URL for {path:?}: {e}"),
            })
    }

    // ------------------------------------------------------------------ transport

    fn cached_token(&self, key: &str) -> Option<String> {
        let st = lock(&self.inner.auth);
        st.tokens
            .get(key)
            .filter(|(_, exp)| *exp > Instant::now())
            .map(|(t, _)| t.clone())
    }

    async fn auth_header(&self, req: &Req) -> Result<Option<String>> {
        let key = req.scope.clone().unwrap_or_default();
        let realm = lock(&self.inner.auth).bearer.clone();
        if let Some(realm) = realm {
            if let Some(t) = self.cached_token(&key) {
                return Ok(Some(format!("Bearer {t}")));
            }
            // The realm is known: fetch the token up front and save the 401 round trip.
            if req.auth_retry {
                let t = self.fetch_token(&realm, req.scope.as_deref(), &key).await?;
                return Ok(Some(format!("Bearer {t}")));
            }
            return Ok(None);
        }
        Ok(self.inner.credentials.basic_header())
    }

    /// Fetches a token for `scope` and caches it under `key`, retrying transient failures of
    /// the realm like any other request.
    async fn fetch_token(
        &self,
        realm: &BearerRealm,
        scope: Option<&str>,
        key: &str,
    ) -> Result<String> {
        let policy = &self.inner.options.retry;
        let mut retries = 0;
        loop {
            match self.fetch_token_once(realm, scope, key).await {
                Err(e) if e.is_transient() && retries < policy.max_retries => {
                    retries += 1;
                    self.inner.counters.retry();
                    tokio::time::sleep(policy.backoff(retries)).await;
                }
                other => return other,
            }
        }
    }

    async fn fetch_token_once(
        &self,
        realm: &BearerRealm,
        scope: Option<&str>,
        key: &str,
    ) -> Result<String> {
        let mut url = realm.realm.clone();
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = &realm.service {
                q.append_pair("service", s);
            }
            if let Some(s) = scope.filter(|s| !s.is_empty()) {
                q.append_pair("scope", s);
            }
        }
        let redacted = redact_url(&realm.realm);
        let err_status = |status: Option<u16>, message: String| OciError::TokenRequest {
            realm: redacted.clone(),
            status,
            message,
        };
        let err = |message: String| err_status(None, message);
        let mut rb = self.inner.http.get(url.clone());
        if let Some(h) = self.inner.credentials.basic_header() {
            rb = rb.header(AUTHORIZATION, h);
        }
        self.inner.counters.count(Operation::Token);
        tracing::debug!(url = %redact_url(&url), "requesting bearer token");
        let resp = rb.send().await.map_err(|e| err(transport_message(&e)))?;
        let status = resp.status();
        let body = match read_capped(resp, self.inner.options.max_body_bytes, false).await {
            Ok(b) => b,
            Err(ReadError::TooLarge) => {
                return Err(err_status(
                    Some(status.as_u16()),
                    "token response too large".to_string(),
                ))
            }
            Err(ReadError::Transport(m)) => return Err(err(m)),
        };
        if !status.is_success() {
            return Err(err_status(
                Some(status.as_u16()),
                format!("status {}", status.as_u16()),
            ));
        }
        let bad = |message: &str| err_status(Some(status.as_u16()), message.to_string());
        let tr: TokenResponse =
            serde_json::from_slice(&body).map_err(|_| bad("answer is not a token JSON"))?;
        let token = tr
            .token
            .filter(|t| !t.is_empty())
            .or(tr.access_token.filter(|t| !t.is_empty()))
            .ok_or_else(|| bad("answer holds no token"))?;
        if token.chars().any(|c| c.is_control() || c == ' ') {
            return Err(bad("token holds invalid characters"));
        }
        let life = Duration::from_secs(tr.expires_in.unwrap_or(60).max(1));
        let expiry = Instant::now()
            + life
                .saturating_sub(TOKEN_MARGIN)
                .max(Duration::from_secs(1));
        lock(&self.inner.auth)
            .tokens
            .insert(key.to_string(), (token.clone(), expiry));
        Ok(token)
    }

    /// Handles a 401: learns a Bearer challenge and fetches a token. Returns true when the
    /// request should be sent again.
    async fn on_unauthorized(&self, req: &Req, headers: &HeaderMap) -> Result<bool> {
        let Some(value) = headers.get(WWW_AUTHENTICATE) else {
            return Ok(false);
        };
        let redacted = redact_url(&req.url);
        let value = value.to_str().map_err(|_| OciError::InvalidChallenge {
            url: redacted.clone(),
            message: "header is not ASCII".to_string(),
        })?;
        let challenges = parse_challenges(value).map_err(|m| OciError::InvalidChallenge {
            url: redacted.clone(),
            message: m,
        })?;
        let Some(bearer) = challenges.iter().find(|c| c.scheme == "bearer") else {
            return Ok(false); // Basic: the credentials we sent (if any) were rejected
        };
        let realm_str = bearer
            .param("realm")
            .ok_or_else(|| OciError::InvalidChallenge {
                url: redacted.clone(),
                message: "Bearer challenge without realm".to_string(),
            })?;
        let realm = Url::parse(realm_str)
            .ok()
            .filter(|u| u.scheme() == "https" || u.scheme() == "http")
            .ok_or_else(|| OciError::InvalidChallenge {
                url: redacted.clone(),
                message: "realm is not an http(s) URL".to_string(),
            })?;
        let realm = BearerRealm {
            realm,
            service: bearer.param("service").map(str::to_string),
        };
        lock(&self.inner.auth).bearer = Some(realm.clone());
        let key = req.scope.clone().unwrap_or_default();
        let scope = bearer
            .param("scope")
            .map(str::to_string)
            .or(req.scope.clone());
        self.fetch_token(&realm, scope.as_deref(), &key).await?;
        Ok(true)
    }

    async fn execute(&self, req: Req) -> Result<Resp> {
        let inner = &self.inner;
        let _permit = inner
            .permits
            .acquire()
            .await
            .map_err(|_| OciError::InvalidConfig {
                message: "client is shut down".to_string(),
            })?;
        let policy = &inner.options.retry;
        let redacted = || redact_url(&req.url);
        let mut attempts: u32 = 0;
        let mut retries: u32 = 0;
        let mut auth_retried = false;
        loop {
            attempts += 1;
            let mut rb = inner.http.request(req.method.clone(), req.url.clone());
            if let Some(a) = req.accept {
                rb = rb.header(ACCEPT, a);
            }
            if let Some(h) = self.auth_header(&req).await? {
                rb = rb.header(AUTHORIZATION, h);
            }
            if let Some((body, ct)) = &req.body {
                rb = rb.header(CONTENT_TYPE, *ct).body(body.clone());
            }
            inner.counters.count(req.op);
            if retries > 0 {
                inner.counters.retry();
            }
            tracing::trace!(op = %req.op, method = %req.method, url = %redacted(), attempt = attempts, "request");
            let failure = match rb.send().await {
                Err(e) => transport_message(&e),
                Ok(resp) => {
                    let status = resp.status();
                    let headers = resp.headers().clone();
                    if status == StatusCode::UNAUTHORIZED && req.auth_retry && !auth_retried {
                        auth_retried = true;
                        if self.on_unauthorized(&req, &headers).await? {
                            attempts -= 1;
                            continue;
                        }
                    }
                    let head = req.method == Method::HEAD;
                    if req.retry
                        && is_retryable_status(status.as_u16())
                        && retries < policy.max_retries
                    {
                        retries += 1;
                        let wait = headers
                            .get(reqwest::header::RETRY_AFTER)
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| parse_retry_after(v, jiff::Timestamp::now()))
                            .map(|d| d.min(policy.max_retry_after))
                            .unwrap_or_else(|| policy.backoff(retries));
                        tracing::debug!(op = %req.op, url = %redacted(), status = status.as_u16(), wait_ms = wait.as_millis() as u64, "retrying");
                        drop(resp);
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    match read_capped(resp, inner.options.max_body_bytes, head).await {
                        Ok(body) => {
                            return Ok(Resp {
                                status,
                                headers,
                                body,
                                url: req.url.clone(),
                                attempts,
                            })
                        }
                        Err(ReadError::TooLarge) => {
                            return Err(OciError::BodyTooLarge {
                                op: req.op,
                                url: redacted(),
                                limit: inner.options.max_body_bytes,
                            })
                        }
                        Err(ReadError::Transport(m)) => m,
                    }
                }
            };
            if req.retry && retries < policy.max_retries {
                retries += 1;
                let wait = policy.backoff(retries);
                tracing::debug!(op = %req.op, url = %redacted(), error = %failure, wait_ms = wait.as_millis() as u64, "retrying after transport error");
                tokio::time::sleep(wait).await;
                continue;
            }
            return Err(OciError::Unreachable {
                op: req.op,
                url: redacted(),
                attempts,
                message: failure,
            });
        }
    }

    fn status_error(&self, op: Operation, resp: &Resp) -> OciError {
        let url = redact_url(&resp.url);
        let code = error_code(&resp.body);
        let status = resp.status.as_u16();
        match status {
            401 => OciError::Unauthorized { op, url, code },
            403 => OciError::Forbidden { op, url, code },
            404 => OciError::NotFound { op, url, code },
            s if is_retryable_status(s) => OciError::ServerError {
                op,
                url,
                status,
                code,
                attempts: resp.attempts,
            },
            _ => OciError::UnexpectedStatus {
                op,
                url,
                status,
                code,
            },
        }
    }

    fn invalid_body(&self, op: Operation, resp: &Resp, message: impl Into<String>) -> OciError {
        OciError::InvalidResponse {
            op,
            url: redact_url(&resp.url),
            message: message.into(),
        }
    }

    // ------------------------------------------------------------------ health

    /// `GET /v2/`: healthy when the registry answers 200 or 401 (it wants credentials, but it
    /// is up). One attempt, no retries and no token dance, so the latency is the registry's.
    pub async fn check(&self) -> Result<Health> {
        let mut req = Req::new(Operation::Ping, Method::GET, self.url("v2/")?);
        req.retry = false;
        req.auth_retry = false;
        let start = Instant::now();
        let resp = self.execute(req).await?;
        let latency = start.elapsed();
        match resp.status.as_u16() {
            200 | 401 => Ok(Health {
                status: resp.status.as_u16(),
                latency,
                auth_required: resp.status == StatusCode::UNAUTHORIZED,
                api_version: resp
                    .header("docker-distribution-api-version")
                    .map(str::to_string),
            }),
            _ => Err(self.status_error(Operation::Ping, &resp)),
        }
    }

    // ------------------------------------------------------------------ listing

    async fn paginate(
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

    fn incomplete(op: Operation, url: &Url, page: usize, e: OciError) -> OciError {
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
        let mut url = self.url("v2/_catalog")?;
        url.query_pairs_mut()
            .append_pair("n", &self.inner.options.page_size.to_string());
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
        Ok(list
            .into_iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect())
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
        let mut url = self.url(&format!("v2/{repository}/tags/list"))?;
        url.query_pairs_mut()
            .append_pair("n", &self.inner.options.page_size.to_string());
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
                Ok(list) => {
                    return Ok(list
                        .into_iter()
                        .collect::<BTreeSet<_>>()
                        .into_iter()
                        .collect())
                }
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

    // ------------------------------------------------------------------ manifests

    fn manifest_url(&self, repository: &str, reference: &str) -> Result<Url> {
        validate_repository(repository)?;
        validate_manifest_reference(reference)?;
        self.url(&format!("v2/{repository}/manifests/{reference}"))
    }

    /// `HEAD` a manifest by tag or digest: digest, media type and size, with every OCI and
    /// Docker manifest and index type in `Accept`. `Ok(None)` when it does not exist (404).
    /// Costs no pull in zot's statistics. A registry that sends no `Docker-Content-Digest` on
    /// HEAD is asked with GET instead.
    pub async fn head_manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<Option<ManifestHead>> {
        let url = self.manifest_url(repository, reference)?;
        let req = Req::new(Operation::HeadManifest, Method::HEAD, url)
            .scope(pull_scope(repository))
            .accept(media_types::ACCEPT_MANIFESTS);
        let resp = self.execute(req).await?;
        match resp.status.as_u16() {
            200 => {}
            404 => return Ok(None),
            _ => return Err(self.status_error(Operation::HeadManifest, &resp)),
        }
        let digest = resp
            .header("docker-content-digest")
            .map(str::trim)
            .filter(|d| is_digest(d))
            .map(str::to_string);
        let Some(digest) = digest else {
            let m = self.get_manifest(repository, reference).await?;
            return Ok(Some(m.head()));
        };
        if is_digest(reference) && reference != digest {
            return Err(OciError::DigestMismatch {
                url: redact_url(&resp.url),
                expected: reference.to_string(),
                actual: digest,
            });
        }
        let media_type = resp
            .header("content-type")
            .map(|c| c.split(';').next().unwrap_or("").trim().to_string())
            .unwrap_or_default();
        let size = resp
            .header("content-length")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        Ok(Some(ManifestHead {
            digest,
            media_type,
            size,
        }))
    }

    /// `HEAD`s every tag of `tags` in `repository`, as many at once as the client's
    /// concurrency allows. Fails as a whole when any HEAD fails (an inventory with a hole must
    /// not drive deletions); tags that vanished between listing and HEAD (404) are returned in
    /// [`TagHeads::vanished`].
    pub async fn head_tags(&self, repository: &str, tags: &[String]) -> Result<TagHeads> {
        use futures::stream::{self, StreamExt, TryStreamExt};
        validate_repository(repository)?;
        let found: Vec<(String, Option<ManifestHead>)> = stream::iter(tags)
            .map(|t| async move {
                validate_tag(t)?;
                Ok::<_, OciError>((t.clone(), self.head_manifest(repository, t).await?))
            })
            .buffer_unordered(self.inner.options.max_concurrency)
            .try_collect()
            .await?;
        let mut out = TagHeads::default();
        for (t, h) in found {
            match h {
                Some(h) => {
                    out.heads.insert(t, h);
                }
                None => out.vanished.push(t),
            }
        }
        out.vanished.sort();
        Ok(out)
    }

    /// `GET` a manifest or index by tag or digest and parse it. Content fetched by digest is
    /// verified against that digest. A missing manifest is [`OciError::NotFound`].
    ///
    /// In zot this counts as a pull; prefer [`head_manifest`](Self::head_manifest) where the
    /// digest is enough.
    pub async fn get_manifest(&self, repository: &str, reference: &str) -> Result<Manifest> {
        let url = self.manifest_url(repository, reference)?;
        let req = Req::new(Operation::GetManifest, Method::GET, url)
            .scope(pull_scope(repository))
            .accept(media_types::ACCEPT_MANIFESTS);
        let resp = self.execute(req).await?;
        if resp.status != StatusCode::OK {
            return Err(self.status_error(Operation::GetManifest, &resp));
        }
        let computed = sha256_digest(&resp.body);
        let digest = if is_digest(reference) {
            if reference.starts_with("sha256:") && reference != computed {
                return Err(OciError::DigestMismatch {
                    url: redact_url(&resp.url),
                    expected: reference.to_string(),
                    actual: computed,
                });
            }
            reference.to_string()
        } else {
            match resp.header("docker-content-digest").map(str::trim) {
                Some(d) if d.starts_with("sha256:") && d != computed => {
                    return Err(OciError::DigestMismatch {
                        url: redact_url(&resp.url),
                        expected: d.to_string(),
                        actual: computed,
                    })
                }
                Some(d) if is_digest(d) => d.to_string(),
                _ => computed,
            }
        };
        let content_type = resp
            .header("content-type")
            .map(|c| c.split(';').next().unwrap_or("").trim().to_string());
        Manifest::parse(digest, content_type, resp.body.clone())
            .map_err(|m| self.invalid_body(Operation::GetManifest, &resp, m))
    }

    /// Re-resolves `tag` right before a delete: is it still on `expected_digest`?
    pub async fn check_tag(
        &self,
        repository: &str,
        tag: &str,
        expected_digest: &str,
    ) -> Result<TagCheck> {
        validate_tag(tag)?;
        Ok(match self.head_manifest(repository, tag).await? {
            None => TagCheck::Gone,
            Some(h) if h.digest == expected_digest => TagCheck::Unchanged(h),
            Some(h) => TagCheck::Moved(h),
        })
    }

    /// The `created` time of an image config blob. Remembered by digest in the client's
    /// [`AgeCache`] (its own, or the one [`ClientOptions::age_cache`] shares), so a config is
    /// read once. `Ok(None)` when the config has no usable `created` (missing, unparseable,
    /// or a reproducible-build placeholder: [`crate::oci::manifest::build_time`]). The blob is
    /// verified against its digest before it is believed.
    pub async fn config_created(
        &self,
        repository: &str,
        config_digest: &str,
    ) -> Result<Option<jiff::Timestamp>> {
        validate_repository(repository)?;
        validate_digest(config_digest)?;
        if let Some(c) = self.inner.created_cache.get(config_digest) {
            return Ok(c);
        }
        let url = self.url(&format!("v2/{repository}/blobs/{config_digest}"))?;
        let req = Req::new(Operation::GetBlob, Method::GET, url).scope(pull_scope(repository));
        let resp = self.execute(req).await?;
        if resp.status != StatusCode::OK {
            return Err(self.status_error(Operation::GetBlob, &resp));
        }
        if config_digest.starts_with("sha256:") {
            let actual = sha256_digest(&resp.body);
            if actual != config_digest {
                return Err(OciError::DigestMismatch {
                    url: redact_url(&resp.url),
                    expected: config_digest.to_string(),
                    actual,
                });
            }
        }
        #[derive(Deserialize)]
        struct Created {
            #[serde(default)]
            created: Option<serde_json::Value>,
        }
        let c: Created = serde_json::from_slice(&resp.body).map_err(|e| {
            self.invalid_body(
                Operation::GetBlob,
                &resp,
                format!("config is not JSON: {e}"),
            )
        })?;
        let created = c
            .created
            .and_then(|v| v.as_str().and_then(super::manifest::build_time));
        self.inner.created_cache.insert(config_digest, created);
        Ok(created)
    }

    /// The referrers of `digest` (signatures, SBOMs, attestations whose `subject` it is): from
    /// the referrers API, or — when the registry has none (404) — from the `sha256-<hex>` tag
    /// of the referrers tag schema (empty when that tag does not exist).
    pub async fn referrers(&self, repository: &str, digest: &str) -> Result<Referrers> {
        validate_repository(repository)?;
        validate_digest(digest)?;
        let url = self.url(&format!("v2/{repository}/referrers/{digest}"))?;
        let req = Req::new(Operation::Referrers, Method::GET, url)
            .scope(pull_scope(repository))
            .accept(media_types::OCI_INDEX);
        let resp = self.execute(req).await?;
        let ct = resp
            .header("content-type")
            .map(|c| c.split(';').next().unwrap_or("").trim().to_string());
        if resp.status == StatusCode::OK && ct.as_deref() == Some(media_types::OCI_INDEX) {
            let idx: oci_spec::image::ImageIndex =
                serde_json::from_slice(&resp.body).map_err(|e| {
                    self.invalid_body(Operation::Referrers, &resp, format!("referrers index: {e}"))
                })?;
            return Ok(Referrers {
                source: ReferrersSource::Api,
                descriptors: idx.manifests().clone(),
            });
        }
        if !matches!(resp.status.as_u16(), 200 | 404 | 405) {
            return Err(self.status_error(Operation::Referrers, &resp));
        }
        // No referrers API: the tag schema.
        let tag = referrers_tag(digest)?;
        if self.head_manifest(repository, &tag).await?.is_none() {
            return Ok(Referrers {
                source: ReferrersSource::TagSchema,
                descriptors: Vec::new(),
            });
        }
        let m = self.get_manifest(repository, &tag).await?;
        Ok(Referrers {
            source: ReferrersSource::TagSchema,
            descriptors: m.children().to_vec(),
        })
    }

    // ------------------------------------------------------------------ delete

    async fn delete(&self, repository: &str, reference: &str) -> Result<Resp> {
        let url = self.manifest_url(repository, reference)?;
        let req = Req::new(Operation::DeleteManifest, Method::DELETE, url)
            .scope(format!("repository:{repository}:delete"));
        self.execute(req).await
    }

    /// Deletes one tag, leaving the manifest and its other tags in place (zot). Registries that
    /// can only delete by digest (distribution: `400 DIGEST_INVALID`, or 405) give
    /// [`OciError::TagDeleteUnsupported`], so the caller can fall back to
    /// [`delete_manifest`](Self::delete_manifest) when every tag on the digest is going.
    pub async fn delete_tag(&self, repository: &str, tag: &str) -> Result<DeleteOutcome> {
        validate_tag(tag)?;
        let resp = self.delete(repository, tag).await?;
        let code = error_code(&resp.body);
        match resp.status.as_u16() {
            200 | 202 | 204 => Ok(DeleteOutcome::Deleted),
            404 => Ok(DeleteOutcome::AlreadyGone),
            400 if code.as_deref() == Some("NAME_UNKNOWN") => Ok(DeleteOutcome::AlreadyGone),
            400 | 405 => Err(OciError::TagDeleteUnsupported {
                url: redact_url(&resp.url),
                status: resp.status.as_u16(),
                code,
            }),
            _ => Err(self.status_error(Operation::DeleteManifest, &resp)),
        }
    }

    /// Deletes a manifest by digest — in every registry this removes **every tag** pointing to
    /// it. 404 is success ([`DeleteOutcome::AlreadyGone`]); 405, 400 `UNSUPPORTED` and 409 are
    /// [`OciError::DeleteNotAllowed`] (deletes disabled, or still referenced by an index).
    pub async fn delete_manifest(&self, repository: &str, digest: &str) -> Result<DeleteOutcome> {
        validate_digest(digest)?;
        let resp = self.delete(repository, digest).await?;
        let code = error_code(&resp.body);
        match resp.status.as_u16() {
            200 | 202 | 204 => Ok(DeleteOutcome::Deleted),
            404 => Ok(DeleteOutcome::AlreadyGone),
            400 if code.as_deref() == Some("NAME_UNKNOWN") => Ok(DeleteOutcome::AlreadyGone),
            400 | 405 | 409 => Err(OciError::DeleteNotAllowed {
                url: redact_url(&resp.url),
                status: resp.status.as_u16(),
                code,
            }),
            _ => Err(self.status_error(Operation::DeleteManifest, &resp)),
        }
    }

    // ------------------------------------------------------------------ zot

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
        let req = Req::new(
            Operation::Capabilities,
            Method::GET,
            self.url("v2/_zot/ext/mgmt")?,
        )
        .accept("application/json");
        let resp = self.execute(req).await?;
        if resp.status == StatusCode::OK {
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
            if let Ok(m) = serde_json::from_slice::<Mgmt>(&resp.body) {
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
        } else if is_retryable_status(resp.status.as_u16()) {
            return Err(self.status_error(Operation::Capabilities, &resp));
        }
        let req = Req::new(
            Operation::Capabilities,
            Method::GET,
            self.url("v2/_oci/ext/discover")?,
        )
        .accept("application/json");
        let resp = self.execute(req).await?;
        if resp.status == StatusCode::OK {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&resp.body) {
                let text = v.to_string();
                let search = text.contains("/_zot/ext/search");
                if search || text.contains("_zot") {
                    return Ok(Capabilities {
                        zot: Some(ZotInfo::default()),
                        search,
                    });
                }
            }
        } else if is_retryable_status(resp.status.as_u16()) {
            return Err(self.status_error(Operation::Capabilities, &resp));
        }
        Ok(Capabilities::default())
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
        let mut offset: u64 = 0;
        let mut out: std::collections::BTreeMap<String, TagStats> = Default::default();
        let mut total: Option<u64> = None;
        loop {
            // `repository` passed the name grammar: it cannot break out of the string literal.
            let query = format!(
                "{{ ImageList(repo: \"{repository}\", requestedPage: {{limit: {limit}, offset: {offset}, sortBy: ALPHABETIC_ASC}}) \
                 {{ Page {{ TotalCount ItemCount }} Results {{ RepoName Tag Digest MediaType PushTimestamp LastPullTimestamp DownloadCount }} }} }}"
            );
            let body = serde_json::to_vec(&serde_json::json!({ "query": query })).map_err(|e| {
                OciError::InvalidConfig {
                    message: format!("encoding search query: {e}"),
                }
            })?;
            let mut req = Req::new(Operation::Search, Method::POST, url.clone())
                .scope(pull_scope(repository))
                .accept("application/json");
            req.body = Some((body, "application/json"));
            let resp = self.execute(req).await?;
            if resp.status != StatusCode::OK {
                return Err(self.status_error(Operation::Search, &resp));
            }
            let page: SearchResponse = serde_json::from_slice(&resp.body).map_err(|e| {
                self.invalid_body(Operation::Search, &resp, format!("search answer: {e}"))
            })?;
            if let Some(e) = page.errors.as_ref().and_then(|e| e.first()) {
                return Err(self.invalid_body(
                    Operation::Search,
                    &resp,
                    format!(
                        "search error: {}",
                        e.message.as_deref().unwrap_or("unknown")
                    ),
                ));
            }
            let list = page.data.and_then(|d| d.image_list).ok_or_else(|| {
                self.invalid_body(Operation::Search, &resp, "no ImageList in answer")
            })?;
            let this_total = list.page.as_ref().and_then(|p| p.total_count);
            let t = *total.get_or_insert(this_total.unwrap_or(0));
            let results = list.results.unwrap_or_default();
            let n = results.len() as u64;
            for r in results {
                if r.repo_name.as_deref().is_some_and(|n| n != repository) {
                    continue;
                }
                let (Some(tag), Some(digest)) = (r.tag, r.digest) else {
                    continue;
                };
                out.insert(
                    tag.clone(),
                    TagStats {
                        tag,
                        digest,
                        media_type: r.media_type,
                        pushed: r.push_timestamp.as_deref().and_then(parse_zot_time),
                        last_pulled: r.last_pull_timestamp.as_deref().and_then(parse_zot_time),
                        download_count: r.download_count,
                    },
                );
            }
            offset += n;
            if offset >= t {
                return Ok(out.into_values().collect());
            }
            if n == 0 {
                return Err(OciError::IncompleteListing {
                    op: Operation::Search,
                    url: redact_url(&url),
                    message: format!("search returned {offset} of {t} images"),
                });
            }
        }
    }
}

/// 400 `PAGINATION_NUMBER_INVALID` (distribution: `n` > 1000) or another 400 on the first
/// page of a listing that asked for a page size.
fn is_page_size_refusal(e: &OciError) -> bool {
    matches!(e, OciError::UnexpectedStatus { status: 400, .. })
}

/// A registry's base URL, checked and normalised: `http` or `https` with a host; query and
/// fragment dropped; a trailing `/v2` (the API root, which people copy from curl commands)
/// removed; the path ending in `/`. Credentials in the URL are kept for the caller.
pub fn parse_base_url(input: &str) -> Result<Url> {
    let input = input.trim();
    let invalid = |message: String| OciError::InvalidConfig { message };
    if !input.contains("://") {
        return Err(invalid(format!(
            "registry URL {:?} has no scheme: write http://{0} or https://{0}",
            redact_hint(input)
        )));
    }
    let mut base = Url::parse(input).map_err(|e| {
        invalid(format!(
            "registry URL {:?} is not a URL: {e}",
            redact_hint(input)
        ))
    })?;
    if base.scheme() != "http" && base.scheme() != "https" {
        return Err(invalid(format!(
            "registry URL scheme must be http or https, not {}",
            base.scheme()
        )));
    }
    if base.host_str().is_none() {
        return Err(invalid("registry URL has no host".to_string()));
    }
    base.set_query(None);
    base.set_fragment(None);
    let path = base.path().trim_end_matches('/');
    let path = path.strip_suffix("/v2").unwrap_or(path);
    let path = format!("{path}/");
    base.set_path(&path);
    Ok(base)
}

fn parse_zot_time(s: &str) -> Option<jiff::Timestamp> {
    let t: jiff::Timestamp = s.parse().ok()?;
    // zot reports "never" as the zero time (0001-01-01)
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
    last_pull_timestamp: Option<String>,
    #[serde(default)]
    download_count: Option<u64>,
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn redact_hint(s: &str) -> String {
    // an unparseable URL may hold credentials: show only its first characters up to '@'
    let cut = s.find('@').unwrap_or(s.len()).min(40);
    s.chars().take(cut).collect()
}

fn transport_message(e: &reqwest::Error) -> String {
    // reqwest's Display includes the URL, which may hold a signed query: build the message
    // from the error's kind and its causes instead.
    let mut msg = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect error"
    } else if e.is_body() || e.is_decode() {
        "body error"
    } else if e.is_request() {
        "request error"
    } else {
        "transport error"
    }
    .to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg = format!("{msg}: {s}");
        src = s.source();
    }
    msg
}

async fn read_capped(
    mut resp: reqwest::Response,
    limit: u64,
    head: bool,
) -> std::result::Result<Vec<u8>, ReadError> {
    if head {
        return Ok(Vec::new());
    }
    if let Some(len) = resp
        .headers()
        .get(reqwest::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len > limit {
            return Err(ReadError::TooLarge);
        }
    }
    let mut out = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => {
                if out.len() as u64 + c.len() as u64 > limit {
                    return Err(ReadError::TooLarge);
                }
                out.extend_from_slice(&c);
            }
            Ok(None) => return Ok(out),
            Err(e) => return Err(ReadError::Transport(transport_message(&e))),
        }
    }
}
