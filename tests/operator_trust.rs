//! Credentials only where they are asked for, on the real control plane
//! (tests/support/cluster.rs) with the operator as the chart's ServiceAccount, against a
//! hostile registry on 127.0.0.1 that records every request's headers and a token realm on
//! 127.0.0.2 (tests/support/hostile.rs): no credentials before a challenge, none to a foreign
//! realm (`CredentialsAccepted=False`, `UntrustedTokenRealm`) until the Registry trusts it,
//! the URL host's docker-config entry rather than an alias's, and no value of a malformed
//! docker config in status or Events.
//!
//! Needs the control plane: run with scripts/test.sh (or set REGISTRY_OPERATOR_TEST_KUBECONFIG).

mod support;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use registry_operator::api::Registry;
use serde_json::{json, Value};

use support::cluster::{object, wait_for, Harness};
use support::hostile::{basic, Challenge, HostileRegistry, TokenRealm};

fn basic_auth_secret(name: &str, user: &str, password: &str) -> Secret {
    object(json!({
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/basic-auth",
        "metadata": {"name": name},
        "stringData": {"username": user, "password": password},
    }))
}

fn docker_config_secret(name: &str, config: &str) -> Secret {
    object(json!({
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
        "metadata": {"name": name},
        "stringData": {".dockerconfigjson": config},
    }))
}

fn external(name: &str, external: Value, aliases: &[&str]) -> Registry {
    object(json!({
        "apiVersion": "registry-operator.dev/v1alpha1", "kind": "Registry",
        "metadata": {"name": name},
        "spec": {"external": external, "aliases": aliases},
    }))
}

async fn registry_condition(regs: &Api<Registry>, name: &str, type_: &str) -> Option<Condition> {
    let r = regs.get(name).await.ok()?;
    r.status?.conditions.into_iter().find(|c| c.type_ == type_)
}

/// Waits until the Registry's condition `type_` has `status` and `reason`.
async fn registry_says(
    regs: &Api<Registry>,
    name: &str,
    type_: &str,
    status: &str,
    reason: &str,
) -> Condition {
    wait_for(&format!("{name}: {type_}={status} {reason}"), || async {
        registry_condition(regs, name, type_)
            .await
            .filter(|c| c.status == status && c.reason == reason)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_that_never_asks_gets_no_credentials_and_its_status_url_no_password() {
    let hostile = HostileRegistry::start(Challenge::Never).await;
    let h = Harness::start("trust-never").await;
    let secrets: Api<Secret> = Api::namespaced(h.client.clone(), &h.ns);
    secrets
        .create(
            &PostParams::default(),
            &basic_auth_secret("robot", "robot", "in-the-secret"),
        )
        .await
        .unwrap();
    let regs: Api<Registry> = Api::namespaced(h.client.clone(), &h.ns);
    let url = hostile
        .url()
        .replace("http://", "http://urluser:pw-in-url@");
    regs.create(
        &PostParams::default(),
        &external(
            "never",
            json!({"url": url, "credentialsSecretRef": {"name": "robot"}}),
            &[],
        ),
    )
    .await
    .unwrap();
    let c = registry_says(
        &regs,
        "never",
        "CredentialsAccepted",
        "Unknown",
        "CredentialsNotRequested",
    )
    .await;
    assert!(c.message.contains("were not sent"), "{}", c.message);
    registry_says(&regs, "never", "Ready", "True", "Available").await;
    let log = hostile.log();
    assert!(
        log.iter().any(|(r, _)| r.starts_with("GET /v2/_catalog")),
        "the credentials check ran: {log:#?}"
    );
    assert!(
        log.iter().all(|(_, a)| a.is_none()),
        "nothing asked, nothing sent: {log:#?}"
    );
    let status = regs.get("never").await.unwrap().status.unwrap();
    assert_eq!(status.url.as_deref(), Some(hostile.url()), "{status:?}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_url_hosts_docker_config_entry_goes_after_a_challenge_and_an_alias_only_when_listed() {
    let hostile = HostileRegistry::start(Challenge::Basic).await;
    let h = Harness::start("trust-entry").await;
    let secrets: Api<Secret> = Api::namespaced(h.client.clone(), &h.ns);
    // `0.example` sorts before `127.0.0.1:PORT`: the alias's entry must not win
    let mut auths = serde_json::Map::new();
    auths.insert(
        "0.example".into(),
        json!({"username": "alias-account", "password": "alias-pw"}),
    );
    auths.insert(
        hostile.host(),
        json!({"username": "url-account", "password": "url-pw"}),
    );
    let both = json!({ "auths": auths });
    secrets
        .create(
            &PostParams::default(),
            &docker_config_secret("both", &both.to_string()),
        )
        .await
        .unwrap();
    let alias_only = json!({"auths": {
        "0.example": {"username": "alias-account", "password": "alias-pw"},
    }});
    secrets
        .create(
            &PostParams::default(),
            &docker_config_secret("alias-only", &alias_only.to_string()),
        )
        .await
        .unwrap();
    let regs: Api<Registry> = Api::namespaced(h.client.clone(), &h.ns);
    regs.create(
        &PostParams::default(),
        &external(
            "both",
            json!({"url": hostile.url(), "credentialsSecretRef": {"name": "both"}}),
            &["0.example"],
        ),
    )
    .await
    .unwrap();
    registry_says(
        &regs,
        "both",
        "CredentialsAccepted",
        "True",
        "CredentialsAccepted",
    )
    .await;
    let log = hostile.log();
    assert_eq!(
        log[0].1, None,
        "the first request carries nothing: {log:#?}"
    );
    let url_account = basic("url-account", "url-pw");
    let sent: Vec<&str> = log.iter().filter_map(|(_, a)| a.as_deref()).collect();
    assert!(!sent.is_empty(), "{log:#?}");
    assert!(
        sent.iter().all(|a| *a == url_account),
        "only the URL host's entry is sent: {log:#?}"
    );

    // An entry for the alias only: a clear message, not a silent anonymous run …
    regs.create(
        &PostParams::default(),
        &external(
            "alias",
            json!({"url": hostile.url(), "credentialsSecretRef": {"name": "alias-only"}}),
            &["0.example"],
        ),
    )
    .await
    .unwrap();
    let ready = registry_says(&regs, "alias", "Ready", "False", "SecretInvalid").await;
    assert!(
        ready.message.contains(&hostile.host())
            && ready.message.contains("credentialsFallbackHosts"),
        "{}",
        ready.message
    );
    // … and the alias's entry once the Registry lists it as a fallback.
    let before = hostile.log().len();
    regs.patch(
        "alias",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"external": {"credentialsFallbackHosts": ["0.example"]}}})),
    )
    .await
    .unwrap();
    registry_says(
        &regs,
        "alias",
        "CredentialsAccepted",
        "True",
        "CredentialsAccepted",
    )
    .await;
    let alias_account = basic("alias-account", "alias-pw");
    assert!(
        hostile.log()[before..]
            .iter()
            .any(|(_, a)| a.as_deref() == Some(alias_account.as_str())),
        "{:#?}",
        hostile.log()
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_token_realm_gets_nothing_until_the_registry_trusts_it() {
    let realm = TokenRealm::start("127.0.0.2").await;
    let hostile = HostileRegistry::start(Challenge::Bearer(realm.realm())).await;
    let h = Harness::start("trust-realm").await;
    let secrets: Api<Secret> = Api::namespaced(h.client.clone(), &h.ns);
    secrets
        .create(
            &PostParams::default(),
            &basic_auth_secret("robot", "robot", "realm-pw"),
        )
        .await
        .unwrap();
    let regs: Api<Registry> = Api::namespaced(h.client.clone(), &h.ns);
    regs.create(
        &PostParams::default(),
        &external(
            "bearer",
            json!({"url": hostile.url(), "credentialsSecretRef": {"name": "robot"}}),
            &[],
        ),
    )
    .await
    .unwrap();
    let refused = registry_says(
        &regs,
        "bearer",
        "CredentialsAccepted",
        "False",
        "UntrustedTokenRealm",
    )
    .await;
    assert!(
        refused.message.contains("127.0.0.2") && refused.message.contains("trustedTokenRealms"),
        "{}",
        refused.message
    );
    registry_says(&regs, "bearer", "Ready", "False", "UntrustedTokenRealm").await;
    wait_for("an UntrustedTokenRealm event on the Registry", || async {
        Some(h.events("bearer", "UntrustedTokenRealm").await).filter(|e| !e.is_empty())
    })
    .await;
    assert!(
        realm.requests().is_empty(),
        "the foreign realm is never asked: {:#?}",
        realm.requests()
    );
    assert!(hostile.log().iter().all(|(_, a)| a.is_none()));

    // Trusting the realm is enough: it gets the credentials and grants the token.
    regs.patch(
        "bearer",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"external": {"trustedTokenRealms": ["127.0.0.2"]}}})),
    )
    .await
    .unwrap();
    registry_says(
        &regs,
        "bearer",
        "CredentialsAccepted",
        "True",
        "CredentialsAccepted",
    )
    .await;
    let robot = basic("robot", "realm-pw");
    let asked = realm.requests();
    assert!(!asked.is_empty());
    assert!(
        asked
            .iter()
            .all(|r| r.header("authorization") == Some(robot.as_str())),
        "{asked:#?}"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_value_of_a_malformed_docker_config_reaches_status_or_events() {
    let hostile = HostileRegistry::start(Challenge::Basic).await;
    let h = Harness::start("trust-malformed").await;
    let secrets: Api<Secret> = Api::namespaced(h.client.clone(), &h.ns);
    let value = "s3cr3t-Value-Never-Shown";
    secrets
        .create(
            &PostParams::default(),
            &docker_config_secret("broken", &format!(r#"{{"auths": "{value}"}}"#)),
        )
        .await
        .unwrap();
    let regs: Api<Registry> = Api::namespaced(h.client.clone(), &h.ns);
    regs.create(
        &PostParams::default(),
        &external(
            "broken",
            json!({"url": hostile.url(), "credentialsSecretRef": {"name": "broken"}}),
            &[],
        ),
    )
    .await
    .unwrap();
    let ready = registry_says(&regs, "broken", "Ready", "False", "SecretInvalid").await;
    assert!(
        ready
            .message
            .contains("`auths` must be an object, not a string"),
        "{}",
        ready.message
    );
    wait_for("a SecretInvalid event on the Registry", || async {
        Some(h.events("broken", "SecretInvalid").await).filter(|e| !e.is_empty())
    })
    .await;
    let status = serde_json::to_string(&regs.get("broken").await.unwrap().status).unwrap();
    assert!(!status.contains(value), "{status}");
    let events: Api<Event> = Api::namespaced(h.client.clone(), &h.ns);
    for e in events.list(&Default::default()).await.unwrap().items {
        let text = serde_json::to_string(&e).unwrap();
        assert!(!text.contains(value), "{text}");
    }
    assert!(
        hostile.log().iter().all(|(_, a)| a.is_none()),
        "unreadable credentials are not sent"
    );
    h.stop().await;
}
