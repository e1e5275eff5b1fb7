//! Sign-in methods whose secrets zot reads from files, on the real Kubernetes API server of the
//! test run (`scripts/cluster.sh`; see tests/support/cluster.rs), with the operator as the
//! chart's ServiceAccount: status names a missing Secret and a missing key, the secret never
//! reaches the ConfigMap, and rotating it rolls the pods.
//!
//! Needs the control plane: run with scripts/test.sh (or set REGISTRY_OPERATOR_TEST_KUBECONFIG).

mod support;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, PostParams};
use registry_operator::api::Registry;
use registry_operator::controller::registry::builders::{
    CONFIG_HASH_ANNOTATION, SECRETS_HASH_ANNOTATION,
};
use serde_json::{json, Value};

use support::cluster::{wait_for, Harness};

fn object<K: serde::de::DeserializeOwned>(v: Value) -> K {
    serde_json::from_value(v).expect("fixture")
}

fn secret(name: &str, data: Value) -> Secret {
    object(
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": data}),
    )
}

async fn condition(regs: &Api<Registry>, type_: &str) -> Option<Condition> {
    regs.get("dir")
        .await
        .ok()?
        .status?
        .conditions
        .into_iter()
        .find(|c| c.type_ == type_ && c.status == "True")
}

async fn pod_annotation(sts: &Api<StatefulSet>, key: &str) -> Option<String> {
    sts.get_opt("dir")
        .await
        .ok()??
        .spec?
        .template
        .metadata?
        .annotations?
        .get(key)
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ldap_bind_secret_is_waited_for_checked_kept_out_of_the_configmap_and_rolls_zot_when_rotated(
) {
    let h = Harness::start("auth").await;
    let secrets: Api<Secret> = Api::namespaced(h.client.clone(), &h.ns);
    let regs: Api<Registry> = Api::namespaced(h.client.clone(), &h.ns);
    let sts: Api<StatefulSet> = Api::namespaced(h.client.clone(), &h.ns);
    let cms: Api<ConfigMap> = Api::namespaced(h.client.clone(), &h.ns);
    secrets
        .create(
            &PostParams::default(),
            &secret(
                "dir-htpasswd",
                json!({"htpasswd": "retention:$2y$05$abcdefghijklmnopqrstuv"}),
            ),
        )
        .await
        .unwrap();
    regs.create(
        &PostParams::default(),
        &object(
            json!({"apiVersion": "registry-operator.dev/v1alpha1", "kind": "Registry",
            "metadata": {"name": "dir"},
            "spec": {"version": "v2.1.20", "storage": {"size": "1Gi"}, "auth": {
                "htpasswdSecretRef": {"name": "dir-htpasswd"},
                "ldap": {"address": "ldap.example.org", "baseDN": "ou=people,dc=example,dc=org",
                         "userAttribute": "uid", "credentialsSecretRef": {"name": "dir-bind"}}}}}),
        ),
    )
    .await
    .unwrap();

    // The bind Secret does not exist yet: waiting, nothing applied.
    let waiting = wait_for("Reconciling=SecretNotFound", || async {
        condition(&regs, "Reconciling")
            .await
            .filter(|c| c.reason == "SecretNotFound")
    })
    .await;
    assert!(
        waiting.message.contains("dir-bind")
            && waiting
                .message
                .contains("spec.auth.ldap.credentialsSecretRef"),
        "{}",
        waiting.message
    );
    assert!(sts.get_opt("dir").await.unwrap().is_none());

    // It exists, under another key: stalled, naming the key zot needs.
    secrets
        .create(
            &PostParams::default(),
            &secret("dir-bind", json!({"bind.json": "{}"})),
        )
        .await
        .unwrap();
    let stalled = wait_for("Stalled=SecretInvalid", || async {
        condition(&regs, "Stalled")
            .await
            .filter(|c| c.reason == "SecretInvalid")
    })
    .await;
    assert!(
        stalled.message.contains("has no key \"credentials.json\""),
        "{}",
        stalled.message
    );

    // The file zot reads: applied, the password nowhere in the ConfigMap, the digest on the pods.
    let bind = |password: &str| {
        secret(
            "dir-bind",
            json!({"credentials.json": format!(r#"{{"bindDN": "cn=zot,dc=example,dc=org", "bindPassword": "{password}"}}"#)}),
        )
    };
    secrets
        .replace("dir-bind", &PostParams::default(), &bind("first-Pa55"))
        .await
        .unwrap();
    let first = wait_for("the secrets hash on the pod template", || async {
        pod_annotation(&sts, SECRETS_HASH_ANNOTATION).await
    })
    .await;
    let config = cms.get("dir-config").await.unwrap().data.unwrap()["config.json"].clone();
    assert!(
        config.contains("\"credentialsFile\": \"/secrets/ldap/credentials.json\""),
        "{config}"
    );
    assert!(
        !config.contains("first-Pa55") && !config.contains("cn=zot"),
        "{config}"
    );
    let config_hash = pod_annotation(&sts, CONFIG_HASH_ANNOTATION).await;

    // A rotated password rolls the pods; the config itself did not change.
    secrets
        .replace("dir-bind", &PostParams::default(), &bind("second-Pa55"))
        .await
        .unwrap();
    let second = wait_for("a new secrets hash", || async {
        pod_annotation(&sts, SECRETS_HASH_ANNOTATION)
            .await
            .filter(|h| *h != first)
    })
    .await;
    assert_ne!(first, second);
    assert_eq!(
        pod_annotation(&sts, CONFIG_HASH_ANNOTATION).await,
        config_hash
    );
    h.stop().await;
}
