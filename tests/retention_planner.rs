//! Table-driven tests of the retention planner: one case per rule and per combination, each
//! named as a sentence. Every case lists every tag of the plan with its decision and a
//! fragment of its reason, and the exact mutations in execution order.

mod support;

use registry_operator::api::retention::{RetentionRules, MAX_STATUS_CANDIDATES};
use registry_operator::retention::{plan, Action, LimitBreach, Plan, Policy, PolicyError, Report};
use support::planner::{compact, inventory, policy, protections, tag_name, Repo};

struct Case {
    name: &'static str,
    policy: &'static str,
    others: &'static [(&'static str, &'static str)],
    delete_by_tag: bool,
    pull_stats: bool,
    repos: fn() -> Vec<Repo>,
    in_use: &'static [(&'static str, &'static str, &'static str, &'static str)],
    /// `("repository:tag", "keep" | "protect" | "delete", reason fragment)`.
    expect: &'static [(&'static str, &'static str, &'static str)],
    mutations: &'static [&'static str],
    notes: &'static [&'static str],
}

fn no_repos() -> Vec<Repo> {
    Vec::new()
}

const BASE: Case = Case {
    name: "",
    policy: "",
    others: &[],
    delete_by_tag: true,
    pull_stats: false,
    repos: no_repos,
    in_use: &[],
    expect: &[],
    mutations: &[],
    notes: &[],
};

fn new_and_old(name: &str) -> Repo {
    Repo::new(name).tag("new", 'a', 1.0).tag("old", 'b', 10.0)
}

const CASES: &[Case] = &[
    // ── Scope ───────────────────────────────────────────────────────────────────────────
    Case {
        name: "repositories outside the include globs are never touched",
        policy: "repositories: {include: ['team-a/**']}\nkeep: [{mostRecent: 1}]",
        repos: || vec![new_and_old("team-a/web"), Repo::new("team-b/api").tag("old", 'c', 10.0)],
        expect: &[
            ("team-a/web:new", "keep", "kept: 1st most recent of entry 1 (keeps 1)"),
            ("team-a/web:old", "delete", "delete: pushed 10d ago; entry 1: not among the 1 most recent"),
        ],
        mutations: &["untag team-a/web:old"],
        ..BASE
    },
    Case {
        name: "an exclude glob wins over an include glob",
        policy: "repositories: {include: ['team-a/**'], exclude: ['team-a/base/**']}\nkeep: [{mostRecent: 1}]",
        repos: || vec![new_and_old("team-a/web"), new_and_old("team-a/base/debian")],
        expect: &[("team-a/web:new", "keep", ""), ("team-a/web:old", "delete", "")],
        mutations: &["untag team-a/web:old"],
        ..BASE
    },
    Case {
        name: "a single star matches within one path segment only",
        policy: "repositories: {include: ['team-a/*']}\nkeep: [{mostRecent: 1}]",
        repos: || vec![new_and_old("team-a/web"), new_and_old("team-a/x/y")],
        expect: &[("team-a/web:new", "keep", ""), ("team-a/web:old", "delete", "")],
        mutations: &["untag team-a/web:old"],
        ..BASE
    },
    Case {
        name: "a double star matches any depth below its prefix but not the prefix itself",
        policy: "repositories: {include: ['team-a/**']}\nkeep: [{mostRecent: 1}]",
        repos: || vec![new_and_old("team-a"), new_and_old("team-a/x/y")],
        expect: &[("team-a/x/y:new", "keep", ""), ("team-a/x/y:old", "delete", "")],
        mutations: &["untag team-a/x/y:old"],
        ..BASE
    },
    // ── Keep entries ────────────────────────────────────────────────────────────────────
    Case {
        name: "with no keep entries and purge off nothing is deleted",
        policy: "",
        repos: || vec![Repo::new("r").tag("old", 'a', 100.0)],
        expect: &[("r:old", "keep", "kept: the policy has no keep entries and does not purge")],
        ..BASE
    },
    Case {
        name: "an entry without criteria keeps every tag its regex matches",
        policy: r"keep: [{tags: {regex: 'v\d+\.\d+\.\d+'}}]",
        repos: || vec![Repo::new("r").tag("v1.0.0", 'a', 100.0).tag("dev", 'b', 100.0)],
        expect: &[
            ("r:v1.0.0", "keep", "kept: matches entry 1"),
            ("r:dev", "delete", "delete: pushed 100d ago, no keep entry selects it"),
        ],
        mutations: &["untag r:dev"],
        ..BASE
    },
    Case {
        name: "tag regexes are anchored at both ends",
        policy: r"keep: [{tags: {regex: 'v1\..*'}}]",
        repos: || vec![Repo::new("r").tag("v1.0", 'a', 100.0).tag("xv1.0", 'b', 100.0)],
        expect: &[("r:v1.0", "keep", "matches entry 1"), ("r:xv1.0", "delete", "no keep entry selects it")],
        mutations: &["untag r:xv1.0"],
        ..BASE
    },
    Case {
        name: "excludeRegex takes tags out of an entry's selection",
        policy: "keep: [{tags: {regex: 'v.*', excludeRegex: '.*-rc.*'}}]",
        repos: || vec![Repo::new("r").tag("v1", 'a', 100.0).tag("v2-rc1", 'b', 100.0)],
        expect: &[("r:v1", "keep", "matches entry 1"), ("r:v2-rc1", "delete", "no keep entry selects it")],
        mutations: &["untag r:v2-rc1"],
        ..BASE
    },
    Case {
        name: "keep entries are OR-ed so a tag either entry keeps survives",
        policy: "keep: [{tags: {regex: 'release-.*'}}, {mostRecent: 1}]",
        repos: || vec![Repo::new("r").tag("release-1", 'a', 100.0).tag("ci-2", 'b', 1.0).tag("ci-1", 'c', 50.0)],
        expect: &[
            ("r:release-1", "keep", "kept: matches entry 1"),
            ("r:ci-2", "keep", "kept: 1st most recent of entry 2"),
            ("r:ci-1", "delete", "delete: pushed 50d ago; entry 2: not among the 1 most recent"),
        ],
        mutations: &["untag r:ci-1"],
        ..BASE
    },
    Case {
        name: "the criteria of one entry are OR-ed",
        policy: "keep: [{mostRecent: 1, pushedWithin: 240h}]",
        repos: || vec![Repo::new("r").tag("a", 'a', 1.0).tag("b", 'b', 5.0).tag("c", 'c', 20.0)],
        expect: &[
            ("r:a", "keep", "1st most recent of entry 1"),
            ("r:b", "keep", "kept: pushed 5d ago, within 240h (entry 1)"),
            ("r:c", "delete", "delete: pushed 20d ago; entry 1: not among the 1 most recent, older than 240h"),
        ],
        mutations: &["untag r:c"],
        ..BASE
    },
    Case {
        name: "mostRecent counts images, not tag names",
        policy: "keep: [{mostRecent: 2}]",
        repos: || vec![Repo::new("r").tag("latest", 'a', 1.0).tag("v3", 'a', 1.0).tag("v2", 'b', 5.0).tag("v1", 'c', 10.0)],
        expect: &[
            ("r:latest", "keep", "1st most recent"),
            ("r:v3", "keep", "1st most recent"),
            ("r:v2", "keep", "2nd most recent"),
            ("r:v1", "delete", "not among the 2 most recent"),
        ],
        mutations: &["untag r:v1"],
        ..BASE
    },
    Case {
        name: "mostRecent counts per repository",
        policy: "keep: [{mostRecent: 1}]",
        repos: || vec![new_and_old("r1"), Repo::new("r2").tag("x", 'c', 10.0).tag("y", 'd', 20.0)],
        expect: &[
            ("r1:new", "keep", "1st"),
            ("r1:old", "delete", ""),
            ("r2:x", "keep", "1st"),
            ("r2:y", "delete", ""),
        ],
        mutations: &["untag r1:old", "untag r2:y"],
        ..BASE
    },
    Case {
        name: "mostRecent breaks push-time ties by tag name, the greater name counting as newer",
        policy: "keep: [{mostRecent: 1}]",
        repos: || vec![Repo::new("r").tag("build-0041", 'a', 3.0).tag("build-0042", 'b', 3.0)],
        expect: &[("r:build-0042", "keep", "1st most recent"), ("r:build-0041", "delete", "")],
        mutations: &["untag r:build-0041"],
        ..BASE
    },
    Case {
        name: "mostRecent ranks only the images carrying a tag its selector matches",
        policy: "keep: [{tags: {regex: 'ci-.*'}, mostRecent: 1}, {tags: {regex: 'v.*'}}]",
        repos: || vec![Repo::new("r").tag("v9", 'a', 1.0).tag("ci-2", 'b', 3.0).tag("ci-1", 'c', 5.0)],
        expect: &[
            ("r:v9", "keep", "matches entry 2"),
            ("r:ci-2", "keep", "1st most recent of entry 1"),
            ("r:ci-1", "delete", "entry 1: not among the 1 most recent"),
        ],
        mutations: &["untag r:ci-1"],
        ..BASE
    },
    Case {
        name: "pushedWithin keeps recent pushes and the delete reason says how old a tag is",
        policy: "keep: [{pushedWithin: 720h}]",
        repos: || vec![Repo::new("r").tag("fresh", 'a', 10.0).tag("stale", 'b', 41.0)],
        expect: &[
            ("r:fresh", "keep", "kept: pushed 10d ago, within 720h (entry 1)"),
            ("r:stale", "delete", "delete: pushed 41d ago; entry 1: older than 720h"),
        ],
        mutations: &["untag r:stale"],
        ..BASE
    },
    Case {
        name: "pulledWithin keeps tags pulled recently when the registry keeps pull statistics",
        policy: "keep: [{pulledWithin: 168h}]",
        pull_stats: true,
        repos: || vec![Repo::new("r").pulled("hot", 'a', 100.0, 2.0).pulled("cold", 'b', 100.0, 30.0).tag("never", 'c', 100.0)],
        expect: &[
            ("r:hot", "keep", "kept: pulled 2d ago, within 168h (entry 1)"),
            ("r:cold", "delete", "entry 1: not pulled within 168h"),
            ("r:never", "delete", "entry 1: not pulled within 168h"),
        ],
        mutations: &["untag r:cold", "untag r:never"],
        ..BASE
    },
    Case {
        name: "a tag the pull statistics left out has an unknown pull time and pulledWithin keeps it",
        policy: "keep: [{pulledWithin: 72h}]",
        pull_stats: true,
        repos: || vec![Repo::new("r").pulled("hot", 'a', 10.0, 1.0).tag("cold", 'b', 10.0).unreported("missing", 'c', 10.0)],
        expect: &[
            ("r:hot", "keep", "pulled 24h ago"),
            ("r:cold", "delete", ""),
            ("r:missing", "keep", "the registry did not report when this tag was last pulled"),
        ],
        mutations: &["untag r:cold"],
        ..BASE
    },
    Case {
        name: "pulledWithin without pull statistics keeps every tag it would judge and says so",
        policy: "keep: [{tags: {regex: 'ci-.*'}, pulledWithin: 168h}]",
        repos: || vec![Repo::new("r").tag("ci-1", 'a', 100.0).tag("other", 'b', 100.0)],
        expect: &[
            ("r:ci-1", "keep", "entry 1 asks for pulledWithin but the registry keeps no pull statistics"),
            ("r:other", "delete", "no keep entry selects it"),
        ],
        mutations: &["untag r:other"],
        notes: &["keep[0]: pulledWithin needs pull statistics, which this registry does not keep; the 1 tags the entry selects are kept"],
        ..BASE
    },
    Case {
        name: "semver latestPerMajor keeps the highest versions of each major",
        policy: "keep: [{semver: {latestPerMajor: 1}}]",
        repos: || vec![Repo::new("r").tag("v1.2.0", 'a', 100.0).tag("v1.10.0", 'b', 100.0).tag("v2.0.0", 'c', 100.0).tag("v2.0.1", 'd', 100.0)],
        expect: &[
            ("r:v1.10.0", "keep", "kept: 1st highest version of 1.x (entry 1 keeps 1)"),
            ("r:v1.2.0", "delete", "entry 1: not among the highest versions (1 per major)"),
            ("r:v2.0.1", "keep", "1st highest version of 2.x"),
            ("r:v2.0.0", "delete", ""),
        ],
        mutations: &["untag r:v1.2.0", "untag r:v2.0.0"],
        ..BASE
    },
    Case {
        name: "semver latestPerMinor keeps the highest patches of each minor line",
        policy: "keep: [{semver: {latestPerMinor: 2}}]",
        repos: || vec![Repo::new("r").tag("1.4.0", 'a', 100.0).tag("1.4.1", 'b', 100.0).tag("1.4.2", 'c', 100.0).tag("1.5.0", 'd', 100.0)],
        expect: &[
            ("r:1.4.2", "keep", "1st highest version of 1.4.x"),
            ("r:1.4.1", "keep", "2nd highest version of 1.4.x"),
            ("r:1.4.0", "delete", "not among the highest versions (2 per minor)"),
            ("r:1.5.0", "keep", "1st highest version of 1.5.x"),
        ],
        mutations: &["untag r:1.4.0"],
        ..BASE
    },
    Case {
        name: "semver leaves pre-releases to other entries by default",
        policy: "keep: [{semver: {latestPerMajor: 1}}]",
        repos: || vec![Repo::new("r").tag("v2.0.0-rc.1", 'a', 100.0).tag("v1.9.0", 'b', 100.0)],
        expect: &[("r:v1.9.0", "keep", "of 1.x"), ("r:v2.0.0-rc.1", "delete", "")],
        mutations: &["untag r:v2.0.0-rc.1"],
        ..BASE
    },
    Case {
        name: "semver counts pre-releases as versions with includePrereleases",
        policy: "keep: [{semver: {latestPerMajor: 1, includePrereleases: true}}]",
        repos: || vec![Repo::new("r").tag("v2.0.0-rc.1", 'a', 100.0).tag("v1.9.0", 'b', 100.0)],
        expect: &[("r:v1.9.0", "keep", "of 1.x"), ("r:v2.0.0-rc.1", "keep", "of 2.x")],
        ..BASE
    },
    Case {
        name: "semver counts a v-prefixed and a bare tag of one version once",
        policy: "keep: [{semver: {latestPerMajor: 1}}]",
        repos: || vec![Repo::new("r").tag("v1.2.3", 'a', 100.0).tag("1.2.3", 'a', 100.0).tag("1.2.2", 'b', 100.0)],
        expect: &[("r:v1.2.3", "keep", "1st"), ("r:1.2.3", "keep", "1st"), ("r:1.2.2", "delete", "")],
        mutations: &["untag r:1.2.2"],
        ..BASE
    },
    Case {
        name: "tags that do not parse as versions are not kept by semver",
        policy: "keep: [{semver: {latestPerMajor: 1}}]",
        repos: || vec![Repo::new("r").tag("latest", 'a', 100.0).tag("1.2", 'b', 100.0).tag("v1.0.0", 'c', 100.0)],
        expect: &[("r:latest", "delete", ""), ("r:1.2", "delete", ""), ("r:v1.0.0", "keep", "")],
        mutations: &["untag r:1.2", "untag r:latest"],
        ..BASE
    },
    Case {
        name: "the delete reason lists what each selecting entry failed",
        policy: "keep: [{tags: {regex: 'ci-.*'}, mostRecent: 1, pushedWithin: 168h}, {semver: {latestPerMinor: 1}}]",
        repos: || vec![Repo::new("r").tag("ci-2", 'a', 1.0).tag("ci-1", 'b', 41.0)],
        expect: &[
            ("r:ci-2", "keep", ""),
            ("r:ci-1", "delete", "delete: pushed 41d ago; entry 1: not among the 1 most recent, older than 168h; entry 2: not among the highest versions (1 per minor)"),
        ],
        mutations: &["untag r:ci-1"],
        ..BASE
    },
    // ── Purge and protections ───────────────────────────────────────────────────────────
    Case {
        name: "purge deletes every tag in scope except protected ones",
        policy: "purge: true",
        repos: || vec![Repo::new("r").tag("prod", 'a', 100.0).tag("old", 'b', 100.0).tag("fresh", 'c', 0.01)],
        in_use: &[("r", "tag", "prod", "Pod team-a/web-7f9")],
        expect: &[
            ("r:prod", "protect", "kept: in use by Pod team-a/web-7f9"),
            ("r:old", "delete", "delete: purge (pushed 100d ago)"),
            ("r:fresh", "protect", "kept: pushed 14m ago, within the 1h grace period (protect.minAge)"),
        ],
        mutations: &["untag r:old"],
        ..BASE
    },
    Case {
        name: "an image in use by digest protects every tag on it",
        policy: "keep: [{mostRecent: 1}]",
        repos: || vec![Repo::new("r").tag("new", 'a', 1.0).tag("x", 'b', 10.0).tag("y", 'b', 10.0)],
        in_use: &[("r", "digest", "b", "Pod team-b/api-1")],
        expect: &[
            ("r:new", "keep", ""),
            ("r:x", "protect", "kept: in use by Pod team-b/api-1 (as sha256:bbbbbbbbbbbb)"),
            ("r:y", "protect", "in use by Pod team-b/api-1"),
        ],
        ..BASE
    },
    Case {
        name: "a pod running a platform image protects the index that lists it",
        policy: "keep: [{mostRecent: 1}]",
        repos: || vec![Repo::new("r").tag("new", 'a', 1.0).tag("multi", 'e', 10.0).index('e', "12")],
        in_use: &[("r", "digest", "1", "Pod p/q")],
        expect: &[("r:new", "keep", ""), ("r:multi", "protect", "in use by Pod p/q (as sha256:111111111111)")],
        ..BASE
    },
    Case {
        name: "the user first by name is the one a reason names",
        policy: "keep: [{mostRecent: 1}]",
        repos: || vec![new_and_old("r")],
        in_use: &[("r", "tag", "old", "Pod z/z"), ("r", "tag", "old", "Pod a/a")],
        expect: &[("r:new", "keep", ""), ("r:old", "protect", "in use by Pod a/a")],
        ..BASE
    },
    Case {
        name: "inUse false turns in-use protection off",
        policy: "keep: [{mostRecent: 1}]\nprotect: {inUse: false}",
        repos: || vec![new_and_old("r")],
        in_use: &[("r", "tag", "old", "Pod a/a"), ("r", "digest", "b", "Pod a/a")],
        expect: &[("r:new", "keep", ""), ("r:old", "delete", "")],
        mutations: &["untag r:old"],
        ..BASE
    },
    Case {
        name: "tags pushed within minAge are protected",
        policy: "keep: [{mostRecent: 1}]\nprotect: {minAge: 48h}",
        repos: || vec![Repo::new("r").tag("new", 'a', 0.5).tag("mid", 'b', 1.0).tag("old", 'c', 3.0)],
        expect: &[
            ("r:new", "keep", ""),
            ("r:mid", "protect", "kept: pushed 24h ago, within the 48h grace period"),
            ("r:old", "delete", ""),
        ],
        mutations: &["untag r:old"],
        ..BASE
    },
    Case {
        name: "a tag whose push time is unknown is protected",
        policy: "keep: [{mostRecent: 1}]",
        repos: || vec![Repo::new("r").tag("new", 'a', 1.0).tag_unknown_age("mystery", 'b')],
        expect: &[("r:new", "keep", ""), ("r:mystery", "protect", "kept: age unknown")],
        ..BASE
    },
    Case {
        name: "an image whose tags all have unknown push times takes no mostRecent place",
        policy: "keep: [{mostRecent: 1}]",
        repos: || vec![Repo::new("r").tag_unknown_age("mystery", 'b').tag("new", 'a', 5.0).tag("old", 'c', 10.0)],
        expect: &[("r:new", "keep", "1st most recent"), ("r:mystery", "protect", "age unknown"), ("r:old", "delete", "")],
        mutations: &["untag r:old"],
        ..BASE
    },
    Case {
        name: "the image config's created time stands in for an unknown push time",
        policy: "keep: [{mostRecent: 1}]",
        repos: || vec![Repo::new("r").tag("new", 'a', 1.0).tag_unknown_age("old", 'b').created('b', 50.0)],
        expect: &[("r:new", "keep", ""), ("r:old", "delete", "delete: built 50d ago")],
        mutations: &["untag r:old"],
        ..BASE
    },
    Case {
        name: "an incomplete repository has nothing deleted while complete ones are pruned",
        policy: "keep: [{mostRecent: 1}]",
        repos: || vec![new_and_old("r1").incomplete("tags/list page 2: 503"), Repo::new("r2").tag("new", 'c', 1.0).tag("old", 'd', 10.0)],
        expect: &[
            ("r1:new", "protect", "kept: repository listing incomplete (tags/list page 2: 503); nothing in it is deleted this run"),
            ("r1:old", "protect", "repository listing incomplete"),
            ("r2:new", "keep", ""),
            ("r2:old", "delete", ""),
        ],
        mutations: &["untag r2:old"],
        ..BASE
    },
    Case {
        name: "a repository listed twice is treated as incomplete",
        policy: "purge: true",
        repos: || vec![Repo::new("r").tag("x", 'a', 10.0), Repo::new("r").tag("y", 'b', 10.0)],
        expect: &[("r:x", "protect", "listed 2 times"), ("r:y", "protect", "listed 2 times")],
        ..BASE
    },
    // ── Other policies ──────────────────────────────────────────────────────────────────
    Case {
        name: "another policy's keep entry vetoes a deletion even in Plan mode and is named",
        policy: "keep: [{mostRecent: 1}]",
        others: &[("team-a/releases", "mode: Plan\nkeep: [{tags: {regex: 'v.*'}}]")],
        repos: || vec![new_and_old("r").tag("v1", 'c', 10.0)],
        expect: &[
            ("r:new", "keep", ""),
            ("r:v1", "protect", "kept by policy team-a/releases: matches entry 1"),
            ("r:old", "delete", ""),
        ],
        mutations: &["untag r:old"],
        ..BASE
    },
    Case {
        name: "another policy vetoes nothing outside its own scope",
        policy: "keep: [{mostRecent: 1}]",
        others: &[("team-b/all", "repositories: {include: ['team-b/**']}\nkeep: [{tags: {regex: '.*'}}]")],
        repos: || vec![new_and_old("team-a/web")],
        expect: &[("team-a/web:new", "keep", ""), ("team-a/web:old", "delete", "")],
        mutations: &["untag team-a/web:old"],
        ..BASE
    },
    Case {
        name: "another policy that purges vetoes nothing",
        policy: "keep: [{mostRecent: 1}]",
        others: &[("decommission", "purge: true")],
        repos: || vec![new_and_old("r")],
        expect: &[("r:new", "keep", ""), ("r:old", "delete", "")],
        mutations: &["untag r:old"],
        ..BASE
    },
    // ── Shared images and indexes ───────────────────────────────────────────────────────
    Case {
        name: "where tags can be deleted alone a tag sharing its image with a kept tag is untagged and the image stays",
        policy: "keep: [{tags: {regex: 'v.*'}}]",
        repos: || vec![Repo::new("r").tag("v1", 'a', 10.0).tag("ci-7", 'a', 10.0).tag("ci-6", 'b', 10.0)],
        expect: &[("r:v1", "keep", ""), ("r:ci-7", "delete", ""), ("r:ci-6", "delete", "")],
        mutations: &["untag r:ci-6", "untag r:ci-7"],
        ..BASE
    },
    Case {
        name: "where only whole images can be deleted a tag sharing its image with a kept tag is kept and says so",
        policy: "keep: [{tags: {regex: 'v.*'}}]",
        delete_by_tag: false,
        repos: || vec![Repo::new("r").tag("v1", 'a', 10.0).tag("ci-7", 'a', 10.0).tag("ci-6", 'b', 10.0)],
        expect: &[
            ("r:v1", "keep", ""),
            ("r:ci-7", "protect", "kept: shares its image with tag v1, which stays; this registry deletes whole images only"),
            ("r:ci-6", "delete", ""),
        ],
        mutations: &["delete r@b [ci-6]"],
        ..BASE
    },
    Case {
        name: "where only whole images can be deleted an image whose every tag goes is deleted by digest with all its tags",
        policy: "keep: [{mostRecent: 1}]",
        delete_by_tag: false,
        repos: || vec![Repo::new("r").tag("new", 'a', 1.0).tag("x", 'b', 10.0).tag("y", 'b', 10.0)],
        expect: &[("r:new", "keep", ""), ("r:x", "delete", ""), ("r:y", "delete", "")],
        mutations: &["delete r@b [x y]"],
        ..BASE
    },
    Case {
        name: "where tags can be deleted alone an image whose every tag goes loses them one by one",
        policy: "keep: [{mostRecent: 1}]",
        repos: || vec![Repo::new("r").tag("new", 'a', 1.0).tag("x", 'b', 10.0).tag("y", 'b', 10.0)],
        expect: &[("r:new", "keep", ""), ("r:x", "delete", ""), ("r:y", "delete", "")],
        mutations: &["untag r:x", "untag r:y"],
        ..BASE
    },
    Case {
        name: "where only whole images can be deleted a tagged child of an index that stays is kept",
        policy: "keep: [{tags: {regex: 'v1'}}]",
        delete_by_tag: false,
        repos: || vec![Repo::new("r").tag("v1", 'e', 10.0).tag("v1-amd64", '1', 10.0).tag("v1-arm64", '2', 10.0).index('e', "12")],
        expect: &[
            ("r:v1", "keep", ""),
            ("r:v1-amd64", "protect", "kept: part of index sha256:eeeeeeeeeeee, which stays; this registry deletes whole images only"),
            ("r:v1-arm64", "protect", "part of index sha256:eeeeeeeeeeee"),
        ],
        ..BASE
    },
    Case {
        name: "where tags can be deleted alone a tagged child of an index that stays is untagged, never deleted",
        policy: "keep: [{tags: {regex: 'v1'}}]",
        repos: || vec![Repo::new("r").tag("v1", 'e', 10.0).tag("v1-amd64", '1', 10.0).tag("v1-arm64", '2', 10.0).index('e', "12")],
        expect: &[("r:v1", "keep", ""), ("r:v1-amd64", "delete", ""), ("r:v1-arm64", "delete", "")],
        mutations: &["untag r:v1-amd64", "untag r:v1-arm64"],
        ..BASE
    },
    Case {
        name: "where only whole images can be deleted an index and a tagged child that both go are deleted index first",
        policy: "keep: [{mostRecent: 1}]",
        delete_by_tag: false,
        repos: || vec![Repo::new("r").tag("new", 'a', 1.0).tag("old", 'e', 10.0).tag("old-amd64", '1', 10.0).index('e', "1")],
        expect: &[("r:new", "keep", ""), ("r:old", "delete", ""), ("r:old-amd64", "delete", "")],
        mutations: &["delete r@e [old]", "delete r@1 [old-amd64]"],
        ..BASE
    },
    Case {
        name: "an untagged index keeps its children",
        policy: "keep: [{mostRecent: 1}]",
        delete_by_tag: false,
        repos: || vec![Repo::new("r").tag("new", 'a', 1.0).tag("child", '1', 10.0).index('e', "1")],
        expect: &[("r:new", "keep", ""), ("r:child", "protect", "part of index sha256:eeeeeeeeeeee")],
        ..BASE
    },
    // ── Referrers ───────────────────────────────────────────────────────────────────────
    Case {
        name: "referrers of a deleted image are deleted after it with deleteReferrers",
        policy: "keep: [{mostRecent: 1}]\ndeleteReferrers: true",
        repos: || vec![new_and_old("r").sig('b', 'c', 10.0)],
        expect: &[
            ("r:new", "keep", ""),
            ("r:old", "delete", ""),
            ("r:sig(b)", "delete", "delete: referrer of deleted image sha256:bbbbbbbbbbbb"),
        ],
        mutations: &["untag r:old", "delete r@c [sig(b)] after b"],
        ..BASE
    },
    Case {
        name: "referrers of a deleted image stay without deleteReferrers",
        policy: "keep: [{mostRecent: 1}]",
        repos: || vec![new_and_old("r").sig('b', 'c', 10.0)],
        expect: &[
            ("r:new", "keep", ""),
            ("r:old", "delete", ""),
            ("r:sig(b)", "protect", "kept: referrer of sha256:bbbbbbbbbbbb, which is deleted, but deleteReferrers is off"),
        ],
        mutations: &["untag r:old"],
        ..BASE
    },
    Case {
        name: "referrers of a kept image stay",
        policy: "keep: [{mostRecent: 1}]\ndeleteReferrers: true",
        repos: || vec![new_and_old("r").sig('a', 'c', 10.0)],
        expect: &[
            ("r:new", "keep", ""),
            ("r:old", "delete", ""),
            ("r:sig(a)", "protect", "kept: referrer of sha256:aaaaaaaaaaaa, which stays"),
        ],
        mutations: &["untag r:old"],
        ..BASE
    },
    Case {
        name: "referrer tags are not judged by keep entries and take no mostRecent place",
        policy: "keep: [{mostRecent: 1}]\ndeleteReferrers: true",
        repos: || vec![Repo::new("r").tag("new", 'a', 2.0).sig('a', 'c', 1.0).tag("old", 'b', 10.0)],
        expect: &[("r:new", "keep", "1st most recent"), ("r:sig(a)", "protect", "which stays"), ("r:old", "delete", "")],
        mutations: &["untag r:old"],
        ..BASE
    },
    Case {
        name: "a referrer of an image that loses a tag but stays is kept",
        policy: "keep: [{tags: {regex: 'v.*'}}]\ndeleteReferrers: true",
        repos: || vec![Repo::new("r").tag("v1", 'a', 10.0).tag("ci", 'a', 10.0).sig('a', 'c', 10.0)],
        expect: &[("r:v1", "keep", ""), ("r:ci", "delete", ""), ("r:sig(a)", "protect", "which stays")],
        mutations: &["untag r:ci"],
        ..BASE
    },
    Case {
        name: "untagged referrers of a deleted image are deleted by digest after it",
        policy: "keep: [{mostRecent: 1}]\ndeleteReferrers: true",
        repos: || vec![new_and_old("r").referrer('c', 'b')],
        expect: &[("r:new", "keep", ""), ("r:old", "delete", "")],
        mutations: &["untag r:old", "delete r@c [] after b"],
        ..BASE
    },
    Case {
        name: "a referrer of a referrer is deleted after the referrer",
        policy: "keep: [{mostRecent: 1}]\ndeleteReferrers: true",
        repos: || vec![new_and_old("r").referrer('c', 'b').referrer('d', 'c')],
        expect: &[("r:new", "keep", ""), ("r:old", "delete", "")],
        mutations: &["untag r:old", "delete r@c [] after b", "delete r@d [] after c"],
        ..BASE
    },
    Case {
        name: "purge deletes the referrers of deleted images even without deleteReferrers",
        policy: "purge: true",
        repos: || vec![Repo::new("r").tag("old", 'b', 10.0).sig('b', 'c', 10.0)],
        expect: &[("r:old", "delete", "purge"), ("r:sig(b)", "delete", "referrer of deleted image")],
        mutations: &["untag r:old", "delete r@c [sig(b)] after b"],
        ..BASE
    },
    Case {
        name: "a referrer pushed within minAge is not deleted with its subject",
        policy: "keep: [{mostRecent: 1}]\ndeleteReferrers: true",
        repos: || vec![new_and_old("r").sig('b', 'c', 0.01)],
        expect: &[("r:new", "keep", ""), ("r:old", "delete", ""), ("r:sig(b)", "protect", "within the 1h grace period")],
        mutations: &["untag r:old"],
        ..BASE
    },
    Case {
        name: "a referrer whose subject stays in use is kept with its subject",
        policy: "purge: true",
        repos: || vec![Repo::new("r").tag("prod", 'b', 10.0).sig('b', 'c', 10.0)],
        in_use: &[("r", "tag", "prod", "Pod a/b")],
        expect: &[("r:prod", "protect", "in use by Pod a/b"), ("r:sig(b)", "protect", "which stays")],
        ..BASE
    },
    // ── Mode ────────────────────────────────────────────────────────────────────────────
    Case {
        name: "in Plan mode the decisions are the same and there are no mutations",
        policy: "mode: Plan\nkeep: [{mostRecent: 1}]\ndeleteReferrers: true",
        repos: || vec![new_and_old("r").sig('b', 'c', 10.0)],
        expect: &[("r:new", "keep", ""), ("r:old", "delete", ""), ("r:sig(b)", "delete", "")],
        ..BASE
    },
];

fn run(case: &Case) -> Plan {
    let p = policy("test/policy", case.policy);
    let others: Vec<_> = case.others.iter().map(|(n, y)| policy(n, y)).collect();
    let inv = inventory(case.delete_by_tag, case.pull_stats, (case.repos)());
    plan(
        &p,
        &others,
        &inv,
        &protections(case.in_use),
        support::planner::now(),
    )
}

#[test]
fn every_rule_and_combination_decides_as_the_table_says() {
    let mut failures = Vec::new();
    for case in CASES {
        let plan = run(case);
        let got: Vec<(String, Action, String)> = plan
            .decisions()
            .map(|(r, t)| {
                (
                    format!("{}:{}", r.name, tag_name(&t.tag)),
                    t.decision.action(),
                    t.decision.to_string(),
                )
            })
            .collect();
        let mut problems = Vec::new();
        if got.len() != case.expect.len() {
            problems.push(format!(
                "expected {} tags in the plan, got {}: {:?}",
                case.expect.len(),
                got.len(),
                got.iter().map(|g| &g.0).collect::<Vec<_>>()
            ));
        }
        for (key, action, reason) in case.expect {
            let want = match *action {
                "keep" => Action::Keep,
                "protect" => Action::Protect,
                "delete" => Action::Delete,
                other => panic!("{}: unknown action {other}", case.name),
            };
            match got.iter().find(|g| g.0 == *key) {
                None => problems.push(format!("{key}: not in the plan")),
                Some((_, a, r)) if *a != want || !r.contains(reason) => problems.push(format!(
                    "{key}: expected {action} ({reason:?}), got {a:?} ({r:?})"
                )),
                Some(_) => {}
            }
        }
        let mutations: Vec<String> = plan.mutations().map(compact).collect();
        if mutations != case.mutations {
            problems.push(format!(
                "mutations: expected {:?}, got {mutations:?}",
                case.mutations
            ));
        }
        if plan.notes != case.notes {
            problems.push(format!(
                "notes: expected {:?}, got {:?}",
                case.notes, plan.notes
            ));
        }
        if !problems.is_empty() {
            failures.push(format!("{}:\n    {}", case.name, problems.join("\n    ")));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}

#[test]
fn case_names_are_unique_sentences() {
    let mut names: Vec<&str> = CASES.iter().map(|c| c.name).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), CASES.len());
}

// ── Blast radius ────────────────────────────────────────────────────────────────────────

fn many_old(n: usize) -> Vec<Repo> {
    let mut r = Repo::new("r").tag("new", 'f', 1.0);
    for i in 0..n {
        let c = char::from_digit((i % 10) as u32, 10).unwrap();
        r = r.tag(&format!("old-{i:03}"), c, 10.0 + i as f64);
    }
    vec![r]
}

fn plan_with(policy_yaml: &str, repos: Vec<Repo>) -> Plan {
    let p = policy("test/policy", policy_yaml);
    plan(
        &p,
        &[],
        &inventory(true, false, repos),
        &protections(&[]),
        support::planner::now(),
    )
}

#[test]
fn a_plan_over_max_deletions_per_run_is_blocked_and_says_which_limit() {
    let plan = plan_with(
        "keep: [{mostRecent: 1}]\nlimits: {maxDeletionsPerRun: 2}",
        many_old(3),
    );
    assert_eq!(plan.counts.deletions, 3);
    let breach = plan.check_blast_radius().unwrap_err();
    assert_eq!(
        breach,
        LimitBreach::MaxDeletionsPerRun {
            planned: 3,
            limit: 2
        }
    );
    assert_eq!(breach.field(), "limits.maxDeletionsPerRun");
    assert_eq!(breach.reason(), "BlastRadiusExceeded");
    assert!(plan.checked_mutations().is_err());
    assert_eq!(
        breach.to_string(),
        "the plan deletes 3 tags, more than limits.maxDeletionsPerRun (2)"
    );
}

#[test]
fn a_plan_exactly_at_max_deletions_per_run_passes() {
    let plan = plan_with(
        "keep: [{mostRecent: 1}]\nlimits: {maxDeletionsPerRun: 3}",
        many_old(3),
    );
    assert_eq!(plan.check_blast_radius(), Ok(()));
    assert_eq!(plan.checked_mutations().map(Iterator::count), Ok(3));
}

#[test]
fn max_deletions_per_run_defaults_to_500() {
    let plan = plan_with("keep: [{mostRecent: 1}]", many_old(501));
    assert_eq!(
        plan.check_blast_radius(),
        Err(LimitBreach::MaxDeletionsPerRun {
            planned: 501,
            limit: 500
        })
    );
    let plan = plan_with("keep: [{mostRecent: 1}]", many_old(500));
    assert_eq!(plan.check_blast_radius(), Ok(()));
}

#[test]
fn a_plan_over_max_deletion_percent_of_tags_in_scope_is_blocked() {
    // 10 tags in scope, 9 to delete: 90%.
    let plan = plan_with(
        "keep: [{mostRecent: 1}]\nlimits: {maxDeletionPercent: 80}",
        many_old(9),
    );
    assert_eq!(
        plan.check_blast_radius(),
        Err(LimitBreach::MaxDeletionPercent {
            planned: 9,
            in_scope: 10,
            percent: 80
        })
    );
    let plan = plan_with(
        "keep: [{mostRecent: 1}]\nlimits: {maxDeletionPercent: 90}",
        many_old(9),
    );
    assert_eq!(plan.check_blast_radius(), Ok(()));
}

#[test]
fn a_plan_mode_policy_shows_whether_enforcing_it_would_be_blocked() {
    let plan = plan_with(
        "mode: Plan\nkeep: [{mostRecent: 1}]\nlimits: {maxDeletionsPerRun: 1}",
        many_old(3),
    );
    assert_eq!(plan.mutations().count(), 0);
    assert!(plan.check_blast_radius().is_err());
    let report = Report::new(&plan);
    assert!(report
        .render_table(false)
        .contains("blast-radius limit exceeded"));
}

// ── Compiling policies ──────────────────────────────────────────────────────────────────

fn compile(yaml: &str) -> Result<Policy, Vec<PolicyError>> {
    let rules: RetentionRules = serde_yaml::from_str(yaml).unwrap();
    Policy::compile("ns/p", &rules).map_err(|e| e.errors)
}

#[test]
fn every_invalid_field_is_reported_with_its_path() {
    let errors = compile(
        r"
mode: Enforce
repositories: {include: ['team-a/[']}
keep:
  - tags: {regex: '(', excludeRegex: 'ok'}
    pushedWithin: 30d
  - mostRecent: 0
  - semver: {}
protect: {minAge: soon}
limits: {maxDeletionPercent: 150}
",
    )
    .unwrap_err();
    let fields: Vec<String> = errors
        .iter()
        .map(|e| match e {
            PolicyError::BadRegex { field, .. }
            | PolicyError::BadDuration { field, .. }
            | PolicyError::BadGlob { field, .. }
            | PolicyError::OutOfRange { field, .. }
            | PolicyError::EmptySemver { field }
            | PolicyError::EmptyEntry { field } => field.clone(),
            other => other.to_string(),
        })
        .collect();
    assert_eq!(
        fields,
        [
            "repositories.include[0]",
            "keep[0].tags.regex",
            "keep[0].pushedWithin",
            "keep[1].mostRecent",
            "keep[2].semver",
            "protect.minAge",
            "limits.maxDeletionPercent",
        ]
    );
    assert!(errors.iter().all(|e| e.reason() == "InvalidSpec"));
    let message = errors[2].to_string();
    assert!(message.contains("\"30d\""), "{message}");
}

#[test]
fn purge_with_keep_entries_is_rejected() {
    let errors = compile(
        "mode: Enforce\nrepositories: {include: ['**']}\npurge: true\nkeep: [{mostRecent: 1}]",
    )
    .unwrap_err();
    assert_eq!(errors, [PolicyError::PurgeWithKeep]);
}

#[test]
fn an_empty_keep_entry_is_rejected_because_it_would_keep_everything() {
    let errors = compile("mode: Enforce\nrepositories: {include: ['**']}\nkeep: [{}]").unwrap_err();
    assert_eq!(
        errors,
        [PolicyError::EmptyEntry {
            field: "keep[0]".into()
        }]
    );
}

#[test]
fn a_valid_policy_compiles_with_its_defaults() {
    let p =
        compile("mode: Plan\nrepositories: {include: ['**']}\nkeep: [{mostRecent: 3}]").unwrap();
    assert_eq!(p.limits().max_deletions_per_run, 500);
    assert_eq!(p.limits().max_deletion_percent, None);
    assert!(p.in_scope("a/b/c"));
}

// ── Report ──────────────────────────────────────────────────────────────────────────────

#[test]
fn the_report_counts_every_decision_and_bounds_the_candidates() {
    let plan = plan_with(
        "keep: [{mostRecent: 1}]\nlimits: {maxDeletionsPerRun: 1000}",
        many_old(150),
    );
    let report = Report::new(&plan);
    let s = report.summary;
    assert_eq!(
        (s.repositories, s.tags, s.kept, s.protected),
        (1, 151, 1, 0)
    );
    assert_eq!((s.planned_deletions, s.errors), (150, 0));
    let candidates = report.candidates(Some("registries/main"));
    assert_eq!(
        registry_operator::retention::candidates(&plan, Some("registries/main")),
        candidates
    );
    assert_eq!(registry_operator::retention::Summary::of(&plan), s);
    assert_eq!(candidates.len(), MAX_STATUS_CANDIDATES);
    assert_eq!(candidates[0].tag, "old-000");
    assert_eq!(candidates[0].registry.as_deref(), Some("registries/main"));
    assert!(candidates[0].reason.starts_with("delete: pushed 10d ago"));
}

#[test]
fn reclaimable_bytes_add_up_the_known_sizes_of_deleted_images() {
    let repos = vec![Repo::new("r")
        .tag("new", 'a', 1.0)
        .size('a', 1000)
        .tag("old", 'b', 10.0)
        .size('b', 3 * 1024 * 1024)
        .tag("older", 'c', 20.0)];
    let plan = plan_with("keep: [{mostRecent: 1}]", repos);
    assert_eq!(plan.counts.reclaimable_bytes, Some(3 * 1024 * 1024));
    assert!(Report::new(&plan)
        .headline()
        .ends_with("about 3.0 MiB reclaimable"));
    let unknown = plan_with("keep: [{mostRecent: 1}]", vec![new_and_old("r")]);
    assert_eq!(unknown.counts.reclaimable_bytes, None);
}

#[test]
fn the_table_shows_a_row_per_tag_and_a_headline() {
    let plan = plan_with(
        "mode: Plan\nkeep: [{mostRecent: 1}]",
        vec![new_and_old("team-a/web")],
    );
    let table = Report::new(&plan).render_table(true);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("REPOSITORY"), "{table}");
    assert!(
        lines[1].contains("team-a/web") && lines[1].contains("keep"),
        "{table}"
    );
    assert!(
        lines[2].contains("would delete") && lines[2].contains("not among the 1 most recent"),
        "{table}"
    );
    assert!(
        table.contains("policy test/policy (Plan): 1 repositories, 2 tags: 1 kept, 0 protected, 1 would delete, 0 errors"),
        "{table}"
    );
}

#[test]
fn the_json_report_carries_reasons_as_sentences() {
    let plan = plan_with("keep: [{mostRecent: 1}]", vec![new_and_old("r")]);
    let json = serde_json::to_value(Report::new(&plan)).unwrap();
    assert_eq!(json["summary"]["plannedDeletions"], 1);
    assert_eq!(json["decisions"][1]["action"], "delete");
    assert_eq!(
        json["decisions"][0]["reason"],
        "kept: 1st most recent of entry 1 (keeps 1)"
    );
}

// ── Inventories built by hand ───────────────────────────────────────────────────────────

fn hand_built(
    tags: Vec<registry_operator::retention::Tag>,
) -> registry_operator::retention::Inventory {
    use registry_operator::retention::{Digest, Manifest, Repository};
    registry_operator::retention::Inventory {
        capabilities: Default::default(),
        repositories: vec![Repository {
            name: "r".into(),
            completeness: Default::default(),
            tags,
            manifests: vec![Manifest::new(Digest::new(&support::planner::d('a')))],
        }],
    }
}

fn hand_tag(name: &str, manifest: u32) -> registry_operator::retention::Tag {
    registry_operator::retention::Tag {
        name: name.into(),
        manifest: registry_operator::retention::ManifestId(manifest),
        pushed: Some(support::planner::ago(100.0).into()),
        tagged: false,
        last_pulled: None,
        pull_unknown: false,
        subject: None,
    }
}

#[test]
fn an_inventory_referring_to_manifests_it_does_not_list_leaves_the_repository_untouched() {
    let p = policy("p", "purge: true");
    let inv = hand_built(vec![hand_tag("x", 0), hand_tag("y", 7)]);
    let plan = plan(&p, &[], &inv, &protections(&[]), support::planner::now());
    assert_eq!(plan.mutations().count(), 0);
    assert_eq!(
        plan.repositories[0].incomplete.as_deref(),
        Some("the inventory refers to manifests it does not list")
    );
    assert_eq!(plan.counts.protected, 2);
}

#[test]
fn a_hand_built_repository_listing_a_tag_twice_is_left_untouched() {
    let p = policy("p", "purge: true");
    let inv = hand_built(vec![hand_tag("x", 0), hand_tag("x", 0)]);
    let plan = plan(&p, &[], &inv, &protections(&[]), support::planner::now());
    assert_eq!(plan.mutations().count(), 0);
    assert_eq!(
        plan.repositories[0].incomplete.as_deref(),
        Some("a tag is listed twice")
    );
}
