//! The retention engine against a loopback double of zot (no zot binary can run here),
//! following zot v2.1's documented API: `/v2/_zot/ext/mgmt`, the search extension's
//! `ImageList` with per-tag push times, DELETE by tag removing only that tag, DELETE by digest
//! removing every tag on it. What it proves: on zot the engine reads ages from the search API
//! and never GETs a manifest (so zot's pull statistics are not skewed), and deletes a tag alone
//! when its image stays for another tag.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use registry_operator::api::retention::{PolicyMode, RetentionRules};
use registry_operator::engine::{run_policy, RunOptions};
use registry_operator::oci::{ClientOptions, Credentials, Operation, RegistryClient};
use registry_operator::retention::{Mutation, Policy};
use support::http::{serve, Reply, Request, Response};

const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
const D3: &str = "sha256:3333333333333333333333333333333333333333333333333333333333333333";
const D4: &str = "sha256:4444444444444444444444444444444444444444444444444444444444444444";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

#[derive(Default)]
struct Zot {
    /// tag -> (digest, days since push)
    tags: BTreeMap<String, (String, i64)>,
    /// manifest GETs seen (each one a pull in zot's statistics)
    manifest_gets: u64,
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
                    .header("docker-content-digest", &d)
                    .header("content-type", OCI_MANIFEST)
                    .header("content-length", "500")
                    .into(),
                None => Response::status(404).into(),
            }
        }
        ("GET", _, Some(_)) => {
            s.manifest_gets += 1;
            Response::json(500, &serde_json::json!({"errors":[{"code":"UNEXPECTED_PULL"}]})).into()
        }
        ("DELETE", _, Some(reference)) => {
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
            let now = jiff::Timestamp::now();
            let results: Vec<serde_json::Value> = s
                .tags
                .iter()
                .map(|(t, (d, days))| {
                    let pushed = now - jiff::SignedDuration::from_hours(24 * days);
                    serde_json::json!({
                        "RepoName": "app", "Tag": t, "Digest": d, "MediaType": OCI_MANIFEST,
                        "PushTimestamp": pushed.to_string(),
                        // zot v2.1.20 reports "never pulled" as the Unix epoch
                        "LastPullTimestamp": "1970-01-01T00:00:00Z", "DownloadCount": 0,
                    })
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
