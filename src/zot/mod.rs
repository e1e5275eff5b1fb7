//! zot's configuration: a typed model of `config.json`, the accepted keys of each supported
//! zot release, zot's own verify rules, and the renderer from the zot-facing parts of a
//! Registry spec ([`crate::api::zot`], plain serde types) to the file.
//!
//! Nothing here knows Kubernetes: the controller passes the spec's [`ZotSpec`] and the
//! [`Wiring`] it adds (name, cluster members), and mounts what [`paths`] names.

pub mod config;
pub mod error;
pub mod keys;
pub mod merge;
pub mod paths;
pub mod render;
pub mod verify;
pub mod version;

pub use crate::api::zot::ZotSpec;
pub use config::ZotConfig;
pub use error::{RenderErrors, ZotError};
pub use render::{config_hash, render, ClusterWiring, RenderedConfig, Wiring};
pub use version::ZotVersion;
