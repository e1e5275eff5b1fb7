//! Views of a [`Plan`] for people and for status: summary counts, per-tag decisions, the
//! bounded candidates list, and a table for the CLI.

use std::fmt::Write as _;
use std::io;

use serde::Serialize;

use super::decision::Action;
use super::plan::{Plan, RepositoryPlan, TagDecision};
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
    /// The plan digest (`sha256:…`) of the decisions: the same on the same registry state
    /// under the same policy ([`Plan::digest`] has the canonical form).
    pub plan_digest: String,
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

impl IncompleteRepository {
    /// Repository plan `r`'s name and why it was not read completely; `None` when it was.
    pub fn of(r: &RepositoryPlan) -> Option<IncompleteRepository> {
        r.incomplete.as_ref().map(|why| IncompleteRepository {
            repository: r.name.to_string(),
            reason: why.to_string(),
        })
    }
}

impl ReportedDecision {
    /// The decision on tag `t` of repository `r`, rendered.
    pub fn of(r: &RepositoryPlan, t: &TagDecision) -> ReportedDecision {
        ReportedDecision {
            repository: r.name.to_string(),
            tag: t.tag.to_string(),
            digest: t.digest.to_string(),
            action: t.decision.action(),
            reason: t.decision.to_string(),
        }
    }

    /// This decision as a status candidate, naming `registry` (`namespace/name`, for cluster
    /// policies).
    pub fn candidate(&self, registry: Option<&str>) -> Candidate {
        Candidate {
            registry: registry.map(str::to_owned),
            repository: self.repository.clone(),
            tag: self.tag.clone(),
            digest: self.digest.clone(),
            reason: self.reason.clone(),
        }
    }
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
        .map(|(r, t)| candidate(registry, r, t))
        .collect()
}

/// The status candidate for tag decision `t` of repository `r`, naming `registry`.
pub fn candidate(registry: Option<&str>, r: &RepositoryPlan, t: &TagDecision) -> Candidate {
    ReportedDecision::of(r, t).candidate(registry)
}

impl Report {
    /// Renders a plan.
    pub fn new(plan: &Plan) -> Report {
        let incomplete = plan
            .repositories
            .iter()
            .filter_map(IncompleteRepository::of)
            .collect();
        let Totals {
            summary,
            plan_digest,
            blast_radius_exceeded,
            notes,
            incomplete_repositories,
        } = Totals::of(plan, incomplete, plan.digest());
        Report {
            policy: plan.policy.to_string(),
            mode: plan.mode,
            now: plan.now.to_string(),
            summary,
            plan_digest,
            blast_radius_exceeded,
            notes,
            incomplete_repositories,
            decisions: plan
                .decisions()
                .map(|(r, t)| ReportedDecision::of(r, t))
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
            .map(|d| d.candidate(registry))
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
            .map(|d| table_row(d, self.mode))
            .collect();
        let mut widths = HEADER.map(str::len);
        for row in &rows {
            widen(&mut widths, row);
        }
        let mut out = String::new();
        write_row(&mut out, &widths, HEADER);
        for row in &rows {
            write_row(&mut out, &widths, row.each_ref().map(String::as_str));
        }
        out.push_str(&self.totals().table_footer(&self.policy, self.mode));
        out
    }

    /// What comes after the decisions.
    fn totals(&self) -> Totals {
        Totals {
            summary: self.summary,
            plan_digest: self.plan_digest.clone(),
            blast_radius_exceeded: self.blast_radius_exceeded.clone(),
            notes: self.notes.clone(),
            incomplete_repositories: self.incomplete_repositories.clone(),
        }
    }
}

/// The table's columns.
const HEADER: [&str; 5] = ["REPOSITORY", "TAG", "DIGEST", "DECISION", "REASON"];

/// One decision as the table's cells.
fn table_row(d: &ReportedDecision, mode: PolicyMode) -> [String; 5] {
    let action = match (d.action, mode) {
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
}

/// Widens `widths` to fit `rows`.
fn widen(widths: &mut [usize; 5], row: &[String; 5]) {
    for (w, cell) in widths.iter_mut().zip(row) {
        *w = (*w).max(cell.chars().count());
    }
}

/// How much of a repository's rows or decisions the streamed writers gather before handing
/// them to their writer.
const WRITE_CHUNK: usize = 64 * 1024;

fn write_row(out: &mut String, widths: &[usize; 5], cells: [&str; 5]) {
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
}

/// The part of a [`Report`] that is known once every repository is planned: counts, the
/// blast-radius verdict, notes and the incomplete repositories — what the streamed table and
/// JSON write after the decisions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    /// Counts.
    pub summary: Summary,
    /// The plan digest of every decision of the run.
    pub plan_digest: String,
    /// Set when the plan breaches a blast-radius limit: nothing will be deleted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blast_radius_exceeded: Option<String>,
    /// Notes about the plan.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Repositories whose listing was incomplete, with why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub incomplete_repositories: Vec<IncompleteRepository>,
}

impl Totals {
    /// The totals of `plan` (its counts cover every repository planned, whichever it holds),
    /// with the incomplete repositories of the run and its `plan_digest` — [`Plan::digest`]
    /// when the plan holds every repository, else what the stream fed a
    /// [`PlanDigest`](super::plan::PlanDigest).
    pub fn of(plan: &Plan, incomplete: Vec<IncompleteRepository>, plan_digest: String) -> Totals {
        Totals {
            summary: Summary::of(plan),
            plan_digest,
            blast_radius_exceeded: plan.check_blast_radius().err().map(|e| e.to_string()),
            notes: plan.notes.clone(),
            incomplete_repositories: incomplete,
        }
    }

    /// The lines under the table: the headline, the blast-radius verdict, the incomplete
    /// repositories and the notes.
    pub fn table_footer(&self, policy: &str, mode: PolicyMode) -> String {
        let mut out = String::from("\n");
        out.push_str(&headline(policy, mode, &self.summary));
        let _ = writeln!(out, "; plan digest {}", self.plan_digest);
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

/// Writes the table of a plan as its repositories are planned: the rows of each repository
/// as it comes, the footer at the end. Columns are as wide as the widest cell so far: the
/// header fits the first repository's rows, and a later, longer name widens the rows from
/// there on.
pub struct TableWriter<W: io::Write> {
    out: W,
    mode: PolicyMode,
    all: bool,
    widths: [usize; 5],
    header: bool,
}

impl<W: io::Write> TableWriter<W> {
    /// A table of a plan in `mode`, of every tag (`all`) or of those not kept by a keep entry.
    pub fn new(out: W, mode: PolicyMode, all: bool) -> Self {
        TableWriter {
            out,
            mode,
            all,
            widths: HEADER.map(str::len),
            header: false,
        }
    }

    /// Writes one repository's rows. Two passes over its decisions, one for the column
    /// widths and one to write, so that a repository of any size holds no more of its rows
    /// than [`WRITE_CHUNK`] bytes.
    pub fn repository(&mut self, plan: &RepositoryPlan) -> io::Result<()> {
        let rows = || {
            plan.tags
                .iter()
                .map(|t| ReportedDecision::of(plan, t))
                .filter(|d| self.all || d.action != Action::Keep)
                .map(|d| table_row(&d, self.mode))
        };
        let mut widths = self.widths;
        let mut any = false;
        for row in rows() {
            widen(&mut widths, &row);
            any = true;
        }
        if !any {
            return Ok(());
        }
        let mut text = String::new();
        if !self.header {
            write_row(&mut text, &widths, HEADER);
        }
        for row in rows() {
            write_row(&mut text, &widths, row.each_ref().map(String::as_str));
            if text.len() >= WRITE_CHUNK {
                self.out.write_all(text.as_bytes())?;
                text.clear();
            }
        }
        self.header = true;
        self.widths = widths;
        self.out.write_all(text.as_bytes())?;
        self.out.flush()
    }

    /// Writes the footer (and the header, if no row came) and returns the writer.
    pub fn finish(mut self, policy: &str, totals: &Totals) -> io::Result<W> {
        let mut text = String::new();
        if !self.header {
            write_row(&mut text, &self.widths, HEADER);
        }
        text.push_str(&totals.table_footer(policy, self.mode));
        self.out.write_all(text.as_bytes())?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Writes the JSON document of a plan — the one [`Report`] serialises to, with the decisions
/// first — as its repositories are planned: `policy`, `mode`, `now`, then the `decisions`
/// array, element by element as each repository comes, then the [`Totals`] and whatever the
/// caller adds (`execution`, `requests`).
pub struct JsonWriter<W: io::Write> {
    out: W,
    /// The document's start, written with the first decision (or at the end): nothing is
    /// written for a run that fails before planning anything.
    head: Option<String>,
    decisions: u64,
}

impl<W: io::Write> JsonWriter<W> {
    /// The document of the plan of `policy` in `mode` at `now`.
    pub fn new(out: W, policy: &str, mode: PolicyMode, now: jiff::Timestamp) -> io::Result<Self> {
        let head = format!(
            "{{\n  \"policy\": {},\n  \"mode\": {},\n  \"now\": {},\n  \"decisions\": [",
            json(policy)?,
            json(&mode)?,
            json(&now.to_string())?
        );
        Ok(JsonWriter {
            out,
            head: Some(head),
            decisions: 0,
        })
    }

    /// Writes one repository's decisions, a few at a time: a repository of any size holds
    /// no more of its document than [`WRITE_CHUNK`] bytes.
    pub fn repository(&mut self, plan: &RepositoryPlan) -> io::Result<()> {
        if plan.tags.is_empty() {
            return Ok(());
        }
        let mut text = self.head.take().unwrap_or_default();
        for t in &plan.tags {
            text.push_str(if self.decisions == 0 {
                "\n    "
            } else {
                ",\n    "
            });
            text.push_str(&indented(&ReportedDecision::of(plan, t), "    ")?);
            self.decisions += 1;
            if text.len() >= WRITE_CHUNK {
                self.out.write_all(text.as_bytes())?;
                text.clear();
            }
        }
        self.out.write_all(text.as_bytes())?;
        self.out.flush()
    }

    /// Ends the array, writes `totals` and then each of `extra` (in order), and returns the
    /// writer.
    pub fn finish(mut self, totals: &Totals, extra: &[(&str, serde_json::Value)]) -> io::Result<W> {
        let mut text = self.head.take().unwrap_or_default();
        text.push_str(if self.decisions == 0 { "]" } else { "\n  ]" });
        let value = serde_json::to_value(totals).map_err(io::Error::other)?;
        let fields = value.as_object().into_iter().flatten();
        let fields = fields
            .map(|(k, v)| (k.as_str(), v))
            .chain(extra.iter().map(|(k, v)| (*k, v)));
        for (key, value) in fields {
            let _ = write!(text, ",\n  {}: {}", json(key)?, indented(value, "  ")?);
        }
        text.push_str("\n}\n");
        self.out.write_all(text.as_bytes())?;
        self.out.flush()?;
        Ok(self.out)
    }
}

fn json<T: Serialize + ?Sized>(value: &T) -> io::Result<String> {
    serde_json::to_string(value).map_err(io::Error::other)
}

/// `value` pretty-printed, its lines after the first indented by `indent` (JSON strings hold
/// no raw line breaks, so only the layout's are).
fn indented<T: Serialize + ?Sized>(value: &T, indent: &str) -> io::Result<String> {
    let text = serde_json::to_string_pretty(value).map_err(io::Error::other)?;
    Ok(text.replace('\n', &format!("\n{indent}")))
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

    use crate::api::retention::RetentionRules;
    use crate::retention::inventory::{Capabilities, Inventory, RepositoryBuilder, Time};
    use crate::retention::{plan, Policy, Protections};

    /// A plan with deletions past its limit, a note, an incomplete repository and a
    /// repository whose tags are all kept.
    fn sample_plan(repositories: u64) -> Plan {
        let now: jiff::Timestamp = "2026-11-01T00:00:00Z".parse().unwrap();
        let mut repos = Vec::new();
        for r in 0..repositories {
            let mut b = RepositoryBuilder::new(&format!("team/svc-{r}"));
            for t in 0..(3 + r) {
                let digest = format!("sha256:{:064x}", r * 100 + t);
                let pushed = now.checked_sub(jiff::SignedDuration::from_hours(t as i64 * 48));
                b.tag(&format!("v{t}"), &digest).pushed = pushed.ok().map(Time::from);
            }
            if r == 1 {
                b.incomplete("listing tags failed: 500");
            }
            repos.push(b.build());
        }
        let inventory = Inventory {
            capabilities: Capabilities::default(),
            repositories: repos,
        };
        let rules: RetentionRules = serde_yaml::from_str(
            "mode: Plan\nrepositories: {include: ['**'], exclude: ['team/svc-2']}\nkeep: [{mostRecent: 2}, {pulledWithin: 1h, tags: {regex: 'v3'}}]\nlimits: {maxDeletionsPerRun: 1}",
        )
        .unwrap();
        let policy = Policy::compile("ns/p", &rules).unwrap();
        plan(&policy, &[], &inventory, &Protections::default(), now)
    }

    fn incomplete(plan: &Plan) -> Vec<IncompleteRepository> {
        Report::new(plan).incomplete_repositories
    }

    #[test]
    fn the_streamed_json_is_the_report_with_the_decisions_before_the_totals() {
        for repositories in [0, 5] {
            let plan = sample_plan(repositories);
            let mut w = JsonWriter::new(Vec::new(), &plan.policy, plan.mode, plan.now).unwrap();
            for r in &plan.repositories {
                w.repository(r).unwrap();
            }
            let totals = Totals::of(&plan, incomplete(&plan), plan.digest());
            let extra = [("requests", serde_json::json!({"total": 3}))];
            let bytes = w.finish(&totals, &extra).unwrap();
            let streamed: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            let mut expected = serde_json::to_value(Report::new(&plan)).unwrap();
            expected["requests"] = serde_json::json!({"total": 3});
            assert_eq!(streamed, expected);
            let keys: Vec<&str> = streamed
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            if repositories > 0 {
                assert!(plan.counts.deletions > 1 && !plan.notes.is_empty());
                assert_eq!(
                    keys,
                    [
                        "policy",
                        "mode",
                        "now",
                        "decisions",
                        "summary",
                        "planDigest",
                        "blastRadiusExceeded",
                        "notes",
                        "incompleteRepositories",
                        "requests"
                    ]
                );
            } else {
                assert_eq!(streamed["decisions"], serde_json::json!([]));
            }
        }
    }

    #[test]
    fn the_streamed_table_has_the_rows_and_footer_of_the_whole_table() {
        let collapse = |t: &str| -> Vec<String> {
            t.lines()
                .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
                .collect()
        };
        for all in [false, true] {
            for repositories in [0, 5] {
                let plan = sample_plan(repositories);
                let mut w = TableWriter::new(Vec::new(), plan.mode, all);
                for r in &plan.repositories {
                    w.repository(r).unwrap();
                }
                let totals = Totals::of(&plan, incomplete(&plan), plan.digest());
                let text = String::from_utf8(w.finish(&plan.policy, &totals).unwrap()).unwrap();
                let whole = Report::new(&plan).render_table(all);
                assert_eq!(collapse(&text), collapse(&whole), "{text}");
                assert!(text.starts_with("REPOSITORY"), "{text}");
            }
        }
    }

    #[test]
    fn byte_counts_read_in_binary_units() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }
}
