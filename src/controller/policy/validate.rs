//! Validation: everything a person must fix in a policy, reported at once.

use super::schedule::Schedule;
use super::selector;
use super::view::{Kind, PolicyView};
use crate::retention::Policy;

/// The compiled policy and its schedule, or every problem `; `-separated.
pub(super) fn validate(view: &PolicyView) -> Result<(Policy, Option<Schedule>), String> {
    let mut problems = Vec::new();
    let policy = match Policy::compile(&view.display, &view.rules) {
        Ok(p) => Some(p),
        Err(e) => {
            problems.push(e.to_string());
            None
        }
    };
    let schedule = match view.rules.schedule.as_deref().map(Schedule::parse) {
        Some(Ok(s)) => Some(s),
        Some(Err(e)) => {
            problems.push(e.to_string());
            None
        }
        None => None,
    };
    if let Kind::Cluster {
        registries,
        namespaces,
    } = &view.kind
    {
        for s in std::iter::once(registries).chain(namespaces.iter()) {
            if let Err(e) = selector::validate(s) {
                problems.push(e.to_string());
            }
        }
    }
    match policy.filter(|_| problems.is_empty()) {
        Some(policy) => Ok((policy, schedule)),
        None => Err(problems.join("; ")),
    }
}
