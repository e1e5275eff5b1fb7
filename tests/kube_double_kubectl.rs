//! `kubectl` against the API test double: the project's CRDs and sample objects apply
//! client-side and server-side, `get -o yaml`, `describe` and `delete` work, and invalid objects
//! are rejected with the API server's kind of message.
//!
//! kubectl is found through `$KUBECTL`, then `.tools/bin/kubectl` (see
//! `scripts/install-tools.sh`), then `PATH`.

use std::path::{Path, PathBuf};
use std::process::Command;

use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::Resource;
use kube_double::TestApiServer;

const FIXTURES: &str = "crates/kube-double/tests/fixtures";

fn kubectl_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("KUBECTL") {
        return PathBuf::from(p);
    }
    let local = Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/bin/kubectl");
    if local.exists() {
        return local;
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("kubectl"))
        .find(|p| p.is_file());
    on_path.unwrap_or_else(|| {
        panic!("kubectl not found: set KUBECTL, run scripts/install-tools.sh (installs .tools/bin/kubectl), or put kubectl on PATH")
    })
}

struct Kubectl {
    bin: PathBuf,
    kubeconfig: PathBuf,
    cache: PathBuf,
    _dir: tempfile::TempDir,
}

/// What a kubectl run printed and whether it succeeded.
struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Kubectl {
    fn new(server: &TestApiServer) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let kubeconfig = dir.path().join("kubeconfig");
        server
            .write_kubeconfig(&kubeconfig)
            .expect("kubeconfig written");
        Self {
            bin: kubectl_binary(),
            kubeconfig,
            cache: dir.path().join("cache"),
            _dir: dir,
        }
    }

    /// Run kubectl off the async runtime, so the in-process server keeps serving.
    async fn run(&self, args: &[&str]) -> Run {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(&self.cache)
            .args(args);
        cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
        let out = tokio::task::spawn_blocking(move || cmd.output())
            .await
            .expect("join")
            .expect("kubectl runs");
        Run {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    async fn ok(&self, args: &[&str]) -> String {
        let r = self.run(args).await;
        assert!(r.ok, "kubectl {args:?} failed:\n{}\n{}", r.stdout, r.stderr);
        r.stdout
    }
}

fn fixture(rel: &str) -> String {
    format!("{FIXTURES}/{rel}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_applies_the_crds_and_samples_client_side_then_gets_describes_and_deletes() {
    let server = TestApiServer::start().await.unwrap();
    let k = Kubectl::new(&server);
    let out = k.ok(&["apply", "-f", "crds/"]).await;
    assert!(out.contains("customresourcedefinition.apiextensions.k8s.io/registries.registry-operator.dev created"), "{out}");

    let samples = fixture("samples/");
    let out = k.ok(&["apply", "-f", &samples]).await;
    assert!(
        out.contains("registry.registry-operator.dev/zot created"),
        "{out}"
    );
    assert!(
        out.contains("retentionpolicy.registry-operator.dev/keep-recent created"),
        "{out}"
    );
    let again = k.ok(&["apply", "-f", &samples]).await;
    assert!(
        again.contains("registry.registry-operator.dev/zot unchanged"),
        "{again}"
    );

    let yaml = k.ok(&["get", "registry", "zot", "-o", "yaml"]).await;
    assert!(yaml.contains("version: v2.1.8"), "{yaml}");
    assert!(yaml.contains("generation: 1"), "{yaml}");
    let table = k.ok(&["get", "registries"]).await;
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NAME", "URL", "VERSION", "READY", "AGE"],
        "printer columns come from the CRD"
    );
    let names = k.ok(&["get", "reg,rp", "-o", "name"]).await;
    assert_eq!(names.lines().count(), 3, "{names}");
    // Cluster-scoped: no namespace in its path, listed from any namespace context.
    let crp = k.ok(&["get", "crp", "-A", "-o", "name"]).await;
    assert_eq!(
        crp.trim(),
        "clusterretentionpolicy.registry-operator.dev/default-retention"
    );
    let crp_requests: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.resource == "clusterretentionpolicies")
        .collect();
    assert!(
        crp_requests.iter().all(|r| r.namespace.is_none()),
        "{crp_requests:?}"
    );
    let described = k.ok(&["describe", "rp", "keep-recent"]).await;
    assert!(described.contains("Registry Ref"), "{described}");

    // Events a controller publishes (events.k8s.io, kube-rs Recorder) show in describe.
    let regs: kube::Api<registry_operator::api::Registry> =
        kube::Api::default_namespaced(server.client());
    let zot = regs.get("zot").await.unwrap();
    let recorder = Recorder::new(
        server.client(),
        Reporter {
            controller: "registry-operator".into(),
            instance: None,
        },
    );
    let event = Event {
        type_: EventType::Normal,
        reason: "Deployed".into(),
        note: Some("zot v2.1.8 rolled out".into()),
        action: "Reconcile".into(),
        secondary: None,
    };
    recorder
        .publish(&event, &zot.object_ref(&()))
        .await
        .unwrap();
    let described = k.ok(&["describe", "registry", "zot"]).await;
    assert!(described.contains("zot v2.1.8 rolled out"), "{described}");

    let deleted = k.ok(&["delete", "-f", &samples]).await;
    assert!(
        deleted.contains("registry.registry-operator.dev \"zot\" deleted"),
        "{deleted}"
    );
    let none = k.run(&["get", "registries"]).await;
    assert!(
        none.ok && none.stderr.contains("No resources found"),
        "{}{}",
        none.stdout,
        none.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_server_side_apply_works_for_crds_and_samples() {
    let server = TestApiServer::start().await.unwrap();
    let k = Kubectl::new(&server);
    let out = k.ok(&["apply", "--server-side", "-f", "crds/"]).await;
    assert!(
        out.contains("registries.registry-operator.dev serverside-applied"),
        "{out}"
    );
    let samples = fixture("samples/");
    k.ok(&["apply", "--server-side", "-f", &samples]).await;
    k.ok(&["apply", "--server-side", "-f", &samples]).await;
    let yaml = k
        .ok(&[
            "get",
            "rp",
            "keep-recent",
            "-o",
            "yaml",
            "--show-managed-fields",
        ])
        .await;
    assert!(yaml.contains("manager: kubectl"), "{yaml}");
    assert!(yaml.contains("operation: Apply"), "{yaml}");
    let writes = server
        .requests()
        .iter()
        .filter(|r| r.is_write() && r.resource == "retentionpolicies")
        .count();
    assert_eq!(writes, 2, "each server-side apply is one PATCH");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_shows_the_api_servers_message_for_invalid_objects() {
    let server = TestApiServer::start().await.unwrap();
    let k = Kubectl::new(&server);
    k.ok(&["apply", "-f", "crds/"]).await;

    let bad = k
        .run(&[
            "apply",
            "-f",
            &fixture("invalid/retentionpolicy-keep-zero.yaml"),
        ])
        .await;
    assert!(!bad.ok);
    assert!(
        bad.stderr.contains("The RetentionPolicy \"bad-keep\" is invalid: spec.keep[0].mostRecent: Invalid value: 0: spec.keep[0].mostRecent in body should be greater than or equal to 1"),
        "{}",
        bad.stderr
    );
    let cel = k
        .run(&[
            "apply",
            "--server-side",
            "-f",
            &fixture("invalid/registry-external-and-managed.yaml"),
        ])
        .await;
    assert!(!cel.ok);
    assert!(
        cel.stderr.contains("The Registry \"confused\" is invalid"),
        "{}",
        cel.stderr
    );
    assert!(
        cel.stderr
            .contains("spec.external declares a registry the operator does not deploy"),
        "{}",
        cel.stderr
    );

    let unknown = k
        .run(&[
            "apply",
            "-f",
            &fixture("invalid/registry-unknown-field.yaml"),
        ])
        .await;
    assert!(!unknown.ok);
    assert!(
        unknown.stderr.contains("unknown field \"spec.colour\""),
        "{}",
        unknown.stderr
    );
    let none = k.run(&["get", "registries,retentionpolicies"]).await;
    assert!(
        none.stderr.contains("No resources found"),
        "{}{}",
        none.stdout,
        none.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_moves_from_client_side_to_server_side_apply_without_conflicts() {
    let server = TestApiServer::start().await.unwrap();
    let k = Kubectl::new(&server);
    k.ok(&["apply", "-f", "crds/"]).await;
    k.ok(&["apply", "-f", &fixture("samples/registry.yaml")])
        .await;
    let changed = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join(fixture("samples/registry.yaml")),
    )
    .unwrap()
    .replace("version: v2.1.8", "version: v2.1.9");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("registry.yaml");
    std::fs::write(&file, changed).unwrap();
    let out = k
        .ok(&["apply", "--server-side", "-f", file.to_str().unwrap()])
        .await;
    assert!(
        out.contains("registry.registry-operator.dev/zot serverside-applied"),
        "{out}"
    );
    let version = k
        .ok(&[
            "get",
            "registry",
            "zot",
            "-o",
            "jsonpath={.spec.version} {.metadata.generation}",
        ])
        .await;
    assert_eq!(version, "v2.1.9 2");
}
