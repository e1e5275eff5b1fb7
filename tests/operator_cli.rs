//! `registry-operator run` as a process: clear errors instead of panics, a CRD check, health
//! and metrics endpoints, and a clean stop on SIGTERM.

use std::io::Read;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use kube_double::TestApiServer;

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
            panic!("registry-operator run did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn run_with(kubeconfig: &std::path::Path, port: u16) -> std::process::Child {
    Command::new(bin())
        .args([
            "run",
            "--log-format",
            "text",
            "--http-listen",
            &format!("127.0.0.1:{port}"),
        ])
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
    let (code, err) = wait(run_with(&kc, free_port()), Duration::from_secs(60));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("talking to the Kubernetes API"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_crds_the_operator_says_which_one_is_missing() {
    let server = TestApiServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    server.write_kubeconfig(&kc).unwrap();
    let child = run_with(&kc, free_port());
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
    let server = TestApiServer::start().await.unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(server.client());
    for (_, crd) in registry_operator::api::crds() {
        crds.create(&PostParams::default(), &crd).await.unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    server.write_kubeconfig(&kc).unwrap();
    let port = free_port();
    let child = run_with(&kc, port);
    registry_operator::tls::install_crypto_provider();
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
