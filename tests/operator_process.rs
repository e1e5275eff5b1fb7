//! `registry-operator run` as a process: clear errors instead of panics, a CRD check, health
//! and metrics endpoints, and a clean stop on SIGTERM — on the real control plane
//! (tests/support/cluster.rs), as the chart's ServiceAccount. The CRD check needs an API server
//! without the CRDs: that test starts a control plane of its own (scripts/cluster.sh), since
//! the shared one has them installed.

mod support;

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::cluster::Cluster;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_registry-operator")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits for the child to exit (at most `limit`) and returns its code and stderr.
fn wait(mut child: std::process::Child, limit: Duration) -> (Option<i32>, String) {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return (status.code(), err);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("registry-operator run did not exit within {limit:?}; it said:\n{err}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn run_with(kubeconfig: &Path, port: u16, args: &[&str]) -> std::process::Child {
    Command::new(bin())
        .args([
            "run",
            "--log-format",
            "text",
            "--http-listen",
            &format!("127.0.0.1:{port}"),
        ])
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn an_unreachable_https_api_server_is_a_clear_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    std::fs::write(&kc, format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: x\n  cluster:\n    server: https://127.0.0.1:{}\n    insecure-skip-tls-verify: true\nusers:\n- name: x\n  user:\n    token: t\ncontexts:\n- name: x\n  context: {{cluster: x, user: x}}\ncurrent-context: x\n",
        free_port()
    )).unwrap();
    let (code, err) = wait(run_with(&kc, free_port(), &[]), Duration::from_secs(60));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("talking to the Kubernetes API"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// A control plane of the test's own (`scripts/cluster.sh start` in a temporary directory),
/// stopped when dropped.
struct OwnControlPlane {
    dir: PathBuf,
    _tmp: tempfile::TempDir,
}

impl OwnControlPlane {
    fn start() -> OwnControlPlane {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("cluster");
        let out = Command::new(support::cluster::root().join("scripts/cluster.sh"))
            .arg("start")
            .arg(&dir)
            .output()
            .expect("scripts/cluster.sh runs");
        assert!(
            out.status.success(),
            "scripts/cluster.sh start failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        OwnControlPlane { dir, _tmp: tmp }
    }

    fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }
}

impl Drop for OwnControlPlane {
    fn drop(&mut self) {
        let _ = Command::new(support::cluster::root().join("scripts/cluster.sh"))
            .arg("stop")
            .arg(&self.dir)
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_crds_the_operator_says_which_one_is_missing() {
    // A fresh API server, without the project's CRDs.
    let cp = tokio::task::spawn_blocking(OwnControlPlane::start)
        .await
        .unwrap();
    let child = run_with(&cp.kubeconfig(), free_port(), &[]);
    let (code, err) = tokio::task::spawn_blocking(move || wait(child, Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("CRD registries.registry-operator.dev is not installed")
            && err.contains("kubectl apply -f crds/"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_serves_health_and_metrics_and_stops_on_sigterm() {
    let cluster = Cluster::connect().await;
    cluster.install_crds().await;
    let ns = cluster.namespace("cli").await;
    // As in a cluster: the chart's ServiceAccount, its token, limited to one namespace.
    let sa = cluster.operator_identity(&ns).await;
    let port = free_port();
    let child = run_with(&sa.kubeconfig, port, &["--watch-namespace", &ns]);
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match http.get(format!("{base}/readyz")).send().await {
            Ok(r) if r.status() == 200 => break,
            _ if Instant::now() > deadline => panic!("/readyz never answered 200"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    assert_eq!(
        http.get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("registry_operator_reconciles"),
        "{metrics}"
    );
    // Without --leader-elect the only replica leads.
    assert!(
        metrics.contains("\nregistry_operator_leader 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "\nregistry_operator_build_info{{version=\"{}\"}} 1\n",
            env!("CARGO_PKG_VERSION")
        )),
        "{metrics}"
    );
    assert!(metrics.ends_with("# EOF\n"));

    // SIGTERM: the process stops by itself, successfully.
    let pid = child.id() as i32;
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let (code, err) = tokio::task::spawn_blocking(move || wait(child, Duration::from_secs(30)))
        .await
        .unwrap();
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("SIGTERM received"), "{err}");
}

/// Kubernetes may stop the operator at any moment, also right after it started (a rollout, a
/// node drain): before its caches have listed, it stops at once, not after the kubelet's kill.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigterm_right_after_start_stops_the_operator_at_once() {
    let cluster = Cluster::connect().await;
    cluster.install_crds().await;
    let ns = cluster.namespace("cli-early").await;
    let sa = cluster.operator_identity(&ns).await;
    let http = reqwest::Client::new();
    // The window between the first answer and the caches' first list is short: try a few times.
    for attempt in 1..=3 {
        let port = free_port();
        let child = run_with(&sa.kubeconfig, port, &["--watch-namespace", &ns]);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !matches!(
            http.get(format!("http://127.0.0.1:{port}/healthz")).send().await,
            Ok(r) if r.status() == 200
        ) {
            assert!(Instant::now() < deadline, "/healthz never answered 200");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let (code, err) = tokio::task::spawn_blocking(move || wait(child, Duration::from_secs(10)))
            .await
            .unwrap();
        assert_eq!(code, Some(0), "attempt {attempt}: {err}");
        assert!(err.contains("SIGTERM received"), "attempt {attempt}: {err}");
    }
}
