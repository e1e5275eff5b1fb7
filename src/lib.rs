//! registry-operator: deploys zot OCI registries and enforces tag retention on OCI registries.

pub mod api;
pub mod cli;
pub mod retention;
