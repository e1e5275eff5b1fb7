//! [`RegistryClient`]: one pooled HTTP client per registry, shared by cloning.

//!
//! One file per concern, each adding its methods to [`RegistryClient`]:
//!
//! - `token`: the Bearer challenge and the token flow, tokens cached per scope;
//! - `request`: the request executor — concurrency limit, auth, retries, capped bodies —
//!   and the mapping of statuses to [`OciError`];
//! - `listing`: `_catalog` and `tags/list` with `Link` pagination;
//! - `manifests`: HEAD/GET manifests, config `created` times, referrers;
//! - `artifact`: the artifact writer — blob uploads (whole or chunked), mounts, artifact
//!   manifests read back and verified — and its readers;
//! - `delete`: deletes by tag and by digest;
//! - `search`: zot detection and its search extension (GraphQL) with its types.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use tokio::sync::{OnceCell, Semaphore};
use url::Url;

use super::address::{AddressPolicy, PolicyResolver, SystemResolver};
use super::auth::Credentials;
use super::cache::AgeCache;
use super::error::{OciError, Operation, Result};
use super::host::url_host;
use super::redact::redact_url;
use super::transport::{ClientOptions, Counters, RequestStats};

mod artifact;
mod delete;
mod listing;
mod manifests;
mod request;
mod search;
mod token;

pub use artifact::{
    ArtifactManifest, BlobOutcome, MountOutcome, PushedArtifact, PushedBlob, SubjectLink,
    DEFAULT_CHUNK_BYTES, EMPTY_CONFIG, EMPTY_CONFIG_MEDIA_TYPE,
};
pub use delete::DeleteOutcome;
pub use manifests::{Referrers, ReferrersSource, TagCheck, TagHeads};
pub use search::{Capabilities, TagStats, ZotInfo};

use request::Req;
use token::AuthState;
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
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn pull_scope(repo: &str) -> String {
    format!("repository:{repo}:pull")
}
impl RegistryClient {
    /// A client for the registry at `base_url` (`https://reg.example.com`, optionally with a
    /// path prefix before `/v2/`). User info in the URL is used as basic credentials when
    /// `credentials` is anonymous, and never printed. A URL whose host is an IP literal the
    /// [`address_policy`](ClientOptions::address_policy) refuses is an
    /// [`AddressNotAllowed`](OciError::AddressNotAllowed) error.
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
        // An IP literal the address policy refuses is refused here, before any request.
        if let Err(r) = options.address_policy.check_url(&base) {
            return Err(OciError::AddressNotAllowed {
                url: redact_url(&base).trim_end_matches('/').to_string(),
                host: r.host,
                address: r.address,
                rule: r.rule,
            });
        }
        if options.max_concurrency == 0 {
            return Err(OciError::InvalidConfig {
                message: "max_concurrency must be at least 1".to_string(),
            });
        }
        crate::tls::install_crypto_provider();
        let mut builder = reqwest::Client::builder()
            .user_agent(options.user_agent.clone())
            .timeout(options.timeout)
            .connect_timeout(options.connect_timeout)
            .pool_max_idle_per_host(options.max_concurrency)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .dns_resolver(PolicyResolver::new(
                options.address_policy,
                options
                    .resolver
                    .clone()
                    .unwrap_or_else(|| Arc::new(SystemResolver)),
            ))
            .redirect(redirect_policy(options.address_policy));
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
        url_host(&self.inner.base)
    }

    /// Whether the client sends credentials (it is not anonymous).
    pub fn has_credentials(&self) -> bool {
        self.inner.credentials != Credentials::Anonymous
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
}

/// Redirects followed: at most this many per request.
const MAX_REDIRECTS: usize = 5;

/// Follows at most [`MAX_REDIRECTS`] redirects, each judged by `policy` before it is followed:
/// a `Location` with a refused IP literal fails the request (nothing is sent there); a name
/// goes through the resolver, which judges its addresses.
fn redirect_policy(policy: AddressPolicy) -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() > MAX_REDIRECTS {
            return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
        }
        match policy.check_url(attempt.url()) {
            Err(refused) => attempt.error(refused),
            Ok(_) => attempt.follow(),
        }
    })
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
