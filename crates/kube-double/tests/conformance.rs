//! Conformance-style tests: a real `kube::Client` against the double, checking the behaviour
//! controllers depend on.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::watcher;
use kube_double::{Options, TestApiServer};
use serde_json::{json, Value};

fn widget_crd() -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.test.kube-double.dev"},
        "spec": {
            "group": "test.kube-double.dev",
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "shortNames": ["wd"]},
            "scope": "Namespaced",
            "versions": [{
                "name": "v1",
                "served": true,
                "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "spec": {
                            "type": "object",
                            "required": ["size"],
                            "properties": {
                                "size": {"type": "integer", "minimum": 1, "maximum": 10},
                                "color": {"type": "string", "enum": ["red", "blue"], "default": "red"},
                                "max": {"type": "integer"},
                            },
                            "x-kubernetes-validations": [
                                {"rule": "!has(self.max) || self.size <= self.max", "message": "size must not exceed max"}
                            ]
                        },
                        "status": {
                            "type": "object",
                            "properties": {"ready": {"type": "boolean"}, "observedGeneration": {"type": "integer"}}
                        }
                    }
                }}
            }]
        }
    }))
    .expect("CRD fixture is valid")
}

async fn with_widgets(opts: Options) -> (TestApiServer, kube::Client, Api<DynamicObject>) {
    let server = TestApiServer::start_with(opts)
        .await
        .expect("server starts");
    let client = server.client();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &widget_crd())
        .await
        .expect("CRD created");
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("test.kube-double.dev", "v1", "Widget"),
        "widgets",
    );
    let widgets = Api::namespaced_with(client.clone(), "default", &ar);
    (server, client, widgets)
}

fn widget(name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "test.kube-double.dev/v1",
        "kind": "Widget",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .expect("widget fixture")
}

fn api_error(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn cm(name: &str, data: Value) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": data}))
        .expect("configmap fixture")
}

#[tokio::test]
async fn create_fills_server_fields_and_get_returns_the_stored_object() {
    let (_server, _client, widgets) = with_widgets(Options::default()).await;
    let created = widgets
        .create(&PostParams::default(), &widget("a", json!({"size": 2})))
        .await
        .unwrap();
    assert!(created.metadata.uid.is_some());
    assert!(created.metadata.creation_timestamp.is_some());
    assert_eq!(created.metadata.generation, Some(1));
    assert_eq!(
        created.data["spec"]["color"], "red",
        "schema default applied"
    );
    let got = widgets.get("a").await.unwrap();
    assert_eq!(
        got.metadata.resource_version,
        created.metadata.resource_version
    );
    assert_eq!(got.data["spec"], json!({"size": 2, "color": "red"}));
}

#[tokio::test]
async fn create_of_an_existing_name_is_already_exists_and_a_missing_get_is_not_found() {
    let (_server, _client, widgets) = with_widgets(Options::default()).await;
    widgets
        .create(&PostParams::default(), &widget("a", json!({"size": 2})))
        .await
        .unwrap();
    let dup = api_error(
        widgets
            .create(&PostParams::default(), &widget("a", json!({"size": 2})))
            .await
            .unwrap_err(),
    );
    assert_eq!((dup.code, dup.reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(
        dup.message,
        "widgets.test.kube-double.dev \"a\" already exists"
    );
    let missing = api_error(widgets.get("nope").await.unwrap_err());
    assert_eq!((missing.code, missing.reason.as_str()), (404, "NotFound"));
    assert_eq!(
        missing.message,
        "widgets.test.kube-double.dev \"nope\" not found"
    );
}

#[tokio::test]
async fn update_with_a_stale_resource_version_is_a_conflict() {
    let (_server, _client, widgets) = with_widgets(Options::default()).await;
    let first = widgets
        .create(&PostParams::default(), &widget("a", json!({"size": 2})))
        .await
        .unwrap();
    let mut newer = first.clone();
    newer.data["spec"]["size"] = json!(3);
    let updated = widgets
        .replace("a", &PostParams::default(), &newer)
        .await
        .unwrap();
    assert_eq!(updated.metadata.generation, Some(2));
    let mut stale = first.clone();
    stale.data["spec"]["size"] = json!(4);
    let err = api_error(
        widgets
            .replace("a", &PostParams::default(), &stale)
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    assert!(
        err.message.contains("the object has been modified"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn merge_json_and_strategic_patches_change_objects() {
    let server = TestApiServer::start().await.unwrap();
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    cms.create(
        &PostParams::default(),
        &cm("c", json!({"a": "1", "b": "2"})),
    )
    .await
    .unwrap();
    let pp = PatchParams::default();
    let merged = cms
        .patch(
            "c",
            &pp,
            &Patch::Merge(json!({"data": {"a": null, "c": "3"}})),
        )
        .await
        .unwrap();
    assert_eq!(
        serde_json::to_value(merged.data).unwrap(),
        json!({"b": "2", "c": "3"})
    );
    let ops: json_patch::Patch =
        serde_json::from_value(json!([{"op": "replace", "path": "/data/b", "value": "20"}]))
            .unwrap();
    let patched = cms.patch("c", &pp, &Patch::<()>::Json(ops)).await.unwrap();
    assert_eq!(patched.data.unwrap()["b"], "20");
    let smp = cms
        .patch(
            "c",
            &pp,
            &Patch::Strategic(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await
        .unwrap();
    assert_eq!(smp.metadata.labels.unwrap()["x"], "y");
}

#[tokio::test]
async fn server_side_apply_tracks_managers_and_reports_conflicts_unless_forced() {
    let (_server, _client, widgets) = with_widgets(Options::default()).await;
    let alice = PatchParams::apply("alice");
    let applied = widgets
        .patch("a", &alice, &Patch::Apply(widget("a", json!({"size": 2}))))
        .await
        .unwrap();
    assert_eq!(applied.data["spec"]["size"], 2);
    let managers: Vec<_> = applied
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .map(|m| (m.manager.unwrap(), m.operation.unwrap()))
        .collect();
    assert_eq!(managers, vec![("alice".to_string(), "Apply".to_string())]);

    // Re-applying the same configuration is a no-op: no new resourceVersion.
    let again = widgets
        .patch("a", &alice, &Patch::Apply(widget("a", json!({"size": 2}))))
        .await
        .unwrap();
    assert_eq!(
        again.metadata.resource_version,
        applied.metadata.resource_version
    );

    let bob = PatchParams::apply("bob");
    let err = api_error(
        widgets
            .patch("a", &bob, &Patch::Apply(widget("a", json!({"size": 5}))))
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    assert!(
        err.message.contains("conflict with \"alice\""),
        "{}",
        err.message
    );
    assert!(err.message.contains(".spec.size"), "{}", err.message);

    let forced = widgets
        .patch(
            "a",
            &bob.force(),
            &Patch::Apply(widget("a", json!({"size": 5}))),
        )
        .await
        .unwrap();
    assert_eq!(forced.data["spec"]["size"], 5);
    assert_eq!(forced.metadata.generation, Some(2));

    // alice drops a field she alone owned: the apiserver removes it.
    widgets
        .patch(
            "a",
            &alice,
            &Patch::Apply(widget("a", json!({"size": 5, "max": 9}))),
        )
        .await
        .unwrap();
    let dropped = widgets
        .patch("a", &alice, &Patch::Apply(widget("a", json!({"size": 5}))))
        .await
        .unwrap();
    assert!(
        dropped.data["spec"].get("max").is_none(),
        "{:?}",
        dropped.data
    );
}

#[tokio::test]
async fn status_writes_never_bump_generation_and_main_writes_ignore_status() {
    let (_server, _client, widgets) = with_widgets(Options::default()).await;
    widgets
        .create(&PostParams::default(), &widget("a", json!({"size": 2})))
        .await
        .unwrap();
    let status = PatchParams::apply("ctrl");
    let s = widgets
        .patch_status("a", &status, &Patch::Apply(json!({"apiVersion": "test.kube-double.dev/v1", "kind": "Widget", "status": {"ready": true}})))
        .await
        .unwrap();
    assert_eq!(s.data["status"]["ready"], true);
    assert_eq!(
        s.metadata.generation,
        Some(1),
        "status write bumped generation"
    );

    let main = widgets
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"ready": false}, "metadata": {"labels": {"l": "v"}}})),
        )
        .await
        .unwrap();
    assert_eq!(
        main.data["status"]["ready"], true,
        "main resource write changed status"
    );
    assert_eq!(
        main.metadata.generation,
        Some(1),
        "metadata write bumped generation"
    );

    let spec = widgets
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 3}})),
        )
        .await
        .unwrap();
    assert_eq!(spec.metadata.generation, Some(2));
}

#[tokio::test]
async fn invalid_custom_resources_are_rejected_with_the_apiservers_message() {
    let (_server, _client, widgets) = with_widgets(Options::default()).await;
    let err = api_error(
        widgets
            .create(
                &PostParams::default(),
                &widget("a", json!({"size": 0, "color": "green"})),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        err.message,
        "Widget.test.kube-double.dev \"a\" is invalid: [spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1, spec.color: Unsupported value: \"green\": supported values: \"red\", \"blue\"]"
    );
    let cel = api_error(
        widgets
            .create(
                &PostParams::default(),
                &widget("b", json!({"size": 5, "max": 3})),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(cel.message, "Widget.test.kube-double.dev \"b\" is invalid: spec: Invalid value: \"object\": size must not exceed max");
    let missing = api_error(
        widgets
            .create(&PostParams::default(), &widget("c", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        missing.message,
        "Widget.test.kube-double.dev \"c\" is invalid: spec.size: Required value"
    );
}

#[tokio::test]
async fn unknown_fields_are_pruned_silently_or_rejected_under_strict_validation() {
    let (_server, _client, widgets) = with_widgets(Options::default()).await;
    let pruned = widgets
        .create(
            &PostParams::default(),
            &widget("a", json!({"size": 1, "shape": "round"})),
        )
        .await
        .unwrap();
    assert!(pruned.data["spec"].get("shape").is_none());
    let strict = PatchParams {
        field_validation: Some(kube::api::ValidationDirective::Strict),
        ..PatchParams::default()
    };
    let err = api_error(
        widgets
            .patch(
                "a",
                &strict,
                &Patch::Merge(json!({"spec": {"shape": "round"}})),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 400);
    assert!(
        err.message.contains("unknown field \"spec.shape\""),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn label_and_field_selectors_filter_lists() {
    let server = TestApiServer::start().await.unwrap();
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    for (name, app) in [("a", "zot"), ("b", "zot"), ("c", "other")] {
        let mut c = cm(name, json!({}));
        c.metadata.labels = Some([("app".to_string(), app.to_string())].into());
        cms.create(&PostParams::default(), &c).await.unwrap();
    }
    let names = |l: kube::core::ObjectList<ConfigMap>| {
        l.items
            .into_iter()
            .map(|c| c.metadata.name.unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(
            cms.list(&ListParams::default().labels("app=zot"))
                .await
                .unwrap()
        ),
        ["a", "b"]
    );
    assert_eq!(
        names(
            cms.list(&ListParams::default().labels("app notin (zot)"))
                .await
                .unwrap()
        ),
        ["c"]
    );
    assert_eq!(
        names(
            cms.list(&ListParams::default().fields("metadata.name=b"))
                .await
                .unwrap()
        ),
        ["b"]
    );
    let other_ns: Api<ConfigMap> = Api::namespaced(server.client(), "kube-system");
    assert!(other_ns
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .is_empty());
}

#[tokio::test]
async fn namespaced_objects_need_an_existing_namespace() {
    let server = TestApiServer::start().await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(server.client(), "nowhere");
    let err = api_error(
        cms.create(&PostParams::default(), &cm("c", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 404);
    assert_eq!(err.message, "namespaces \"nowhere\" not found");
}

#[tokio::test]
async fn watch_streams_changes_in_order_from_a_resource_version() {
    let server = TestApiServer::start().await.unwrap();
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    let list = cms.list(&ListParams::default()).await.unwrap();
    let from = list.metadata.resource_version.unwrap();
    let mut stream = cms
        .watch(&WatchParams::default().timeout(10), &from)
        .await
        .unwrap()
        .boxed();
    cms.create(&PostParams::default(), &cm("w", json!({"k": "1"})))
        .await
        .unwrap();
    cms.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "2"}})),
    )
    .await
    .unwrap();
    cms.delete("w", &DeleteParams::default()).await.unwrap();
    let mut seen = Vec::new();
    let mut versions = Vec::new();
    while seen.len() < 3 {
        let ev = tokio::time::timeout(Duration::from_secs(5), stream.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        match ev {
            WatchEvent::Added(o) => {
                seen.push("ADDED");
                versions.push(o.metadata.resource_version.unwrap());
            }
            WatchEvent::Modified(o) => {
                seen.push("MODIFIED");
                versions.push(o.metadata.resource_version.unwrap());
            }
            WatchEvent::Deleted(o) => {
                seen.push("DELETED");
                versions.push(o.metadata.resource_version.unwrap());
            }
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => panic!("watch error {e:?}"),
        }
    }
    assert_eq!(seen, ["ADDED", "MODIFIED", "DELETED"]);
    let numbers: Vec<u64> = versions.iter().map(|v| v.parse().unwrap()).collect();
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{numbers:?}");
}

#[tokio::test]
async fn a_watch_from_a_compacted_version_gets_410_gone() {
    let server = TestApiServer::start().await.unwrap();
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    let from = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    cms.create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    server.compact();
    let mut stream = cms
        .watch(&WatchParams::default().timeout(5), &from)
        .await
        .unwrap()
        .boxed();
    match stream.try_next().await.unwrap() {
        Some(WatchEvent::Error(e)) => {
            assert_eq!((e.code, e.reason.as_str()), (410, "Expired"));
            assert!(
                e.message.starts_with("too old resource version"),
                "{}",
                e.message
            );
        }
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
}

#[tokio::test]
async fn a_reflector_relists_after_410_and_keeps_up() {
    let opts = Options {
        bookmark_interval: Duration::from_secs(3600),
        ..Options::default()
    };
    let server = TestApiServer::start_with(opts).await.unwrap();
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::default_namespaced(server.client());
    let writer = kube::runtime::reflector::store::Writer::<ConfigMap>::default();
    let reader = writer.as_reader();
    let stream = kube::runtime::reflector(writer, watcher(cms.clone(), watcher::Config::default()));
    let task = tokio::spawn(async move {
        let mut s = std::pin::pin!(stream);
        while s.next().await.is_some() {}
    });
    reader.wait_until_ready().await.unwrap();
    cms.create(&PostParams::default(), &cm("seen", json!({})))
        .await
        .unwrap();
    // Other kinds move the global version past the last one the ConfigMap watch saw...
    for i in 0..3 {
        let s: k8s_openapi::api::core::v1::Secret =
            serde_json::from_value(json!({"metadata": {"name": format!("s{i}")}})).unwrap();
        secrets.create(&PostParams::default(), &s).await.unwrap();
    }
    while reader.state().is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // ...then compaction plus a dropped connection makes its resume version too old.
    server.compact();
    server.expire_watches();
    cms.create(&PostParams::default(), &cm("late", json!({})))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while reader.state().len() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "reflector has {} objects",
            reader.state().len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let lists = server
        .requests()
        .iter()
        .filter(|r| r.verb == "list" && r.resource == "configmaps")
        .count();
    assert!(
        lists >= 2,
        "the reflector did not relist after 410 ({lists} lists)"
    );
    task.abort();
}

#[tokio::test]
async fn deleting_an_owner_collects_its_dependents_in_the_background() {
    let server = TestApiServer::start().await.unwrap();
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    let owner = cms
        .create(&PostParams::default(), &cm("owner", json!({})))
        .await
        .unwrap();
    let mut dep = cm("dependent", json!({}));
    dep.metadata.owner_references = Some(vec![
        k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: "owner".into(),
            uid: owner.metadata.uid.clone().unwrap(),
            controller: Some(true),
            ..Default::default()
        },
    ]);
    cms.create(&PostParams::default(), &dep).await.unwrap();
    cms.create(&PostParams::default(), &cm("bystander", json!({})))
        .await
        .unwrap();
    cms.delete("owner", &DeleteParams::default()).await.unwrap();
    let left: Vec<String> = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|c| c.metadata.name.unwrap())
        .collect();
    assert_eq!(left, ["bystander"]);
}

#[tokio::test]
async fn finalizers_hold_an_object_in_deletion_until_removed() {
    let server = TestApiServer::start().await.unwrap();
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    let mut c = cm("f", json!({}));
    c.metadata.finalizers = Some(vec!["example.com/cleanup".into()]);
    cms.create(&PostParams::default(), &c).await.unwrap();
    cms.delete("f", &DeleteParams::default()).await.unwrap();
    let held = cms.get("f").await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());
    let more = Patch::Merge(
        json!({"metadata": {"finalizers": ["example.com/cleanup", "example.com/late"]}}),
    );
    let refused = api_error(
        cms.patch("f", &PatchParams::default(), &more)
            .await
            .unwrap_err(),
    );
    assert_eq!(refused.code, 422);
    assert!(
        refused.message.contains("no new finalizers can be added"),
        "{}",
        refused.message
    );
    cms.patch(
        "f",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    let gone = api_error(cms.get("f").await.unwrap_err());
    assert_eq!(gone.code, 404);
}

#[tokio::test]
async fn the_request_log_records_verbs_resources_and_field_managers() {
    let (server, _client, widgets) = with_widgets(Options::default()).await;
    server.clear_requests();
    widgets
        .patch(
            "a",
            &PatchParams::apply("ctrl"),
            &Patch::Apply(widget("a", json!({"size": 1}))),
        )
        .await
        .unwrap();
    widgets.get("a").await.unwrap();
    let log = server.requests();
    let summary: Vec<(String, String, Option<String>)> = log
        .iter()
        .map(|r| (r.verb.clone(), r.rbac_resource(), r.field_manager.clone()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                "patch".to_string(),
                "widgets".to_string(),
                Some("ctrl".to_string())
            ),
            ("get".to_string(), "widgets".to_string(), None),
        ]
    );
    assert_eq!(
        log[0].patch_type.as_deref(),
        Some("application/apply-patch+yaml")
    );
    assert_eq!(log[0].namespace.as_deref(), Some("default"));
    assert_eq!(log.iter().filter(|r| r.is_write()).count(), 1);
}

#[tokio::test]
async fn deleting_a_crd_stops_serving_its_resources() {
    let (_server, client, widgets) = with_widgets(Options::default()).await;
    widgets
        .create(&PostParams::default(), &widget("a", json!({"size": 1})))
        .await
        .unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(client);
    let crd = crds.get("widgets.test.kube-double.dev").await.unwrap();
    let established = crd
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .any(|c| c.type_ == "Established" && c.status == "True");
    assert!(established);
    crds.delete("widgets.test.kube-double.dev", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(api_error(widgets.get("a").await.unwrap_err()).code, 404);
}

#[tokio::test]
async fn a_label_selector_watch_sees_objects_enter_and_leave_the_selection() {
    let server = TestApiServer::start().await.unwrap();
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    let from = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = cms
        .watch(&WatchParams::default().labels("app=zot").timeout(10), &from)
        .await
        .unwrap()
        .boxed();
    cms.create(&PostParams::default(), &cm("x", json!({})))
        .await
        .unwrap();
    let label = |v: Value| Patch::Merge(json!({"metadata": {"labels": {"app": v}}}));
    cms.patch("x", &PatchParams::default(), &label(json!("zot")))
        .await
        .unwrap();
    cms.patch("x", &PatchParams::default(), &label(json!("other")))
        .await
        .unwrap();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let ev = tokio::time::timeout(Duration::from_secs(5), stream.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        match ev {
            WatchEvent::Added(_) => seen.push("ADDED"),
            WatchEvent::Modified(_) => seen.push("MODIFIED"),
            WatchEvent::Deleted(_) => seen.push("DELETED"),
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(seen, ["ADDED", "DELETED"]);
}

#[tokio::test]
async fn generate_name_dry_run_and_deletecollection_behave_like_the_apiserver() {
    let server = TestApiServer::start().await.unwrap();
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    let mut c = cm("", json!({}));
    c.metadata.name = None;
    c.metadata.generate_name = Some("gen-".into());
    let made = cms.create(&PostParams::default(), &c).await.unwrap();
    let name = made.metadata.name.unwrap();
    assert!(name.starts_with("gen-") && name.len() == 9, "{name}");

    let dry = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    cms.create(&dry, &cm("dry", json!({}))).await.unwrap();
    assert!(
        cms.get_opt("dry").await.unwrap().is_none(),
        "a dry-run create stored the object"
    );

    let mut labelled = cm("l", json!({}));
    labelled.metadata.labels = Some([("batch".to_string(), "1".to_string())].into());
    cms.create(&PostParams::default(), &labelled).await.unwrap();
    cms.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("batch=1"),
    )
    .await
    .unwrap();
    let left: Vec<String> = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|c| c.metadata.name.unwrap())
        .collect();
    assert_eq!(left, [name]);
}

#[tokio::test]
async fn deleting_a_namespace_deletes_what_it_contains() {
    let server = TestApiServer::start().await.unwrap();
    let client = server.client();
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let ns = serde_json::from_value(json!({"metadata": {"name": "team"}})).unwrap();
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "team");
    cms.create(&PostParams::default(), &cm("c", json!({})))
        .await
        .unwrap();
    namespaces
        .delete("team", &DeleteParams::default())
        .await
        .unwrap();
    assert!(namespaces.get_opt("team").await.unwrap().is_none());
    let all: Api<ConfigMap> = Api::all(client);
    assert!(all
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .is_empty());
}

#[tokio::test]
async fn orphan_propagation_keeps_dependents_and_drops_the_reference() {
    let server = TestApiServer::start().await.unwrap();
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    let owner = cms
        .create(&PostParams::default(), &cm("owner", json!({})))
        .await
        .unwrap();
    let mut dep = cm("dependent", json!({}));
    dep.metadata.owner_references = Some(vec![
        k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: "owner".into(),
            uid: owner.metadata.uid.unwrap(),
            ..Default::default()
        },
    ]);
    cms.create(&PostParams::default(), &dep).await.unwrap();
    cms.delete("owner", &DeleteParams::orphan()).await.unwrap();
    let kept = cms.get("dependent").await.unwrap();
    assert!(kept
        .metadata
        .owner_references
        .unwrap_or_default()
        .is_empty());
}

#[tokio::test]
async fn the_kube_runtime_event_recorder_creates_and_updates_event_series() {
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};
    let server = TestApiServer::start().await.unwrap();
    let client = server.client();
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let target = cms
        .create(&PostParams::default(), &cm("target", json!({})))
        .await
        .unwrap();
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "test-controller".into(),
            instance: None,
        },
    );
    let reference = kube::Resource::object_ref(&target, &());
    let ev = Event {
        type_: EventType::Normal,
        reason: "Tested".into(),
        note: Some("hello".into()),
        action: "Test".into(),
        secondary: None,
    };
    recorder.publish(&ev, &reference).await.unwrap();
    recorder.publish(&ev, &reference).await.unwrap();
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::default_namespaced(client);
    let list = events.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].series.as_ref().map(|s| s.count), Some(2));
    let verbs: Vec<String> = server
        .requests()
        .iter()
        .filter(|r| r.group == "events.k8s.io")
        .map(|r| r.verb.clone())
        .collect();
    assert_eq!(verbs, ["create", "patch", "list"]);
    // Upstream serves the same objects as core/v1 Events, which `kubectl describe` reads.
    let core: Api<k8s_openapi::api::core::v1::Event> = Api::default_namespaced(server.client());
    let selector = "involvedObject.name=target,involvedObject.kind=ConfigMap";
    let described = core
        .list(&ListParams::default().fields(selector))
        .await
        .unwrap()
        .items;
    assert_eq!(described.len(), 1);
    assert_eq!(described[0].message.as_deref(), Some("hello"));
    assert_eq!(described[0].series.as_ref().map(|s| s.count), Some(Some(2)));
}

#[tokio::test]
async fn metadata_only_requests_get_partial_object_metadata() {
    let server = TestApiServer::start().await.unwrap();
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    cms.create(&PostParams::default(), &cm("m", json!({"big": "payload"})))
        .await
        .unwrap();
    let meta = cms.get_metadata("m").await.unwrap();
    assert_eq!(
        meta.types.as_ref().map(|t| t.kind.as_str()),
        Some("PartialObjectMetadata")
    );
    let list = cms.list_metadata(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    let metas: Api<kube::core::PartialObjectMeta<ConfigMap>> =
        Api::default_namespaced(server.client());
    let writer = kube::runtime::reflector::store::Writer::default();
    let reader = writer.as_reader();
    let stream = kube::runtime::reflector(writer, watcher(metas, watcher::Config::default()));
    let task = tokio::spawn(async move {
        let mut s = std::pin::pin!(stream);
        while s.next().await.is_some() {}
    });
    reader.wait_until_ready().await.unwrap();
    assert_eq!(reader.state().len(), 1);
    task.abort();
}

#[tokio::test]
async fn idle_watches_get_bookmarks_and_end_after_timeout_seconds() {
    let opts = Options {
        bookmark_interval: Duration::from_millis(200),
        ..Options::default()
    };
    let server = TestApiServer::start_with(opts).await.unwrap();
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    let from = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let started = std::time::Instant::now();
    let events: Vec<_> = cms
        .watch(
            &WatchParams {
                bookmarks: true,
                ..WatchParams::default()
            }
            .timeout(1),
            &from,
        )
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the watch outlived timeoutSeconds"
    );
    let bookmarks: Vec<String> = events
        .into_iter()
        .filter_map(|e| match e {
            WatchEvent::Bookmark(b) => Some(b.metadata.resource_version),
            _ => None,
        })
        .collect();
    assert!(!bookmarks.is_empty(), "no bookmark on an idle watch");
    assert!(
        bookmarks.iter().all(|rv| *rv == from),
        "{bookmarks:?} vs {from}"
    );
}

#[tokio::test]
async fn object_metadata_is_validated_and_secret_string_data_is_encoded() {
    let server = TestApiServer::start().await.unwrap();
    let client = server.client();
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let mut bad = cm("labelled", json!({}));
    bad.metadata.labels = Some([("app".to_string(), "not valid!".to_string())].into());
    let err = api_error(cms.create(&PostParams::default(), &bad).await.unwrap_err());
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    assert!(err.message.starts_with("ConfigMap \"labelled\" is invalid: metadata.labels: Invalid value: \"not valid!\": a valid label must be"), "{}", err.message);

    let services: Api<k8s_openapi::api::core::v1::Service> =
        Api::default_namespaced(client.clone());
    let svc = serde_json::from_value(
        json!({"metadata": {"name": "1zot"}, "spec": {"ports": [{"port": 5000}]}}),
    )
    .unwrap();
    let err = api_error(
        services
            .create(&PostParams::default(), &svc)
            .await
            .unwrap_err(),
    );
    assert!(err.message.contains("a DNS-1035 label"), "{}", err.message);

    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::default_namespaced(client);
    let s = serde_json::from_value(
        json!({"metadata": {"name": "creds"}, "stringData": {"password": "hunter2"}}),
    )
    .unwrap();
    let stored = secrets.create(&PostParams::default(), &s).await.unwrap();
    assert!(stored.string_data.is_none());
    assert_eq!(stored.data.unwrap()["password"].0, b"hunter2");
}

#[tokio::test]
async fn streaming_list_watchers_get_initial_events_and_the_end_bookmark() {
    let server = TestApiServer::start().await.unwrap();
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    cms.create(&PostParams::default(), &cm("before", json!({})))
        .await
        .unwrap();
    let writer = kube::runtime::reflector::store::Writer::<ConfigMap>::default();
    let reader = writer.as_reader();
    let stream = kube::runtime::reflector(
        writer,
        watcher(cms.clone(), watcher::Config::default().streaming_lists()),
    );
    let task = tokio::spawn(async move {
        let mut s = std::pin::pin!(stream);
        while s.next().await.is_some() {}
    });
    tokio::time::timeout(Duration::from_secs(5), reader.wait_until_ready())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reader.state().len(), 1);
    cms.create(&PostParams::default(), &cm("after", json!({})))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while reader.state().len() < 2 {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let lists = server
        .requests()
        .iter()
        .filter(|r| r.verb == "list")
        .count();
    assert_eq!(lists, 0, "a streaming-list watcher should not LIST");
    task.abort();
}

#[tokio::test]
async fn lists_are_paged_with_limit_and_continue() {
    let server = TestApiServer::start().await.unwrap();
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    for i in 0..5 {
        cms.create(&PostParams::default(), &cm(&format!("c{i}"), json!({})))
            .await
            .unwrap();
    }
    let first = cms.list(&ListParams::default().limit(2)).await.unwrap();
    assert_eq!(first.items.len(), 2);
    assert_eq!(first.metadata.remaining_item_count, Some(3));
    let token = first.metadata.continue_.clone().unwrap();
    let second = cms
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .unwrap();
    let third = cms
        .list(
            &ListParams::default()
                .limit(2)
                .continue_token(second.metadata.continue_.as_deref().unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(third.items.len(), 1);
    assert!(third.metadata.continue_.is_none());
    // A watcher pages through everything.
    let writer = kube::runtime::reflector::store::Writer::<ConfigMap>::default();
    let reader = writer.as_reader();
    let stream = kube::runtime::reflector(
        writer,
        watcher(cms.clone(), watcher::Config::default().page_size(2)),
    );
    let task = tokio::spawn(async move {
        let mut s = std::pin::pin!(stream);
        while s.next().await.is_some() {}
    });
    reader.wait_until_ready().await.unwrap();
    assert_eq!(reader.state().len(), 5);
    task.abort();
}

#[tokio::test]
async fn dependents_of_owners_that_do_not_exist_are_collected() {
    let server = TestApiServer::start().await.unwrap();
    let client = server.client();
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let owner = cms
        .create(&PostParams::default(), &cm("owner", json!({})))
        .await
        .unwrap();
    let reference = |uid: &str| k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: "owner".into(),
        uid: uid.into(),
        ..Default::default()
    };
    let mut wrong_uid = cm("wrong-uid", json!({}));
    wrong_uid.metadata.owner_references =
        Some(vec![reference("00000000-0000-4000-8000-000000000000")]);
    cms.create(&PostParams::default(), &wrong_uid)
        .await
        .unwrap();
    assert!(cms.get_opt("wrong-uid").await.unwrap().is_none());

    // An owner in another namespace does not count: owner references never cross namespaces.
    let other: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-system");
    let mut cross = cm("cross", json!({}));
    cross.metadata.owner_references = Some(vec![reference(owner.metadata.uid.as_deref().unwrap())]);
    other.create(&PostParams::default(), &cross).await.unwrap();
    assert!(other.get_opt("cross").await.unwrap().is_none());

    let mut fine = cm("fine", json!({}));
    fine.metadata.owner_references = Some(vec![reference(owner.metadata.uid.as_deref().unwrap())]);
    cms.create(&PostParams::default(), &fine).await.unwrap();
    assert!(cms.get_opt("fine").await.unwrap().is_some());
}

#[tokio::test]
async fn cluster_scoped_and_namespaced_paths_are_not_interchangeable() {
    let server = TestApiServer::start().await.unwrap();
    let client = server.client();
    let roles: Api<k8s_openapi::api::rbac::v1::ClusterRole> = Api::all(client.clone());
    let role =
        serde_json::from_value(json!({"metadata": {"name": "reader"}, "rules": []})).unwrap();
    let made = roles.create(&PostParams::default(), &role).await.unwrap();
    assert!(made.metadata.namespace.is_none());
    // A cluster-scoped kind has no namespaced path...
    let ar = ApiResource::erase::<k8s_openapi::api::rbac::v1::ClusterRole>(&());
    let namespaced: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &ar);
    assert_eq!(
        api_error(namespaced.get("reader").await.unwrap_err()).code,
        404
    );
    // ...and a namespaced object has no cluster-wide GET, only a cluster-wide list.
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    cms.create(&PostParams::default(), &cm("c", json!({})))
        .await
        .unwrap();
    let all: Api<ConfigMap> = Api::all(client);
    assert_eq!(api_error(all.get("c").await.unwrap_err()).code, 404);
    assert_eq!(
        all.list(&ListParams::default()).await.unwrap().items.len(),
        1
    );
}

#[tokio::test]
async fn kube_discovery_finds_builtins_and_crd_served_resources() {
    let (_server, client, _widgets) = with_widgets(Options::default()).await;
    let discovery = kube::Discovery::new(client).run().await.unwrap();
    let (ar, caps) = discovery
        .resolve_gvk(&GroupVersionKind::gvk(
            "test.kube-double.dev",
            "v1",
            "Widget",
        ))
        .unwrap();
    assert_eq!(ar.plural, "widgets");
    assert_eq!(caps.scope, kube::discovery::Scope::Namespaced);
    assert!(caps
        .subresources
        .iter()
        .any(|(sub, _)| sub.plural == "widgets/status" || sub.plural == "status"));
    assert!(discovery
        .resolve_gvk(&GroupVersionKind::gvk("apps", "v1", "StatefulSet"))
        .is_some());
    assert!(discovery
        .resolve_gvk(&GroupVersionKind::gvk("coordination.k8s.io", "v1", "Lease"))
        .is_some());
}

#[tokio::test]
async fn a_statefulsets_volume_claim_templates_are_immutable_its_template_is_not() {
    use k8s_openapi::api::apps::v1::StatefulSet;
    let server = TestApiServer::start().await.unwrap();
    let sts: Api<StatefulSet> = Api::namespaced(server.client(), "default");
    let claim = |size: &str| {
        json!([{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": size}}}}])
    };
    let object = |size: &str, image: &str| -> StatefulSet {
        serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
            "spec": {"serviceName": "db", "replicas": 1,
                     "selector": {"matchLabels": {"app": "db"}},
                     "template": {"metadata": {"labels": {"app": "db"}},
                                  "spec": {"containers": [{"name": "db", "image": image}]}},
                     "volumeClaimTemplates": claim(size)},
        }))
        .unwrap()
    };
    let apply = PatchParams::apply("test").force();
    sts.patch("db", &apply, &Patch::Apply(&object("1Gi", "db:1")))
        .await
        .unwrap();
    // The pod template and replicas may change.
    sts.patch("db", &apply, &Patch::Apply(&object("1Gi", "db:2")))
        .await
        .unwrap();
    sts.patch(
        "db",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 3}})),
    )
    .await
    .unwrap();
    // volumeClaimTemplates may not, by apply, merge patch or update.
    let err = api_error(
        sts.patch("db", &apply, &Patch::Apply(&object("2Gi", "db:2")))
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        err.message,
        "StatefulSet.apps \"db\" is invalid: spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"
    );
    let err = api_error(
        sts.patch(
            "db",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"volumeClaimTemplates": null}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(err.code, 422);
    let mut current = sts.get("db").await.unwrap();
    current.spec.as_mut().unwrap().service_name = Some("other".into());
    let err = api_error(
        sts.replace("db", &PostParams::default(), &current)
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 422, "serviceName is immutable too");
    let stored = sts.get("db").await.unwrap();
    let spec = stored.spec.unwrap();
    assert_eq!(spec.replicas, Some(3));
    assert_eq!(
        spec.volume_claim_templates.unwrap()[0]
            .spec
            .as_ref()
            .unwrap()
            .resources
            .as_ref()
            .unwrap()
            .requests
            .as_ref()
            .unwrap()["storage"]
            .0,
        "1Gi"
    );
}
