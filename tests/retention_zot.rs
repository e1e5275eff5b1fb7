//! The retention engine against a loopback double of zot (no zot binary can run here),
//! following zot v2.1's documented API: `/v2/_zot/ext/mgmt`, the search extension's
//! `ImageList` with per-tag push times, DELETE by tag removing only that tag, DELETE by digest
//! removing every tag on it, 429 with `Retry-After` from its rate limiter. What it proves: on
//! zot the engine reads ages from the search API and never GETs a manifest (so zot's pull
//! statistics are not skewed), deletes tags one by one (a tag moved onto a doomed image keeps
//! it), and re-resolves a tag before retrying its DELETE.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use registry_operator::api::retention::{PolicyMode, RetentionRules};
use registry_operator::engine::{
    collect_inventory, execute, run_policy, CollectOptions, ExecuteOptions, ItemResult, RunOptions,
};
use registry_operator::oci::{ClientOptions, Credentials, Operation, RegistryClient};
use registry_operator::retention::{plan, InUse, Mutation, Policy, Protections};
use support::http::{serve, Reply, Request, Response};

const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
const D3: &str = "sha256:3333333333333333333333333333333333333333333333333333333333333333";
const D4: &str = "sha256:4444444444444444444444444444444444444444444444444444444444444444";
const D5: &str = "sha256:5555555555555555555555555555555555555555555555555555555555555555";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

#[derive(Default)]
struct Zot {
    /// tag -> (digest, days since push)
    tags: BTreeMap<String, (String, i64)>,
    /// manifest GETs seen (each one a pull in zot's statistics)
    manifest_gets: u64,
    /// DELETE requests seen
    deletes: u64,
    /// tag -> days since it was set on its image (zot v2.1.15+ `TaggedTimestamp`)
    tagged: BTreeMap<String, i64>,
    /// search queries seen
    queries: Vec<String>,
    /// answer the next DELETE 429 with `Retry-After: 1` (zot's rate limiter)
    throttle_next_delete: bool,
    /// index digest -> the images it lists, nested indexes flattened (as zot's search
    /// reports an index's `Manifests`)
    indexes: BTreeMap<String, Vec<String>>,
}

fn handle(st: &Mutex<Zot>, req: Request) -> Reply {
    let mut s = st.lock().unwrap();
    let path = req.path().to_string();
    let manifest = path.strip_prefix("/v2/app/manifests/").map(str::to_string);
    match (req.method.as_str(), path.as_str(), manifest) {
        ("GET", "/v2/", _) => Response::status(200).into(),
        // zot v2.1.20 sends its JSON as text/plain
        ("GET", "/v2/_zot/ext/mgmt", _) => Response::status(200)
            .header("content-type", "text/plain; charset=utf-8")
            .body(serde_json::json!({"distSpecVersion": "1.1.1", "commit": "v2.1.20", "releaseTag": "v2.1.20", "binaryType": "-sync-search", "http": {"auth": {}}}).to_string())
            .into(),
        ("GET", "/v2/_catalog", _) => {
            Response::json(200, &serde_json::json!({"repositories": ["app"]})).into()
        }
        ("GET", "/v2/app/tags/list", _) => {
            let tags: Vec<&String> = s.tags.keys().collect();
            Response::json(200, &serde_json::json!({"name": "app", "tags": tags})).into()
        }
        ("HEAD", _, Some(reference)) => {
            let digest = if reference.starts_with("sha256:") {
                s.tags
                    .values()
                    .find(|(d, _)| *d == reference)
                    .map(|(d, _)| d.clone())
            } else {
                s.tags.get(&reference).map(|(d, _)| d.clone())
            };
            match digest {
                Some(d) => Response::status(200)
                    .header("content-type", media_type(&s, &d))
                    .header("docker-content-digest", &d)
                    .header("content-length", "500")
                    .into(),
                None => Response::status(404).into(),
            }
        }
        ("GET", _, Some(_)) => {
            s.manifest_gets += 1;
            Response::json(500, &serde_json::json!({"errors":[{"code":"UNEXPECTED_PULL"}]})).into()
        }
        ("DELETE", _, Some(_)) if std::mem::take(&mut s.throttle_next_delete) => {
            s.deletes += 1;
            Response::json(429, &serde_json::json!({"errors":[{"code":"TOOMANYREQUESTS"}]}))
                .header("retry-after", "1")
                .into()
        }
        ("DELETE", _, Some(reference)) => {
            s.deletes += 1;
            let before = s.tags.len();
            if reference.starts_with("sha256:") {
                s.tags.retain(|_, (d, _)| *d != reference);
            } else {
                s.tags.remove(&reference);
            }
            if s.tags.len() == before {
                Response::status(404).into()
            } else {
                Response::status(202).into()
            }
        }
        ("POST", "/v2/_zot/ext/search", _) => {
            let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
            let query = body["query"].as_str().unwrap_or_default().to_string();
            s.queries.push(query.clone());
            let now = jiff::Timestamp::now();
            let ago = |days: i64| (now - jiff::SignedDuration::from_hours(24 * days)).to_string();
            let results: Vec<serde_json::Value> = s
                .tags
                .iter()
                .map(|(t, (d, days))| {
                    let mut r = serde_json::json!({
                        "RepoName": "app", "Tag": t, "Digest": d, "MediaType": media_type(&s, d),
                        "PushTimestamp": ago(*days),
                        // zot v2.1.20 reports "never pulled" as the Unix epoch
                        "LastPullTimestamp": "1970-01-01T00:00:00Z", "DownloadCount": 0,
                    });
                    // zot v2.1.15+: when the tag was set, falling back to the push time
                    if query.contains("TaggedTimestamp") {
                        r["TaggedTimestamp"] = ago(s.tagged.get(t).copied().unwrap_or(*days)).into();
                    }
                    // an index lists its images (flattened); an image lists itself
                    if query.contains("Manifests") {
                        let images = s.indexes.get(d).cloned().unwrap_or_else(|| vec![d.clone()]);
                        r["Manifests"] = images
                            .iter()
                            .map(|i| serde_json::json!({"Digest": i}))
                            .collect::<Vec<_>>()
                            .into();
                    }
                    r
                })
                .collect();
            Response::json(
                200,
                &serde_json::json!({"data": {"ImageList": {"Page": {"TotalCount": results.len(), "ItemCount": results.len()}, "Results": results}}}),
            )
            .into()
        }
        _ => Response::json(404, &serde_json::json!({"errors":[{"code":"NOT_FOUND"}]})).into(),
    }
}

#[tokio::test]
async fn on_zot_ages_come_from_the_search_api_no_manifest_is_pulled_and_a_shared_tag_goes_alone() {
    let state = Arc::new(Mutex::new(Zot::default()));
    {
        let mut s = state.lock().unwrap();
        for (tag, digest, days) in [
            ("v1", D1, 10),
            ("v2", D2, 9),
            ("v2-alias", D2, 9),
            ("v3", D3, 2),
            ("v4", D4, 1),
            ("latest", D4, 1),
        ] {
            s.tags.insert(tag.to_string(), (digest.to_string(), days));
        }
    }
    let st = state.clone();
    let zot = serve(move |req: Request| {
        let st = st.clone();
        async move { handle(&st, req) }
    })
    .await;
    let client =
        RegistryClient::new(&zot.url, Credentials::Anonymous, ClientOptions::default()).unwrap();
    let rules: RetentionRules = serde_yaml::from_str(
        "mode: Enforce\nrepositories: {include: ['**']}\nkeep:\n  - tags: {regex: '^(latest|v2)$'}\n  - tags: {regex: '.*'}\n    mostRecent: 2\n",
    )
    .unwrap();
    let policy = Policy::compile("ns/zot", &rules).unwrap();
    assert_eq!(policy.mode(), PolicyMode::Enforce);
    let result = run_policy(
        &client,
        &policy,
        &RunOptions::default(),
        jiff::Timestamp::now(),
    )
    .await
    .unwrap();

    // v2-alias goes alone (v2 keeps the image); v1's image goes whole
    assert!(result
        .plan
        .mutations()
        .any(|m| matches!(m, Mutation::DeleteTag { tag, .. } if &**tag == "v2-alias")));
    let exec = result.execution.unwrap();
    assert_eq!(exec.counts.errors, 0, "{:?}", exec.items);
    assert_eq!(exec.counts.deleted_tags, 2);
    let left: Vec<String> = state.lock().unwrap().tags.keys().cloned().collect();
    assert_eq!(left, vec!["latest", "v2", "v3", "v4"]);

    // invariant 8: no manifest GET at all (each would count as a pull)
    assert_eq!(state.lock().unwrap().manifest_gets, 0);
    assert_eq!(result.collect_requests.get(Operation::GetManifest), 0);
    assert_eq!(result.collect_requests.get(Operation::Search), 1);
    // one re-check and one DELETE per deletion
    assert_eq!(result.execute_requests.get(Operation::HeadManifest), 2);
    assert_eq!(result.execute_requests.get(Operation::DeleteManifest), 2);
}

fn media_type(s: &Zot, digest: &str) -> &'static str {
    if s.indexes.contains_key(digest) {
        OCI_INDEX
    } else {
        OCI_MANIFEST
    }
}

/// A zot double with `tags` (tag, digest, days since push).
async fn zot_with(tags: &[(&str, &str, i64)]) -> (Arc<Mutex<Zot>>, support::http::TestServer) {
    let state = Arc::new(Mutex::new(Zot::default()));
    {
        let mut s = state.lock().unwrap();
        for (tag, digest, days) in tags {
            s.tags.insert(tag.to_string(), (digest.to_string(), *days));
        }
    }
    let st = state.clone();
    let zot = serve(move |req: Request| {
        let st = st.clone();
        async move { handle(&st, req) }
    })
    .await;
    (state, zot)
}

fn keep_prod() -> Policy {
    let rules: RetentionRules = serde_yaml::from_str(
        "mode: Enforce\nrepositories: {include: ['**']}\nkeep:\n  - tags: {regex: 'prod'}\n",
    )
    .unwrap();
    Policy::compile("ns/zot", &rules).unwrap()
}

#[tokio::test]
async fn on_zot_a_kept_tag_moved_onto_a_doomed_image_survives_because_tags_go_one_by_one() {
    let (state, zot) = zot_with(&[("v1", D1, 10), ("v1-alias", D1, 10), ("prod", D2, 1)]).await;
    let client =
        RegistryClient::new(&zot.url, Credentials::Anonymous, ClientOptions::default()).unwrap();
    let policy = keep_prod();
    let inventory = collect_inventory(&client, |r| policy.in_scope(r), &CollectOptions::default())
        .await
        .unwrap();
    let planned = plan(
        &policy,
        &[],
        &inventory,
        &Protections::default(),
        jiff::Timestamp::now(),
    );
    // every tag of the image goes, each on its own: no DELETE by digest
    assert!(planned
        .mutations()
        .all(|m| matches!(m, Mutation::DeleteTag { .. })));
    // the rollback, after the listing: prod goes back to v1's image
    state.lock().unwrap().tags.get_mut("prod").unwrap().0 = D1.to_string();

    let exec = execute(&client, &planned, &inventory, &ExecuteOptions::default())
        .await
        .unwrap();

    assert_eq!(exec.counts.errors, 0, "{:?}", exec.items);
    assert_eq!(exec.counts.deleted_tags, 2);
    let left: BTreeMap<String, (String, i64)> = state.lock().unwrap().tags.clone();
    assert_eq!(left.keys().collect::<Vec<_>>(), ["prod"]);
    assert_eq!(left["prod"].0, D1);
}

#[tokio::test]
async fn on_zot_a_delete_answered_429_is_retried_only_after_re_resolving_the_tag() {
    let (state, zot) = zot_with(&[("v1", D1, 10), ("prod", D2, 1)]).await;
    state.lock().unwrap().throttle_next_delete = true;
    let client =
        RegistryClient::new(&zot.url, Credentials::Anonymous, ClientOptions::default()).unwrap();
    // While the engine waits out the Retry-After, someone pushes a new image as v1.
    let st = state.clone();
    let repush = tokio::spawn(async move {
        for _ in 0..500 {
            {
                let mut s = st.lock().unwrap();
                if s.deletes >= 1 {
                    s.tags.insert("v1".to_string(), (D3.to_string(), 0));
                    return true;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        false
    });

    let result = run_policy(
        &client,
        &keep_prod(),
        &RunOptions::default(),
        jiff::Timestamp::now(),
    )
    .await
    .unwrap();

    assert!(repush.await.unwrap(), "the DELETE was sent");
    let exec = result.execution.unwrap();
    assert!(
        matches!(&exec.items[0].result, ItemResult::Changed { tag, now } if tag == "v1" && now == D3),
        "{:?}",
        exec.items
    );
    // the re-pushed tag is still there: the retry re-resolved it and left it alone
    let s = state.lock().unwrap();
    assert_eq!(s.tags["v1"].0, D3);
    assert_eq!(s.deletes, 1);
    assert_eq!(result.execute_requests.get(Operation::HeadManifest), 2);
}

#[tokio::test]
async fn on_zot_a_new_tag_on_an_old_image_is_as_young_as_the_tag() {
    // `crane tag app:v1 candidate` today, on an image pushed 10 days ago
    let (state, zot) = zot_with(&[("v1", D1, 10), ("candidate", D1, 10), ("prod", D2, 1)]).await;
    state
        .lock()
        .unwrap()
        .tagged
        .insert("candidate".to_string(), 0);
    let client =
        RegistryClient::new(&zot.url, Credentials::Anonymous, ClientOptions::default()).unwrap();
    let result = run_policy(
        &client,
        &keep_prod(),
        &RunOptions::default(),
        jiff::Timestamp::now(),
    )
    .await
    .unwrap();
    let report = result.report();
    let reason = |tag: &str| {
        report
            .decisions
            .iter()
            .find(|d| d.tag == tag)
            .map(|d| d.reason.clone())
            .unwrap()
    };
    assert!(
        reason("candidate").contains("tagged 0s ago, within the 1h grace period"),
        "{}",
        reason("candidate")
    );
    assert!(
        reason("v1").starts_with("delete: tagged 10d ago"),
        "{}",
        reason("v1")
    );
    let left: Vec<String> = state.lock().unwrap().tags.keys().cloned().collect();
    assert_eq!(left, ["candidate", "prod"]);
    assert!(state.lock().unwrap().queries[0].contains("TaggedTimestamp"));
}

/// Issue 14 case 8: a GET of a tagged index counts as a pull in zot's statistics (seen on
/// zot v2.1.20), so the images an index lists are taken from the search answer, which lists
/// them with nested indexes flattened — and they protect the index as well as a GET would.
#[tokio::test]
async fn on_zot_an_index_is_not_fetched_its_images_come_from_the_search_and_one_in_use_keeps_it() {
    let (state, zot) = zot_with(&[("stable", D5, 10), ("old-amd64", D2, 10), ("v1", D1, 10)]).await;
    state
        .lock()
        .unwrap()
        .indexes
        .insert(D5.to_string(), vec![D2.to_string(), D3.to_string()]);
    let client =
        RegistryClient::new(&zot.url, Credentials::Anonymous, ClientOptions::default()).unwrap();
    let policy = keep_prod();
    let mut in_use = InUse::new();
    in_use.add_digest("app", D3, "Pod team-a/web-1");
    let options = RunOptions {
        protections: Protections { in_use },
        ..RunOptions::default()
    };

    let result = run_policy(&client, &policy, &options, jiff::Timestamp::now())
        .await
        .unwrap();

    assert_eq!(
        state.lock().unwrap().manifest_gets,
        0,
        "a tagged index was pulled"
    );
    assert_eq!(result.collect_requests.get(Operation::GetManifest), 0);
    let stable = result
        .report()
        .decisions
        .iter()
        .find(|d| d.tag == "stable")
        .map(|d| format!("{:?}: {}", d.action, d.reason))
        .expect("a decision for stable");
    assert!(stable.contains("Pod team-a/web-1"), "{stable}");
    let exec = result.execution.expect("executed");
    assert_eq!(exec.counts.errors, 0, "{:?}", exec.items);
    let left: Vec<String> = state.lock().unwrap().tags.keys().cloned().collect();
    assert_eq!(left, vec!["stable"]);
}
