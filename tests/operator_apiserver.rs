//! The project on the real Kubernetes API server of the test run (`scripts/cluster.sh`; see
//! tests/support/cluster.rs): the CRDs install and every rule of theirs is enforced as the
//! cases say, `kubectl explain` documents them, and the operator — as the chart's
//! ServiceAccount, under exactly the chart's RBAC — creates what the real controllers, admission
//! and garbage collector accept, and is quiet at rest.
//!
//! Needs the control plane: run with scripts/test.sh (or set REGISTRY_OPERATOR_TEST_KUBECONFIG).

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Event, Pod, Service};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
    ValidationDirective,
};
use kube::Resource;
use registry_operator::api::{Registry, RetentionPolicy};
use registry_operator::oci::{ClientOptions, Credentials, RegistryClient};
use serde_json::{json, Value};

use support::cluster::{wait_for, Cluster, Harness, TEST_MANAGER};
use support::crd_cases::Verdict;
use support::registry::TestRegistry;
use support::seed::Seeder;

fn object<K: serde::de::DeserializeOwned>(v: Value) -> K {
    serde_json::from_value(v).expect("fixture")
}

async fn cluster() -> Cluster {
    let c = Cluster::connect().await;
    c.install_crds().await;
    c
}

fn managed_registry(name: &str) -> Registry {
    object(json!({
        "apiVersion": "registry-operator.dev/v1alpha1", "kind": "Registry",
        "metadata": {"name": name},
        "spec": {"version": "v2.1.20", "storage": {"size": "1Gi"}},
    }))
}

/// The API server refuses a CRD whose schema is not structural or whose CEL rules do not compile
/// or exceed the cost budget; accepted, each must become Established with its names accepted.
#[tokio::test]
async fn the_crds_install_and_become_established() {
    let c = cluster().await;
    let crds: Api<CustomResourceDefinition> = Api::all(c.client.clone());
    for (file, crd) in registry_operator::api::crds() {
        let name = crd.metadata.name.clone().unwrap();
        let on_server = crds.get(&name).await.unwrap();
        let conditions: BTreeMap<String, String> = on_server
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .into_iter()
            .map(|c| (c.type_, c.status))
            .collect();
        assert_eq!(
            conditions.get("Established").map(String::as_str),
            Some("True"),
            "{file}: {conditions:?}"
        );
        assert_eq!(
            conditions.get("NamesAccepted").map(String::as_str),
            Some("True"),
            "{file}: {conditions:?}"
        );
        assert!(
            !conditions.contains_key("NonStructuralSchema"),
            "{file}: the API server found the schema not structural"
        );
    }
}

/// Sends `object` to the API server as a dry-run create with strict field validation (what
/// `kubectl create` and client-side `kubectl apply` send): the whole validation runs — schema,
/// CEL, unknown fields — and nothing is stored.
async fn dry_run_create(
    c: &Cluster,
    ns: &str,
    kind: &str,
    object: &Value,
) -> Result<(), kube::Error> {
    let plural = match kind {
        "Registry" => format!("namespaces/{ns}/registries"),
        "RetentionPolicy" => format!("namespaces/{ns}/retentionpolicies"),
        _ => "clusterretentionpolicies".to_string(),
    };
    let request = http::Request::post(format!(
        "/apis/registry-operator.dev/v1alpha1/{plural}?dryRun=All&fieldValidation=Strict"
    ))
    .header("content-type", "application/json")
    .body(serde_json::to_vec(object).unwrap())
    .unwrap();
    c.client.request::<Value>(request).await.map(|_| ())
}

/// The same as a dry-run server-side apply (what Flux, Argo CD's server-side mode and
/// `kubectl apply --server-side` send).
async fn dry_run_apply(
    c: &Cluster,
    ns: &str,
    kind: &str,
    name: &str,
    object: &Value,
) -> Result<(), kube::Error> {
    let ar = match kind {
        "Registry" => ApiResource::erase::<Registry>(&()),
        "RetentionPolicy" => ApiResource::erase::<RetentionPolicy>(&()),
        _ => ApiResource::erase::<registry_operator::api::ClusterRetentionPolicy>(&()),
    };
    let api: Api<DynamicObject> = if kind == "ClusterRetentionPolicy" {
        Api::all_with(c.client.clone(), &ar)
    } else {
        Api::namespaced_with(c.client.clone(), ns, &ar)
    };
    let pp = PatchParams {
        field_manager: Some(TEST_MANAGER.into()),
        dry_run: true,
        field_validation: Some(ValidationDirective::Strict),
        ..PatchParams::default()
    };
    api.patch(name, &pp, &Patch::Apply(object))
        .await
        .map(|_| ())
}

/// What is wrong with the API server's answer to a case, if anything. Rejections must name the
/// rule or field; with `check_code`, a create is refused as 422 Unprocessable Entity, or — an
/// unknown field under strict validation — 400 Bad Request ("strict decoding error").
fn misjudged(
    verdict: Verdict,
    answer: Result<(), kube::Error>,
    check_code: bool,
) -> Option<String> {
    match (verdict, answer) {
        (Verdict::Accepted, Ok(())) => None,
        (Verdict::Accepted, Err(e)) => Some(format!("rejected: {e}")),
        (Verdict::Rejected(_), Ok(())) => Some("accepted".into()),
        (Verdict::Rejected(needle), Err(kube::Error::Api(s))) => {
            if !s.message.contains(needle) {
                Some(format!("rejected without {needle:?}: {}", s.message))
            } else if check_code
                && s.code != 422
                && !(s.code == 400 && s.message.contains("strict decoding error"))
            {
                Some(format!("answered {} ({}): {}", s.code, s.reason, s.message))
            } else {
                None
            }
        }
        (Verdict::Rejected(_), Err(e)) => Some(format!("failed: {e}")),
    }
}

#[tokio::test]
async fn every_schema_and_cel_case_is_judged_by_the_api_server_as_the_case_says() {
    let c = cluster().await;
    let ns = c.namespace("cel").await;
    let mut wrong = Vec::new();
    let mut judged = 0;
    for (i, case) in support::crd_cases::cases().into_iter().enumerate() {
        let name = format!("case-{i}");
        let object = case.object(&name, &ns);
        let created = dry_run_create(&c, &ns, case.kind, &object).await;
        if let Some(w) = misjudged(case.verdict, created, true) {
            wrong.push(format!("{} (create): {w}", case.name));
        }
        // A server-side apply with an unknown field is refused too, but as 500 (the apply
        // cannot build its typed patch), so only the verdict and message are checked here.
        let applied = dry_run_apply(&c, &ns, case.kind, &name, &object).await;
        if let Some(w) = misjudged(case.verdict, applied, false) {
            wrong.push(format!("{} (server-side apply): {w}", case.name));
        }
        judged += 1;
    }
    assert!(judged >= 20, "only {judged} cases");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[tokio::test]
async fn kubectl_explain_documents_every_field_of_registry_spec() {
    let c = cluster().await;
    let (crd_file, crd) = registry_operator::api::crds()
        .into_iter()
        .find(|(f, _)| *f == "registries.yaml")
        .unwrap();
    let crd = serde_json::to_value(crd).unwrap();
    let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    let fields = spec["properties"].as_object().unwrap();
    // Published OpenAPI follows the CRD a moment after it is Established.
    let out = wait_for("kubectl explain registry.spec", || async {
        let (ok, out, _) = c.kubectl(&["explain", "registry.spec"]);
        (ok && out.contains("FIELDS")).then_some(out)
    })
    .await;
    assert!(out.contains("registry-operator.dev"), "{out}");
    for (field, schema) in fields {
        assert!(
            out.contains(&format!("  {field}\t")),
            "{crd_file}: kubectl explain registry.spec does not list {field}:\n{out}"
        );
        let description = schema["description"].as_str().unwrap_or_default();
        let first_words: String = description
            .split_whitespace()
            .take(4)
            .collect::<Vec<_>>()
            .join(" ");
        let flat: String = out.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            flat.contains(&first_words),
            "the description of {field} ({first_words:?}) is not shown:\n{out}"
        );
    }
    let (ok, deep, err) = c.kubectl(&["explain", "registry.spec.gc.interval"]);
    assert!(ok, "{err}");
    assert!(deep.contains("interval"), "{deep}");
}

/// The objects a managed Registry named `name` owns, by kind.
async fn owned(c: &Cluster, ns: &str, name: &str) -> (bool, bool, bool) {
    let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), ns);
    let svcs: Api<Service> = Api::namespaced(c.client.clone(), ns);
    let sts: Api<StatefulSet> = Api::namespaced(c.client.clone(), ns);
    let owned_by =
        |refs: Option<&Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>>| {
            refs.is_some_and(|r| r.iter().any(|o| o.kind == "Registry" && o.name == name))
        };
    let cm = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .any(|o| owned_by(o.metadata.owner_references.as_ref()));
    let svc = svcs
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .any(|o| owned_by(o.metadata.owner_references.as_ref()));
    let st = sts
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .any(|o| owned_by(o.metadata.owner_references.as_ref()));
    (cm, svc, st)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_registry_garbage_collects_what_it_owns() {
    let c = cluster().await;
    let ns = c.namespace("gc").await;
    let op = c.start_operator(&ns).await;
    let regs: Api<Registry> = Api::namespaced(c.client.clone(), &ns);
    regs.create(&PostParams::default(), &managed_registry("main"))
        .await
        .unwrap();
    wait_for(
        "the Registry's ConfigMap, Service and StatefulSet",
        || async { (owned(&c, &ns, "main").await == (true, true, true)).then_some(()) },
    )
    .await;
    op.stop(&c).await;

    regs.delete("main", &DeleteParams::default()).await.unwrap();
    // The controller-manager's garbage collector, not the operator (stopped), removes them.
    wait_for(
        "the garbage collector to remove what the Registry owned",
        || async { (owned(&c, &ns, "main").await == (false, false, false)).then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_managed_registrys_pods_are_admitted_in_a_restricted_namespace() {
    let c = cluster().await;
    let ns = c
        .namespace_with(
            "restricted",
            json!({"pod-security.kubernetes.io/enforce": "restricted",
                   "pod-security.kubernetes.io/enforce-version": "latest"}),
        )
        .await;
    // The namespace really enforces: a root Pod is refused.
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), &ns);
    let refused = pods
        .create(
            &PostParams::default(),
            &object(
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "root"},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
            ),
        )
        .await;
    assert!(
        matches!(&refused, Err(kube::Error::Api(s)) if s.code == 403 && s.message.contains("PodSecurity")),
        "{refused:?}"
    );

    let op = c.start_operator(&ns).await;
    let regs: Api<Registry> = Api::namespaced(c.client.clone(), &ns);
    regs.create(&PostParams::default(), &managed_registry("main"))
        .await
        .unwrap();
    // The StatefulSet controller creates the Pod; PodSecurity admission would refuse it (a
    // FailedCreate event) if the operator's template were not restricted.
    let pod = wait_for("the StatefulSet controller to create main-0", || async {
        if let Some(p) = pods.get_opt("main-0").await.ok().flatten() {
            return Some(Ok(p));
        }
        let events: Api<Event> = Api::namespaced(c.client.clone(), &ns);
        let failed = events
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("FailedCreate"));
        failed.map(|e| Err(e.message.unwrap_or_default()))
    })
    .await;
    let pod = pod.unwrap_or_else(|m| panic!("the zot Pod was refused: {m}"));
    assert!(
        pod.metadata
            .owner_references
            .unwrap_or_default()
            .iter()
            .any(|o| o.kind == "StatefulSet"),
        "created by the StatefulSet"
    );
    op.stop(&c).await;
}

/// Writes a Pod's status as a kubelet does once its container runs: phase, and for each
/// container the image it was asked for and the digest it resolved to (`imageID`).
async fn write_status_as_kubelet(pods: &Api<Pod>, name: &str, image: &str, image_id: &str) {
    let container = pods.get(name).await.unwrap().spec.unwrap().containers[0]
        .name
        .clone();
    pods.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {
            "phase": "Running",
            "containerStatuses": [{
                "name": container, "image": image, "imageID": image_id,
                "ready": true, "restartCount": 0, "started": true,
                "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}},
            }],
        }})),
    )
    .await
    .unwrap_or_else(|e| panic!("writing {name}'s status: {e}"));
}

async fn tags(registry: &TestRegistry, repo: &str) -> Vec<String> {
    let client = RegistryClient::new(
        &registry.url,
        Credentials::Anonymous,
        ClientOptions::default(),
    )
    .unwrap();
    let mut t = client.tags(repo).await.unwrap_or_default();
    t.sort();
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_a_deployments_pod_runs_by_digest_survives_an_enforce_run() {
    let real = TestRegistry::start();
    let seeder = Seeder::new(&real.url, None);
    let mut digests = Vec::new();
    for i in 1..=3 {
        let p = seeder
            .push_image(
                "app/web",
                Some(&format!("v{i}")),
                &format!("w{i}"),
                &format!("2025-01-0{i}T00:00:00Z"),
            )
            .await;
        digests.push(p.digest);
    }
    let host = real.url.trim_start_matches("http://").to_string();
    let c = cluster().await;
    let ns = c.namespace("inuse").await;

    // A Deployment whose tag no longer exists in the registry (re-pushed elsewhere); the
    // Deployment and ReplicaSet controllers create its Pod, and "the kubelet" reports the digest
    // the tag had when it pulled: v1's. Only that imageID protects v1.
    let deployments: Api<Deployment> = Api::namespaced(c.client.clone(), &ns);
    let image = format!("{host}/app/web:release");
    deployments
        .create(
            &PostParams::default(),
            &object(json!({
                "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}},
                        "spec": {"containers": [{"name": "web", "image": image}]}}},
            })),
        )
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), &ns);
    let pod = wait_for("the ReplicaSet controller to create web's Pod", || async {
        pods.list(&ListParams::default().labels("app=web"))
            .await
            .ok()?
            .items
            .into_iter()
            .next()
    })
    .await;
    let pod_name = pod.metadata.name.clone().unwrap();
    assert!(
        pod.metadata
            .owner_references
            .unwrap_or_default()
            .iter()
            .any(|o| o.kind == "ReplicaSet"),
        "the Pod comes from a real ReplicaSet"
    );
    write_status_as_kubelet(
        &pods,
        &pod_name,
        &image,
        &format!("{host}/app/web@{}", digests[0]),
    )
    .await;

    let op = c.start_operator(&ns).await;
    wait_for("the in-use index to sync", || async {
        (op.metric("registry_operator_in_use_synced").await == Some(1.0)).then_some(())
    })
    .await;
    let regs: Api<Registry> = Api::namespaced(c.client.clone(), &ns);
    regs.create(
        &PostParams::default(),
        &object(
            json!({"apiVersion": "registry-operator.dev/v1alpha1", "kind": "Registry",
            "metadata": {"name": "dist"}, "spec": {"external": {"url": real.url}}}),
        ),
    )
    .await
    .unwrap();
    let rps: Api<RetentionPolicy> = Api::namespaced(c.client.clone(), &ns);
    rps.create(
        &PostParams::default(),
        &object(json!({"apiVersion": "registry-operator.dev/v1alpha1", "kind": "RetentionPolicy",
            "metadata": {"name": "web"}, "spec": {"registryRef": {"name": "dist"}, "mode": "Enforce",
            "repositories": {"include": ["app/**"]}, "keep": [{"mostRecent": 1}]}})),
    )
    .await
    .unwrap();
    let run = wait_for("the Enforce run", || async {
        rps.get("web")
            .await
            .ok()?
            .status?
            .last_run
            .filter(|r| r.completion_time.is_some())
    })
    .await;
    assert_eq!(run.deleted, 1, "only v2 goes: {run:?}");
    assert_eq!(tags(&real, "app/web").await, ["v1", "v3"]);
    op.stop(&c).await;
}

/// The resourceVersions of a namespace's objects of the kinds the operator writes.
async fn versions(c: &Cluster, ns: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    macro_rules! collect {
        ($k:ty) => {
            let api: Api<$k> = Api::namespaced(c.client.clone(), ns);
            for o in api.list(&ListParams::default()).await.unwrap().items {
                out.insert(
                    format!(
                        "{}/{}",
                        <$k>::kind(&()),
                        o.metadata.name.clone().unwrap_or_default()
                    ),
                    o.metadata.resource_version.clone().unwrap_or_default(),
                );
            }
        };
    }
    collect!(Registry);
    collect!(RetentionPolicy);
    collect!(ConfigMap);
    collect!(Service);
    collect!(StatefulSet);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_rest_the_operator_writes_nothing() {
    let real = TestRegistry::start();
    Seeder::new(&real.url, None)
        .push_image("app/web", Some("v1"), "w1", "2025-01-01T00:00:00Z")
        .await;
    let h = Harness::start("rest").await;
    let (c, ns) = (&h.cluster, h.ns.clone());
    let regs: Api<Registry> = Api::namespaced(c.client.clone(), &ns);
    regs.create(&PostParams::default(), &managed_registry("main"))
        .await
        .unwrap();
    regs.create(
        &PostParams::default(),
        &object(
            json!({"apiVersion": "registry-operator.dev/v1alpha1", "kind": "Registry",
            "metadata": {"name": "dist"}, "spec": {"external": {"url": real.url}}}),
        ),
    )
    .await
    .unwrap();
    let rps: Api<RetentionPolicy> = Api::namespaced(c.client.clone(), &ns);
    rps.create(
        &PostParams::default(),
        &object(json!({"apiVersion": "registry-operator.dev/v1alpha1", "kind": "RetentionPolicy",
            "metadata": {"name": "web"}, "spec": {"registryRef": {"name": "dist"}, "mode": "Plan",
            "schedule": "0 3 * * *", "repositories": {"include": ["**"]}, "keep": [{"mostRecent": 1}]}})),
    )
    .await
    .unwrap();
    wait_for("both Registries' status and the policy's run", || async {
        let main = regs.get("main").await.ok()?.status?.config_hash;
        let dist = regs.get("dist").await.ok()?.status?.health;
        let run = rps.get("web").await.ok()?.status?.last_run?.completion_time;
        (main.is_some() && dist.is_some() && run.is_some()).then_some(())
    })
    .await;
    // Let the last writes of the start (status after the first health check) land.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = versions(c, &ns).await;
    let writes_before = operator_writes(c, &h.operator.identity.username);
    // Three health-check intervals (2 s each) and a watch resync's worth of time.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let after = versions(c, &ns).await;
    let writes_after = operator_writes(c, &h.operator.identity.username);
    assert_eq!(before, after, "objects changed at rest");
    // The managed Registry is applied again on each periodic reconcile: server-side applies
    // of unchanged objects, which the API server answers without a new resourceVersion (above).
    // Nothing else is written: no status patch, no Event.
    assert_eq!(
        writes_before, writes_after,
        "the operator wrote at rest (from the audit log)"
    );
    h.stop().await;
}

/// The operator's writes other than server-side applies (`force=true` in the query).
fn operator_writes(c: &Cluster, user: &str) -> Vec<String> {
    c.audit_events(user)
        .into_iter()
        .filter(|e| !matches!(e.verb.as_str(), "get" | "list" | "watch"))
        .filter(|e| !(e.verb == "patch" && e.uri.contains("force=true")))
        .map(|e| format!("{} {}", e.verb, e.uri))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_label_on_the_statefulset_survives_and_a_kubectl_scale_is_set_back() {
    let c = cluster().await;
    let ns = c.namespace("ssa").await;
    let op = c.start_operator(&ns).await;
    let regs: Api<Registry> = Api::namespaced(c.client.clone(), &ns);
    regs.create(&PostParams::default(), &managed_registry("main"))
        .await
        .unwrap();
    let sts: Api<StatefulSet> = Api::namespaced(c.client.clone(), &ns);
    wait_for("the StatefulSet", || async {
        sts.get_opt("main").await.ok().flatten()
    })
    .await;

    // A second field manager (kubectl label) adds a label; then the spec changes, so the
    // operator applies the StatefulSet again.
    let (ok, _, err) = c.kubectl(&["-n", &ns, "label", "statefulset", "main", "team=platform"]);
    assert!(ok, "{err}");
    let before = sts.get("main").await.unwrap().metadata.generation;
    regs.patch(
        "main",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"gc": {"interval": "3h"}}})),
    )
    .await
    .unwrap();
    let after = wait_for("the operator to apply the changed config", || async {
        let s = sts.get("main").await.ok()?;
        (s.metadata.generation != before).then_some(s)
    })
    .await;
    let applied = after.metadata.generation.unwrap_or_default();
    assert_eq!(
        after
            .metadata
            .labels
            .unwrap_or_default()
            .get("team")
            .map(String::as_str),
        Some("platform"),
        "the user's label survives the operator's apply"
    );

    // kubectl scale takes spec.replicas from the operator; the operator takes it back.
    let (ok, _, err) = c.kubectl(&["-n", &ns, "scale", "statefulset", "main", "--replicas=3"]);
    assert!(ok, "{err}");
    // Scaled (one generation), then set back (another).
    wait_for("spec.replicas back at the Registry's 1", || async {
        let s = sts.get("main").await.ok()?;
        let set_back = s.metadata.generation.unwrap_or_default() >= applied + 2;
        (s.spec?.replicas == Some(1) && set_back).then_some(())
    })
    .await;
    op.stop(&c).await;
}
