//! Dereference: the Secrets a Registry names.

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::ResourceExt;

use crate::api::Registry;
use crate::controller::context::Context;
use crate::controller::error::ControllerError;

/// The first Secret a managed registry's pods mount that does not exist (zot would not
/// start), as the message for its condition.
pub(super) async fn missing_secret(
    ctx: &Context,
    registry: &Registry,
) -> Result<Option<String>, ControllerError> {
    let namespace = registry.namespace().unwrap_or_default();
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    for secret in referenced_secrets(registry) {
        if api.get_metadata_opt(&secret).await?.is_none() {
            return Ok(Some(format!(
                "waiting for Secret {namespace}/{secret}, which the registry mounts"
            )));
        }
    }
    Ok(None)
}

/// Names of the Secrets a managed registry's pods mount or read.
pub(super) fn referenced_secrets(registry: &Registry) -> Vec<String> {
    let spec = &registry.spec;
    let mut out = Vec::new();
    if let Some(r) = spec
        .auth
        .as_ref()
        .and_then(|a| a.htpasswd_secret_ref.as_ref())
    {
        out.push(r.name.clone());
    }
    if let Some(r) = &spec.tls {
        out.push(r.name.clone());
    }
    if let Some(r) = spec
        .sync
        .as_ref()
        .and_then(|s| s.credentials_secret_ref.as_ref())
    {
        out.push(r.name.clone());
    }
    if let Some(r) = spec
        .storage
        .as_ref()
        .and_then(|s| s.s3.as_ref())
        .and_then(|s| s.credentials_secret_ref.as_ref())
    {
        out.push(r.name.clone());
    }
    out.sort();
    out.dedup();
    out
}
