//! Retention plan+apply on a seeded real registry, next to the baselines people write by hand,
//! on the same data in the same run. `cargo run --release --example bench_retention`
//! (or `scripts/bench.sh`).
//!
//! Tools, all with the same decision — per repository keep the 3 newest images (by config
//! `created`, an image with several tags counts once), delete the others by digest, never a
//! digest a kept tag shares:
//! - `engine`: this project's `run_policy` (collect → plan → check → execute);
//! - `sequential`: a naive client written here, one request at a time on one keep-alive
//!   connection: catalog, tags/list, GET manifest + GET config per tag (index: its first
//!   child), DELETE by digest — the seed project's style;
//! - `skopeo`: a shell-style loop of `skopeo list-tags`, `skopeo inspect`, `skopeo delete`
//!   (one process per call), loopback only (it takes minutes);
//! - `engine, ages remembered` (loopback, first data set): the engine as the operator's scheduled runs use it,
//!   with the config `created` times an earlier (untimed) run read;
//! - `limit (replay)` (loopback, first data set): the engine's request mix, written down in advance and sent
//!   by a client with nothing else to do, as many in flight as the engine — the box's limit
//!   for that mix; `limit, no re-check` sends the same without the re-check `HEAD` before
//!   each DELETE (DESIGN invariant 3), to show what the re-checks cost.
//!
//! Before every run the registry's storage is restored from a snapshot taken after seeding
//! (a copy is faster than re-seeding and gives identical data). Networks: loopback, and a
//! loopback proxy adding 5 ms to every request (a registry across a network). Request
//! counts come from the clients' own counters (engine, sequential) or from a counting proxy
//! (skopeo). Environment: `BENCH_SETS` (default `100x20,100x100,1000x10`), `BENCH_RUNS`
//! (engine runs per point, default 3), `BENCH_SKOPEO=0` to skip skopeo, `BENCH_CONCURRENCY`
//! (engine requests in flight on loopback, default 8), `BENCH_NETS` (default
//! `loopback,5ms`), `BENCH_PHASES=1` (print each engine run's collect and execute time and
//! the CPU seconds this process and the registry spent), `DOCKER_REGISTRY_BIN`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::{BTreeMap, HashSet};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};

use registry_operator::api::retention::RetentionRules;
use registry_operator::engine::{run_policy, RunOptions};
use registry_operator::oci::{AgeCache, ClientOptions, Credentials, RegistryClient};
use registry_operator::retention::Policy;
use support::proxy::{Fault, FaultProxy, FaultRule};

const KEEP: usize = 3;
const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

type Res<T> = Result<T, String>;

/// A docker-registry process whose storage can be restored from a snapshot.
struct Registry {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
    /// Log every request to `access.log` (to count the requests of tools that do not count).
    access_log: bool,
}

impl Registry {
    fn new() -> Res<Registry> {
        let base = if Path::new("/dev/shm").is_dir() {
            "/dev/shm"
        } else {
            "/tmp"
        };
        let dir = PathBuf::from(format!("{base}/bench-retention-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("data")).map_err(|e| e.to_string())?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let mut r = Registry {
            dir,
            port,
            child: None,
            access_log: false,
        };
        r.start()?;
        Ok(r)
    }

    fn write_config(&self) -> Res<()> {
        let (dir, port) = (&self.dir, self.port);
        let config = format!(
            "version: 0.1\nlog: {{level: error, accesslog: {{disabled: {}}}}}\nstorage:\n  filesystem: {{rootdirectory: {}}}\n  delete: {{enabled: true}}\n  maintenance: {{uploadpurging: {{enabled: false}}}}\nhttp: {{addr: \"127.0.0.1:{port}\", secret: bench-only}}\n",
            !self.access_log,
            dir.join("data").display()
        );
        std::fs::write(dir.join("config.yml"), config).map_err(|e| e.to_string())
    }

    /// Requests in the access log by method.
    fn logged(&self) -> BTreeMap<String, u64> {
        let text = std::fs::read_to_string(self.dir.join("access.log")).unwrap_or_default();
        let mut by = BTreeMap::new();
        for line in text.lines() {
            for m in ["GET", "HEAD", "DELETE", "PUT", "POST", "PATCH"] {
                if line.contains(&format!("\"{m} /v2")) {
                    *by.entry(m.to_string()).or_default() += 1;
                }
            }
        }
        by
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn start(&mut self) -> Res<()> {
        self.write_config()?;
        let log = if self.access_log {
            let f =
                std::fs::File::create(self.dir.join("access.log")).map_err(|e| e.to_string())?;
            Some(f)
        } else {
            None
        };
        let (out, err) = match log {
            Some(f) => (
                Stdio::from(f.try_clone().map_err(|e| e.to_string())?),
                Stdio::from(f),
            ),
            None => (Stdio::null(), Stdio::null()),
        };
        let child = Command::new(support::registry::binary())
            .arg("serve")
            .arg(self.dir.join("config.yml"))
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("docker-registry: {e}"))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err("docker-registry did not start".into())
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn cp(from: &Path, to: &Path) -> Res<()> {
        let _ = std::fs::remove_dir_all(to);
        let ok = Command::new("cp")
            .arg("-a")
            .arg(from)
            .arg(to)
            .status()
            .map_err(|e| e.to_string())?
            .success();
        ok.then_some(()).ok_or_else(|| "cp failed".to_string())
    }

    fn snapshot(&mut self) -> Res<()> {
        self.stop();
        Self::cp(&self.dir.join("data"), &self.dir.join("snapshot"))?;
        self.start()
    }

    fn restore(&mut self) -> Res<()> {
        self.stop();
        Self::cp(&self.dir.join("snapshot"), &self.dir.join("data"))?;
        self.start()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One measured run.
struct Run {
    seconds: f64,
    requests: u64,
    by_kind: String,
    deleted: u64,
}

// ------------------------------------------------------------------ engine

/// User+system CPU seconds a process has used so far (Linux `/proc`), 0 elsewhere.
fn cpu_seconds(pid: Option<u32>) -> f64 {
    let path = pid.map_or_else(
        || "/proc/self/stat".to_string(),
        |p| format!("/proc/{p}/stat"),
    );
    let Ok(stat) = std::fs::read_to_string(path) else {
        return 0.0;
    };
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    // `rest` starts at field 3 (state, not numeric, so skipped): utime is f[10], stime f[11].
    (f.get(10).copied().unwrap_or(0.0) + f.get(11).copied().unwrap_or(0.0)) / 100.0
}

async fn engine(
    url: &str,
    concurrency: usize,
    registry_pid: Option<u32>,
    ages: Option<Arc<AgeCache>>,
) -> Res<Run> {
    let rules: RetentionRules = serde_yaml::from_str(&format!(
        "mode: Enforce\nrepositories: {{include: ['**']}}\nkeep:\n  - tags: {{regex: '.*'}}\n    mostRecent: {KEEP}\nlimits: {{maxDeletionsPerRun: 100000000}}\n"
    ))
    .map_err(|e| e.to_string())?;
    let policy = Policy::compile("bench/keep-3", &rules).map_err(|e| format!("{e:?}"))?;
    let client = RegistryClient::new(
        url,
        Credentials::Anonymous,
        ClientOptions {
            max_concurrency: concurrency,
            age_cache: ages,
            ..ClientOptions::default()
        },
    )
    .map_err(|e| e.to_string())?;
    let mut options = RunOptions::default();
    options.collect.repositories_in_flight = concurrency;
    options.collect.lookups_in_flight = concurrency;
    options.execute.repositories_in_flight = concurrency;
    options.execute.deletions_in_flight = concurrency;
    let cpu = (cpu_seconds(None), cpu_seconds(registry_pid));
    let start = Instant::now();
    let r = run_policy(&client, &policy, &options, jiff::Timestamp::now())
        .await
        .map_err(|e| e.to_string())?;
    let seconds = start.elapsed().as_secs_f64();
    if std::env::var_os("BENCH_PHASES").is_some() {
        let ms = |a: jiff::Timestamp, b: jiff::Timestamp| {
            (b - a).total(jiff::Unit::Millisecond).unwrap_or(0.0)
        };
        eprintln!(
            "    phases: collect {:.0} ms, plan+execute {:.0} ms; CPU: this process {:.2} s, registry {:.2} s",
            ms(r.started, r.collected),
            ms(r.collected, r.finished),
            cpu_seconds(None) - cpu.0,
            cpu_seconds(registry_pid) - cpu.1
        );
    }
    let exec = r.execution.ok_or("not executed")?;
    if exec.counts.errors > 0 || r.plan.counts.errors > 0 {
        return Err(format!("engine errors: {}", exec.headline()));
    }
    let s = client.stats();
    let by_kind = s
        .by_operation
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(op, n)| format!("{op} {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    Ok(Run {
        seconds,
        requests: s.total,
        by_kind,
        deleted: exec.counts.deleted_manifests,
    })
}

// ------------------------------------------------------------------ sequential baseline

/// The digests "keep the 3 newest" deletes, from `(created, tag, digest)` rows of one
/// repository, each with one of its tags: newest first (then greater tag name), an image with
/// several tags counts once, a digest a kept tag shares is kept.
fn doomed(mut rows: Vec<(String, String, String)>) -> Vec<(String, String)> {
    rows.sort_by(|a, b| b.cmp(a));
    let mut keep: Vec<String> = Vec::new();
    for (_, _, d) in &rows {
        if keep.len() == KEEP {
            break;
        }
        if !keep.contains(d) {
            keep.push(d.clone());
        }
    }
    let mut done: HashSet<String> = HashSet::new();
    rows.into_iter()
        .filter(|(_, _, d)| !keep.contains(d) && done.insert(d.clone()))
        .map(|(_, t, d)| (d, t))
        .collect()
}

struct Seq {
    http: reqwest::Client,
    base: String,
    counts: BTreeMap<&'static str, u64>,
}

impl Seq {
    async fn send(
        &mut self,
        method: &'static str,
        path: &str,
    ) -> Res<(u16, reqwest::header::HeaderMap, Vec<u8>)> {
        *self.counts.entry(method).or_default() += 1;
        let m = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
        let r = self
            .http
            .request(m, format!("{}{path}", self.base))
            .header("accept", ACCEPT)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let body = r.bytes().await.map_err(|e| e.to_string())?.to_vec();
        Ok((status, headers, body))
    }

    async fn json(&mut self, path: &str) -> Res<(reqwest::header::HeaderMap, serde_json::Value)> {
        let (status, h, body) = self.send("GET", path).await?;
        if status != 200 {
            return Err(format!("GET {path}: {status}"));
        }
        Ok((h, serde_json::from_slice(&body).map_err(|e| e.to_string())?))
    }
}

async fn sequential(url: &str) -> Res<Run> {
    let mut c = Seq {
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .build()
            .map_err(|e| e.to_string())?,
        base: url.to_string(),
        counts: BTreeMap::new(),
    };
    let start = Instant::now();
    let mut repos: Vec<String> = Vec::new();
    let mut next = Some("/v2/_catalog?n=1000".to_string());
    for _ in 0..10_000 {
        let Some(path) = next.take() else { break };
        let (h, v) = c.json(&path).await?;
        for r in v["repositories"].as_array().into_iter().flatten() {
            repos.extend(r.as_str().map(str::to_string));
        }
        next = h
            .get("link")
            .and_then(|l| l.to_str().ok())
            .and_then(|l| l.split_once('<'))
            .and_then(|(_, rest)| rest.split_once('>'))
            .map(|(p, _)| p.to_string());
    }
    let mut deleted = 0;
    for repo in &repos {
        let (_, v) = c.json(&format!("/v2/{repo}/tags/list")).await?;
        let tags: Vec<String> = v["tags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str().map(str::to_string))
            .collect();
        let mut rows: Vec<(String, String, String)> = Vec::new(); // (created, tag, digest)
        for tag in tags {
            let (h, mut m) = c.json(&format!("/v2/{repo}/manifests/{tag}")).await?;
            let digest = h
                .get("docker-content-digest")
                .and_then(|d| d.to_str().ok())
                .unwrap_or_default()
                .to_string();
            if let Some(child) = m["manifests"][0]["digest"].as_str().map(str::to_string) {
                m = c.json(&format!("/v2/{repo}/manifests/{child}")).await?.1;
            }
            let config = m["config"]["digest"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let (_, cfg) = c.json(&format!("/v2/{repo}/blobs/{config}")).await?;
            let created = cfg["created"].as_str().unwrap_or_default().to_string();
            rows.push((created, tag, digest));
        }
        for (d, _) in doomed(rows) {
            let (status, _, _) = c
                .send("DELETE", &format!("/v2/{repo}/manifests/{d}"))
                .await?;
            if status != 202 {
                return Err(format!("DELETE {repo}@{d}: {status}"));
            }
            deleted += 1;
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    Ok(Run {
        seconds,
        requests: c.counts.values().sum(),
        by_kind: c
            .counts
            .iter()
            .map(|(m, n)| format!("{m} {n}"))
            .collect::<Vec<_>>()
            .join(", "),
        deleted,
    })
}

// ------------------------------------------------------------------ the box's limit

/// The engine's request mix, fixed in advance: what a client that did no work but sending
/// requests would send for the same decision.
struct Mix {
    /// Catalog, tag listings, one manifest GET per tag, index children that are not tagged,
    /// one config GET per distinct config (as the engine reads them).
    reads: Vec<String>,
    /// (repository, one of its tags, digest) per digest to delete.
    deletions: Vec<(String, String, String)>,
}

/// Walks the registry (untimed, one request at a time) and writes down the engine's
/// request mix and the "keep the 3 newest" decision.
async fn engine_mix(url: &str) -> Res<Mix> {
    const CREATED: &str = "org.opencontainers.image.created";
    let mut c = Seq {
        http: reqwest::Client::new(),
        base: url.to_string(),
        counts: BTreeMap::new(),
    };
    let mut mix = Mix {
        reads: vec!["/v2/_catalog?n=1000".to_string()],
        deletions: Vec::new(),
    };
    let (_, v) = c.json("/v2/_catalog?n=1000").await?;
    let repos: Vec<String> = v["repositories"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r.as_str().map(str::to_string))
        .collect();
    for repo in &repos {
        mix.reads.push(format!("/v2/{repo}/tags/list"));
        let (_, v) = c.json(&format!("/v2/{repo}/tags/list")).await?;
        let mut tagged: BTreeMap<String, serde_json::Value> = BTreeMap::new();
        let mut tags: Vec<(String, String)> = Vec::new();
        for tag in v["tags"].as_array().into_iter().flatten() {
            let tag = tag.as_str().unwrap_or_default().to_string();
            mix.reads.push(format!("/v2/{repo}/manifests/{tag}"));
            let (h, m) = c.json(&format!("/v2/{repo}/manifests/{tag}")).await?;
            let digest = h
                .get("docker-content-digest")
                .and_then(|d| d.to_str().ok())
                .unwrap_or_default()
                .to_string();
            tagged.insert(digest.clone(), m);
            tags.push((tag, digest));
        }
        // The image that dates each digest: itself, or an index's first child.
        let mut configs: BTreeMap<String, String> = BTreeMap::new(); // config -> created
        let mut rows = Vec::new();
        for (tag, digest) in &tags {
            let mut m = tagged[digest].clone();
            if let Some(child) = m["manifests"][0]["digest"].as_str().map(str::to_string) {
                if m["annotations"][CREATED].is_null() {
                    m = match tagged.get(&child) {
                        Some(m) => m.clone(),
                        None => {
                            let path = format!("/v2/{repo}/manifests/{child}");
                            if !mix.reads.contains(&path) {
                                mix.reads.push(path.clone());
                            }
                            c.json(&path).await?.1
                        }
                    };
                }
            }
            let created = match m["annotations"][CREATED].as_str() {
                Some(t) => t.to_string(),
                None => {
                    let config = m["config"]["digest"].as_str().unwrap_or_default();
                    if !configs.contains_key(config) {
                        let path = format!("/v2/{repo}/blobs/{config}");
                        mix.reads.push(path.clone());
                        let (_, cfg) = c.json(&path).await?;
                        let t = cfg["created"].as_str().unwrap_or_default().to_string();
                        configs.insert(config.to_string(), t);
                    }
                    configs[config].clone()
                }
            };
            rows.push((created, tag.clone(), digest.clone()));
        }
        for (digest, tag) in doomed(rows) {
            mix.deletions.push((repo.clone(), tag, digest));
        }
    }
    Ok(mix)
}

/// One request whose body is read and dropped; anything but 200 or 202 is an error.
async fn send_raw(
    http: &reqwest::Client,
    url: &str,
    method: reqwest::Method,
    path: String,
) -> Res<()> {
    let r = http
        .request(method.clone(), format!("{url}{path}"))
        .header("accept", ACCEPT)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = r.status().as_u16();
    r.bytes().await.map_err(|e| e.to_string())?;
    match status {
        200 | 202 => Ok(()),
        s => Err(format!("{method} {path}: {s}")),
    }
}

/// Sends `mix` with `concurrency` requests in flight and nothing else to do: all reads, then
/// per deletion a re-check `HEAD` (when `recheck`) and the `DELETE`. The time is this box's
/// limit for that mix.
async fn replay(url: &str, mix: &Mix, concurrency: usize, recheck: bool) -> Res<Run> {
    let http = reqwest::Client::new();
    let counts = std::sync::Mutex::new(BTreeMap::<&'static str, u64>::new());
    let send = |method: &'static str, path: String| {
        *counts.lock().unwrap().entry(method).or_default() += 1;
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("a method name");
        send_raw(&http, url, m, path)
    };
    let start = Instant::now();
    let reads: Vec<Res<()>> = stream::iter(mix.reads.iter())
        .map(|p| send("GET", p.clone()))
        .buffer_unordered(concurrency)
        .collect()
        .await;
    reads.into_iter().collect::<Res<Vec<()>>>()?;
    let deletes: Vec<Res<()>> = stream::iter(mix.deletions.iter())
        .map(|(repo, tag, digest)| async move {
            if recheck {
                send("HEAD", format!("/v2/{repo}/manifests/{tag}")).await?;
            }
            send("DELETE", format!("/v2/{repo}/manifests/{digest}")).await
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    deletes.into_iter().collect::<Res<Vec<()>>>()?;
    let seconds = start.elapsed().as_secs_f64();
    let counts = counts.into_inner().unwrap();
    Ok(Run {
        seconds,
        requests: counts.values().sum(),
        by_kind: counts
            .iter()
            .map(|(m, n)| format!("{m} {n}"))
            .collect::<Vec<_>>()
            .join(", "),
        deleted: mix.deletions.len() as u64,
    })
}

/// The registry's CPU time per request, by kind: each kind of the mix sent on its own
/// (`concurrency` in flight), the registry process's CPU read from `/proc` before and after.
/// Deletes the mix's digests: restore the storage afterwards.
async fn registry_costs(
    url: &str,
    mix: &Mix,
    concurrency: usize,
    registry_pid: Option<u32>,
) -> Res<Vec<(&'static str, usize, f64, f64)>> {
    let http = reqwest::Client::new();
    let kind = |p: &str| {
        if p.contains("/tags/list") {
            "GET tags/list"
        } else if p.contains("/blobs/") {
            "GET config blob"
        } else if p.contains("/manifests/") {
            "GET manifest"
        } else {
            "GET catalog"
        }
    };
    let mut batches: Vec<(&'static str, Vec<(reqwest::Method, String)>)> = Vec::new();
    for k in ["GET tags/list", "GET manifest", "GET config blob"] {
        let b = mix
            .reads
            .iter()
            .filter(|p| kind(p) == k)
            .map(|p| (reqwest::Method::GET, p.clone()))
            .collect();
        batches.push((k, b));
    }
    batches.push((
        "HEAD manifest (re-check)",
        mix.deletions
            .iter()
            .map(|(r, t, _)| (reqwest::Method::HEAD, format!("/v2/{r}/manifests/{t}")))
            .collect(),
    ));
    batches.push((
        "DELETE manifest",
        mix.deletions
            .iter()
            .map(|(r, _, d)| (reqwest::Method::DELETE, format!("/v2/{r}/manifests/{d}")))
            .collect(),
    ));
    let mut out = Vec::new();
    for (k, batch) in batches {
        let n = batch.len();
        if n == 0 {
            continue;
        }
        let cpu = cpu_seconds(registry_pid);
        let start = Instant::now();
        let results: Vec<Res<()>> = stream::iter(batch)
            .map(|(m, path)| send_raw(&http, url, m, path))
            .buffer_unordered(concurrency)
            .collect()
            .await;
        results.into_iter().collect::<Res<Vec<()>>>()?;
        let seconds = start.elapsed().as_secs_f64();
        let cpu_ms = (cpu_seconds(registry_pid) - cpu) * 1000.0 / n as f64;
        out.push((k, n, cpu_ms, n as f64 / seconds));
    }
    Ok(out)
}

// ------------------------------------------------------------------ skopeo loop

fn skopeo(args: &[&str]) -> Res<serde_json::Value> {
    let out = Command::new("skopeo")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("skopeo: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "skopeo {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    if out.stdout.is_empty() {
        return Ok(serde_json::Value::Null);
    }
    serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
}

/// The loop a shell script would run; `host` is `127.0.0.1:PORT` (through a counting proxy).
fn skopeo_loop(host: &str, repos: &[String], deadline: Instant) -> Res<Run> {
    let start = Instant::now();
    let mut deleted = 0;
    for repo in repos {
        if Instant::now() > deadline {
            return Err("skopeo loop over its time budget".into());
        }
        let v = skopeo(&[
            "list-tags",
            "--tls-verify=false",
            &format!("docker://{host}/{repo}"),
        ])?;
        let mut rows: Vec<(String, String, String)> = Vec::new();
        for tag in v["Tags"].as_array().into_iter().flatten() {
            let tag = tag.as_str().unwrap_or_default();
            let i = skopeo(&[
                "inspect",
                "--tls-verify=false",
                &format!("docker://{host}/{repo}:{tag}"),
            ])?;
            rows.push((
                i["Created"].as_str().unwrap_or_default().to_string(),
                tag.to_string(),
                i["Digest"].as_str().unwrap_or_default().to_string(),
            ));
        }
        rows.sort_by(|a, b| b.cmp(a));
        let mut keep: Vec<&str> = Vec::new();
        for (_, _, d) in &rows {
            if keep.len() == KEEP {
                break;
            }
            if !keep.contains(&d.as_str()) {
                keep.push(d);
            }
        }
        let mut done: HashSet<&str> = HashSet::new();
        for (_, _, d) in &rows {
            if keep.contains(&d.as_str()) || !done.insert(d) {
                continue;
            }
            skopeo(&[
                "delete",
                "--tls-verify=false",
                &format!("docker://{host}/{repo}@{d}"),
            ])?;
            deleted += 1;
        }
    }
    Ok(Run {
        seconds: start.elapsed().as_secs_f64(),
        requests: 0,
        by_kind: String::new(),
        deleted,
    })
}

// ------------------------------------------------------------------ driver

async fn tags_left(url: &str) -> Res<u64> {
    let c = RegistryClient::new(url, Credentials::Anonymous, ClientOptions::default())
        .map_err(|e| e.to_string())?;
    let mut n = 0;
    for r in c.catalog().await.map_err(|e| e.to_string())? {
        n += c.tags(&r).await.map_err(|e| e.to_string())?.len() as u64;
    }
    Ok(n)
}

struct Row {
    set: String,
    net: &'static str,
    tool: &'static str,
    runs: Vec<Run>,
    left: u64,
}

fn seed(url: &str, repos: usize, tags: usize) -> Res<()> {
    let bin = std::env::var("REGISTRY_OPERATOR_BIN")
        .unwrap_or_else(|_| "target/release/registry-operator".to_string());
    let out = Command::new(&bin)
        .args(["dev", "seed", "--registry", url])
        .args(["--repos", &repos.to_string(), "--tags", &tags.to_string()])
        .output()
        .map_err(|e| format!("{bin}: {e} (build it: cargo build --release)"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).to_string());
    }
    eprint!("  {}", String::from_utf8_lossy(&out.stdout));
    Ok(())
}

#[tokio::main]
async fn main() {
    if let Err(e) = bench().await {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

async fn bench() -> Res<()> {
    let sets = std::env::var("BENCH_SETS").unwrap_or_else(|_| "100x20,100x100,1000x10".into());
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let with_skopeo = std::env::var("BENCH_SKOPEO").map_or(true, |v| v != "0");
    let deadline = Instant::now() + Duration::from_secs(20 * 60);
    let mut rows: Vec<Row> = Vec::new();
    let mut costs = Vec::new();
    let mut costs_set = String::new();
    for (n, set) in sets.split(',').enumerate() {
        let (repos, tags) = set
            .split_once('x')
            .and_then(|(r, t)| Some((r.parse::<usize>().ok()?, t.parse::<usize>().ok()?)))
            .ok_or_else(|| format!("bad set {set:?}"))?;
        let mut reg = Registry::new()?;
        eprintln!("== {set}: seeding");
        seed(&reg.url(), repos, tags)?;
        reg.snapshot()?;
        let large = n > 0;
        let nets = std::env::var("BENCH_NETS").unwrap_or_else(|_| "loopback,5ms".into());
        for (net, delay) in [
            ("loopback", None),
            ("+5 ms", Some(Duration::from_millis(5))),
        ] {
            if !nets
                .split(',')
                .any(|n| n == if delay.is_some() { "5ms" } else { "loopback" })
            {
                continue;
            }
            if Instant::now() > deadline {
                break;
            }
            let proxy = match delay {
                Some(d) => {
                    let p = FaultProxy::start(&reg.url()).await;
                    p.inject(FaultRule::new(Fault::Delay(d)));
                    Some(p)
                }
                None => None,
            };
            let url = |reg: &Registry| -> String {
                proxy
                    .as_ref()
                    .map_or_else(|| reg.url(), |p| p.url().to_string())
            };
            let concurrency = match (delay, std::env::var("BENCH_CONCURRENCY")) {
                (None, Ok(c)) => c.parse().unwrap_or(8),
                (None, Err(_)) => 8,
                (Some(_), _) => 64,
            };
            let engine_runs = if large { 1 } else { runs };
            let mut row = Row {
                set: set.to_string(),
                net,
                tool: "engine",
                runs: Vec::new(),
                left: 0,
            };
            for _ in 0..engine_runs {
                reg.restore()?;
                eprintln!("  {net} engine");
                row.runs
                    .push(engine(&url(&reg), concurrency, reg.pid(), None).await?);
            }
            row.left = tags_left(&reg.url()).await?;
            rows.push(row);
            if !(large && delay.is_some()) {
                let mut row = Row {
                    set: set.to_string(),
                    net,
                    tool: "sequential",
                    runs: Vec::new(),
                    left: 0,
                };
                for _ in 0..if large || delay.is_some() { 1 } else { 2 } {
                    reg.restore()?;
                    eprintln!("  {net} sequential");
                    let cpu = (cpu_seconds(None), cpu_seconds(reg.pid()));
                    row.runs.push(sequential(&url(&reg)).await?);
                    if std::env::var_os("BENCH_PHASES").is_some() {
                        eprintln!(
                            "    CPU: this process {:.2} s, registry {:.2} s",
                            cpu_seconds(None) - cpu.0,
                            cpu_seconds(reg.pid()) - cpu.1
                        );
                    }
                }
                row.left = tags_left(&reg.url()).await?;
                rows.push(row);
            }
            if delay.is_none() && !large {
                // The operator's scheduled runs: config `created` times remembered from an
                // earlier run (one untimed run fills the cache).
                let ages = Arc::new(AgeCache::default());
                reg.restore()?;
                engine(&url(&reg), concurrency, reg.pid(), Some(ages.clone())).await?;
                let mut row = Row {
                    set: set.to_string(),
                    net,
                    tool: "engine, ages remembered",
                    runs: Vec::new(),
                    left: 0,
                };
                for _ in 0..engine_runs {
                    reg.restore()?;
                    eprintln!("  {net} engine, ages remembered");
                    row.runs.push(
                        engine(&url(&reg), concurrency, reg.pid(), Some(ages.clone())).await?,
                    );
                }
                row.left = tags_left(&reg.url()).await?;
                rows.push(row);
                // The box's limit for the engine's request mix, with and without the
                // re-checks (DESIGN invariant 3) the engine will not skip.
                reg.restore()?;
                let mix = engine_mix(&reg.url()).await?;
                for (tool, recheck) in [("limit (replay)", true), ("limit, no re-check", false)] {
                    let mut row = Row {
                        set: set.to_string(),
                        net,
                        tool,
                        runs: Vec::new(),
                        left: 0,
                    };
                    for _ in 0..engine_runs {
                        reg.restore()?;
                        eprintln!("  {net} {tool}");
                        row.runs
                            .push(replay(&url(&reg), &mix, concurrency, recheck).await?);
                    }
                    row.left = tags_left(&reg.url()).await?;
                    rows.push(row);
                }
                reg.restore()?;
                eprintln!("  {net} registry CPU per request kind");
                costs = registry_costs(&reg.url(), &mix, concurrency, reg.pid()).await?;
                costs_set = set.to_string();
            }
            if with_skopeo && delay.is_none() && !large {
                // skopeo straight at the registry (through the test proxy it would first try
                // TLS and wait); the registry's access log counts its requests.
                reg.access_log = true;
                reg.restore()?;
                eprintln!("  {net} skopeo (one process per call; ~2 min)");
                let repos = RegistryClient::new(
                    &reg.url(),
                    Credentials::Anonymous,
                    ClientOptions::default(),
                )
                .map_err(|e| e.to_string())?
                .catalog()
                .await
                .map_err(|e| e.to_string())?;
                let host = format!("127.0.0.1:{}", reg.port);
                let run = tokio::task::block_in_place(|| {
                    skopeo_loop(&host, &repos, Instant::now() + Duration::from_secs(400))
                });
                let logged = reg.logged();
                reg.access_log = false;
                match run {
                    Ok(mut run) => {
                        // minus the one catalog listing made above
                        run.requests = logged.values().sum::<u64>().saturating_sub(1);
                        run.by_kind = logged
                            .iter()
                            .map(|(m, n)| format!("{m} {n}"))
                            .collect::<Vec<_>>()
                            .join(", ");
                        rows.push(Row {
                            set: set.to_string(),
                            net,
                            tool: "skopeo",
                            runs: vec![run],
                            left: tags_left(&reg.url()).await?,
                        });
                    }
                    Err(e) => eprintln!("  skopeo skipped: {e}"),
                }
            }
        }
    }
    print_table(&rows);
    if !costs.is_empty() {
        println!(
            "\nThe registry's CPU per request ({costs_set}, loopback, each kind on its own):\n"
        );
        println!("| request | count | registry CPU per request | requests/s |");
        println!("| --- | --- | --- | --- |");
        for (k, n, ms, rate) in costs {
            println!("| {k} | {n} | {ms:.2} ms | {rate:.0} |");
        }
    }
    Ok(())
}

fn print_table(rows: &[Row]) {
    println!(
        "\n| data set | network | tool | runs | mean wall | min wall | vs sequential | HTTP requests | digests deleted | tags left | requests by kind |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for r in rows {
        let n = r.runs.len().max(1) as f64;
        let mean = r.runs.iter().map(|x| x.seconds).sum::<f64>() / n;
        let min = r
            .runs
            .iter()
            .map(|x| x.seconds)
            .fold(f64::INFINITY, f64::min);
        let base = rows
            .iter()
            .find(|b| b.set == r.set && b.net == r.net && b.tool == "sequential")
            .map(|b| b.runs.iter().map(|x| x.seconds).sum::<f64>() / b.runs.len().max(1) as f64);
        let speed = base.map_or("-".to_string(), |b| format!("{:.1}x", b / mean));
        let last = r.runs.last();
        println!(
            "| {} | {} | {} | {} | {:.2} s | {:.2} s | {} | {} | {} | {} | {} |",
            r.set,
            r.net,
            r.tool,
            r.runs.len(),
            mean,
            min,
            speed,
            last.map_or(0, |x| x.requests),
            last.map_or(0, |x| x.deleted),
            r.left,
            last.map_or("", |x| x.by_kind.as_str()),
        );
    }
}
