//! The ways platform teams install the operator — Helm chart, kustomize tree, samples, the
//! Argo CD health check — render offline and validate against Kubernetes schemas.
//!
//! Needs `helm`, `kubectl` and `kubernetes-validate` from `scripts/setup.sh` (in `.tools/bin`).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};
use support::schema;

/// Kubernetes version the rendered objects are validated against (the chart's minimum is 1.30).
const KUBE_VERSION: &str = "1.33.0";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn tool(name: &str) -> PathBuf {
    let path = root().join(".tools/bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: run scripts/setup.sh first",
        path.display()
    );
    path
}

fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn docs(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .filter(|v: &Value| !v.is_null())
        .collect()
}

fn helm_template(extra: &[&str]) -> String {
    let mut cmd = Command::new(tool("helm"));
    cmd.args([
        "template",
        "ro",
        "charts/registry-operator",
        "--namespace",
        "registry-operator",
    ])
    .args(extra)
    .current_dir(root());
    let (ok, out, err) = run(&mut cmd);
    assert!(ok, "helm template {extra:?} failed:\n{err}");
    out
}

/// Validates built-in objects with kubernetes-validate (strict: unknown fields fail) and
/// custom resources / CRDs with the project's own schema checks.
fn validate_offline(label: &str, yaml: &str) {
    let objects = docs(yaml);
    assert!(!objects.is_empty(), "{label}: nothing rendered");
    let dir = tempfile::tempdir().unwrap();
    let mut builtin = String::new();
    for o in &objects {
        let api = o["apiVersion"].as_str().unwrap_or_default();
        if api.starts_with("registry-operator.dev/") || api.starts_with("monitoring.coreos.com/") {
            continue; // validated against their CRDs below / not ours to validate
        }
        if o["kind"] == "CustomResourceDefinition" {
            let problems = schema::structural_problems(schema::crd_schema(o));
            assert!(
                problems.is_empty(),
                "{label}: CRD {} not structural: {problems:#?}",
                o["metadata"]["name"]
            );
        }
        builtin.push_str("---\n");
        builtin.push_str(&serde_yaml::to_string(o).unwrap());
    }
    let file = dir.path().join("objects.yaml");
    std::fs::write(&file, builtin).unwrap();
    let (ok, out, err) = run(Command::new(tool("kubernetes-validate"))
        .args(["-k", KUBE_VERSION, "--strict", "--quiet"])
        .arg(&file));
    assert!(
        ok && !out.contains("ERROR") && !err.contains("ERROR"),
        "{label}: schema validation failed:\n{out}\n{err}"
    );
}

#[test]
fn helm_lint_passes_in_strict_mode() {
    let (ok, out, err) = run(Command::new(tool("helm"))
        .args(["lint", "--strict", "charts/registry-operator"])
        .current_dir(root()));
    assert!(ok, "helm lint failed:\n{out}\n{err}");
}

#[test]
fn the_chart_with_default_values_renders_valid_objects() {
    let out = helm_template(&[]);
    validate_offline("chart (defaults)", &out);
    let kinds: Vec<String> = docs(&out)
        .iter()
        .map(|o| o["kind"].as_str().unwrap().to_string())
        .collect();
    for want in [
        "CustomResourceDefinition",
        "Deployment",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Service",
    ] {
        assert!(
            kinds.iter().any(|k| k == want),
            "no {want} rendered: {kinds:?}"
        );
    }
    assert!(
        !kinds
            .iter()
            .any(|k| k == "ServiceMonitor" || k == "NetworkPolicy"),
        "optional objects are off by default"
    );
}

/// Every optional value of the chart at once (the PodMonitor instead of the ServiceMonitor is
/// checked on its own: the chart refuses both).
fn every_option() -> Vec<&'static str> {
    let mut v = vec![
        "--set",
        "metrics.serviceMonitor.enabled=true",
        "--set",
        "metrics.serviceMonitor.force=true",
        "--set",
        "prometheusRule.enabled=true",
        "--set",
        "prometheusRule.force=true",
        "--set",
        "fullnameOverride=ro-registry-operator",
        "--set",
        "crds.keep=false",
        "--set",
        "networkPolicy.enabled=true",
        "--set",
        "leaderElection.leaseDurationSeconds=30",
    ];
    v.extend_from_slice(POD_OPTIONS);
    v
}

#[test]
fn helm_lint_passes_in_strict_mode_with_every_option_on() {
    let (ok, out, err) = run(Command::new(tool("helm"))
        .args(["lint", "--strict", "charts/registry-operator"])
        .args(every_option())
        .current_dir(root()));
    assert!(ok, "helm lint failed:\n{out}\n{err}");
    let (ok, out, err) = run(Command::new(tool("helm"))
        .args(["lint", "--strict", "charts/registry-operator"])
        .args([
            "--set",
            "podMonitor.enabled=true",
            "--set",
            "podMonitor.force=true",
        ])
        .current_dir(root()));
    assert!(ok, "helm lint (PodMonitor) failed:\n{out}\n{err}");
}

#[test]
fn the_chart_with_every_option_on_renders_valid_objects() {
    let mut options = every_option();
    options.extend_from_slice(&[
        "--set",
        "metrics.serviceMonitor.enabled=true",
        "--set",
        "networkPolicy.enabled=true",
        "--set",
        "networkPolicy.metricsFromNamespaceLabels.monitoring=enabled",
        "--set",
        "watchNamespaces={team-a,team-b}",
        "--set",
        "replicaCount=2",
        "--set",
        "logging.format=text",
        "--set",
        "clusterDomain=k8s.corp.example",
        "--set",
        "leaderElection.leaseDurationSeconds=30",
        "--set",
        "imagePullSecrets[0].name=pull",
        "--set",
        "serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn=arn:aws:iam::1:role/x",
    ]);
    let out = helm_template(&options);
    validate_offline("chart (all options)", &out);
    let objects = docs(&out);
    let deploy = objects.iter().find(|o| o["kind"] == "Deployment").unwrap();
    let args: Vec<&str> = deploy["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        args.contains(&"--watch-namespace=team-a") && args.contains(&"--watch-namespace=team-b"),
        "{args:?}"
    );
    assert!(
        args.contains(&"--log-format=text") && args.contains(&"--leader-elect"),
        "{args:?}"
    );
    assert!(
        args.contains(&"--cluster-domain=k8s.corp.example"),
        "{args:?}"
    );
    assert!(
        args.contains(&"--leader-election-lease-duration-seconds=30"),
        "{args:?}"
    );
    for kind in [
        "ServiceMonitor",
        "PrometheusRule",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "CustomResourceDefinition",
    ] {
        assert!(objects.iter().any(|o| o["kind"] == kind), "no {kind}");
    }
}

#[test]
fn the_chart_rejects_values_outside_its_schema() {
    for bad in [
        ["--set", "logging.format=xml"],
        ["--set", "replicaCount=-1"],
        ["--set", "bogus=1"],
        ["--set", "clusterDomain=Cluster.Local."],
        ["--set", "leaderElection.leaseDurationSeconds=1"],
        ["--set-json", r#"extraArgs=[""]"#],
        [
            "--set-json",
            r#"extraEnv=[{"value":"http://127.0.0.1:3128"}]"#,
        ],
        ["--set-json", r#"extraVolumes=[{"emptyDir":{}}]"#],
        ["--set-json", r#"extraVolumeMounts=[{"name":"ca"}]"#],
        ["--set-json", r#"topologySpreadConstraints=[{"maxSkew":1}]"#],
        ["--set", "podMonitor.interval=soon"],
        ["--set", "prometheusRule.bogus=true"],
        ["--set", "metrics.serviceMonitor.force=maybe"],
        ["--set", "crds.bogus=true"],
    ] {
        let mut cmd = Command::new(tool("helm"));
        cmd.args(["template", "ro", "charts/registry-operator"])
            .args(bad)
            .current_dir(root());
        let (ok, _, err) = run(&mut cmd);
        assert!(!ok, "helm accepted {bad:?}");
        assert!(
            err.contains("values don't meet the specifications") || err.contains("at '/"),
            "{bad:?}: {err}"
        );
    }
}

#[test]
fn the_operator_pod_meets_the_restricted_pod_security_standard() {
    for (label, yaml) in [
        ("chart", helm_template(&[])),
        ("kustomize", kustomize("config/default")),
    ] {
        let objects = docs(&yaml);
        let deploy = objects.iter().find(|o| o["kind"] == "Deployment").unwrap();
        let pod = &deploy["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{label}");
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
            "{label}"
        );
        for c in pod["containers"].as_array().unwrap() {
            let sc = &c["securityContext"];
            assert_eq!(sc["allowPrivilegeEscalation"], false, "{label}");
            assert_eq!(sc["readOnlyRootFilesystem"], true, "{label}");
            assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]), "{label}");
            assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz", "{label}");
            assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz", "{label}");
        }
    }
}

fn kustomize(dir: &str) -> String {
    let (ok, out, err) = run(Command::new(tool("kubectl"))
        .args(["kustomize", dir])
        .current_dir(root()));
    assert!(ok, "kubectl kustomize {dir} failed:\n{err}");
    out
}

#[test]
fn the_kustomize_tree_renders_valid_objects() {
    let out = kustomize("config/default");
    validate_offline("config/default", &out);
    let objects = docs(&out);
    assert_eq!(
        objects
            .iter()
            .filter(|o| o["kind"] == "CustomResourceDefinition")
            .count(),
        3
    );
    for o in objects
        .iter()
        .filter(|o| o["metadata"]["namespace"].is_string())
    {
        assert_eq!(
            o["metadata"]["namespace"], "registry-operator-system",
            "{}",
            o["metadata"]["name"]
        );
    }
}

/// (That every sample is a valid object of its kind is checked once, in tests/crds.rs.)
#[test]
fn every_sample_file_is_in_the_kustomize_samples() {
    let samples = docs(&kustomize("config/samples"));
    let files = std::fs::read_dir(root().join("config/samples"))
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name().into_string().unwrap();
            name.ends_with(".yaml") && name != "kustomization.yaml"
        })
        .count();
    assert_eq!(
        samples.len(),
        files,
        "every sample file is listed in config/samples/kustomization.yaml"
    );
}

fn cluster_role_rules(objects: &[Value], name_suffix: &str) -> Value {
    objects
        .iter()
        .find(|o| {
            o["kind"] == "ClusterRole"
                && o["metadata"]["name"]
                    .as_str()
                    .unwrap()
                    .ends_with(name_suffix)
        })
        .unwrap_or_else(|| panic!("no ClusterRole *{name_suffix}"))["rules"]
        .clone()
}

#[test]
fn the_chart_and_kustomize_grant_the_operator_the_same_rules() {
    let chart = cluster_role_rules(&docs(&helm_template(&[])), "ro-registry-operator");
    let kustomize = cluster_role_rules(&docs(&kustomize("config/default")), "manager-role");
    assert_eq!(chart, kustomize);
    // Nothing writes Secrets or deletes what users own.
    for rule in chart.as_array().unwrap() {
        let resources = rule["resources"].as_array().unwrap();
        let verbs = rule["verbs"].as_array().unwrap();
        if resources
            .iter()
            .any(|r| r == "secrets" || r == "pods" || r == "namespaces")
        {
            assert!(
                verbs
                    .iter()
                    .all(|v| ["get", "list", "watch"].contains(&v.as_str().unwrap())),
                "{rule}"
            );
        }
        assert!(!verbs.iter().any(|v| v == "*"), "wildcard verb in {rule}");
        assert!(
            !resources.iter().any(|r| r == "*"),
            "wildcard resource in {rule}"
        );
    }
}

/// The documented argocd-cm ConfigMap with the health check.
fn argocd_cm() -> Value {
    docs(&std::fs::read_to_string(root().join("docs/gitops/argocd-cm-health.yaml")).unwrap())
        .remove(0)
}

/// The health script, from the `registry-operator.dev/*` entry of `resource.customizations`
/// (the only key where Argo CD accepts a wildcard group/kind).
fn argocd_health_script() -> String {
    let cm = argocd_cm();
    let customizations: Value = serde_yaml::from_str(
        cm["data"]["resource.customizations"]
            .as_str()
            .expect("data.resource.customizations is a string"),
    )
    .unwrap();
    customizations["registry-operator.dev/*"]["health.lua"]
        .as_str()
        .expect("resource.customizations has registry-operator.dev/* with health.lua")
        .to_string()
}

#[test]
fn the_argocd_configmap_has_only_keys_the_api_server_accepts() {
    // apimachinery's IsConfigMapKey: [-._a-zA-Z0-9]+, at most 253 characters, not "." or "..".
    let key_regex = regex::Regex::new(r"^[-._a-zA-Z0-9]+$").unwrap();
    let cm = argocd_cm();
    assert_eq!(cm["kind"], "ConfigMap");
    let data = cm["data"].as_object().expect("data");
    assert!(!data.is_empty());
    for (key, value) in data {
        assert!(
            key_regex.is_match(key) && key.len() <= 253 && key != "." && key != "..",
            "{key:?} is not a valid ConfigMap key ([-._a-zA-Z0-9]+)"
        );
        assert!(
            value.is_string(),
            "{key}: ConfigMap data values are strings"
        );
    }
}

/// Runs the Argo CD health script (Lua 5.1, like Argo CD's gopher-lua) on one object.
fn argocd_health(object: &Value) -> (String, String) {
    let script = argocd_health_script();
    let lua = mlua::Lua::new();
    use mlua::LuaSerdeExt;
    let obj = lua.to_value(object).unwrap();
    lua.globals().set("obj", obj).unwrap();
    let hs: mlua::Table = lua.load(script.as_str()).eval().unwrap();
    (
        hs.get::<String>("status").unwrap(),
        hs.get::<String>("message").unwrap(),
    )
}

fn with_status(generation: i64, spec: Value, status: Value) -> Value {
    json!({"apiVersion": "registry-operator.dev/v1alpha1", "kind": "RetentionPolicy",
           "metadata": {"name": "p", "generation": generation}, "spec": spec, "status": status})
}

fn cond(type_: &str, status: &str, reason: &str, message: &str) -> Value {
    json!({"type": type_, "status": status, "reason": reason, "message": message,
           "lastTransitionTime": "2026-11-23T03:00:00Z", "observedGeneration": 2})
}

#[test]
fn argocd_reports_healthy_progressing_degraded_and_suspended_from_the_conditions() {
    let spec = json!({"mode": "Plan"});
    let healthy = with_status(
        2,
        spec.clone(),
        json!({"observedGeneration": 2, "conditions": [cond("Ready", "True", "Succeeded", "planned 40 deletions")]}),
    );
    assert_eq!(
        argocd_health(&healthy),
        ("Healthy".into(), "Succeeded: planned 40 deletions".into())
    );

    let stalled = with_status(
        2,
        spec.clone(),
        json!({"observedGeneration": 2, "conditions": [
        cond("Ready", "False", "BlastRadiusExceeded", "plan deletes 900 tags, limit 500"),
        cond("Stalled", "True", "BlastRadiusExceeded", "plan deletes 900 tags, limit 500")]}),
    );
    let (status, message) = argocd_health(&stalled);
    assert_eq!(status, "Degraded");
    assert!(
        message.contains("BlastRadiusExceeded") && message.contains("limit 500"),
        "{message}"
    );

    let reconciling = with_status(
        2,
        spec.clone(),
        json!({"observedGeneration": 2, "conditions": [
        cond("Ready", "False", "Reconciling", "applying"), cond("Reconciling", "True", "Progressing", "waiting for 1/3 replicas")]}),
    );
    assert_eq!(argocd_health(&reconciling).0, "Progressing");

    let behind = with_status(
        3,
        spec.clone(),
        json!({"observedGeneration": 2, "conditions": [cond("Ready", "True", "Succeeded", "ok")]}),
    );
    let (status, message) = argocd_health(&behind);
    assert_eq!(status, "Progressing");
    assert!(message.contains("generation 3"), "{message}");

    let fresh = json!({"apiVersion": "registry-operator.dev/v1alpha1", "kind": "Registry", "metadata": {"name": "r", "generation": 1}, "spec": {}});
    assert_eq!(argocd_health(&fresh).0, "Progressing");

    let suspended = with_status(
        2,
        json!({"mode": "Enforce", "suspend": true}),
        json!({"observedGeneration": 2, "conditions": [cond("Ready", "True", "Succeeded", "ok")]}),
    );
    assert_eq!(argocd_health(&suspended).0, "Suspended");
}

#[test]
fn rendering_each_managed_registry_sample_gives_valid_objects_and_a_gc_config() {
    let bin = env!("CARGO_BIN_EXE_registry-operator");
    let mut rendered = 0;
    for entry in std::fs::read_dir(root().join("config/samples")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        if !text.contains("kind: Registry") || text.contains("external:") {
            continue;
        }
        let out = |only: &str, format: &str| {
            let (ok, out, err) = run(Command::new(bin)
                .args(["render", "-f"])
                .arg(&path)
                .args(["--only", only, "-o", format]));
            assert!(ok, "render {} failed:\n{err}", path.display());
            out
        };
        validate_offline(
            &format!("render {}", path.display()),
            &out("objects", "yaml"),
        );
        let config: Value = serde_json::from_str(&out("config", "json")).unwrap();
        for key in ["gcInterval", "gcDelay", "dedupe"] {
            assert!(
                config["storage"].get(key).is_some(),
                "{}: storage.{key} missing in {config}",
                path.display()
            );
        }
        rendered += 1;
    }
    assert!(rendered >= 2, "the managed samples were rendered");
}

/// A line of TOML without its comment (a `#` outside a string).
fn toml_code(line: &str) -> &str {
    let mut in_string = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => in_string = !in_string,
            '#' if !in_string => return line[..i].trim(),
            _ => {}
        }
    }
    line.trim()
}

fn toml_strings(value: &str) -> Vec<String> {
    value
        .split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// What cargo needs on disk to read this workspace's manifests, from Cargo.toml (the subset of
/// TOML it uses): the manifest and the lock file, the file of every declared bench, example
/// and test target (its `path`, or cargo's default `<dir>/<name>.rs`), and every workspace
/// member but the root; and, second, the lib and bin files, which a build may stub. Targets
/// cargo discovers by itself need nothing: a missing directory is no error.
fn cargo_manifest_needs() -> (Vec<String>, Vec<String>) {
    let text = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let mut needed = vec!["Cargo.toml".to_string(), "Cargo.lock".to_string()];
    let mut stubbable = Vec::new();
    // (kind, name, path) of each target table.
    let mut targets: Vec<(String, Option<String>, Option<String>)> = Vec::new();
    let mut table = String::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let line = toml_code(line);
        if line.starts_with('[') {
            table = line.trim_matches(['[', ']']).trim().to_string();
            if ["lib", "bin", "bench", "example", "test"].contains(&table.as_str()) {
                targets.push((table.clone(), None, None));
            }
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        match (table.as_str(), key) {
            ("lib" | "bin" | "bench" | "example" | "test", "name" | "path") => {
                let target = targets.last_mut().unwrap();
                let value = toml_strings(value).into_iter().next();
                if key == "name" {
                    target.1 = value;
                } else {
                    target.2 = value;
                }
            }
            ("workspace", "members") => {
                let mut array = value.to_string();
                while !array.contains(']') {
                    array.push_str(toml_code(lines.next().expect("members array ends")));
                }
                needed.extend(toml_strings(&array).into_iter().filter(|m| m != "."));
            }
            _ => {}
        }
    }
    for (kind, name, path) in targets {
        let path = match (kind.as_str(), path, name) {
            (_, Some(path), _) => path,
            ("lib", None, _) => "src/lib.rs".to_string(),
            ("bin", None, _) => "src/main.rs".to_string(),
            (dir, None, Some(name)) => {
                let dir = match dir {
                    "bench" => "benches",
                    "example" => "examples",
                    _ => "tests",
                };
                let file = format!("{dir}/{name}.rs");
                if root().join(&file).exists() {
                    file
                } else {
                    format!("{dir}/{name}/main.rs")
                }
            }
            (kind, None, None) => panic!("a [[{kind}]] target without a name"),
        };
        assert!(
            root().join(&path).exists(),
            "Cargo.toml names {path}, which does not exist"
        );
        if kind == "lib" || kind == "bin" {
            stubbable.push(path);
        } else {
            needed.push(path);
        }
    }
    (needed, stubbable)
}

/// The instructions of the Dockerfile's first stage, continuation lines joined, comments out.
fn dockerfile_build_stage() -> Vec<String> {
    let text = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let mut instructions: Vec<String> = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                instructions.push(std::mem::take(&mut current));
            }
        }
    }
    let from = |i: &String| i.to_ascii_uppercase().starts_with("FROM ");
    let start = instructions.iter().position(from).expect("a FROM");
    let end = instructions[start + 1..]
        .iter()
        .position(from)
        .map_or(instructions.len(), |e| start + 1 + e);
    instructions[start..end].to_vec()
}

#[test]
fn the_dockerfile_copies_what_cargo_needs_before_its_first_cargo_run() {
    let (needed, stubbable) = cargo_manifest_needs();
    // The reader understood Cargo.toml.
    for p in ["benches/retention_planner.rs", "crates/synthetic-registry"] {
        assert!(needed.iter().any(|n| n == p), "{p} not in {needed:?}");
    }
    assert!(
        stubbable.iter().any(|s| s == "src/main.rs"),
        "{stubbable:?}"
    );

    let mut workdir = String::from("/");
    let mut copied: Vec<String> = Vec::new();
    let mut cargo_runs: Vec<String> = Vec::new();
    for instruction in dockerfile_build_stage() {
        let (op, rest) = instruction
            .split_once(char::is_whitespace)
            .unwrap_or((instruction.as_str(), ""));
        match op.to_ascii_uppercase().as_str() {
            "WORKDIR" => workdir = rest.trim().trim_end_matches('/').to_string() + "/",
            "COPY" | "ADD" if !rest.contains("--from=") => {
                let args: Vec<&str> = rest
                    .split_whitespace()
                    .filter(|a| !a.starts_with("--"))
                    .collect();
                let (&dest, sources) = args.split_last().expect("COPY SRC... DEST");
                let in_workdir = |p: &str| {
                    let p = p.strip_prefix(workdir.as_str()).unwrap_or(p);
                    let p = p.trim_end_matches('/');
                    let p = p.strip_prefix("./").unwrap_or(p);
                    if p == "." {
                        String::new()
                    } else {
                        p.to_string()
                    }
                };
                for &source in sources {
                    let source = in_workdir(source);
                    let into_dir = dest.ends_with('/') || sources.len() > 1;
                    let target = if into_dir || in_workdir(dest).is_empty() {
                        let base = source.rsplit('/').next().unwrap();
                        [in_workdir(dest), base.to_string()]
                            .iter()
                            .filter(|s| !s.is_empty())
                            .cloned()
                            .collect::<Vec<_>>()
                            .join("/")
                    } else {
                        in_workdir(dest)
                    };
                    assert_eq!(
                        target, source,
                        "COPY {source} {dest}: the build expects the repository's layout"
                    );
                    if cargo_runs.is_empty() {
                        copied.push(source);
                    }
                }
            }
            "RUN" if rest.contains("cargo ") => cargo_runs.push(rest.to_string()),
            _ => {}
        }
    }
    let first_run = cargo_runs
        .first()
        .expect("a RUN with cargo in the build stage");
    let covered = |p: &str| {
        copied
            .iter()
            .any(|c| p == c || p.starts_with(&format!("{c}/")))
    };
    let missing: Vec<&String> = needed.iter().filter(|p| !covered(p)).collect();
    assert!(
        missing.is_empty(),
        "the Dockerfile does not copy {missing:?} before its first cargo RUN (copied: {copied:?}); \
         cargo cannot read the workspace without them"
    );
    for stub in &stubbable {
        assert!(
            covered(stub) || first_run.contains(&format!("> {stub}")),
            "{stub} is neither copied nor stubbed before the first cargo RUN"
        );
    }
    for run in &cargo_runs {
        assert!(
            !run.contains("|| true"),
            "a cargo RUN ignores its failure: {run}"
        );
    }
    // .dockerignore keeps none of them out of the build context.
    let ignore = std::fs::read_to_string(root().join(".dockerignore")).unwrap_or_default();
    for pattern in ignore.lines().map(str::trim) {
        if pattern.is_empty() || pattern.starts_with(['#', '!']) {
            continue;
        }
        let pattern = pattern.trim_matches('/');
        for p in needed.iter().chain(&stubbable) {
            assert!(
                !(p == pattern || p.starts_with(&format!("{pattern}/"))),
                ".dockerignore entry {pattern:?} leaves {p} out of the build context"
            );
        }
    }
}

/// The operator container's arguments in a rendered chart.
fn operator_args(objects: &[Value]) -> Vec<String> {
    let deploy = objects
        .iter()
        .find(|o| o["kind"] == "Deployment")
        .expect("a Deployment");
    deploy["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .expect("container args")
        .iter()
        .map(|a| a.as_str().expect("a string argument").to_string())
        .collect()
}

/// The operator's settings as `registry-operator` parses the arguments the chart renders.
fn settings_of(objects: &[Value]) -> registry_operator::controller::context::Settings {
    use clap::Parser;
    use registry_operator::cli::{Cli, Command};
    let argv = std::iter::once("registry-operator".to_string()).chain(operator_args(objects));
    match Cli::try_parse_from(argv) {
        Ok(Cli {
            command: Command::Run(args),
        }) => args.settings(),
        Ok(other) => panic!("the chart runs {other:?}, not `run`"),
        Err(e) => panic!("the operator refuses the chart's arguments: {e}"),
    }
}

#[test]
fn by_default_the_chart_lets_managed_registries_run_only_the_official_zot_images() {
    use registry_operator::controller::lockdown::OFFICIAL_ZOT_IMAGES;
    use registry_operator::controller::registry::builders::DEFAULT_IMAGE_REPOSITORY;
    let objects = docs(&helm_template(&[]));
    let lockdown = settings_of(&objects).lockdown;
    let allowed: Vec<&str> = lockdown.allowed_images.iter().map(|p| p.as_str()).collect();
    assert_eq!(allowed, OFFICIAL_ZOT_IMAGES);
    // What the operator runs when spec.image is unset, and the official variants.
    lockdown
        .check_image(&format!("{DEFAULT_IMAGE_REPOSITORY}:v2.1.20"))
        .unwrap();
    for repo in OFFICIAL_ZOT_IMAGES {
        lockdown.check_image(&format!("{repo}:v2.1.20")).unwrap();
    }
    for foreign in [
        "docker.io/library/busybox:latest",
        "ghcr.io/project-zot/zot-evil:v2.1.20",
        "zot:v2.1.20",
    ] {
        assert!(lockdown.check_image(foreign).is_err(), "{foreign}");
    }
    assert!(!lockdown.allow_insecure_skip_tls_verify);
    assert!(!lockdown.allow_plain_http_credentials);
    assert!(lockdown.secret_label.is_none());
}

#[test]
fn by_default_the_chart_refuses_loopback_and_other_namespaces_services_as_registry_addresses() {
    use std::net::IpAddr;
    let settings = settings_of(&docs(&helm_template(&[])));
    let policy = &settings.registry_client.address_policy;
    // Only data: AddressPolicy::check is a pure judgement of an address; nothing connects.
    for refused in ["127.0.0.1", "::1", "169.254.169.254"] {
        let ip: IpAddr = refused.parse().unwrap();
        assert!(policy.check(ip).is_some(), "{refused} is allowed");
    }
    assert!(policy.check("10.1.2.3".parse().unwrap()).is_none());
    assert!(!settings.allow_cross_namespace_services);
    // opted in: loopback and other namespaces' Services are allowed, metadata still is not
    let open = settings_of(&docs(&helm_template(&[
        "--set",
        "lockdown.allowLoopbackRegistries=true",
        "--set",
        "lockdown.allowCrossNamespaceServices=true",
    ])));
    let policy = &open.registry_client.address_policy;
    assert!(policy.check("127.0.0.1".parse().unwrap()).is_none());
    assert!(policy.check("169.254.169.254".parse().unwrap()).is_some());
    assert!(open.allow_cross_namespace_services);
}

#[test]
fn the_lockdown_values_render_the_operator_flags() {
    let objects = docs(&helm_template(&[
        "--set",
        "lockdown.allowedImages={registry.corp.example/mirror/,ghcr.io/project-zot/zot:v2.1.*}",
        "--set",
        "lockdown.allowInsecureSkipTLSVerify=true",
        "--set",
        "lockdown.allowPlainHttpCredentials=true",
        "--set",
        "lockdown.secretLabel=registry-operator.dev/usable=true",
    ]));
    let args = operator_args(&objects);
    for want in [
        "--allowed-image=registry.corp.example/mirror/",
        "--allowed-image=ghcr.io/project-zot/zot:v2.1.*",
        "--allow-insecure-skip-tls-verify",
        "--allow-plain-http-credentials",
        "--secret-label=registry-operator.dev/usable=true",
    ] {
        assert!(args.iter().any(|a| a == want), "{want} not in {args:?}");
    }
    let lockdown = settings_of(&objects).lockdown;
    lockdown
        .check_image("registry.corp.example/mirror/zot:v2.1.20")
        .unwrap();
    assert!(lockdown
        .check_image("ghcr.io/project-zot/zot-minimal:v2.1.20")
        .is_err());
    assert!(lockdown.allow_insecure_skip_tls_verify && lockdown.allow_plain_http_credentials);
    assert_eq!(
        lockdown.secret_label.map(|l| l.to_string()).as_deref(),
        Some("registry-operator.dev/usable=true")
    );
    // An empty list allows any image; a malformed label is refused by the schema.
    let open = docs(&helm_template(&["--set", "lockdown.allowedImages=null"]));
    assert!(settings_of(&open).lockdown.allowed_images.is_empty());
    let (ok, _, err) = run(Command::new(tool("helm"))
        .args(["template", "ro", "charts/registry-operator"])
        .args(["--set", "lockdown.secretLabel=bad label"])
        .current_dir(root()));
    assert!(!ok, "a label with a space was accepted");
    assert!(err.contains("secretLabel"), "{err}");
}

/// The verbs each ClusterRole aggregated into `role` (edit, admin, view) grants on `resource`.
fn aggregated_verbs(objects: &[Value], role: &str, resource: &str) -> Vec<String> {
    let label = format!("rbac.authorization.k8s.io/aggregate-to-{role}");
    let mut verbs: Vec<String> = objects
        .iter()
        .filter(|o| o["kind"] == "ClusterRole" && o["metadata"]["labels"][&label] == "true")
        .flat_map(|o| o["rules"].as_array().cloned().unwrap_or_default())
        .filter(|r| {
            r["resources"]
                .as_array()
                .is_some_and(|rs| rs.iter().any(|x| x == resource))
        })
        .flat_map(|r| r["verbs"].as_array().cloned().unwrap_or_default())
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    verbs.sort();
    verbs.dedup();
    verbs
}

#[test]
fn edit_and_admin_get_no_write_on_cluster_retention_policies_unless_the_admin_opts_in() {
    let objects = docs(&helm_template(&[]));
    for role in ["edit", "admin"] {
        assert_eq!(
            aggregated_verbs(&objects, role, "clusterretentionpolicies"),
            Vec::<String>::new(),
            "{role}"
        );
        assert!(aggregated_verbs(&objects, role, "registries").contains(&"create".to_string()));
        assert!(
            aggregated_verbs(&objects, role, "retentionpolicies").contains(&"patch".to_string())
        );
    }
    assert_eq!(
        aggregated_verbs(&objects, "view", "clusterretentionpolicies"),
        ["get", "list", "watch"]
    );
    // The role to bind for people who write them exists, unaggregated.
    let writer = cluster_role_rules(&objects, "-clusterretentionpolicy-editor");
    assert!(writer.to_string().contains("\"create\""), "{writer}");
    let opted = docs(&helm_template(&[
        "--set",
        "rbac.aggregateClusterRetentionPolicyWrite=true",
    ]));
    for role in ["edit", "admin"] {
        assert!(
            aggregated_verbs(&opted, role, "clusterretentionpolicies")
                .contains(&"create".to_string()),
            "{role}"
        );
    }
}

/// Every object's `metadata.name` in a rendered chart, CRDs left out.
fn object_names(objects: &[Value]) -> Vec<String> {
    objects
        .iter()
        .filter(|o| o["kind"] != "CustomResourceDefinition")
        .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn name_override_and_fullname_override_rename_every_object_of_the_chart() {
    let defaults = object_names(&docs(&helm_template(&[])));
    assert!(
        defaults
            .iter()
            .all(|n| n.starts_with("ro-registry-operator")),
        "{defaults:?}"
    );

    let named = docs(&helm_template(&["--set", "nameOverride=regop"]));
    let names = object_names(&named);
    assert!(names.iter().all(|n| n.starts_with("ro-regop")), "{names:?}");
    let deploy = named.iter().find(|o| o["kind"] == "Deployment").unwrap();
    assert_eq!(
        deploy["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"],
        "regop"
    );

    let full_yaml = helm_template(&["--set", "fullnameOverride=platform-ops"]);
    validate_offline("chart (fullnameOverride)", &full_yaml);
    let full = docs(&full_yaml);
    let names = object_names(&full);
    assert!(
        names.iter().all(|n| n.starts_with("platform-ops")),
        "{names:?}"
    );
    // The Lease the leader takes, and the ServiceAccount the pod runs as, follow the name.
    let args = operator_args(&full);
    assert!(
        args.iter()
            .any(|a| a == "--leader-election-lease=platform-ops"),
        "{args:?}"
    );
    let deploy = full.iter().find(|o| o["kind"] == "Deployment").unwrap();
    assert_eq!(
        deploy["spec"]["template"]["spec"]["serviceAccountName"],
        "platform-ops"
    );

    for bad in ["fullnameOverride=Not_A_Name", "nameOverride=-x"] {
        let (ok, _, err) = run(Command::new(tool("helm"))
            .args(["template", "ro", "charts/registry-operator", "--set", bad])
            .current_dir(root()));
        assert!(!ok, "helm accepted {bad}");
        assert!(err.contains("Override"), "{bad}: {err}");
    }
}

/// The Deployment's Pod spec in a rendered chart.
fn pod_spec(objects: &[Value]) -> Value {
    objects
        .iter()
        .find(|o| o["kind"] == "Deployment")
        .expect("a Deployment")["spec"]["template"]["spec"]
        .clone()
}

/// What `helm install` prints after installing (NOTES.txt), rendered offline.
fn helm_notes(extra: &[&str]) -> String {
    let (ok, out, err) = run(Command::new(tool("helm"))
        .args([
            "install",
            "ro",
            "charts/registry-operator",
            "--namespace",
            "registry-operator",
            "--dry-run=client",
        ])
        .args(extra)
        .env("KUBECONFIG", "/nonexistent")
        .current_dir(root()));
    assert!(ok, "helm install --dry-run=client {extra:?} failed:\n{err}");
    let (_, notes) = out.split_once("\nNOTES:\n").expect("helm prints NOTES");
    notes.to_string()
}

/// The values of the Deployment options a platform team sets most, all at once.
const POD_OPTIONS: &[&str] = &[
    "--set",
    "replicaCount=2",
    "--set-json",
    r#"extraArgs=["--health-interval-seconds=60"]"#,
    "--set-json",
    r#"extraEnv=[{"name":"HTTPS_PROXY","value":"http://127.0.0.1:3128"},{"name":"NO_PROXY","value":".svc,.cluster.local"}]"#,
    "--set-json",
    r#"extraVolumes=[{"name":"corp-ca","configMap":{"name":"corp-ca"}}]"#,
    "--set-json",
    r#"extraVolumeMounts=[{"name":"corp-ca","mountPath":"/etc/corp-ca","readOnly":true}]"#,
    "--set-json",
    r#"topologySpreadConstraints=[{"maxSkew":1,"topologyKey":"topology.kubernetes.io/zone","whenUnsatisfiable":"ScheduleAnyway","labelSelector":{"matchLabels":{"app.kubernetes.io/name":"registry-operator"}}}]"#,
    "--set-json",
    r#"podSecurityContext={"runAsNonRoot":true,"runAsUser":10001,"runAsGroup":10001,"fsGroup":10001,"seccompProfile":{"type":"RuntimeDefault"}}"#,
    "--set",
    "podDisruptionBudget.enabled=true",
];

#[test]
fn extra_args_env_volumes_and_spread_reach_the_operator_pod() {
    let yaml = helm_template(POD_OPTIONS);
    validate_offline("chart (pod options)", &yaml);
    let objects = docs(&yaml);
    // The extra argument comes last and the operator accepts it.
    let args = operator_args(&objects);
    assert_eq!(args.last().unwrap(), "--health-interval-seconds=60");
    assert_eq!(
        settings_of(&objects).health_interval,
        std::time::Duration::from_secs(60)
    );
    let pod = pod_spec(&objects);
    let container = &pod["containers"][0];
    let env = container["env"].as_array().unwrap();
    assert_eq!(env[0]["name"], "POD_NAME", "the chart's own variable stays");
    assert!(
        env.iter()
            .any(|e| e["name"] == "HTTPS_PROXY" && e["value"] == "http://127.0.0.1:3128"),
        "{env:?}"
    );
    assert_eq!(container["volumeMounts"][0]["mountPath"], "/etc/corp-ca");
    assert_eq!(pod["volumes"][0]["configMap"]["name"], "corp-ca");
    assert_eq!(
        pod["topologySpreadConstraints"][0]["topologyKey"],
        "topology.kubernetes.io/zone"
    );
    assert_eq!(pod["securityContext"]["runAsUser"], 10001);
    assert_eq!(pod["securityContext"]["fsGroup"], 10001);
    // The container's restricted defaults stay when only the Pod's block is replaced.
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    // Nothing of it is rendered by default.
    let default_pod = pod_spec(&docs(&helm_template(&[])));
    for absent in ["volumes", "topologySpreadConstraints"] {
        assert!(default_pod[absent].is_null(), "{absent}: {default_pod}");
    }
    assert!(default_pod["containers"][0]["volumeMounts"].is_null());
}

#[test]
fn the_security_contexts_can_be_overridden_and_default_to_the_restricted_ones() {
    let pod = pod_spec(&docs(&helm_template(&[])));
    assert_eq!(
        pod["securityContext"],
        json!({"runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532,
               "seccompProfile": {"type": "RuntimeDefault"}})
    );
    assert_eq!(
        pod["containers"][0]["securityContext"],
        json!({"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
               "capabilities": {"drop": ["ALL"]}})
    );
    let yaml = helm_template(&[
        "--set-json",
        r#"securityContext={"allowPrivilegeEscalation":false,"readOnlyRootFilesystem":true,"capabilities":{"drop":["ALL"]},"seLinuxOptions":{"type":"spc_t"}}"#,
    ]);
    validate_offline("chart (securityContext)", &yaml);
    let pod = pod_spec(&docs(&yaml));
    assert_eq!(
        pod["containers"][0]["securityContext"]["seLinuxOptions"]["type"],
        "spc_t"
    );
    // Kubernetes' own schema judges what is inside: a misspelt field is refused offline.
    let bad = helm_template(&["--set", "podSecurityContext.runAsNonroot=true"]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    std::fs::write(&file, bad).unwrap();
    let (ok, out, err) = run(Command::new(tool("kubernetes-validate"))
        .args(["-k", KUBE_VERSION, "--strict", "--quiet"])
        .arg(&file));
    assert!(
        !ok || out.contains("ERROR") || err.contains("ERROR"),
        "a misspelt securityContext field passed validation"
    );
}

#[test]
fn the_pod_disruption_budget_is_rendered_only_when_enabled_and_takes_one_bound() {
    let pdb = |extra: &[&str]| {
        docs(&helm_template(extra))
            .into_iter()
            .find(|o| o["kind"] == "PodDisruptionBudget")
    };
    assert!(pdb(&[]).is_none());
    let on = pdb(POD_OPTIONS).expect("a PodDisruptionBudget");
    assert_eq!(on["spec"]["minAvailable"], 1);
    assert_eq!(
        on["spec"]["selector"]["matchLabels"]["app.kubernetes.io/instance"],
        "ro"
    );
    let max = pdb(&[
        "--set",
        "podDisruptionBudget.enabled=true",
        "--set",
        "podDisruptionBudget.maxUnavailable=50%",
    ])
    .unwrap();
    assert_eq!(max["spec"]["maxUnavailable"], "50%");
    assert!(max["spec"]["minAvailable"].is_null());
    for bad in [
        vec![
            "--set",
            "podDisruptionBudget.enabled=true",
            "--set",
            "podDisruptionBudget.minAvailable=1",
            "--set",
            "podDisruptionBudget.maxUnavailable=1",
        ],
        vec!["--set", "podDisruptionBudget.maxUnavailable=half"],
        vec!["--set", "podDisruptionBudget.maxunavailable=1"],
    ] {
        let (ok, _, err) = run(Command::new(tool("helm"))
            .args(["template", "ro", "charts/registry-operator"])
            .args(&bad)
            .current_dir(root()));
        assert!(!ok, "helm accepted {bad:?}");
        assert!(
            err.contains("maxUnavailable") || err.contains("maxunavailable"),
            "{bad:?}: {err}"
        );
    }
}

#[test]
fn the_install_notes_say_what_was_installed_how_to_check_it_and_the_lockdown_in_force() {
    let notes = helm_notes(&[]);
    for want in [
        "the Deployment ro-registry-operator",
        "kubectl get crd registries.registry-operator.dev",
        "kubectl -n registry-operator rollout status deployment/ro-registry-operator",
        "allowed images:              ghcr.io/project-zot/zot, ",
        "insecureSkipTlsVerify:       refused",
        "loopback registries:         refused",
        "Watched namespaces: all",
    ] {
        assert!(notes.contains(want), "{want:?} not in:\n{notes}");
    }
    assert!(!notes.contains("WARNING"), "{notes}");
    let open = helm_notes(&[
        "--set",
        "lockdown.allowedImages=null",
        "--set",
        "lockdown.allowPlainHttpCredentials=true",
        "--set",
        "watchNamespaces={team-a,team-b}",
        "--set",
        "podDisruptionBudget.enabled=true",
    ]);
    for want in [
        "ANY image",
        "credentials over plain http: allowed",
        "Watched namespaces: team-a, team-b",
        "WARNING: podDisruptionBudget.enabled with replicaCount 1",
    ] {
        assert!(open.contains(want), "{want:?} not in:\n{open}");
    }
}

/// The CRDs a rendered chart contains.
fn rendered_crds(extra: &[&str]) -> Vec<Value> {
    docs(&helm_template(extra))
        .into_iter()
        .filter(|o| o["kind"] == "CustomResourceDefinition")
        .collect()
}

#[test]
fn the_chart_renders_the_generated_crds_kept_on_uninstall_unless_told_otherwise() {
    let crds = rendered_crds(&[]);
    assert_eq!(crds.len(), 3);
    for (_, generated) in registry_operator::api::crds() {
        let generated = serde_json::to_value(generated).unwrap();
        let name = &generated["metadata"]["name"];
        let rendered = crds
            .iter()
            .find(|c| &c["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("{name} not rendered"));
        // The same schema as crds/, plus the chart's labels and Helm's keep policy.
        assert_eq!(rendered["spec"], generated["spec"], "{name}");
        assert_eq!(
            rendered["metadata"]["annotations"]["helm.sh/resource-policy"], "keep",
            "{name}"
        );
        assert_eq!(
            rendered["metadata"]["labels"]["app.kubernetes.io/managed-by"], "Helm",
            "{name}"
        );
    }
    let unkept = rendered_crds(&["--set", "crds.keep=false"]);
    assert_eq!(unkept.len(), 3);
    assert!(
        unkept
            .iter()
            .all(|c| c["metadata"]["annotations"].is_null()),
        "{unkept:?}"
    );
    assert!(rendered_crds(&["--set", "crds.enabled=false"]).is_empty());
    let notes = helm_notes(&["--set", "crds.enabled=false"]);
    assert!(notes.contains("but no CRDs"), "{notes}");
    assert!(
        helm_notes(&[]).contains("and the three CRDs (upgraded with the chart; kept on uninstall)")
    );
    let (ok, _, err) = run(Command::new(tool("helm"))
        .args([
            "template",
            "ro",
            "charts/registry-operator",
            "--set",
            "crds.keep=yes",
        ])
        .current_dir(root()));
    assert!(!ok && err.contains("keep"), "{err}");
}

/// What `helm template` renders of `kind` with `extra` values.
fn rendered_kind(kind: &str, extra: &[&str]) -> Vec<Value> {
    docs(&helm_template(extra))
        .into_iter()
        .filter(|o| o["kind"] == kind)
        .collect()
}

#[test]
fn monitoring_objects_are_rendered_only_where_the_api_serves_them_or_when_forced() {
    for (kind, value, api) in [
        (
            "ServiceMonitor",
            "metrics.serviceMonitor",
            "monitoring.coreos.com/v1/ServiceMonitor",
        ),
        (
            "PodMonitor",
            "podMonitor",
            "monitoring.coreos.com/v1/PodMonitor",
        ),
        (
            "PrometheusRule",
            "prometheusRule",
            "monitoring.coreos.com/v1/PrometheusRule",
        ),
    ] {
        let enabled = format!("{value}.enabled=true");
        let forced = format!("{value}.force=true");
        assert!(
            rendered_kind(kind, &[]).is_empty(),
            "{kind} is off by default"
        );
        // Enabled on a cluster without the Prometheus Operator's CRDs: nothing to fail on.
        assert!(
            rendered_kind(kind, &["--set", &enabled]).is_empty(),
            "{kind} rendered without its API"
        );
        // Another kind of the group is not enough.
        assert!(
            rendered_kind(
                kind,
                &[
                    "--set",
                    &enabled,
                    "--api-versions",
                    "monitoring.coreos.com/v1/Probe"
                ]
            )
            .is_empty(),
            "{kind} rendered for another kind's API"
        );
        assert_eq!(
            rendered_kind(kind, &["--set", &enabled, "--api-versions", api]).len(),
            1,
            "{kind} with its API"
        );
        assert_eq!(
            rendered_kind(kind, &["--set", &enabled, "--set", &forced]).len(),
            1,
            "{kind} forced"
        );
        // force alone does not enable it.
        assert!(
            rendered_kind(kind, &["--set", &forced]).is_empty(),
            "{kind}"
        );
    }
}

#[test]
fn the_service_and_pod_monitors_scrape_the_operators_metrics_port() {
    let objects = docs(&helm_template(&[
        "--set",
        "metrics.serviceMonitor.enabled=true",
        "--set",
        "metrics.serviceMonitor.force=true",
        "--set",
        "metrics.serviceMonitor.labels.release=prom",
    ]));
    let monitor = objects
        .iter()
        .find(|o| o["kind"] == "ServiceMonitor")
        .unwrap();
    let service = objects.iter().find(|o| o["kind"] == "Service").unwrap();
    assert_eq!(monitor["metadata"]["labels"]["release"], "prom");
    // The selector matches the metrics Service, whose port has the endpoint's name.
    for (k, v) in monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap()
    {
        assert_eq!(&service["metadata"]["labels"][k], v, "{k}");
    }
    let port = monitor["spec"]["endpoints"][0]["port"].as_str().unwrap();
    assert!(
        service["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == port),
        "no Service port {port}"
    );

    let objects = docs(&helm_template(&[
        "--set",
        "podMonitor.enabled=true",
        "--set",
        "podMonitor.force=true",
    ]));
    let monitor = objects.iter().find(|o| o["kind"] == "PodMonitor").unwrap();
    let deploy = objects.iter().find(|o| o["kind"] == "Deployment").unwrap();
    let pod_labels = &deploy["spec"]["template"]["metadata"]["labels"];
    for (k, v) in monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap()
    {
        assert_eq!(&pod_labels[k], v, "{k}");
    }
    let endpoint = &monitor["spec"]["podMetricsEndpoints"][0];
    assert_eq!(endpoint["path"], "/metrics");
    assert_eq!(
        deploy["spec"]["template"]["spec"]["containers"][0]["ports"][0]["name"],
        endpoint["port"]
    );
    // Both at once would scrape every series twice: refused.
    let (ok, _, err) = run(Command::new(tool("helm"))
        .args(["template", "ro", "charts/registry-operator"])
        .args([
            "--set",
            "podMonitor.enabled=true",
            "--set",
            "podMonitor.force=true",
        ])
        .args(["--set", "metrics.serviceMonitor.enabled=true"])
        .current_dir(root()));
    assert!(!ok && err.contains("scrape the operator twice"), "{err}");
}

/// The metric names the operator exports, from its own exposition (`# TYPE` lines) once one
/// sample of each labelled family was recorded (families without samples are not listed),
/// with the suffixes Prometheus adds per type.
fn exported_series() -> Vec<String> {
    use registry_operator::controller::metrics::{FailureLabels, Metrics, RunLabels};
    let metrics = Metrics::new();
    metrics
        .failures
        .get_or_create(&FailureLabels {
            controller: "registry",
            reason: "InvalidSpec".into(),
        })
        .inc();
    metrics
        .runs
        .get_or_create(&RunLabels {
            controller: "retentionpolicy",
            mode: "Enforce".into(),
            outcome: "Succeeded".into(),
        })
        .inc();
    // a registry request: counted by status class and timed
    registry_operator::oci::RequestObserver::observe(
        &metrics,
        registry_operator::oci::Operation::Ping,
        Some(200),
        std::time::Duration::from_millis(5),
    );
    let text = metrics.encode();
    let mut series = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let (name, kind) = rest.split_once(' ').unwrap();
        match kind {
            "counter" => series.push(format!("{name}_total")),
            "histogram" => {
                for suffix in ["_bucket", "_sum", "_count"] {
                    series.push(format!("{name}{suffix}"));
                }
            }
            _ => series.push(name.to_string()),
        }
    }
    series
}

#[test]
fn every_alert_of_the_prometheus_rule_queries_series_the_operator_exports() {
    let exported = exported_series();
    assert!(
        exported
            .iter()
            .any(|s| s == "registry_operator_retention_runs_total"),
        "{exported:?}"
    );
    let rule = rendered_kind(
        "PrometheusRule",
        &[
            "--set",
            "prometheusRule.enabled=true",
            "--set",
            "prometheusRule.force=true",
            "--set",
            "prometheusRule.labels.release=prom",
        ],
    )
    .remove(0);
    assert_eq!(rule["metadata"]["labels"]["release"], "prom");
    let rules = rule["spec"]["groups"][0]["rules"].as_array().unwrap();
    let names: Vec<&str> = rules.iter().map(|r| r["alert"].as_str().unwrap()).collect();
    for want in [
        "RegistryOperatorRegistryFailing",
        "RegistryOperatorCredentialsRefused",
        "RegistryOperatorRetentionBlocked",
        "RegistryOperatorRetentionDeletionsFailed",
        "RegistryOperatorRetentionRunFailed",
        "RegistryOperatorRegistryRequestErrors",
    ] {
        assert!(names.contains(&want), "{want} not in {names:?}");
    }
    let metric = regex::Regex::new(r"registry_operator_[a-z_]+").unwrap();
    let outcome = regex::Regex::new(r#"outcome="([A-Za-z]+)""#).unwrap();
    let duration = regex::Regex::new(r"^[0-9]+[smh]$").unwrap();
    for r in rules {
        let expr = r["expr"].as_str().unwrap();
        let used: Vec<&str> = metric.find_iter(expr).map(|m| m.as_str()).collect();
        assert!(
            !used.is_empty(),
            "{}: no operator metric in {expr}",
            r["alert"]
        );
        for m in used {
            assert!(
                exported.iter().any(|s| s == m),
                "{}: {m} is not exported by the operator ({exported:?})",
                r["alert"]
            );
        }
        // Run outcomes are the ones the API knows.
        for c in outcome.captures_iter(expr) {
            serde_json::from_value::<registry_operator::api::retention::RunOutcome>(json!(&c[1]))
                .unwrap_or_else(|e| {
                    panic!("{}: outcome {} is no RunOutcome: {e}", r["alert"], &c[1])
                });
        }
        // Helm left the alert templates for Prometheus to fill.
        let summary = r["annotations"]["summary"].as_str().unwrap();
        assert!(!summary.is_empty());
        if let Some(d) = r["for"].as_str() {
            assert!(duration.is_match(d), "{d}");
        }
    }
    assert!(
        rules.iter().any(|r| r["annotations"]["summary"]
            .as_str()
            .unwrap()
            .contains("{{ $labels.")),
        "alert annotations keep Prometheus' templates"
    );
}

/// The chart values an installation file under docs/gitops/ gives, rendered with the chart
/// (so the schema judges them) and validated offline.
fn render_gitops_values(label: &str, values: &Value) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("values.yaml");
    std::fs::write(&file, serde_yaml::to_string(values).unwrap()).unwrap();
    let yaml = helm_template(&[
        "-f",
        file.to_str().unwrap(),
        "--api-versions",
        "monitoring.coreos.com/v1/ServiceMonitor",
        "--api-versions",
        "monitoring.coreos.com/v1/PrometheusRule",
    ]);
    validate_offline(label, &yaml);
    docs(&yaml)
}

#[test]
fn the_argocd_application_installs_the_chart_with_values_the_schema_accepts() {
    let app =
        docs(&std::fs::read_to_string(root().join("docs/gitops/argocd-application.yaml")).unwrap())
            .remove(0);
    assert_eq!(app["apiVersion"], "argoproj.io/v1alpha1");
    assert_eq!(app["kind"], "Application");
    let source = &app["spec"]["source"];
    let path = source["path"].as_str().unwrap();
    assert!(
        root().join(path).join("Chart.yaml").exists(),
        "{path} is no chart"
    );
    let options = app["spec"]["syncPolicy"]["syncOptions"].to_string();
    assert!(options.contains("ServerSideApply=true"), "{options}");
    let objects =
        render_gitops_values("argocd-application values", &source["helm"]["valuesObject"]);
    for kind in [
        "PodDisruptionBudget",
        "ServiceMonitor",
        "PrometheusRule",
        "CustomResourceDefinition",
    ] {
        assert!(objects.iter().any(|o| o["kind"] == kind), "no {kind}");
    }
    assert!(operator_args(&objects)
        .contains(&"--secret-label=registry-operator.dev/usable".to_string()));
}

#[test]
fn the_flux_helm_release_installs_the_chart_from_its_git_source_with_values_the_schema_accepts() {
    let objects =
        docs(&std::fs::read_to_string(root().join("docs/gitops/flux-helmrelease.yaml")).unwrap());
    let source = objects
        .iter()
        .find(|o| o["kind"] == "GitRepository")
        .unwrap();
    let release = objects.iter().find(|o| o["kind"] == "HelmRelease").unwrap();
    assert_eq!(source["apiVersion"], "source.toolkit.fluxcd.io/v1");
    assert_eq!(release["apiVersion"], "helm.toolkit.fluxcd.io/v2");
    let chart = &release["spec"]["chart"]["spec"];
    assert_eq!(chart["sourceRef"]["kind"], "GitRepository");
    assert_eq!(chart["sourceRef"]["name"], source["metadata"]["name"]);
    let path = chart["chart"].as_str().unwrap();
    assert!(
        root().join(path).join("Chart.yaml").exists(),
        "{path} is no chart"
    );
    // The source's ignore rules keep the chart.
    let ignore = source["spec"]["ignore"].as_str().unwrap();
    assert!(ignore.lines().any(|l| l.trim() == "!/charts/"), "{ignore}");
    let rendered = render_gitops_values("flux-helmrelease values", &release["spec"]["values"]);
    for kind in ["PodDisruptionBudget", "ServiceMonitor", "PrometheusRule"] {
        assert!(rendered.iter().any(|o| o["kind"] == kind), "no {kind}");
    }
}
