//! An in-process Kubernetes API server test double for registry-operator's tests.
//!
//! It speaks the apiserver's HTTP/JSON protocol on 127.0.0.1 so that both kube-rs clients
//! (controllers, reflectors) and `kubectl` can use it: discovery, CRUD, list and watch with
//! resourceVersions, merge/JSON/strategic(-as-merge)/server-side-apply patches, the status
//! subresource, generations, finalizers, owner-reference garbage collection, CRDs that turn on
//! their resources, CRD schema validation (structural schema + CEL) and a request log.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let server = kube_double::TestApiServer::start().await?;
//! let setup = server.client(); // the test's own client, user "admin"
//! let operator = server.client_as("system:serviceaccount:ops:operator");
//! // ... install CRDs with `setup`, run the controller with `operator` ...
//! let writes = server.requests().iter().filter(|r| r.is_write()).count(); // hot loops
//! let rbac = server.api_usage("system:serviceaccount:ops:operator"); // what RBAC must grant
//! # let _ = (setup, operator, writes, rbac); Ok(()) }
//! ```
//!
//! See the crate README for what the double does not emulate.

#![warn(missing_docs)]

mod fields;
mod http;
mod meta;
mod resources;
mod schema;
mod selectors;
mod status;
mod store;
mod table;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

pub use status::{ApiError, FieldError};

/// Settings of a [`TestApiServer`].
#[derive(Debug, Clone)]
pub struct Options {
    /// Address to listen on; port 0 picks a free port. Default `127.0.0.1:0`.
    pub listen: SocketAddr,
    /// How many changes are retained for watches. A watch from a version older than the
    /// retained window gets `410 Gone` ("too old resource version") and must relist.
    /// Default 10 000.
    pub watch_history: usize,
    /// How often an idle watch that allows bookmarks gets a BOOKMARK event. Default 5 s.
    pub bookmark_interval: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            watch_history: 10_000,
            bookmark_interval: Duration::from_secs(5),
        }
    }
}

/// One request the double served, as RBAC sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// When the request arrived.
    pub time: SystemTime,
    /// RBAC verb: get, list, watch, create, update, patch, delete, deletecollection.
    pub verb: String,
    /// API group; empty for the core group.
    pub group: String,
    /// API version.
    pub version: String,
    /// Plural resource, e.g. `configmaps`.
    pub resource: String,
    /// Subresource (`status`) or empty.
    pub subresource: String,
    /// Namespace in the path, if any.
    pub namespace: Option<String>,
    /// Object name in the path, if any.
    pub name: Option<String>,
    /// Field manager of writes (`fieldManager`, else the user agent's product).
    pub field_manager: Option<String>,
    /// Content type of patches, e.g. `application/apply-patch+yaml`.
    pub patch_type: Option<String>,
    /// The client's User-Agent.
    pub user_agent: String,
    /// Who asked: the bearer token of the request (the double takes a token as the user name,
    /// see [`TestApiServer::client_as`]), or `system:anonymous` without one.
    pub user: String,
    /// HTTP status code of the answer.
    pub code: u16,
}

/// One (API group, resource, verb) a client used: what an RBAC rule must grant.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiUse {
    /// API group; empty for the core group.
    pub group: String,
    /// `resource` or `resource/subresource`.
    pub resource: String,
    /// RBAC verb.
    pub verb: String,
}

impl std::fmt::Display for ApiUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let group = if self.group.is_empty() {
            "core"
        } else {
            &self.group
        };
        write!(f, "{} {}/{}", self.verb, group, self.resource)
    }
}

impl RequestRecord {
    /// Whether the request was a write (create, update, patch, delete, deletecollection).
    pub fn is_write(&self) -> bool {
        matches!(
            self.verb.as_str(),
            "create" | "update" | "patch" | "delete" | "deletecollection"
        )
    }

    /// `resource` or `resource/subresource`, as RBAC rules name it.
    pub fn rbac_resource(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }
}

/// State shared by the accept loop, request handlers and watch streams.
pub(crate) struct Shared {
    store: Mutex<store::Store>,
    log: Mutex<Vec<RequestRecord>>,
    /// Bumped after every committed change; watch streams wait on it.
    changes: tokio::sync::watch::Sender<u64>,
    shutdown: tokio::sync::watch::Sender<bool>,
    /// Bumped to end every open watch stream.
    watch_epoch: tokio::sync::watch::Sender<u64>,
    bookmark_interval: Duration,
    addr: SocketAddr,
}

impl Shared {
    /// Lock the store; after the guard drops, watchers are woken if the version moved.
    fn lock(&self) -> StoreGuard<'_> {
        let guard = self.store.lock().unwrap_or_else(|p| p.into_inner());
        let before = guard.rv;
        StoreGuard {
            guard,
            shared: self,
            before,
        }
    }

    fn log(&self, r: RequestRecord) {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).push(r);
    }
}

/// A store lock that notifies watchers of new changes when released.
pub(crate) struct StoreGuard<'a> {
    guard: MutexGuard<'a, store::Store>,
    shared: &'a Shared,
    before: u64,
}

impl std::ops::Deref for StoreGuard<'_> {
    type Target = store::Store;
    fn deref(&self) -> &store::Store {
        &self.guard
    }
}

impl std::ops::DerefMut for StoreGuard<'_> {
    fn deref_mut(&mut self) -> &mut store::Store {
        &mut self.guard
    }
}

impl Drop for StoreGuard<'_> {
    fn drop(&mut self) {
        if self.guard.rv != self.before {
            self.shared.changes.send_replace(self.guard.rv);
        }
    }
}

/// A running test double. Dropping it stops accepting connections and ends open watches.
pub struct TestApiServer {
    shared: Arc<Shared>,
    accept: tokio::task::JoinHandle<()>,
}

impl TestApiServer {
    /// Start on a random loopback port with default [`Options`].
    pub async fn start() -> std::io::Result<Self> {
        Self::start_with(Options::default()).await
    }

    /// Start with the given options. Must be called inside a tokio runtime.
    pub async fn start_with(opts: Options) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(opts.listen).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            store: Mutex::new(store::Store::new(opts.watch_history)),
            log: Mutex::new(Vec::new()),
            changes: tokio::sync::watch::channel(0).0,
            shutdown: tokio::sync::watch::channel(false).0,
            watch_epoch: tokio::sync::watch::channel(0).0,
            bookmark_interval: opts.bookmark_interval,
            addr,
        });
        let accept_shared = shared.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let conn_shared = accept_shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| http::handle(conn_shared.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self { shared, accept })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// Base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    /// A kube-rs client for this server (default namespace `default`), as user `admin`.
    pub fn client(&self) -> kube::Client {
        self.client_as("admin")
    }

    /// A kube-rs client whose requests the log attributes to `user` (sent as its bearer
    /// token). Give the controller under test its own user, then [`Self::api_usage`] lists
    /// exactly what its RBAC must grant. Nothing is enforced.
    pub fn client_as(&self, user: &str) -> kube::Client {
        let url = self
            .url()
            .parse()
            .unwrap_or_else(|e| unreachable!("own URL does not parse: {e}"));
        let mut config = kube::Config::new(url);
        config.auth_info.token = Some(secrecy::SecretString::from(user.to_string()));
        kube::Client::try_from(config)
            .unwrap_or_else(|e| unreachable!("plain-HTTP client config failed: {e}"))
    }

    /// A kubeconfig (YAML) whose current context points at this server; its token `admin` is
    /// only the user name the request log records.
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: kube-double\n  cluster:\n    server: {url}\n\
             users:\n- name: kube-double\n  user:\n    token: admin\n\
             contexts:\n- name: kube-double\n  context:\n    cluster: kube-double\n    user: kube-double\n    namespace: default\n\
             current-context: kube-double\npreferences: {{}}\n",
            url = self.url()
        )
    }

    /// Write [`Self::kubeconfig`] to `path` atomically (a script waiting for the file never
    /// reads half of it).
    pub fn write_kubeconfig(&self, path: &Path) -> std::io::Result<()> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        std::fs::write(&tmp, self.kubeconfig())?;
        std::fs::rename(&tmp, path)
    }

    /// Every request served so far, oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared
            .log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The distinct (group, resource, verb) triples `user` has used so far, sorted: what a
    /// Role/ClusterRole for that user must grant.
    pub fn api_usage(&self, user: &str) -> std::collections::BTreeSet<ApiUse> {
        self.requests()
            .into_iter()
            .filter(|r| r.user == user)
            .map(|r| ApiUse {
                group: r.group.clone(),
                resource: r.rbac_resource(),
                verb: r.verb.clone(),
            })
            .collect()
    }

    /// Forget the request log (e.g. after setup, before measuring).
    pub fn clear_requests(&self) {
        self.shared
            .log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// The current (latest) resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.lock().rv
    }

    /// Drop every retained change: watches resuming from an older version get 410 Gone and
    /// their reflectors must relist, as after an etcd compaction.
    pub fn compact(&self) {
        self.shared.lock().compact();
    }

    /// End every open watch stream, as an apiserver restart or an idle-timeout would. Clients
    /// re-watch from the last version they saw; combined with [`Self::compact`] this makes
    /// them get 410 Gone and relist.
    pub fn expire_watches(&self) {
        self.shared.watch_epoch.send_modify(|e| *e += 1);
    }

    /// Change how many changes are retained for watches.
    pub fn set_watch_history(&self, changes: usize) {
        self.shared.lock().history_limit = changes.max(1);
    }
}

impl Drop for TestApiServer {
    fn drop(&mut self) {
        self.accept.abort();
        self.shared.shutdown.send_replace(true);
    }
}
