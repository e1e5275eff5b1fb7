//! Runs the real operator (its controllers, through `controller::operator::run`) against the
//! Kubernetes API test double, with the project's CRDs installed.

#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, PostParams};
use kube_double::{RequestRecord, TestApiServer};
use registry_operator::controller::context::Settings;
use registry_operator::controller::operator::{self, OperatorConfig};
use serde::de::DeserializeOwned;

/// The user the operator's requests are logged as.
pub const OPERATOR_USER: &str = "system:serviceaccount:registry-operator:controller-manager";

/// A test double with the CRDs installed and the operator running against it.
pub struct Harness {
    pub server: TestApiServer,
    pub client: kube::Client,
    /// `http://127.0.0.1:PORT/metrics` of the operator.
    pub metrics_url: String,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Harness {
    /// Starts with default settings (fast health checks and backoff).
    pub async fn start() -> Self {
        Self::start_with(Settings {
            health_interval: Duration::from_secs(2),
            backoff_base: Duration::from_millis(200),
            backoff_max: Duration::from_secs(2),
            ..Settings::default()
        })
        .await
    }

    /// Starts with the given settings.
    pub async fn start_with(settings: Settings) -> Self {
        Self::start_full(settings, None).await
    }

    /// Starts with the given settings and, optionally, leader election.
    pub async fn start_full(
        settings: Settings,
        leader_election: Option<registry_operator::controller::runtime::LeaderElection>,
    ) -> Self {
        let server = TestApiServer::start().await.expect("test apiserver starts");
        let client = server.client();
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        for (_, crd) in registry_operator::api::crds() {
            crds.create(&PostParams::default(), &crd)
                .await
                .expect("CRD installs");
        }
        // A free port, chosen here so the test knows where /metrics is.
        let http_listen = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port");
        let config = OperatorConfig {
            http_listen,
            leader_election,
            watch_namespaces: Vec::new(),
            settings,
        };
        let (shutdown, stop) = operator::shutdown_signal();
        // The operator gets its own client and user, so its requests can be told apart from
        // the test's in the request log.
        let c = server.client_as(OPERATOR_USER);
        let task = tokio::spawn(async move {
            operator::run(c, config, shutdown)
                .await
                .expect("operator runs");
        });
        Harness {
            server,
            client,
            metrics_url: format!("http://{http_listen}/metrics"),
            stop,
            task,
        }
    }

    /// Every request the API server received so far.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.server.requests()
    }

    /// The requests the operator (not the test) sent.
    pub fn operator_requests(&self) -> Vec<RequestRecord> {
        self.server
            .requests()
            .into_iter()
            .filter(|r| r.user == OPERATOR_USER)
            .collect()
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

    /// The Events (events.k8s.io) about the object named `name` with `reason`.
    pub async fn events(&self, name: &str, reason: &str) -> Vec<Event> {
        let api: Api<Event> = Api::all(self.client.clone());
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

    /// Writes (create, update, patch, delete) sent so far.
    pub fn writes(&self) -> usize {
        self.server
            .requests()
            .iter()
            .filter(|r| r.is_write())
            .count()
    }

    /// Stops the operator gracefully, after checking that everything it called is granted by
    /// its ClusterRole in config/rbac/role.yaml (the chart's is tested equal).
    pub async fn stop(self) {
        let missing = ungranted(&self.operator_requests());
        assert!(
            missing.is_empty(),
            "the operator called what config/rbac does not grant: {missing:#?}"
        );
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}

/// Polls `probe` every 50 ms until it yields a value; panics after 20 s naming `what`.
pub async fn wait_for<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The condition of `type_` in an object's status.
pub fn condition<K: serde::Serialize>(object: &K, type_: &str) -> Option<Condition> {
    let v = serde_json::to_value(object).ok()?;
    let conditions = v.pointer("/status/conditions")?.as_array()?.clone();
    conditions
        .into_iter()
        .filter_map(|c| serde_json::from_value::<Condition>(c).ok())
        .find(|c| c.type_ == type_)
}

/// Deserialises a fixture.
pub fn object<K: DeserializeOwned>(v: serde_json::Value) -> K {
    serde_json::from_value(v).expect("fixture")
}

/// The rules of the operator's ClusterRole (config/rbac/role.yaml) and leader-election Role
/// (config/rbac/leader_election_role.yaml), as (group, resource, verb).
pub fn granted_rules() -> Vec<(String, String, String)> {
    let mut out = rules_of("role.yaml");
    out.extend(rules_of("leader_election_role.yaml"));
    out
}

fn rules_of(file: &str) -> Vec<(String, String, String)> {
    let path = format!("{}/config/rbac/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).unwrap();
    let role: serde_json::Value = serde_yaml::from_str(&text).unwrap();
    let mut out = Vec::new();
    for rule in role["rules"].as_array().unwrap() {
        for g in rule["apiGroups"].as_array().unwrap() {
            for r in rule["resources"].as_array().unwrap() {
                for v in rule["verbs"].as_array().unwrap() {
                    out.push((
                        g.as_str().unwrap().to_string(),
                        r.as_str().unwrap().to_string(),
                        v.as_str().unwrap().to_string(),
                    ));
                }
            }
        }
    }
    out
}

/// The operator's requests that its ClusterRole does not grant, as `verb group/resource`.
pub fn ungranted(requests: &[RequestRecord]) -> Vec<String> {
    let rules = granted_rules();
    let mut out: Vec<String> = requests
        .iter()
        .filter(|r| {
            let resource = if r.subresource.is_empty() {
                r.resource.clone()
            } else {
                format!("{}/{}", r.resource, r.subresource)
            };
            !rules
                .iter()
                .any(|(g, res, v)| *g == r.group && *res == resource && *v == r.verb)
        })
        .map(|r| {
            format!(
                "{} {}/{}{}",
                r.verb,
                r.group,
                r.resource,
                if r.subresource.is_empty() {
                    String::new()
                } else {
                    format!("/{}", r.subresource)
                }
            )
        })
        .collect();
    out.sort();
    out.dedup();
    out
}
