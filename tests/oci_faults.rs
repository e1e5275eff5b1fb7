//! The client through a fault-injecting proxy in front of a real distribution registry:
//! transient faults are retried to success, permanent ones are not, and a listing that
//! cannot be completed is an error — never a silently short list.

mod support;

use std::time::{Duration, Instant};

use registry_operator::oci::{
    ClientOptions, Credentials, OciError, Operation, RegistryClient, RetryPolicy,
};
use support::proxy::{Fault, FaultProxy, FaultRule};
use support::registry::TestRegistry;
use support::seed::{Fleet, Seeder};

fn fast_retries(max_retries: u32) -> ClientOptions {
    ClientOptions {
        retry: RetryPolicy {
            max_retries,
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(50),
            max_retry_after: Duration::from_secs(5),
        },
        page_size: 5,
        ..ClientOptions::default()
    }
}

async fn setup(repos: usize, tags: usize) -> (TestRegistry, FaultProxy, Fleet) {
    let reg = TestRegistry::start();
    let fleet = Seeder::new(&reg.url, None).seed_fleet(repos, tags, 4).await;
    let proxy = FaultProxy::start(&reg.url).await;
    (reg, proxy, fleet)
}

fn client(proxy: &FaultProxy, opts: ClientOptions) -> RegistryClient {
    RegistryClient::new(proxy.url(), Credentials::Anonymous, opts).unwrap()
}

#[tokio::test]
async fn server_errors_on_listing_pages_are_retried_until_the_list_is_complete() {
    let (_reg, proxy, fleet) = setup(23, 1).await;
    proxy.inject(
        FaultRule::new(Fault::Status(503))
            .path_contains("last=")
            .times(3),
    );
    proxy.inject(
        FaultRule::new(Fault::Status(502))
            .path_contains("_catalog")
            .times(1),
    );
    let c = client(&proxy, fast_retries(4));
    let repos = c.catalog().await.unwrap();
    assert_eq!(repos, fleet.keys().cloned().collect::<Vec<_>>());
    assert_eq!(c.stats().retries, 4);
    assert_eq!(proxy.faulted(), 4);
}

#[tokio::test]
async fn connection_resets_are_retried() {
    let (_reg, proxy, fleet) = setup(1, 6).await;
    let (repo, tags) = fleet.iter().next().unwrap();
    proxy.inject(
        FaultRule::new(Fault::Reset)
            .path_contains("tags/list")
            .times(2),
    );
    let c = client(&proxy, fast_retries(3));
    let listed = c.tags(repo).await.unwrap();
    assert_eq!(listed, tags.keys().cloned().collect::<Vec<_>>());
    assert_eq!(c.stats().get(Operation::Tags), 3);
}

#[tokio::test]
async fn too_many_requests_waits_as_long_as_retry_after_says() {
    let (_reg, proxy, fleet) = setup(1, 2).await;
    let (repo, tags) = fleet.iter().next().unwrap();
    let (tag, digest) = tags.iter().next().unwrap();
    proxy.inject(
        FaultRule::new(Fault::RetryAfter {
            status: 429,
            seconds: 1,
        })
        .method("HEAD")
        .times(1),
    );
    let c = client(&proxy, fast_retries(2));
    let start = Instant::now();
    let head = c.head_manifest(repo, tag).await.unwrap().unwrap();
    let waited = start.elapsed();
    assert_eq!(&head.digest, digest);
    assert!(
        waited >= Duration::from_millis(950),
        "retried after {waited:?}, not after Retry-After"
    );
    assert_eq!(proxy.count("HEAD"), 2);
}

#[tokio::test]
async fn a_response_slower_than_the_timeout_is_retried() {
    let (_reg, proxy, fleet) = setup(1, 2).await;
    let (repo, tags) = fleet.iter().next().unwrap();
    proxy.inject(
        FaultRule::new(Fault::Delay(Duration::from_secs(3)))
            .method("HEAD")
            .times(1),
    );
    let mut opts = fast_retries(2);
    // generous for a loaded machine, still well below the injected delay
    opts.timeout = Duration::from_secs(1);
    let c = client(&proxy, opts);
    let tag = tags.keys().next().unwrap();
    assert!(c.head_manifest(repo, tag).await.unwrap().is_some());
    assert_eq!(c.stats().get(Operation::HeadManifest), 2);
}

#[tokio::test]
async fn permanent_client_errors_are_not_retried() {
    let (_reg, proxy, fleet) = setup(1, 2).await;
    let (repo, _) = fleet.iter().next().unwrap();
    proxy.inject(FaultRule::new(Fault::Status(403)).path_contains("tags/list"));
    proxy.inject(FaultRule::new(Fault::Status(400)).method("HEAD"));
    let c = client(&proxy, fast_retries(5));
    let e = c.tags(repo).await.unwrap_err();
    assert_eq!(e.reason(), "PermissionDenied", "{e}");
    let e = c.head_manifest(repo, "latest").await.unwrap_err();
    assert_eq!(e.reason(), "UnexpectedStatus", "{e}");
    assert_eq!(proxy.count("GET"), 1);
    assert_eq!(proxy.count("HEAD"), 1);
    assert_eq!(c.stats().retries, 0);
}

#[tokio::test]
async fn a_listing_that_keeps_failing_is_an_error_not_a_short_list() {
    let (_reg, proxy, _) = setup(23, 1).await;
    // the first page answers, every later page fails forever
    proxy.inject(FaultRule::new(Fault::Status(500)).path_contains("last="));
    let c = client(&proxy, fast_retries(2));
    let e = c.catalog().await.unwrap_err();
    assert_eq!(e.reason(), "IncompleteListing", "{e}");
    assert!(e.is_transient());
    assert!(c.repositories_under("project-01").await.is_err());
    proxy.clear();
    proxy.inject(FaultRule::new(Fault::Reset).path_contains("_catalog"));
    let e = c.catalog().await.unwrap_err();
    assert_eq!(e.reason(), "RegistryUnreachable", "{e}");
    // (first page + 3 attempts at the second) twice, then 3 attempts at the first page
    assert_eq!(c.stats().get(Operation::Catalog), 4 + 4 + 3);
}

#[tokio::test]
async fn a_delete_answered_with_a_server_error_is_not_repeated_blind_and_says_how_long_to_wait() {
    // Invariant 10: the client sends a DELETE once; the engine re-checks, then retries.
    let (_reg, proxy, fleet) = setup(1, 3).await;
    let (repo, tags) = fleet.iter().next().unwrap();
    let digest = tags.values().next().unwrap();
    proxy.inject(
        FaultRule::new(Fault::RetryAfter {
            status: 429,
            seconds: 7,
        })
        .method("DELETE")
        .times(1),
    );
    let c = client(&proxy, fast_retries(3));
    let e = c.delete_manifest(repo, digest).await.unwrap_err();
    assert_eq!(e.reason(), "RateLimited", "{e}");
    match &e {
        OciError::ServerError { retry_after, .. } => {
            // capped by the client's retry policy
            assert!(
                retry_after.is_some_and(|w| w <= Duration::from_secs(7)),
                "{e:?}"
            );
        }
        other => panic!("expected a server error, got {other:?}"),
    }
    assert_eq!(proxy.count("DELETE"), 1);
    assert_eq!(c.stats().mutating, 1);
    // the image is still there; a second, deliberate call deletes it
    assert!(c
        .tags(repo)
        .await
        .unwrap()
        .iter()
        .any(|t| tags[t] == *digest));
    c.delete_manifest(repo, digest).await.unwrap();
    assert!(!c
        .tags(repo)
        .await
        .unwrap()
        .iter()
        .any(|t| tags[t] == *digest));
}

#[tokio::test]
async fn a_read_only_inventory_sends_no_mutating_request() {
    let (_reg, proxy, fleet) = setup(3, 5).await;
    let c = client(&proxy, fast_retries(0));
    for repo in c.catalog().await.unwrap() {
        let tags = c.tags(&repo).await.unwrap();
        let heads = c.head_tags(&repo, &tags).await.unwrap();
        assert!(heads.vanished.is_empty());
        for (tag, h) in heads.heads {
            assert_eq!(h.digest, fleet[&repo][&tag]);
        }
    }
    assert_eq!(c.stats().mutating, 0);
    for m in ["DELETE", "PUT", "POST", "PATCH"] {
        assert_eq!(proxy.count(m), 0, "{m}");
    }
    assert_eq!(proxy.count("HEAD"), 15);
}

#[tokio::test]
async fn concurrent_callers_share_one_bounded_set_of_connections() {
    let (_reg, proxy, fleet) = setup(1, 10).await;
    let (repo, tags) = fleet.iter().next().unwrap();
    proxy.inject(FaultRule::new(Fault::Delay(Duration::from_millis(30))).method("HEAD"));
    let mut opts = fast_retries(0);
    opts.max_concurrency = 3;
    let c = client(&proxy, opts);
    let mut tasks = tokio::task::JoinSet::new();
    for round in 0..3 {
        for tag in tags.keys() {
            let (c, repo, tag) = (c.clone(), repo.clone(), tag.clone());
            tasks.spawn(async move { (round, c.head_manifest(&repo, &tag).await) });
        }
    }
    while let Some(r) = tasks.join_next().await {
        assert!(r.unwrap().1.unwrap().is_some());
    }
    assert_eq!(proxy.count("HEAD"), 30);
    assert!(
        proxy.max_in_flight() <= 3,
        "{} in flight",
        proxy.max_in_flight()
    );
    assert!(proxy.max_in_flight() >= 2, "requests were not concurrent");
}

#[tokio::test]
async fn one_failing_head_fails_the_whole_inventory_of_a_repository() {
    let (_reg, proxy, fleet) = setup(1, 8).await;
    let (repo, tags) = fleet.iter().next().unwrap();
    let victim = tags.keys().nth(3).unwrap();
    proxy.inject(FaultRule::new(Fault::Status(500)).path_contains(&format!("/manifests/{victim}")));
    let c = client(&proxy, fast_retries(1));
    let listed = c.tags(repo).await.unwrap();
    let e = c.head_tags(repo, &listed).await.unwrap_err();
    assert_eq!(e.reason(), "RegistryServerError", "{e}");
    assert!(e.to_string().contains(victim.as_str()), "{e}");
}
