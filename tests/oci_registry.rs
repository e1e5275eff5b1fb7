//! The registry client against a real CNCF distribution 2.8 registry (`docker-registry`),
//! started and seeded by each test (see `tests/support`).

mod support;

use std::collections::BTreeMap;

use registry_operator::oci::{
    credentials_from_secret_data, media_types, ClientOptions, Credentials, DeleteOutcome,
    Operation, ReferrersSource, RegistryClient, TagCheck,
};
use support::registry::{RegistryOptions, TestRegistry};
use support::seed::Seeder;

fn client(url: &str, opts: ClientOptions) -> RegistryClient {
    RegistryClient::new(url, Credentials::Anonymous, opts).expect("client")
}

fn small_pages(n: u32) -> ClientOptions {
    ClientOptions {
        page_size: n,
        ..ClientOptions::default()
    }
}

#[tokio::test]
async fn health_check_reports_a_running_registry_as_healthy() {
    let reg = TestRegistry::start();
    let c = client(&reg.url, ClientOptions::default());
    let h = c.check().await.unwrap();
    assert_eq!(h.status, 200);
    assert!(!h.auth_required);
    assert_eq!(h.api_version.as_deref(), Some("registry/2.0"));
}

#[tokio::test]
async fn the_operator_metrics_count_a_real_registry_s_answers_by_status_class_and_time_them() {
    use registry_operator::controller::metrics::Metrics;
    let reg = TestRegistry::start();
    let metrics = Metrics::new();
    let opts = ClientOptions {
        observer: Some(std::sync::Arc::new(metrics.clone())),
        retry: registry_operator::oci::RetryPolicy {
            max_retries: 0,
            ..Default::default()
        },
        ..ClientOptions::default()
    };
    let c = client(&reg.url, opts.clone());
    assert_eq!(c.check().await.unwrap().status, 200);
    // a repository that does not exist: distribution answers 404
    assert!(c.tags("no/such-repo").await.is_err());
    // nothing listens on this loopback port: no answer at all
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    assert!(client(&closed_url, opts).check().await.is_err());
    let text = metrics.encode();
    for series in [
        "registry_operator_registry_requests_total{operation=\"Ping\",code=\"2xx\"} 1\n",
        "registry_operator_registry_requests_total{operation=\"Tags\",code=\"4xx\"} 1\n",
        "registry_operator_registry_requests_total{operation=\"Ping\",code=\"error\"} 1\n",
        "registry_operator_registry_request_duration_seconds_count{operation=\"Ping\"} 2\n",
        "registry_operator_registry_request_duration_seconds_count{operation=\"Tags\"} 1\n",
    ] {
        assert!(text.contains(series), "{series} missing from {text}");
    }
}

#[tokio::test]
async fn catalog_follows_link_pages_until_every_repository_is_listed() {
    let reg = TestRegistry::start();
    let fleet = Seeder::new(&reg.url, None).seed_fleet(120, 1, 8).await;
    let c = client(&reg.url, small_pages(7));
    let repos = c.catalog().await.unwrap();
    let expected: Vec<String> = fleet.keys().cloned().collect();
    assert_eq!(repos.len(), 120);
    assert_eq!(repos, expected);
    // 120 repositories in pages of 7: at least 18 pages were fetched
    assert!(c.stats().get(Operation::Catalog) >= 18, "{:?}", c.stats());
}

#[tokio::test]
async fn a_page_size_the_registry_refuses_falls_back_to_its_own_and_still_lists_everything() {
    // distribution refuses n > 1000 (400 PAGINATION_NUMBER_INVALID) and pages by 100 without n
    let reg = TestRegistry::start();
    Seeder::new(&reg.url, None).seed_fleet(105, 1, 8).await;
    let c = client(&reg.url, small_pages(5000));
    assert_eq!(c.catalog().await.unwrap().len(), 105);
    assert_eq!(c.stats().get(Operation::Catalog), 1 + 2);
    let repo = support::seed::fleet_repo_name(0);
    assert_eq!(c.tags(&repo).await.unwrap(), vec!["v1.0.0"]);
}

#[tokio::test]
async fn project_repositories_are_the_prefix_itself_and_everything_below_it() {
    let reg = TestRegistry::start();
    let s = Seeder::new(&reg.url, None);
    for repo in [
        "proj",
        "proj/api",
        "proj/team/web",
        "proj-other/api",
        "projx",
        "other/proj",
    ] {
        s.push_image(repo, Some("v1"), repo, "2026-01-01T00:00:00Z")
            .await;
    }
    let c = client(&reg.url, small_pages(2));
    assert_eq!(
        c.repositories_under("proj").await.unwrap(),
        vec!["proj", "proj/api", "proj/team/web"]
    );
    assert_eq!(
        c.repositories_under("proj/team/").await.unwrap(),
        vec!["proj/team/web"]
    );
    assert_eq!(
        c.repositories_under("Bad Prefix")
            .await
            .unwrap_err()
            .reason(),
        "InvalidReference"
    );
}

#[tokio::test]
async fn tag_listing_returns_every_tag_sorted_although_distribution_ignores_n() {
    let reg = TestRegistry::start();
    let fleet = Seeder::new(&reg.url, None).seed_fleet(1, 30, 1).await;
    let (repo, tags) = fleet.iter().next().unwrap();
    let c = client(&reg.url, small_pages(4));
    let listed = c.tags(repo).await.unwrap();
    let expected: Vec<String> = tags.keys().cloned().collect();
    assert_eq!(listed, expected);
    assert_eq!(listed.len(), 30);
    assert_eq!(
        c.stats().get(Operation::Tags),
        1,
        "distribution sends no Link on tags"
    );
}

#[tokio::test]
async fn tags_of_an_unknown_repository_are_not_found() {
    let reg = TestRegistry::start();
    let c = client(&reg.url, ClientOptions::default());
    let e = c.tags("no/such/repo").await.unwrap_err();
    assert_eq!(e.reason(), "NotFound", "{e}");
    assert!(e.to_string().contains("/v2/no/such/repo/tags/list"), "{e}");
}

#[tokio::test]
async fn head_and_get_of_an_oci_image_agree_on_digest_type_size_and_created() {
    let reg = TestRegistry::start();
    let s = Seeder::new(&reg.url, None);
    let img = s
        .push_image("team-a/app", Some("v1.0.0"), "one", "2026-03-04T05:06:07Z")
        .await;
    let c = client(&reg.url, ClientOptions::default());
    let head = c
        .head_manifest("team-a/app", "v1.0.0")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(head.digest, img.digest);
    assert_eq!(head.media_type, media_types::OCI_MANIFEST);
    assert_eq!(head.size, img.size());
    assert!(!head.is_index());
    let by_digest = c
        .head_manifest("team-a/app", &img.digest)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_digest, head);

    let m = c.get_manifest("team-a/app", "v1.0.0").await.unwrap();
    assert_eq!(m.digest, img.digest);
    assert_eq!(m.head(), head);
    let cfg = m.config_digest().unwrap();
    assert_eq!(Some(cfg.clone()), img.config_digest);
    let created = c.config_created("team-a/app", &cfg).await.unwrap();
    assert_eq!(
        created.map(|t| t.to_string()).as_deref(),
        Some("2026-03-04T05:06:07Z")
    );
    // the second lookup is served from the cache
    c.config_created("team-a/app", &cfg).await.unwrap();
    assert_eq!(c.stats().get(Operation::GetBlob), 1);
    assert_eq!(c.stats().get(Operation::HeadManifest), 2);
    assert_eq!(c.stats().mutating, 0);

    assert_eq!(c.head_manifest("team-a/app", "nope").await.unwrap(), None);
    assert_eq!(
        c.get_manifest("team-a/app", "nope")
            .await
            .unwrap_err()
            .reason(),
        "NotFound"
    );
}

#[tokio::test]
async fn a_multi_arch_index_exposes_its_children() {
    let reg = TestRegistry::start();
    let s = Seeder::new(&reg.url, None);
    let idx = s
        .push_index("team-a/multi", "v2", "multi", "2026-02-01T00:00:00Z")
        .await;
    let c = client(&reg.url, ClientOptions::default());
    let head = c
        .head_manifest("team-a/multi", "v2")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(head.digest, idx.digest);
    assert!(head.is_index());
    assert_eq!(head.media_type, media_types::OCI_INDEX);
    let m = c.get_manifest("team-a/multi", &idx.digest).await.unwrap();
    let kids: Vec<String> = m
        .children()
        .iter()
        .map(|d| d.digest().to_string())
        .collect();
    let expected: Vec<String> = idx.children.iter().map(|c| c.digest.clone()).collect();
    assert_eq!(kids, expected);
    assert_eq!(
        m.created_annotation().map(|t| t.to_string()).as_deref(),
        Some("2026-02-01T00:00:00Z")
    );
    for k in &idx.children {
        let h = c
            .head_manifest("team-a/multi", &k.digest)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(h.media_type, media_types::OCI_MANIFEST);
    }
}

#[tokio::test]
async fn deleting_by_digest_removes_every_sibling_tag_and_a_second_delete_is_success() {
    let reg = TestRegistry::start();
    let s = Seeder::new(&reg.url, None);
    let img = s
        .push_image("svc", Some("latest"), "a", "2026-01-01T00:00:00Z")
        .await;
    s.tag("svc", "v1", &img).await;
    s.tag("svc", "main-abc", &img).await;
    let other = s
        .push_image("svc", Some("v2"), "b", "2026-01-02T00:00:00Z")
        .await;
    let c = client(&reg.url, ClientOptions::default());

    // distribution cannot delete a tag alone: a typed error the caller can fall back on
    let e = c.delete_tag("svc", "v1").await.unwrap_err();
    assert_eq!(e.reason(), "TagDeleteUnsupported", "{e}");
    assert_eq!(
        c.tags("svc").await.unwrap(),
        vec!["latest", "main-abc", "v1", "v2"]
    );

    assert_eq!(
        c.delete_manifest("svc", &img.digest).await.unwrap(),
        DeleteOutcome::Deleted
    );
    assert_eq!(c.tags("svc").await.unwrap(), vec!["v2"]);
    assert_eq!(c.head_manifest("svc", "v1").await.unwrap(), None);
    assert_eq!(
        c.head_manifest("svc", "v2")
            .await
            .unwrap()
            .map(|h| h.digest),
        Some(other.digest)
    );
    assert_eq!(
        c.delete_manifest("svc", &img.digest).await.unwrap(),
        DeleteOutcome::AlreadyGone
    );
    assert_eq!(
        c.delete_manifest("never/existed", &img.digest)
            .await
            .unwrap(),
        DeleteOutcome::AlreadyGone
    );
    assert_eq!(c.stats().mutating, 4);
    assert_eq!(c.stats().get(Operation::DeleteManifest), 4);
}

#[tokio::test]
async fn a_registry_with_deletion_disabled_gives_a_typed_refusal() {
    let reg = TestRegistry::start_with(RegistryOptions {
        deletes_disabled: true,
        ..Default::default()
    });
    let img = Seeder::new(&reg.url, None)
        .push_image("svc", Some("v1"), "a", "2026-01-01T00:00:00Z")
        .await;
    let c = client(&reg.url, ClientOptions::default());
    let e = c.delete_manifest("svc", &img.digest).await.unwrap_err();
    assert_eq!(e.reason(), "DeleteNotAllowed", "{e}");
    assert_eq!(c.tags("svc").await.unwrap(), vec!["v1"]);
}

#[tokio::test]
async fn re_resolving_a_tag_before_delete_sees_a_re_push() {
    let reg = TestRegistry::start();
    let s = Seeder::new(&reg.url, None);
    let first = s
        .push_image("app", Some("stable"), "1", "2026-01-01T00:00:00Z")
        .await;
    let c = client(&reg.url, ClientOptions::default());
    assert!(matches!(
        c.check_tag("app", "stable", &first.digest).await.unwrap(),
        TagCheck::Unchanged(_)
    ));
    let second = s
        .push_image("app", Some("stable"), "2", "2026-01-02T00:00:00Z")
        .await;
    match c.check_tag("app", "stable", &first.digest).await.unwrap() {
        TagCheck::Moved(h) => assert_eq!(h.digest, second.digest),
        other => panic!("expected Moved, got {other:?}"),
    }
    c.delete_manifest("app", &second.digest).await.unwrap();
    assert_eq!(
        c.check_tag("app", "stable", &first.digest).await.unwrap(),
        TagCheck::Gone
    );
}

#[tokio::test]
async fn referrers_fall_back_to_the_tag_schema_on_distribution() {
    let reg = TestRegistry::start();
    let s = Seeder::new(&reg.url, None);
    let img = s
        .push_image("signed", Some("v1"), "img", "2026-01-01T00:00:00Z")
        .await;
    let bare = s
        .push_image("signed", Some("v2"), "bare", "2026-01-01T00:00:00Z")
        .await;
    let sig = s
        .push_referrer("signed", &img, "application/vnd.example.signature", "sig")
        .await;
    let sbom = s
        .push_referrer("signed", &img, "application/spdx+json", "sbom")
        .await;
    s.push_referrers_tag(
        "signed",
        &img,
        &[
            (&sig, "application/vnd.example.signature"),
            (&sbom, "application/spdx+json"),
        ],
    )
    .await;
    let c = client(&reg.url, ClientOptions::default());
    let r = c.referrers("signed", &img.digest).await.unwrap();
    assert_eq!(r.source, ReferrersSource::TagSchema);
    let digests: Vec<String> = r
        .descriptors
        .iter()
        .map(|d| d.digest().to_string())
        .collect();
    assert_eq!(digests, vec![sig.digest.clone(), sbom.digest.clone()]);
    let none = c.referrers("signed", &bare.digest).await.unwrap();
    assert!(none.descriptors.is_empty());

    let m = c.get_manifest("signed", &sig.digest).await.unwrap();
    assert_eq!(
        m.subject().map(|s| s.digest().to_string()),
        Some(img.digest.clone())
    );
    assert_eq!(
        m.artifact_type().as_deref(),
        Some("application/vnd.example.signature")
    );
}

#[tokio::test]
async fn basic_auth_works_with_the_right_password_and_is_refused_with_a_wrong_one() {
    let reg = TestRegistry::start_with_auth("alice", "correct horse");
    Seeder::new(&reg.url, reg.auth.clone())
        .push_image("private/app", Some("v1"), "p", "2026-01-01T00:00:00Z")
        .await;

    let good = RegistryClient::new(
        &reg.url,
        Credentials::basic("alice", "correct horse"),
        ClientOptions::default(),
    )
    .unwrap();
    assert_eq!(good.catalog().await.unwrap(), vec!["private/app"]);
    assert_eq!(good.tags("private/app").await.unwrap(), vec!["v1"]);
    let h = good.check().await.unwrap();
    assert!(h.status == 200 || h.status == 401);

    let wrong = RegistryClient::new(
        &reg.url,
        Credentials::basic("alice", "battery staple"),
        ClientOptions::default(),
    )
    .unwrap();
    let e = wrong.tags("private/app").await.unwrap_err();
    assert_eq!(e.reason(), "CredentialsRejected", "{e}");
    assert!(!e.to_string().contains("battery"), "{e}");
    assert_eq!(wrong.stats().retries, 0, "a 401 is not retried");

    let anon = client(&reg.url, ClientOptions::default());
    let h = anon.check().await.unwrap();
    assert!(
        h.auth_required,
        "401 on /v2/ is healthy but wants credentials"
    );
    assert_eq!(
        anon.catalog().await.unwrap_err().reason(),
        "CredentialsRequired"
    );

    // the same credentials from a dockerconfigjson Secret's data
    let host = reg.url.trim_start_matches("http://").to_string();
    let cfg =
        format!(r#"{{"auths":{{"{host}":{{"username":"alice","password":"correct horse"}}}}}}"#);
    let mut data = BTreeMap::new();
    data.insert(".dockerconfigjson".to_string(), cfg.into_bytes());
    let creds = credentials_from_secret_data(
        Some("kubernetes.io/dockerconfigjson"),
        &data,
        std::slice::from_ref(&host),
    )
    .unwrap()
    .expect("the entry for the registry's host");
    let from_secret = RegistryClient::new(&reg.url, creds, ClientOptions::default()).unwrap();
    assert_eq!(from_secret.tags("private/app").await.unwrap(), vec!["v1"]);

    // and from user info in the URL (percent-encoded), which never shows in the client
    let in_url = reg.url.replace("http://", "http://alice:correct%20horse@");
    let c = client(&in_url, ClientOptions::default());
    assert_eq!(c.tags("private/app").await.unwrap(), vec!["v1"]);
    assert!(!format!("{c:?}").contains("horse"));
}

#[tokio::test]
async fn tls_registries_are_trusted_through_a_custom_ca_or_an_explicit_skip() {
    let reg = TestRegistry::start_with(RegistryOptions {
        tls: true,
        ..Default::default()
    });
    assert!(reg.url.starts_with("https://"));
    let with_ca = client(
        &reg.url,
        ClientOptions {
            ca_pem: reg.ca_pem.clone(),
            ..ClientOptions::default()
        },
    );
    assert_eq!(with_ca.check().await.unwrap().status, 200);
    assert!(with_ca.catalog().await.unwrap().is_empty());

    let untrusted = client(&reg.url, ClientOptions::default());
    let e = untrusted.check().await.unwrap_err();
    assert_eq!(e.reason(), "RegistryUnreachable", "{e}");

    let skip = client(
        &reg.url,
        ClientOptions {
            insecure_skip_tls_verify: true,
            ..ClientOptions::default()
        },
    );
    assert_eq!(skip.check().await.unwrap().status, 200);
}

#[tokio::test]
async fn docker_schema2_images_and_manifest_lists_are_read_like_oci_ones() {
    let reg = TestRegistry::start();
    let s = Seeder::new(&reg.url, None);
    let img = s
        .push_docker_image("legacy", Some("v1"), "d", "2025-12-24T10:00:00Z", "amd64")
        .await;
    let list = s
        .push_docker_list("legacy", "multi", "l", "2025-12-25T10:00:00Z")
        .await;
    let c = client(&reg.url, ClientOptions::default());

    let h = c.head_manifest("legacy", "v1").await.unwrap().unwrap();
    assert_eq!(h.digest, img.digest);
    assert_eq!(h.media_type, media_types::DOCKER_MANIFEST);
    let m = c.get_manifest("legacy", "v1").await.unwrap();
    let cfg = m.config_digest().unwrap();
    assert_eq!(
        c.config_created("legacy", &cfg)
            .await
            .unwrap()
            .map(|t| t.to_string())
            .as_deref(),
        Some("2025-12-24T10:00:00Z")
    );
    assert_eq!(
        m.artifact_type(),
        None,
        "a Docker image config is not an artifact"
    );

    let h = c.head_manifest("legacy", "multi").await.unwrap().unwrap();
    assert_eq!(h.digest, list.digest);
    assert!(h.is_index());
    let m = c.get_manifest("legacy", "multi").await.unwrap();
    assert!(m.is_index());
    let kids: Vec<String> = m
        .children()
        .iter()
        .map(|d| d.digest().to_string())
        .collect();
    assert_eq!(
        kids,
        list.children
            .iter()
            .map(|c| c.digest.clone())
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn tags_deleted_between_listing_and_head_are_reported_as_vanished() {
    let reg = TestRegistry::start();
    let s = Seeder::new(&reg.url, None);
    let a = s
        .push_image("inv", Some("a"), "a", "2026-01-01T00:00:00Z")
        .await;
    let b = s
        .push_image("inv", Some("b"), "b", "2026-01-02T00:00:00Z")
        .await;
    let c = client(&reg.url, ClientOptions::default());
    let listed = c.tags("inv").await.unwrap();
    c.delete_manifest("inv", &b.digest).await.unwrap();
    let heads = c.head_tags("inv", &listed).await.unwrap();
    assert_eq!(heads.vanished, vec!["b"]);
    assert_eq!(heads.heads.len(), 1);
    assert_eq!(heads.heads["a"].digest, a.digest);
}

#[tokio::test]
async fn an_https_registry_whose_token_realm_is_plain_http_gets_no_credentials_sent_in_clear() {
    // The realm: a listener on 127.0.0.2 that counts connections (nothing may reach it).
    let realm = std::net::TcpListener::bind("127.0.0.2:0").unwrap();
    realm.set_nonblocking(true).unwrap();
    let realm_url = format!("http://{}/token", realm.local_addr().unwrap());
    let reg = TestRegistry::start_with(RegistryOptions {
        tls: true,
        token_realm: Some(realm_url),
        ..Default::default()
    });
    let c = RegistryClient::new(
        &reg.url,
        Credentials::basic("alice", "s3cret"),
        ClientOptions {
            ca_pem: reg.ca_pem.clone(),
            // trusted by name: only the downgrade to http refuses it
            trusted_token_realms: vec!["127.0.0.2".to_string()],
            ..ClientOptions::default()
        },
    )
    .unwrap();
    let e = c.tags("private/app").await.unwrap_err();
    assert_eq!(e.reason(), "UntrustedTokenRealm", "{e}");
    assert!(e.to_string().contains("not sent in clear"), "{e}");
    assert!(
        matches!(realm.accept(), Err(ref e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the plain-http realm was contacted"
    );
}
