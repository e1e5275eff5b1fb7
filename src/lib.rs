//! registry-operator: deploys zot OCI registries and enforces tag retention on OCI registries.

pub mod api;
pub mod cli;
pub mod controller;
pub mod duration;
pub mod engine;
pub mod oci;
pub mod retention;
pub mod tls;
pub mod zot;
