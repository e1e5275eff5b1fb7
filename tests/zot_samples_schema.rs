//! The Registry samples under config/samples satisfy the Registry CRD's openAPIV3Schema
//! (patterns, ranges, required fields) and render without problems.

use kube::CustomResourceExt;
use registry_operator::api::Registry;
use registry_operator::cli::render::render_manifest;

#[test]
fn registry_samples_satisfy_the_crd_schema_and_render() {
    let crd = Registry::crd();
    let schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .map(|s| serde_json::to_value(s).expect("schema as JSON"))
        .expect("openAPIV3Schema");
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    for file in [
        "registry_v1alpha1_registry.yaml",
        "registry_v1alpha1_registry_s3.yaml",
    ] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("config/samples")
            .join(file);
        let text = std::fs::read_to_string(&path).expect("sample");
        let value: serde_json::Value = serde_yaml::from_str(&text).expect("yaml");
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| format!("{}: {e}", e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{file}: {errors:#?}");
        render_manifest(&text, None).unwrap_or_else(|p| panic!("{file}: {p:#?}"));
    }
}
