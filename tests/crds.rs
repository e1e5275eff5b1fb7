//! The CRDs are generated from the API types, structural, and enforce the rules users rely on;
//! every sample under config/samples/ is a valid object of its kind.

mod support;

use std::path::Path;

use registry_operator::api;
use serde_json::{json, Value};
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
    // crds/ for kubectl, the chart's copy for Helm, config/crd/bases for kustomize: all three
    // must equal the generator's output.
    for dir in ["crds", "charts/registry-operator/crds", "config/crd/bases"].map(|d| root().join(d))
    {
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

/// Applies a spec to a minimal object of the CRD's kind and returns the problems the API
/// server would report.
fn problems(kind_file: &str, kind: &str, spec: Value) -> Vec<String> {
    let crd = generated(kind_file);
    let object = json!({
        "apiVersion": "registry-operator.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": "x", "namespace": "default"},
        "spec": spec,
    });
    schema::all_problems(schema::crd_schema(&crd), &object)
}

fn registry(spec: Value) -> Vec<String> {
    problems("registries.yaml", "Registry", spec)
}

fn policy(spec: Value) -> Vec<String> {
    problems("retentionpolicies.yaml", "RetentionPolicy", spec)
}

fn cluster_policy(spec: Value) -> Vec<String> {
    problems(
        "clusterretentionpolicies.yaml",
        "ClusterRetentionPolicy",
        spec,
    )
}

fn assert_rejected(problems: Vec<String>, needle: &str) {
    assert!(
        problems.iter().any(|p| p.contains(needle)),
        "expected a problem containing {needle:?}, got {problems:#?}"
    );
}

#[test]
fn a_managed_registry_with_a_version_is_accepted() {
    let p = registry(
        json!({"version": "v2.1.20", "gc": {"interval": "1h", "delay": "30m"}, "dedupe": true}),
    );
    assert!(p.is_empty(), "{p:#?}");
}

#[test]
fn an_external_registry_with_only_a_url_is_accepted() {
    let p = registry(
        json!({"external": {"url": "https://registry.example.com"}, "aliases": ["r.example.com"]}),
    );
    assert!(p.is_empty(), "{p:#?}");
}

#[test]
fn an_external_registry_mixed_with_managed_fields_is_rejected() {
    assert_rejected(
        registry(json!({"external": {"url": "https://r.example.com"}, "replicas": 2})),
        "only external and aliases may be set",
    );
    assert_rejected(
        registry(json!({"external": {"url": "https://r.example.com"}, "gc": {"enabled": true}})),
        "only external and aliases may be set",
    );
}

#[test]
fn a_managed_registry_without_a_version_is_rejected() {
    assert_rejected(registry(json!({"dedupe": true})), "needs spec.version");
}

#[test]
fn several_replicas_without_shared_storage_are_rejected() {
    assert_rejected(
        registry(json!({"version": "v2.1.20", "replicas": 3})),
        "replicas > 1 needs shared storage",
    );
    let with_s3 = registry(json!({
        "version": "v2.1.20", "replicas": 3,
        "storage": {"s3": {"bucket": "zot-images", "region": "eu-west-1",
                           "cache": {"redis": {"url": "redis://redis:6379"}}}}
    }));
    assert!(with_s3.is_empty(), "{with_s3:#?}");
}

#[test]
fn a_cache_must_name_exactly_one_backend() {
    assert_rejected(
        registry(
            json!({"version": "v2.1.20", "storage": {"s3": {"bucket": "zot-images", "region": "eu-west-1", "cache": {}}}}),
        ),
        "exactly one of cache.redis and cache.dynamodb",
    );
}

#[test]
fn negative_replicas_and_malformed_durations_are_rejected() {
    assert_rejected(
        registry(json!({"version": "v2.1.20", "replicas": -1})),
        "replicas",
    );
    assert_rejected(
        registry(json!({"version": "v2.1.20", "gc": {"interval": "1d"}})),
        "gc/interval",
    );
    assert_rejected(
        registry(json!({"version": "v2.1.20", "gc": {"timeWindow": "25:00-01:00"}})),
        "timeWindow",
    );
}

#[test]
fn the_ui_without_search_is_rejected() {
    assert_rejected(
        registry(json!({"version": "v2.1.20", "extensions": {"ui": true}})),
        "the UI needs the search extension",
    );
}

#[test]
fn a_periodic_sync_without_content_is_rejected() {
    assert_rejected(
        registry(
            json!({"version": "v2.1.20", "sync": {"registries": [{"urls": ["https://docker.io"], "pollInterval": "6h"}]}}),
        ),
        "onDemand, or periodic with pollInterval",
    );
}

#[test]
fn unknown_registry_fields_are_reported() {
    assert_rejected(
        registry(json!({"version": "v2.1.20", "gcInterval": "1h"})),
        "spec.gcInterval: unknown field",
    );
}

fn valid_policy() -> Value {
    json!({
        "registryRef": {"name": "main"},
        "mode": "Plan",
        "repositories": {"include": ["team-a/**"]},
        "keep": [{"tags": {"regex": "v\\d+\\.\\d+\\.\\d+"}}, {"mostRecent": 10, "pushedWithin": "720h"}],
    })
}

#[test]
fn a_retention_policy_with_keep_entries_is_accepted() {
    let p = policy(valid_policy());
    assert!(p.is_empty(), "{p:#?}");
}

#[test]
fn a_policy_without_a_mode_is_rejected() {
    let mut spec = valid_policy();
    spec.as_object_mut().unwrap().remove("mode");
    assert_rejected(policy(spec), "mode");
}

#[test]
fn an_unknown_mode_is_rejected() {
    let mut spec = valid_policy();
    spec["mode"] = json!("Delete");
    assert_rejected(policy(spec), "Delete");
}

#[test]
fn purge_with_keep_entries_is_rejected() {
    let mut spec = valid_policy();
    spec["purge"] = json!(true);
    assert_rejected(policy(spec.clone()), "keep must be empty");
    assert_rejected(
        cluster_policy({
            let mut s = spec;
            s.as_object_mut().unwrap().remove("registryRef");
            s["registrySelector"] = json!({});
            s
        }),
        "keep must be empty",
    );
}

#[test]
fn purge_without_keep_entries_is_accepted() {
    let p = policy(
        json!({"registryRef": {"name": "main"}, "mode": "Enforce", "purge": true,
                          "repositories": {"include": ["old-project/**"]}}),
    );
    assert!(p.is_empty(), "{p:#?}");
}

#[test]
fn an_empty_keep_entry_is_rejected() {
    let mut spec = valid_policy();
    spec["keep"] = json!([{}]);
    assert_rejected(
        policy(spec),
        "a keep entry needs a tags selector or a criterion",
    );
}

#[test]
fn negative_or_zero_counts_are_rejected() {
    let mut spec = valid_policy();
    spec["keep"] = json!([{"mostRecent": -3}]);
    assert_rejected(policy(spec.clone()), "mostRecent");
    spec["keep"] = json!([{"mostRecent": 0}]);
    assert_rejected(policy(spec.clone()), "mostRecent");
    spec["keep"] = json!([{"mostRecent": 1}]);
    spec["limits"] = json!({"maxDeletionsPerRun": -1});
    assert_rejected(policy(spec), "maxDeletionsPerRun");
}

#[test]
fn a_semver_entry_needs_a_count() {
    let mut spec = valid_policy();
    spec["keep"] = json!([{"semver": {"includePrereleases": true}}]);
    assert_rejected(
        policy(spec),
        "semver needs latestPerMajor or latestPerMinor",
    );
}

#[test]
fn a_policy_without_included_repositories_is_rejected() {
    let mut spec = valid_policy();
    spec["repositories"] = json!({"include": []});
    assert_rejected(policy(spec), "include");
}

#[test]
fn a_cluster_policy_needs_a_registry_selector() {
    let ok = cluster_policy(
        json!({"registrySelector": {"matchLabels": {"tier": "prod"}}, "mode": "Plan",
                                   "repositories": {"include": ["**"]}, "keep": [{"mostRecent": 5}]}),
    );
    assert!(ok.is_empty(), "{ok:#?}");
    assert_rejected(
        cluster_policy(
            json!({"mode": "Plan", "repositories": {"include": ["**"]}, "keep": [{"mostRecent": 5}]}),
        ),
        "registrySelector",
    );
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
