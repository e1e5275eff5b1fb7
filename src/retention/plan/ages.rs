//! Tag ages: from the push time, else the image's build time, in whole seconds.

use jiff::SignedDuration;

use crate::retention::decision::{AgeOf, Seconds};
use crate::retention::inventory::{Repository, Tag, Time};

/// Whole seconds, rounded up: a policy duration of `1.5s` keeps and protects for 2 s.
pub(super) fn ceil_secs(d: SignedDuration) -> Seconds {
    d.as_secs() + Seconds::from(d.subsec_nanos() > 0)
}

/// Which time a tag's age is measured from.
pub(super) fn age_of(t: &Tag) -> AgeOf {
    match (t.pushed, t.tagged) {
        (Some(_), true) => AgeOf::Tagged,
        (Some(_), false) => AgeOf::Pushed,
        (None, _) => AgeOf::Built,
    }
}

/// Each tag's age in seconds at `now`: from its push time, else its image's build time.
/// Kept as the times (eight bytes a tag), the age worked out when asked.
pub(super) struct Ages {
    pub(super) times: Vec<Option<Time>>,
    pub(super) now: Seconds,
}

impl Ages {
    /// The age of tag `i`, if known.
    pub(super) fn get(&self, i: usize) -> Option<Seconds> {
        self.times
            .get(i)
            .copied()
            .flatten()
            .map(|t| self.now - t.unix_seconds())
    }
}

pub(super) fn tag_ages(repo: &Repository, now: Seconds) -> Ages {
    Ages {
        times: repo
            .tags
            .iter()
            .map(|t| t.pushed.or(repo.manifests[t.manifest.index()].created))
            .collect(),
        now,
    }
}
