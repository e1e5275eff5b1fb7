//! Apply: server-side apply of the objects a managed Registry owns, each with a controller
//! owner reference.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::api::Registry;
use crate::controller::context::{Context, FIELD_MANAGER};
use crate::controller::error::ControllerError;

pub(super) fn owner_reference(registry: &Registry) -> Result<OwnerReference, ControllerError> {
    registry
        .controller_owner_ref(&())
        .ok_or_else(|| ControllerError::InvalidSpec("the Registry has no uid yet".into()))
}

pub(super) fn with_owner<K: Resource>(mut object: K, owner: &OwnerReference) -> K {
    object.meta_mut().owner_references = Some(vec![owner.clone()]);
    object
}

/// Server-side apply of one owned object, forcing ownership of the fields the operator sets.
pub(super) async fn apply<K>(
    ctx: &Context,
    namespace: &str,
    object: K,
) -> Result<K, ControllerError>
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
