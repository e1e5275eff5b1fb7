//! Views of a [`Plan`] for people and for status: summary counts, per-tag decisions, the
//! bounded candidates list, and a table for the CLI.

use std::fmt::Write as _;

use serde::Serialize;

use super::decision::Action;
use super::plan::Plan;
use crate::api::retention::{Candidate, PolicyMode, MAX_STATUS_CANDIDATES};

/// Counts of a plan, as status and the CLI show them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Repositories in scope.
    pub repositories: u64,
    /// Repositories listed but outside the scope (untouched).
    pub out_of_scope_repositories: u64,
    /// Tags in scope.
    pub tags: u64,
    /// Tags kept by keep entries.
    pub kept: u64,
    /// Tags kept by protections (in use, too young, unknown age, shared image, other
    /// policy, incomplete listing, referrer of a kept image).
    pub protected: u64,
    /// Tags the plan deletes: `wouldDelete` in Plan mode or when a limit blocks the run,
    /// the tags to delete otherwise (the executor reports how many it deleted).
    pub planned_deletions: u64,
    /// Manifests the plan deletes by digest.
    pub manifest_deletions: u64,
    /// Repositories whose listing failed.
    pub errors: u64,
    /// Estimated bytes freed once the registry's garbage collection runs, from the known
    /// sizes of the manifests deleted by digest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reclaimable_bytes: Option<u64>,
}

/// One tag's decision, rendered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportedDecision {
    /// Repository.
    pub repository: String,
    /// Tag.
    pub tag: String,
    /// Digest it pointed at.
    pub digest: String,
    /// Keep, protect or delete.
    pub action: Action,
    /// Why, for people (`kept: 3rd most recent of entry 2 (keeps 10)`).
    pub reason: String,
}

/// A plan rendered for people: what `retention plan -o json` prints, and what status and the
/// table are made from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The policy.
    pub policy: String,
    /// Its mode.
    pub mode: PolicyMode,
    /// When the plan was computed (RFC 3339).
    pub now: String,
    /// Counts.
    pub summary: Summary,
    /// Set when the plan breaches a blast-radius limit: nothing will be deleted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blast_radius_exceeded: Option<String>,
    /// Notes about the plan (unsupported criteria, …).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Repositories whose listing was incomplete, with why: nothing in them is deleted this
    /// run, and tags that could not be read have no decision.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub incomplete_repositories: Vec<IncompleteRepository>,
    /// Every tag's decision, by repository and tag.
    pub decisions: Vec<ReportedDecision>,
}

/// A repository the run could not read completely.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IncompleteRepository {
    /// Repository.
    pub repository: String,
    /// What failed.
    pub reason: String,
}

impl Summary {
    /// The counts of a plan.
    pub fn of(plan: &Plan) -> Summary {
        let c = plan.counts;
        Summary {
            repositories: c.repositories,
            out_of_scope_repositories: plan.out_of_scope_repositories,
            tags: c.tags,
            kept: c.kept,
            protected: c.protected,
            planned_deletions: c.deletions,
            manifest_deletions: c.manifest_deletions,
            errors: c.errors,
            reclaimable_bytes: c.reclaimable_bytes,
        }
    }
}

/// One sentence with the counts of a plan: `policy ns/name (Plan): 3 repositories, …`.
pub fn headline(policy: &str, mode: PolicyMode, s: &Summary) -> String {
    let verb = match mode {
        PolicyMode::Plan => "would delete",
        PolicyMode::Enforce => "to delete",
    };
    let mut line = format!(
        "policy {policy} ({mode}): {} repositories, {} tags: {} kept, {} protected, {} {verb}, {} errors",
        s.repositories, s.tags, s.kept, s.protected, s.planned_deletions, s.errors
    );
    if let Some(bytes) = s.reclaimable_bytes {
        let _ = write!(line, "; about {} reclaimable", human_bytes(bytes));
    }
    line
}

/// The tags a plan deletes (or would), first by repository and tag, at most
/// [`MAX_STATUS_CANDIDATES`]: the policy status's `candidates`, without rendering the other
/// decisions. `registry` is the `namespace/name` of the Registry, for cluster policies.
pub fn candidates(plan: &Plan, registry: Option<&str>) -> Vec<Candidate> {
    plan.decisions()
        .filter(|(_, t)| t.decision.is_delete())
        .take(MAX_STATUS_CANDIDATES)
        .map(|(r, t)| Candidate {
            registry: registry.map(str::to_owned),
            repository: r.name.to_string(),
            tag: t.tag.to_string(),
            digest: t.digest.to_string(),
            reason: t.decision.to_string(),
        })
        .collect()
}

impl Report {
    /// Renders a plan.
    pub fn new(plan: &Plan) -> Report {
        Report {
            policy: plan.policy.to_string(),
            mode: plan.mode,
            now: plan.now.to_string(),
            summary: Summary::of(plan),
            blast_radius_exceeded: plan.check_blast_radius().err().map(|e| e.to_string()),
            notes: plan.notes.clone(),
            incomplete_repositories: plan
                .repositories
                .iter()
                .filter_map(|r| {
                    r.incomplete.as_ref().map(|why| IncompleteRepository {
                        repository: r.name.to_string(),
                        reason: why.to_string(),
                    })
                })
                .collect(),
            decisions: plan
                .decisions()
                .map(|(r, t)| ReportedDecision {
                    repository: r.name.to_string(),
                    tag: t.tag.to_string(),
                    digest: t.digest.to_string(),
                    action: t.decision.action(),
                    reason: t.decision.to_string(),
                })
                .collect(),
        }
    }

    /// The tags deleted (or to be), first by repository and tag, at most
    /// [`MAX_STATUS_CANDIDATES`]: the policy status's `candidates`. `registry` is the
    /// `namespace/name` of the Registry, for cluster policies.
    pub fn candidates(&self, registry: Option<&str>) -> Vec<Candidate> {
        self.decisions
            .iter()
            .filter(|d| d.action == Action::Delete)
            .take(MAX_STATUS_CANDIDATES)
            .map(|d| Candidate {
                registry: registry.map(str::to_owned),
                repository: d.repository.clone(),
                tag: d.tag.clone(),
                digest: d.digest.clone(),
                reason: d.reason.clone(),
            })
            .collect()
    }

    /// One sentence with the counts.
    pub fn headline(&self) -> String {
        headline(&self.policy, self.mode, &self.summary)
    }

    /// A table for a terminal: one row per tag (`all`) or only the tags that are not kept by
    /// a keep entry, then the headline, the blast-radius verdict and the notes.
    pub fn render_table(&self, all: bool) -> String {
        let rows: Vec<[String; 5]> = self
            .decisions
            .iter()
            .filter(|d| all || d.action != Action::Keep)
            .map(|d| {
                let action = match (d.action, self.mode) {
                    (Action::Keep, _) => "keep",
                    (Action::Protect, _) => "protect",
                    (Action::Delete, PolicyMode::Plan) => "would delete",
                    (Action::Delete, PolicyMode::Enforce) => "delete",
                };
                let reason = d.reason.split_once(": ").map_or(d.reason.as_str(), |x| x.1);
                let reason = if d.reason.starts_with("kept by policy") {
                    d.reason.trim_start_matches("kept ")
                } else {
                    reason
                };
                [
                    d.repository.clone(),
                    d.tag.clone(),
                    short(&d.digest).to_owned(),
                    action.to_owned(),
                    reason.to_owned(),
                ]
            })
            .collect();
        let header = ["REPOSITORY", "TAG", "DIGEST", "DECISION", "REASON"];
        let mut widths = header.map(str::len);
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let mut line = |cells: [&str; 5]| {
            let mut l = String::new();
            for (i, cell) in cells.iter().enumerate() {
                if i == 4 {
                    l.push_str(cell);
                } else {
                    let _ = write!(l, "{cell:<w$}  ", w = widths[i]);
                }
            }
            out.push_str(l.trim_end());
            out.push('\n');
        };
        line(header);
        for row in &rows {
            line([&row[0], &row[1], &row[2], &row[3], &row[4]]);
        }
        out.push('\n');
        out.push_str(&self.headline());
        out.push('\n');
        if let Some(breach) = &self.blast_radius_exceeded {
            let _ = writeln!(
                out,
                "blast-radius limit exceeded: {breach}; nothing will be deleted"
            );
        }
        for r in &self.incomplete_repositories {
            let _ = writeln!(
                out,
                "incomplete: {}: {}; nothing in it is deleted this run",
                r.repository, r.reason
            );
        }
        for note in &self.notes {
            let _ = writeln!(out, "note: {note}");
        }
        out
    }
}

fn short(digest: &str) -> &str {
    let end = digest.find(':').map_or(12, |i| i + 13);
    digest.get(..end).unwrap_or(digest)
}

fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_read_in_binary_units() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }
}
