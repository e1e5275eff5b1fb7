//! Health: `GET /v2/` through the operator's client, recorded in status.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::registry::{RegistryHealth, RegistryStatus};
use crate::api::Registry;
use crate::controller::conditions::Health;
use crate::controller::context::Context;
use crate::controller::error::ControllerError;
use crate::controller::target;

/// The condition for a failed health check: a malformed Secret needs a person (Stalled);
/// anything else may pass (Reconciling, checked again).
pub(super) fn unhealthy(e: &ControllerError) -> Health {
    if e.is_permanent() {
        Health::stalled(e.reason(), e.to_string())
    } else {
        Health::reconciling(e.reason(), e.to_string())
    }
}

/// `GET /v2/` through the operator's client; records health in status. Errors resolving the
/// target (missing or malformed credentials Secret) are reported as unhealthy with the reason.
pub(super) async fn check_health(
    registry: &Registry,
    ctx: &Context,
    status: &mut RegistryStatus,
) -> Result<(), ControllerError> {
    let checked = Time(Timestamp::now());
    let outcome = async {
        let t = target::resolve_with(ctx, registry).await?;
        let client = t.client()?;
        let health = client.check().await;
        let version = match &health {
            Ok(_) => client
                .capabilities()
                .await
                .ok()
                .and_then(|caps| caps.zot)
                .and_then(|z| z.release),
            Err(_) => None,
        };
        ctx.metrics.count_requests(&client.stats());
        Ok::<_, ControllerError>((health?, version))
    }
    .await;
    match outcome {
        Ok((health, version)) => {
            if version.is_some() {
                status.version = version;
            }
            status.health = Some(RegistryHealth {
                healthy: true,
                latency_ms: Some(i64::try_from(health.latency.as_millis()).unwrap_or(i64::MAX)),
                last_checked: Some(checked),
                error: None,
            });
            Ok(())
        }
        Err(e) => {
            status.health = Some(RegistryHealth {
                healthy: false,
                latency_ms: None,
                last_checked: Some(checked),
                error: Some(e.to_string()),
            });
            Err(e)
        }
    }
}
