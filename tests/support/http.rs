//! A tiny HTTP/1.1 server on `127.0.0.1:0` for test doubles and the fault proxy.
//!
//! Keep-alive, `Content-Length` bodies only (what reqwest sends), HEAD answered without a
//! body. A handler may also reset the connection (RST via `SO_LINGER` 0) or close it without
//! answering. The accept loop is aborted when the [`TestServer`] is dropped.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Marker header: send the body without `Content-Length`, ended by closing the connection
/// (how a server streams a body of unknown size over HTTP/1.1).
pub const CLOSE_DELIMITED: &str = "x-test-close-delimited";

/// A received request.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `HEAD`, ...
    pub method: String,
    /// Path and query as sent (`/v2/_catalog?n=10`).
    pub target: String,
    /// Headers in order, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Request {
    /// A header by (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        let n = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == n)
            .map(|(_, v)| v.as_str())
    }

    /// The path without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// A query parameter, percent-decoded.
    pub fn query(&self, key: &str) -> Option<String> {
        let q = self.target.split_once('?')?.1;
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    }
}

/// A response to send.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers (a `content-length` here is sent as is, e.g. for HEAD).
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl Response {
    /// An empty response with `status`.
    pub fn status(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A JSON response.
    pub fn json(status: u16, v: &serde_json::Value) -> Response {
        Response::status(status)
            .header("content-type", "application/json")
            .body(serde_json::to_vec(v).expect("json"))
    }

    /// Adds a header.
    pub fn header(mut self, k: &str, v: &str) -> Response {
        self.headers.push((k.to_ascii_lowercase(), v.to_string()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, b: impl Into<Vec<u8>>) -> Response {
        self.body = b.into();
        self
    }
}

/// What the handler wants done.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Send this response.
    Send(Response),
    /// Reset the connection (TCP RST) without answering.
    Reset,
    /// Close the connection without answering.
    Close,
}

impl From<Response> for Reply {
    fn from(r: Response) -> Reply {
        Reply::Send(r)
    }
}

/// A running server; stops on drop.
pub struct TestServer {
    /// Its address.
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    task: JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a server on `127.0.0.1` calling `handler` for every request.
pub async fn serve<H, F>(handler: H) -> TestServer
where
    H: Fn(Request) -> F + Send + Sync + 'static,
    F: Future<Output = Reply> + Send + 'static,
{
    serve_on("127.0.0.1", handler).await
}

/// Starts a server on a free port of the loopback address `ip` (`127.0.0.2` is another host
/// to a client: Linux answers the whole of 127.0.0.0/8) calling `handler` for every request.
pub async fn serve_on<H, F>(ip: &str, handler: H) -> TestServer
where
    H: Fn(Request) -> F + Send + Sync + 'static,
    F: Future<Output = Reply> + Send + 'static,
{
    assert!(
        ip.starts_with("127."),
        "test servers listen on loopback only"
    );
    let listener = TcpListener::bind((ip, 0)).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let handler = Arc::new(handler);
    let task = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                break;
            };
            let h = handler.clone();
            conns.spawn(async move {
                let _ = connection(stream, h).await;
            });
            while conns.try_join_next().is_some() {}
        }
    });
    TestServer {
        addr,
        url: format!("http://{addr}"),
        task,
    }
}

async fn read_request(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<Request>> {
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > 64 * 1024 {
            return Ok(None);
        }
        let mut chunk = [0u8; 8192];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let first = lines.next().unwrap_or("");
    let mut parts = first.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let total = head_end + 4 + len;
    while buf.len() < total {
        let mut chunk = [0u8; 8192];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = buf[head_end + 4..total].to_vec();
    buf.drain(..total);
    Ok(Some(Request {
        method,
        target,
        headers,
        body,
    }))
}

async fn connection<H, F>(mut stream: TcpStream, handler: Arc<H>) -> std::io::Result<()>
where
    H: Fn(Request) -> F + Send + Sync + 'static,
    F: Future<Output = Reply> + Send + 'static,
{
    let mut buf = Vec::new();
    while let Some(req) = read_request(&mut stream, &mut buf).await? {
        let head = req.method == "HEAD";
        match handler(req).await {
            Reply::Reset => {
                let _ = stream.set_zero_linger();
                return Ok(());
            }
            Reply::Close => return Ok(()),
            Reply::Send(r) => {
                let mut out = format!("HTTP/1.1 {} X\r\n", r.status);
                let has_len = r.headers.iter().any(|(k, _)| k == "content-length");
                // a body delimited by closing the connection (no Content-Length)
                let close_delimited = r.headers.iter().any(|(k, _)| k == CLOSE_DELIMITED);
                for (k, v) in r.headers.iter().filter(|(k, _)| k != CLOSE_DELIMITED) {
                    out.push_str(&format!("{k}: {v}\r\n"));
                }
                if close_delimited {
                    out.push_str("connection: close\r\n\r\n");
                    let mut bytes = out.into_bytes();
                    bytes.extend_from_slice(&r.body);
                    stream.write_all(&bytes).await?;
                    return Ok(());
                }
                if !has_len {
                    out.push_str(&format!("content-length: {}\r\n", r.body.len()));
                }
                out.push_str("\r\n");
                let mut bytes = out.into_bytes();
                if !head {
                    bytes.extend_from_slice(&r.body);
                }
                stream.write_all(&bytes).await?;
            }
        }
    }
    Ok(())
}
