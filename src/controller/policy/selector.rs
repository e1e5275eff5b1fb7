//! Kubernetes label selectors (`matchLabels` + `matchExpressions`), evaluated as the API server
//! does, for ClusterRetentionPolicy's registry and namespace selectors.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// Why a selector is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("label selector: {0}")]
pub struct SelectorError(pub String);

/// Checks a selector's operators and values, as the API server would on a Deployment.
pub fn validate(selector: &LabelSelector) -> Result<(), SelectorError> {
    for e in selector.match_expressions.iter().flatten() {
        let values = e.values.as_deref().unwrap_or_default();
        match e.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => {
                return Err(SelectorError(format!(
                    "{} {} needs at least one value",
                    e.key, e.operator
                )))
            }
            "Exists" | "DoesNotExist" if !values.is_empty() => {
                return Err(SelectorError(format!(
                    "{} {} takes no values",
                    e.key, e.operator
                )))
            }
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => {
                return Err(SelectorError(format!(
                    "unknown operator {other:?} for key {}; use In, NotIn, Exists or DoesNotExist",
                    e.key
                )))
            }
        }
    }
    Ok(())
}

/// Whether `labels` satisfy `selector`. An empty selector matches everything. Call
/// [`validate`] first: an unknown operator matches nothing here.
pub fn matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    evaluate(selector, labels, false)
}

/// Whether `selector` could have been meant to select `labels`: [`matches`] where every
/// malformed requirement (an unknown operator, `In` without values, …) counts as satisfied,
/// because what its author meant is unknown. For an invalid selector, which must not be taken
/// to select nothing.
pub fn may_match(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    evaluate(selector, labels, true)
}

fn evaluate(selector: &LabelSelector, labels: &BTreeMap<String, String>, malformed: bool) -> bool {
    let by_labels = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    by_labels
        && selector.match_expressions.iter().flatten().all(|e| {
            let values = e.values.as_deref().unwrap_or_default();
            let value = labels.get(&e.key);
            match e.operator.as_str() {
                "In" | "NotIn" if values.is_empty() => malformed,
                "Exists" | "DoesNotExist" if !values.is_empty() => malformed,
                "In" => value.is_some_and(|v| values.contains(v)),
                "NotIn" => value.is_none_or(|v| !values.contains(v)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                _ => malformed,
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn expr(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: if values.is_empty() {
                None
            } else {
                Some(values.iter().map(|v| v.to_string()).collect())
            },
        }
    }

    #[test]
    fn an_empty_selector_matches_every_registry() {
        assert!(matches(&LabelSelector::default(), &labels(&[])));
        assert!(matches(
            &LabelSelector::default(),
            &labels(&[("tier", "prod")])
        ));
    }

    #[test]
    fn match_labels_and_expressions_must_all_hold() {
        let sel = LabelSelector {
            match_labels: Some([("tier".to_string(), "prod".to_string())].into()),
            match_expressions: Some(vec![
                expr("team", "In", &["a", "b"]),
                expr("legacy", "DoesNotExist", &[]),
            ]),
        };
        assert!(matches(&sel, &labels(&[("tier", "prod"), ("team", "a")])));
        assert!(!matches(&sel, &labels(&[("tier", "prod"), ("team", "c")])));
        assert!(!matches(&sel, &labels(&[("tier", "dev"), ("team", "a")])));
        assert!(!matches(
            &sel,
            &labels(&[("tier", "prod"), ("team", "a"), ("legacy", "")])
        ));
        let not_in = LabelSelector {
            match_expressions: Some(vec![expr("team", "NotIn", &["x"])]),
            ..Default::default()
        };
        assert!(matches(&not_in, &labels(&[])));
        assert!(!matches(&not_in, &labels(&[("team", "x")])));
    }

    #[test]
    fn malformed_expressions_are_rejected_with_the_key() {
        let bad = LabelSelector {
            match_expressions: Some(vec![expr("team", "Equals", &["a"])]),
            ..Default::default()
        };
        assert!(validate(&bad).unwrap_err().0.contains("team"));
        let empty_in = LabelSelector {
            match_expressions: Some(vec![expr("team", "In", &[])]),
            ..Default::default()
        };
        assert!(validate(&empty_in).is_err());
        assert!(
            !matches(&bad, &labels(&[("team", "a")])),
            "an invalid selector matches nothing"
        );
    }

    #[test]
    fn a_malformed_requirement_may_match_but_the_valid_ones_still_decide() {
        let typo = LabelSelector {
            match_labels: Some([("tier".to_string(), "prod".to_string())].into()),
            match_expressions: Some(vec![expr("team", "in", &["a"]), expr("zone", "In", &[])]),
        };
        assert!(may_match(&typo, &labels(&[("tier", "prod")])));
        assert!(may_match(
            &typo,
            &labels(&[("tier", "prod"), ("team", "b")])
        ));
        assert!(
            !may_match(&typo, &labels(&[("tier", "dev"), ("team", "a")])),
            "matchLabels rules the registry out whatever the typo meant"
        );
        let valid = LabelSelector {
            match_expressions: Some(vec![expr("team", "In", &["a"])]),
            ..Default::default()
        };
        assert!(!may_match(&valid, &labels(&[("team", "b")])));
        assert!(may_match(&valid, &labels(&[("team", "a")])));
    }
}
