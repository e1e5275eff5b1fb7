//! Bad input from callers and from registries: malformed references, oversize bodies, garbage
//! JSON, bad `Link` and `WWW-Authenticate` headers, lying digests. Every case is a typed error
//! (a `reason()` a condition can show), never a panic and never a silently wrong result.
//! Hostile registries are loopback doubles built for each case.

mod support;

use std::sync::{Arc, Mutex};

use proptest::prelude::*;
use registry_operator::oci::{ClientOptions, Credentials, ImageReference, RegistryClient};
use support::http::{serve, Reply, Request, Response, TestServer, CLOSE_DELIMITED};
use support::seed::sha256;

/// A double answering every request with the same response.
async fn answering(resp: Response) -> TestServer {
    serve(move |_r: Request| {
        let resp = resp.clone();
        async move { Reply::Send(resp) }
    })
    .await
}

fn client(url: &str) -> RegistryClient {
    let opts = ClientOptions {
        max_body_bytes: 64 * 1024,
        retry: registry_operator::oci::RetryPolicy {
            max_retries: 0,
            ..Default::default()
        },
        ..ClientOptions::default()
    };
    RegistryClient::new(url, Credentials::Anonymous, opts).unwrap()
}

#[tokio::test]
async fn malformed_names_tags_and_digests_fail_before_any_request() {
    let server = answering(Response::status(500)).await;
    let c = client(&server.url);
    let d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let errors = vec![
        c.tags("Team/App").await.unwrap_err(),
        c.tags("a//b").await.unwrap_err(),
        c.head_manifest("app", "bad tag").await.unwrap_err(),
        c.head_manifest("app", "../../etc").await.unwrap_err(),
        c.get_manifest("app", "sha256:xyz").await.unwrap_err(),
        c.delete_manifest("app", "latest").await.unwrap_err(),
        c.delete_tag("app", d).await.unwrap_err(),
        c.config_created("app", "sha256:ABC").await.unwrap_err(),
        c.referrers("app", "not-a-digest").await.unwrap_err(),
        c.zot_tag_stats("app\") { evil }").await.unwrap_err(),
    ];
    for e in errors {
        assert_eq!(e.reason(), "InvalidReference", "{e}");
    }
    assert_eq!(c.stats().total, 0, "nothing was sent");
    for bad in ["", "reg.io/", "Reg.io/App", "app:", "app@sha256:00", "a b"] {
        assert_eq!(
            ImageReference::parse(bad).unwrap_err().reason(),
            "InvalidReference"
        );
    }
}

#[tokio::test]
async fn bodies_over_the_cap_are_refused_whether_or_not_their_length_is_announced() {
    // a manifest (listings are parsed as they arrive instead: tests/oci_listing.rs)
    let big = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[],"annotations":{{{}}}}}"#,
        (0..20_000)
            .map(|i| format!("\"a{i}\":\"x\""))
            .collect::<Vec<_>>()
            .join(",")
    );
    assert!(big.len() > 64 * 1024);
    let index = "application/vnd.oci.image.index.v1+json";
    let announced = answering(
        Response::status(200)
            .header("content-type", index)
            .body(big.clone()),
    )
    .await;
    let e = client(&announced.url)
        .get_manifest("app", "v1")
        .await
        .unwrap_err();
    assert_eq!(e.reason(), "BodyTooLarge", "{e}");
    let streamed = answering(
        Response::status(200)
            .header("content-type", index)
            .header(CLOSE_DELIMITED, "1")
            .body(big),
    )
    .await;
    let e = client(&streamed.url)
        .get_manifest("app", "v1")
        .await
        .unwrap_err();
    assert_eq!(e.reason(), "BodyTooLarge", "{e}");
}

#[tokio::test]
async fn garbage_json_is_an_invalid_response() {
    for body in [
        "not json",
        "[]",
        r#"{"repositories": "x"}"#,
        r#"{"repositories": [1, 2]}"#,
    ] {
        let s = answering(Response::status(200).body(body)).await;
        let e = client(&s.url).catalog().await.unwrap_err();
        assert_eq!(e.reason(), "InvalidResponse", "{body}: {e}");
    }
    let s = answering(
        Response::status(200)
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(r#"{"schemaVersion": 2, "config": 7}"#),
    )
    .await;
    let e = client(&s.url).get_manifest("app", "v1").await.unwrap_err();
    assert_eq!(e.reason(), "InvalidResponse", "{e}");
    // a config blob that matches its digest but is not JSON
    let garbage = b"\x00\x01 not a config".to_vec();
    let digest = sha256(&garbage);
    let s = answering(Response::status(200).body(garbage)).await;
    let e = client(&s.url)
        .config_created("app", &digest)
        .await
        .unwrap_err();
    assert_eq!(e.reason(), "InvalidResponse", "{e}");
}

#[tokio::test]
async fn content_that_does_not_match_its_digest_is_rejected() {
    let d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let s = answering(
        Response::status(200)
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(r#"{"schemaVersion":2,"config":{"mediaType":"a/b","digest":"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef","size":1},"layers":[]}"#),
    )
    .await;
    let c = client(&s.url);
    assert_eq!(
        c.get_manifest("app", d).await.unwrap_err().reason(),
        "DigestMismatch"
    );
    assert_eq!(
        c.config_created("app", d).await.unwrap_err().reason(),
        "DigestMismatch"
    );
}

#[tokio::test]
async fn a_head_without_digest_header_falls_back_to_hashing_the_manifest() {
    let body = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
    let s = answering(
        Response::status(200)
            .header("content-type", "application/vnd.oci.image.index.v1+json")
            .body(body),
    )
    .await;
    let h = client(&s.url)
        .head_manifest("app", "v1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(h.digest, sha256(body.as_bytes()));
    assert!(h.is_index());
    assert_eq!(h.size, body.len() as u64);
}

/// A catalog double whose first page carries the given `Link` header.
async fn catalog_with_link(link: String) -> TestServer {
    let link = Arc::new(link);
    serve(move |r: Request| {
        let link = link.clone();
        async move {
            if r.query("last").is_some() {
                return Response::json(200, &serde_json::json!({"repositories": ["z"]})).into();
            }
            Response::json(200, &serde_json::json!({"repositories": ["a"]}))
                .header("link", &link)
                .into()
        }
    })
    .await
}

#[tokio::test]
async fn relative_and_absolute_next_links_on_the_same_host_are_followed() {
    let s = catalog_with_link(r#"</v2/_catalog?n=1&last=a>; rel="next""#.into()).await;
    assert_eq!(client(&s.url).catalog().await.unwrap(), vec!["a", "z"]);
    let s2 = serve(|r: Request| async move {
        if r.query("last").is_some() {
            return Response::json(200, &serde_json::json!({"repositories": ["z"]})).into();
        }
        let host = r.header("host").unwrap_or("").to_string();
        Response::json(200, &serde_json::json!({"repositories": ["a"]}))
            .header(
                "link",
                &format!(r#"<http://{host}/v2/_catalog?n=1&last=a>; rel="next""#),
            )
            .into()
    })
    .await;
    assert_eq!(client(&s2.url).catalog().await.unwrap(), vec!["a", "z"]);
    // an empty final page linking to itself ends the listing
    let s3 = serve(|r: Request| async move {
        if r.query("last").is_some() {
            return Response::json(200, &serde_json::json!({"repositories": []}))
                .header("link", r#"</v2/_catalog?n=1000&last=a>; rel="next""#)
                .into();
        }
        Response::json(200, &serde_json::json!({"repositories": ["a"]}))
            .header("link", r#"</v2/_catalog?n=1000&last=a>; rel="next""#)
            .into()
    })
    .await;
    assert_eq!(client(&s3.url).catalog().await.unwrap(), vec!["a"]);
}

#[tokio::test]
async fn bad_link_headers_are_typed_errors() {
    for link in [
        "/v2/_catalog?last=a; rel=next",
        "</v2/_catalog?last=a",
        r#"<http://elsewhere.example:1/v2/_catalog?last=a&X-Amz-Signature=topsecret>; rel="next""#,
        r#"</v2/_catalog?n=1000>; rel="next""#, // points back at the first page: a loop
    ] {
        let s = catalog_with_link(link.to_string()).await;
        let e = client(&s.url).catalog().await.unwrap_err();
        assert_eq!(e.reason(), "InvalidLinkHeader", "{link}: {e}");
        assert!(!e.to_string().contains("topsecret"), "{e}");
    }
}

#[tokio::test]
async fn credentials_in_the_url_never_appear_in_errors() {
    // nothing listens on port 1
    let c = RegistryClient::new(
        "http://bob:hunter2@127.0.0.1:1",
        Credentials::Anonymous,
        ClientOptions::default(),
    )
    .unwrap();
    let e = c.check().await.unwrap_err();
    assert_eq!(e.reason(), "RegistryUnreachable");
    assert!(!e.to_string().contains("hunter2"), "{e}");
    assert!(!c.base_url().contains("hunter2"));
}

#[tokio::test]
async fn unusable_client_settings_are_rejected_up_front() {
    for url in ["ftp://reg.io", "not a url", "http://"] {
        let e = RegistryClient::new(url, Credentials::Anonymous, ClientOptions::default()).err();
        assert_eq!(e.map(|e| e.reason()), Some("InvalidClientConfig"), "{url}");
    }
    let bad_ca = ClientOptions {
        ca_pem: Some(b"-----BEGIN CERTIFICATE-----\nnope\n".to_vec()),
        ..Default::default()
    };
    assert!(RegistryClient::new("https://reg.io", Credentials::Anonymous, bad_ca).is_err());
    let zero = ClientOptions {
        max_concurrency: 0,
        ..Default::default()
    };
    assert!(RegistryClient::new("https://reg.io", Credentials::Anonymous, zero).is_err());
}

/// What the hostile double answers next: status, body, Link, WWW-Authenticate.
type Script = Arc<Mutex<(u16, Vec<u8>, Option<String>, Option<String>)>>;

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_registry_answers_never_panic_the_client(
        status in prop_oneof![Just(200u16), Just(401), Just(404), Just(400), Just(500)],
        body in proptest::collection::vec(any::<u8>(), 0..200),
        link in proptest::option::of("[ -~]{0,60}"),
        challenge in proptest::option::of("[ -~]{0,60}"),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let script: Script = Arc::new(Mutex::new((status, body, link, challenge)));
            let sc = script.clone();
            let server = serve(move |_r: Request| {
                let sc = sc.clone();
                async move {
                    let (status, body, link, challenge) = sc.lock().unwrap().clone();
                    let mut r = Response::status(status).body(body);
                    if let Some(l) = link { r = r.header("link", &l); }
                    if let Some(c) = challenge { r = r.header("www-authenticate", &c); }
                    Reply::Send(r)
                }
            })
            .await;
            let c = client(&server.url);
            // every call ends in a value or a typed error
            let _ = c.catalog().await.map_err(|e| e.reason());
            let _ = c.tags("app").await.map_err(|e| e.reason());
            let _ = c.head_manifest("app", "v1").await.map_err(|e| e.reason());
            let _ = c.get_manifest("app", "v1").await.map_err(|e| e.reason());
            let _ = c.referrers("app", "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef").await.map_err(|e| e.reason());
            let _ = c.capabilities().await.map_err(|e| e.reason());
        });
    }
}

/// Text a hostile registry plants in its answers: it must not come back in an error (whose
/// message becomes a Registry's status and an Event).
const PLANTED: &str = "PLANTED-by-the-registry";

#[tokio::test]
async fn what_a_registry_answers_is_not_copied_into_error_messages() {
    let manifest = answering(
        Response::json(200, &serde_json::json!({"schemaVersion": PLANTED}))
            .header("content-type", "application/vnd.oci.image.manifest.v1+json"),
    )
    .await;
    let e = client(&manifest.url)
        .get_manifest("team/app", "v1")
        .await
        .unwrap_err();
    assert_eq!(e.reason(), "InvalidResponse");
    assert!(!e.to_string().contains(PLANTED), "{e}");
    assert!(
        e.to_string()
            .contains("manifest does not have the expected shape"),
        "says what: {e}"
    );

    let listing = answering(
        Response::status(200)
            .header("content-type", "application/json")
            .body(format!(r#"{{"name":"team/app","tags":[{PLANTED}]}}"#)),
    )
    .await;
    let e = client(&listing.url).tags("team/app").await.unwrap_err();
    assert!(!e.to_string().contains(PLANTED), "{e}");
    assert!(e.to_string().contains("at byte"), "says where: {e}");

    let code = answering(Response::json(
        400,
        &serde_json::json!({"errors": [{"code": format!("<b>{PLANTED}</b>"), "message": PLANTED}]}),
    ))
    .await;
    let e = client(&code.url).check().await.unwrap_err();
    assert!(!e.to_string().contains(PLANTED), "{e}");
}
