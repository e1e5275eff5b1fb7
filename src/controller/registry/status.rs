//! Status: written only when it changed in anything a person would care about (not check
//! timestamps or latency), and at least every [`HEALTH_REFRESH`].

use std::time::Duration;

use crate::api::registry::RegistryStatus;
use crate::controller::reconcile::conditioned_status;

/// Health and latency are refreshed in status at least this often even when nothing changed.
const HEALTH_REFRESH: Duration = Duration::from_secs(600);

conditioned_status!(RegistryStatus, differs_besides_conditions);

/// Whether the statuses differ outside their conditions in anything a person would care about
/// (not check timestamps or latency), or the recorded health is older than [`HEALTH_REFRESH`].
fn differs_besides_conditions(old: &RegistryStatus, new: &RegistryStatus) -> bool {
    let strip = |s: &RegistryStatus| {
        let mut s = s.clone();
        s.conditions = Vec::new();
        if let Some(h) = s.health.as_mut() {
            h.latency_ms = None;
            h.last_checked = None;
        }
        s
    };
    if strip(old) != strip(new) {
        return true;
    }
    let last = old
        .health
        .as_ref()
        .and_then(|h| h.last_checked.as_ref())
        .map(|t| t.0);
    let now = new
        .health
        .as_ref()
        .and_then(|h| h.last_checked.as_ref())
        .map(|t| t.0);
    match (last, now) {
        (Some(last), Some(now)) => last.duration_until(now).unsigned_abs() >= HEALTH_REFRESH,
        (None, Some(_)) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::registry::RegistryHealth;
    use crate::controller::reconcile::status_changed;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    #[test]
    fn latency_and_check_time_alone_do_not_rewrite_status() {
        let t = |s: &str| Some(Time(s.parse().unwrap()));
        let old = RegistryStatus {
            health: Some(RegistryHealth {
                healthy: true,
                latency_ms: Some(3),
                last_checked: t("2026-11-23T03:00:00Z"),
                error: None,
            }),
            ..Default::default()
        };
        let mut new = old.clone();
        new.health = Some(RegistryHealth {
            healthy: true,
            latency_ms: Some(9),
            last_checked: t("2026-11-23T03:01:00Z"),
            error: None,
        });
        assert!(!status_changed(&old, &new));
        new.health.as_mut().unwrap().last_checked = t("2026-11-23T03:11:00Z");
        assert!(
            status_changed(&old, &new),
            "health is refreshed every 10 minutes"
        );
        let mut broken = old.clone();
        broken.health = Some(RegistryHealth {
            healthy: false,
            latency_ms: None,
            last_checked: t("2026-11-23T03:01:00Z"),
            error: Some("refused".into()),
        });
        assert!(status_changed(&old, &broken));
    }
}
