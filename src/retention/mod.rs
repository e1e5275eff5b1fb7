//! The retention engine: inventory → plan (pure) → execute.
//!
//! This module decides; it knows neither Kubernetes nor zot nor HTTP. The policy comes in as
//! the API's [`RetentionRules`](crate::api::retention::RetentionRules), compiled once into a
//! [`Policy`]; the registry comes in as an [`Inventory`] of plain data; in-use references come
//! in as [`Protections`]; the clock comes in as `now`. [`plan()`] returns a [`Plan`]: a
//! decision with a reason for every tag in scope, and the [`Mutation`]s that carry it out
//! (none in `Plan` mode). [`Report`] turns a plan into counts, the bounded status candidates
//! and a table for people.
//!
//! # Semantics
//!
//! - **Scope.** A repository is in scope when an `include` glob matches it and no `exclude`
//!   glob does. `*` matches within one path segment, `**` across segments; `team-a/**` does
//!   not match `team-a`. Out-of-scope repositories are not in the plan at all.
//! - **Keep entries** are OR-ed; the reason shown is the first entry (by number, 1-based)
//!   that keeps the tag and, within it, the first criterion in the order `mostRecent`,
//!   `pushedWithin`, `pulledWithin`, `semver`. An entry's selector (`regex` and
//!   `excludeRegex`, both anchored) never selects referrer tags.
//! - **`mostRecent: N`** ranks *images* (digests) carrying at least one selected tag by the
//!   newest push time among those tags; equal times rank the image whose greatest selected
//!   tag name is greater first. The selected tags of the first N images are kept. Images
//!   whose selected tags all have unknown ages are not ranked (they are protected anyway).
//! - **`semver`** parses tags with an optional `v` prefix; pre-releases only count with
//!   `includePrereleases`. It keeps the tags of the N highest *distinct versions* per major
//!   (`latestPerMajor`) and per major.minor (`latestPerMinor`), either one sufficing.
//! - **`pulledWithin`** without pull statistics keeps every tag the entry selects, and the
//!   plan's notes say how many. With statistics, a never-pulled tag is not kept by it.
//! - **Age** is the tag's push time, else the image config's `created`. Unknown age keeps a
//!   tag (protection); so does an age below `protect.minAge` (negative ages, from clock
//!   skew, included).
//! - **No keep entries and no purge**: every tag is kept ("the policy has no keep entries").
//! - **Purge**: every non-protected tag goes, and referrers of deleted images go too
//!   (purge implies `deleteReferrers`).
//! - **Protections**, checked in this order, turn a deletion into a protection: in use by
//!   tag, in use by digest (the tag's manifest or any manifest its index lists, at any
//!   depth), another applicable policy's keep entries (in name order; only policies with keep
//!   entries veto, whatever their mode), unknown age, `minAge`. An incomplete repository
//!   (listing failed, a contradictory listing, a repository listed twice, ids out of range)
//!   has every tag protected and no mutation.
//! - **Carrying deletions out.** A manifest goes only when every tag on it goes and nothing
//!   that stays needs it ([`graph::veto`], the last step): no manifest that stays (a tagged
//!   index that stays, an untagged index, a referrer that stays) lists it, at any depth; no
//!   subject it refers to stays; nothing runs it, an index listing it, or an image it lists.
//!   Where tags can be deleted alone (zot) its tags are deleted one by one (the registry's
//!   garbage collection removes the untagged image); elsewhere it is deleted by digest.
//!   A tag whose image stays is, on zot, deleted alone; where only digests can be deleted
//!   (distribution), it is protected: "shares its image with tag X, which stays", "part of
//!   index D, which stays", or what else still needs the image.
//! - **Referrers** are manifests with a `subject`, and tags of the `sha256-<hex>` schema
//!   (cosign's `.sig`/`.att`/`.sbom` included). Their tags are not judged by keep entries
//!   and take no `mostRecent` place; they follow the subject. A referrer is deleted (by
//!   digest, with its tags, after its subject) only when its subject is deleted by digest,
//!   `deleteReferrers` (or purge) is on, every tag on it is a referrer tag, none of those
//!   tags nor the manifest itself is younger than `minAge` (unknown age does not hold a
//!   referrer back: its subject's age was known), nothing runs it, every manifest
//!   listing it goes too, and every other subject it names (a manifest tagged as the
//!   referrer of several) goes too. Referrers of referrers follow in later rounds.
//! - **Blast radius** counts tag deletions (referrer tags included, untagged manifests not)
//!   against `maxDeletionsPerRun` (exactly at the limit passes) and against
//!   `maxDeletionPercent` of the tags in scope (incomplete repositories' tags included).
//! - **Determinism.** Decisions are sorted by repository then tag; mutations by repository,
//!   then phase (tag deletions, index deletions, manifest deletions, referrer rounds), then
//!   name. Every tie is broken by name or digest, never by listing order.

pub mod decision;
pub mod graph;
pub mod inventory;
pub mod name;
pub mod plan;
pub mod policy;
pub mod report;

pub use decision::{
    shared_name, Action, AgeOf, Decision, DeleteReason, KeepReason, ProtectReason, ReferrerKept,
    Seconds, SemverLine, SharedName,
};
pub use inventory::{
    Capabilities, Completeness, Digest, Inventory, Manifest, ManifestId, MediaInfo, Repository,
    RepositoryBuilder, Tag, TagName, Time,
};
pub use plan::{
    check_limits, count_breach, plan, Counts, InUse, LimitBreach, Mutation, Plan, PlanDigest,
    Protections, RepositoryPlan, RepositoryPlanner, TagDecision,
};
pub use policy::{InvalidPolicy, Limits, Policy, PolicyError};
pub use report::{
    candidate, candidates, headline, IncompleteRepository, JsonWriter, Report, ReportedDecision,
    Summary, TableWriter, Totals,
};
