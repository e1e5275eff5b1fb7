//! The scale benchmark: peak memory and wall time of `registry-operator retention plan` over
//! registries far larger than a real one can hold here, served by the synthetic registry
//! (`crates/synthetic-registry`), and the check that the real registry gives the same
//! decisions on the same data. `cargo run --release --example bench_scale` (or
//! `scripts/bench.sh`, its "scale" section).
//!
//! Every run is the release binary as a child process, `retention plan --policy
//! examples/scale-policy.yaml` (keep `latest` and the 3 newest images per repository), with
//! `-o json` (written to a scratch file, to read the summary back) and `-o table` (to
//! /dev/null); peak RSS is the child's own `VmHWM`, read every 5 ms while it runs (a rise in its
//! last 5 ms would be missed; `wait4`'s `ru_maxrss` cannot be used: a spawned child's includes
//! this process's own peak), wall time from spawn to exit.
//! The synthetic registry runs in this process, on its own threads, sharing the machine.
//!
//! Rows:
//! - `R x T`: R repositories of T tags (`SCALE_SETS`, default `1000x10,10000x10,100000x10,
//!   10000x100`) — one image per tag, 10 % multi-arch indexes, 5 % signed;
//! - `huge N`: one repository of N tags (`SCALE_HUGE`, default 500000; 0 skips) in a single
//!   `tags/list` body larger than the client's 8 MiB body cap (distribution 2.8 does not page
//!   tags); its decisions are checked: `latest` and the 3 newest builds kept, the rest deleted;
//! - `zot R x T`: the zot flavor (search API, HEAD) with its requests per tag by kind
//!   (`SCALE_ZOT`, default `1000x10`; empty skips);
//! - `real R x T`: the real distribution registry (`docker-registry`) seeded with exactly what
//!   the synthetic one serves for that shape, and the synthetic one, planned by the same
//!   policy: the decisions (repository, tag, digest, action) must be identical (`SCALE_REAL`,
//!   default `100x100`; empty skips). A difference fails the benchmark.
//!
//! Bounded: every child has `SCALE_TIMEOUT` seconds (default 1200) and is killed (by its PID)
//! after that. `REGISTRY_OPERATOR_BIN` names the binary (default: next to this example's
//! directory, `target/release/registry-operator`); `SCALE_OUTPUTS` (default `json,table`).

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeSet;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use synthetic_registry::{Flavor, RepoId, Server, Shape, Stats};

type Res<T> = Result<T, String>;

/// One child run.
struct Measured {
    wall: Duration,
    peak_kib: u64,
    code: i32,
    stderr: String,
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn binary() -> Res<String> {
    if let Ok(b) = std::env::var("REGISTRY_OPERATOR_BIN") {
        return Ok(b);
    }
    let exe = std::env::current_exe().map_err(|e| format!("current exe: {e}"))?;
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("no target directory")?;
    Ok(dir.join("registry-operator").display().to_string())
}

/// `VmHWM` of a running process (its peak resident memory since it started its program), in
/// KiB; `None` once it has ended.
fn vm_hwm_kib(pid: libc::pid_t) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs `retention plan` against `url`, its stdout to `out` (or /dev/null), and measures it.
fn run_plan(
    bin: &str,
    url: &str,
    policy: &Path,
    output: &str,
    out: Option<&Path>,
    timeout: Duration,
) -> Res<Measured> {
    let stdout = match out {
        Some(p) => Stdio::from(
            std::fs::File::create(p).map_err(|e| format!("creating {}: {e}", p.display()))?,
        ),
        None => Stdio::null(),
    };
    let mut child = Command::new(bin)
        .args(["retention", "plan", "--registry", url, "--policy"])
        .arg(policy)
        .args(["-o", output])
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("running {bin}: {e} (build it: cargo build --release)"))?;
    let start = Instant::now();
    let pid = child.id() as libc::pid_t;
    let mut err = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(e) = err.as_mut() {
            let _ = e.read_to_string(&mut s);
        }
        s
    });
    let mut killed = false;
    let mut peak_kib = 0u64;
    let status = loop {
        // The child's own high-water mark, read while it runs. Not `wait4`'s `ru_maxrss`: a
        // spawned child's counts the high-water mark of the address space it was started
        // from — this process's, which serves the synthetic registry — not only its own.
        peak_kib = peak_kib.max(vm_hwm_kib(pid).unwrap_or(0));
        let mut status: libc::c_int = 0;
        // SAFETY: waitpid writes only into the local passed; the PID is our own child's.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            break status;
        }
        if r < 0 {
            return Err(format!(
                "waitpid {pid}: {}",
                std::io::Error::last_os_error()
            ));
        }
        if !killed && start.elapsed() > timeout {
            // SAFETY: signals our own child, by its PID.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            killed = true;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let wall = start.elapsed();
    let stderr = reader.join().unwrap_or_default();
    if killed {
        return Err(format!("{bin} killed after {}s", timeout.as_secs()));
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    Ok(Measured {
        wall,
        peak_kib,
        code,
        stderr,
    })
}

/// The `summary` object of a `-o json` report, read from its end without loading the rest (the
/// CLI writes the decisions as it plans and the totals after them).
fn read_summary(path: &Path) -> Res<serde_json::Value> {
    use std::io::{Seek as _, SeekFrom};
    let mut f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let len = f.metadata().map_err(|e| e.to_string())?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)))
        .map_err(|e| e.to_string())?;
    let mut tail = Vec::new();
    f.read_to_end(&mut tail).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&tail);
    let at = text
        .rfind("\"summary\"")
        .ok_or_else(|| format!("no summary in {}", path.display()))?;
    let open = at + text[at..].find('{').ok_or("summary is not an object")?;
    let close = open + text[open..].find('}').ok_or("summary does not end")?;
    serde_json::from_str(&text[open..=close]).map_err(|e| format!("summary: {e}"))
}

/// Every decision of a `-o json` report: (repository, tag, digest, action).
fn read_decisions(path: &Path) -> Res<BTreeSet<(String, String, String, String)>> {
    let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let v: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let s = |d: &serde_json::Value, k: &str| d[k].as_str().unwrap_or_default().to_string();
    Ok(v["decisions"]
        .as_array()
        .ok_or("no decisions")?
        .iter()
        .map(|d| {
            (
                s(d, "repository"),
                s(d, "tag"),
                s(d, "digest"),
                s(d, "action"),
            )
        })
        .collect())
}

fn parse_set(s: &str) -> Res<(u64, u64)> {
    let (r, t) = s
        .split_once('x')
        .ok_or_else(|| format!("{s:?} is not REPOSxTAGS"))?;
    let n = |v: &str| {
        v.trim()
            .parse::<u64>()
            .map_err(|_| format!("{s:?}: {v:?} is not a number"))
    };
    Ok((n(r)?, n(t)?))
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

struct Bench {
    bin: String,
    policy: PathBuf,
    scratch: PathBuf,
    timeout: Duration,
    threads: usize,
    outputs: Vec<String>,
}

fn per_tag(n: u64, tags: u64) -> f64 {
    n as f64 / tags.max(1) as f64
}

impl Bench {
    /// Plans `shape` with every output; prints a row per run. Returns the JSON summary.
    fn rows(&self, label: &str, shape: &Shape) -> Res<Option<serde_json::Value>> {
        let server = Server::start(shape.clone(), "127.0.0.1:0", self.threads)
            .map_err(|e| format!("synthetic registry: {e}"))?;
        let tags = shape.repositories * shape.tags.max(1) + shape.huge_tags;
        let mut summary = None;
        for output in &self.outputs {
            let before = server.stats();
            let file = self.scratch.join("plan.json");
            let out = (output == "json").then_some(file.as_path());
            let m = run_plan(
                &self.bin,
                &server.url(),
                &self.policy,
                output,
                out,
                self.timeout,
            )?;
            let requests = server.stats().total() - before.total();
            let mut tail = String::new();
            if output == "json" {
                if m.code == 0 || m.code == 3 {
                    let s = read_summary(&file)?;
                    tail = format!(
                        "tags {} kept {} protected {} delete {} errors {}",
                        s["tags"], s["kept"], s["protected"], s["plannedDeletions"], s["errors"]
                    );
                    summary = Some(s);
                }
                let _ = std::fs::remove_file(&file);
            }
            if m.code != 0 && m.code != 3 {
                let last: Vec<&str> = m.stderr.lines().rev().take(3).collect();
                tail = format!("FAILED: {}", last.join(" | "));
            }
            println!(
                "{label:>16} {:>11} {output:>5} {:>8.1} s {:>8.1} MiB {:>10} {:>6.2}  exit {}  {tail}",
                thousands(tags),
                m.wall.as_secs_f64(),
                m.peak_kib as f64 / 1024.0,
                thousands(requests),
                per_tag(requests, tags),
                m.code,
            );
        }
        Ok(summary)
    }

    fn zot(&self, label: &str, shape: &Shape) -> Res<()> {
        let server = Server::start(shape.clone(), "127.0.0.1:0", self.threads)
            .map_err(|e| format!("synthetic registry: {e}"))?;
        let tags = shape.repositories * shape.tags.max(1);
        let m = run_plan(
            &self.bin,
            &server.url(),
            &self.policy,
            "table",
            None,
            self.timeout,
        )?;
        let s: Stats = server.stats();
        println!(
            "{label:>16} {:>11} table {:>8.1} s {:>8.1} MiB {:>10} {:>6.2}  exit {}  per tag: search {:.3}, HEAD {:.3}, GET manifest {:.3}, blob {:.3}, tags/list {:.3}",
            thousands(tags),
            m.wall.as_secs_f64(),
            m.peak_kib as f64 / 1024.0,
            thousands(s.total()),
            per_tag(s.total(), tags),
            m.code,
            per_tag(s.search, tags),
            per_tag(s.manifest_head, tags),
            per_tag(s.manifest_get, tags),
            per_tag(s.blob, tags),
            per_tag(s.tags, tags),
        );
        Ok(())
    }

    fn real(&self, label: &str, shape: &Shape) -> Res<bool> {
        let reg = support::registry::TestRegistry::start();
        let seeder = support::seed::Seeder::new(&reg.url, None);
        let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
        let t = Instant::now();
        runtime.block_on(async {
            stream::iter(0..shape.repositories)
                .map(|r| {
                    let seeder = seeder.clone();
                    async move {
                        let repo = RepoId::Numbered(r);
                        let name = shape.repo_name(repo);
                        let content = shape.content(repo);
                        for b in &content.blobs {
                            seeder.push_blob(&name, b).await;
                        }
                        for p in &content.manifests {
                            let m = &p.manifest;
                            seeder
                                .put_manifest(&name, &m.digest, &m.bytes, m.media_type)
                                .await;
                            for tag in &p.tags {
                                seeder
                                    .put_manifest(&name, tag, &m.bytes, m.media_type)
                                    .await;
                            }
                        }
                    }
                })
                .buffer_unordered(8)
                .collect::<Vec<()>>()
                .await
        });
        let seeded = t.elapsed();
        let server = Server::start(shape.clone(), "127.0.0.1:0", self.threads)
            .map_err(|e| format!("synthetic registry: {e}"))?;
        let mut decisions = Vec::new();
        for (what, url) in [("real", reg.url.clone()), ("synthetic", server.url())] {
            let file = self.scratch.join(format!("{what}.json"));
            let m = run_plan(
                &self.bin,
                &url,
                &self.policy,
                "json",
                Some(&file),
                self.timeout,
            )?;
            if m.code != 0 && m.code != 3 {
                return Err(format!("plan on the {what} registry failed: {}", m.stderr));
            }
            println!(
                "{label:>16} {:>11} {what:>9} {:>8.1} s {:>8.1} MiB",
                thousands(shape.repositories * shape.tags),
                m.wall.as_secs_f64(),
                m.peak_kib as f64 / 1024.0
            );
            decisions.push(read_decisions(&file)?);
            let _ = std::fs::remove_file(&file);
        }
        let (real, synthetic) = (&decisions[0], &decisions[1]);
        let deletes = |d: &BTreeSet<(String, String, String, String)>| {
            d.iter().filter(|x| x.3 == "delete").count()
        };
        let same = real == synthetic;
        println!(
            "{label:>16} seeded in {:.1}s; decisions: real {} ({} delete), synthetic {} ({} delete): {}",
            seeded.as_secs_f64(),
            real.len(),
            deletes(real),
            synthetic.len(),
            deletes(synthetic),
            if same { "identical" } else { "DIFFERENT" }
        );
        if !same {
            for d in real.symmetric_difference(synthetic).take(10) {
                let side = if real.contains(d) {
                    "real only"
                } else {
                    "synthetic only"
                };
                println!("  {side}: {d:?}");
            }
        }
        Ok(same)
    }
}

fn main() -> Res<()> {
    let bin = binary()?;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let scratch_base = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let scratch = scratch_base.join(format!("bench-scale-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).map_err(|e| e.to_string())?;
    let bench = Bench {
        bin,
        policy: root.join("examples/scale-policy.yaml"),
        scratch: scratch.clone(),
        timeout: Duration::from_secs(
            env_or("SCALE_TIMEOUT", "1200")
                .parse()
                .map_err(|_| "SCALE_TIMEOUT is not a number")?,
        ),
        threads: env_or("SCALE_THREADS", "2")
            .parse()
            .map_err(|_| "SCALE_THREADS is not a number")?,
        outputs: env_or("SCALE_OUTPUTS", "json,table")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
    };
    let result = run(&bench);
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

fn run(bench: &Bench) -> Res<()> {
    println!(
        "{:>16} {:>11} {:>5} {:>10} {:>12} {:>10} {:>6}",
        "registry", "tags", "out", "wall", "peak RSS", "requests", "/tag"
    );
    for set in env_or("SCALE_SETS", "1000x10,10000x10,100000x10,10000x100")
        .split(',')
        .filter(|s| !s.trim().is_empty())
    {
        let (repositories, tags) = parse_set(set)?;
        let shape = Shape {
            repositories,
            tags,
            ..Shape::default()
        };
        bench.rows(&format!("{repositories}x{tags}"), &shape)?;
    }
    let huge: u64 = env_or("SCALE_HUGE", "500000")
        .parse()
        .map_err(|_| "SCALE_HUGE is not a number")?;
    if huge > 0 {
        let shape = Shape {
            repositories: 0,
            huge_tags: huge,
            ..Shape::default()
        };
        if let Some(s) = bench.rows(&format!("huge {huge}"), &shape)? {
            // latest and the builds of the 3 newest images stay, every other tag goes
            let kept = s["kept"].as_u64().unwrap_or(0) + s["protected"].as_u64().unwrap_or(0);
            let deleted = s["plannedDeletions"].as_u64().unwrap_or(0);
            let ok = s["tags"].as_u64() == Some(huge)
                && kept == 4.min(huge)
                && deleted == huge.saturating_sub(4)
                && s["errors"].as_u64() == Some(0);
            println!(
                "{:>16} every tag listed and decided: {}",
                format!("huge {huge}"),
                if ok { "yes" } else { "NO" }
            );
            if !ok {
                return Err(format!(
                    "the huge repository was not planned correctly: {s}"
                ));
            }
        }
    }
    for set in env_or("SCALE_ZOT", "1000x10")
        .split(',')
        .filter(|s| !s.trim().is_empty())
    {
        let (repositories, tags) = parse_set(set)?;
        let shape = Shape {
            repositories,
            tags,
            flavor: Flavor::Zot,
            ..Shape::default()
        };
        bench.zot(&format!("zot {repositories}x{tags}"), &shape)?;
    }
    for set in env_or("SCALE_REAL", "100x100")
        .split(',')
        .filter(|s| !s.trim().is_empty())
    {
        let (repositories, tags) = parse_set(set)?;
        let shape = Shape {
            repositories,
            tags,
            ..Shape::default()
        };
        if !bench.real(&format!("real {repositories}x{tags}"), &shape)? {
            return Err("the real and the synthetic registry decided differently".to_string());
        }
    }
    Ok(())
}
