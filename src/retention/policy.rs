//! A retention policy compiled for planning: globs, regexes and durations parsed once, every
//! invalid field reported with its path.

use std::sync::Arc;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use jiff::SignedDuration;
use regex::Regex;

use super::name::{shared_name, SharedName};
use crate::api::common::condition::Reason;
use crate::api::retention::{KeepRule, PolicyMode, RetentionRules, DEFAULT_MIN_AGE};
use crate::duration::GoDuration;

/// Most keep entries a policy may have (the CRD allows 64).
pub const MAX_KEEP_ENTRIES: usize = 64;

/// One invalid field of a policy. Each becomes part of an `InvalidSpec` condition message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// A tag regular expression does not compile.
    #[error("{field}: invalid regular expression {value:?}: {message}")]
    BadRegex {
        /// Path of the field (`keep[1].tags.regex`).
        field: String,
        /// The expression as written.
        value: String,
        /// What the regex compiler said.
        message: String,
    },
    /// A Go duration does not parse.
    #[error("{field}: invalid duration {value:?}: {message}")]
    BadDuration {
        /// Path of the field (`keep[0].pushedWithin`).
        field: String,
        /// The duration as written.
        value: String,
        /// What is wrong with it.
        message: String,
    },
    /// A repository glob does not compile.
    #[error("{field}: invalid glob {value:?}: {message}")]
    BadGlob {
        /// Path of the field (`repositories.include[2]`).
        field: String,
        /// The glob as written.
        value: String,
        /// What the glob compiler said.
        message: String,
    },
    /// A count or limit is outside its allowed range.
    #[error("{field}: {value} is out of range; {expected}")]
    OutOfRange {
        /// Path of the field.
        field: String,
        /// The value given.
        value: i64,
        /// The allowed range, for people.
        expected: &'static str,
    },
    /// `purge: true` with keep entries.
    #[error("keep: purge deletes every tag in scope, so keep must be empty")]
    PurgeWithKeep,
    /// A keep entry with neither a selector nor a criterion.
    #[error("{field}: a keep entry needs a tags selector or a criterion (mostRecent, pushedWithin, pulledWithin, semver)")]
    EmptyEntry {
        /// Path of the entry (`keep[3]`).
        field: String,
    },
    /// A semver criterion with neither latestPerMajor nor latestPerMinor.
    #[error("{field}: semver needs latestPerMajor or latestPerMinor")]
    EmptySemver {
        /// Path of the criterion (`keep[2].semver`).
        field: String,
    },
    /// More keep entries than allowed.
    #[error("keep: at most {MAX_KEEP_ENTRIES} entries, got {0}")]
    TooManyEntries(usize),
    /// No include glob.
    #[error("repositories.include: at least one glob is required (\"**\" for every repository)")]
    NoInclude,
}

impl PolicyError {
    /// The condition reason this error leads to.
    pub fn reason(&self) -> &'static str {
        Reason::InvalidSpec.as_str()
    }
}

/// A policy that failed to compile, with every invalid field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("policy {policy} is invalid: {}", errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct InvalidPolicy {
    /// The policy's name.
    pub policy: String,
    /// Every invalid field, in field order.
    pub errors: Vec<PolicyError>,
}

impl InvalidPolicy {
    /// The condition reason this error leads to.
    pub fn reason(&self) -> &'static str {
        Reason::InvalidSpec.as_str()
    }
}

/// Blast-radius limits of a policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most tags one run may delete.
    pub max_deletions_per_run: u64,
    /// Most tags one run may delete, in percent of the tags in scope.
    pub max_deletion_percent: Option<u8>,
}

/// Tag selector of a keep entry: anchored regexes.
#[derive(Debug, Clone)]
pub(crate) struct Selector {
    pub(crate) include: Option<Regex>,
    pub(crate) exclude: Option<Regex>,
}

impl Selector {
    pub(crate) fn matches(&self, tag: &str) -> bool {
        self.include.as_ref().is_none_or(|r| r.is_match(tag))
            && !self.exclude.as_ref().is_some_and(|r| r.is_match(tag))
    }
}

/// The semver criterion of a keep entry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SemverRule {
    pub(crate) per_major: Option<u32>,
    pub(crate) per_minor: Option<u32>,
    pub(crate) prereleases: bool,
}

/// One compiled keep entry.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) selector: Selector,
    pub(crate) most_recent: Option<u32>,
    pub(crate) pushed_within: Option<SignedDuration>,
    pub(crate) pulled_within: Option<SignedDuration>,
    pub(crate) semver: Option<SemverRule>,
}

impl Entry {
    /// An entry without criteria keeps every tag its selector matches.
    pub(crate) fn has_criteria(&self) -> bool {
        self.most_recent.is_some()
            || self.pushed_within.is_some()
            || self.pulled_within.is_some()
            || self.semver.is_some()
    }

    /// Why a tag this entry selects was not kept by it, for people: the criteria it failed.
    fn miss_text(&self) -> String {
        let mut parts = Vec::new();
        if let Some(n) = self.most_recent {
            parts.push(format!("not among the {n} most recent"));
        }
        if let Some(d) = self.pushed_within {
            parts.push(format!("older than {}", GoDuration::from(d)));
        }
        if let Some(d) = self.pulled_within {
            parts.push(format!("not pulled within {}", GoDuration::from(d)));
        }
        if let Some(s) = self.semver {
            let mut lines = Vec::new();
            if let Some(n) = s.per_major {
                lines.push(format!("{n} per major"));
            }
            if let Some(n) = s.per_minor {
                lines.push(format!("{n} per minor"));
            }
            parts.push(format!(
                "not among the highest versions ({})",
                lines.join(", ")
            ));
        }
        parts.join(", ")
    }
}

/// Repository scope: include globs minus exclude globs.
#[derive(Debug, Clone)]
struct Scope {
    include: GlobSet,
    exclude: GlobSet,
    /// The include entries, when every one is a plain repository name (no wildcard).
    named: Option<Arc<[String]>>,
}

/// Whether a glob is a plain repository name: no wildcard, class, alternation or escape.
fn is_plain_name(glob: &str) -> bool {
    !glob.contains(['*', '?', '[', ']', '{', '}', '\\'])
}

/// A compiled retention policy: what the planner runs.
#[derive(Debug, Clone)]
pub struct Policy {
    name: Arc<str>,
    shared_name: SharedName,
    mode: PolicyMode,
    scope: Scope,
    pub(crate) entries: Vec<Entry>,
    pub(crate) misses: Arc<Vec<Arc<str>>>,
    pub(crate) purge: bool,
    pub(crate) in_use: bool,
    pub(crate) min_age: SignedDuration,
    pub(crate) delete_referrers: bool,
    limits: Limits,
}

impl Policy {
    /// Compiles the rules of the policy called `name` (`namespace/name` for a RetentionPolicy,
    /// `name` for a ClusterRetentionPolicy: it is how reasons and status refer to it).
    pub fn compile(name: &str, rules: &RetentionRules) -> Result<Policy, InvalidPolicy> {
        let mut errors = Vec::new();
        if rules.repositories.include.is_empty() {
            errors.push(PolicyError::NoInclude);
        }
        let include = globs(
            "repositories.include",
            &rules.repositories.include,
            &mut errors,
        );
        let exclude = globs(
            "repositories.exclude",
            &rules.repositories.exclude,
            &mut errors,
        );
        let purge = rules.is_purge();
        if purge && !rules.keep.is_empty() {
            errors.push(PolicyError::PurgeWithKeep);
        }
        if rules.keep.len() > MAX_KEEP_ENTRIES {
            errors.push(PolicyError::TooManyEntries(rules.keep.len()));
        }
        let entries: Vec<Entry> = rules
            .keep
            .iter()
            .enumerate()
            .filter_map(|(i, k)| entry(&format!("keep[{i}]"), k, &mut errors))
            .collect();
        let min_age = rules
            .protect
            .as_ref()
            .and_then(|p| p.min_age.as_deref())
            .map_or_else(
                || {
                    GoDuration::parse(DEFAULT_MIN_AGE)
                        .ok()
                        .map(GoDuration::as_signed)
                },
                |v| duration("protect.minAge", v, &mut errors),
            )
            .unwrap_or(SignedDuration::ZERO);
        let limits = rules.limits.clone().unwrap_or_default();
        let max_deletions_per_run = match rules.max_deletions_per_run() {
            n if n >= 0 => n as u64,
            n => {
                errors.push(PolicyError::OutOfRange {
                    field: "limits.maxDeletionsPerRun".into(),
                    value: n.into(),
                    expected: "it must be 0 or more",
                });
                0
            }
        };
        let max_deletion_percent = match limits.max_deletion_percent {
            None => None,
            Some(p @ 0..=100) => Some(p as u8),
            Some(p) => {
                errors.push(PolicyError::OutOfRange {
                    field: "limits.maxDeletionPercent".into(),
                    value: p.into(),
                    expected: "it must be between 0 and 100",
                });
                Some(0)
            }
        };
        match (include, exclude) {
            (Some(include), Some(exclude)) if errors.is_empty() => {
                let misses: Vec<Arc<str>> =
                    entries.iter().map(|e| Arc::from(e.miss_text())).collect();
                Ok(Policy {
                    name: Arc::from(name),
                    shared_name: shared_name(name),
                    mode: rules.mode,
                    scope: Scope {
                        include,
                        exclude,
                        named: rules
                            .repositories
                            .include
                            .iter()
                            .all(|g| is_plain_name(g))
                            .then(|| rules.repositories.include.clone().into()),
                    },
                    misses: misses.into(),
                    entries,
                    purge,
                    in_use: rules.protects_in_use(),
                    min_age,
                    delete_referrers: rules.delete_referrers.unwrap_or(false),
                    limits: Limits {
                        max_deletions_per_run,
                        max_deletion_percent,
                    },
                })
            }
            _ => Err(InvalidPolicy {
                policy: name.to_owned(),
                errors,
            }),
        }
    }

    /// The policy's name as given to [`Policy::compile`].
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn name_arc(&self) -> Arc<str> {
        self.name.clone()
    }

    /// The name as the reasons of the decisions it vetoes hold it.
    pub(crate) fn shared_name(&self) -> SharedName {
        self.shared_name.clone()
    }

    /// Plan or Enforce.
    pub fn mode(&self) -> PolicyMode {
        self.mode
    }

    /// The same policy in another mode (the CLI's `plan` and `apply` verbs decide the mode).
    pub fn with_mode(mut self, mode: PolicyMode) -> Policy {
        self.mode = mode;
        self
    }

    /// The blast-radius limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Whether `purge: true`.
    pub fn is_purge(&self) -> bool {
        self.purge
    }

    /// Whether the repository is in scope: matched by an include glob and by no exclude glob.
    pub fn in_scope(&self, repository: &str) -> bool {
        self.scope.include.is_match(repository) && !self.scope.exclude.is_match(repository)
    }

    /// The repositories `include` names, when every entry is a plain name (no wildcard): a
    /// registry that refuses the account its catalog can still be read, repository by
    /// repository.
    pub fn named_repositories(&self) -> Option<&[String]> {
        self.scope.named.as_deref()
    }

    /// Whether the policy deletes anything at all: it has keep entries, or purges.
    pub fn deletes_anything(&self) -> bool {
        self.purge || !self.entries.is_empty()
    }
}

fn globs(field: &str, patterns: &[String], errors: &mut Vec<PolicyError>) -> Option<GlobSet> {
    let mut set = GlobSetBuilder::new();
    let mut ok = true;
    for (i, p) in patterns.iter().enumerate() {
        let bad = |message: String| PolicyError::BadGlob {
            field: format!("{field}[{i}]"),
            value: p.clone(),
            message,
        };
        if p.is_empty() {
            errors.push(bad("empty glob".into()));
            ok = false;
            continue;
        }
        match GlobBuilder::new(p)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
        {
            Ok(g) => {
                set.add(g);
            }
            Err(e) => {
                errors.push(bad(e.kind().to_string()));
                ok = false;
            }
        }
    }
    match set.build() {
        Ok(s) if ok => Some(s),
        Ok(_) => None,
        Err(e) => {
            errors.push(PolicyError::BadGlob {
                field: field.to_owned(),
                value: patterns.join(", "),
                message: e.to_string(),
            });
            None
        }
    }
}

fn anchored(field: String, re: &str, errors: &mut Vec<PolicyError>) -> Option<Regex> {
    // Check the expression alone first so the message is about what the user wrote.
    let checked = Regex::new(re).and_then(|_| Regex::new(&format!("^(?:{re})$")));
    match checked {
        Ok(r) => Some(r),
        Err(e) => {
            errors.push(PolicyError::BadRegex {
                field,
                value: re.to_owned(),
                // the regex crate draws a caret diagram over several lines
                message: e
                    .to_string()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" "),
            });
            None
        }
    }
}

fn duration(field: &str, value: &str, errors: &mut Vec<PolicyError>) -> Option<SignedDuration> {
    match GoDuration::parse(value) {
        Ok(d) => Some(d.as_signed()),
        Err(e) => {
            errors.push(PolicyError::BadDuration {
                field: field.to_owned(),
                value: value.to_owned(),
                message: e.to_string(),
            });
            None
        }
    }
}

fn count(field: String, value: Option<i32>, errors: &mut Vec<PolicyError>) -> Option<u32> {
    match value {
        None => None,
        Some(n) if n >= 1 => Some(n as u32),
        Some(n) => {
            errors.push(PolicyError::OutOfRange {
                field,
                value: n.into(),
                expected: "it must be at least 1",
            });
            None
        }
    }
}

fn entry(at: &str, k: &KeepRule, errors: &mut Vec<PolicyError>) -> Option<Entry> {
    let before = errors.len();
    let tags = k.tags.clone().unwrap_or_default();
    let include = tags
        .regex
        .as_deref()
        .and_then(|r| anchored(format!("{at}.tags.regex"), r, errors));
    let exclude = tags
        .exclude_regex
        .as_deref()
        .and_then(|r| anchored(format!("{at}.tags.excludeRegex"), r, errors));
    let most_recent = count(format!("{at}.mostRecent"), k.most_recent, errors);
    let pushed_within = k
        .pushed_within
        .as_deref()
        .and_then(|v| duration(&format!("{at}.pushedWithin"), v, errors));
    let pulled_within = k
        .pulled_within
        .as_deref()
        .and_then(|v| duration(&format!("{at}.pulledWithin"), v, errors));
    let semver = match &k.semver {
        None => None,
        Some(s) => {
            if s.latest_per_major.is_none() && s.latest_per_minor.is_none() {
                errors.push(PolicyError::EmptySemver {
                    field: format!("{at}.semver"),
                });
            }
            Some(SemverRule {
                per_major: count(
                    format!("{at}.semver.latestPerMajor"),
                    s.latest_per_major,
                    errors,
                ),
                per_minor: count(
                    format!("{at}.semver.latestPerMinor"),
                    s.latest_per_minor,
                    errors,
                ),
                prereleases: s.include_prereleases.unwrap_or(false),
            })
        }
    };
    let e = Entry {
        selector: Selector { include, exclude },
        most_recent,
        pushed_within,
        pulled_within,
        semver,
    };
    if k.tags.is_none() && !e.has_criteria() && errors.len() == before {
        errors.push(PolicyError::EmptyEntry {
            field: at.to_owned(),
        });
    }
    (errors.len() == before).then_some(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compiled(include: &[&str]) -> Policy {
        let yaml = format!(
            "mode: Plan\nrepositories: {{include: [{}]}}\n",
            include
                .iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let rules: RetentionRules = serde_yaml::from_str(&yaml).unwrap();
        Policy::compile("ns/p", &rules).unwrap()
    }

    #[test]
    fn only_an_include_of_plain_names_names_its_repositories() {
        assert_eq!(
            compiled(&["team/api", "team/web"]).named_repositories(),
            Some(&["team/api".to_string(), "team/web".to_string()][..])
        );
        for wild in ["team/**", "team/ap?", "team/[aw]pi", "team/{api,web}"] {
            assert_eq!(
                compiled(&["team/api", wild]).named_repositories(),
                None,
                "{wild}"
            );
        }
    }
}
