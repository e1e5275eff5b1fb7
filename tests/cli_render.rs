//! `registry-operator render` as a user runs it: the built binary, its exit codes, stdout and
//! stderr.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_registry-operator"))
}

fn sample(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("config/samples")
        .join(file)
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("run registry-operator")
}

fn run_stdin(args: &[&str], input: &str) -> Output {
    let mut child = bin()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn registry-operator");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn render_prints_the_zot_config_and_the_objects_of_the_sample() {
    let path = sample("registry_v1alpha1_registry.yaml");
    let out = run(&["render", "-f", path.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with("# zot v2.1.20 config.json (sha256 "),
        "{text}"
    );
    for key in ["gcInterval: 1h", "gcDelay: 2h", "dedupe: true"] {
        assert!(text.contains(key), "missing {key}");
    }
    let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).expect("yaml document"))
        .collect();
    let kinds: Vec<&str> = docs[1..]
        .iter()
        .map(|d| d["kind"].as_str().expect("kind"))
        .collect();
    assert_eq!(kinds, ["ConfigMap", "Service", "Service", "StatefulSet"]);
    assert!(stderr(&out).is_empty());
}

#[test]
fn json_and_yaml_outputs_hold_the_same_documents() {
    let path = sample("registry_v1alpha1_registry_s3.yaml");
    let path = path.to_str().expect("utf-8 path");
    let yaml = run(&["render", "-f", path, "-o", "yaml"]);
    let json = run(&["render", "-f", path, "-o", "json"]);
    assert_eq!(yaml.status.code(), Some(0));
    assert_eq!(json.status.code(), Some(0));
    let from_yaml: Vec<serde_json::Value> = serde_yaml::Deserializer::from_str(&stdout(&yaml))
        .map(|d| serde::Deserialize::deserialize(d).expect("yaml document"))
        .collect();
    let from_json: Vec<serde_json::Value> =
        serde_json::from_str(&stdout(&json)).expect("a JSON list");
    assert_eq!(from_yaml.len(), 5);
    assert_eq!(from_yaml, from_json);
    assert_eq!(
        from_json[0]["cluster"]["members"].as_array().map(Vec::len),
        Some(3)
    );
}

#[test]
fn only_config_as_json_prints_exactly_the_config_map_bytes() {
    let path = sample("registry_v1alpha1_registry.yaml");
    let path = path.to_str().expect("utf-8 path");
    let config = run(&["render", "-f", path, "-o", "json", "--only", "config"]);
    let objects = run(&["render", "-f", path, "-o", "json", "--only", "objects"]);
    let objects: Vec<serde_json::Value> = serde_json::from_str(&stdout(&objects)).expect("list");
    assert_eq!(objects[0]["kind"], "ConfigMap");
    assert_eq!(
        objects[0]["data"]["config.json"].as_str(),
        Some(stdout(&config).as_str())
    );
}

#[test]
fn zot_version_flag_overrides_the_spec_and_gates_keys() {
    let manifest = "apiVersion: registry-operator.dev/v1alpha1\nkind: Registry\nmetadata:\n  name: w\nspec:\n  version: v2.1.20\n  gc:\n    timeWindow: \"01:00-04:00\"\n";
    let ok = run_stdin(&["render", "-f", "-", "--only", "objects"], manifest);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    assert!(stdout(&ok).contains("image: ghcr.io/project-zot/zot:v2.1.20"));
    let old = run_stdin(&["render", "-f", "-", "--zot-version", "v2.1.18"], manifest);
    assert_eq!(old.status.code(), Some(2));
    assert!(stdout(&old).is_empty(), "no partial output");
    assert_eq!(
        stderr(&old),
        "error: gcTimeWindow (spec.gc.timeWindow) needs zot v2.1.19 or later, but this registry runs v2.1.18\n"
    );
}

#[test]
fn invalid_input_exits_2_with_one_line_per_problem_and_no_output() {
    let manifest = "apiVersion: registry-operator.dev/v1alpha1\nkind: Registry\nmetadata:\n  name: bad\nspec:\n  version: v2.1.20\n  gcc: {}\n  replicas: many\n";
    let out = run_stdin(&["render", "-f", "-"], manifest);
    assert_eq!(out.status.code(), Some(2));
    assert!(stdout(&out).is_empty());
    assert_eq!(
        stderr(&out),
        "error: spec.gcc: unknown field\nerror: spec.replicas: expected integer, got string\n"
    );

    let rules = "apiVersion: registry-operator.dev/v1alpha1\nkind: Registry\nmetadata:\n  name: bad\nspec:\n  version: v2.1.20\n  gc:\n    delay: -1h\n  extensions:\n    ui: true\n";
    let out = run_stdin(&["render", "-f", "-"], rules);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        "error: storage.gcDelay: must not be negative, got \"-1h\"\nerror: extensions.ui: the UI needs the search extension\n"
    );

    let out = run_stdin(&["render", "-f", "-"], "kind: [\n");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    assert!(stderr(&out).starts_with("error: not a valid YAML document"));
}

#[test]
fn a_missing_file_is_a_failure_not_invalid_input() {
    let out = run(&["render", "-f", "/nonexistent/registry.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).starts_with("error: reading /nonexistent/registry.yaml"));
}

#[test]
fn cluster_domain_names_zots_cluster_members_and_a_bad_one_exits_2() {
    let path = sample("registry_v1alpha1_registry_s3.yaml");
    let path = path.to_str().expect("utf-8 path");
    let default = run(&["render", "-f", path, "--only", "config", "-o", "json"]);
    assert_eq!(default.status.code(), Some(0), "{}", stderr(&default));
    assert!(stdout(&default).contains(".svc.cluster.local:5000"));
    let custom = run(&[
        "render",
        "-f",
        path,
        "--only",
        "config",
        "-o",
        "json",
        "--cluster-domain",
        "k8s.corp.example",
    ]);
    assert_eq!(custom.status.code(), Some(0), "{}", stderr(&custom));
    let config: serde_json::Value = serde_json::from_str(&stdout(&custom)).expect("json config");
    let members: Vec<&str> = config["cluster"]["members"]
        .as_array()
        .expect("cluster members for replicas > 1")
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    assert!(!members.is_empty());
    assert!(
        members
            .iter()
            .all(|m| m.ends_with(".svc.k8s.corp.example:5000")),
        "{members:?}"
    );
    let bad = run(&["render", "-f", path, "--cluster-domain", "Cluster.Local."]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(stdout(&bad).is_empty());
    assert!(
        stderr(&bad).contains("is not a DNS domain"),
        "{}",
        stderr(&bad)
    );
}

fn external(namespace: &str, url: &str, extra: &str) -> String {
    format!(
        "apiVersion: registry-operator.dev/v1alpha1\nkind: Registry\nmetadata:\n  name: ext\n  namespace: {namespace}\nspec:\n  external:\n    url: {url}\n{extra}"
    )
}

#[test]
fn render_refuses_an_external_registry_at_the_metadata_address_naming_the_rule() {
    // Only data: `render -f` judges the URL offline and has no code that connects anywhere.
    for url in [
        "http://169.254.169.254",
        "http://169.254.169.254/latest/meta-data",
        "http://[fd00:ec2::254]",
        "http://2852039166",
    ] {
        let out = run_stdin(&["render", "-f", "-"], &external("team-a", url, ""));
        assert_eq!(out.status.code(), Some(2), "{url}: {}", stdout(&out));
        let err = stderr(&out);
        assert!(
            err.contains("not allowed by the cloud-metadata rule"),
            "{url}: {err}"
        );
        assert!(stdout(&out).is_empty());
    }
    let link_local = run_stdin(
        &["render", "-f", "-"],
        &external("team-a", "http://169.254.10.10:5000", ""),
    );
    assert_eq!(link_local.status.code(), Some(2));
    assert!(stderr(&link_local).contains("not allowed by the link-local rule"));
}

#[test]
fn render_refuses_another_namespaces_service_unless_cross_namespace_services_are_allowed() {
    let manifest = external("team-a", "http://zot.team-b.svc.cluster.local:5000", "");
    let out = run_stdin(&["render", "-f", "-"], &manifest);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("names a Service of namespace \"team-b\"")
            && err.contains("not allowed by the cross-namespace-service rule"),
        "{err}"
    );
    let short = run_stdin(
        &["render", "-f", "-"],
        &external("team-a", "http://zot.team-b:5000", ""),
    );
    assert_eq!(short.status.code(), Some(2), "{}", stdout(&short));
    let allowed = run_stdin(
        &["render", "-f", "-", "--allow-cross-namespace-services"],
        &manifest,
    );
    assert_eq!(allowed.status.code(), Some(0), "{}", stderr(&allowed));
    assert!(stdout(&allowed).contains("a Service of namespace team-b"));
    let own = run_stdin(
        &["render", "-f", "-"],
        &external("team-a", "http://zot.team-a.svc:5000", ""),
    );
    assert_eq!(own.status.code(), Some(0), "{}", stderr(&own));
}

#[test]
fn render_refuses_loopback_when_judging_for_an_operator_that_does_not_allow_it() {
    let manifest = external("team-a", "http://127.0.0.1:5000", "");
    let laptop = run_stdin(&["render", "-f", "-"], &manifest);
    assert_eq!(laptop.status.code(), Some(0), "{}", stderr(&laptop));
    let cluster = run_stdin(
        &["render", "-f", "-", "--allow-loopback-registries=false"],
        &manifest,
    );
    assert_eq!(cluster.status.code(), Some(2));
    assert!(stderr(&cluster).contains("not allowed by the loopback rule"));
}

#[test]
fn render_prints_what_the_operator_would_do_with_a_plain_external_registry() {
    let manifest = external(
        "team-a",
        "https://robot:hunter2@harbor.example.com/v2",
        "    credentialsSecretRef:\n      name: harbor-robot\n  aliases: [mirror.example.com]\n",
    );
    let out = run_stdin(&["render", "-f", "-", "-o", "json"], &manifest);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let summary: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(summary["registry"], "team-a/ext");
    assert_eq!(summary["url"], "https://***:***@harbor.example.com");
    assert_eq!(summary["addressPolicy"]["result"], "allowed");
    let address = summary["address"].as_str().expect("address");
    assert!(
        address.contains("host name harbor.example.com: resolved only at connect time"),
        "{address}"
    );
    let credentials = summary["credentials"].as_str().expect("credentials");
    assert!(
        credentials.starts_with("Secret team-a/harbor-robot"),
        "{credentials}"
    );
    assert!(
        !stdout(&out).contains("hunter2"),
        "the URL's password is not printed"
    );
    let yaml = run_stdin(&["render", "-f", "-"], &manifest);
    assert_eq!(yaml.status.code(), Some(0));
    assert!(stdout(&yaml).starts_with("# external Registry: what the operator would do\n"));
}

#[test]
fn render_refuses_zot_fields_beside_external() {
    let manifest = external("team-a", "https://harbor.example.com", "  replicas: 2\n");
    let out = run_stdin(&["render", "-f", "-"], &manifest);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("only external and aliases may be set with it, not spec.replicas"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn render_refuses_what_the_operators_lockdown_refuses_unless_judged_for_an_operator_that_allows_it()
{
    // insecureSkipTlsVerify without --allow-insecure-skip-tls-verify
    let insecure = external(
        "team-a",
        "https://harbor.example.com",
        "    insecureSkipTlsVerify: true\n",
    );
    let out = run_stdin(&["render", "-f", "-"], &insecure);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("insecureSkipTlsVerify"),
        "{}",
        stderr(&out)
    );
    let allowed = run_stdin(
        &["render", "-f", "-", "--allow-insecure-skip-tls-verify"],
        &insecure,
    );
    assert_eq!(allowed.status.code(), Some(0), "{}", stderr(&allowed));
    // credentials over plain http to a host outside the cluster
    let plain = external(
        "team-a",
        "http://registry.example.com:5000",
        "    credentialsSecretRef:\n      name: robot\n    credentialsFallbackHosts: [mirror.example.com]\n",
    );
    let out = run_stdin(&["render", "-f", "-"], &plain);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("registry.example.com"),
        "{}",
        stderr(&out)
    );
    let allowed = run_stdin(
        &[
            "render",
            "-f",
            "-",
            "--allow-plain-http-credentials",
            "-o",
            "json",
        ],
        &plain,
    );
    assert_eq!(allowed.status.code(), Some(0), "{}", stderr(&allowed));
    let summary: serde_json::Value = serde_json::from_str(&stdout(&allowed)).expect("json");
    let credentials = summary["credentials"].as_str().expect("credentials");
    assert!(
        credentials.contains("then those for mirror.example.com in that order"),
        "{credentials}"
    );
}
