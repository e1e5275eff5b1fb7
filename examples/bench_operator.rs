//! Operator scale benchmark: 1,000 RetentionPolicies and 20,000 Pods on a real control plane of
//! its own (`scripts/cluster.sh`: etcd, kube-apiserver, kube-controller-manager; Go builds the
//! binaries once), a real distribution registry behind one external Registry, and the operator
//! as its own process (`target/release/registry-operator run`, cluster admin). Prints how long
//! the API server took to create the Pods, the operator's resident memory (current and peak,
//! from /proc), how long the policies took to converge and the reconcile latency from its
//! /metrics histogram.
//!
//! `cargo build --release --bin registry-operator && cargo run --release --example bench_operator [POLICIES PODS]`
//! (scripts/bench.sh does both). Bounded: gives up after 10 minutes.

#[path = "../tests/support/mod.rs"]
mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, PostParams};
use registry_operator::api::{Registry, RetentionPolicy};
use serde_json::json;
use support::control_plane::ControlPlane;
use support::registry::TestRegistry;
use support::seed::Seeder;

fn status_kib(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn histogram(metrics: &str, controller: &str) -> (f64, f64) {
    let pick = |suffix: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(&format!("registry_operator_reconcile_duration_seconds_{suffix}{{controller=\"{controller}\"}}")))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (pick("sum"), pick("count"))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    registry_operator::tls::install_crypto_provider();
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let policies = args.first().copied().unwrap_or(1000);
    let pods = args.get(1).copied().unwrap_or(20_000);
    let bin = std::env::var("REGISTRY_OPERATOR_BIN").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/target/release/registry-operator"
        )
        .to_string()
    });
    let bin = bin.as_str();
    assert!(
        std::path::Path::new(bin).exists(),
        "build it first: cargo build --release --bin registry-operator"
    );

    // A real registry with 10 repositories of 5 tags.
    let registry = TestRegistry::start();
    let seeder = Seeder::new(&registry.url, None);
    for r in 0..10 {
        for t in 0..5 {
            seeder
                .push_image(
                    &format!("team-{r}/app"),
                    Some(&format!("v{t}")),
                    &format!("{r}-{t}"),
                    &format!("2025-01-{:02}T00:00:00Z", t + 1),
                )
                .await;
        }
    }
    let host = registry.url.trim_start_matches("http://").to_string();

    let started = Instant::now();
    let cp = ControlPlane::start("bench-operator").await;
    println!(
        "control plane started in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let client = cp.cluster.client.clone();
    cp.cluster.install_crds().await;
    let regs: Api<Registry> = Api::namespaced(client.clone(), "default");
    regs.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
            "apiVersion": "registry-operator.dev/v1alpha1", "kind": "Registry",
            "metadata": {"name": "dist"}, "spec": {"external": {"url": registry.url}},
        }))
        .unwrap(),
    )
    .await
    .unwrap();

    let t = Instant::now();
    let pod_api: Api<Pod> = Api::namespaced(client.clone(), "default");
    stream::iter(0..pods)
        .for_each_concurrent(16, |i| {
            let pod_api = pod_api.clone();
            let host = host.clone();
            async move {
                let pod: Pod = serde_json::from_value(json!({
                    "apiVersion": "v1", "kind": "Pod", "metadata": {"name": format!("pod-{i}")},
                    "spec": {"containers": [
                        {"name": "app", "image": format!("{host}/team-{}/app:v{}", i % 10, i % 5)},
                        {"name": "sidecar", "image": format!("docker.io/library/envoy:{}", i % 50)},
                    ]},
                }))
                .unwrap();
                pod_api.create(&PostParams::default(), &pod).await.unwrap();
            }
        })
        .await;
    let pods_created = t.elapsed();
    println!("created {pods} Pods in {:.1} s", pods_created.as_secs_f64());

    let kc = cp.cluster.dir().join("kubeconfig");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(bin)
        .args([
            "run",
            "--log-format",
            "json",
            "--log-level",
            "warn",
            "--http-listen",
            &format!("127.0.0.1:{port}"),
        ])
        .env("KUBECONFIG", &kc)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("operator starts");
    let pid = child.id();
    // Wait until the in-use index has listed everything (its gauges, on /metrics).
    let started = Instant::now();
    let gauge = |metrics: &str, name: &str| -> Option<f64> {
        metrics
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    };
    let mut indexed = None;
    while started.elapsed() < Duration::from_secs(300) {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await {
            let text = r.text().await.unwrap_or_default();
            if gauge(&text, "registry_operator_in_use_synced") == Some(1.0)
                && gauge(&text, "registry_operator_in_use_objects") >= Some(pods as f64)
            {
                indexed = Some(started.elapsed());
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let idle_rss = status_kib(pid, "VmRSS:");

    let t = Instant::now();
    let rp_api: Api<RetentionPolicy> = Api::namespaced(client.clone(), "default");
    stream::iter(0..policies)
        .for_each_concurrent(16, |i| {
            let rp_api = rp_api.clone();
            async move {
                let p: RetentionPolicy = serde_json::from_value(json!({
                    "apiVersion": "registry-operator.dev/v1alpha1", "kind": "RetentionPolicy",
                    "metadata": {"name": format!("policy-{i}")},
                    "spec": {"registryRef": {"name": "dist"}, "mode": "Plan",
                             "repositories": {"include": [format!("team-{}/**", i % 10)]},
                             "keep": [{"mostRecent": 1 + (i % 4) as i32}]},
                }))
                .unwrap();
                rp_api.create(&PostParams::default(), &p).await.unwrap();
            }
        })
        .await;
    let created = t.elapsed();

    let deadline = Instant::now() + Duration::from_secs(600);
    let mut peak = 0;
    let converged = loop {
        peak = peak.max(status_kib(pid, "VmRSS:"));
        let list = rp_api.list(&ListParams::default()).await.unwrap();
        let done = list
            .items
            .iter()
            .filter(|p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.last_run.as_ref())
                    .is_some()
            })
            .count();
        if done == policies {
            break Some(t.elapsed());
        }
        if Instant::now() > deadline {
            println!("gave up: {done}/{policies} policies ran in 10 minutes");
            break None;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let settled_rss = status_kib(pid, "VmRSS:");
    let hwm = status_kib(pid, "VmHWM:");
    let metrics = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (sum, count) = histogram(&metrics, "retentionpolicy");
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = child.wait();

    println!();
    println!("| measure | value |");
    println!("| --- | --- |");
    println!(
        "| Pods in the cluster (real API server) | {pods} (created in {:.1} s, {:.0} Pods/s) |",
        pods_created.as_secs_f64(),
        pods as f64 / pods_created.as_secs_f64()
    );
    println!(
        "| RetentionPolicies (Plan mode, one real registry) | {policies} (created in {:.1} s) |",
        created.as_secs_f64()
    );
    match converged {
        Some(d) => println!(
            "| time until every policy had run | {:.1} s ({:.1} runs/s) |",
            d.as_secs_f64(),
            policies as f64 / d.as_secs_f64()
        ),
        None => println!("| time until every policy had run | did not converge in 10 min |"),
    }
    println!(
        "| policy reconciles / mean reconcile latency | {count:.0} / {:.1} ms |",
        if count > 0.0 {
            1000.0 * sum / count
        } else {
            0.0
        }
    );
    match indexed {
        Some(d) => println!(
            "| operator start until its in-use index held every Pod | {:.1} s |",
            d.as_secs_f64()
        ),
        None => {
            println!("| operator start until its in-use index held every Pod | not within 5 min |")
        }
    }
    println!(
        "| operator RSS with the Pods indexed, before any policy | {:.1} MiB |",
        idle_rss as f64 / 1024.0
    );
    println!(
        "| operator RSS after the runs / peak (VmHWM) | {:.1} MiB / {:.1} MiB |",
        settled_rss as f64 / 1024.0,
        hwm.max(peak) as f64 / 1024.0
    );
}
