//! A deterministic synthetic OCI registry on loopback, for registry-operator's scale
//! benchmarks: it serves registries far larger than a real one can hold on a test machine
//! (a million tags, a repository of 500,000 tags) by generating repositories, tags,
//! manifests, configs, indexes and signatures on the fly from a [`Shape`] — a seed and the
//! repository, tag and image numbers — with no state per tag. Deletions are recorded in a set.
//!
//! It speaks the distribution API as CNCF distribution 2.8 (Debian's `docker-registry`)
//! answers it, checked against that binary: `/v2/`; `_catalog` with `n`/`last` and `Link`
//! (100 per page without `n`, 400 `PAGINATION_NUMBER_INVALID` above 1000); `tags/list`
//! ignoring `n` (one body, no `Link`; [`Shape::tag_pages`] pages it as distribution 3 does);
//! GET/HEAD manifests by tag and digest with `Content-Type`, `Content-Length`,
//! `Docker-Content-Digest` (404 for a media type the client's `Accept` leaves out); GET/HEAD
//! blobs; DELETE by digest (202, removing every tag on it; by tag 400 `DIGEST_INVALID`); no
//! referrers API (404). The [`Flavor::Zot`] flavor answers as zot v2.1 does instead, with its
//! search extension — see [`Flavor`].
//!
//! Not for tests of behaviour: those run against the real registry. This is for benchmarks
//! and for sizes the real one cannot hold here.
//!
//! ```no_run
//! let server = synthetic_registry::Server::start(synthetic_registry::Shape::default(), "127.0.0.1:0", 2)
//!     .expect("synthetic registry");
//! println!("{}", server.url());
//! ```

mod content;
mod server;
mod table;

use std::net::SocketAddr;
use std::sync::Arc;

pub use content::{
    empty_digest, rfc3339, Content, Doc, Flavor, Kind, Push, RepoId, Shape, EMPTY_BLOB,
    HUGE_REPOSITORY, OCI_CONFIG, OCI_EMPTY, OCI_INDEX, OCI_LAYER, OCI_MANIFEST, SIGNATURE_TYPE,
};
pub use server::Stats;

/// Repository tables kept at once (each a few hundred bytes per image).
const TABLE_CACHE: usize = 256;

/// A running synthetic registry, on its own threads; stopped when dropped.
pub struct Server {
    addr: SocketAddr,
    state: Arc<server::State>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Binds `addr` (`127.0.0.1:0` for any free port) and serves `shape` there from a
    /// runtime of `threads` worker threads of its own.
    pub fn start(shape: Shape, addr: &str, threads: usize) -> std::io::Result<Server> {
        let addr: SocketAddr = addr
            .parse()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let state = Arc::new(server::State {
            store: table::Store::new(shape, TABLE_CACHE),
            counters: server::Counters::default(),
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("synthetic-registry")
            .enable_all()
            .build()?;
        // Bound here, without entering the runtime: the caller may be inside one of its own.
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let local = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let st = state.clone();
        let thread = std::thread::Builder::new()
            .name("synthetic-registry".to_string())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    tokio::select! {
                        _ = server::serve(st, listener) => {}
                        _ = stopped => {}
                    }
                });
                runtime.shutdown_background();
            })?;
        Ok(Server {
            addr: local,
            state,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The shape served.
    pub fn shape(&self) -> &Shape {
        self.state.store.shape()
    }

    /// Requests served so far.
    pub fn stats(&self) -> Stats {
        self.state.counters.snapshot()
    }

    /// Deletions recorded so far: (manifests by digest, tags on their own).
    pub fn deletions(&self) -> (usize, usize) {
        self.state.store.deletions()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
