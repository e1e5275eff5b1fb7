//! The retention planner over a synthetic registry of 1,000,000 tags in 10,000 repositories,
//! with a realistic policy, prints wall time and peak memory (VmHWM).
//!
//! `cargo bench --bench retention_planner` (release profile). Targets: planning ≤ 1 s and
//! peak memory ≤ 512 MiB on a 2-core machine.
//!
//! Each repository has 100 tags: 8 release tags (`v1.2.3`, each its own image), `latest`
//! on the newest release, 88 CI tags (`ci-00042`, one image each, one in five a multi-arch
//! index with two untagged platform children) and 3 cosign signature tags. Push times spread
//! over a year; sizes are known. 1% of the repositories are incomplete, 20,000 tags and
//! 5,000 digests are in use, and a cluster policy keeps `release-.*` and `stable`.

use std::time::Instant;

use jiff::{SignedDuration, Timestamp};
use registry_operator::api::retention::RetentionRules;
use registry_operator::retention::{
    candidates, plan, Capabilities, InUse, Inventory, Policy, Protections, Report,
    RepositoryBuilder, Summary, Time,
};

const REPOSITORIES: usize = 10_000;
const TAGS_PER_REPOSITORY: usize = 100;

const POLICY: &str = r#"
mode: Enforce
repositories:
  include: ["**"]
  exclude: ["team-000/**"]
keep:
  - tags: {regex: 'v\d+\.\d+\.\d+'}
    semver: {latestPerMinor: 2}
  - tags: {regex: 'ci-.*'}
    mostRecent: 10
    pushedWithin: 720h
  - tags: {regex: 'latest|main'}
protect: {inUse: true, minAge: 1h}
deleteReferrers: true
limits: {maxDeletionsPerRun: 1000000}
"#;

const CLUSTER_POLICY: &str = r#"
mode: Plan
repositories: {include: ["**"]}
keep:
  - tags: {regex: 'release-.*|stable'}
"#;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn current_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn synthetic(now: Timestamp) -> (Inventory, Protections) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut next_digest = 0u64;
    let mut digest = || {
        next_digest += 1;
        format!("sha256:{next_digest:064x}")
    };
    let hours_ago = |h: u64| -> Time {
        now.checked_sub(SignedDuration::from_hours(h as i64))
            .unwrap_or(now)
            .into()
    };
    let mut in_use = InUse::new();
    let mut repositories = Vec::with_capacity(REPOSITORIES);
    for r in 0..REPOSITORIES {
        let name = format!("team-{:03}/svc-{:02}", r / 100, r % 100);
        let mut b = RepositoryBuilder::with_capacity(&name, TAGS_PER_REPOSITORY, 130);
        // Releases: v1.0.0 … v1.3.1, one image each, newest tagged `latest` too.
        let mut newest_release = String::new();
        for i in 0..8u64 {
            let d = digest();
            let tag = format!("v1.{}.{}", i / 2, i % 2);
            let t = b.tag(&tag, &d);
            t.pushed = Some(hours_ago((8 - i) * 24 * 30 + rng.next() % 24));
            b.manifest(&d).size = Some(80_000_000 + rng.next() % 20_000_000);
            newest_release = d;
        }
        b.tag("latest", &newest_release).pushed = Some(hours_ago(24));
        // CI builds, one every ~3 days, one in five a multi-arch index.
        let mut ci_digests = Vec::with_capacity(88);
        for n in 0..88u64 {
            let d = digest();
            let tag = format!("ci-{n:05}");
            let t = b.tag(&tag, &d);
            t.pushed = Some(hours_ago((88 - n) * 72 + rng.next() % 48));
            if n.is_multiple_of(5) {
                let (amd, arm) = (digest(), digest());
                b.child(&d, &amd);
                b.child(&d, &arm);
                b.manifest(&amd).size = Some(60_000_000);
                b.manifest(&arm).size = Some(58_000_000);
                b.manifest(&d).size = Some(118_000_000);
            } else {
                b.manifest(&d).size = Some(60_000_000 + rng.next() % 10_000_000);
            }
            if rng.next().is_multiple_of(50) {
                in_use.add_tag(&name, &tag, "Pod team/web-7f9");
            }
            if rng.next().is_multiple_of(200) {
                in_use.add_digest(&name, &d, "Pod team/api-5c1");
            }
            ci_digests.push(d);
        }
        // Cosign signatures of three CI images (old ones, so some go with their subject).
        for k in 0..3usize {
            let subject = &ci_digests[k * 7];
            let hex = subject.trim_start_matches("sha256:");
            let sig = digest();
            let t = b.tag(&format!("sha256-{hex}.sig"), &sig);
            t.pushed = Some(hours_ago(24 * 200));
        }
        if r % 100 == 37 {
            b.incomplete("tags/list page 2: 503 Service Unavailable");
        }
        repositories.push(b.build());
    }
    let inventory = Inventory {
        capabilities: Capabilities {
            delete_by_tag: true,
            pull_stats: true,
        },
        repositories,
    };
    (inventory, Protections { in_use })
}

fn compile(name: &str, yaml: &str) -> Result<Policy, String> {
    let rules: RetentionRules = serde_yaml::from_str(yaml).map_err(|e| e.to_string())?;
    Policy::compile(name, &rules).map_err(|e| e.to_string())
}

fn main() -> Result<(), String> {
    let now: Timestamp = "2026-11-01T00:00:00Z".parse().map_err(|e| format!("{e}"))?;
    let policy = compile("team/retention", POLICY)?;
    let others = vec![compile("cluster-defaults", CLUSTER_POLICY)?];

    let t = Instant::now();
    let (inventory, protections) = synthetic(now);
    let build = t.elapsed();
    let tags: usize = inventory.repositories.iter().map(|r| r.tags.len()).sum();
    let rss_inventory = current_rss_mib();

    // Best of three; each plan is dropped before the next so only one is alive at a time.
    let mut best = f64::MAX;
    for _ in 0..2 {
        let t = Instant::now();
        let p = plan(&policy, &others, &inventory, &protections, now);
        best = best.min(t.elapsed().as_secs_f64());
        drop(p);
    }
    let t = Instant::now();
    let p = plan(&policy, &others, &inventory, &protections, now);
    best = best.min(t.elapsed().as_secs_f64());
    let peak_after_plan = peak_rss_mib();

    let t = Instant::now();
    let status = candidates(&p, None);
    let summary = Summary::of(&p);
    let status_time = t.elapsed();
    let t = Instant::now();
    let report = Report::new(&p);
    let report_time = t.elapsed();
    let candidates = report.candidates(None).len();
    let peak_after_report = peak_rss_mib();

    let mib = |x: Option<f64>| x.map_or("n/a".to_owned(), |v| format!("{v:.0} MiB"));
    println!("retention planner benchmark ({} threads available)", {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    });
    println!("  inventory            {REPOSITORIES} repositories, {tags} tags");
    println!("  build inventory      {:>8.3} s", build.as_secs_f64());
    println!("  rss with inventory   {:>8}", mib(rss_inventory));
    println!("  plan (best of 3)     {best:>8.3} s   (target ≤ 1 s)");
    println!(
        "  peak rss after plan  {:>8}   (VmHWM; target ≤ 512 MiB)",
        mib(peak_after_plan)
    );
    println!(
        "  status view          {:>8.3} s   ({} candidates, {} planned deletions)",
        status_time.as_secs_f64(),
        status.len(),
        summary.planned_deletions
    );
    println!(
        "  render report        {:>8.3} s   (every decision as a sentence)",
        report_time.as_secs_f64()
    );
    println!("  peak rss with report {:>8}", mib(peak_after_report));
    println!("  {}", report.headline());
    println!(
        "  mutations {}, manifests deleted {}, candidates in status {candidates}",
        p.mutations().count(),
        p.counts.manifest_deletions
    );
    Ok(())
}
