//! The CRDs are generated from the API types, structural, and enforce the rules users rely on;
//! every sample under config/samples/ is a valid object of its kind.

mod support;

use std::path::Path;

use registry_operator::api;
use serde_json::Value;
use support::crd_cases::Verdict;
use support::schema;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn generated(kind_file: &str) -> Value {
    let (_, crd) = api::crds()
        .into_iter()
        .find(|(f, _)| *f == kind_file)
        .expect("known CRD file");
    serde_json::to_value(crd).unwrap()
}

#[test]
fn checked_in_crds_match_the_api_types() {
    // crds/ for kubectl and config/crd/bases for kustomize must equal the generator's output.
    for dir in ["crds", "config/crd/bases"].map(|d| root().join(d)) {
        for (file, crd) in api::crds() {
            let path = dir.join(file);
            let on_disk = std::fs::read_to_string(&path).unwrap_or_else(|e| {
                panic!(
                    "{} is missing ({e}); run `registry-operator crd --out-dir {}`",
                    path.display(),
                    dir.display()
                )
            });
            assert!(
                on_disk == api::crd_yaml(&crd).unwrap(),
                "{} drifted from src/api; regenerate with `make crds`",
                path.display()
            );
        }
    }
}

#[test]
fn the_charts_crd_templates_match_the_api_types() {
    // The chart renders its CRDs from templates (crds.enabled / crds.keep); a crds/ directory
    // next to them would make Helm install a second, unowned copy first.
    let chart = root().join("charts/registry-operator");
    assert!(
        !chart.join("crds").exists(),
        "charts/registry-operator/crds/ must not exist: the CRDs are templates/crds/"
    );
    let dir = chart.join("templates/crds");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}; run `make crds`", dir.display()))
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    let mut expected: Vec<String> = api::crds().iter().map(|(f, _)| f.to_string()).collect();
    expected.sort();
    assert_eq!(
        files,
        expected,
        "{} holds exactly the generated CRDs",
        dir.display()
    );
    for (file, crd) in api::crds() {
        let path = dir.join(file);
        let on_disk = std::fs::read_to_string(&path).unwrap();
        assert!(
            on_disk == registry_operator::cli::crd::chart_template(&crd).unwrap(),
            "{} drifted from src/api; regenerate with `make crds`",
            path.display()
        );
    }
}

#[test]
fn every_crd_schema_is_structural() {
    for (file, crd) in api::crds() {
        let crd = serde_json::to_value(crd).unwrap();
        let problems = schema::structural_problems(schema::crd_schema(&crd));
        assert!(
            problems.is_empty(),
            "{file} is not structural:\n{}",
            problems.join("\n")
        );
    }
}

#[test]
fn every_crd_has_status_subresource_short_name_and_category() {
    for (file, crd) in api::crds() {
        let names = &crd.spec.names;
        assert!(
            names.short_names.as_ref().is_some_and(|s| !s.is_empty()),
            "{file}: no short name"
        );
        assert_eq!(
            names.categories.as_deref(),
            Some(&["registry-operator".to_string()][..]),
            "{file}"
        );
        let version = &crd.spec.versions[0];
        assert!(
            version
                .subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some(),
            "{file}: no status subresource"
        );
        assert!(
            version
                .additional_printer_columns
                .as_ref()
                .is_some_and(|c| c.len() >= 4),
            "{file}: printer columns"
        );
    }
}

#[test]
fn every_field_has_a_description_for_kubectl_explain() {
    fn walk(node: &Value, path: &str, missing: &mut Vec<String>) {
        if let Some(props) = node.get("properties").and_then(Value::as_object) {
            for (k, v) in props {
                let p = format!("{path}.{k}");
                // metadata, apiVersion and kind are described by Kubernetes itself.
                let builtin =
                    path.is_empty() && ["metadata", "apiVersion", "kind"].contains(&k.as_str());
                if !builtin && v.get("description").is_none() {
                    missing.push(p.clone());
                }
                walk(v, &p, missing);
            }
        }
        if let Some(items) = node.get("items") {
            walk(items, &format!("{path}[]"), missing);
        }
    }
    for (file, crd) in api::crds() {
        let crd = serde_json::to_value(crd).unwrap();
        let mut missing = Vec::new();
        walk(schema::crd_schema(&crd), "", &mut missing);
        assert!(
            missing.is_empty(),
            "{file}: fields without a description:\n{}",
            missing.join("\n")
        );
    }
}

/// The problems the offline validator (the project's schema check and kube-cel) reports for an
/// object, with JSON-pointer paths (`/spec/gc/interval`) written as the API server writes them
/// (`spec.gc.interval`).
fn offline_problems(crd: &Value, object: &Value) -> Vec<String> {
    schema::all_problems(schema::crd_schema(crd), object)
        .into_iter()
        .map(
            |p| match p.strip_prefix('/').and_then(|p| p.split_once(": ")) {
                Some((path, rest)) => format!("{}: {rest}", path.replace('/', ".")),
                None => p,
            },
        )
        .collect()
}

#[test]
fn every_schema_and_cel_case_is_judged_offline_as_the_api_server_judges_it() {
    let mut wrong = Vec::new();
    for case in support::crd_cases::cases() {
        let crd = generated(case.crd_file());
        let problems = offline_problems(&crd, &case.object("x", "default"));
        match case.verdict {
            Verdict::Accepted if !problems.is_empty() => {
                wrong.push(format!("{}: rejected: {problems:?}", case.name))
            }
            Verdict::Rejected(needle) if !problems.iter().any(|p| p.contains(needle)) => wrong
                .push(format!(
                    "{}: no problem containing {needle:?}, got {problems:?}",
                    case.name
                )),
            _ => {}
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn every_sample_is_a_valid_object_of_its_kind() {
    let crds: Vec<Value> = api::crds()
        .into_iter()
        .map(|(_, c)| serde_json::to_value(c).unwrap())
        .collect();
    let dir = root().join("config/samples");
    let mut checked = 0;
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.extension().is_none_or(|e| e != "yaml")
            || path.file_name().is_some_and(|f| f == "kustomization.yaml")
        {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let object: Value = serde::Deserialize::deserialize(doc).unwrap();
            if object.is_null() {
                continue;
            }
            let kind = object["kind"].as_str().unwrap_or_default().to_string();
            let crd = crds
                .iter()
                .find(|c| c["spec"]["names"]["kind"] == kind.as_str())
                .unwrap_or_else(|| panic!("{}: no CRD for kind {kind:?}", path.display()));
            let problems = schema::all_problems(schema::crd_schema(crd), &object);
            assert!(problems.is_empty(), "{}: {problems:#?}", path.display());
            let typed = match kind.as_str() {
                "Registry" => serde_json::from_value::<api::Registry>(object.clone()).map(|_| ()),
                "RetentionPolicy" => {
                    serde_json::from_value::<api::RetentionPolicy>(object.clone()).map(|_| ())
                }
                "ClusterRetentionPolicy" => {
                    serde_json::from_value::<api::ClusterRetentionPolicy>(object.clone())
                        .map(|_| ())
                }
                other => panic!("unexpected kind {other}"),
            };
            typed.unwrap_or_else(|e| panic!("{}: does not deserialise: {e}", path.display()));
            checked += 1;
        }
    }
    assert!(
        checked >= 4,
        "expected at least four samples, found {checked}"
    );
}

#[test]
fn the_crd_command_of_make_crds_writes_exactly_the_checked_in_files() {
    // The Makefile's `crds` target, into a scratch directory per destination.
    let make = std::fs::read_to_string(root().join("Makefile")).unwrap();
    let line = make
        .lines()
        .find(|l| l.contains("-- crd "))
        .expect("a `cargo run -- crd` line in the Makefile");
    let args: Vec<&str> = line
        .split("-- crd ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .collect();
    let scratch = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_registry-operator"));
    cmd.arg("crd");
    let mut destinations = Vec::new();
    for pair in args.chunks(2) {
        let [flag, dir] = pair else {
            panic!("{line}: flags come with a directory")
        };
        let out = scratch.path().join(dir.replace('/', "_"));
        cmd.arg(flag).arg(&out);
        destinations.push((dir.to_string(), out));
    }
    assert!(
        destinations
            .iter()
            .any(|(d, _)| d == "charts/registry-operator/templates/crds"),
        "make crds writes the chart's templates: {line}"
    );
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (dir, written) in destinations {
        for (file, _) in api::crds() {
            let fresh = std::fs::read_to_string(written.join(file)).unwrap();
            let checked_in = std::fs::read_to_string(root().join(&dir).join(file)).unwrap();
            assert!(
                fresh == checked_in,
                "{dir}/{file} differs from what `make crds` writes"
            );
        }
    }
}
