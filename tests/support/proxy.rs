//! A fault-injecting loopback proxy between the client under test and a real registry.
//!
//! Requests are forwarded unchanged (no redirects followed, `Location` and `Link` passed
//! through) unless a [`FaultRule`] matches: then the proxy answers with a status (5xx, 429 with
//! `Retry-After`), resets the connection, or delays (or holds) before forwarding. Every request
//! is counted by method, faulted or not.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::http::{serve, Reply, Request, Response, TestServer};

/// What to do to a matching request.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status (and a distribution-style error body).
    Status(u16),
    /// Answer 429 (or another status) with `Retry-After: seconds`.
    RetryAfter {
        /// Status to answer with.
        status: u16,
        /// `Retry-After` value in seconds.
        seconds: u64,
    },
    /// Reset the TCP connection without answering.
    Reset,
    /// Wait, then forward.
    Delay(Duration),
    /// Hold the request until the [`Release`] made with it (see [`Fault::hold`]) lets go or is
    /// dropped, then forward.
    Hold(tokio::sync::watch::Receiver<bool>),
}

impl Fault {
    /// A fault that holds matching requests, and what lets them go.
    pub fn hold() -> (Fault, Release) {
        let (tx, rx) = tokio::sync::watch::channel(false);
        (Fault::Hold(rx), Release(tx))
    }
}

/// Lets the requests held by a [`Fault::Hold`] go on (also when dropped).
pub struct Release(tokio::sync::watch::Sender<bool>);

impl Release {
    /// Forwards the held requests and every later one the fault matches.
    pub fn release(&self) {
        let _ = self.0.send(true);
    }
}

/// A fault for the next `times` requests matching `method` and `path_contains`.
#[derive(Debug, Clone)]
pub struct FaultRule {
    fault: Fault,
    method: Option<String>,
    path_contains: Option<String>,
    times: usize,
}

impl FaultRule {
    /// Applies `fault` to every request, forever (narrow it with the other methods).
    pub fn new(fault: Fault) -> FaultRule {
        FaultRule {
            fault,
            method: None,
            path_contains: None,
            times: usize::MAX,
        }
    }
    /// Only requests with this method.
    pub fn method(mut self, m: &str) -> FaultRule {
        self.method = Some(m.to_string());
        self
    }
    /// Only requests whose target contains `s`.
    pub fn path_contains(mut self, s: &str) -> FaultRule {
        self.path_contains = Some(s.to_string());
        self
    }
    /// Only the next `n` matching requests.
    pub fn times(mut self, n: usize) -> FaultRule {
        self.times = n;
        self
    }
    fn matches(&self, r: &Request) -> bool {
        self.times > 0
            && self.method.as_deref().is_none_or(|m| m == r.method)
            && self
                .path_contains
                .as_deref()
                .is_none_or(|p| r.target.contains(p))
    }
}

#[derive(Default)]
struct State {
    rules: Vec<FaultRule>,
    by_method: BTreeMap<String, u64>,
    /// `(method, target)` of every request, in arrival order.
    seen: Vec<(String, String)>,
    faulted: u64,
    in_flight: u64,
    max_in_flight: u64,
}

/// Decrements the in-flight count when a request is done (also when its task is dropped).
struct InFlight(Arc<Mutex<State>>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut s = self.0.lock().unwrap();
        s.in_flight = s.in_flight.saturating_sub(1);
    }
}

/// The running proxy; stops on drop.
pub struct FaultProxy {
    server: TestServer,
    state: Arc<Mutex<State>>,
}

impl FaultProxy {
    /// Starts a proxy in front of `upstream` (`http://127.0.0.1:PORT`).
    pub async fn start(upstream: &str) -> FaultProxy {
        let state = Arc::new(Mutex::new(State::default()));
        registry_operator::tls::install_crypto_provider();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let upstream = upstream.trim_end_matches('/').to_string();
        let st = state.clone();
        let server = serve(move |req: Request| {
            let st = st.clone();
            let http = http.clone();
            let upstream = upstream.clone();
            async move {
                let _guard = InFlight(st.clone());
                let fault = {
                    let mut s = st.lock().unwrap();
                    *s.by_method.entry(req.method.clone()).or_default() += 1;
                    s.seen.push((req.method.clone(), req.target.clone()));
                    s.in_flight += 1;
                    s.max_in_flight = s.max_in_flight.max(s.in_flight);
                    let f = s.rules.iter_mut().find(|r| r.matches(&req)).map(|r| {
                        r.times = r.times.saturating_sub(1);
                        r.fault.clone()
                    });
                    if f.is_some() {
                        s.faulted += 1;
                    }
                    f
                };
                match fault {
                    Some(Fault::Status(code)) => {
                        return Response::json(code, &serde_json::json!({"errors":[{"code":"INJECTED","message":"fault injected by test proxy"}]})).into()
                    }
                    Some(Fault::RetryAfter { status, seconds }) => {
                        return Response::json(status, &serde_json::json!({"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}))
                            .header("retry-after", &seconds.to_string())
                            .into()
                    }
                    Some(Fault::Reset) => return Reply::Reset,
                    Some(Fault::Delay(d)) => tokio::time::sleep(d).await,
                    Some(Fault::Hold(mut open)) => {
                        let _ = open.wait_for(|open| *open).await;
                    }
                    None => {}
                }
                forward(&http, &upstream, req).await
            }
        })
        .await;
        FaultProxy { server, state }
    }

    /// The proxy's base URL.
    pub fn url(&self) -> &str {
        &self.server.url
    }

    /// Adds a fault rule (rules are tried in the order added).
    pub fn inject(&self, rule: FaultRule) {
        self.state.lock().unwrap().rules.push(rule);
    }

    /// Removes every fault rule.
    pub fn clear(&self) {
        self.state.lock().unwrap().rules.clear();
    }

    /// Requests seen with `method` (faulted or forwarded).
    pub fn count(&self, method: &str) -> u64 {
        self.state
            .lock()
            .unwrap()
            .by_method
            .get(method)
            .copied()
            .unwrap_or(0)
    }

    /// [`count`](Self::count) for another task: a function of the method.
    pub fn counter(&self) -> impl Fn(&str) -> u64 + Send + Sync + 'static {
        let state = self.state.clone();
        move |method| {
            state
                .lock()
                .unwrap()
                .by_method
                .get(method)
                .copied()
                .unwrap_or(0)
        }
    }

    /// Requests seen with `method` whose target contains `path` (faulted or forwarded).
    pub fn count_path(&self, method: &str, path: &str) -> u64 {
        self.state
            .lock()
            .unwrap()
            .seen
            .iter()
            .filter(|(m, t)| m == method && t.contains(path))
            .count() as u64
    }

    /// All requests seen.
    pub fn total(&self) -> u64 {
        self.state.lock().unwrap().by_method.values().sum()
    }

    /// Requests answered with a fault (delays included).
    pub fn faulted(&self) -> u64 {
        self.state.lock().unwrap().faulted
    }

    /// Most requests that were in flight at the same time.
    pub fn max_in_flight(&self) -> u64 {
        self.state.lock().unwrap().max_in_flight
    }

    /// Zeroes the counters.
    pub fn reset_counts(&self) {
        let mut s = self.state.lock().unwrap();
        s.by_method.clear();
        s.seen.clear();
        s.faulted = 0;
        s.max_in_flight = 0;
    }
}

async fn forward(http: &reqwest::Client, upstream: &str, req: Request) -> Reply {
    let method = reqwest::Method::from_bytes(req.method.as_bytes()).expect("method");
    let mut rb = http.request(method, format!("{upstream}{}", req.target));
    for (k, v) in &req.headers {
        if !matches!(
            k.as_str(),
            "host" | "connection" | "content-length" | "transfer-encoding"
        ) {
            rb = rb.header(k, v);
        }
    }
    // as a reverse proxy does: the registry builds its absolute `Location`s (uploads) for
    // the host the client asked, the proxy's
    if let Some((_, host)) = req.headers.iter().find(|(k, _)| k == "host") {
        rb = rb.header("x-forwarded-host", host);
    }
    if !req.body.is_empty() || matches!(req.method.as_str(), "PUT" | "POST" | "PATCH") {
        rb = rb.body(req.body.clone());
    }
    let resp = match rb.send().await {
        Ok(r) => r,
        Err(_) => return Response::status(502).into(),
    };
    let status = resp.status().as_u16();
    let head = req.method == "HEAD";
    let mut out = Response::status(status);
    for (k, v) in resp.headers() {
        let k = k.as_str();
        if matches!(k, "connection" | "transfer-encoding" | "keep-alive") {
            continue;
        }
        if k == "content-length" && !head {
            continue; // recomputed from the body actually read
        }
        if let Ok(v) = v.to_str() {
            out = out.header(k, v);
        }
    }
    let body = resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
    out.body(body).into()
}
