//! Wiring to the cluster. For now: the pure builders of what a managed Registry owns and the
//! adapter from a Registry spec to the zot renderer's input.

pub mod builders;
pub mod zot_input;
