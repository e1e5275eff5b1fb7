//! The registries a policy applies to.

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};
use kube::ResourceExt;

use super::selector;
use super::view::{Kind, PolicyView};
use crate::api::Registry;
use crate::controller::context::Context;
use crate::controller::error::ControllerError;

/// The registries a policy applies to.
pub(super) async fn target_registries(
    view: &PolicyView,
    ctx: &Context,
) -> Result<Vec<Registry>, ControllerError> {
    match &view.kind {
        Kind::Namespaced {
            namespace,
            registry,
        } => {
            let api: Api<Registry> = Api::namespaced(ctx.client.clone(), namespace);
            let reg =
                api.get_opt(registry)
                    .await?
                    .ok_or_else(|| ControllerError::RegistryNotFound {
                        namespace: namespace.clone(),
                        name: registry.clone(),
                    })?;
            Ok(vec![reg])
        }
        Kind::Cluster {
            registries,
            namespaces,
        } => {
            let all: Api<Registry> = Api::all(ctx.client.clone());
            let mut out: Vec<Registry> = all
                .list(&ListParams::default())
                .await?
                .items
                .into_iter()
                .filter(|r| selector::matches(registries, r.labels()))
                .collect();
            if let Some(ns_selector) = namespaces {
                let ns_api: Api<Namespace> = Api::all(ctx.client.clone());
                let matching: Vec<String> = ns_api
                    .list(&ListParams::default())
                    .await?
                    .items
                    .into_iter()
                    .filter(|n| selector::matches(ns_selector, n.labels()))
                    .map(|n| n.name_any())
                    .collect();
                out.retain(|r| r.namespace().is_some_and(|ns| matching.contains(&ns)));
            }
            out.sort_by_key(|r| (r.namespace(), r.name_any()));
            Ok(out)
        }
    }
}
