//! Large listings: a `tags/list` or `_catalog` body larger than the client's body cap is read
//! as it arrives, completely — against the real CNCF distribution 2.8 registry, which sends
//! every tag in one body whatever `n` says, with the cap lowered to a few KiB; and a
//! repository of 500,000 tags (12 MiB in one body, over the default 8 MiB cap) on the
//! synthetic registry, which the real one cannot hold here.

mod support;

use registry_operator::oci::{ClientOptions, Credentials, Operation, RegistryClient};
use support::registry::TestRegistry;
use support::seed::Seeder;
use synthetic_registry::{RepoId, Server, Shape};

fn client(url: &str, opts: ClientOptions) -> RegistryClient {
    RegistryClient::new(url, Credentials::Anonymous, opts).expect("client")
}

fn capped(bytes: u64) -> ClientOptions {
    ClientOptions {
        max_body_bytes: bytes,
        ..ClientOptions::default()
    }
}

#[tokio::test]
async fn a_tag_list_larger_than_the_body_cap_is_read_completely_in_one_request() {
    let reg = TestRegistry::start();
    let s = Seeder::new(&reg.url, None);
    let img = s
        .push_image("team/app", Some("latest"), "one", "2026-01-01T00:00:00Z")
        .await;
    let mut expected = vec!["latest".to_string()];
    for k in 0..600 {
        let tag = format!("release-{k:07}");
        s.tag("team/app", &tag, &img).await;
        expected.push(tag);
    }
    expected.sort();
    // 601 tags are some 11 KiB of JSON: almost three times the cap
    let c = client(&reg.url, capped(4096));
    let tags = c.tags("team/app").await.unwrap();
    assert_eq!(tags, expected);
    assert_eq!(
        c.stats().get(Operation::Tags),
        1,
        "distribution sends every tag in one body"
    );
}

#[tokio::test]
async fn the_body_cap_still_bounds_manifests_and_error_answers() {
    let reg = TestRegistry::start();
    let s = Seeder::new(&reg.url, None);
    s.push_image("team/app", Some("v1"), "one", "2026-01-01T00:00:00Z")
        .await;
    // the manifest is some 400 bytes, the 404's error body some 100
    let c = client(&reg.url, capped(256));
    let e = c.get_manifest("team/app", "v1").await.unwrap_err();
    assert_eq!(e.reason(), "BodyTooLarge", "{e}");
    // a 404's body is read capped too, and still says what is missing
    let e = c.tags("no/such/repo").await.unwrap_err();
    assert_eq!(e.reason(), "NotFound", "{e}");
}

#[tokio::test]
async fn a_catalog_larger_than_the_body_cap_is_read_completely() {
    let reg = TestRegistry::start();
    let fleet = Seeder::new(&reg.url, None).seed_fleet(60, 1, 8).await;
    let c = client(&reg.url, capped(512));
    let repos = c.catalog().await.unwrap();
    assert_eq!(repos, fleet.keys().cloned().collect::<Vec<_>>());
}

#[tokio::test]
async fn a_repository_of_500000_tags_is_listed_completely() {
    let shape = Shape {
        repositories: 0,
        huge_tags: 500_000,
        ..Shape::default()
    };
    let server = Server::start(shape.clone(), "127.0.0.1:0", 2).expect("synthetic registry");
    let c = client(&server.url(), ClientOptions::default());
    let tags = c.tags(synthetic_registry::HUGE_REPOSITORY).await.unwrap();
    assert_eq!(tags.len(), 500_000);
    let expected = |k: u64| shape.tag_name(RepoId::Huge, k);
    assert_eq!(tags[0], expected(0));
    assert_eq!(tags[250_000], expected(250_000));
    assert_eq!(tags[499_998], expected(499_998));
    assert_eq!(tags[499_999], "latest");
    assert_eq!(server.stats().tags, 1, "one body of every tag");
}
