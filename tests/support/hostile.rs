//! A hostile registry: a server on `127.0.0.1` (on [`super::http`]) that speaks just enough of
//! the Distribution API for a health check and a retention plan (an empty catalog) and records
//! every request with its headers — to see which credentials a client sends, and when. And a
//! token realm that records what it is sent, on any loopback address (`127.0.0.2`: another
//! host to the client).

use std::sync::{Arc, Mutex};

use base64::Engine as _;

use super::http::{serve, serve_on, Request, Response, TestServer};

/// How the hostile registry asks for credentials.
#[derive(Debug, Clone)]
pub enum Challenge {
    /// Never: every request is answered 200 (or 404), credentials or not.
    Never,
    /// `401` with `WWW-Authenticate: Basic realm="hostile"` to a request without
    /// `Authorization: Basic …`; any Basic credentials are then taken.
    Basic,
    /// `401` with `WWW-Authenticate: Bearer realm="<url>",service="hostile"` to a request
    /// without `Authorization: Bearer …`; any token is then taken.
    Bearer(String),
}

/// The hostile registry; stops on drop.
pub struct HostileRegistry {
    server: TestServer,
    seen: Arc<Mutex<Vec<Request>>>,
}

impl HostileRegistry {
    /// Starts it on `127.0.0.1`, asking for credentials as `challenge` says.
    pub async fn start(challenge: Challenge) -> HostileRegistry {
        let seen: Arc<Mutex<Vec<Request>>> = Arc::default();
        let record = seen.clone();
        let server = serve(move |req: Request| {
            record.lock().unwrap().push(req.clone());
            let challenge = challenge.clone();
            async move {
                let auth = req.header("authorization").unwrap_or_default();
                let refuse = match &challenge {
                    Challenge::Never => None,
                    Challenge::Basic if auth.starts_with("Basic ") => None,
                    Challenge::Basic => Some(r#"Basic realm="hostile""#.to_string()),
                    Challenge::Bearer(_) if auth.starts_with("Bearer ") => None,
                    Challenge::Bearer(realm) => {
                        Some(format!(r#"Bearer realm="{realm}",service="hostile""#))
                    }
                };
                if let Some(h) = refuse {
                    return Response::json(
                        401,
                        &serde_json::json!({"errors": [{"code": "UNAUTHORIZED"}]}),
                    )
                    .header("www-authenticate", &h)
                    .into();
                }
                match req.path() {
                    "/v2/" => Response::json(200, &serde_json::json!({}))
                        .header("docker-distribution-api-version", "registry/2.0")
                        .into(),
                    "/v2/_catalog" => {
                        Response::json(200, &serde_json::json!({"repositories": []})).into()
                    }
                    _ => Response::json(
                        404,
                        &serde_json::json!({"errors": [{"code": "NAME_UNKNOWN"}]}),
                    )
                    .into(),
                }
            }
        })
        .await;
        HostileRegistry { server, seen }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.server.url
    }

    /// `127.0.0.1:PORT`, as docker config keys name it.
    pub fn host(&self) -> String {
        self.server.addr.to_string()
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.seen.lock().unwrap().clone()
    }

    /// `METHOD path` and the `Authorization` header of every request so far.
    pub fn log(&self) -> Vec<(String, Option<String>)> {
        self.requests()
            .iter()
            .map(|r| {
                (
                    format!("{} {}", r.method, r.target),
                    r.header("authorization").map(str::to_string),
                )
            })
            .collect()
    }
}

/// A token realm granting any request a token; stops on drop.
pub struct TokenRealm {
    server: TestServer,
    seen: Arc<Mutex<Vec<Request>>>,
}

impl TokenRealm {
    /// Starts it on the loopback address `ip` (`127.0.0.2` for a foreign host).
    pub async fn start(ip: &str) -> TokenRealm {
        let seen: Arc<Mutex<Vec<Request>>> = Arc::default();
        let record = seen.clone();
        let server = serve_on(ip, move |req: Request| {
            record.lock().unwrap().push(req);
            async move {
                Response::json(
                    200,
                    &serde_json::json!({"token": "granted", "expires_in": 300}),
                )
                .into()
            }
        })
        .await;
        TokenRealm { server, seen }
    }

    /// `http://IP:PORT/token`.
    pub fn realm(&self) -> String {
        format!("{}/token", self.server.url)
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Request> {
        self.seen.lock().unwrap().clone()
    }
}

/// `Basic base64(user:password)`.
pub fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}
