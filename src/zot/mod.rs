//! zot's configuration: a typed model of `config.json`, the accepted keys of each supported
//! zot release, zot's own verify rules, and the renderer from a [`RenderInput`] to the file.
//!
//! Nothing here knows Kubernetes: the controller builds a [`RenderInput`] from a `Registry`
//! and mounts what [`input::paths`] names.

pub mod config;
pub mod error;
pub mod input;
pub mod keys;
pub mod merge;
pub mod render;
pub mod verify;
pub mod version;

pub use config::ZotConfig;
pub use error::{RenderErrors, ZotError};
pub use input::RenderInput;
pub use render::{config_hash, render, RenderedConfig};
pub use version::ZotVersion;
