//! `kubectl` with the project's CRDs and samples on the real API server of the test run
//! (tests/support/cluster.rs): the samples apply client-side and server-side, `get` shows the
//! CRDs' printer columns, `describe` shows the Events the operator publishes, `delete` deletes,
//! invalid objects are refused with the API server's message, and a client-side apply moves to
//! server-side without conflicts. As cluster admin, each test in a namespace of its own; no
//! operator runs here. Needs the control plane: run with scripts/test.sh (or set
//! REGISTRY_OPERATOR_TEST_KUBECONFIG).

mod support;

use std::path::{Path, PathBuf};

use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::Resource;
use registry_operator::api::Registry;

use support::cluster::{root, Cluster};

/// The namespaced samples of config/samples, written into `dir` with their namespace
/// (`registry`) changed to `ns`; returns the directory.
fn samples_in(ns: &str, dir: &Path) -> PathBuf {
    let out = dir.join("samples");
    std::fs::create_dir_all(&out).unwrap();
    for entry in std::fs::read_dir(root().join("config/samples")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        // The cluster-scoped sample is checked with a server-side dry run only: stored, every
        // operator of a later test would reconcile it.
        if !name.ends_with(".yaml")
            || name == "kustomization.yaml"
            || name.contains("clusterretentionpolicy")
        {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("namespace: registry"), "{name}");
        std::fs::write(
            out.join(&name),
            text.replace("namespace: registry", &format!("namespace: {ns}")),
        )
        .unwrap();
    }
    out
}

/// Runs kubectl as cluster admin and returns its stdout; fails the test if it fails.
fn ok(c: &Cluster, args: &[&str]) -> String {
    let (ok, out, err) = c.kubectl(args);
    assert!(ok, "kubectl {args:?} failed:\n{out}\n{err}");
    out
}

async fn cluster() -> Cluster {
    let c = Cluster::connect().await;
    c.install_crds().await;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_applies_the_samples_client_side_then_gets_describes_and_deletes() {
    let c = cluster().await;
    let ns = c.namespace("kubectl").await;
    let tmp = tempfile::tempdir().unwrap();
    let samples = samples_in(&ns, tmp.path());
    let samples = samples.to_str().unwrap();

    let out = ok(&c, &["apply", "-f", samples]);
    for created in [
        "registry.registry-operator.dev/main created",
        "registry.registry-operator.dev/mirror created",
        "registry.registry-operator.dev/harbor created",
        "retentionpolicy.registry-operator.dev/team-a-cleanup created",
        "retentionpolicy.registry-operator.dev/old-project-purge created",
    ] {
        assert!(out.contains(created), "{out}");
    }
    let again = ok(&c, &["apply", "-f", samples]);
    assert!(
        again.contains("registry.registry-operator.dev/main unchanged"),
        "{again}"
    );
    // The cluster-wide sample is accepted too (validated and admitted, not stored).
    let crp = root().join("config/samples/retention_v1alpha1_clusterretentionpolicy.yaml");
    let dry = ok(
        &c,
        &["apply", "--dry-run=server", "-f", crp.to_str().unwrap()],
    );
    assert!(
        dry.contains("clusterretentionpolicy.registry-operator.dev/production-floor created (server dry run)"),
        "{dry}"
    );

    let yaml = ok(&c, &["-n", &ns, "get", "registry", "main", "-o", "yaml"]);
    assert!(yaml.contains("version: v2.1.20"), "{yaml}");
    assert!(yaml.contains("generation: 1"), "{yaml}");
    let table = ok(&c, &["-n", &ns, "get", "registries"]);
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
    // Every object the apply created, and nothing else, is listed.
    let names = ok(&c, &["-n", &ns, "get", "reg,rp", "-o", "name"]);
    let listed: std::collections::BTreeSet<&str> = names.lines().collect();
    let created: std::collections::BTreeSet<&str> = out
        .lines()
        .filter_map(|l| l.strip_suffix(" created"))
        .collect();
    assert_eq!(listed, created, "{names}");
    let described = ok(&c, &["-n", &ns, "describe", "rp", "team-a-cleanup"]);
    assert!(described.contains("Registry Ref"), "{described}");

    // Events the operator publishes (events.k8s.io, through kube-rs' Recorder) are the core
    // Events `kubectl describe` shows.
    let regs: kube::Api<Registry> = kube::Api::namespaced(c.client.clone(), &ns);
    let main = regs.get("main").await.unwrap();
    let recorder = Recorder::new(
        c.client.clone(),
        Reporter {
            controller: "registry-operator".into(),
            instance: None,
        },
    );
    recorder
        .publish(
            &Event {
                type_: EventType::Normal,
                reason: "Deployed".into(),
                note: Some("zot v2.1.20 rolled out".into()),
                action: "Reconcile".into(),
                secondary: None,
            },
            &main.object_ref(&()),
        )
        .await
        .unwrap();
    let described = ok(&c, &["-n", &ns, "describe", "registry", "main"]);
    assert!(described.contains("zot v2.1.20 rolled out"), "{described}");

    let deleted = ok(&c, &["delete", "-f", samples]);
    assert!(
        deleted.contains("registry.registry-operator.dev \"main\" deleted"),
        "{deleted}"
    );
    let (ok_, out, err) = c.kubectl(&["-n", &ns, "get", "registries"]);
    assert!(ok_ && err.contains("No resources found"), "{out}{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_server_side_apply_of_the_samples_is_one_patch_each_and_owned_by_kubectl() {
    let c = cluster().await;
    let ns = c.namespace("kubectl-ssa").await;
    let tmp = tempfile::tempdir().unwrap();
    let samples = samples_in(&ns, tmp.path());
    let samples = samples.to_str().unwrap();
    let out = ok(&c, &["apply", "--server-side", "-f", samples]);
    assert!(
        out.contains("registry.registry-operator.dev/main serverside-applied"),
        "{out}"
    );
    ok(&c, &["apply", "--server-side", "-f", samples]);
    let yaml = ok(
        &c,
        &[
            "-n",
            &ns,
            "get",
            "rp",
            "team-a-cleanup",
            "-o",
            "yaml",
            "--show-managed-fields",
        ],
    );
    assert!(yaml.contains("manager: kubectl"), "{yaml}");
    assert!(yaml.contains("operation: Apply"), "{yaml}");
    assert!(
        yaml.contains("generation: 1"),
        "the second apply changed nothing: {yaml}"
    );
    let writes = c
        .audit_events("cluster-admin")
        .into_iter()
        .filter(|e| e.namespace == ns && e.resource == "retentionpolicies" && e.is_write())
        .count();
    assert_eq!(
        writes, 4,
        "each server-side apply of the two policies is one PATCH"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_shows_the_api_servers_message_for_invalid_objects() {
    let c = cluster().await;
    let ns = c.namespace("kubectl-bad").await;
    let tmp = tempfile::tempdir().unwrap();
    let write = |name: &str, text: String| {
        let path = tmp.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_string_lossy().into_owned()
    };
    let keep_zero = write(
        "keep-zero.yaml",
        format!(
            "apiVersion: registry-operator.dev/v1alpha1\nkind: RetentionPolicy\nmetadata:\n  \
             name: bad-keep\n  namespace: {ns}\nspec:\n  registryRef:\n    name: main\n  \
             repositories:\n    include: [\"**\"]\n  keep:\n  - mostRecent: 0\n"
        ),
    );
    let (ok_, _, err) = c.kubectl(&["apply", "-f", &keep_zero]);
    assert!(!ok_);
    assert!(
        err.contains("The RetentionPolicy \"bad-keep\" is invalid")
            && err.contains("spec.keep[0].mostRecent: Invalid value: 0: spec.keep[0].mostRecent in body should be greater than or equal to 1"),
        "{err}"
    );
    let both = write(
        "both.yaml",
        format!(
            "apiVersion: registry-operator.dev/v1alpha1\nkind: Registry\nmetadata:\n  \
             name: confused\n  namespace: {ns}\nspec:\n  version: v2.1.20\n  external:\n    \
             url: https://registry.example.com\n"
        ),
    );
    let (ok_, _, err) = c.kubectl(&["apply", "--server-side", "-f", &both]);
    assert!(!ok_);
    assert!(
        err.contains("The Registry \"confused\" is invalid")
            && err.contains("spec.external declares a registry the operator does not deploy"),
        "{err}"
    );
    let unknown = write(
        "unknown.yaml",
        format!(
            "apiVersion: registry-operator.dev/v1alpha1\nkind: Registry\nmetadata:\n  \
             name: typo\n  namespace: {ns}\nspec:\n  version: v2.1.20\n  colour: blue\n"
        ),
    );
    let (ok_, _, err) = c.kubectl(&["apply", "-f", &unknown]);
    assert!(!ok_);
    assert!(err.contains("unknown field \"spec.colour\""), "{err}");
    let (_, out, err) = c.kubectl(&["-n", &ns, "get", "registries,retentionpolicies"]);
    assert!(err.contains("No resources found"), "{out}{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_moves_from_client_side_to_server_side_apply_without_conflicts() {
    let c = cluster().await;
    let ns = c.namespace("kubectl-move").await;
    let tmp = tempfile::tempdir().unwrap();
    let samples = samples_in(&ns, tmp.path());
    let registry = samples.join("registry_v1alpha1_registry.yaml");
    ok(&c, &["apply", "-f", registry.to_str().unwrap()]);
    let changed = std::fs::read_to_string(&registry)
        .unwrap()
        .replace("version: v2.1.20", "version: v2.1.19");
    std::fs::write(&registry, changed).unwrap();
    let out = ok(
        &c,
        &["apply", "--server-side", "-f", registry.to_str().unwrap()],
    );
    assert!(
        out.contains("registry.registry-operator.dev/main serverside-applied"),
        "{out}"
    );
    let version = ok(
        &c,
        &[
            "-n",
            &ns,
            "get",
            "registry",
            "main",
            "-o",
            "jsonpath={.spec.version} {.metadata.generation}",
        ],
    );
    assert_eq!(version, "v2.1.19 2");
}
