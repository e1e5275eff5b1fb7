//! The admin's lockdown on the real control plane: the operator runs as the chart's
//! ServiceAccount with the flags the chart renders from its `lockdown:` values, and a tenant
//! holding only the chart's Registry-editor role (impersonated, as `kubectl --as` does) creates
//! the Registries. A foreign image or an unlabelled Secret gets `Ready=False` with its reason and
//! nothing applied; the chart's default roles keep ClusterRetentionPolicy write from `edit` and
//! `admin` while `view` reads them.
//!
//! A test binary of its own: the role test aggregates ClusterRoles into the cluster-wide
//! `edit`/`admin`/`view`. Needs the control plane (scripts/test.sh).

mod support;

use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, RoleBinding};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use registry_operator::api::Registry;
use registry_operator::controller::context::Settings;
use serde_json::{json, Value};

use support::cluster::{condition, object, root, tool, wait_for, Cluster, TEST_MANAGER};

/// `helm template` of the chart for release `release` in `namespace` with `--set` values —
/// and loopback registries allowed: the tests' registries listen on 127.0.0.1 (the chart's
/// default refuses loopback, tests/operator_address.rs shows that).
fn chart(release: &str, namespace: &str, sets: &[&str]) -> Vec<Value> {
    let mut cmd = Command::new(tool("helm"));
    cmd.args(["template", release, "charts/registry-operator"])
        .args(["--namespace", namespace])
        .args(["--set", "lockdown.allowLoopbackRegistries=true"])
        .current_dir(root());
    for s in sets {
        cmd.args(["--set", s]);
    }
    let out = cmd.output().expect("helm runs (scripts/setup.sh)");
    assert!(
        out.status.success(),
        "helm template failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    serde_yaml::Deserializer::from_str(&text)
        .filter_map(|d| serde::Deserialize::deserialize(d).ok())
        .filter(|v: &Value| !v.is_null())
        .collect()
}

/// The operator's settings from the arguments the chart gives its container, with fast health
/// checks and backoff for the test.
fn chart_settings(objects: &[Value]) -> Settings {
    use clap::Parser;
    use registry_operator::cli::{Cli, Command};
    let deploy = objects
        .iter()
        .find(|o| o["kind"] == "Deployment")
        .expect("the chart renders the operator's Deployment");
    let args = deploy["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .expect("container args")
        .iter()
        .map(|a| a.as_str().expect("string args").to_string());
    let argv = std::iter::once("registry-operator".to_string()).chain(args);
    let settings = match Cli::try_parse_from(argv) {
        Ok(Cli {
            command: Command::Run(args),
        }) => args.settings(),
        other => panic!("the chart's arguments are not a `run` the operator accepts: {other:?}"),
    };
    Settings {
        health_interval: Duration::from_secs(2),
        backoff_base: Duration::from_millis(200),
        backoff_max: Duration::from_secs(2),
        ..settings
    }
}

/// The chart's ClusterRole whose name ends in `suffix`.
fn cluster_role(objects: &[Value], suffix: &str) -> Value {
    objects
        .iter()
        .find(|o| {
            o["kind"] == "ClusterRole"
                && o["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.ends_with(suffix))
        })
        .unwrap_or_else(|| panic!("the chart renders no ClusterRole *{suffix}"))
        .clone()
}

/// A client of the cluster admin that impersonates `user` (as `kubectl --as=user` does): the
/// API server authorises each request as that user.
async fn impersonating(cluster: &Cluster, user: &str) -> kube::Client {
    let kc = Kubeconfig::read_from(&cluster.kubeconfig).expect("the admin kubeconfig");
    let mut config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("a usable kubeconfig");
    config.auth_info.impersonate = Some(user.to_string());
    config.auth_info.impersonate_groups = Some(vec!["system:authenticated".to_string()]);
    kube::Client::try_from(config).expect("an impersonating client")
}

/// Whether the API server lets `user` do `verb` on `resource` of registry-operator.dev (or of
/// the core group with `group` empty), in `namespace` (None: cluster-wide).
async fn allowed(
    cluster: &Cluster,
    user: &str,
    verb: &str,
    group: &str,
    resource: &str,
    namespace: Option<&str>,
) -> bool {
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.to_string()),
            groups: Some(vec!["system:authenticated".to_string()]),
            resource_attributes: Some(ResourceAttributes {
                group: Some(group.to_string()),
                resource: Some(resource.to_string()),
                verb: Some(verb.to_string()),
                namespace: namespace.map(str::to_string),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    };
    Api::<SubjectAccessReview>::all(cluster.client.clone())
        .create(&PostParams::default(), &review)
        .await
        .expect("a SubjectAccessReview")
        .status
        .is_some_and(|s| s.allowed)
}

/// Waits for the Registry's `Ready` condition to be False with `reason`; returns its message.
async fn refused(api: &Api<Registry>, name: &str, reason: &str) -> String {
    wait_for(&format!("{name}: Ready=False/{reason}"), || async {
        let r = api.get(name).await.ok()?;
        let ready = condition(&r, "Ready")?;
        (ready.status == "False" && ready.reason == reason).then_some(ready.message)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_editor_gets_no_foreign_image_and_no_unlabelled_secret_under_the_chart_lockdown()
{
    let cluster = Cluster::connect().await;
    cluster.install_crds().await;
    let ns = cluster.namespace("lockdown").await;
    let release = format!("ro-{ns}");
    let label = "registry-operator.dev/usable=true";
    let objects = chart(&release, &ns, &[&format!("lockdown.secretLabel={label}")]);
    let settings = chart_settings(&objects);
    assert!(
        !settings.lockdown.allowed_images.is_empty(),
        "the chart's default allows only some images"
    );
    let operator = cluster.start_operator_with(&ns, settings).await;

    // The tenant: only the chart's Registry-editor role, bound in the namespace.
    let pp = PatchParams::apply(TEST_MANAGER).force();
    let editor = cluster_role(&objects, "-editor");
    let editor_name = editor["metadata"]["name"].as_str().unwrap().to_string();
    Api::<ClusterRole>::all(cluster.client.clone())
        .patch(&editor_name, &pp, &Patch::Apply(&editor))
        .await
        .unwrap();
    let user = format!("alice-{ns}");
    let binding: RoleBinding = object(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "registry-editor", "namespace": ns},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": editor_name},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }));
    Api::<RoleBinding>::namespaced(cluster.client.clone(), &ns)
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    // She may write Registries, and may not read the namespace's Secrets.
    wait_for("the editor's RoleBinding to take effect", || async {
        allowed(
            &cluster,
            &user,
            "create",
            "registry-operator.dev",
            "registries",
            Some(&ns),
        )
        .await
        .then_some(())
    })
    .await;
    assert!(!allowed(&cluster, &user, "get", "", "secrets", Some(&ns)).await);

    // The admin's Secrets: one carrying the label, one (a database password) without it.
    let secret_value = format!("hunter2-{}", rand::random::<u32>());
    let secrets: Api<Secret> = Api::namespaced(cluster.client.clone(), &ns);
    for (name, labels, data) in [
        (
            "users",
            json!({"registry-operator.dev/usable": "true"}),
            json!({"htpasswd": "admin:$2y$05$abcdefghijklmnopqrstuv"}),
        ),
        ("db", json!({}), json!({"htpasswd": secret_value})),
    ] {
        secrets
            .create(
                &PostParams::default(),
                &object(json!({"apiVersion": "v1", "kind": "Secret",
                    "metadata": {"name": name, "labels": labels}, "stringData": data})),
            )
            .await
            .unwrap();
    }

    let tenant = impersonating(&cluster, &user).await;
    let regs: Api<Registry> = Api::namespaced(tenant, &ns);
    let registry = |name: &str, spec: Value| -> Registry {
        object(
            json!({"apiVersion": "registry-operator.dev/v1alpha1", "kind": "Registry",
            "metadata": {"name": name}, "spec": spec}),
        )
    };
    for (name, spec) in [
        (
            "official",
            json!({"version": "v2.1.20", "auth": {"htpasswdSecretRef": {"name": "users"}}}),
        ),
        (
            "foreign",
            json!({"version": "v2.1.20", "image": "docker.io/library/busybox:latest"}),
        ),
        (
            "sneaky",
            json!({"version": "v2.1.20", "auth": {"htpasswdSecretRef": {"name": "db"}}}),
        ),
        (
            "insecure",
            json!({"external": {"url": "https://127.0.0.1:1", "insecureSkipTlsVerify": true}}),
        ),
    ] {
        regs.create(&PostParams::default(), &registry(name, spec))
            .await
            .unwrap_or_else(|e| panic!("the Registry editor may create {name}: {e}"));
    }

    let admin_regs: Api<Registry> = Api::namespaced(cluster.client.clone(), &ns);
    let sts: Api<StatefulSet> = Api::namespaced(cluster.client.clone(), &ns);
    let cms: Api<ConfigMap> = Api::namespaced(cluster.client.clone(), &ns);
    // The allowed image with a labelled Secret is deployed: the lockdown is not a wall.
    wait_for("the official registry's StatefulSet", || async {
        sts.get_opt("official").await.ok().flatten().map(|_| ())
    })
    .await;

    let message = refused(&admin_regs, "foreign", "ImageNotAllowed").await;
    assert!(
        message.contains("\"docker.io/library/busybox:latest\"")
            && message.contains("ghcr.io/project-zot/zot"),
        "{message}"
    );
    let message = refused(&admin_regs, "sneaky", "SecretNotAllowed").await;
    assert!(
        message.contains(&format!("Secret {ns}/db"))
            && message.contains("spec.auth.htpasswdSecretRef")
            && message.contains(label),
        "{message}"
    );
    let message = refused(&admin_regs, "insecure", "InsecureTLSNotAllowed").await;
    assert!(message.contains("https://127.0.0.1:1"), "{message}");

    // Nothing was applied for the refused ones, however long the operator has had.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for name in ["foreign", "sneaky"] {
        assert!(
            sts.get_opt(name).await.unwrap().is_none(),
            "{name}: StatefulSet"
        );
        assert!(
            cms.get_opt(&format!("{name}-config"))
                .await
                .unwrap()
                .is_none(),
            "{name}: ConfigMap"
        );
    }
    // The Secret's value is in no status and no Event.
    let statuses =
        serde_json::to_string(&admin_regs.list(&Default::default()).await.unwrap()).unwrap();
    assert!(
        !statuses.contains(&secret_value),
        "a status quotes the Secret"
    );
    let events = wait_for("the SecretNotAllowed Event", || async {
        let list = Api::<Event>::namespaced(cluster.client.clone(), &ns)
            .list(&Default::default())
            .await
            .ok()?;
        list.items
            .iter()
            .any(|e| e.reason.as_deref() == Some("SecretNotAllowed"))
            .then_some(list)
    })
    .await;
    assert!(
        !serde_json::to_string(&events)
            .unwrap()
            .contains(&secret_value),
        "an Event quotes the Secret"
    );

    // Labelling the Secret is the admin's way to allow it: the Registry is looked at again.
    secrets
        .patch(
            "db",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"labels": {"registry-operator.dev/usable": "true"}}}),
            ),
        )
        .await
        .unwrap();
    wait_for(
        "the relabelled Secret's Registry to be deployed",
        || async { sts.get_opt("sneaky").await.ok().flatten().map(|_| ()) },
    )
    .await;

    operator.stop(&cluster).await;
    let _ = Api::<ClusterRole>::all(cluster.client.clone())
        .delete(&editor_name, &DeleteParams::default())
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_charts_default_roles_keep_cluster_policy_write_from_edit_and_admin_and_let_view_read()
{
    let cluster = Cluster::connect().await;
    let ns = cluster.namespace("roles").await;
    let objects = chart(&format!("ro-{ns}"), &ns, &[]);
    let pp = PatchParams::apply(TEST_MANAGER).force();
    let roles: Api<ClusterRole> = Api::all(cluster.client.clone());
    let bindings: Api<ClusterRoleBinding> = Api::all(cluster.client.clone());
    let mut created_roles = Vec::new();
    for o in objects.iter().filter(|o| {
        o["kind"] == "ClusterRole"
            && o["metadata"]["labels"].as_object().is_some_and(|l| {
                l.keys()
                    .any(|k| k.starts_with("rbac.authorization.k8s.io/aggregate-to-"))
            })
    }) {
        let name = o["metadata"]["name"].as_str().unwrap().to_string();
        roles.patch(&name, &pp, &Patch::Apply(o)).await.unwrap();
        created_roles.push(name);
    }
    // The ClusterRetentionPolicy writer's role is rendered, for the platform team to bind.
    let writer = cluster_role(&objects, "-clusterretentionpolicy-editor");
    let writer_name = writer["metadata"]["name"].as_str().unwrap().to_string();
    roles
        .patch(&writer_name, &pp, &Patch::Apply(&writer))
        .await
        .unwrap();
    created_roles.push(writer_name.clone());

    let user = |who: &str| format!("{who}-{ns}");
    let mut created_bindings = Vec::new();
    for (who, role) in [
        ("editor", "edit"),
        ("admin", "admin"),
        ("viewer", "view"),
        ("platform", writer_name.as_str()),
    ] {
        let name = format!("{}-{who}", ns);
        let b: ClusterRoleBinding = object(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user(who)}],
        }));
        bindings.create(&PostParams::default(), &b).await.unwrap();
        created_bindings.push(name);
    }
    let group = "registry-operator.dev";
    // The aggregation controller has folded the chart's roles into edit, admin and view.
    for who in ["editor", "admin"] {
        wait_for(
            &format!("{who}: Registries through the aggregated role"),
            || async {
                allowed(
                    &cluster,
                    &user(who),
                    "create",
                    group,
                    "registries",
                    Some(&ns),
                )
                .await
                .then_some(())
            },
        )
        .await;
        assert!(
            allowed(
                &cluster,
                &user(who),
                "patch",
                group,
                "retentionpolicies",
                Some(&ns)
            )
            .await
        );
    }
    wait_for("viewer: Registries through the aggregated role", || async {
        allowed(
            &cluster,
            &user("viewer"),
            "list",
            group,
            "registries",
            Some(&ns),
        )
        .await
        .then_some(())
    })
    .await;

    for who in ["editor", "admin"] {
        for verb in ["create", "update", "patch", "delete"] {
            assert!(
                !allowed(
                    &cluster,
                    &user(who),
                    verb,
                    group,
                    "clusterretentionpolicies",
                    None
                )
                .await,
                "{who} may {verb} clusterretentionpolicies"
            );
        }
    }
    for verb in ["get", "list", "watch"] {
        assert!(
            allowed(
                &cluster,
                &user("viewer"),
                verb,
                group,
                "clusterretentionpolicies",
                None
            )
            .await,
            "viewer may not {verb} clusterretentionpolicies"
        );
    }
    assert!(
        !allowed(
            &cluster,
            &user("viewer"),
            "create",
            group,
            "clusterretentionpolicies",
            None
        )
        .await
    );
    assert!(
        allowed(
            &cluster,
            &user("platform"),
            "create",
            group,
            "clusterretentionpolicies",
            None
        )
        .await
    );

    // The same through `kubectl auth can-i --as`, as an admin would check it.
    let (_, out, _) = cluster.kubectl(&[
        "auth",
        "can-i",
        "create",
        "clusterretentionpolicies.registry-operator.dev",
        "--as",
        &user("admin"),
    ]);
    assert_eq!(out.trim(), "no");

    for b in created_bindings {
        let _ = bindings.delete(&b, &DeleteParams::default()).await;
    }
    for r in created_roles {
        let _ = roles.delete(&r, &DeleteParams::default()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_on_a_registry_the_lockdown_refuses_stalls_with_its_reason_and_sends_nothing() {
    use registry_operator::api::RetentionPolicy;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    // A listener on loopback that counts every connection: the registry the Registry names.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    let cluster = Cluster::connect().await;
    cluster.install_crds().await;
    let ns = cluster.namespace("lockdown-policy").await;
    // The binary's defaults: insecure TLS is refused without --allow-insecure-skip-tls-verify.
    let operator = cluster.start_operator(&ns).await;
    let client = cluster.client.clone();
    Api::<Secret>::namespaced(client.clone(), &ns)
        .create(
            &PostParams::default(),
            &object(json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/basic-auth",
                "metadata": {"name": "robot"}, "stringData": {"username": "robot", "password": "pw"}})),
        )
        .await
        .unwrap();
    let regs: Api<Registry> = Api::namespaced(client.clone(), &ns);
    regs.create(
        &PostParams::default(),
        &object(
            json!({"apiVersion": "registry-operator.dev/v1alpha1", "kind": "Registry",
            "metadata": {"name": "skip"}, "spec": {"external": {
                "url": format!("https://127.0.0.1:{port}"), "insecureSkipTlsVerify": true,
                "credentialsSecretRef": {"name": "robot"}}}}),
        ),
    )
    .await
    .unwrap();
    let rps: Api<RetentionPolicy> = Api::namespaced(client.clone(), &ns);
    rps.create(
        &PostParams::default(),
        &object(json!({"apiVersion": "registry-operator.dev/v1alpha1", "kind": "RetentionPolicy",
            "metadata": {"name": "prune"}, "spec": {"registryRef": {"name": "skip"}, "mode": "Enforce",
            "repositories": {"include": ["app/**"]}, "keep": [{"mostRecent": 1}]}})),
    )
    .await
    .unwrap();
    refused(&regs, "skip", "InsecureTLSNotAllowed").await;
    let message = wait_for("the policy: Ready=False/InsecureTLSNotAllowed", || async {
        let p = rps.get("prune").await.ok()?;
        let ready = condition(&p, "Ready")?;
        (ready.status == "False" && ready.reason == "InsecureTLSNotAllowed")
            .then_some(ready.message)
    })
    .await;
    assert!(message.contains("insecureSkipTlsVerify"), "{message}");
    // Several health intervals later, still not one connection to the registry.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "the operator connected"
    );
    operator.stop(&cluster).await;
}
