//! A kube-rs `Controller` over the project's `Registry` runs against the API test double,
//! converges, and then stops writing; a controller that rewrites status on every reconcile is
//! caught as a hot loop by the double's request log.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{CustomResourceExt, Resource, ResourceExt};
use kube_double::TestApiServer;
use registry_operator::api::Registry;
use serde_json::json;

const MANAGER: &str = "registry-operator-test";
const OPERATOR_USER: &str = "system:serviceaccount:registry-operator:controller";

struct Ctx {
    client: kube::Client,
    /// Misbehave: stamp the current time into status on every reconcile.
    stamp_time: bool,
}

async fn reconcile(reg: Arc<Registry>, ctx: Arc<Ctx>) -> Result<Action, kube::Error> {
    let ns = reg.namespace().unwrap_or_default();
    let name = reg.name_any();
    let owner = reg.controller_owner_ref(&()).expect("registry has a uid");
    let cm = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": format!("{name}-config"), "ownerReferences": [owner]},
        "data": {"version": reg.spec.version.clone().unwrap_or_default()},
    });
    let cms: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
    cms.patch(
        &format!("{name}-config"),
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&cm),
    )
    .await?;

    let url = format!("http://{name}.{ns}.svc:5000");
    let current = reg.status.as_ref();
    let up_to_date = current.is_some_and(|s| {
        s.observed_generation == reg.metadata.generation && s.url.as_deref() == Some(url.as_str())
    });
    if !up_to_date || ctx.stamp_time {
        let mut status = json!({"observedGeneration": reg.metadata.generation, "url": url});
        if ctx.stamp_time {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos();
            status["version"] = json!(nanos.to_string());
        }
        let regs: Api<Registry> = Api::namespaced(ctx.client.clone(), &ns);
        let body = json!({"apiVersion": "registry-operator.dev/v1alpha1", "kind": "Registry", "status": status});
        regs.patch_status(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await?;
    }
    Ok(Action::await_change())
}

fn error_policy(_: Arc<Registry>, _: &kube::Error, _: Arc<Ctx>) -> Action {
    Action::requeue(Duration::from_millis(200))
}

async fn start(stamp_time: bool) -> (TestApiServer, kube::Client, tokio::task::JoinHandle<()>) {
    let server = TestApiServer::start().await.expect("test apiserver starts");
    let client = server.client();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &Registry::crd())
        .await
        .expect("Registry CRD installs");
    // The controller gets its own identity so its API usage can be told apart from the test's.
    let operator = server.client_as(OPERATOR_USER);
    let regs: Api<Registry> = Api::all(operator.clone());
    let cms: Api<ConfigMap> = Api::all(operator.clone());
    let ctx = Arc::new(Ctx {
        client: operator,
        stamp_time,
    });
    let controller = Controller::new(regs, watcher::Config::default())
        .owns(cms, watcher::Config::default())
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {});
    (server, client, tokio::spawn(controller))
}

fn registry(version: &str) -> Registry {
    serde_json::from_value(json!({
        "apiVersion": "registry-operator.dev/v1alpha1",
        "kind": "Registry",
        "metadata": {"name": "zot", "namespace": "default"},
        "spec": {"version": version},
    }))
    .expect("registry fixture")
}

async fn wait_converged(regs: &Api<Registry>, cms: &Api<ConfigMap>, version: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let reg = regs.get("zot").await.expect("registry readable");
        let cm = cms.get_opt("zot-config").await.expect("configmap readable");
        let status_ok =
            reg.status.as_ref().and_then(|s| s.observed_generation) == reg.metadata.generation;
        let cm_ok = cm
            .and_then(|c| c.data)
            .and_then(|d| d.get("version").cloned())
            .as_deref()
            == Some(version);
        if status_ok && cm_ok {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "controller did not converge: {:?}",
            reg.status
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn settle(server: &TestApiServer) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let mut last = writes(server);
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = writes(server);
        if now == last {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "writes never settled ({now} so far)"
        );
        last = now;
    }
}

fn writes(server: &TestApiServer) -> usize {
    server.requests().iter().filter(|r| r.is_write()).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_controller_converges_and_then_stops_writing() {
    let (server, client, controller) = start(false).await;
    let regs: Api<Registry> = Api::namespaced(client.clone(), "default");
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    regs.create(&PostParams::default(), &registry("v2.1.8"))
        .await
        .unwrap();
    wait_converged(&regs, &cms, "v2.1.8").await;

    // Let the reconciles already queued (the owned ConfigMap's own events) drain; a controller
    // in a hot loop never gets here.
    settle(&server).await;
    let before = writes(&server);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        writes(&server),
        before,
        "writes continued after convergence: {:#?}",
        &server.requests()[before..]
    );

    // What it called is exactly what its RBAC must allow.
    let used: Vec<String> = server
        .api_usage(OPERATOR_USER)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        used,
        [
            "list core/configmaps",
            "patch core/configmaps",
            "watch core/configmaps",
            "list registry-operator.dev/registries",
            "watch registry-operator.dev/registries",
            "patch registry-operator.dev/registries/status",
        ]
    );

    // A spec change is picked up and converges again; generation moved, so status follows.
    regs.patch(
        "zot",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"version": "v2.1.9"}})),
    )
    .await
    .unwrap();
    wait_converged(&regs, &cms, "v2.1.9").await;
    assert_eq!(regs.get("zot").await.unwrap().metadata.generation, Some(2));

    // Deleting the Registry garbage-collects the ConfigMap it owns.
    regs.delete("zot", &DeleteParams::default()).await.unwrap();
    assert!(cms.get_opt("zot-config").await.unwrap().is_none());
    controller.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_that_rewrites_status_every_reconcile_shows_up_as_a_hot_loop() {
    let (server, client, controller) = start(true).await;
    let regs: Api<Registry> = Api::namespaced(client.clone(), "default");
    regs.create(&PostParams::default(), &registry("v2.1.8"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = writes(&server);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = writes(&server) - before;
    assert!(
        during > 10,
        "only {during} writes in 2s: the double did not surface the hot loop"
    );
    controller.abort();
}
