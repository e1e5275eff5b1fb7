//! The real control plane for cluster-side tests: etcd, kube-apiserver and
//! kube-controller-manager started once per test run by `scripts/cluster.sh` (which
//! `scripts/test.sh` does), found through the kubeconfig named by [`KUBECONFIG_ENV`].
//!
//! A test that needs the cluster and finds no kubeconfig fails (it never skips). Each test takes
//! a namespace of its own ([`Cluster::namespace`]); the CRDs are installed cluster-wide by
//! [`Cluster::install_crds`] (idempotent); [`Cluster::operator_identity`] renders the Helm
//! chart's ServiceAccount and RBAC into a namespace and mints a token for it, so a client built
//! from it has exactly the chart's grants and the API server answers anything else with 403.
//!
//! ```ignore
//! let cluster = support::cluster::Cluster::connect().await;   // panics without a cluster
//! cluster.install_crds().await;
//! let ns = cluster.namespace("gc").await;                    // "gc-<random>"
//! let sa = cluster.operator_identity(&ns).await;             // the chart's RBAC, a token
//! // run the operator with sa.client; the admin is cluster.client
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::{json, Value};

/// The environment variable that names the test cluster's admin kubeconfig.
pub const KUBECONFIG_ENV: &str = "REGISTRY_OPERATOR_TEST_KUBECONFIG";

/// The field manager the tests apply their fixtures with.
pub const TEST_MANAGER: &str = "registry-operator-tests";

/// A connection to the test run's control plane, as cluster admin.
#[derive(Clone)]
pub struct Cluster {
    /// A cluster-admin client.
    pub client: kube::Client,
    /// The admin kubeconfig (for `kubectl`).
    pub kubeconfig: PathBuf,
    kubeconfig_yaml: Value,
}

/// A ServiceAccount with the chart's RBAC and a token for it.
pub struct Identity {
    /// The namespace of the ServiceAccount (the chart's release namespace).
    pub namespace: String,
    /// The ServiceAccount's name.
    pub name: String,
    /// `system:serviceaccount:<namespace>:<name>`, the user in the audit log.
    pub username: String,
    /// A client that authenticates with the ServiceAccount's token.
    pub client: kube::Client,
    /// A kubeconfig file for `kubectl` as this ServiceAccount.
    pub kubeconfig: PathBuf,
}

/// The project's root directory.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A tool from `.tools/bin` (scripts/setup.sh), else from PATH.
pub fn tool(name: &str) -> PathBuf {
    let local = root().join(".tools/bin").join(name);
    if local.exists() {
        local
    } else {
        PathBuf::from(name)
    }
}

impl Cluster {
    /// Connects as cluster admin; panics with how to get a cluster when [`KUBECONFIG_ENV`] is
    /// not set or does not name a readable kubeconfig.
    pub async fn connect() -> Cluster {
        registry_operator::tls::install_crypto_provider();
        let path = match std::env::var_os(KUBECONFIG_ENV) {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => panic!(
                "{KUBECONFIG_ENV} is not set: this test needs the local control plane. Run the \
                 tests with scripts/test.sh, or start one with `scripts/cluster.sh start DIR` and \
                 set {KUBECONFIG_ENV}=DIR/kubeconfig"
            ),
        };
        Self::connect_to(&path).await
    }

    /// Connects as cluster admin through the kubeconfig at `path` (a control plane of a test's
    /// own: see `support::control_plane`).
    pub async fn connect_to(path: &Path) -> Cluster {
        registry_operator::tls::install_crypto_provider();
        let path = path.to_path_buf();
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "the kubeconfig {} cannot be read ({e}); is the control plane running \
                 (scripts/cluster.sh start DIR)?",
                path.display()
            )
        });
        let kubeconfig_yaml: Value = serde_yaml::from_str(&text).expect("kubeconfig is YAML");
        let client = client_from_yaml(&text).await;
        Cluster {
            client,
            kubeconfig: path,
            kubeconfig_yaml,
        }
    }

    /// The control plane's directory (kubeconfig, logs, audit log).
    pub fn dir(&self) -> PathBuf {
        self.kubeconfig
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    }

    /// The API server's audit log: one JSON event per answered request.
    pub fn audit_log(&self) -> PathBuf {
        self.dir().join("audit.log")
    }

    /// Installs (server-side applies) the project's CRDs and waits until each is Established.
    pub async fn install_crds(&self) {
        let crds: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        let pp = PatchParams::apply(TEST_MANAGER).force();
        for (file, crd) in registry_operator::api::crds() {
            let name = crd.metadata.name.clone().expect("a CRD has a name");
            let mut value = serde_json::to_value(&crd).expect("CRD serialises");
            value["apiVersion"] = json!("apiextensions.k8s.io/v1");
            value["kind"] = json!("CustomResourceDefinition");
            crds.patch(&name, &pp, &Patch::Apply(&value))
                .await
                .unwrap_or_else(|e| panic!("the API server refused {file}: {e}"));
        }
        for (file, crd) in registry_operator::api::crds() {
            let name = crd.metadata.name.clone().expect("a CRD has a name");
            wait_for(&format!("{file} to become Established"), || async {
                let c = crds.get(&name).await.ok()?;
                let conditions = c.status?.conditions?;
                conditions
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
                    .then_some(())
            })
            .await;
        }
    }

    /// Creates a namespace of its own for one test, `<prefix>-<random>`, with `labels`.
    pub async fn namespace_with(&self, prefix: &str, labels: Value) -> String {
        let name = format!("{prefix}-{:08x}", rand::random::<u32>());
        let ns: Namespace = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": labels},
        }))
        .expect("namespace fixture");
        Api::<Namespace>::all(self.client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
        // The ServiceAccount controller adds `default` shortly after; Pods need it to be admitted.
        let sas: Api<ServiceAccount> = Api::namespaced(self.client.clone(), &name);
        wait_for(&format!("the default ServiceAccount in {name}"), || async {
            sas.get_opt("default").await.ok().flatten().map(|_| ())
        })
        .await;
        name
    }

    /// Creates a namespace of its own for one test, `<prefix>-<random>`.
    pub async fn namespace(&self, prefix: &str) -> String {
        self.namespace_with(prefix, json!({})).await
    }

    /// Renders the Helm chart with `namespace` as the release namespace, applies what gives the
    /// operator its identity and grants (the ServiceAccount, ClusterRole, ClusterRoleBinding and
    /// the leader-election Role and RoleBinding; nothing else of the chart) and mints a one-hour
    /// token for the ServiceAccount (TokenRequest).
    pub async fn operator_identity(&self, namespace: &str) -> Identity {
        let release = format!("ro-{namespace}");
        let objects = chart_rbac(&release, namespace);
        let pp = PatchParams::apply(TEST_MANAGER).force();
        let mut sa_name = None;
        for o in &objects {
            let name = o["metadata"]["name"].as_str().expect("a name").to_string();
            let c = self.client.clone();
            let r = match o["kind"].as_str() {
                Some("ServiceAccount") => {
                    sa_name = Some(name.clone());
                    Api::<ServiceAccount>::namespaced(c, namespace)
                        .patch(&name, &pp, &Patch::Apply(o))
                        .await
                        .map(|_| ())
                }
                Some("ClusterRole") => Api::<ClusterRole>::all(c)
                    .patch(&name, &pp, &Patch::Apply(o))
                    .await
                    .map(|_| ()),
                Some("ClusterRoleBinding") => Api::<ClusterRoleBinding>::all(c)
                    .patch(&name, &pp, &Patch::Apply(o))
                    .await
                    .map(|_| ()),
                Some("Role") => Api::<Role>::namespaced(c, namespace)
                    .patch(&name, &pp, &Patch::Apply(o))
                    .await
                    .map(|_| ()),
                Some("RoleBinding") => Api::<RoleBinding>::namespaced(c, namespace)
                    .patch(&name, &pp, &Patch::Apply(o))
                    .await
                    .map(|_| ()),
                _ => continue,
            };
            r.unwrap_or_else(|e| panic!("applying the chart's {} {name}: {e}", o["kind"]));
        }
        let name = sa_name.expect("the chart renders a ServiceAccount");
        let sas: Api<ServiceAccount> = Api::namespaced(self.client.clone(), namespace);
        let request: TokenRequest = TokenRequest {
            spec: TokenRequestSpec {
                audiences: Vec::new(),
                expiration_seconds: Some(3600),
                ..Default::default()
            },
            ..Default::default()
        };
        let token = sas
            .create_token_request(&name, &PostParams::default(), &request)
            .await
            .unwrap_or_else(|e| panic!("TokenRequest for {namespace}/{name}: {e}"))
            .status
            .expect("a TokenRequest answer has a status")
            .token;
        let yaml = self.token_kubeconfig(&format!("{namespace}-{name}"), &token);
        let kubeconfig = self.dir().join(format!("kubeconfig-{namespace}-{name}"));
        std::fs::write(&kubeconfig, &yaml).expect("writing the ServiceAccount's kubeconfig");
        Identity {
            namespace: namespace.to_string(),
            username: format!("system:serviceaccount:{namespace}:{name}"),
            name,
            client: client_from_yaml(&yaml).await,
            kubeconfig,
        }
    }

    /// A kubeconfig for the same API server that authenticates with a bearer token.
    fn token_kubeconfig(&self, user: &str, token: &str) -> String {
        let mut kc = self.kubeconfig_yaml.clone();
        kc["users"] = json!([{"name": user, "user": {"token": token}}]);
        kc["contexts"] = json!([{"name": user, "context": {"cluster": kc["clusters"][0]["name"], "user": user}}]);
        kc["current-context"] = json!(user);
        serde_yaml::to_string(&kc).expect("kubeconfig serialises")
    }

    /// Runs `kubectl` as cluster admin; returns (success, stdout, stderr).
    pub fn kubectl(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(tool("kubectl"))
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .output()
            .unwrap_or_else(|e| {
                panic!("kubectl cannot run ({e}); scripts/setup.sh installs it into .tools/bin")
            });
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// The audit events of `username`'s requests, in the order the API server answered them.
    pub fn audit_events(&self, username: &str) -> Vec<AuditEvent> {
        let text = std::fs::read_to_string(self.audit_log()).unwrap_or_default();
        // The log holds every request of the run: look for the user's name before parsing.
        let quoted = format!("\"username\":\"{username}\"");
        text.lines()
            .filter(|l| l.contains(&quoted))
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["user"]["username"] == username)
            .map(|e| AuditEvent {
                verb: e["verb"].as_str().unwrap_or_default().to_string(),
                group: e["objectRef"]["apiGroup"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                resource: e["objectRef"]["resource"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                subresource: e["objectRef"]["subresource"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                namespace: e["objectRef"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                name: e["objectRef"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                code: e["responseStatus"]["code"].as_u64().unwrap_or_default() as u16,
                uri: e["requestURI"].as_str().unwrap_or_default().to_string(),
            })
            .collect()
    }
}

/// One answered request, from the API server's audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// The authorisation verb (`get`, `list`, `watch`, `create`, `patch`, …).
    pub verb: String,
    /// API group; empty for the core group.
    pub group: String,
    /// Resource (plural); empty for non-resource URLs such as `/api`.
    pub resource: String,
    /// Subresource (`status`, `token`, …) or empty.
    pub subresource: String,
    /// Namespace of the object, empty when cluster-scoped.
    pub namespace: String,
    /// Name of the object, empty for collections.
    pub name: String,
    /// The HTTP status of the answer.
    pub code: u16,
    /// The request's path and query.
    pub uri: String,
}

impl AuditEvent {
    /// A create, update, patch or delete (also of a subresource).
    pub fn is_write(&self) -> bool {
        matches!(
            self.verb.as_str(),
            "create" | "update" | "patch" | "delete" | "deletecollection"
        )
    }

    /// A server-side apply that forces conflicts (`force=true`), as the operator sends for
    /// what a Registry owns: the API server answers an unchanged one without storing anything.
    pub fn is_forced_apply(&self) -> bool {
        self.verb == "patch" && self.uri.contains("force=true")
    }
}

async fn client_from_yaml(yaml: &str) -> kube::Client {
    let kc = Kubeconfig::from_yaml(yaml).expect("a valid kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("a usable kubeconfig");
    kube::Client::try_from(config).expect("a client from the kubeconfig")
}

/// The chart's objects that make up the operator's identity and grants, rendered by `helm
/// template` for release `release` in `namespace` (the aggregated editor/viewer roles for people
/// are left out: they grant the operator nothing).
pub fn chart_rbac(release: &str, namespace: &str) -> Vec<Value> {
    let out = Command::new(tool("helm"))
        .args([
            "template",
            release,
            "charts/registry-operator",
            "--namespace",
            namespace,
        ])
        .args(["--set", "rbac.aggregateToDefaultRoles=false"])
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| {
            panic!("helm cannot run ({e}); scripts/setup.sh installs it into .tools/bin")
        });
    assert!(
        out.status.success(),
        "helm template failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    serde_yaml::Deserializer::from_str(&text)
        .filter_map(|d| serde::Deserialize::deserialize(d).ok())
        .filter(|v: &Value| {
            matches!(
                v["kind"].as_str(),
                Some(
                    "ServiceAccount"
                        | "ClusterRole"
                        | "ClusterRoleBinding"
                        | "Role"
                        | "RoleBinding"
                )
            )
        })
        .collect()
}

/// Polls `probe` every 100 ms until it yields a value; panics after 60 s naming `what`.
pub async fn wait_for<T, F, Fut>(what: &str, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    wait_for_within(what, Duration::from_secs(60), probe).await
}

/// Polls `probe` every 100 ms until it yields a value; panics after `limit` naming `what`.
pub async fn wait_for_within<T, F, Fut>(what: &str, limit: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The operator running in-process (its controllers, through `controller::operator::run`) as
/// the chart's ServiceAccount of one namespace, reconciling only that namespace
/// (`--watch-namespace`).
pub struct Operator {
    /// The identity it runs as.
    pub identity: Identity,
    /// `http://127.0.0.1:PORT/metrics` of the operator.
    pub metrics_url: String,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), String>>,
}

impl Cluster {
    /// Starts the operator as the chart's ServiceAccount in `namespace`, limited to it, with
    /// fast health checks and backoff unless `settings` says otherwise.
    pub async fn start_operator(&self, namespace: &str) -> Operator {
        use registry_operator::controller::context::Settings;
        self.start_operator_with(
            namespace,
            Settings {
                health_interval: Duration::from_secs(2),
                backoff_base: Duration::from_millis(200),
                backoff_max: Duration::from_secs(2),
                ..Settings::default()
            },
        )
        .await
    }

    /// Starts the operator as the chart's ServiceAccount in `namespace`, limited to it.
    pub async fn start_operator_with(
        &self,
        namespace: &str,
        settings: registry_operator::controller::context::Settings,
    ) -> Operator {
        self.start_operator_full(namespace, settings, false).await
    }

    /// Starts the operator as the chart's ServiceAccount in `namespace`, limited to it; with
    /// `leader_elect`, it first takes the Lease `registry-operator` in that namespace (where the
    /// chart's leader-election Role grants it).
    pub async fn start_operator_full(
        &self,
        namespace: &str,
        settings: registry_operator::controller::context::Settings,
        leader_elect: bool,
    ) -> Operator {
        self.start_operator_watching(namespace, &[namespace.to_string()], settings, leader_elect)
            .await
    }

    /// Starts the operator as the chart's ServiceAccount of `namespace` (its release namespace,
    /// where the Lease is taken with `leader_elect`), reconciling the namespaces in `watch`
    /// (`--watch-namespace`, repeated).
    pub async fn start_operator_watching(
        &self,
        namespace: &str,
        watch: &[String],
        settings: registry_operator::controller::context::Settings,
        leader_elect: bool,
    ) -> Operator {
        use registry_operator::controller::operator::{self, OperatorConfig};
        use registry_operator::controller::runtime::LeaderElection;
        let identity = self.operator_identity(namespace).await;
        let http_listen = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port");
        let config = OperatorConfig {
            http_listen,
            leader_election: leader_elect.then(|| LeaderElection {
                namespace: namespace.to_string(),
                lease: "registry-operator".into(),
                identity: "test-replica".into(),
            }),
            watch_namespaces: watch.to_vec(),
            settings,
        };
        let (shutdown, stop) = operator::shutdown_signal();
        let client = identity.client.clone();
        let task = tokio::spawn(async move {
            operator::run(client, config, shutdown)
                .await
                .map_err(|e| e.to_string())
        });
        Operator {
            identity,
            metrics_url: format!("http://{http_listen}/metrics"),
            stop,
            task,
        }
    }
}

impl Operator {
    /// Stops the operator gracefully, after checking that the API server refused none of its
    /// requests for want of a grant (403 in the audit log).
    pub async fn stop(self, cluster: &Cluster) {
        let forbidden: Vec<String> = cluster
            .audit_events(&self.identity.username)
            .into_iter()
            .filter(|e| e.code == 403)
            .map(|e| format!("{} {}", e.verb, e.uri))
            .collect();
        let _ = self.stop.send(true);
        let ended = tokio::time::timeout(Duration::from_secs(10), self.task).await;
        if let Ok(Ok(Err(e))) = ended {
            panic!("the operator stopped with an error: {e}");
        }
        assert!(
            forbidden.is_empty(),
            "the API server refused the operator (403, the chart's RBAC does not grant it): {forbidden:#?}"
        );
    }

    /// The value of one series on the operator's `/metrics`, named with its labels exactly as
    /// exported (`name{label="value",…}`); None when the series does not exist (yet).
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let text = reqwest::get(&self.metrics_url)
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    }
}

/// Fast health checks and backoff, so tests see the operator react within seconds.
pub fn fast_settings() -> registry_operator::controller::context::Settings {
    use registry_operator::controller::context::Settings;
    Settings {
        health_interval: Duration::from_secs(2),
        backoff_base: Duration::from_millis(200),
        backoff_max: Duration::from_secs(2),
        ..Settings::default()
    }
}

/// Turns within one test binary. Every test's operator watches the cluster-scoped
/// ClusterRetentionPolicies and lists Registries cluster-wide for them, so a test that creates
/// one runs alone (an exclusive turn); the other tests share turns and run side by side.
static TURNS: std::sync::LazyLock<std::sync::Arc<tokio::sync::RwLock<()>>> =
    std::sync::LazyLock::new(Default::default);

/// A test's turn (see [`TURNS`]), held as long as its operator runs.
enum Turn {
    Shared(#[allow(dead_code)] tokio::sync::OwnedRwLockReadGuard<()>),
    Alone(#[allow(dead_code)] tokio::sync::OwnedRwLockWriteGuard<()>),
}

/// How a [`Harness`] is set up.
pub struct Setup {
    /// The operator's settings ([`fast_settings`] unless told).
    pub settings: registry_operator::controller::context::Settings,
    /// Prefixes of further namespaces of the test's own, which the operator watches too.
    pub also_watch: Vec<&'static str>,
    /// The test creates cluster-scoped objects the operator reconciles: no other test of the
    /// binary runs beside it.
    pub alone: bool,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            settings: fast_settings(),
            also_watch: Vec::new(),
            alone: false,
        }
    }
}

/// The operator's end-to-end setting on the real control plane: a namespace of the test's own,
/// the CRDs, and the operator running in it as the chart's ServiceAccount, limited to it. The
/// test acts as cluster admin through `client`; the API server's audit log tells the two apart.
pub struct Harness {
    /// The control plane.
    pub cluster: Cluster,
    /// The test's namespace (the operator's `--watch-namespace` and release namespace).
    pub ns: String,
    /// Further namespaces of the test's own the operator watches ([`Setup::also_watch`]).
    pub also: Vec<String>,
    /// A cluster-admin client for the test.
    pub client: kube::Client,
    /// The operator.
    pub operator: Operator,
    /// `http://127.0.0.1:PORT/metrics` of the operator.
    pub metrics_url: String,
    _turn: Turn,
}

impl Harness {
    /// Connects, installs the CRDs, creates a namespace `<prefix>-<random>` and starts the
    /// operator there with fast health checks and backoff.
    pub async fn start(prefix: &str) -> Harness {
        Self::start_setup(prefix, Setup::default()).await
    }

    /// As [`Harness::start`], with the given settings.
    pub async fn start_with(
        prefix: &str,
        settings: registry_operator::controller::context::Settings,
    ) -> Harness {
        Self::start_setup(
            prefix,
            Setup {
                settings,
                ..Setup::default()
            },
        )
        .await
    }

    /// As [`Harness::start`], for a test that creates ClusterRetentionPolicies: it waits until
    /// no other test of the binary runs, and none starts before it stops.
    pub async fn start_alone(prefix: &str) -> Harness {
        Self::start_setup(
            prefix,
            Setup {
                alone: true,
                ..Setup::default()
            },
        )
        .await
    }

    /// As [`Harness::start`], set up as `setup` says.
    pub async fn start_setup(prefix: &str, setup: Setup) -> Harness {
        let turn = if setup.alone {
            Turn::Alone(TURNS.clone().write_owned().await)
        } else {
            Turn::Shared(TURNS.clone().read_owned().await)
        };
        let cluster = Cluster::connect().await;
        cluster.install_crds().await;
        let ns = cluster.namespace(prefix).await;
        let mut also = Vec::new();
        for p in &setup.also_watch {
            also.push(cluster.namespace(p).await);
        }
        let mut watch = vec![ns.clone()];
        watch.extend(also.iter().cloned());
        let operator = cluster
            .start_operator_watching(&ns, &watch, setup.settings, false)
            .await;
        Harness {
            client: cluster.client.clone(),
            metrics_url: operator.metrics_url.clone(),
            cluster,
            ns,
            also,
            operator,
            _turn: turn,
        }
    }

    /// The operator's requests so far, from the audit log.
    pub fn operator_requests(&self) -> Vec<AuditEvent> {
        self.cluster.audit_events(&self.operator.identity.username)
    }

    /// The operator's writes so far (create, update, patch, delete), from the audit log.
    pub fn writes(&self) -> usize {
        self.operator_requests()
            .iter()
            .filter(|e| e.is_write())
            .count()
    }

    /// The value of one series on the operator's `/metrics`.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        self.operator.metric(series).await
    }

    /// The Events (events.k8s.io) in the test's namespace about `name` with `reason`.
    pub async fn events(
        &self,
        name: &str,
        reason: &str,
    ) -> Vec<k8s_openapi::api::events::v1::Event> {
        let api: Api<k8s_openapi::api::events::v1::Event> =
            Api::namespaced(self.client.clone(), &self.ns);
        api.list(&Default::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default()
            .into_iter()
            .filter(|e| {
                e.reason.as_deref() == Some(reason)
                    && e.regarding
                        .as_ref()
                        .is_some_and(|r| r.name.as_deref() == Some(name))
            })
            .collect()
    }

    /// Stops the operator; fails the test if the API server refused it anything (403).
    pub async fn stop(self) {
        self.operator.stop(&self.cluster).await;
    }
}

/// The condition of `type_` in an object's status.
pub fn condition<K: serde::Serialize>(
    object: &K,
    type_: &str,
) -> Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    let v = serde_json::to_value(object).ok()?;
    v.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .filter_map(|c| serde_json::from_value(c.clone()).ok())
        .find(|c: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition| c.type_ == type_)
}

/// A fixture, from JSON.
pub fn object<K: serde::de::DeserializeOwned>(v: Value) -> K {
    serde_json::from_value(v).expect("fixture")
}
