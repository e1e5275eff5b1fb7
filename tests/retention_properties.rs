//! Property tests of the planner's safety invariants over random small registries: shared
//! digests, index graphs (cycles included; indexes nested, untagged, one manifest in several
//! indexes), referrers (by `subject` and by tag schema, one referrer tagged for several
//! subjects), unknown ages, incomplete listings, in-use references (by tag, and by digest —
//! untagged manifests and indexes included), other policies and limits. A missing edge in
//! the planner's graph (a parent index, a subject, a digest in use) fails
//! `nothing_that_stays_or_runs_loses_a_manifest_it_reaches`.

mod support;

use std::collections::{BTreeSet, HashMap, HashSet};

use proptest::prelude::*;
use registry_operator::api::retention::PolicyMode;
use registry_operator::retention::{
    plan, Action, Capabilities, Inventory, ManifestId, Mutation, Plan, Policy, Protections,
    RepositoryBuilder, RepositoryPlanner,
};
use support::planner::{ago, d, now, policy, sig_tag};

const REPOS: &[&str] = &["a", "a/b", "c/d/e", "team/x", "c"];
const TAGS: &[&str] = &[
    "latest",
    "v1.0.0",
    "v1.2.0",
    "1.2.3",
    "v1.2.3",
    "v2.0.0-rc.1",
    "v2.1.0",
    "ci-1",
    "ci-2",
    "ci-3",
    "dev",
    "release-1",
];
const ENTRIES: &[&str] = &[
    "{mostRecent: 1}",
    "{mostRecent: 3}",
    "{tags: {regex: 'v.*'}}",
    "{tags: {regex: 'ci-.*'}, mostRecent: 1}",
    "{pushedWithin: 240h}",
    "{pulledWithin: 72h}",
    "{semver: {latestPerMajor: 1}}",
    "{semver: {latestPerMinor: 2, includePrereleases: true}}",
    "{tags: {regex: '.*', excludeRegex: 'dev|latest'}, pushedWithin: 720h}",
    "{tags: {regex: 'latest'}}",
];
const INCLUDES: &[&str] = &["**", "a/**", "c/**", "*", "team/*"];
const EXCLUDES: &[&str] = &["a/b", "team/*", "**/e"];
const MIN_AGES: &[&str] = &["0s", "1h", "48h"];

#[derive(Debug, Clone)]
struct TagSpec {
    name: usize,
    digest: u8,
    age_hours: Option<u16>,
    pulled_hours: Option<u16>,
}

#[derive(Debug, Clone)]
struct RepoSpec {
    name: usize,
    tags: Vec<TagSpec>,
    children: Vec<(u8, u8)>,
    referrers: Vec<(u8, u8)>,
    sigs: Vec<(u8, u8, Option<u16>)>,
    created: Vec<(u8, u16)>,
    sizes: Vec<(u8, u32)>,
    incomplete: bool,
}

#[derive(Debug, Clone)]
struct PolicySpec {
    plan_mode: bool,
    entries: Vec<usize>,
    purge: bool,
    delete_referrers: bool,
    min_age: usize,
    in_use: bool,
    max_deletions: Option<u16>,
    max_percent: Option<u8>,
    include: usize,
    exclude: Option<usize>,
}

#[derive(Debug, Clone)]
struct Scenario {
    delete_by_tag: bool,
    pull_stats: bool,
    repos: Vec<RepoSpec>,
    in_use_tags: Vec<(usize, usize)>,
    in_use_digests: Vec<(usize, u8)>,
    policy: PolicySpec,
    others: Vec<PolicySpec>,
}

fn hex(n: u8) -> char {
    char::from_digit(u32::from(n % 16), 16).unwrap_or('0')
}

fn tag_spec() -> impl Strategy<Value = TagSpec> {
    (
        0..TAGS.len(),
        0u8..8,
        prop::option::weighted(0.9, 0u16..2000),
        prop::option::of(0u16..400),
    )
        .prop_map(|(name, digest, age_hours, pulled_hours)| TagSpec {
            name,
            digest,
            age_hours,
            pulled_hours,
        })
}

fn repo_spec() -> impl Strategy<Value = RepoSpec> {
    (
        0..REPOS.len(),
        prop::collection::vec(tag_spec(), 0..10),
        prop::collection::vec((0u8..10, 0u8..12), 0..6),
        prop::collection::vec((8u8..12, 0u8..10), 0..3),
        prop::collection::vec((0u8..10, 8u8..12, prop::option::of(0u16..100)), 0..5),
        prop::collection::vec((0u8..8, 0u16..2000), 0..3),
        prop::collection::vec((0u8..12, 0u32..1_000_000), 0..6),
        prop::bool::weighted(0.15),
    )
        .prop_map(
            |(name, tags, children, referrers, sigs, created, sizes, incomplete)| RepoSpec {
                name,
                tags,
                children: children.into_iter().filter(|(p, c)| p != c).collect(),
                referrers: referrers.into_iter().filter(|(r, s)| r != s).collect(),
                sigs,
                created,
                sizes,
                incomplete,
            },
        )
}

fn policy_spec() -> impl Strategy<Value = PolicySpec> {
    (
        any::<bool>(),
        prop::collection::vec(0..ENTRIES.len(), 0..4),
        prop::bool::weighted(0.15),
        any::<bool>(),
        0..MIN_AGES.len(),
        prop::bool::weighted(0.8),
        prop::option::of(0u16..30),
        prop::option::of(0u8..=100),
        0..INCLUDES.len(),
        prop::option::weighted(0.3, 0..EXCLUDES.len()),
    )
        .prop_map(
            |(
                plan_mode,
                entries,
                purge,
                delete_referrers,
                min_age,
                in_use,
                max_deletions,
                max_percent,
                include,
                exclude,
            )| PolicySpec {
                plan_mode,
                entries: if purge { Vec::new() } else { entries },
                purge,
                delete_referrers,
                min_age,
                in_use,
                max_deletions,
                max_percent,
                include,
                exclude,
            },
        )
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        any::<bool>(),
        any::<bool>(),
        prop::collection::vec(repo_spec(), 1..4),
        prop::collection::vec((0..REPOS.len(), 0..TAGS.len()), 0..4),
        prop::collection::vec((0..REPOS.len(), 0u8..12), 0..4),
        policy_spec(),
        prop::collection::vec(policy_spec(), 0..3),
    )
        .prop_map(
            |(delete_by_tag, pull_stats, repos, in_use_tags, in_use_digests, policy, others)| {
                Scenario {
                    delete_by_tag,
                    pull_stats,
                    repos,
                    in_use_tags,
                    in_use_digests,
                    policy,
                    others,
                }
            },
        )
}

fn policy_yaml(p: &PolicySpec, entries: &[usize]) -> String {
    let mut y = String::new();
    y.push_str(if p.plan_mode {
        "mode: Plan\n"
    } else {
        "mode: Enforce\n"
    });
    y.push_str(&format!(
        "repositories: {{include: ['{}']",
        INCLUDES[p.include]
    ));
    if let Some(e) = p.exclude {
        y.push_str(&format!(", exclude: ['{}']", EXCLUDES[e]));
    }
    y.push_str("}\n");
    if !entries.is_empty() {
        let list: Vec<&str> = entries.iter().map(|e| ENTRIES[*e]).collect();
        y.push_str(&format!("keep: [{}]\n", list.join(", ")));
    }
    if p.purge {
        y.push_str("purge: true\n");
    }
    y.push_str(&format!("deleteReferrers: {}\n", p.delete_referrers));
    y.push_str(&format!(
        "protect: {{inUse: {}, minAge: {}}}\n",
        p.in_use, MIN_AGES[p.min_age]
    ));
    y.push_str("limits: {");
    y.push_str(&format!(
        "maxDeletionsPerRun: {}",
        p.max_deletions.unwrap_or(500)
    ));
    if let Some(pct) = p.max_percent {
        y.push_str(&format!(", maxDeletionPercent: {pct}"));
    }
    y.push_str("}\n");
    y
}

thread_local! {
    /// Compiled policies by name and YAML: compiling regexes dominates a debug-build run.
    static COMPILED: std::cell::RefCell<HashMap<(String, String), Policy>> =
        std::cell::RefCell::new(HashMap::new());
}

fn compile(p: &PolicySpec, name: &str) -> Policy {
    let key = (name.to_owned(), policy_yaml(p, &p.entries));
    COMPILED.with(|c| {
        c.borrow_mut()
            .entry(key.clone())
            .or_insert_with(|| policy(&key.0, &key.1))
            .clone()
    })
}

/// A small deterministic shuffler, so a shuffle is reproducible from its seed.
struct Shuffler(u64);

impl Shuffler {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }
}

/// Builds the inventory; with a seed, lists repositories, tags and manifests in a
/// shuffled order.
fn build(s: &Scenario, seed: Option<u64>) -> Inventory {
    let mut shuffler = seed.map(|x| Shuffler(x | 1));
    let mut repos = Vec::new();
    for spec in &s.repos {
        let mut b = RepositoryBuilder::new(REPOS[spec.name]);
        let mut digests: Vec<u8> = (0u8..12).collect();
        let mut tags: Vec<&TagSpec> = Vec::new();
        let mut seen = HashSet::new();
        for t in &spec.tags {
            if seen.insert(t.name) {
                tags.push(t);
            }
        }
        let mut children = spec.children.clone();
        let mut referrers = spec.referrers.clone();
        let mut sigs = spec.sigs.clone();
        if let Some(sh) = shuffler.as_mut() {
            sh.shuffle(&mut digests);
            sh.shuffle(&mut tags);
            sh.shuffle(&mut children);
            sh.shuffle(&mut referrers);
            sh.shuffle(&mut sigs);
        }
        for n in digests {
            b.id(&d(hex(n)));
        }
        for (p, c) in children {
            b.child(&d(hex(p)), &d(hex(c)));
        }
        for (r, subject) in referrers {
            b.subject(&d(hex(r)), &d(hex(subject)));
        }
        for (n, hours) in &spec.created {
            b.manifest(&d(hex(*n))).created = Some(ago(f64::from(*hours) / 24.0).into());
        }
        for (n, size) in &spec.sizes {
            b.manifest(&d(hex(*n))).size = Some(u64::from(*size));
        }
        for t in tags {
            let tag = b.tag(TAGS[t.name], &d(hex(t.digest)));
            tag.pushed = t.age_hours.map(|h| ago(f64::from(h) / 24.0).into());
            tag.last_pulled = t.pulled_hours.map(|h| ago(f64::from(h) / 24.0).into());
        }
        for (subject, manifest, hours) in sigs {
            let tag = b.tag(&sig_tag(hex(subject)), &d(hex(manifest)));
            tag.pushed = hours.map(|h| ago(f64::from(h) / 24.0).into());
        }
        if spec.incomplete {
            b.incomplete("listing failed");
        }
        repos.push(b.build());
    }
    if let Some(sh) = shuffler.as_mut() {
        sh.shuffle(&mut repos);
    }
    Inventory {
        capabilities: Capabilities {
            delete_by_tag: s.delete_by_tag,
            pull_stats: s.pull_stats,
        },
        repositories: repos,
    }
}

fn protections(s: &Scenario) -> Protections {
    let mut p = Protections::default();
    for (r, t) in &s.in_use_tags {
        p.in_use.add_tag(REPOS[*r], TAGS[*t], "Pod ns/tag-user");
    }
    for (r, n) in &s.in_use_digests {
        p.in_use
            .add_digest(REPOS[*r], &d(hex(*n)), "Pod ns/digest-user");
    }
    p
}

fn run(s: &Scenario, seed: Option<u64>) -> Plan {
    let others: Vec<Policy> = s
        .others
        .iter()
        .enumerate()
        .map(|(i, o)| compile(o, &format!("other-{i}")))
        .collect();
    plan(
        &compile(&s.policy, "main"),
        &others,
        &build(s, seed),
        &protections(s),
        now(),
    )
}

/// `(repository, digest)` of every manifest the plan deletes by digest.
fn deleted_manifests(plan: &Plan) -> HashSet<(String, String)> {
    plan.mutations()
        .filter_map(|m| match m {
            Mutation::DeleteManifest {
                repository, digest, ..
            } => Some((repository.to_string(), digest.to_string())),
            Mutation::DeleteTag { .. } => None,
        })
        .collect()
}

fn deleted_tags(plan: &Plan) -> BTreeSet<(String, String)> {
    plan.decisions()
        .filter(|(_, t)| t.decision.is_delete())
        .map(|(r, t)| (r.name.to_string(), t.tag.to_string()))
        .collect()
}

/// `(repository, digest)` of every manifest the plan removes: deleted by digest, or — on a
/// registry that deletes tags alone — left without any tag and listed by no index that
/// stays, which the registry's own garbage collection then removes.
fn removed_manifests(plan: &Plan, inventory: &Inventory) -> HashSet<(String, String)> {
    let mut gone = deleted_manifests(plan);
    let untagged_by_tag: HashSet<(String, String)> = plan
        .mutations()
        .filter_map(|m| match m {
            Mutation::DeleteTag {
                repository, digest, ..
            } => Some((repository.to_string(), digest.to_string())),
            Mutation::DeleteManifest { .. } => None,
        })
        .collect();
    let kept_tags: HashSet<(String, String)> = plan
        .decisions()
        .filter(|(_, t)| !t.decision.is_delete())
        .map(|(r, t)| (r.name.to_string(), t.digest.to_string()))
        .collect();
    let mut untagged: HashSet<(String, String)> = untagged_by_tag
        .into_iter()
        .filter(|x| !kept_tags.contains(x))
        .collect();
    gone.extend(untagged.iter().cloned());
    // An untagged manifest that an index still there lists stays.
    loop {
        let mut changed = false;
        for repo in &inventory.repositories {
            for m in &repo.manifests {
                let parent = (repo.name.to_string(), m.digest.to_string());
                if gone.contains(&parent) {
                    continue;
                }
                for c in &m.children {
                    let Some(child) = repo.manifest(*c) else {
                        continue;
                    };
                    let key = (repo.name.to_string(), child.digest.to_string());
                    if untagged.remove(&key) {
                        gone.remove(&key);
                        changed = true;
                    }
                }
            }
        }
        if !changed {
            break;
        }
    }
    gone
}

fn enforce(mut s: Scenario) -> Scenario {
    s.policy.plan_mode = false;
    s
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn a_kept_or_protected_tag_never_loses_its_image(s in scenario().prop_map(enforce)) {
        let plan = run(&s, None);
        let gone = removed_manifests(&plan, &build(&s, None));
        for (r, t) in plan.decisions() {
            if !t.decision.is_delete() {
                prop_assert!(
                    !gone.contains(&(r.name.to_string(), t.digest.to_string())),
                    "{}:{} is {:?} but its digest is deleted", r.name, t.tag, t.decision
                );
            }
        }
        // Nor does an index that stays lose a child.
        let inventory = build(&s, None);
        for repo in &inventory.repositories {
            for m in &repo.manifests {
                if gone.contains(&(repo.name.to_string(), m.digest.to_string())) {
                    continue;
                }
                for c in &m.children {
                    let child = repo.manifest(*c).map(|x| x.digest.to_string()).unwrap_or_default();
                    prop_assert!(!gone.contains(&(repo.name.to_string(), child)));
                }
            }
        }
    }

    #[test]
    fn nothing_that_stays_or_runs_loses_a_manifest_it_reaches(s in scenario().prop_map(enforce)) {
        // What stays needs what it lists (at any depth, through untagged indexes too); a
        // subject that stays keeps its referrers (every subject a referrer names: its own
        // `subject` and those its `sha256-<hex>` tags name); what runs by digest needs what
        // it lists and every index listing it.
        let plan = run(&s, None);
        let inventory = build(&s, None);
        let gone = removed_manifests(&plan, &inventory);
        for repo in &inventory.repositories {
            let name = repo.name.to_string();
            let is_gone = |id: ManifestId| {
                repo.manifest(id).is_some_and(|m| gone.contains(&(name.clone(), m.digest.to_string())))
            };
            let digest = |id: ManifestId| {
                repo.manifest(id).map(|m| m.digest.to_string()).unwrap_or_default()
            };
            let mut subjects: Vec<(ManifestId, ManifestId)> = Vec::new();
            for (i, m) in repo.manifests.iter().enumerate() {
                if let Some(sub) = m.subject {
                    subjects.push((ManifestId(i as u32), sub));
                }
            }
            for t in &repo.tags {
                if let Some(sub) = t.subject {
                    subjects.push((t.manifest, sub));
                }
            }
            for (referrer, subject) in subjects {
                prop_assert!(
                    is_gone(subject) || !is_gone(referrer),
                    "{name}: {} stays but its referrer {} goes", digest(subject), digest(referrer)
                );
            }
            if !s.policy.in_use {
                continue;
            }
            let mut running: Vec<ManifestId> = repo
                .manifests
                .iter()
                .enumerate()
                .filter(|(_, m)| s.in_use_digests.iter().any(|(r, n)| REPOS[*r] == name && d(hex(*n)) == m.digest.to_string()))
                .map(|(i, _)| ManifestId(i as u32))
                .collect();
            let mut seen = HashSet::new();
            while let Some(x) = running.pop() {
                if !seen.insert(x) { continue; }
                prop_assert!(!is_gone(x), "{name}: {} runs, or is listed by what runs, but goes", digest(x));
                if let Some(m) = repo.manifest(x) {
                    running.extend(m.children.iter().copied());
                }
            }
        }
    }

    #[test]
    fn the_mutations_carry_out_exactly_the_delete_decisions(s in scenario().prop_map(enforce)) {
        let plan = run(&s, None);
        let mut by_mutation = BTreeSet::new();
        for m in plan.mutations() {
            match m {
                Mutation::DeleteTag { repository, tag, .. } => {
                    prop_assert!(s.delete_by_tag, "a tag deletion on a digest-only registry");
                    prop_assert!(by_mutation.insert((repository.to_string(), tag.to_string())));
                }
                Mutation::DeleteManifest { repository, tags, .. } => {
                    for tag in tags {
                        prop_assert!(by_mutation.insert((repository.to_string(), tag.to_string())));
                    }
                }
            }
        }
        prop_assert_eq!(&by_mutation, &deleted_tags(&plan));
        prop_assert_eq!(plan.counts.deletions as usize, by_mutation.len());
    }

    #[test]
    fn plan_mode_makes_no_mutations_and_the_same_decisions(s in scenario()) {
        let mut planned = s.clone();
        planned.policy.plan_mode = true;
        let enforced = enforce(s);
        let a = run(&planned, None);
        let b = run(&enforced, None);
        prop_assert_eq!(a.mutations().count(), 0);
        prop_assert_eq!(a.mode, PolicyMode::Plan);
        let decisions = |p: &Plan| {
            p.repositories
                .iter()
                .map(|r| (r.name.clone(), r.incomplete.clone(), r.tags.clone()))
                .collect::<Vec<_>>()
        };
        prop_assert_eq!(decisions(&a), decisions(&b));
        prop_assert_eq!(a.counts, b.counts);
    }

    #[test]
    fn adding_a_keep_entry_never_deletes_more(
        s in scenario().prop_map(enforce),
        extra in 0..ENTRIES.len(),
    ) {
        prop_assume!(!s.policy.purge && !s.policy.entries.is_empty());
        let before = run(&s, None);
        let mut more = s.clone();
        more.policy.entries.push(extra);
        let after = run(&more, None);
        let (tb, ta) = (deleted_tags(&before), deleted_tags(&after));
        prop_assert!(ta.is_subset(&tb), "now deleted: {:?}", ta.difference(&tb).collect::<Vec<_>>());
        prop_assert!(deleted_manifests(&after).is_subset(&deleted_manifests(&before)));
    }

    #[test]
    fn the_plan_does_not_depend_on_listing_order(s in scenario(), seed in any::<u64>()) {
        let a = run(&s, None);
        let b = run(&s, Some(seed));
        prop_assert_eq!(a, b);
    }

    #[test]
    fn images_in_use_are_never_deleted(s in scenario().prop_map(enforce)) {
        prop_assume!(s.policy.in_use);
        let plan = run(&s, None);
        let gone = deleted_manifests(&plan);
        let inventory = build(&s, None);
        for (r, t) in &s.in_use_tags {
            let (repo, tag) = (REPOS[*r], TAGS[*t]);
            for (rp, td) in plan.decisions() {
                if &*rp.name == repo && &*td.tag == tag {
                    prop_assert!(!td.decision.is_delete(), "{repo}:{tag} in use but {:?}", td.decision);
                }
            }
        }
        for (r, n) in &s.in_use_digests {
            let (repo, digest) = (REPOS[*r], d(hex(*n)));
            prop_assert!(!gone.contains(&(repo.to_string(), digest.clone())));
            // No index listing it (at any depth) goes either.
            for inv_repo in inventory.repositories.iter().filter(|x| &*x.name == repo) {
                let mut holders: HashSet<String> = HashSet::from([digest.clone()]);
                loop {
                    let before = holders.len();
                    for m in &inv_repo.manifests {
                        let lists = m.children.iter().any(|c| {
                            inv_repo.manifest(*c).is_some_and(|x| holders.contains(&x.digest.to_string()))
                        });
                        if lists {
                            holders.insert(m.digest.to_string());
                        }
                    }
                    if holders.len() == before { break; }
                }
                for h in holders {
                    prop_assert!(!gone.contains(&(repo.to_string(), h)));
                }
            }
        }
    }

    #[test]
    fn incomplete_repositories_are_never_touched(s in scenario().prop_map(enforce)) {
        let plan = run(&s, None);
        for r in plan.repositories.iter().filter(|r| r.incomplete.is_some()) {
            prop_assert!(plan.mutations().all(|m| m.repository() != &*r.name));
            prop_assert!(r.tags.iter().all(|t| t.decision.action() == Action::Protect));
        }
        let incomplete: HashSet<&str> = s.repos.iter().filter(|r| r.incomplete).map(|r| REPOS[r.name]).collect();
        for m in plan.mutations() {
            prop_assert!(!incomplete.contains(m.repository()));
        }
    }

    #[test]
    fn nothing_younger_than_min_age_or_of_unknown_age_is_deleted(s in scenario().prop_map(enforce)) {
        let plan = run(&s, None);
        let inventory = build(&s, None);
        let min_age = registry_operator::duration::GoDuration::parse(MIN_AGES[s.policy.min_age]).unwrap().as_signed();
        let mut ages: HashMap<(String, String), Option<jiff::SignedDuration>> = HashMap::new();
        for repo in &inventory.repositories {
            for t in &repo.tags {
                let created = repo.manifest(t.manifest).and_then(|m| m.created);
                ages.insert(
                    (repo.name.to_string(), t.name.to_string()),
                    t.pushed
                        .or(created)
                        .map(|p| jiff::SignedDuration::from_secs(now().as_second() - p.unix_seconds())),
                );
            }
        }
        for (r, t) in plan.decisions() {
            if !t.decision.is_delete() { continue; }
            let age = ages.get(&(r.name.to_string(), t.tag.to_string())).copied().flatten();
            match age {
                Some(age) => prop_assert!(age >= min_age, "{}:{} is {age:?} old", r.name, t.tag),
                // Referrer tags follow their subject, whose age was known.
                None => prop_assert!(t.tag.starts_with("sha256-"), "{}:{} has no age", r.name, t.tag),
            }
        }
    }

    #[test]
    fn deletions_stay_within_the_limits_when_the_check_passes(s in scenario().prop_map(enforce)) {
        let plan = run(&s, None);
        if plan.check_blast_radius().is_ok() {
            let limits = plan.limits;
            prop_assert!(plan.counts.deletions <= limits.max_deletions_per_run);
            if let Some(pct) = limits.max_deletion_percent {
                prop_assert!(plan.counts.deletions * 100 <= u64::from(pct) * plan.counts.tags);
            }
        }
    }

    #[test]
    fn repositories_outside_the_scope_are_not_in_the_plan(s in scenario()) {
        let plan = run(&s, None);
        let p = compile(&s.policy, "main");
        for r in &plan.repositories {
            prop_assert!(p.in_scope(&r.name));
        }
        for m in plan.mutations() {
            prop_assert!(p.in_scope(m.repository()));
        }
    }

    #[test]
    fn planning_repository_by_repository_gives_the_plan_of_the_whole_registry(
        s in scenario(),
        seed in any::<u64>(),
    ) {
        // As a run reads them: each name once, in name order.
        let mut inventory = build(&s, Some(seed));
        inventory.repositories.sort_by(|a, b| a.name.cmp(&b.name));
        inventory.repositories.dedup_by(|a, b| a.name == b.name);
        let others: Vec<Policy> = s
            .others
            .iter()
            .enumerate()
            .map(|(i, o)| compile(o, &format!("other-{i}")))
            .collect();
        let policy = compile(&s.policy, "main");
        let protections = protections(&s);
        let whole = plan(&policy, &others, &inventory, &protections, now());
        let mut planner = RepositoryPlanner::new(&policy, &others, inventory.capabilities, now());
        let planned: Vec<_> = inventory
            .repositories
            .iter()
            .filter_map(|r| planner.plan_repository(r, &protections.in_use))
            .collect();
        prop_assert_eq!(planner.finish(planned), whole);
    }
}
