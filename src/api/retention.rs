//! `RetentionPolicy` (namespaced) and `ClusterRetentionPolicy` (cluster-wide): which tags of
//! which repositories to keep, and what happens to the rest.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::GO_DURATION_PATTERN;

/// Default of `limits.maxDeletionsPerRun`.
pub const DEFAULT_MAX_DELETIONS_PER_RUN: i32 = 500;
/// Default of `protect.minAge`.
pub const DEFAULT_MIN_AGE: &str = "1h";
/// How many candidates a policy's status lists at most; `lastRun` still counts all of them.
pub const MAX_STATUS_CANDIDATES: usize = 100;

/// Tag retention for the repositories of one Registry in the policy's namespace.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "registry-operator.dev",
    version = "v1alpha1",
    kind = "RetentionPolicy",
    plural = "retentionpolicies",
    singular = "retentionpolicy",
    shortname = "rp",
    category = "registry-operator",
    namespaced,
    status = "RetentionPolicyStatus",
    printcolumn = r#"{"name":"Registry","type":"string","jsonPath":".spec.registryRef.name"}"#,
    printcolumn = r#"{"name":"Mode","type":"string","jsonPath":".spec.mode"}"#,
    printcolumn = r#"{"name":"Deleted","type":"integer","jsonPath":".status.lastRun.deleted"}"#,
    printcolumn = r#"{"name":"Would Delete","type":"integer","jsonPath":".status.lastRun.wouldDelete"}"#,
    printcolumn = r#"{"name":"Last Run","type":"date","jsonPath":".status.lastRun.completionTime"}"#,
    printcolumn = r#"{"name":"Next Run","type":"string","jsonPath":".status.nextRunTime"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    validation = Rule::new("!has(self.spec.purge) || !self.spec.purge || !has(self.spec.keep) || size(self.spec.keep) == 0").message("purge: true deletes every tag of the matched repositories, so keep must be empty"),
)]
#[serde(rename_all = "camelCase")]
pub struct RetentionPolicySpec {
    /// The Registry (managed or external) in this namespace whose repositories the policy prunes.
    pub registry_ref: RegistryRef,
    /// What to keep and how to act on the rest.
    #[serde(flatten)]
    pub rules: RetentionRules,
}

/// Tag retention applied across namespaces: to every Registry matching `registrySelector` in
/// the namespaces matching `namespaceSelector`. Its keep entries also veto deletions planned by
/// namespaced policies on the same repositories.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "registry-operator.dev",
    version = "v1alpha1",
    kind = "ClusterRetentionPolicy",
    plural = "clusterretentionpolicies",
    singular = "clusterretentionpolicy",
    shortname = "crp",
    category = "registry-operator",
    status = "RetentionPolicyStatus",
    printcolumn = r#"{"name":"Mode","type":"string","jsonPath":".spec.mode"}"#,
    printcolumn = r#"{"name":"Deleted","type":"integer","jsonPath":".status.lastRun.deleted"}"#,
    printcolumn = r#"{"name":"Would Delete","type":"integer","jsonPath":".status.lastRun.wouldDelete"}"#,
    printcolumn = r#"{"name":"Last Run","type":"date","jsonPath":".status.lastRun.completionTime"}"#,
    printcolumn = r#"{"name":"Next Run","type":"string","jsonPath":".status.nextRunTime"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    validation = Rule::new("!has(self.spec.purge) || !self.spec.purge || !has(self.spec.keep) || size(self.spec.keep) == 0").message("purge: true deletes every tag of the matched repositories, so keep must be empty"),
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterRetentionPolicySpec {
    /// Labels of the Registries the policy applies to. `{}` selects every Registry.
    pub registry_selector: LabelSelector,
    /// Labels of the namespaces whose Registries are considered. Unset: all namespaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    /// What to keep and how to act on the rest.
    #[serde(flatten)]
    pub rules: RetentionRules,
}

/// A Registry in the same namespace as the policy.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistryRef {
    /// Name of the Registry.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// The rules shared by RetentionPolicy and ClusterRetentionPolicy.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetentionRules {
    /// `Plan` computes what would be deleted and shows it in status without deleting anything;
    /// `Enforce` deletes it. Required: there is no default, so nothing is deleted by accident.
    pub mode: PolicyMode,
    /// When to run: a five-field cron expression in UTC (`0 3 * * *`) or `@every <duration>`
    /// (`@every 6h`). Unset: run when the policy changes and when a run is requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub schedule: Option<String>,
    /// Pause the policy: no runs at all (scheduled, on a spec change or requested) while true;
    /// a run requested meanwhile waits. Setting it back to false starts one run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
    /// Repositories in scope. Repositories outside it are never touched.
    pub repositories: RepositoryScope,
    /// Keep entries. A tag survives when ANY entry keeps it (unlike zot, where the first
    /// matching entry decides). With no entries and `purge: false` nothing is deleted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub keep: Vec<KeepRule>,
    /// What is never deleted regardless of keep entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protect: Option<Protection>,
    /// Also delete referrers (signatures, SBOMs, attestations) of deleted images. Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_referrers: Option<bool>,
    /// Blast-radius limits, checked on the plan before the first deletion. A plan over a limit
    /// deletes nothing and sets Stalled=True with reason BlastRadiusExceeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
    /// Delete every tag of every repository in scope (decommissioning a project), except
    /// protected images. `keep` must be empty. Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purge: Option<bool>,
}

/// Plan or Enforce.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum PolicyMode {
    /// Compute and report; never delete.
    Plan,
    /// Delete what the plan says.
    Enforce,
}

impl std::fmt::Display for PolicyMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PolicyMode::Plan => "Plan",
            PolicyMode::Enforce => "Enforce",
        })
    }
}

/// Repository globs: `*` matches within one path segment, `**` across segments
/// (`team-a/**` matches `team-a/web` and `team-a/x/y`, not `team-a` itself).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryScope {
    /// Repositories matching any of these globs are in scope. Use `["**"]` for all.
    #[schemars(length(min = 1, max = 256))]
    pub include: Vec<String>,
    /// Repositories matching any of these globs are out of scope even when included.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub exclude: Vec<String>,
}

/// One keep entry: keeps the tags its selector matches that satisfy ANY of its criteria
/// (`mostRecent`, `pushedWithin`, `pulledWithin`, `semver`). No criteria: keeps every matched tag.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.tags) || has(self.mostRecent) || has(self.pushedWithin) || has(self.pulledWithin) || has(self.semver)",
    "message": "a keep entry needs a tags selector or a criterion (mostRecent, pushedWithin, pulledWithin, semver); an empty entry would keep every tag"
}]))]
pub struct KeepRule {
    /// Which tags the entry considers. Unset: every tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<TagSelector>,
    /// Keep the N newest images (by push time) among those carrying a matched tag, per
    /// repository. Counts images, not tag names: `latest` and `v1.2.3` on one image count once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub most_recent: Option<i32>,
    /// Keep tags pushed within this Go duration (`720h`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = GO_DURATION_PATTERN))]
    pub pushed_within: Option<String>,
    /// Keep tags pulled within this Go duration. Needs pull statistics (zot's search
    /// extension); where the registry has none, the tags this would judge are kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = GO_DURATION_PATTERN))]
    pub pulled_within: Option<String>,
    /// Keep the highest semantic versions among matched tags that parse as semver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub semver: Option<SemverKeep>,
}

/// Tag selector of a keep entry.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TagSelector {
    /// Regular expression a tag must match, anchored at both ends (`v1\..*` does not match
    /// `xv1.0`). Unset: every tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub regex: Option<String>,
    /// Regular expression (anchored) of tags to leave out even when `regex` matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub exclude_regex: Option<String>,
}

/// Semver-aware keep. Tags are parsed as semantic versions with an optional `v` prefix.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.latestPerMajor) || has(self.latestPerMinor)",
    "message": "semver needs latestPerMajor or latestPerMinor"
}]))]
pub struct SemverKeep {
    /// Keep the N highest versions within each major version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub latest_per_major: Option<i32>,
    /// Keep the N highest versions within each major.minor line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub latest_per_minor: Option<i32>,
    /// Count pre-releases (`1.2.0-rc.1`) as versions. Default false: they are not kept by
    /// this criterion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_prereleases: Option<bool>,
}

/// Protections that override keep entries and purge.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Protection {
    /// Never delete an image a Pod in the cluster runs (by tag or digest). Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_use: Option<bool>,
    /// Never delete an image pushed less than this Go duration ago. Default `1h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = GO_DURATION_PATTERN))]
    pub min_age: Option<String>,
}

/// Blast-radius limits.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    /// Most tags one run may delete. Default 500.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_deletions_per_run: Option<i32>,
    /// Most tags one run may delete, as a percentage of the tags in scope. Unset: no
    /// percentage limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub max_deletion_percent: Option<i32>,
}

/// Observed state of a retention policy.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetentionPolicyStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// kstatus conditions: `Ready` always; `Reconciling` and `Stalled` (reasons
    /// BlastRadiusExceeded, RegistryUnreachable, InvalidSpec, …) when true.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The latest run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<RunSummary>,
    /// When the next run is due (RFC 3339, UTC): the schedule's next time, or sooner the retry
    /// of a run that failed on a problem that may pass (an unreachable registry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_run_time: Option<String>,
    /// The last value of the `registry-operator.dev/run-requested-at` annotation acted upon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_request: Option<String>,
    /// Tags the latest run deleted (Enforce) or would delete (Plan), at most 100; `lastRun`
    /// has the full counts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<Candidate>,
}

/// Counts and outcome of one run.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunSummary {
    /// When the run started.
    pub start_time: Time,
    /// When the run ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// The mode the run used.
    pub mode: PolicyMode,
    /// How the run ended.
    pub outcome: RunOutcome,
    /// Registries the run covered.
    pub registries: i64,
    /// Repositories in scope.
    pub repositories: i64,
    /// Tags in scope.
    pub tags: i64,
    /// Tags kept by a keep entry.
    pub kept: i64,
    /// Tags kept by a protection (in use, too young, shared image, unknown age, other policy).
    pub protected: i64,
    /// Tags deleted (Enforce).
    pub deleted: i64,
    /// Tags that would be deleted (Plan), or that were planned in a blocked Enforce run.
    pub would_delete: i64,
    /// Items that failed (listing or deletion errors).
    pub errors: i64,
    /// Estimated bytes freed (or freeable) once zot's garbage collection runs, where sizes are known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reclaimable_bytes: Option<i64>,
    /// A sentence about the run for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The policy's `metadata.generation` the run used; a newer generation triggers a run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
}

impl RunSummary {
    /// Adds `other` — one registry's part of a run — to this run's summary: every count, the
    /// reclaimable bytes where either knows them, and a partial failure.
    pub fn absorb(&mut self, other: &RunSummary) {
        self.registries += other.registries;
        self.repositories += other.repositories;
        self.tags += other.tags;
        self.kept += other.kept;
        self.protected += other.protected;
        self.deleted += other.deleted;
        self.would_delete += other.would_delete;
        self.errors += other.errors;
        self.reclaimable_bytes = match (self.reclaimable_bytes, other.reclaimable_bytes) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
        if other.outcome == RunOutcome::PartiallyFailed && self.outcome == RunOutcome::Succeeded {
            self.outcome = RunOutcome::PartiallyFailed;
        }
    }
}

/// How a run ended.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum RunOutcome {
    /// Everything planned was done (or, in Plan mode, computed).
    Succeeded,
    /// Some items failed; the rest were done.
    PartiallyFailed,
    /// Nothing was deleted because a limit, an unreachable registry or an invalid spec stopped it.
    Blocked,
    /// The run failed before planning completed.
    Failed,
}

/// One tag the run deleted or would delete.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Candidate {
    /// `namespace/name` of the Registry, for cluster policies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    /// Repository name.
    pub repository: String,
    /// Tag.
    pub tag: String,
    /// Digest the tag pointed at.
    pub digest: String,
    /// Why it was chosen.
    pub reason: String,
}

impl RetentionRules {
    /// Whether this policy is in purge mode.
    pub fn is_purge(&self) -> bool {
        self.purge.unwrap_or(false)
    }

    /// Whether in-use protection applies (default on).
    pub fn protects_in_use(&self) -> bool {
        self.protect.as_ref().and_then(|p| p.in_use).unwrap_or(true)
    }

    /// The grace period for fresh pushes, as written (default `1h`).
    pub fn min_age(&self) -> &str {
        self.protect
            .as_ref()
            .and_then(|p| p.min_age.as_deref())
            .unwrap_or(DEFAULT_MIN_AGE)
    }

    /// The per-run deletion limit (default 500).
    pub fn max_deletions_per_run(&self) -> i32 {
        self.limits
            .as_ref()
            .and_then(|l| l.max_deletions_per_run)
            .unwrap_or(DEFAULT_MAX_DELETIONS_PER_RUN)
    }
}
