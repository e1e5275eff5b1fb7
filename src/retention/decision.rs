//! What the plan decided for each tag, and why, in words a person understands.

use std::fmt;
use std::sync::Arc;

use jiff::SignedDuration;

use super::graph::Need;
use super::inventory::{Digest, TagName};
pub use super::name::{shared_name, SharedName};
use crate::duration::GoDuration;

/// A duration in whole seconds: ages and policy durations in reasons. (Reasons are kept
/// small: a plan holds one per tag.)
pub type Seconds = i64;

fn dur(secs: Seconds) -> SignedDuration {
    SignedDuration::from_secs(secs)
}

/// Which time a tag's age was measured from, as the reasons say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AgeOf {
    /// When the image was pushed (zot's search API).
    Pushed,
    /// When the tag was set on the image (zot's `TaggedTimestamp`, from v2.1.15): a new tag
    /// on an old image is as young as the tag.
    Tagged,
    /// When the image was built (config `created`, or the `created` annotation): registries
    /// without push times.
    Built,
}

impl fmt::Display for AgeOf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AgeOf::Pushed => "pushed",
            AgeOf::Tagged => "tagged",
            AgeOf::Built => "built",
        })
    }
}

/// The decision for one tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// A keep entry of the policy keeps the tag.
    Keep(KeepReason),
    /// A protection keeps a tag the policy would otherwise delete.
    Protect(ProtectReason),
    /// The tag is deleted (Enforce) or would be (Plan).
    Delete(DeleteReason),
}

/// The three outcomes, without their reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    /// Kept by a keep entry.
    Keep,
    /// Kept by a protection.
    Protect,
    /// Deleted or to be deleted.
    Delete,
}

impl Decision {
    /// The outcome without its reason.
    pub fn action(&self) -> Action {
        match self {
            Decision::Keep(_) => Action::Keep,
            Decision::Protect(_) => Action::Protect,
            Decision::Delete(_) => Action::Delete,
        }
    }

    /// Whether the tag goes.
    pub fn is_delete(&self) -> bool {
        matches!(self, Decision::Delete(_))
    }
}

/// A semver line a version was ranked in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SemverLine {
    /// Within one major version (`latestPerMajor`).
    Major(u32),
    /// Within one major.minor line (`latestPerMinor`).
    Minor(u32, u32),
}

impl fmt::Display for SemverLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SemverLine::Major(m) => write!(f, "{m}.x"),
            SemverLine::Minor(m, n) => write!(f, "{m}.{n}.x"),
        }
    }
}

/// Why a keep entry keeps a tag. `entry` numbers are 1-based, as people count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepReason {
    /// The policy has no keep entries and does not purge: it deletes nothing.
    NoKeepEntries,
    /// The entry has no criteria and its selector matches the tag.
    Selected {
        /// Entry number.
        entry: u8,
    },
    /// The tag's image is among the entry's `mostRecent` newest.
    MostRecent {
        /// Entry number.
        entry: u8,
        /// 1 for the newest image.
        rank: u32,
        /// The entry's `mostRecent`.
        of: u32,
    },
    /// Pushed within the entry's `pushedWithin`.
    PushedWithin {
        /// Entry number.
        entry: u8,
        /// Which time the age is measured from.
        of: AgeOf,
        /// How long ago it was pushed.
        age: Seconds,
        /// The entry's `pushedWithin`.
        within: Seconds,
    },
    /// Pulled within the entry's `pulledWithin`.
    PulledWithin {
        /// Entry number.
        entry: u8,
        /// How long ago it was last pulled.
        ago: Seconds,
        /// The entry's `pulledWithin`.
        within: Seconds,
    },
    /// The entry has `pulledWithin` but the registry keeps no pull statistics, so every tag
    /// the entry selects is kept.
    PullStatsUnavailable {
        /// Entry number.
        entry: u8,
    },
    /// The entry has `pulledWithin`; the registry keeps pull statistics but did not report
    /// this tag's, so whether it was pulled is unknown and it is kept.
    PullUnknown {
        /// Entry number.
        entry: u8,
    },
    /// Among the highest versions of its line.
    Semver {
        /// Entry number.
        entry: u8,
        /// 1 for the highest version of the line.
        rank: u32,
        /// How many the entry keeps per line.
        of: u32,
        /// The line (`1.x` or `1.4.x`).
        line: SemverLine,
    },
}

/// Why a protection keeps a tag the policy would delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtectReason {
    /// Something in the cluster runs this image.
    InUse {
        /// Who (`Pod team-a/web-7f9`).
        by: SharedName,
        /// Set when the reference was by digest (possibly a child of this tag's index).
        digest: Option<Digest>,
    },
    /// Another applicable policy's keep entries keep the tag.
    OtherPolicy {
        /// That policy's name.
        policy: SharedName,
        /// Its reason.
        reason: Box<KeepReason>,
    },
    /// The push time is unknown, so the tag's age cannot be judged.
    UnknownAge,
    /// Pushed within `protect.minAge`.
    TooYoung {
        /// Which time the age is measured from.
        of: AgeOf,
        /// How long ago.
        age: Seconds,
        /// `protect.minAge`.
        min_age: Seconds,
    },
    /// The repository's listing is incomplete; nothing in it is deleted this run.
    IncompleteRepository {
        /// What failed.
        reason: Arc<str>,
    },
    /// The registry deletes whole images only and another tag on this image stays.
    SharedImage {
        /// A tag that stays on the same image (the first by name).
        with_tag: Box<TagName>,
    },
    /// The registry deletes whole images only and this image is listed by an index that
    /// stays.
    IndexChild {
        /// The index.
        index: Digest,
    },
    /// The tag's manifest would go with it, but something that stays still needs that
    /// manifest (an index listing it, a subject it refers to, a reference in use).
    StillNeeded {
        /// What needs it.
        need: Box<Need>,
    },
    /// A referrer (signature, SBOM, attestation) tag that stays.
    Referrer {
        /// Its subject.
        subject: Digest,
        /// Why it stays.
        why: ReferrerKept,
    },
}

/// Why a referrer stays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReferrerKept {
    /// Its subject stays.
    SubjectStays,
    /// Its subject goes but `deleteReferrers` is off.
    DeleteReferrersOff,
    /// Its subject goes but something still needs the referrer (an index listing it, a
    /// reference in use, another tag on it that stays).
    StillNeeded,
}

/// Why a tag goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteReason {
    /// No keep entry keeps it and nothing protects it.
    NotKept {
        /// Which time the age is measured from.
        of: AgeOf,
        /// How long ago it was pushed.
        age: Seconds,
        /// Bit `i` set: entry `i + 1` selects the tag (but none of its criteria keeps it).
        selected_by: u64,
        /// For each entry, the criteria a selected tag failed (shared with the policy, behind
        /// one pointer: a decision stays at 32 bytes).
        misses: Arc<Vec<Arc<str>>>,
    },
    /// `purge: true`.
    Purge {
        /// Which time the age is measured from.
        of: AgeOf,
        /// How long ago it was pushed.
        age: Seconds,
    },
    /// A referrer tag whose subject is deleted, with `deleteReferrers` on (or purge).
    Referrer {
        /// The subject.
        subject: Digest,
    },
}

fn ordinal(n: u32) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

impl fmt::Display for KeepReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            KeepReason::NoKeepEntries => {
                f.write_str("the policy has no keep entries and does not purge")
            }
            KeepReason::Selected { entry } => write!(f, "matches entry {entry}"),
            KeepReason::MostRecent { entry, rank, of } => {
                write!(
                    f,
                    "{} most recent of entry {entry} (keeps {of})",
                    ordinal(rank)
                )
            }
            KeepReason::PushedWithin {
                entry,
                of,
                age,
                within,
            } => write!(
                f,
                "{of} {} ago, within {} (entry {entry})",
                HumanAge(dur(age)),
                GoDuration::from(dur(within))
            ),
            KeepReason::PulledWithin { entry, ago, within } => write!(
                f,
                "pulled {} ago, within {} (entry {entry})",
                HumanAge(dur(ago)),
                GoDuration::from(dur(within))
            ),
            KeepReason::PullStatsUnavailable { entry } => write!(
                f,
                "entry {entry} asks for pulledWithin but the registry keeps no pull statistics"
            ),
            KeepReason::PullUnknown { entry } => write!(
                f,
                "entry {entry} asks for pulledWithin and the registry did not report when this tag was last pulled"
            ),
            KeepReason::Semver {
                entry,
                rank,
                of,
                line,
            } => write!(
                f,
                "{} highest version of {line} (entry {entry} keeps {of})",
                ordinal(rank)
            ),
        }
    }
}

impl fmt::Display for ProtectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtectReason::InUse { by, digest: None } => write!(f, "in use by {by}"),
            ProtectReason::InUse {
                by,
                digest: Some(d),
            } => write!(f, "in use by {by} (as {})", d.short()),
            ProtectReason::OtherPolicy { policy, reason } => {
                write!(f, "by policy {policy}: {reason}")
            }
            ProtectReason::UnknownAge => f.write_str(
                "age unknown: no push time, and no build time (or a placeholder such as 1970-01-01)",
            ),
            ProtectReason::TooYoung { of, age, min_age } => write!(
                f,
                "{of} {} ago, within the {} grace period (protect.minAge)",
                HumanAge(dur(*age)),
                GoDuration::from(dur(*min_age))
            ),
            ProtectReason::IncompleteRepository { reason } => write!(
                f,
                "repository listing incomplete ({reason}); nothing in it is deleted this run"
            ),
            ProtectReason::SharedImage { with_tag } => write!(
                f,
                "shares its image with tag {with_tag}, which stays; this registry deletes whole images only"
            ),
            ProtectReason::IndexChild { index } => write!(
                f,
                "part of index {}, which stays; this registry deletes whole images only",
                index.short()
            ),
            ProtectReason::StillNeeded { need } => write!(f, "its manifest is still needed: {need}"),
            ProtectReason::Referrer { subject, why } => match why {
                ReferrerKept::SubjectStays => {
                    write!(f, "referrer of {}, which stays", subject.short())
                }
                ReferrerKept::DeleteReferrersOff => write!(
                    f,
                    "referrer of {}, which is deleted, but deleteReferrers is off",
                    subject.short()
                ),
                ReferrerKept::StillNeeded => write!(
                    f,
                    "referrer of {}, which is deleted, but the referrer is still needed",
                    subject.short()
                ),
            },
        }
    }
}

impl fmt::Display for DeleteReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeleteReason::NotKept {
                of,
                age,
                selected_by,
                misses,
            } => {
                write!(f, "{of} {} ago", HumanAge(dur(*age)))?;
                if *selected_by == 0 {
                    return f.write_str(", no keep entry selects it");
                }
                for (i, miss) in misses.iter().enumerate().take(64) {
                    if selected_by & (1 << i) != 0 {
                        write!(f, "; entry {}: {miss}", i + 1)?;
                    }
                }
                Ok(())
            }
            DeleteReason::Purge { of, age } => {
                write!(f, "purge ({of} {} ago)", HumanAge(dur(*age)))
            }
            DeleteReason::Referrer { subject } => {
                write!(f, "referrer of deleted image {}", subject.short())
            }
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::Keep(r) => write!(f, "kept: {r}"),
            Decision::Protect(r @ ProtectReason::OtherPolicy { .. }) => write!(f, "kept {r}"),
            Decision::Protect(r) => write!(f, "kept: {r}"),
            Decision::Delete(r) => write!(f, "delete: {r}"),
        }
    }
}

/// Writes an age roughly, the way people say it: `41d`, `3h`, `12m`, `30s`. Negative ages
/// (a push time in the future, clock skew) are written `in the future`.
pub struct HumanAge(pub SignedDuration);

impl fmt::Display for HumanAge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.as_secs();
        if secs < 0 {
            return f.write_str("in the future");
        }
        match secs {
            s if s >= 2 * 86_400 => write!(f, "{}d", s / 86_400),
            s if s >= 3_600 => write!(f, "{}h", s / 3_600),
            s if s >= 60 => write!(f, "{}m", s / 60),
            s => write!(f, "{s}s"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinals_read_as_english() {
        let got: Vec<String> = [1, 2, 3, 4, 11, 12, 13, 21, 102].map(ordinal).into();
        assert_eq!(
            got,
            ["1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "102nd"]
        );
    }

    #[test]
    fn reasons_read_as_sentences() {
        let kept = Decision::Keep(KeepReason::MostRecent {
            entry: 2,
            rank: 3,
            of: 10,
        });
        assert_eq!(
            kept.to_string(),
            "kept: 3rd most recent of entry 2 (keeps 10)"
        );
        let in_use = Decision::Protect(ProtectReason::InUse {
            by: shared_name("Pod team-a/web-7f9"),
            digest: None,
        });
        assert_eq!(in_use.to_string(), "kept: in use by Pod team-a/web-7f9");
        let delete = Decision::Delete(DeleteReason::NotKept {
            of: AgeOf::Pushed,
            age: 41 * 86_400,
            selected_by: 0b10,
            misses: vec![
                Arc::from("older than 720h"),
                Arc::from("older than 720h, not among the 10 most recent"),
            ]
            .into(),
        });
        assert_eq!(
            delete.to_string(),
            "delete: pushed 41d ago; entry 2: older than 720h, not among the 10 most recent"
        );
    }

    #[test]
    fn ages_print_in_the_largest_sensible_unit() {
        assert_eq!(
            HumanAge(SignedDuration::from_hours(41 * 24)).to_string(),
            "41d"
        );
        assert_eq!(HumanAge(SignedDuration::from_hours(30)).to_string(), "30h");
        assert_eq!(HumanAge(SignedDuration::from_mins(12)).to_string(), "12m");
        assert_eq!(
            HumanAge(SignedDuration::from_secs(-5)).to_string(),
            "in the future"
        );
    }
}
