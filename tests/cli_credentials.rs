//! Credentials go only where they are asked for — through the real CLI binary
//! (`retention plan -u … --password-stdin`) against a hostile registry on 127.0.0.1 that
//! records every request's headers (tests/support/hostile.rs), with a token realm on
//! 127.0.0.2 (another host to the client), and against a real distribution registry with
//! htpasswd to show that signing in still works.

mod support;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use support::hostile::{basic, Challenge, HostileRegistry, TokenRealm};
use support::registry::TestRegistry;
use support::seed::Seeder;

const POLICY: &str = "apiVersion: registry-operator.dev/v1alpha1\nkind: RetentionPolicy\nmetadata:\n  name: keep-one\n  namespace: team-a\nspec:\n  registryRef: {name: hostile}\n  mode: Plan\n  repositories: {include: [\"team/**\"]}\n  keep:\n    - mostRecent: 1\n";

/// `retention plan --registry URL -p POLICY` and `extra`, the password on standard input when
/// given; no docker config, no credentials in the environment.
fn plan(url: &str, extra: &[&str], password: Option<&str>) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, POLICY).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_registry-operator"))
        .args(["retention", "plan", "--registry", url, "-p"])
        .arg(&policy)
        .args(["-o", "json"])
        .args(extra)
        .env_remove("REGISTRY_USERNAME")
        .env_remove("REGISTRY_PASSWORD")
        .env("DOCKER_CONFIG", dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(p) = password {
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(format!("{p}\n").as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn as_alice(url: &str, extra: &[&str]) -> Output {
    let mut args = vec!["-u", "alice", "--password-stdin"];
    args.extend_from_slice(extra);
    plan(url, &args, Some("s3cret"))
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registry_that_never_asks_gets_no_credentials_on_any_request() {
    let reg = HostileRegistry::start(Challenge::Never).await;
    let out = as_alice(reg.url(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let log = reg.log();
    assert!(
        log.iter().any(|(r, _)| r.starts_with("GET /v2/_catalog")),
        "the plan read the catalog: {log:#?}"
    );
    assert!(
        log.iter().all(|(_, auth)| auth.is_none()),
        "nothing was asked, nothing is sent: {log:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn basic_goes_only_after_a_basic_challenge_and_then_without_asking_again() {
    let reg = HostileRegistry::start(Challenge::Basic).await;
    let out = as_alice(reg.url(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let log = reg.log();
    assert_eq!(
        log[0].1, None,
        "the first request carries nothing: {log:#?}"
    );
    let alice = basic("alice", "s3cret");
    let asked = log.iter().filter(|(_, a)| a.is_none()).count();
    assert_eq!(
        asked, 1,
        "one challenge per client, then Basic goes along: {log:#?}"
    );
    assert!(
        log[1..]
            .iter()
            .all(|(_, a)| a.as_deref() == Some(alice.as_str())),
        "{log:#?}"
    );
    assert!(log.iter().any(|(r, _)| r.starts_with("GET /v2/_catalog")));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_realm_on_another_host_gets_nothing_and_the_cli_exits_4_naming_it() {
    let realm = TokenRealm::start("127.0.0.2").await;
    let reg = HostileRegistry::start(Challenge::Bearer(realm.realm())).await;
    let out = as_alice(reg.url(), &[]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("127.0.0.2"), "{err}");
    assert!(err.contains("--trust-token-realm"), "{err}");
    assert!(
        realm.requests().is_empty(),
        "the foreign realm is not even asked: {:#?}",
        realm.requests()
    );
    let log = reg.log();
    assert!(log.iter().all(|(_, a)| a.is_none()), "{log:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_realm_the_user_trusts_gets_the_credentials_and_grants_the_token() {
    let realm = TokenRealm::start("127.0.0.2").await;
    let reg = HostileRegistry::start(Challenge::Bearer(realm.realm())).await;
    let out = as_alice(reg.url(), &["--trust-token-realm", "127.0.0.2"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let asked = realm.requests();
    assert!(!asked.is_empty());
    let alice = basic("alice", "s3cret");
    assert!(
        asked
            .iter()
            .all(|r| r.header("authorization") == Some(alice.as_str())),
        "{asked:#?}"
    );
    let log = reg.log();
    assert!(
        log.iter()
            .any(|(r, a)| r.starts_with("GET /v2/_catalog")
                && a.as_deref() == Some("Bearer granted")),
        "{log:#?}"
    );
    assert!(
        log.iter()
            .all(|(_, a)| a.as_deref() != Some(alice.as_str())),
        "the registry itself never sees the password: {log:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_anonymous_client_still_fetches_anonymous_tokens_from_any_realm() {
    let realm = TokenRealm::start("127.0.0.2").await;
    let reg = HostileRegistry::start(Challenge::Bearer(realm.realm())).await;
    let out = plan(reg.url(), &[], None);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let asked = realm.requests();
    assert!(!asked.is_empty(), "an anonymous token was fetched");
    assert!(asked.iter().all(|r| r.header("authorization").is_none()));
}

#[tokio::test(flavor = "multi_thread")]
async fn signing_in_to_a_real_registry_with_htpasswd_still_works_and_a_wrong_password_exits_4() {
    let real = TestRegistry::start_with_auth("alice", "s3cret");
    let seeder = Seeder::new(&real.url, real.auth.clone());
    for (tag, day) in [
        ("v1", "2026-01-01T00:00:00Z"),
        ("v2", "2026-01-02T00:00:00Z"),
    ] {
        seeder
            .push_image("team/app", Some(tag), &format!("app-{tag}"), day)
            .await;
    }
    let out = as_alice(&real.url, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["summary"]["plannedDeletions"], 1, "{report}");
    let out = plan(
        &real.url,
        &["-u", "alice", "--password-stdin"],
        Some("wrong"),
    );
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
}

/// `registry check URL --username alice --password-stdin`.
fn check_as_alice(url: &str) -> Output {
    let home = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_registry-operator"))
        .args([
            "registry",
            "check",
            url,
            "--username",
            "alice",
            "--password-stdin",
        ])
        .env_remove("REGISTRY_USERNAME")
        .env_remove("REGISTRY_PASSWORD")
        .env("DOCKER_CONFIG", home.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"s3cret\n").unwrap();
    child.wait_with_output().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn registry_check_says_the_credentials_were_not_requested_rather_than_accepted() {
    let never = HostileRegistry::start(Challenge::Never).await;
    let out = check_as_alice(never.url());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("credentials not requested"), "{said}");
    assert!(never.log().iter().all(|(_, a)| a.is_none()));
    let asks = HostileRegistry::start(Challenge::Basic).await;
    let out = check_as_alice(asks.url());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("credentials accepted"), "{said}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registry_offering_basic_and_bearer_in_two_headers_gets_a_token_not_the_password() {
    use registry_operator::oci::{ClientOptions, Credentials, RegistryClient};
    use support::http::{serve, Request, Response};
    let realm = TokenRealm::start("127.0.0.1").await;
    let bearer = format!(r#"Bearer realm="{}",service="hostile""#, realm.realm());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Option<String>>::new()));
    let record = seen.clone();
    let server = serve(move |req: Request| {
        let auth = req.header("authorization").map(str::to_string);
        record.lock().unwrap().push(auth.clone());
        let bearer = bearer.clone();
        async move {
            if auth.as_deref() == Some("Bearer granted") {
                return Response::json(200, &serde_json::json!({"repositories": ["a"]})).into();
            }
            Response::status(401)
                .header("www-authenticate", r#"Basic realm="hostile""#)
                .header("www-authenticate", &bearer)
                .into()
        }
    })
    .await;
    let client = RegistryClient::new(
        &server.url,
        Credentials::basic("alice", "s3cret"),
        ClientOptions::default(),
    )
    .unwrap();
    assert_eq!(client.catalog().await.unwrap(), vec!["a"]);
    let alice = basic("alice", "s3cret");
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.iter().all(|a| a.as_deref() != Some(alice.as_str())),
        "{seen:?}"
    );
    assert_eq!(
        realm.requests()[0].header("authorization"),
        Some(alice.as_str()),
        "the realm on the registry's host gets the credentials"
    );
}
