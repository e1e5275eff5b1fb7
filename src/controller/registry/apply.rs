//! Apply: server-side apply of the objects a managed Registry owns, each with a controller
//! owner reference.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;

use k8s_openapi::api::apps::v1::StatefulSet;

use super::builders::RegistryObjects;
use crate::api::Registry;
use crate::controller::context::{Context, FIELD_MANAGER};
use crate::controller::error::ControllerError;

/// Applies every object a managed Registry owns, each with its owner reference: the ConfigMap
/// first, so pods never start on a config that is not there yet; the StatefulSet last, as the
/// API server returns it.
pub(super) async fn apply_owned(
    ctx: &Context,
    namespace: &str,
    objects: RegistryObjects,
    owner: &OwnerReference,
) -> Result<StatefulSet, ControllerError> {
    // Destructured whole: an object added to RegistryObjects does not compile until it is
    // applied here.
    let RegistryObjects {
        config_map,
        stateful_set,
        service,
        headless_service,
    } = objects;
    apply(ctx, namespace, with_owner(config_map, owner)).await?;
    apply(ctx, namespace, with_owner(headless_service, owner)).await?;
    apply(ctx, namespace, with_owner(service, owner)).await?;
    apply(ctx, namespace, with_owner(stateful_set, owner)).await
}

pub(super) fn owner_reference(registry: &Registry) -> Result<OwnerReference, ControllerError> {
    registry
        .controller_owner_ref(&())
        .ok_or_else(|| ControllerError::InvalidSpec("the Registry has no uid yet".into()))
}

fn with_owner<K: Resource>(mut object: K, owner: &OwnerReference) -> K {
    object.meta_mut().owner_references = Some(vec![owner.clone()]);
    object
}

/// Server-side apply of one owned object, forcing ownership of the fields the operator sets.
async fn apply<K>(ctx: &Context, namespace: &str, object: K) -> Result<K, ControllerError>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + Serialize
        + DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), namespace);
    let name = object.name_any();
    let params = PatchParams::apply(FIELD_MANAGER).force();
    match api.patch(&name, &params, &Patch::Apply(&object)).await {
        Ok(applied) => Ok(applied),
        Err(kube::Error::Api(status)) if status.code == 422 => Err(ControllerError::Rejected {
            kind: K::kind(&K::DynamicType::default()).into_owned(),
            namespace: namespace.to_string(),
            name,
            message: status.message,
        }),
        Err(e) => Err(e.into()),
    }
}
