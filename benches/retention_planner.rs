//! The retention planner over synthetic inventories, with a realistic policy: prints wall
//! time, peak memory (VmHWM) and the bytes per tag the inventory, the plan and the planner's
//! scratch take (counted by a global allocator: bytes requested, so malloc's own few bytes
//! per allocation come on top; the allocation counts are printed too).
//!
//! `cargo bench --bench retention_planner` (release profile) runs both cases;
//! `-- registry` or `-- repository` runs one.
//!
//! - **registry**: 1,000,000 tags in 10,000 repositories. Targets: planning ≤ 1 s and peak
//!   memory ≤ 512 MiB on a 2-core machine. Each repository has 100 tags: 8 release tags
//!   (`v1.2.3`, each its own image), `latest` on the newest release, 88 CI tags
//!   (`ci-00042`, one image each, one in five a multi-arch index with two untagged platform
//!   children) and 3 cosign signature tags. Push times spread over a year; sizes are known.
//!   1% of the repositories are incomplete, 20,000 tags and 5,000 digests are in use, and a
//!   cluster policy keeps `release-.*` and `stable`.
//! - **repository**: ONE repository of 500,000 tags of the same mix (a release every 100
//!   tags, CI tags, one in five a multi-arch index, a signature every 33 tags, the same share
//!   in use), planned by the same policies: the largest repository bounds a run's memory, so
//!   this is the per-tag budget (target: inventory and plan ≤ ~200 bytes per tag together).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use jiff::{SignedDuration, Timestamp};
use registry_operator::api::retention::RetentionRules;
use registry_operator::retention::{
    candidates, plan, Capabilities, InUse, Inventory, MediaInfo, Plan, Policy, Protections, Report,
    RepositoryBuilder, Summary, Time,
};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

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

/// The system allocator, counting the bytes live, their peak and the allocations live.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static BLOCKS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed on to the system allocator unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc` is the system allocator's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size(), 1);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size(), 1);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator with `layout`, as the caller promises.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        BLOCKS.fetch_sub(1, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `dealloc` and `alloc`.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size, 0);
        }
        p
    }
}

fn grew(bytes: usize, blocks: usize) {
    let live = LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(live, Ordering::Relaxed);
    BLOCKS.fetch_add(blocks, Ordering::Relaxed);
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Bytes and allocations live now.
fn live() -> (usize, usize) {
    (LIVE.load(Ordering::Relaxed), BLOCKS.load(Ordering::Relaxed))
}

/// Starts a new peak at the bytes live now.
fn reset_peak() {
    PEAK.store(LIVE.load(Ordering::Relaxed), Ordering::Relaxed);
}

fn peak() -> usize {
    PEAK.load(Ordering::Relaxed)
}

/// `bytes` per tag, one decimal.
fn per_tag(bytes: usize, tags: usize) -> String {
    format!("{:.1}", bytes as f64 / tags.max(1) as f64)
}

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

/// One repository of `tags` tags of the registry case's mix, and what the cluster runs of it.
fn one_repository(now: Timestamp, tags: usize) -> (Inventory, Protections) {
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let hours_ago = |h: u64| -> Time {
        now.checked_sub(SignedDuration::from_hours(h as i64))
            .unwrap_or(now)
            .into()
    };
    let name = "team-big/monorepo";
    let digest = |n: u64| format!("sha256:{n:064x}");
    let mut in_use = InUse::new();
    let mut b = RepositoryBuilder::with_capacity(name, tags, tags * 7 / 5);
    let mut next = 0u64;
    let mut images: Vec<u64> = Vec::new();
    let span = 24 * 365u64;
    for n in 0..tags as u64 {
        next += 1;
        let d = next;
        // Newest last, spread over a year.
        let age = span - n * span / tags as u64;
        let tag = if n % 100 == 50 {
            format!("v{}.{}.{}", n / 100_000, (n / 1_000) % 100, (n / 100) % 10)
        } else if n % 33 == 32 && !images.is_empty() {
            // The signature of the image pushed just before (each signed once).
            let subject = images[images.len() - 1];
            format!("sha256-{subject:064x}.sig")
        } else {
            format!("ci-{n:07}")
        };
        let t = b.tag(&tag, &digest(d));
        t.pushed = Some(hours_ago(age + rng.next() % 48));
        // Media types as the inventory reader records them: one string per manifest read.
        let media = |kind: &str| {
            Some(Box::new(MediaInfo {
                media_type: Some(Arc::from(kind)),
                artifact_type: None,
            }))
        };
        if n % 5 == 0 && !tag.starts_with("sha256-") {
            let (amd, arm) = (next + 1, next + 2);
            next += 2;
            b.child(&digest(d), &digest(amd));
            b.child(&digest(d), &digest(arm));
            for (c, size) in [(amd, 60_000_000), (arm, 58_000_000)] {
                let m = b.manifest(&digest(c));
                m.size = Some(size);
                m.media = media(OCI_MANIFEST);
            }
            let m = b.manifest(&digest(d));
            m.size = Some(118_000_000);
            m.media = media(OCI_INDEX);
        } else {
            let m = b.manifest(&digest(d));
            m.size = Some(60_000_000 + rng.next() % 10_000_000);
            m.media = media(OCI_MANIFEST);
        }
        if !tag.starts_with("sha256-") {
            images.push(d);
            if rng.next().is_multiple_of(50) {
                in_use.add_tag(name, &tag, "Pod team/web-7f9");
            }
            if rng.next().is_multiple_of(200) {
                in_use.add_digest(name, &digest(d), "Pod team/api-5c1");
            }
        }
    }
    b.tag("latest", &digest(next)).pushed = Some(hours_ago(1));
    let inventory = Inventory {
        capabilities: Capabilities {
            delete_by_tag: true,
            pull_stats: true,
        },
        repositories: vec![b.build()],
    };
    (inventory, Protections { in_use })
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let wants = |case: &str| {
        let named: Vec<&String> = args
            .iter()
            .filter(|a| *a == "registry" || *a == "repository")
            .collect();
        named.is_empty() || named.iter().any(|a| *a == case)
    };
    let now: Timestamp = "2026-11-01T00:00:00Z".parse().map_err(|e| format!("{e}"))?;
    let policy = compile("team/retention", POLICY)?;
    let others = vec![compile("cluster-defaults", CLUSTER_POLICY)?];
    println!("retention planner benchmark ({} threads available)", {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    });
    if wants("repository") {
        repository_case(&policy, &others, now);
    }
    if wants("registry") {
        registry_case(&policy, &others, now);
    }
    Ok(())
}

/// One repository of 500,000 tags: bytes per tag of the inventory, of the plan (decisions and
/// mutations apart) and of the planner's scratch.
fn repository_case(policy: &Policy, others: &[Policy], now: Timestamp) {
    const TAGS: usize = 500_000;
    let (base, base_blocks) = live();
    reset_peak();
    let t = Instant::now();
    let (inventory, protections) = one_repository(now, TAGS);
    let build = t.elapsed();
    let build_peak = peak() - base;
    let (with_inventory, inventory_blocks) = live();
    // The in-use references are not the inventory: counted apart.
    let in_use = {
        let (before, _) = live();
        let copy = protections.clone();
        let bytes = live().0 - before;
        drop(copy);
        bytes
    };
    let inventory_bytes = with_inventory - base - in_use;
    let tags: usize = inventory.repositories.iter().map(|r| r.tags.len()).sum();
    let manifests: usize = inventory
        .repositories
        .iter()
        .map(|r| r.manifests.len())
        .sum();

    reset_peak();
    let t = Instant::now();
    let mut p = plan(policy, others, &inventory, &protections, now);
    let took = t.elapsed();
    let plan_peak = peak() - with_inventory;
    let print = fingerprint(&p);
    let (with_plan, plan_blocks) = live();
    let plan_bytes = with_plan - with_inventory;
    let mutations: Vec<_> = p
        .repositories
        .iter_mut()
        .map(|r| std::mem::take(&mut r.mutations))
        .collect();
    let mutation_count: usize = mutations.iter().map(Vec::len).sum();
    let (before_drop, _) = live();
    drop(mutations);
    let mutation_bytes = before_drop - live().0;
    let decisions_bytes = plan_bytes - mutation_bytes;

    println!("one repository: {tags} tags, {manifests} manifests");
    println!("  build inventory      {:>8.3} s", build.as_secs_f64());
    println!(
        "  inventory            {:>8} B/tag   ({:.2} allocations/tag; while building: peak {} B/tag)",
        per_tag(inventory_bytes, tags),
        (inventory_blocks - base_blocks) as f64 / tags as f64,
        per_tag(build_peak, tags)
    );
    println!("  plan                 {:>8.3} s", took.as_secs_f64());
    println!(
        "  plan: decisions      {:>8} B/tag   ({:.2} allocations/tag)",
        per_tag(decisions_bytes, tags),
        (plan_blocks - inventory_blocks) as f64 / tags as f64
    );
    println!(
        "  plan: mutations      {:>8} B/tag   ({mutation_count} mutations, {} B each)",
        per_tag(mutation_bytes, tags),
        per_tag(mutation_bytes, mutation_count)
    );
    println!(
        "  inventory + plan     {:>8} B/tag   (target ≤ ~200)",
        per_tag(inventory_bytes + plan_bytes, tags)
    );
    println!(
        "  planning peak        {:>8} B/tag   above the inventory (scratch and plan)",
        per_tag(plan_peak, tags)
    );
    println!(
        "  peak rss             {:>8}   (VmHWM, whole process so far)",
        mib(peak_rss_mib())
    );
    println!(
        "  {} deletions planned, {} manifests by digest; plan fingerprint {print}",
        p.counts.deletions, p.counts.manifest_deletions
    );
}

/// A fingerprint of every decision (as its sentence), every mutation and the counts: equal
/// fingerprints before and after a change to the planner mean the same plan.
fn fingerprint(p: &Plan) -> String {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut h = DefaultHasher::new();
    for (r, t) in p.decisions() {
        (
            &*r.name,
            &*t.tag,
            t.digest.to_string(),
            t.decision.to_string(),
        )
            .hash(&mut h);
        r.incomplete.as_deref().hash(&mut h);
    }
    for m in p.mutations() {
        m.to_string().hash(&mut h);
    }
    format!("{:?}", p.counts).hash(&mut h);
    p.notes.hash(&mut h);
    format!("{:016x}", h.finish())
}

fn mib(x: Option<f64>) -> String {
    x.map_or("n/a".to_owned(), |v| format!("{v:.0} MiB"))
}

fn registry_case(policy: &Policy, others: &[Policy], now: Timestamp) {
    let (base, _) = live();
    let t = Instant::now();
    let (inventory, protections) = synthetic(now);
    let build = t.elapsed();
    let tags: usize = inventory.repositories.iter().map(|r| r.tags.len()).sum();
    let rss_inventory = current_rss_mib();
    let (with_inventory, _) = live();

    // Best of three; each plan is dropped before the next so only one is alive at a time.
    let mut best = f64::MAX;
    for _ in 0..2 {
        let t = Instant::now();
        let p = plan(policy, others, &inventory, &protections, now);
        best = best.min(t.elapsed().as_secs_f64());
        drop(p);
    }
    let t = Instant::now();
    let p = plan(policy, others, &inventory, &protections, now);
    best = best.min(t.elapsed().as_secs_f64());
    let peak_after_plan = peak_rss_mib();
    let plan_bytes = live().0 - with_inventory;

    let t = Instant::now();
    let status = candidates(&p, None);
    let summary = Summary::of(&p);
    let status_time = t.elapsed();
    let t = Instant::now();
    let report = Report::new(&p);
    let report_time = t.elapsed();
    let candidates = report.candidates(None).len();
    let peak_after_report = peak_rss_mib();

    println!("registry: {REPOSITORIES} repositories, {tags} tags");
    println!("  build inventory      {:>8.3} s", build.as_secs_f64());
    println!("  rss with inventory   {:>8}", mib(rss_inventory));
    println!(
        "  inventory, plan      {:>8} B/tag, {} B/tag (allocator; in-use references included)",
        per_tag(with_inventory - base, tags),
        per_tag(plan_bytes, tags)
    );
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
    println!("  plan fingerprint {}", fingerprint(&p));
}
