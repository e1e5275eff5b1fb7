//! Transport settings and the pieces of the request loop that do not need the client: retry
//! policy and backoff, `Retry-After`, `Link` headers, capped body reads, request counters.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng as _;

use super::address::{AddressPolicy, Resolver};
use super::cache::AgeCache;
use super::error::Operation;

/// How the client retries transient failures (network errors, 5xx, 408, 429).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0 = never retry).
    pub max_retries: u32,
    /// Backoff before the first retry; doubled for each further retry, with jitter.
    pub initial_backoff: Duration,
    /// Upper bound of one backoff.
    pub max_backoff: Duration,
    /// Upper bound of a wait requested by `Retry-After` (a longer request is cut to this).
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 4,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The jittered exponential backoff before retry number `retry` (1-based): a random
    /// duration between half and all of `min(max_backoff, initial_backoff * 2^(retry-1))`.
    pub fn backoff(&self, retry: u32) -> Duration {
        let exp = self.initial_backoff.saturating_mul(
            1u32.checked_shl(retry.saturating_sub(1))
                .unwrap_or(u32::MAX),
        );
        let cap = exp.min(self.max_backoff);
        let ms = cap.as_millis().min(u64::MAX as u128) as u64;
        if ms == 0 {
            return cap;
        }
        let half = ms / 2;
        Duration::from_millis(half + rand::rng().random_range(0..=ms - half))
    }
}

/// Settings of a [`RegistryClient`](super::RegistryClient).
#[derive(Clone)]
pub struct ClientOptions {
    /// Deadline of one request attempt, body included.
    pub timeout: Duration,
    /// Deadline of establishing a connection.
    pub connect_timeout: Duration,
    /// Requests in flight at most, across every task sharing the client.
    pub max_concurrency: usize,
    /// Retry policy for transient failures.
    pub retry: RetryPolicy,
    /// Largest response body read; a larger one is a [`BodyTooLarge`](super::OciError::BodyTooLarge)
    /// error. Manifests are limited to 4 MiB by most registries.
    pub max_body_bytes: u64,
    /// Most bytes the names of one listing (`_catalog`, or one repository's tags, all pages)
    /// may take in memory — each name's length plus a `String`'s own 24 bytes. A larger
    /// listing is a [`ListingTooLarge`](super::OciError::ListingTooLarge) error: nothing is
    /// decided from it. 64 MiB holds a million names of 40 bytes.
    pub max_listing_bytes: u64,
    /// Page size (`n`) asked for when listing repositories and tags. Distribution allows at
    /// most 1000.
    pub page_size: u32,
    /// Page size of zot search queries.
    pub search_page_size: u32,
    /// Extra CA certificates (PEM bundle) trusted beside the system roots.
    pub ca_pem: Option<Vec<u8>>,
    /// Accept any TLS certificate. Only for test registries.
    pub insecure_skip_tls_verify: bool,
    /// `User-Agent` header.
    pub user_agent: String,
    /// Where config `created` times are remembered. `None` (the default): each client has
    /// its own. A long-lived process gives every client the same cache (clones of these
    /// options share it), so scheduled runs read only the configs they have not seen.
    pub age_cache: Option<Arc<AgeCache>>,
    /// Hosts of Bearer token realms trusted with the Basic credentials beside the registry's
    /// own host and its registrable domain (see [`trust`](super::trust)).
    pub trusted_token_realms: Vec<String>,
    /// Which addresses may be connected to: judged on IP literals before a request, on every
    /// redirect, and on every address a name resolves to at connect time. The default allows
    /// loopback (the binary run by hand); cloud metadata, link-local and unspecified
    /// addresses are always refused.
    pub address_policy: AddressPolicy,
    /// Resolves host names; `None`: the system's resolver. The policy judges what it answers.
    pub resolver: Option<Arc<dyn Resolver>>,
    /// Told of every request attempt (token requests and retries included): the operator's
    /// metrics. `None`: nobody is told; [`stats`](super::RegistryClient::stats) counts anyway.
    pub observer: Option<Arc<dyn RequestObserver>>,
}

/// Told of each request attempt a client made: what it was for, how it was answered and how
/// long the answer took (until the status line and headers; reading the body is not timed).
pub trait RequestObserver: Send + Sync {
    /// One attempt of `op`: `status` is the HTTP status, `None` when no answer came
    /// (connection refused, timeout, TLS failure).
    fn observe(&self, op: Operation, status: Option<u16>, elapsed: Duration);
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            max_concurrency: 16,
            retry: RetryPolicy::default(),
            max_body_bytes: 8 * 1024 * 1024,
            max_listing_bytes: 64 * 1024 * 1024,
            page_size: 1000,
            search_page_size: 500,
            ca_pem: None,
            insecure_skip_tls_verify: false,
            user_agent: format!("registry-operator/{}", env!("CARGO_PKG_VERSION")),
            age_cache: None,
            trusted_token_realms: Vec::new(),
            address_policy: AddressPolicy::default(),
            resolver: None,
            observer: None,
        }
    }
}

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientOptions")
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_concurrency", &self.max_concurrency)
            .field("retry", &self.retry)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_listing_bytes", &self.max_listing_bytes)
            .field("page_size", &self.page_size)
            .field("search_page_size", &self.search_page_size)
            .field("ca_pem", &self.ca_pem.as_ref().map(|c| c.len()))
            .field("insecure_skip_tls_verify", &self.insecure_skip_tls_verify)
            .field("user_agent", &self.user_agent)
            .field("age_cache", &self.age_cache)
            .field("trusted_token_realms", &self.trusted_token_realms)
            .field("address_policy", &self.address_policy)
            .field("resolver", &self.resolver.as_ref().map(|_| "custom"))
            .field("observer", &self.observer.as_ref().map(|_| "set"))
            .finish()
    }
}

/// Parses a `Retry-After` value: delay-seconds or an HTTP-date (RFC 9110 §10.2.3). A date in
/// the past is a zero wait; anything else unparseable is `None`.
pub fn parse_retry_after(value: &str, now: jiff::Timestamp) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(v)
        .ok()?;
    let d = at.duration_since(now);
    Some(Duration::try_from(d).unwrap_or(Duration::ZERO))
}

/// Finds the `rel="next"` target in a `Link` header value (RFC 8288): entries
/// `<uri-reference>; param=value; …` separated by commas. `Ok(None)` when no entry has
/// `rel=next`; an error when the header is malformed.
pub fn parse_next_link(value: &str) -> Result<Option<String>, String> {
    let mut rest = value.trim();
    let mut next = None;
    while !rest.is_empty() {
        let Some(after_lt) = rest.strip_prefix('<') else {
            return Err(format!("expected '<' at {:?}", truncate(rest)));
        };
        let Some(end) = after_lt.find('>') else {
            return Err("unterminated '<'".to_string());
        };
        let target = &after_lt[..end];
        if target.is_empty() || target.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("invalid link target {:?}", truncate(target)));
        }
        rest = after_lt[end + 1..].trim_start();
        let mut is_next = false;
        // parameters up to the next ',' outside quotes
        loop {
            if rest.is_empty() {
                break;
            }
            if let Some(r) = rest.strip_prefix(',') {
                rest = r.trim_start();
                break;
            }
            let Some(r) = rest.strip_prefix(';') else {
                return Err(format!("expected ';' or ',' at {:?}", truncate(rest)));
            };
            let r = r.trim_start();
            let name_end = r.find(['=', ';', ',']).unwrap_or(r.len());
            let name = r[..name_end].trim().to_ascii_lowercase();
            if name.is_empty() {
                return Err("empty link parameter name".to_string());
            }
            let mut r = &r[name_end..];
            let mut val = String::new();
            if let Some(v) = r.strip_prefix('=') {
                let v = v.trim_start();
                if let Some(q) = v.strip_prefix('"') {
                    let Some(close) = q.find('"') else {
                        return Err("unterminated quoted link parameter".to_string());
                    };
                    val = q[..close].to_string();
                    r = &q[close + 1..];
                } else {
                    let e = v.find([';', ',']).unwrap_or(v.len());
                    val = v[..e].trim().to_string();
                    r = &v[e..];
                }
            }
            if name == "rel"
                && val
                    .split_ascii_whitespace()
                    .any(|t| t.eq_ignore_ascii_case("next"))
            {
                is_next = true;
            }
            rest = r.trim_start();
        }
        if is_next && next.is_none() {
            next = Some(target.to_string());
        }
    }
    Ok(next)
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Per-operation request counters of a client (every attempt is counted, retries and token
/// requests included).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    by_op: [AtomicU64; Operation::ALL.len()],
    retries: AtomicU64,
    mutating: AtomicU64,
}

impl Counters {
    pub(crate) fn count(&self, op: Operation) {
        self.by_op[op.index()].fetch_add(1, Ordering::Relaxed);
        if op.is_mutating() {
            self.mutating.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> RequestStats {
        let by_operation: BTreeMap<Operation, u64> = Operation::ALL
            .iter()
            .map(|op| (*op, self.by_op[op.index()].load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect();
        RequestStats {
            total: by_operation.values().sum(),
            by_operation,
            retries: self.retries.load(Ordering::Relaxed),
            mutating: self.mutating.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn reset(&self) {
        for c in &self.by_op {
            c.store(0, Ordering::Relaxed);
        }
        self.retries.store(0, Ordering::Relaxed);
        self.mutating.store(0, Ordering::Relaxed);
    }
}

/// A snapshot of a client's request counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestStats {
    /// HTTP requests sent per operation (attempts, so retries count).
    pub by_operation: BTreeMap<Operation, u64>,
    /// All HTTP requests sent.
    pub total: u64,
    /// Attempts that were retries of an earlier failed attempt.
    pub retries: u64,
    /// Requests that change the registry (see [`Operation::is_mutating`]); a run that must
    /// not change anything (a plan) can assert this is zero.
    pub mutating: u64,
}

impl RequestStats {
    /// Requests sent for one operation.
    pub fn get(&self, op: Operation) -> u64 {
        self.by_operation.get(&op).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn next_link_is_found_among_other_relations() {
        assert_eq!(
            parse_next_link(r#"</v2/_catalog?last=a%2Fb&n=100>; rel="next""#).unwrap(),
            Some("/v2/_catalog?last=a%2Fb&n=100".to_string())
        );
        assert_eq!(
            parse_next_link(r#"<https://r/v2/x?a=1>; rel="prev", <https://r/v2/x?a=2>; rel=next"#)
                .unwrap(),
            Some("https://r/v2/x?a=2".to_string())
        );
        assert_eq!(parse_next_link(r#"</a>; rel="prev""#).unwrap(), None);
        assert_eq!(
            parse_next_link(r#"</a>; title="x, y"; rel="next last""#).unwrap(),
            Some("/a".into())
        );
    }

    #[test]
    fn malformed_link_headers_are_errors() {
        for bad in [
            "/v2/_catalog; rel=next",
            "</v2/_catalog",
            "<>; rel=next",
            "</a> rel=next",
            r#"</a>; rel="next"#,
        ] {
            assert!(parse_next_link(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        let now: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 2026 00:00:05 GMT", now),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            parse_retry_after("Wed, 31 Dec 2025 00:00:05 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy {
            max_retries: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
            max_retry_after: Duration::from_secs(1),
        };
        for _ in 0..50 {
            let b1 = p.backoff(1);
            assert!(b1 >= Duration::from_millis(50) && b1 <= Duration::from_millis(100));
            let b9 = p.backoff(40);
            assert!(b9 >= Duration::from_millis(500) && b9 <= Duration::from_millis(1000));
        }
    }

    proptest! {
        #[test]
        fn link_parser_never_panics(s in "\\PC{0,200}") {
            let _ = parse_next_link(&s);
        }

        #[test]
        fn retry_after_parser_never_panics(s in "\\PC{0,60}") {
            let _ = parse_retry_after(&s, jiff::Timestamp::UNIX_EPOCH);
        }
    }
}
