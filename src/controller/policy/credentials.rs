//! A run the registry refused (credentials rejected or missing, permission denied) is not
//! retried with backoff: the same credentials would be refused again. It runs again when a
//! credentials Secret of its registries changes (the controller watches Secrets), when its
//! spec changes, and on its schedule.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::Api;
use kube::ResourceExt;

use super::targets::target_registries;
use super::view::PolicyView;
use crate::api::retention::RetentionPolicyStatus;
use crate::controller::conditions::{Reason, READY};
use crate::controller::context::Context;
use crate::controller::target::credentials_secret;

/// Whether the policy's last run ended on the registry refusing the operator's account.
pub fn refused(status: Option<&RetentionPolicyStatus>) -> bool {
    status.is_some_and(|s| {
        s.conditions.iter().any(|c| {
            c.type_ == READY
                && c.status != "True"
                && [
                    Reason::CredentialsRejected,
                    Reason::CredentialsRequired,
                    Reason::PermissionDenied,
                ]
                .iter()
                .any(|r| r.as_str() == c.reason)
        })
    })
}

/// When a Secret was last written: its newest managed-fields entry (the API server stamps
/// one on every create, update and apply), else its creation.
fn changed_at(secret: &ObjectMeta) -> Option<Timestamp> {
    let written = secret
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|f| f.time.as_ref().map(|t| t.0))
        .max();
    written.or_else(|| secret.creation_timestamp.as_ref().map(|t| t.0))
}

/// Whether the last run was refused and a credentials Secret of the policy's registries was
/// written since that run started (to the second: the API server's time stamps have no
/// more). One Secret read per registry, and only for a refused policy.
pub(super) async fn changed_since_refusal(view: &PolicyView, ctx: &Context) -> bool {
    if !refused(Some(&view.status)) {
        return false;
    }
    let Some(started) = view.status.last_run.as_ref().map(|r| r.start_time.0) else {
        return false;
    };
    let since = Timestamp::from_second(started.as_second()).unwrap_or(started);
    let Ok(registries) = target_registries(view, ctx).await else {
        return false;
    };
    for registry in &registries {
        let Some(secret) = credentials_secret(registry) else {
            continue;
        };
        let api: Api<Secret> = Api::namespaced(
            ctx.client.clone(),
            &registry.namespace().unwrap_or_default(),
        );
        if let Ok(Some(s)) = api.get_metadata_opt(&secret.name).await {
            if changed_at(&s.metadata).is_some_and(|t| t >= since) {
                return true;
            }
        }
    }
    false
}
