//! `registry-operator registry check|ls` against a real distribution registry.

mod support;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use support::registry::TestRegistry;
use support::seed::Seeder;

fn cli(args: &[&str], stdin: Option<&str>) -> Output {
    cli_with_docker_config(args, stdin, None)
}

/// Runs the binary with an isolated docker config directory holding `docker_config`.
fn cli_with_docker_config(
    args: &[&str],
    stdin: Option<&str>,
    docker_config: Option<&str>,
) -> Output {
    let home = tempfile::tempdir().unwrap();
    if let Some(c) = docker_config {
        std::fs::write(home.path().join("config.json"), c).unwrap();
    }
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_registry-operator"));
    cmd.args(args)
        .env_remove("REGISTRY_USERNAME")
        .env_remove("REGISTRY_PASSWORD")
        .env("DOCKER_CONFIG", home.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(s) = stdin {
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

#[tokio::test]
async fn check_says_healthy_and_exits_zero() {
    let reg = TestRegistry::start();
    let out = cli(&["registry", "check", &reg.url], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("healthy (HTTP 200"),
        "{}",
        text(&out.stdout)
    );
    let out = cli(&["registry", "check", &reg.url, "-o", "json"], None);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["healthy"], true);
}

#[tokio::test]
async fn check_of_a_dead_registry_fails_with_exit_one_and_bad_input_with_two() {
    let out = cli(&["registry", "check", "http://127.0.0.1:1"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("unreachable"),
        "{}",
        text(&out.stderr)
    );
    let out = cli(&["registry", "check", "ftp://x"], None);
    assert_eq!(out.status.code(), Some(2));
    let out = cli(
        &[
            "registry",
            "ls",
            "http://127.0.0.1:1",
            "--prefix",
            "Not Valid",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

#[tokio::test]
async fn ls_lists_a_projects_repositories_tags_digests_and_ages() {
    let reg = TestRegistry::start();
    let s = Seeder::new(&reg.url, None);
    let img = s
        .push_image("shop/api", Some("v1"), "a", "2026-01-01T00:00:00Z")
        .await;
    s.tag("shop/api", "latest", &img).await;
    let idx = s
        .push_index("shop/web", "v2", "w", "2026-02-01T00:00:00Z")
        .await;
    s.push_image("other", Some("v1"), "o", "2026-01-01T00:00:00Z")
        .await;

    let out = cli(&["registry", "ls", &reg.url], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "other\nshop/api\nshop/web\n");

    let out = cli(
        &[
            "registry", "ls", &reg.url, "--prefix", "shop", "--tags", "-o", "json",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert_eq!(v[0]["repository"], "shop/api");
    assert_eq!(v[0]["tags"][0]["tag"], "latest");
    assert_eq!(v[0]["tags"][0]["digest"], img.digest.as_str());
    assert_eq!(v[0]["tags"][1]["created"], "2026-01-01T00:00:00Z");
    assert_eq!(v[1]["tags"][0]["digest"], idx.digest.as_str());
    assert_eq!(v[1]["tags"][0]["created"], "2026-02-01T00:00:00Z");

    let out = cli(
        &["registry", "ls", &reg.url, "--prefix", "shop", "--tags"],
        None,
    );
    let table = text(&out.stdout);
    assert!(table.starts_with("REPOSITORY"), "{table}");
    assert!(
        table.contains("shop/web") && table.contains("index"),
        "{table}"
    );
}

#[tokio::test]
async fn ls_and_check_take_credentials_from_stdin_or_docker_config_and_a_wrong_password_exits_four()
{
    let reg = TestRegistry::start_with_auth("bob", "s3cret");
    Seeder::new(&reg.url, reg.auth.clone())
        .push_image("p/app", Some("v1"), "x", "2026-01-01T00:00:00Z")
        .await;
    let ok = cli(
        &[
            "registry",
            "ls",
            &reg.url,
            "--username",
            "bob",
            "--password-stdin",
        ],
        Some("s3cret\n"),
    );
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok.stderr));
    assert_eq!(text(&ok.stdout), "p/app\n");
    let bad = cli(
        &[
            "registry",
            "ls",
            &reg.url,
            "--username",
            "bob",
            "--password-stdin",
        ],
        Some("guess\n"),
    );
    assert_eq!(bad.status.code(), Some(4), "credentials rejected");
    assert!(
        text(&bad.stderr).contains("unauthorized (401)")
            && text(&bad.stderr).contains("rejects the credentials"),
        "{}",
        text(&bad.stderr)
    );
    assert!(!text(&bad.stderr).contains("guess"));

    // check: GET /v2/ answers 401 to anyone; with credentials it also asks whether they work
    let args = [
        "registry",
        "check",
        &reg.url,
        "--username",
        "bob",
        "--password-stdin",
    ];
    let bad = cli(
        &args,
        Some(
            "guess
",
        ),
    );
    assert_eq!(bad.status.code(), Some(4), "{}", text(&bad.stdout));
    assert!(
        text(&bad.stderr).contains("rejects the credentials"),
        "{}",
        text(&bad.stderr)
    );
    let ok = cli(
        &args,
        Some(
            "s3cret
",
        ),
    );
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok.stderr));
    assert!(
        text(&ok.stdout).contains("credentials accepted"),
        "{}",
        text(&ok.stdout)
    );
    let anonymous = cli(&["registry", "check", &reg.url], None);
    assert_eq!(anonymous.status.code(), Some(0), "up, wants credentials");

    // the docker config entry for the host, with the base64 `auth` field
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode("bob:s3cret");
    let host = reg.url.trim_start_matches("http://");
    let config = format!(r#"{{"auths":{{"{host}":{{"auth":"{auth}"}}}}}}"#);
    let ok = cli_with_docker_config(&["registry", "ls", &reg.url], None, Some(&config));
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok.stderr));
    assert_eq!(text(&ok.stdout), "p/app\n");
}

#[tokio::test]
async fn check_of_a_refused_address_exits_two_naming_the_rule_and_sends_nothing() {
    // Only an address that would reach this host if the check failed: the metadata and
    // link-local rules are judged the same way (src/oci/address.rs's tests, `render -f` in
    // tests/cli_render.rs), and no test may risk a packet to them.
    let url = "http://0.0.0.0:5000";
    let out = cli(&["registry", "check", url], None);
    assert_eq!(out.status.code(), Some(2), "{url}");
    let err = text(&out.stderr);
    assert!(
        err.contains("not allowed by the unspecified-address rule"),
        "{url}: {err}"
    );
    // loopback stays allowed for the CLI run by hand
    let reg = TestRegistry::start();
    let out = cli(&["registry", "check", &reg.url], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[tokio::test(flavor = "multi_thread")]
async fn dev_seed_is_a_documented_command_that_fills_a_scratch_registry_as_its_help_says() {
    let help = cli(&["--help"], None);
    assert!(
        text(&help.stdout).contains("dev") && text(&help.stdout).contains("Seed a registry"),
        "{}",
        text(&help.stdout)
    );
    let reg = TestRegistry::start();
    let out = cli(
        &[
            "dev",
            "seed",
            "--registry",
            &reg.url,
            "--repos",
            "3",
            "--tags",
            "6",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("seeded 3 repositories x 6 tags"));
    let ls = cli(&["registry", "ls", &reg.url], None);
    assert_eq!(
        text(&ls.stdout),
        "project-00/service-0\nproject-00/service-1\nproject-00/service-2\n"
    );
    let c = registry_operator::oci::RegistryClient::new(
        &reg.url,
        registry_operator::oci::Credentials::Anonymous,
        registry_operator::oci::ClientOptions::default(),
    )
    .unwrap();
    let tags = c.tags("project-00/service-1").await.unwrap();
    assert_eq!(
        tags,
        ["latest", "v1.0.0", "v1.1.0", "v1.2.0", "v1.3.0", "v1.4.0"]
    );
    // `latest` is on the newest image, the fourth tag is a two-platform index
    let repo = "project-00/service-1";
    let head = |tag| c.head_manifest(repo, tag);
    let latest = head("latest").await.unwrap().unwrap();
    let newest = head("v1.4.0").await.unwrap().unwrap();
    let index = head("v1.3.0").await.unwrap().unwrap();
    assert_eq!(latest.digest, newest.digest);
    assert_eq!(index.media_type, "application/vnd.oci.image.index.v1+json");
}
