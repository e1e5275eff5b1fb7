//! The retention engine's edge: reads a registry into an [`Inventory`](crate::retention::Inventory)
//! and carries out a [`Plan`](crate::retention::Plan) — the I/O around the pure planner in
//! [`retention`](crate::retention).
//!
//! - [`collect`]: the inventory builder (catalog, tags, manifests, configs, referrers, zot's
//!   search API), fail-closed per repository;
//! - [`execute`]: the executor (re-check, delete by tag or digest, 404 is success, refusal
//!   of Plan-mode plans and of blast-radius breaches);
//! - [`graph`]: the indexes nested in listed indexes and the manifests run by digest that no
//!   tag reaches, read so that the planner sees everything they need;
//! - [`run`]: collect → plan → check → execute for one policy and one registry, repository
//!   by repository: a run holds the repositories in flight, the deletions it may execute and
//!   the status candidates, not the registry (see [`Hold`]).

pub mod collect;
pub mod execute;
pub mod graph;
pub mod run;

pub use collect::{
    collect, collect_inventory, list, CollectError, CollectOptions, Collected, Listing,
    RepositoryDenial,
};
pub use execute::{
    execute, ExecuteError, ExecuteOptions, Execution, ExecutionCounts, Fence, InUseSource,
    Interruption, ItemOutcome, ItemResult, Progress, FENCE_TRUST,
};
pub use run::{
    enforce_shown, plan_policy, plan_policy_streamed, run_policy, run_policy_streamed, Hold,
    ReadyToExecute, RunError, RunOptions, RunResult,
};
