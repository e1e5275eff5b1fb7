//! zot release numbers and the range of releases the operator can render a config for.

use std::fmt;
use std::str::FromStr;

/// A zot release, e.g. `v2.1.20`. Ordered by (major, minor, patch).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ZotVersion {
    /// Major release number.
    pub major: u32,
    /// Minor release number.
    pub minor: u32,
    /// Patch release number.
    pub patch: u32,
}

impl ZotVersion {
    /// Builds a version from its three numbers.
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Self {
            major,
            minor,
            patch,
        }
    }

    /// The oldest release the operator renders configs for.
    pub const OLDEST: ZotVersion = ZotVersion::new(2, 1, 11);
    /// The newest release the operator renders configs for.
    pub const NEWEST: ZotVersion = ZotVersion::new(2, 1, 21);

    /// Every supported release, oldest first.
    pub fn supported() -> Vec<ZotVersion> {
        (Self::OLDEST.patch..=Self::NEWEST.patch)
            .map(|p| ZotVersion::new(2, 1, p))
            .collect()
    }

    /// Whether the operator knows this release's config keys.
    pub fn is_supported(&self) -> bool {
        *self >= Self::OLDEST && *self <= Self::NEWEST
    }
}

impl fmt::Display for ZotVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Why a string is not a zot release number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a zot release number like v2.1.20")]
pub struct ParseVersionError(pub String);

impl FromStr for ZotVersion {
    type Err = ParseVersionError;

    /// Parses `v2.1.20` or `2.1.20`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseVersionError(s.to_string());
        let digits = s.strip_prefix('v').unwrap_or(s);
        let mut parts = digits.split('.');
        let mut next = || -> Result<u32, ParseVersionError> {
            let part = parts.next().ok_or_else(err)?;
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err());
            }
            part.parse().map_err(|_| err())
        };
        let version = ZotVersion::new(next()?, next()?, next()?);
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_with_and_without_the_v_prefix() {
        assert_eq!("v2.1.20".parse(), Ok(ZotVersion::new(2, 1, 20)));
        assert_eq!("2.1.11".parse(), Ok(ZotVersion::new(2, 1, 11)));
        assert!("v2.1".parse::<ZotVersion>().is_err());
        assert!("v2.1.20-rc1".parse::<ZotVersion>().is_err());
        assert!("v2.1.+1".parse::<ZotVersion>().is_err());
    }

    #[test]
    fn supported_range_is_v2_1_11_to_v2_1_21() {
        let all = ZotVersion::supported();
        assert_eq!(
            all.first().map(ToString::to_string).as_deref(),
            Some("v2.1.11")
        );
        assert_eq!(
            all.last().map(ToString::to_string).as_deref(),
            Some("v2.1.21")
        );
        assert!(!ZotVersion::new(2, 1, 10).is_supported());
        assert!(!ZotVersion::new(2, 2, 0).is_supported());
    }
}
