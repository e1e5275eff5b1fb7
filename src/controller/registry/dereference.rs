//! Dereference: the Secrets a Registry names.

use crate::api::Registry;

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
