//! The operator: reconcilers that wire the renderer, the registry client and the retention
//! engine to the cluster, plus the pure pieces they share (conditions, targets, the in-use index).

pub mod access;
pub mod conditions;
pub mod context;
pub mod endpoint;
pub mod error;
pub mod http;
pub mod inuse;
pub mod lockdown;
pub mod metrics;
pub mod operator;
pub mod policy;
pub mod reconcile;
pub mod registry;
pub mod runtime;
pub mod status_patch;
pub mod target;
