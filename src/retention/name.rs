//! Names many decisions share, behind one pointer.

use std::sync::Arc;

/// A name many reasons share — who runs an image, a policy — behind one pointer, so that a
/// reason stays at 24 bytes and a decision at 32.
pub type SharedName = Arc<Box<str>>;

/// A [`SharedName`] of `name`.
pub fn shared_name(name: &str) -> SharedName {
    Arc::new(Box::from(name))
}
