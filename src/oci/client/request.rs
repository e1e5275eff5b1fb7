//! The request executor: one request through the concurrency limit, the auth header, the
//! retry policy and the body cap; and the mapping of an answer's status to [`OciError`].

use reqwest::header::{HeaderMap, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use url::Url;

use super::RegistryClient;
use crate::oci::error::{is_retryable_status, OciError, Operation, Result};
use crate::oci::redact::redact_url;
use crate::oci::transport::parse_retry_after;

pub(super) struct Req {
    pub(super) op: Operation,
    pub(super) method: Method,
    pub(super) url: Url,
    pub(super) scope: Option<String>,
    pub(super) accept: Option<&'static str>,
    pub(super) body: Option<(bytes::Bytes, std::borrow::Cow<'static, str>)>,
    /// Further request headers (`Content-Range` of an upload chunk).
    pub(super) headers: Vec<(reqwest::header::HeaderName, String)>,
    pub(super) retry: bool,
    pub(super) auth_retry: bool,
}

impl Req {
    pub(super) fn new(op: Operation, method: Method, url: Url) -> Self {
        Req {
            op,
            method,
            url,
            scope: None,
            accept: None,
            body: None,
            headers: Vec::new(),
            retry: true,
            auth_retry: true,
        }
    }
    pub(super) fn scope(mut self, scope: String) -> Self {
        self.scope = Some(scope);
        self
    }
    pub(super) fn accept(mut self, accept: &'static str) -> Self {
        self.accept = Some(accept);
        self
    }
}

pub(super) struct Resp {
    pub(super) status: StatusCode,
    pub(super) headers: HeaderMap,
    pub(super) body: Vec<u8>,
    pub(super) url: Url,
    pub(super) attempts: u32,
    /// Whether the request that got this answer presented the user's credentials.
    pub(super) sent_credentials: bool,
}

impl Resp {
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub(super) enum ReadError {
    TooLarge,
    Transport(String),
}

/// An error answer: the distribution spec's `{"errors": [{"code", …}]}`, or the single
/// `{"code", …}` zot v2.1 sends with its 401s.
#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<ErrorEntry>,
    #[serde(default)]
    code: Option<String>,
}

#[derive(Deserialize)]
struct ErrorEntry {
    #[serde(default)]
    code: Option<String>,
}

/// The distribution error code of an answer; only a code as the spec writes them
/// (`NAME_UNKNOWN`: capitals, digits, `_`, at most 64) is kept, nothing else of the body.
pub(super) fn error_code(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .and_then(|b| b.errors.into_iter().find_map(|e| e.code).or(b.code))
        .filter(|c| {
            !c.is_empty()
                && c.len() <= 64
                && c.bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        })
}

/// Where a streamed body goes, chunk by chunk, instead of a capped buffer (listings, whose
/// size follows the registry's, not a manifest's). The sink bounds what it keeps itself.
pub(super) trait BodySink: Send {
    /// Forgets what an earlier attempt fed (the request is being retried).
    fn reset(&mut self);
    /// The next chunk of the body; an error stops the read.
    fn push(&mut self, chunk: &[u8]) -> std::result::Result<(), SinkStop>;
    /// The body ended; an error when it ended too early.
    fn finish(&mut self) -> std::result::Result<(), SinkStop>;
}

/// Why a [`BodySink`] stopped reading.
#[derive(Debug)]
pub(super) enum SinkStop {
    /// The body is not what was expected.
    Invalid(String),
    /// What the sink keeps would outgrow its budget: `what` holds more than `limit` bytes.
    OverBudget {
        /// What is being read (`catalog`, `tag list`).
        what: &'static str,
        /// The budget in bytes.
        limit: u64,
    },
}

enum SinkError {
    Stopped(SinkStop),
    Transport(String),
}

async fn read_into(
    mut resp: reqwest::Response,
    sink: &mut dyn BodySink,
) -> std::result::Result<(), SinkError> {
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => sink.push(&c).map_err(SinkError::Stopped)?,
            Ok(None) => return sink.finish().map_err(SinkError::Stopped),
            Err(e) => return Err(SinkError::Transport(transport_message(&e))),
        }
    }
}

impl RegistryClient {
    /// Tells the options' observer of one attempt of `op` that started at `started`.
    pub(super) fn observe(&self, op: Operation, status: Option<u16>, started: std::time::Instant) {
        if let Some(o) = &self.inner.options.observer {
            o.observe(op, status, started.elapsed());
        }
    }

    pub(super) async fn execute(&self, req: Req) -> Result<Resp> {
        self.execute_with(req, None).await
    }

    /// [`execute`](Self::execute), a 200's body going to `sink` rather than into
    /// [`Resp::body`] (which stays empty): no body cap then, the sink bounds what it keeps.
    /// Other answers are read, capped, into [`Resp::body`] as usual.
    pub(super) async fn execute_with(
        &self,
        req: Req,
        mut sink: Option<&mut dyn BodySink>,
    ) -> Result<Resp> {
        let inner = &self.inner;
        let _permit = inner
            .permits
            .acquire()
            .await
            .map_err(|_| OciError::InvalidConfig {
                message: "client is shut down".to_string(),
            })?;
        self.check_address(&req.url)?;
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
            let auth = self.auth_header(&req).await?;
            let sent_credentials = auth.as_ref().is_some_and(|a| a.credentialed);
            if let Some(a) = auth {
                rb = rb.header(AUTHORIZATION, a.value);
            }
            if let Some((body, ct)) = &req.body {
                // `Bytes` clones share the buffer: a retried attempt copies nothing
                rb = rb.header(CONTENT_TYPE, ct.as_ref()).body(body.clone());
            }
            for (name, value) in &req.headers {
                rb = rb.header(name, value);
            }
            inner.counters.count(req.op);
            if retries > 0 {
                inner.counters.retry();
            }
            tracing::trace!(op = %req.op, method = %req.method, url = %redacted(), attempt = attempts, "request");
            let started = std::time::Instant::now();
            let sent = rb.send().await;
            self.observe(
                req.op,
                sent.as_ref().ok().map(|r| r.status().as_u16()),
                started,
            );
            let failure = match sent {
                Err(e) => {
                    if let Some(refused) = address_refused(&e, &req.url) {
                        return Err(refused);
                    }
                    transport_message(&e)
                }
                Ok(resp) => {
                    let status = resp.status();
                    let headers = resp.headers().clone();
                    if status == StatusCode::UNAUTHORIZED {
                        // a challenge counts only from the registry's own origin, not from a
                        // host a redirect led to
                        let same_origin = resp.url().origin() == inner.base.origin();
                        if req.auth_retry && !auth_retried {
                            auth_retried = true;
                            if self
                                .on_unauthorized(&req, &headers, same_origin, sent_credentials)
                                .await?
                            {
                                attempts -= 1;
                                continue;
                            }
                        } else if !req.auth_retry {
                            // one attempt only (the health check): learn a Basic challenge for
                            // the requests that follow
                            self.learn_basic(&headers, same_origin, sent_credentials);
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
                    if let (Some(sink), StatusCode::OK, false) = (sink.as_deref_mut(), status, head)
                    {
                        sink.reset();
                        match read_into(resp, sink).await {
                            Ok(()) => {
                                return Ok(Resp {
                                    status,
                                    headers,
                                    body: Vec::new(),
                                    url: req.url.clone(),
                                    attempts,
                                    sent_credentials,
                                })
                            }
                            Err(SinkError::Stopped(SinkStop::Invalid(message))) => {
                                return Err(OciError::InvalidResponse {
                                    op: req.op,
                                    url: redacted(),
                                    message,
                                })
                            }
                            Err(SinkError::Stopped(SinkStop::OverBudget { what, limit })) => {
                                return Err(OciError::ListingTooLarge {
                                    op: req.op,
                                    url: redacted(),
                                    what,
                                    limit,
                                })
                            }
                            Err(SinkError::Transport(m)) => m,
                        }
                    } else {
                        match read_capped(resp, inner.options.max_body_bytes, head).await {
                            Ok(body) => {
                                return Ok(Resp {
                                    status,
                                    headers,
                                    body,
                                    url: req.url.clone(),
                                    attempts,
                                    sent_credentials,
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

    /// Refuses a URL whose host is an IP literal the address policy refuses, before anything
    /// is sent (reqwest does not resolve literals, so the resolver never sees them).
    pub(super) fn check_address(&self, url: &Url) -> Result<()> {
        match self.inner.options.address_policy.check_url(url) {
            Ok(_) => Ok(()),
            Err(r) => Err(OciError::AddressNotAllowed {
                url: redact_url(url),
                host: r.host,
                address: r.address,
                rule: r.rule,
            }),
        }
    }

    pub(super) fn status_error(&self, op: Operation, resp: &Resp) -> OciError {
        let url = redact_url(&resp.url);
        let code = error_code(&resp.body);
        let status = resp.status.as_u16();
        match status {
            // A bearer registry answers 401 `insufficient_scope` to a token without the access
            // asked for: the realm knows the account and did not grant it this.
            401 if insufficient_scope(&resp.headers) => OciError::Forbidden {
                op,
                url,
                code,
                status,
            },
            401 => OciError::Unauthorized {
                op,
                url,
                code,
                sent_credentials: resp.sent_credentials,
            },
            403 => OciError::Forbidden {
                op,
                url,
                code,
                status,
            },
            404 => OciError::NotFound { op, url, code },
            s if is_retryable_status(s) => OciError::ServerError {
                op,
                url,
                status,
                code,
                attempts: resp.attempts,
                retry_after: resp
                    .header("retry-after")
                    .and_then(|v| parse_retry_after(v, jiff::Timestamp::now()))
                    .map(|d| d.min(self.inner.options.retry.max_retry_after)),
            },
            _ => OciError::UnexpectedStatus {
                op,
                url,
                status,
                code,
            },
        }
    }

    pub(super) fn invalid_body(
        &self,
        op: Operation,
        resp: &Resp,
        message: impl Into<String>,
    ) -> OciError {
        OciError::InvalidResponse {
            op,
            url: redact_url(&resp.url),
            message: message.into(),
        }
    }
}

/// Whether a 401's `WWW-Authenticate` says the token lacked the scope (`error="insufficient_scope"`).
fn insufficient_scope(headers: &HeaderMap) -> bool {
    headers
        .get_all(reqwest::header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| crate::oci::auth::parse_challenges(v).ok())
        .flatten()
        .any(|c| c.scheme == "bearer" && c.param("error") == Some("insufficient_scope"))
}

/// The address policy's refusal inside a transport error (from the resolver, or from the
/// redirect policy refusing a `Location`), as the error the caller gets: never retried.
pub(super) fn address_refused(e: &reqwest::Error, requested: &Url) -> Option<OciError> {
    let refused = crate::oci::address::find_refusal(e)?;
    Some(OciError::AddressNotAllowed {
        url: redact_url(e.url().unwrap_or(requested)),
        host: refused.host.clone(),
        address: refused.address,
        rule: refused.rule,
    })
}

pub(super) fn transport_message(e: &reqwest::Error) -> String {
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

pub(super) async fn read_capped(
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

#[cfg(test)]
mod tests {
    use super::error_code;

    #[test]
    fn the_error_code_is_read_from_distributions_list_and_from_zots_single_error() {
        let distribution = br#"{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}"#;
        assert_eq!(error_code(distribution).as_deref(), Some("DENIED"));
        // zot v2.1.20 answering a wrong password
        let zot = br#"{"code":"UNAUTHORIZED","message":"authentication required","detail":{"description":"The access controller was unable to authenticate the client."}}"#;
        assert_eq!(error_code(zot).as_deref(), Some("UNAUTHORIZED"));
        assert_eq!(error_code(b"not json"), None);
        // a code that is not one (free text, markup) is not carried into messages
        assert_eq!(
            error_code(br#"{"errors":[{"code":"<script>alert(1)</script>"}]}"#),
            None
        );
    }
}
