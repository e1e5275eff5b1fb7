//! The plan digest: one `sha256:` value that names what a run decided, so that two runs on
//! the same registry state under the same policy can be told to have decided the same.
//!
//! Canonical form. Each decision is the line
//!
//! ```text
//! <repository> TAB <tag> TAB <digest> TAB <action> LF      action: keep | protect | delete
//! ```
//!
//! (no name, tag or digest can hold a TAB or LF, so the lines cannot be confused). A
//! repository's section digest is the sha256 of its lines sorted bytewise; the plan digest is
//! `sha256:` and the hex sha256 of the lines `<repository> TAB <section hex> LF` of every
//! repository with at least one decision, sorted by repository name. Only the decisions enter
//! it — not the time, the mode, the reasons or the order in which repositories were planned —
//! so the same tags on the same digests given the same actions give the same digest, and a
//! changed digest, action or tag changes it. The two levels let a run that streams its
//! repositories (and forgets them) compute it holding one hash per repository.

use std::collections::BTreeMap;

use sha2::{Digest as _, Sha256};

use super::{Plan, RepositoryPlan};
use crate::retention::decision::Action;

/// The accumulator of a plan digest, fed one [`RepositoryPlan`] at a time in any order.
#[derive(Debug, Clone, Default)]
pub struct PlanDigest {
    sections: BTreeMap<String, [u8; 32]>,
}

fn action_word(a: Action) -> &'static str {
    match a {
        Action::Keep => "keep",
        Action::Protect => "protect",
        Action::Delete => "delete",
    }
}

impl PlanDigest {
    /// An empty accumulator (the digest of a plan without decisions).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a repository's decisions. A repository added twice counts with its decisions of
    /// both times, as if planned once with all of them.
    pub fn add(&mut self, repository: &RepositoryPlan) {
        if repository.tags.is_empty() {
            return;
        }
        let name: &str = &repository.name;
        let mut lines: Vec<String> = repository
            .tags
            .iter()
            .map(|t| {
                format!(
                    "{name}\t{}\t{}\t{}\n",
                    t.tag,
                    t.digest,
                    action_word(t.decision.action())
                )
            })
            .collect();
        if let Some(earlier) = self.sections.remove(name) {
            // keep both: the earlier section's hash stands for its lines
            lines.push(format!("{name}\t\t{}\t\n", hex::encode(earlier)));
        }
        lines.sort_unstable();
        let mut h = Sha256::new();
        for l in &lines {
            h.update(l.as_bytes());
        }
        self.sections.insert(name.to_string(), h.finalize().into());
    }

    /// The digest of what was added: `sha256:<64 hex>`.
    pub fn finish(&self) -> String {
        let mut h = Sha256::new();
        for (name, section) in &self.sections {
            h.update(name.as_bytes());
            h.update(b"\t");
            h.update(hex::encode(section).as_bytes());
            h.update(b"\n");
        }
        format!("sha256:{}", hex::encode(h.finalize()))
    }
}

impl Plan {
    /// The plan digest of every decision this plan holds (see the [module](self) for the
    /// canonical form). A plan that forgot repositories while streaming (a run that holds
    /// only what it may delete) has the digest its stream fed to a [`PlanDigest`] instead.
    pub fn digest(&self) -> String {
        let mut d = PlanDigest::new();
        for r in &self.repositories {
            d.add(r);
        }
        d.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::retention::RetentionRules;
    use crate::retention::inventory::{Capabilities, Inventory, RepositoryBuilder, Time};
    use crate::retention::plan::{plan, Protections};
    use crate::retention::policy::Policy;

    fn now() -> jiff::Timestamp {
        "2026-11-01T00:00:00Z".parse().unwrap()
    }

    /// Repositories of `(name, [(tag, digest number)])`, tags pushed a day apart (first newest).
    fn inventory(repos: &[(&str, &[(&str, u64)])]) -> Inventory {
        let repositories = repos
            .iter()
            .map(|(name, tags)| {
                let mut b = RepositoryBuilder::new(name);
                for (i, (tag, d)) in tags.iter().enumerate() {
                    let pushed = now().checked_sub(jiff::SignedDuration::from_hours(24 * i as i64));
                    b.tag(tag, &format!("sha256:{d:064x}")).pushed = pushed.ok().map(Time::from);
                }
                b.build()
            })
            .collect();
        Inventory {
            capabilities: Capabilities::default(),
            repositories,
        }
    }

    fn policy(keep: u32) -> Policy {
        let rules: RetentionRules = serde_yaml::from_str(&format!(
            "mode: Plan\nrepositories: {{include: ['**']}}\nkeep: [{{mostRecent: {keep}}}]"
        ))
        .unwrap();
        Policy::compile("ns/p", &rules).unwrap()
    }

    fn digest_of(inv: &Inventory, keep: u32) -> String {
        plan(&policy(keep), &[], inv, &Protections::default(), now()).digest()
    }

    const A: &[(&str, u64)] = &[("v3", 3), ("v2", 2), ("v1", 1)];
    const B: &[(&str, u64)] = &[("latest", 9), ("old", 8)];

    #[test]
    fn the_digest_does_not_depend_on_the_order_repositories_are_listed_or_fed_in() {
        let forward = digest_of(&inventory(&[("team/a", A), ("team/b", B)]), 1);
        let backward = digest_of(&inventory(&[("team/b", B), ("team/a", A)]), 1);
        assert_eq!(forward, backward);
        let p = plan(
            &policy(1),
            &[],
            &inventory(&[("team/a", A), ("team/b", B)]),
            &Protections::default(),
            now(),
        );
        let mut streamed = PlanDigest::new();
        for r in p.repositories.iter().rev() {
            streamed.add(r);
        }
        assert_eq!(streamed.finish(), forward);
        // and planning again gives it again
        assert_eq!(
            digest_of(&inventory(&[("team/a", A), ("team/b", B)]), 1),
            forward
        );
    }

    #[test]
    fn a_tag_on_another_digest_changes_the_digest() {
        let before = digest_of(&inventory(&[("team/a", A)]), 1);
        let moved: &[(&str, u64)] = &[("v3", 3), ("v2", 22), ("v1", 1)];
        assert_ne!(digest_of(&inventory(&[("team/a", moved)]), 1), before);
    }

    #[test]
    fn another_action_on_the_same_tags_changes_the_digest() {
        let inv = inventory(&[("team/a", A)]);
        assert_ne!(digest_of(&inv, 1), digest_of(&inv, 2));
        // a tag added changes it too
        let more: &[(&str, u64)] = &[("v4", 4), ("v3", 3), ("v2", 2), ("v1", 1)];
        assert_ne!(
            digest_of(&inventory(&[("team/a", more)]), 9),
            digest_of(&inv, 9)
        );
    }

    #[test]
    fn the_digest_is_the_documented_canonical_form() {
        let inv = inventory(&[("team/a", &[("v2", 2), ("v1", 1)])]);
        let lines = format!(
            "team/a\tv1\tsha256:{:064x}\tdelete\nteam/a\tv2\tsha256:{:064x}\tkeep\n",
            1, 2
        );
        let section = hex::encode(Sha256::digest(lines.as_bytes()));
        let expected = format!(
            "sha256:{}",
            hex::encode(Sha256::digest(format!("team/a\t{section}\n").as_bytes()))
        );
        assert_eq!(digest_of(&inv, 1), expected);
        // a plan without decisions has the digest of nothing
        assert_eq!(
            PlanDigest::new().finish(),
            format!("sha256:{}", hex::encode(Sha256::digest(b"")))
        );
    }
}
