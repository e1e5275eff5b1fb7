//! Loopback test doubles for what the real distribution registry here cannot show. Each double
//! follows documented behaviour:
//!
//! - the bearer token flow of the Docker token authentication spec
//!   (<https://distribution.github.io/distribution/spec/auth/token/>): 401 with
//!   `WWW-Authenticate: Bearer realm=…,service=…,scope=…`, token fetched from the realm with
//!   basic credentials, `{"token", "expires_in"}` answer;
//! - zot's API (zot v2.1 `pkg/api/routes.go`, `pkg/extensions/search/schema.graphql`, as
//!   summarised in the project's zot reference §3): DELETE by tag removes only that tag; tag
//!   lists paginate with `n`/`last` and 404 on an unknown `last`; `/v2/_zot/ext/mgmt` reports
//!   the release; the search GraphQL `ImageList` pages with `limit`/`offset` and reports
//!   `TotalCount`, `PushTimestamp`, `LastPullTimestamp` (the Unix epoch = never) and
//!   `DownloadCount` per manifest digest (tags on one digest share them) and `TaggedTimestamp`
//!   per tag, answering only the fields the query asks for — as a real zot v2.1.20 built from
//!   source answered; its management endpoint sends JSON as `text/plain`, and a tag page after
//!   an unknown `last` is a 404 with an empty body;
//! - registries that do not keep what the artifact writer pushed as it was pushed (the
//!   distribution spec: the answer to a manifest `PUT` names the stored digest in
//!   `Docker-Content-Digest`, an upload continues at the `Location` answered), or that send
//!   an upload elsewhere.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use registry_operator::oci::{
    ClientOptions, Credentials, DeleteOutcome, Operation, RegistryClient,
};
use support::http::{serve, Reply, Request, Response, TestServer};
use support::registry::TestRegistry;

const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
const D3: &str = "sha256:3333333333333333333333333333333333333333333333333333333333333333";

/// A registry that only accepts bearer tokens from its own realm (`/token`), which wants
/// basic credentials `alice:secret` and grants a token per scope.
struct BearerRegistry {
    server: TestServer,
    token_requests: Arc<AtomicU64>,
    registry_requests: Arc<AtomicU64>,
    /// The realm answers 503 to this many token requests first.
    token_failures: Arc<AtomicU64>,
}

async fn bearer_registry() -> BearerRegistry {
    let token_requests = Arc::new(AtomicU64::new(0));
    let registry_requests = Arc::new(AtomicU64::new(0));
    let token_failures = Arc::new(AtomicU64::new(0));
    let (tr, rr, tf) = (
        token_requests.clone(),
        registry_requests.clone(),
        token_failures.clone(),
    );
    let realm: Arc<Mutex<String>> = Arc::new(Mutex::new(String::new()));
    let realm2 = realm.clone();
    let server = serve(move |req: Request| {
        let (tr, rr, tf, realm) = (tr.clone(), rr.clone(), tf.clone(), realm2.clone());
        async move {
            if req.path() == "/token" {
                tr.fetch_add(1, Ordering::SeqCst);
                if tf
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok()
                {
                    return Response::status(503).into();
                }
                let want = format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode("alice:secret")
                );
                if req.header("authorization") != Some(want.as_str()) {
                    return Response::status(401).into();
                }
                assert_eq!(req.query("service").as_deref(), Some("fake-registry"));
                let scope = req.query("scope").unwrap_or_default();
                return Response::json(
                    200,
                    &serde_json::json!({"token": format!("tok.{}", scope.replace(['/', ':', ','], "_")), "expires_in": 300}),
                )
                .into();
            }
            rr.fetch_add(1, Ordering::SeqCst);
            // /v2/<repo>/tags/list
            let repo = req
                .path()
                .strip_prefix("/v2/")
                .and_then(|p| p.strip_suffix("/tags/list"))
                .unwrap_or("")
                .to_string();
            let scope = format!("repository:{repo}:pull");
            let want = format!("Bearer tok.{}", scope.replace(['/', ':', ','], "_"));
            if req.header("authorization") != Some(want.as_str()) {
                let realm = realm.lock().unwrap().clone();
                return Response::json(401, &serde_json::json!({"errors":[{"code":"UNAUTHORIZED"}]}))
                    .header(
                        "www-authenticate",
                        &format!(r#"Bearer realm="{realm}/token",service="fake-registry",scope="{scope}""#),
                    )
                    .into();
            }
            Response::json(200, &serde_json::json!({"name": repo, "tags": ["b", "a"]})).into()
        }
    })
    .await;
    *realm.lock().unwrap() = server.url.clone();
    BearerRegistry {
        server,
        token_requests,
        registry_requests,
        token_failures,
    }
}

#[tokio::test]
async fn bearer_tokens_are_fetched_once_per_scope_and_reused() {
    let reg = bearer_registry().await;
    let c = RegistryClient::new(
        &reg.server.url,
        Credentials::basic("alice", "secret"),
        ClientOptions::default(),
    )
    .unwrap();
    assert_eq!(c.tags("team/app").await.unwrap(), vec!["a", "b"]);
    assert_eq!(reg.token_requests.load(Ordering::SeqCst), 1);
    assert_eq!(
        reg.registry_requests.load(Ordering::SeqCst),
        2,
        "401, then the retry"
    );
    // same scope: the cached token goes along with the first request
    c.tags("team/app").await.unwrap();
    assert_eq!(reg.token_requests.load(Ordering::SeqCst), 1);
    assert_eq!(reg.registry_requests.load(Ordering::SeqCst), 3);
    // another repository: another scope, a new token, fetched up front (realm known)
    c.tags("team/other").await.unwrap();
    assert_eq!(reg.token_requests.load(Ordering::SeqCst), 2);
    assert_eq!(reg.registry_requests.load(Ordering::SeqCst), 4);
    assert_eq!(c.stats().get(Operation::Token), 2);
}

#[tokio::test]
async fn a_token_realm_refusing_the_password_is_credentials_rejected() {
    let reg = bearer_registry().await;
    let c = RegistryClient::new(
        &reg.server.url,
        Credentials::basic("alice", "wrong-password"),
        ClientOptions::default(),
    )
    .unwrap();
    let e = c.tags("team/app").await.unwrap_err();
    assert_eq!(e.reason(), "CredentialsRejected", "{e}");
    assert_eq!(
        e.denial(),
        Some(registry_operator::oci::Denial::CredentialsRejected)
    );
    assert!(
        !e.is_transient(),
        "a refused password will not get better by waiting"
    );
    assert!(!e.to_string().contains("wrong-password"));
    assert_eq!(
        reg.token_requests.load(Ordering::SeqCst),
        1,
        "401 is not retried"
    );
}

#[tokio::test]
async fn a_token_endpoint_hiccup_is_retried() {
    let reg = bearer_registry().await;
    reg.token_failures.store(2, Ordering::SeqCst);
    let mut opts = ClientOptions::default();
    opts.retry.initial_backoff = std::time::Duration::from_millis(5);
    let c =
        RegistryClient::new(&reg.server.url, Credentials::basic("alice", "secret"), opts).unwrap();
    assert_eq!(c.tags("team/app").await.unwrap(), vec!["a", "b"]);
    assert_eq!(reg.token_requests.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn malformed_bearer_challenges_are_typed_errors() {
    for header in [
        r#"Bearer realm="unterminated"#,
        r#"Bearer service="no-realm""#,
        r#"Bearer realm="ftp://not-http/token""#,
        "=garbage",
    ] {
        let h = header.to_string();
        let server = serve(move |_req: Request| {
            let h = h.clone();
            async move { Response::status(401).header("www-authenticate", &h).into() }
        })
        .await;
        let c = RegistryClient::new(
            &server.url,
            Credentials::Anonymous,
            ClientOptions::default(),
        )
        .unwrap();
        let e = c.tags("app").await.unwrap_err();
        assert_eq!(e.reason(), "InvalidAuthChallenge", "{header}: {e}");
    }
}

/// zot's documented API, for a handful of tags of one repository `app`.
#[derive(Default)]
struct ZotState {
    /// tag -> digest
    tags: BTreeMap<String, String>,
    /// delete this tag after the first tags page was served (a concurrent deletion)
    delete_after_first_page: Option<String>,
    /// report this TotalCount instead of the real count (a registry losing results)
    lie_total: Option<u64>,
    /// digests referenced by an index (zot refuses to delete them by digest)
    index_children: Vec<String>,
    /// leave `TotalCount` out of search answers
    omit_total: bool,
    /// answer every search with the first page, whatever the offset
    ignore_offset: bool,
    /// add this tag after the first search page was served (a push while paging)
    push_after_first_search: Option<(String, String)>,
    /// answer searches with a GraphQL error carrying this message
    search_error: Option<String>,
    /// referrers of a digest, served by the referrers API one per page
    referrers: BTreeMap<String, Vec<String>>,
}

async fn fake_zot(state: Arc<Mutex<ZotState>>) -> TestServer {
    serve(move |req: Request| {
        let st = state.clone();
        async move { zot_handle(&st, req) }
    })
    .await
}

fn zot_handle(st: &Mutex<ZotState>, req: Request) -> Reply {
    let mut s = st.lock().unwrap();
    let path = req.path().to_string();
    match (req.method.as_str(), path.as_str()) {
        ("GET", "/v2/") => Response::status(200).into(),
        // zot v2.1.20 sends its JSON as text/plain
        ("GET", "/v2/_zot/ext/mgmt") => Response::status(200)
            .header("content-type", "text/plain; charset=utf-8")
            .body(serde_json::json!({"distSpecVersion": "1.1.1", "commit": "v2.1.20", "releaseTag": "v2.1.20", "binaryType": "-sync-search-scrub-metrics-lint-mgmt-profile-userprefs-imagetrust-events", "http": {"auth": {}}}).to_string())
            .into(),
        ("GET", "/v2/app/tags/list") => {
            let n: usize = req.query("n").and_then(|n| n.parse().ok()).unwrap_or(usize::MAX);
            let all: Vec<String> = s.tags.keys().cloned().collect();
            let start = match req.query("last") {
                None => 0,
                Some(l) => match all.iter().position(|t| *t == l) {
                    Some(i) => i + 1,
                    // zot v2.1.20: 404 with an empty body
                    None => return Response::status(404).into(),
                },
            };
            let page: Vec<String> = all.iter().skip(start).take(n).cloned().collect();
            let mut r = Response::json(200, &serde_json::json!({"name": "app", "tags": page}));
            if start + page.len() < all.len() {
                if let Some(last) = page.last() {
                    r = r.header("link", &format!(r#"</v2/app/tags/list?n={n}&last={last}>; rel="next""#));
                }
            }
            if let Some(t) = s.delete_after_first_page.take() {
                s.tags.remove(&t);
            }
            r.into()
        }
        ("DELETE", p) if p.starts_with("/v2/app/manifests/") => {
            let reference = p.trim_start_matches("/v2/app/manifests/").to_string();
            if s.index_children.contains(&reference) {
                // zot: a manifest still referenced by an index cannot be deleted by digest
                return Response::json(405, &serde_json::json!({"errors":[{"code":"DENIED"}]})).into();
            }
            if reference.starts_with("sha256:") {
                let before = s.tags.len();
                s.tags.retain(|_, d| *d != reference);
                if s.tags.len() == before {
                    return Response::status(404).into();
                }
            } else if s.tags.remove(&reference).is_none() {
                return Response::status(404).into();
            }
            Response::status(202).into()
        }
        ("POST", "/v2/_zot/ext/search") => {
            let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
            let q = body["query"].as_str().unwrap().to_string();
            let num = |key: &str| -> usize {
                let i = q.find(key).unwrap() + key.len();
                q[i..].trim_start().chars().take_while(|c| c.is_ascii_digit()).collect::<String>().parse().unwrap()
            };
            let (limit, offset) = (num("limit:"), num("offset:"));
            if let Some(message) = &s.search_error {
                return Response::json(200, &serde_json::json!({"errors": [{"message": message}], "data": null})).into();
            }
            let offset = if s.ignore_offset { 0 } else { offset };
            assert!(q.contains(r#"repo: "app""#), "{q}");
            // zot keeps push time and pull statistics per manifest digest (tags on one digest
            // share them); only TaggedTimestamp (v2.1.15+) is per tag. GraphQL answers only the
            // fields asked for.
            let digests: Vec<&String> = s.tags.values().fold(Vec::new(), |mut seen, d| {
                if !seen.contains(&d) {
                    seen.push(d);
                }
                seen
            });
            let results: Vec<serde_json::Value> = s
                .tags
                .iter()
                .enumerate()
                .skip(offset)
                .take(limit)
                .map(|(i, (t, d))| {
                    let j = digests.iter().position(|x| *x == d).unwrap_or(0);
                    let mut r = serde_json::json!({
                        "RepoName": "app", "Tag": t, "Digest": d,
                        "MediaType": "application/vnd.oci.image.manifest.v1+json",
                        "PushTimestamp": format!("2026-01-{:02}T00:00:00Z", j + 1),
                        "TaggedTimestamp": format!("2026-01-{:02}T12:00:00Z", i + 1),
                        "LastPullTimestamp": if j == 0 { "1970-01-01T00:00:00Z".to_string() } else { format!("2026-02-{:02}T00:00:00Z", j + 1) },
                        "DownloadCount": j,
                    });
                    if let Some(fields) = r.as_object_mut() {
                        fields.retain(|k, _| q.contains(k.as_str()));
                    }
                    r
                })
                .collect();
            let total = s.lie_total.unwrap_or(s.tags.len() as u64);
            if let Some((t, d)) = s.push_after_first_search.take() {
                s.tags.insert(t, d);
            }
            let page = if s.omit_total {
                serde_json::json!({"ItemCount": results.len()})
            } else {
                serde_json::json!({"TotalCount": total, "ItemCount": results.len()})
            };
            Response::json(
                200,
                &serde_json::json!({"data": {"ImageList": {"Page": page, "Results": results}}}),
            )
            .into()
        }
        ("GET", p) if p.starts_with("/v2/app/referrers/") => {
            let subject = p.trim_start_matches("/v2/app/referrers/");
            let all = s.referrers.get(subject).cloned().unwrap_or_default();
            let page: usize = req.query("page").and_then(|n| n.parse().ok()).unwrap_or(0);
            let manifests: Vec<serde_json::Value> = all
                .iter()
                .skip(page)
                .take(1)
                .map(|d| serde_json::json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d, "size": 100, "artifactType": "application/spdx+json"}))
                .collect();
            let body = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests});
            let mut r = Response::status(200)
                .header("content-type", "application/vnd.oci.image.index.v1+json")
                .body(serde_json::to_vec(&body).unwrap());
            if page + 1 < all.len() {
                r = r.header("link", &format!(r#"</v2/app/referrers/{subject}?page={}>; rel="next""#, page + 1));
            }
            r.into()
        }
        ("DELETE", _) => {
            // zot: a delete in an unknown repository is 400 NAME_UNKNOWN, not 404
            Response::json(400, &serde_json::json!({"errors":[{"code":"NAME_UNKNOWN"}]})).into()
        }
        _ => Response::json(404, &serde_json::json!({"errors":[{"code":"NOT_FOUND"}]})).into(),
    }
}

fn zot_with_tags(tags: &[(&str, &str)]) -> Arc<Mutex<ZotState>> {
    Arc::new(Mutex::new(ZotState {
        tags: tags
            .iter()
            .map(|(t, d)| (t.to_string(), d.to_string()))
            .collect(),
        ..Default::default()
    }))
}

fn opts(page: u32, search_page: u32) -> ClientOptions {
    ClientOptions {
        page_size: page,
        search_page_size: search_page,
        ..ClientOptions::default()
    }
}

#[tokio::test]
async fn zot_deletes_a_single_tag_and_keeps_its_siblings() {
    let st = zot_with_tags(&[("latest", D1), ("v1", D1), ("v0", D2)]);
    let zot = fake_zot(st.clone()).await;
    let c = RegistryClient::new(&zot.url, Credentials::Anonymous, opts(100, 100)).unwrap();
    assert_eq!(
        c.delete_tag("app", "v1").await.unwrap(),
        DeleteOutcome::Deleted
    );
    assert_eq!(c.tags("app").await.unwrap(), vec!["latest", "v0"]);
    assert_eq!(
        c.delete_tag("app", "v1").await.unwrap(),
        DeleteOutcome::AlreadyGone
    );
    assert_eq!(
        c.delete_tag("gone/repo", "v1").await.unwrap(),
        DeleteOutcome::AlreadyGone
    );
    assert_eq!(
        c.delete_manifest("gone/repo", D1).await.unwrap(),
        DeleteOutcome::AlreadyGone
    );
}

#[tokio::test]
async fn zot_refusing_to_delete_an_index_child_by_digest_is_a_typed_refusal() {
    let st = zot_with_tags(&[("v1", D1)]);
    st.lock().unwrap().index_children.push(D2.to_string());
    let zot = fake_zot(st.clone()).await;
    let c = RegistryClient::new(&zot.url, Credentials::Anonymous, opts(100, 100)).unwrap();
    match c.delete_manifest("app", D2).await.unwrap_err() {
        registry_operator::oci::OciError::DeleteNotAllowed { status, code, .. } => {
            assert_eq!(status, 405);
            assert_eq!(code.as_deref(), Some("DENIED"));
        }
        other => panic!("expected DeleteNotAllowed, got {other}"),
    }
    assert_eq!(c.stats().retries, 0);
}

#[tokio::test]
async fn zot_tag_pages_are_followed_and_a_lost_cursor_restarts_the_listing() {
    let tags: Vec<(String, String)> = (0..7).map(|i| (format!("t{i}"), D1.to_string())).collect();
    let refs: Vec<(&str, &str)> = tags.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let st = zot_with_tags(&refs);
    let zot = fake_zot(st.clone()).await;
    let c = RegistryClient::new(&zot.url, Credentials::Anonymous, opts(2, 100)).unwrap();
    let all = c.tags("app").await.unwrap();
    assert_eq!(all.len(), 7);
    assert_eq!(c.stats().get(Operation::Tags), 4);

    // t1 (the cursor after page one) is deleted while the client reads: zot 404s page two
    st.lock().unwrap().delete_after_first_page = Some("t1".to_string());
    c.reset_stats();
    let all = c.tags("app").await.unwrap();
    assert_eq!(all, vec!["t0", "t2", "t3", "t4", "t5", "t6"]);
    assert_eq!(c.stats().get(Operation::Tags), 2 + 3);
}

#[tokio::test]
async fn zot_is_detected_and_its_search_api_gives_per_tag_statistics_in_pages() {
    let st = zot_with_tags(&[("a", D1), ("b", D1), ("c", D2), ("d", D2), ("e", D2)]);
    let zot = fake_zot(st.clone()).await;
    let c = RegistryClient::new(&zot.url, Credentials::Anonymous, opts(100, 2)).unwrap();
    let caps = c.capabilities().await.unwrap();
    assert!(caps.search);
    assert_eq!(caps.zot.unwrap().release.as_deref(), Some("v2.1.20"));
    let stats = c.zot_tag_stats("app").await.unwrap();
    assert_eq!(stats.len(), 5);
    assert_eq!(c.stats().get(Operation::Search), 3);
    assert_eq!(stats[0].tag, "a");
    assert_eq!(stats[0].digest, D1);
    assert_eq!(
        stats[0].last_pulled, None,
        "the Unix epoch means never pulled"
    );
    assert_eq!(
        stats[0].pushed.map(|t| t.to_string()).as_deref(),
        Some("2026-01-01T00:00:00Z")
    );
    assert_eq!(stats[1].pushed, stats[0].pushed, "a and b share one digest");
    assert_eq!(stats[4].download_count, Some(1));
    assert_eq!(
        stats[4].last_pulled.map(|t| t.to_string()).as_deref(),
        Some("2026-02-02T00:00:00Z")
    );
    assert_eq!(
        c.stats().get(Operation::GetManifest),
        0,
        "ages without pulling manifests"
    );
    assert_eq!(
        c.stats().get(Operation::Capabilities),
        1,
        "capabilities are cached"
    );

    st.lock().unwrap().lie_total = Some(9);
    let e = c.zot_tag_stats("app").await.unwrap_err();
    assert_eq!(e.reason(), "IncompleteListing", "{e}");
}

#[tokio::test]
async fn distribution_is_not_mistaken_for_zot() {
    let reg = TestRegistry::start();
    let c =
        RegistryClient::new(&reg.url, Credentials::Anonymous, ClientOptions::default()).unwrap();
    let caps = c.capabilities().await.unwrap();
    assert_eq!(caps.zot, None);
    assert!(!caps.search);
    assert_eq!(
        c.zot_tag_stats("app").await.unwrap_err().reason(),
        "Unsupported"
    );
}

#[tokio::test]
async fn zot_search_without_a_total_count_is_read_to_its_short_last_page() {
    let st = zot_with_tags(&[("a", D1), ("b", D1), ("c", D2), ("d", D2), ("e", D2)]);
    st.lock().unwrap().omit_total = true;
    let zot = fake_zot(st.clone()).await;
    let c = RegistryClient::new(&zot.url, Credentials::Anonymous, opts(100, 2)).unwrap();
    let stats = c.zot_tag_stats("app").await.unwrap();
    assert_eq!(stats.len(), 5, "not just the first page");
    assert_eq!(c.stats().get(Operation::Search), 3);
}

#[tokio::test]
async fn zot_search_repeating_a_page_under_a_huge_total_count_ends_as_an_incomplete_listing() {
    let st = zot_with_tags(&[("a", D1), ("b", D1), ("c", D2)]);
    {
        let mut s = st.lock().unwrap();
        s.ignore_offset = true;
        s.lie_total = Some(u64::MAX / 2);
    }
    let zot = fake_zot(st.clone()).await;
    let c = RegistryClient::new(&zot.url, Credentials::Anonymous, opts(100, 2)).unwrap();
    let e = c.zot_tag_stats("app").await.unwrap_err();
    assert_eq!(e.reason(), "IncompleteListing", "{e}");
    assert_eq!(
        c.stats().get(Operation::Search),
        2,
        "stopped at the first repeated page"
    );
}

#[tokio::test]
async fn a_tag_pushed_while_zot_search_pages_shifts_the_listing_and_fails_it_instead_of_skipping_one(
) {
    let st = zot_with_tags(&[("b", D1), ("c", D1), ("d", D2), ("e", D2)]);
    // sorts first: every later page shifts by one
    st.lock().unwrap().push_after_first_search = Some(("a".to_string(), D2.to_string()));
    let zot = fake_zot(st.clone()).await;
    let c = RegistryClient::new(&zot.url, Credentials::Anonymous, opts(100, 2)).unwrap();
    let e = c.zot_tag_stats("app").await.unwrap_err();
    assert_eq!(e.reason(), "IncompleteListing", "{e}");
}

#[tokio::test]
async fn a_graphql_error_from_zot_search_is_cut_short_in_the_error() {
    let st = zot_with_tags(&[("a", D1)]);
    st.lock().unwrap().search_error = Some(format!("resolver failed: {}", "x".repeat(10_000)));
    let zot = fake_zot(st.clone()).await;
    let c = RegistryClient::new(&zot.url, Credentials::Anonymous, opts(100, 2)).unwrap();
    let e = c.zot_tag_stats("app").await.unwrap_err().to_string();
    assert!(e.contains("resolver failed"), "{e}");
    assert!(e.len() < 600, "{} bytes: {e}", e.len());
}

#[tokio::test]
async fn referrers_pages_linked_by_link_headers_are_all_read() {
    let st = zot_with_tags(&[("a", D1)]);
    st.lock()
        .unwrap()
        .referrers
        .insert(D1.to_string(), vec![D2.to_string(), D3.to_string()]);
    let zot = fake_zot(st.clone()).await;
    let c = RegistryClient::new(&zot.url, Credentials::Anonymous, opts(100, 2)).unwrap();
    let r = c.referrers("app", D1).await.unwrap();
    let got: Vec<String> = r
        .descriptors
        .iter()
        .map(|d| d.digest().to_string())
        .collect();
    assert_eq!(got, [D2, D3]);
    assert_eq!(c.stats().get(Operation::Referrers), 2);
}

/// A registry that has every blob, and stores manifests rewritten: it answers the `PUT` with
/// `put_digest` (when set) and serves `served` for any manifest `GET`.
async fn rewriting_registry(put_digest: Option<&'static str>, served: Vec<u8>) -> TestServer {
    serve(move |req: Request| {
        let served = served.clone();
        async move {
            let path = req.path().to_string();
            match req.method.as_str() {
                "HEAD" if path.contains("/blobs/") => Response::status(200).into(),
                "PUT" if path.contains("/manifests/") => {
                    let mut r = Response::status(201);
                    if let Some(d) = put_digest {
                        r = r.header("docker-content-digest", d);
                    }
                    r.into()
                }
                "GET" if path.contains("/manifests/") => Response::status(200)
                    .header(
                        "content-type",
                        registry_operator::oci::media_types::OCI_MANIFEST,
                    )
                    .body(served)
                    .into(),
                _ => Response::status(404).into(),
            }
        }
    })
    .await
}

fn bare_artifact() -> registry_operator::oci::ArtifactManifest {
    registry_operator::oci::ArtifactManifest {
        artifact_type: "application/vnd.example.run-ledger.v1+json".to_string(),
        layers: Vec::new(),
        subject: None,
        annotations: BTreeMap::new(),
    }
}

#[tokio::test]
async fn an_artifact_the_registry_stores_rewritten_is_a_digest_mismatch() {
    // the PUT's answer names another digest
    let reg = rewriting_registry(Some(D1), Vec::new()).await;
    let c =
        RegistryClient::new(&reg.url, Credentials::Anonymous, ClientOptions::default()).unwrap();
    let e = c
        .push_artifact("ledger", &bare_artifact(), Some("run-1"))
        .await
        .unwrap_err();
    assert_eq!(e.reason(), "DigestMismatch", "{e}");
    // the PUT names none, and what comes back by digest is other bytes
    let rewritten = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;
    let reg = rewriting_registry(None, rewritten.to_vec()).await;
    let c =
        RegistryClient::new(&reg.url, Credentials::Anonymous, ClientOptions::default()).unwrap();
    let e = c
        .push_artifact("ledger", &bare_artifact(), None)
        .await
        .unwrap_err();
    assert_eq!(e.reason(), "DigestMismatch", "{e}");
}

#[tokio::test]
async fn an_upload_sent_to_another_origin_is_refused_and_nothing_goes_there() {
    let elsewhere_hits = Arc::new(AtomicU64::new(0));
    let hits = elsewhere_hits.clone();
    let elsewhere = support::http::serve_on("127.0.0.2", move |_req: Request| {
        hits.fetch_add(1, Ordering::SeqCst);
        async { Response::status(202).into() }
    })
    .await;
    let location = format!("{}/v2/ledger/blobs/uploads/abc", elsewhere.url);
    let reg = serve(move |req: Request| {
        let location = location.clone();
        async move {
            match req.method.as_str() {
                "POST" => Response::status(202).header("location", &location).into(),
                _ => Response::status(404).into(),
            }
        }
    })
    .await;
    let c =
        RegistryClient::new(&reg.url, Credentials::Anonymous, ClientOptions::default()).unwrap();
    let e = c
        .push_blob("ledger", bytes::Bytes::from_static(b"ledger"))
        .await
        .unwrap_err();
    assert_eq!(e.reason(), "InvalidResponse", "{e}");
    assert!(e.to_string().contains("another origin"), "{e}");
    assert_eq!(elsewhere_hits.load(Ordering::SeqCst), 0);
    assert_eq!(c.stats().get(Operation::CompleteUpload), 0);
}

#[tokio::test]
async fn a_layer_served_with_other_bytes_than_its_digest_is_refused_whole_and_streamed() {
    let reg = serve(|req: Request| async move {
        if req.method == "GET" && req.path().contains("/blobs/") {
            Response::status(200).body(b"tampered".to_vec()).into()
        } else {
            Response::status(404).into()
        }
    })
    .await;
    let c =
        RegistryClient::new(&reg.url, Credentials::Anonymous, ClientOptions::default()).unwrap();
    let e = c.fetch_blob("ledger", D1).await.unwrap_err();
    assert_eq!(e.reason(), "DigestMismatch", "{e}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("layer");
    let e = c
        .fetch_blob_to_file("ledger", D1, &path, 1024)
        .await
        .unwrap_err();
    assert_eq!(e.reason(), "DigestMismatch", "{e}");
    assert!(
        !path.exists(),
        "a layer that failed its digest is not left on disk"
    );
}
