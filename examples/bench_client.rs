//! Benchmark of the registry client against a real, freshly seeded distribution registry
//! (not a test). Prints HEAD and DELETE throughput of the client next to a raw concurrent
//! reqwest load with the same concurrency, and the requests per tag of a full inventory.
//!
//! ```text
//! cargo run --release --example bench_client [REPOS] [TAGS] [CONCURRENCY]   # default 50 20 8
//! ```
//!
//! Needs `docker-registry` (Debian package). Client, registry and load share the machine's
//! cores: the numbers are this box's, compare them with each other.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use registry_operator::oci::{media_types, ClientOptions, Credentials, Operation, RegistryClient};
use support::registry::TestRegistry;
use support::seed::{Fleet, Seeder};

fn arg(i: usize, default: usize) -> usize {
    std::env::args()
        .nth(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

/// Rounds per HEAD measurement (best is reported).
const ROUNDS: usize = 4;

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn client(url: &str, concurrency: usize) -> RegistryClient {
    RegistryClient::new(
        url,
        Credentials::Anonymous,
        ClientOptions {
            max_concurrency: concurrency,
            ..ClientOptions::default()
        },
    )
    .expect("client")
}

async fn head_client(c: &RegistryClient, pairs: &[(String, String)], conc: usize) -> Duration {
    let start = Instant::now();
    let n = stream::iter(pairs)
        .map(|(r, t)| async move { c.head_manifest(r, t).await.expect("head").is_some() })
        .buffer_unordered(conc)
        .filter(|ok| futures::future::ready(*ok))
        .count()
        .await;
    assert_eq!(n, pairs.len());
    start.elapsed()
}

async fn head_raw(
    http: &reqwest::Client,
    base: &str,
    pairs: &[(String, String)],
    conc: usize,
) -> Duration {
    let start = Instant::now();
    let n = stream::iter(pairs)
        .map(|(r, t)| async move {
            let resp = http
                .head(format!("{base}/v2/{r}/manifests/{t}"))
                .header("accept", media_types::ACCEPT_MANIFESTS)
                .send()
                .await
                .expect("raw head");
            resp.status().as_u16() == 200
        })
        .buffer_unordered(conc)
        .filter(|ok| futures::future::ready(*ok))
        .count()
        .await;
    assert_eq!(n, pairs.len());
    start.elapsed()
}

fn digests(fleet: &Fleet, repos: &[String]) -> Vec<(String, String)> {
    repos
        .iter()
        .flat_map(|r| {
            fleet[r]
                .values()
                .cloned()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .map(move |d| (r.clone(), d))
        })
        .collect()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let (repos, tags, conc) = (arg(1, 50), arg(2, 20), arg(3, 8));
    let reg = TestRegistry::start();
    let t = Instant::now();
    let fleet = Seeder::new(&reg.url, None).seed_fleet(repos, tags, 8).await;
    let n_tags: usize = fleet.values().map(|t| t.len()).sum();
    let n_digests: usize = fleet
        .values()
        .map(|t| t.values().collect::<BTreeSet<_>>().len())
        .sum();
    println!(
        "seeded {repos} repos x {tags} tags = {n_tags} tags, {n_digests} distinct digests in {:.1} s (registry {} on {})",
        t.elapsed().as_secs_f64(),
        support::registry::binary(),
        reg.url
    );

    // --- full inventory: requests per tag
    let c = client(&reg.url, conc);
    let t = Instant::now();
    let mut inventoried = 0usize;
    for repo in c.catalog().await.expect("catalog") {
        let tag_list = c.tags(&repo).await.expect("tags");
        let heads: Vec<_> = stream::iter(tag_list.iter())
            .map(|t| {
                let (c, repo) = (&c, &repo);
                async move {
                    c.head_manifest(repo, t)
                        .await
                        .expect("head")
                        .expect("exists")
                }
            })
            .buffer_unordered(conc)
            .collect()
            .await;
        inventoried += heads.len();
        let distinct: BTreeSet<String> = heads.into_iter().map(|h| h.digest).collect();
        stream::iter(distinct)
            .for_each_concurrent(conc, |d| {
                let (c, repo) = (&c, &repo);
                async move {
                    let m = c.get_manifest(repo, &d).await.expect("get");
                    if let Some(cfg) = m.config_digest() {
                        c.config_created(repo, &cfg).await.expect("config");
                    }
                }
            })
            .await;
    }
    let inv_time = t.elapsed();
    let s = c.stats();
    assert_eq!(inventoried, n_tags);
    println!(
        "inventory (catalog + tags/list + HEAD per tag + GET manifest & config per distinct digest): {} requests for {n_tags} tags = {:.2} requests/tag in {:.2} s ({:.0} req/s; catalog {}, tags {}, HEAD {}, GET manifest {}, GET blob {}, mutating {})",
        s.total,
        s.total as f64 / n_tags as f64,
        inv_time.as_secs_f64(),
        rate(s.total as usize, inv_time),
        s.get(Operation::Catalog),
        s.get(Operation::Tags),
        s.get(Operation::HeadManifest),
        s.get(Operation::GetManifest),
        s.get(Operation::GetBlob),
        s.mutating
    );
    let head_only = 1.0 / n_tags as f64
        * (s.get(Operation::Catalog) + s.get(Operation::Tags) + s.get(Operation::HeadManifest))
            as f64;
    println!(
        "inventory without ages (catalog + tags/list + HEAD per tag): {head_only:.2} requests/tag"
    );

    // --- HEAD throughput, client vs raw, same concurrency, alternating, 2 rounds each
    let pairs: Vec<(String, String)> = fleet
        .iter()
        .flat_map(|(r, t)| t.keys().map(move |k| (r.clone(), k.clone())))
        .collect();
    let raw = reqwest::Client::builder()
        .pool_max_idle_per_host(conc)
        .build()
        .expect("raw");
    for level in [1usize, conc] {
        let c = client(&reg.url, level);
        let mut best_c = Duration::MAX;
        let mut best_r = Duration::MAX;
        for round in 0..ROUNDS {
            // alternate who goes first: the box is shared, load drifts
            if round % 2 == 0 {
                best_c = best_c.min(head_client(&c, &pairs, level).await);
                best_r = best_r.min(head_raw(&raw, &reg.url, &pairs, level).await);
            } else {
                best_r = best_r.min(head_raw(&raw, &reg.url, &pairs, level).await);
                best_c = best_c.min(head_client(&c, &pairs, level).await);
            }
        }
        println!(
            "HEAD manifest, concurrency {level:>2}: client {:>6.0} req/s | raw reqwest {:>6.0} req/s ({} requests each, best of {ROUNDS})",
            rate(pairs.len(), best_c),
            rate(pairs.len(), best_r),
            pairs.len()
        );
    }

    // --- DELETE throughput: the repositories are split in four quarters of the same shape;
    // the client deletes every distinct digest of quarters 1 and 3, the raw load those of
    // quarters 2 and 4 (interleaved, since the box is shared and load drifts)
    let names: Vec<String> = fleet.keys().cloned().collect();
    let quarter = names.len().div_ceil(4).max(1);
    let c = client(&reg.url, conc);
    let (mut n_c, mut t_c, mut n_r, mut t_r) = (0usize, Duration::ZERO, 0usize, Duration::ZERO);
    for (i, chunk) in names.chunks(quarter).enumerate() {
        let work = digests(&fleet, chunk);
        let t = Instant::now();
        if i % 2 == 0 {
            stream::iter(&work)
                .for_each_concurrent(conc, |(r, d)| {
                    let c = &c;
                    async move {
                        c.delete_manifest(r, d).await.expect("delete");
                    }
                })
                .await;
            t_c += t.elapsed();
            n_c += work.len();
        } else {
            stream::iter(&work)
                .for_each_concurrent(conc, |(r, d)| {
                    let raw = &raw;
                    let url = &reg.url;
                    async move {
                        let s = raw
                            .delete(format!("{url}/v2/{r}/manifests/{d}"))
                            .send()
                            .await
                            .expect("raw delete")
                            .status()
                            .as_u16();
                        assert_eq!(s, 202);
                    }
                })
                .await;
            t_r += t.elapsed();
            n_r += work.len();
        }
    }
    println!(
        "DELETE manifest by digest, concurrency {conc:>2}: client {:>6.0} req/s ({n_c} deletes, {} requests) | raw reqwest {:>6.0} req/s ({n_r} deletes)",
        rate(n_c, t_c),
        c.stats().get(Operation::DeleteManifest),
        rate(n_r, t_r),
    );
    for r in names.iter().take(3) {
        assert!(client(&reg.url, 1).tags(r).await.expect("tags").is_empty());
    }
}
