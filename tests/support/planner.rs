//! Shared helpers for the retention planner tests: a small language for synthetic
//! inventories and policies. Digests are one hex character repeated (`'a'` →
//! `sha256:aaaa…`), so expectations can name them by that character.

#![allow(dead_code)]

use jiff::{SignedDuration, Timestamp};
use registry_operator::api::retention::RetentionRules;
use registry_operator::retention::{
    Capabilities, InUse, Inventory, Mutation, Policy, Protections, Repository, RepositoryBuilder,
};

/// The fixed "now" of every test.
pub fn now() -> Timestamp {
    "2026-11-01T00:00:00Z".parse().unwrap()
}

/// The digest named by one hex character.
pub fn d(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

/// The cosign-style signature tag of the image named by `c`.
pub fn sig_tag(c: char) -> String {
    format!("sha256-{}.sig", c.to_string().repeat(64))
}

/// `days` days before now.
pub fn ago(days: f64) -> Timestamp {
    now()
        .checked_sub(SignedDuration::from_secs_f64(days * 86_400.0))
        .unwrap()
}

/// A repository under construction.
pub struct Repo(pub RepositoryBuilder);

impl Repo {
    pub fn new(name: &str) -> Repo {
        Repo(RepositoryBuilder::new(name))
    }
    /// A tag on image `c`, pushed `days` ago.
    pub fn tag(mut self, name: &str, c: char, days: f64) -> Repo {
        self.0.tag(name, &d(c)).pushed = Some(ago(days).into());
        self
    }
    /// A tag whose push time is unknown.
    pub fn tag_unknown_age(mut self, name: &str, c: char) -> Repo {
        self.0.tag(name, &d(c));
        self
    }
    /// A tag pushed `days` ago that the registry's pull statistics left out.
    pub fn unreported(mut self, name: &str, c: char, days: f64) -> Repo {
        let t = self.0.tag(name, &d(c));
        t.pushed = Some(ago(days).into());
        t.pull_unknown = true;
        self
    }
    /// A tag pushed `days` ago and last pulled `pulled` days ago.
    pub fn pulled(mut self, name: &str, c: char, days: f64, pulled: f64) -> Repo {
        let t = self.0.tag(name, &d(c));
        t.pushed = Some(ago(days).into());
        t.last_pulled = Some(ago(pulled).into());
        self
    }
    /// Image `c`'s config says it was created `days` ago.
    pub fn created(mut self, c: char, days: f64) -> Repo {
        self.0.manifest(&d(c)).created = Some(ago(days).into());
        self
    }
    /// Image `c` weighs `bytes`.
    pub fn size(mut self, c: char, bytes: u64) -> Repo {
        self.0.manifest(&d(c)).size = Some(bytes);
        self
    }
    /// Index `c` lists the images named by `children`.
    pub fn index(mut self, c: char, children: &str) -> Repo {
        for child in children.chars() {
            self.0.child(&d(c), &d(child));
        }
        self
    }
    /// Manifest `c` is a referrer of `subject` (found through the referrers API).
    pub fn referrer(mut self, c: char, subject: char) -> Repo {
        self.0.subject(&d(c), &d(subject));
        self
    }
    /// A cosign signature tag for `subject`, pointing at manifest `c`, pushed `days` ago.
    pub fn sig(mut self, subject: char, c: char, days: f64) -> Repo {
        self.0.tag(&sig_tag(subject), &d(c)).pushed = Some(ago(days).into());
        self
    }
    pub fn incomplete(mut self, reason: &str) -> Repo {
        self.0.incomplete(reason);
        self
    }
    pub fn build(self) -> Repository {
        self.0.build()
    }
}

/// An inventory of a registry that can (`delete_by_tag`) or cannot delete tags alone.
pub fn inventory(delete_by_tag: bool, pull_stats: bool, repos: Vec<Repo>) -> Inventory {
    Inventory {
        capabilities: Capabilities {
            delete_by_tag,
            pull_stats,
        },
        repositories: repos.into_iter().map(Repo::build).collect(),
    }
}

/// Compiles policy YAML (the rules part of a RetentionPolicy spec). `mode: Enforce` and
/// `repositories: {include: ["**"]}` are added when absent.
pub fn policy(name: &str, yaml: &str) -> Policy {
    let mut full = String::new();
    if !yaml.contains("mode:") {
        full.push_str("mode: Enforce\n");
    }
    if !yaml.contains("repositories:") {
        full.push_str("repositories: {include: ['**']}\n");
    }
    full.push_str(yaml);
    let rules: RetentionRules = serde_yaml::from_str(&full).unwrap();
    Policy::compile(name, &rules).unwrap()
}

/// In-use references: `(repository, "tag" | "digest", tag or digest character, user)`.
pub fn protections(refs: &[(&str, &str, &str, &str)]) -> Protections {
    let mut in_use = InUse::new();
    for (repo, kind, what, by) in refs {
        match *kind {
            "tag" => in_use.add_tag(repo, what, by),
            "digest" => in_use.add_digest(repo, &d(what.chars().next().unwrap()), by),
            other => panic!("unknown reference kind {other}"),
        }
    }
    Protections { in_use }
}

/// A test digest back to its character; other digests as written.
pub fn name_of(digest: &str) -> String {
    let hex = digest.trim_start_matches("sha256:");
    let first = hex.chars().next().unwrap_or('?');
    if hex.len() == 64 && hex.chars().all(|c| c == first) {
        first.to_string()
    } else {
        digest.to_owned()
    }
}

/// A tag name with signature tags shortened (`sha256-aaaa….sig` → `sig(a)`).
pub fn tag_name(tag: &str) -> String {
    match tag.strip_prefix("sha256-") {
        Some(rest) => format!("sig({})", rest.chars().next().unwrap_or('?')),
        None => tag.to_owned(),
    }
}

/// A mutation in a compact form: `untag r:t`, `delete r@a [t1 t2]`, `delete r@s [] after a`.
pub fn compact(m: &Mutation) -> String {
    match m {
        Mutation::DeleteTag {
            repository, tag, ..
        } => format!("untag {repository}:{}", tag_name(tag)),
        Mutation::DeleteManifest {
            repository,
            digest,
            tags,
            subject,
        } => {
            let tags: Vec<String> = tags.iter().map(|t| tag_name(t)).collect();
            let mut s = format!(
                "delete {repository}@{} [{}]",
                name_of(&digest.to_string()),
                tags.join(" ")
            );
            if let Some(subject) = subject {
                s.push_str(&format!(" after {}", name_of(&subject.to_string())));
            }
            s
        }
    }
}
