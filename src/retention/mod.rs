//! The retention engine: inventory → plan (pure) → execute.
//!
//! This module decides; it knows neither Kubernetes nor zot nor HTTP. The policy comes in as
//! the API's [`RetentionRules`](crate::api::retention::RetentionRules), compiled once into a
//! [`Policy`]; the registry comes in as an [`Inventory`] of plain data; in-use references come
//! in as [`Protections`]; the clock comes in as `now`. [`plan`] returns a [`Plan`]: a decision
//! with a reason for every tag in scope, and the [`Mutation`]s that carry it out (none in
//! `Plan` mode). [`Report`] turns a plan into counts, the bounded status candidates and a
//! table for people.

pub mod decision;
pub mod duration;
pub mod inventory;
pub mod plan;
pub mod policy;
pub mod report;

pub use decision::{
    Action, Decision, DeleteReason, KeepReason, ProtectReason, ReferrerKept, SemverLine,
};
pub use inventory::{
    Capabilities, Completeness, Digest, Inventory, Manifest, ManifestId, Repository,
    RepositoryBuilder, Tag,
};
pub use plan::{
    check_limits, plan, Counts, InUse, LimitBreach, Mutation, Plan, Protections, RepositoryPlan,
    TagDecision,
};
pub use policy::{InvalidPolicy, Limits, Policy, PolicyError};
pub use report::{Report, ReportedDecision, Summary};
