//! Why a config cannot be rendered. Every variant is a permanent spec problem (`InvalidSpec`).

use std::fmt;

use super::version::ZotVersion;
use crate::api::common::condition::Reason;

/// One problem with a registry's desired zot config.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZotError {
    /// The zot release is outside the range the operator knows.
    #[error(
        "zot {version} is not supported: choose a release from {} to {}",
        ZotVersion::OLDEST,
        ZotVersion::NEWEST
    )]
    UnsupportedVersion {
        /// The requested release.
        version: String,
    },
    /// A requested feature needs a newer zot.
    #[error("{feature} needs zot {min} or later, but this registry runs {version}")]
    FeatureUnavailable {
        /// What was asked for (a spec field or config key).
        feature: String,
        /// First release offering it.
        min: ZotVersion,
        /// The release in use.
        version: ZotVersion,
    },
    /// A key of the raw config the release does not accept.
    #[error("config.{path}: zot {version} does not accept this key{}", match .min { Some(m) => format!(" (it needs {m} or later)"), None => String::new() })]
    UnknownKey {
        /// Key path inside zot's config.
        path: String,
        /// The release in use.
        version: ZotVersion,
        /// The first release accepting the key, if any.
        min: Option<ZotVersion>,
    },
    /// A value breaks one of zot's verify rules or one of the operator's own checks.
    #[error("{path}: {message}")]
    Invalid {
        /// Where: a spec field (`spec.gc.delay`) or zot config key (`storage.gcDelay`).
        path: String,
        /// What is wrong, in one line.
        message: String,
    },
}

impl ZotError {
    /// Shorthand for [`ZotError::Invalid`].
    pub fn invalid(path: impl Into<String>, message: impl Into<String>) -> Self {
        ZotError::Invalid {
            path: path.into(),
            message: message.into(),
        }
    }

    /// The PascalCase reason used for conditions, events and metrics.
    pub fn reason(&self) -> Reason {
        Reason::InvalidSpec
    }
}

/// Every problem found, in a stable order, without duplicates.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RenderErrors(pub Vec<ZotError>);

impl RenderErrors {
    /// Adds a problem unless the same one is already listed.
    pub fn push(&mut self, error: ZotError) {
        if !self.0.contains(&error) {
            self.0.push(error);
        }
    }

    /// Adds every problem of another list.
    pub fn extend(&mut self, other: RenderErrors) {
        for e in other.0 {
            self.push(e);
        }
    }

    /// Whether nothing is wrong.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The problems as one line each.
    pub fn lines(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }

    /// The PascalCase reason used for conditions, events and metrics.
    pub fn reason(&self) -> Reason {
        Reason::InvalidSpec
    }

    /// `Ok(())` when empty, else `Err(self)`.
    pub fn into_result(self) -> Result<(), RenderErrors> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(self)
        }
    }
}

impl fmt::Display for RenderErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.lines().join("; "))
    }
}

impl std::error::Error for RenderErrors {}

impl From<ZotError> for RenderErrors {
    fn from(e: ZotError) -> Self {
        RenderErrors(vec![e])
    }
}
