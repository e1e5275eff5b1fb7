//! Other policies: their keep entries veto the deletions of the policy being run.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::Api;
use kube::ResourceExt;

use super::selector;
use super::view::{Kind, PolicyView};
use super::PolicyContext;
use crate::api::retention::PolicyMode;
use crate::api::Registry;
use crate::controller::endpoint::endpoint;
use crate::controller::error::ControllerError;
use crate::retention::Policy;

/// The other policies applying to the registry at `endpoint` — through `registry` or any other
/// Registry object in `all_registries` naming the same endpoint — compiled. An invalid one
/// cannot veto reliably, so it makes the run fail closed in Enforce mode; a cluster policy
/// whose selector is invalid counts as applying wherever its valid requirements allow.
pub(super) async fn other_policies(
    view: &PolicyView,
    registry: &Registry,
    endpoint_key: &str,
    all_registries: &[Registry],
    pctx: &PolicyContext,
) -> Result<Vec<Policy>, ControllerError> {
    let ctx = &pctx.ctx;
    let id = |r: &Registry| (r.namespace().unwrap_or_default(), r.name_any());
    let mut same = vec![registry];
    same.extend(all_registries.iter().filter(|r| {
        id(r) != id(registry) && endpoint(r, &ctx.settings.cluster_domain) == endpoint_key
    }));
    let mut out = Vec::new();
    let mut invalid = Vec::new();
    // From the watch caches, not the API: a run must not list every policy of the cluster.
    for p in pctx.policies.state() {
        let ns = p.namespace().unwrap_or_default();
        if !same
            .iter()
            .any(|r| id(r) == (ns.clone(), p.spec.registry_ref.name.clone()))
        {
            continue;
        }
        let name = format!("{ns}/{}", p.name_any());
        if name == view.display && matches!(view.kind, Kind::Namespaced { .. }) {
            continue;
        }
        match Policy::compile(&name, &p.spec.rules) {
            Ok(c) => out.push(c),
            Err(e) => invalid.push(format!("RetentionPolicy {name} ({})", problems_of(&e))),
        }
    }
    let cluster_policies = pctx.cluster_policies.state();
    let mut namespace_labels: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    if !cluster_policies.is_empty() {
        let ns_api: Api<Namespace> = Api::all(ctx.client.clone());
        for r in &same {
            if let std::collections::btree_map::Entry::Vacant(e) =
                namespace_labels.entry(r.namespace().unwrap_or_default())
            {
                let labels = ns_api
                    .get_opt(e.key())
                    .await?
                    .map(|n| n.labels().clone())
                    .unwrap_or_default();
                e.insert(labels);
            }
        }
    }
    let no_labels = BTreeMap::new();
    for p in cluster_policies {
        let name = p.name_any();
        if name == view.display && matches!(view.kind, Kind::Cluster { .. }) {
            continue;
        }
        let selectors =
            std::iter::once(&p.spec.registry_selector).chain(p.spec.namespace_selector.as_ref());
        let mut problems: Vec<String> = selectors
            .filter_map(|s| selector::validate(s).err())
            .map(|e| e.to_string())
            .collect();
        // An invalid selector must not be read as selecting nothing: the policy then counts
        // as applying to every registry its author may have meant.
        let test = if problems.is_empty() {
            selector::matches
        } else {
            selector::may_match
        };
        let selects = same.iter().any(|r| {
            let ns = r.namespace().unwrap_or_default();
            test(&p.spec.registry_selector, r.labels())
                && p.spec
                    .namespace_selector
                    .as_ref()
                    .is_none_or(|s| test(s, namespace_labels.get(&ns).unwrap_or(&no_labels)))
        });
        if !selects {
            continue;
        }
        match Policy::compile(&name, &p.spec.rules) {
            Ok(c) if problems.is_empty() => out.push(c),
            Ok(_) => invalid.push(format!(
                "ClusterRetentionPolicy {name} ({})",
                problems.join("; ")
            )),
            Err(e) => {
                problems.push(problems_of(&e));
                invalid.push(format!(
                    "ClusterRetentionPolicy {name} ({})",
                    problems.join("; ")
                ));
            }
        }
    }
    if !invalid.is_empty() && view.rules.mode == PolicyMode::Enforce {
        let (applies, is, its, it) = if invalid.len() == 1 {
            ("applies", "is", "its", "it")
        } else {
            ("apply", "are", "their", "them")
        };
        return Err(ControllerError::InvalidSpec(format!(
            "nothing deleted: {} also {applies} to this registry and {is} invalid, so {its} keep entries cannot be honoured; fix or delete {it}",
            invalid.join(", ")
        )));
    }
    Ok(out)
}

/// An invalid policy's problems, `; `-separated.
pub(super) fn problems_of(e: &crate::retention::InvalidPolicy) -> String {
    e.errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
