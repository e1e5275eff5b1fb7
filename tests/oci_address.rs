//! The address policy at connect time, through the resolver seam: a test resolver maps test
//! names to addresses and records every address the client hands to the connector — and
//! refuses any that would leave this host, so even a broken policy sends no packet out. Real
//! servers listen on 127.0.0.1 only.

mod support;

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use registry_operator::oci::{
    AddressPolicy, AddressRule, ClientOptions, Credentials, OciError, RegistryClient, Resolver,
    RetryPolicy,
};
use support::http::{serve, Response, TestServer};
use support::resolver::TestResolver;

fn client(url: &str, resolver: &Arc<TestResolver>, allow_loopback: bool) -> RegistryClient {
    RegistryClient::new(
        url,
        Credentials::Anonymous,
        ClientOptions {
            retry: RetryPolicy {
                max_retries: 0,
                ..RetryPolicy::default()
            },
            address_policy: AddressPolicy { allow_loopback },
            resolver: Some(resolver.clone() as Arc<dyn Resolver>),
            ..ClientOptions::default()
        },
    )
    .expect("client")
}

/// A server on 127.0.0.1 answering every request with `reply`, counting requests.
async fn counting(reply: Response) -> (TestServer, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let server = serve(move |_req| {
        h.fetch_add(1, Ordering::SeqCst);
        let r = reply.clone();
        async move { r.into() }
    })
    .await;
    (server, hits)
}

/// A bare TCP listener on 127.0.0.1 counting accepted connections.
async fn listener() -> (u16, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = l.local_addr().expect("addr").port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let a = accepted.clone();
    let task = tokio::spawn(async move {
        while let Ok((_conn, _)) = l.accept().await {
            a.fetch_add(1, Ordering::SeqCst);
        }
    });
    (port, accepted, task)
}

fn refusal(e: &OciError) -> (String, IpAddr, AddressRule) {
    match e {
        OciError::AddressNotAllowed {
            host,
            address,
            rule,
            ..
        } => (host.clone(), *address, *rule),
        other => panic!("expected AddressNotAllowed, got {other:?}"),
    }
}

#[tokio::test]
async fn a_name_resolving_to_the_metadata_address_is_refused_and_never_connected_to() {
    // Through the resolver seam: the name maps to this address, and TestResolver refuses any
    // non-loopback address at the connector, so no packet leaves this host even if the policy
    // were broken.
    let resolver = TestResolver::new(&[("metadata.test", "169.254.169.254")]);
    let c = client("http://metadata.test", &resolver, true);
    let e = c.check().await.unwrap_err();
    assert_eq!(
        refusal(&e),
        (
            "metadata.test".to_string(),
            "169.254.169.254".parse().unwrap(),
            AddressRule::CloudMetadata
        )
    );
    assert_eq!(e.reason(), "AddressNotAllowed");
    assert!(!e.is_transient(), "a refusal is not retried");
    assert!(
        e.to_string()
            .contains("not allowed by the cloud-metadata rule"),
        "{e}"
    );
    assert_eq!(resolver.resolved(), ["metadata.test"]);
    assert_eq!(resolver.connecting(), [], "no connection was attempted");
}

#[tokio::test]
async fn a_name_resolving_to_loopback_is_connected_to_only_when_loopback_is_allowed() {
    let (server, hits) = counting(Response::status(200)).await;
    let url = format!("http://reg.test:{}", server.addr.port());

    let resolver = TestResolver::new(&[("reg.test", "127.0.0.1")]);
    let strict = client(&url, &resolver, false);
    let e = strict.check().await.unwrap_err();
    assert_eq!(refusal(&e).2, AddressRule::Loopback);
    assert_eq!(resolver.connecting(), []);
    assert_eq!(hits.load(Ordering::SeqCst), 0);

    let laptop = client(&url, &resolver, true);
    assert_eq!(laptop.check().await.expect("healthy").status, 200);
    assert_eq!(
        resolver.connecting(),
        [("reg.test".to_string(), "127.0.0.1".parse().unwrap())]
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn of_a_name_with_allowed_and_refused_addresses_only_the_allowed_ones_are_connected_to() {
    let (server, hits) = counting(Response::status(200)).await;
    // Through the resolver seam: the name maps to this address, and TestResolver refuses any
    // non-loopback address at the connector, so no packet leaves this host even if the policy
    // were broken.
    let resolver = TestResolver::new(&[
        ("mixed.test", "169.254.169.254"),
        ("mixed.test", "fe80::1"),
        ("mixed.test", "127.0.0.1"),
    ]);
    let c = client(
        &format!("http://mixed.test:{}", server.addr.port()),
        &resolver,
        true,
    );
    assert_eq!(c.check().await.expect("healthy").status, 200);
    assert_eq!(
        resolver.connecting(),
        [("mixed.test".to_string(), "127.0.0.1".parse().unwrap())]
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_ip_literal_url_is_refused_before_any_request() {
    let resolver = TestResolver::new(&[]);
    // Only data: RegistryClient::new judges the literal and the test sends no request.
    for (url, rule) in [
        ("http://169.254.169.254", AddressRule::CloudMetadata),
        ("http://[fd00:ec2::254]", AddressRule::CloudMetadata),
        ("http://[fe80::1]:5000", AddressRule::LinkLocal),
        ("http://[::ffff:169.254.3.4]", AddressRule::LinkLocal),
        ("http://0.0.0.0:5000", AddressRule::Unspecified),
        ("https://127.0.0.1:5000", AddressRule::Loopback),
    ] {
        let e = RegistryClient::new(
            url,
            Credentials::Anonymous,
            ClientOptions {
                address_policy: AddressPolicy {
                    allow_loopback: false,
                },
                resolver: Some(resolver.clone() as Arc<dyn Resolver>),
                ..ClientOptions::default()
            },
        )
        .expect_err("refused before any request");
        assert_eq!(refusal(&e).2, rule, "{url}");
    }
    assert_eq!(resolver.resolved(), Vec::<String>::new());
}

#[tokio::test]
async fn a_redirect_to_the_unspecified_address_is_refused_where_following_it_would_reach_this_host()
{
    // Connecting to 0.0.0.0 reaches this host: the listener would see the connection.
    let (port, accepted, task) = listener().await;
    let (server, hits) =
        counting(Response::status(302).header("location", &format!("http://0.0.0.0:{port}/v2/")))
            .await;
    let resolver = TestResolver::new(&[]);
    let c = client(&server.url, &resolver, true);
    let e = c.check().await.unwrap_err();
    assert_eq!(refusal(&e).2, AddressRule::Unspecified);
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        0,
        "nothing connected to 0.0.0.0"
    );
    task.abort();
}

#[tokio::test]
async fn a_redirect_to_a_name_goes_through_the_resolver_and_its_policy() {
    let (server, hits) = counting(
        Response::status(301).header("location", "http://metadata.test/latest/meta-data/"),
    )
    .await;
    // Through the resolver seam: the name maps to this address, and TestResolver refuses any
    // non-loopback address at the connector, so no packet leaves this host even if the policy
    // were broken.
    let resolver = TestResolver::new(&[("metadata.test", "169.254.169.254")]);
    let c = client(&server.url, &resolver, true);
    let e = c.check().await.unwrap_err();
    assert_eq!(refusal(&e).2, AddressRule::CloudMetadata);
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    assert_eq!(resolver.resolved(), ["metadata.test"]);
    assert_eq!(resolver.connecting(), [], "no connection was attempted");
}

#[tokio::test]
async fn a_token_realm_at_a_refused_address_is_never_asked() {
    // 0.0.0.0 would reach this host: the listener would see the token request.
    let (port, accepted, task) = listener().await;
    let (server, hits) = counting(Response::status(401).header(
        "www-authenticate",
        &format!(r#"Bearer realm="http://0.0.0.0:{port}/token",service="registry""#),
    ))
    .await;
    let resolver = TestResolver::new(&[]);
    let c = client(&server.url, &resolver, true);
    let e = c.tags("team/app").await.unwrap_err();
    assert_eq!(refusal(&e).2, AddressRule::Unspecified, "{e}");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        0,
        "no token request went out"
    );
    task.abort();
}
