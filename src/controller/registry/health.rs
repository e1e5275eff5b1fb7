//! Health: `GET /v2/` through the operator's client, recorded in status; and, for a Registry
//! that declares credentials, whether the registry accepts them (`CredentialsAccepted`).

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use crate::api::common::condition::CREDENTIALS_ACCEPTED;
use crate::api::registry::{RegistryHealth, RegistryStatus};
use crate::api::Registry;
use crate::controller::access::denied_message;
use crate::controller::conditions::{Extra, Health, Reason};
use crate::controller::context::Context;
use crate::controller::error::{reason_of_denial, ControllerError};
use crate::controller::target;
use crate::oci::{Denial, Refused};

/// The condition for a failed health check: a malformed Secret needs a person (Stalled);
/// anything else may pass (Reconciling, checked again).
pub(super) fn unhealthy(e: &ControllerError) -> Health {
    if e.is_permanent() {
        Health::stalled(e.reason(), e.to_string())
    } else {
        Health::reconciling(e.reason(), e.to_string())
    }
}

/// What the credentials check found, for a Registry that declares credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct CredentialsCheck {
    /// The `CredentialsAccepted` condition.
    pub(super) condition: Extra,
    /// Set when the registry refuses the credentials: `Ready` is False (Stalled) with it.
    pub(super) refused: Option<Health>,
}

impl CredentialsCheck {
    fn new(status: &'static str, reason: Reason, message: String) -> Self {
        let refused = (status == "False").then(|| Health::stalled(reason, message.clone()));
        CredentialsCheck {
            condition: Extra {
                type_: CREDENTIALS_ACCEPTED,
                status,
                reason,
                message,
            },
            refused,
        }
    }
}

/// `GET /v2/` through the operator's client; records health in status. A Registry that
/// declares credentials also gets one authenticated request (`GET /v2/_catalog?n=1`), whose
/// answer says whether the registry accepts them. Errors resolving the target (missing or
/// malformed credentials Secret) are reported as unhealthy with the reason.
pub(super) async fn check_health(
    registry: &Registry,
    ctx: &Context,
    status: &mut RegistryStatus,
    credentials: &mut Option<CredentialsCheck>,
) -> Result<(), ControllerError> {
    let checked = Time(Timestamp::now());
    let declared = target::credentials_secret(registry).is_some();
    let key = format!(
        "{}/{}",
        registry.namespace().unwrap_or_default(),
        registry.name_any()
    );
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
        let probe = match (&health, declared) {
            (Ok(_), true) => Some(
                client
                    .probe_catalog()
                    .await
                    .map(|()| client.credentials_requested()),
            ),
            _ => None,
        };
        Ok::<_, ControllerError>((health?, version, probe, t.credentials_source))
    }
    .await;
    match outcome {
        Ok((health, version, probe, source)) => {
            if version.is_some() {
                status.version = version;
            }
            status.health = Some(RegistryHealth {
                healthy: true,
                latency_ms: Some(i64::try_from(health.latency.as_millis()).unwrap_or(i64::MAX)),
                last_checked: Some(checked),
                error: None,
            });
            let who = source
                .as_ref()
                .map_or_else(|| "no credentials".to_string(), ToString::to_string);
            *credentials = probe.map(|p| match p {
                Ok(false) => CredentialsCheck::new(
                    "Unknown",
                    Reason::CredentialsNotRequested,
                    format!(
                        "the registry answers without asking for credentials, so those in {who} were not sent (the operator sends them only when the registry asks)"
                    ),
                ),
                Ok(true) => CredentialsCheck::new(
                    "True",
                    Reason::CredentialsAccepted,
                    format!("the registry accepts the credentials in {who}"),
                ),
                Err(e) => match e.denial() {
                    Some(Denial::PermissionDenied(Refused::Catalog)) => CredentialsCheck::new(
                        "True",
                        Reason::CatalogRefused,
                        format!(
                            "the registry accepts the credentials in {who} but refuses the account the catalog ({e}): policies can only read repositories their include names without wildcards"
                        ),
                    ),
                    Some(d @ Denial::PermissionDenied(_)) => CredentialsCheck::new(
                        "True",
                        reason_of_denial(d),
                        denied_message(d, &key, source.as_ref(), &e.to_string()),
                    ),
                    Some(d) => CredentialsCheck::new(
                        "False",
                        reason_of_denial(d),
                        denied_message(d, &key, source.as_ref(), &e.to_string()),
                    ),
                    None => CredentialsCheck::new(
                        "Unknown",
                        Reason::RegistryUnreachable,
                        format!("could not check the credentials in {who}: {e}"),
                    ),
                },
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
            *credentials = declared
                .then(|| CredentialsCheck::new("Unknown", e.reason(), format!("not checked: {e}")));
            Err(e)
        }
    }
}
