//! The Helm chart, rendered with its optional values, as the real API server of the test run
//! judges it (`kubectl apply --server-side --dry-run=server`: schema, defaulting and
//! validation run, nothing is stored). The Prometheus Operator's CRDs are not installed on that
//! control plane, so ServiceMonitor, PodMonitor and PrometheusRule objects are checked offline
//! only (tests/packaging.rs). Needs the control plane: run with scripts/test.sh (or set
//! REGISTRY_OPERATOR_TEST_KUBECONFIG).

mod support;

use std::process::Command;

use support::cluster::{root, tool, Cluster};

/// `helm template` of the chart into `namespace` with `extra` values.
fn render(namespace: &str, extra: &[&str]) -> String {
    let out = Command::new(tool("helm"))
        .args([
            "template",
            "ro",
            "charts/registry-operator",
            "--namespace",
            namespace,
        ])
        .args(extra)
        .current_dir(root())
        .output()
        .expect("helm runs");
    assert!(
        out.status.success(),
        "helm template failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A server-side dry-run apply of `yaml`: (accepted, stdout, stderr).
fn dry_run_apply(c: &Cluster, yaml: &str) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("chart.yaml");
    std::fs::write(&file, yaml).unwrap();
    c.kubectl(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager=chart-test",
        "--dry-run=server",
        "-f",
        file.to_str().unwrap(),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_server_accepts_the_chart_with_every_pod_and_crd_option() {
    let c = Cluster::connect().await;
    c.install_crds().await;
    let ns = c.namespace("chart").await;
    let yaml = render(
        &ns,
        &[
            "--set",
            "fullnameOverride=chart-dry-run",
            "--set",
            "replicaCount=2",
            "--set-json",
            r#"extraArgs=["--health-interval-seconds=60"]"#,
            "--set-json",
            r#"extraEnv=[{"name":"HTTPS_PROXY","value":"http://127.0.0.1:3128"}]"#,
            "--set-json",
            r#"extraVolumes=[{"name":"corp-ca","configMap":{"name":"corp-ca"}}]"#,
            "--set-json",
            r#"extraVolumeMounts=[{"name":"corp-ca","mountPath":"/etc/corp-ca","readOnly":true}]"#,
            "--set-json",
            r#"topologySpreadConstraints=[{"maxSkew":1,"topologyKey":"topology.kubernetes.io/zone","whenUnsatisfiable":"ScheduleAnyway","labelSelector":{"matchLabels":{"app.kubernetes.io/name":"registry-operator"}}}]"#,
            "--set-json",
            r#"podSecurityContext={"runAsNonRoot":true,"runAsUser":10001,"fsGroup":10001,"seccompProfile":{"type":"RuntimeDefault"}}"#,
            "--set",
            "podDisruptionBudget.enabled=true",
            "--set",
            "podDisruptionBudget.maxUnavailable=1",
            "--set",
            "networkPolicy.enabled=true",
            // Enabled, but the API server here has no monitoring.coreos.com: not rendered.
            "--set",
            "metrics.serviceMonitor.enabled=true",
            "--set",
            "prometheusRule.enabled=true",
        ],
    );
    let (ok, out, err) = dry_run_apply(&c, &yaml);
    assert!(ok, "the API server refused the chart:\n{out}\n{err}");
    for applied in [
        "deployment.apps/chart-dry-run serverside-applied (server dry run)",
        "poddisruptionbudget.policy/chart-dry-run serverside-applied (server dry run)",
        "networkpolicy.networking.k8s.io/chart-dry-run serverside-applied (server dry run)",
        "customresourcedefinition.apiextensions.k8s.io/registries.registry-operator.dev serverside-applied (server dry run)",
        "clusterrole.rbac.authorization.k8s.io/chart-dry-run serverside-applied (server dry run)",
    ] {
        assert!(out.contains(applied), "{applied:?} not in:\n{out}");
    }
    assert!(
        !out.contains("servicemonitor") && !out.contains("prometheusrule"),
        "{out}"
    );

    // The server, not only the chart's schema, judges what is inside the free-form values.
    let bad = render(
        &ns,
        &[
            "--set-json",
            r#"extraEnv=[{"name":"NODE","valueFrom":{"fieldRef":{"fieldPath":"spec.nope"}}}]"#,
        ],
    );
    let (ok, out, err) = dry_run_apply(&c, &bad);
    assert!(!ok, "the API server accepted an invalid extraEnv:\n{out}");
    assert!(err.contains("spec.nope"), "{err}");
}
