//! What every reconciler shares: the Kubernetes client, metrics, settings, per-object backoff.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::Client;

use super::lockdown::Lockdown;
use super::metrics::Metrics;
use crate::oci::{AgeCache, ClientOptions};

/// Field manager of every server-side apply and status patch the operator sends.
pub const FIELD_MANAGER: &str = "registry-operator";

/// Settings of the reconcilers.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How often a Registry's `/v2/` is checked.
    pub health_interval: Duration,
    /// First retry delay after a transient error; doubles per failure.
    pub backoff_base: Duration,
    /// Longest retry delay after transient errors.
    pub backoff_max: Duration,
    /// Longest wait between two looks at a retention policy (catches clock jumps).
    pub policy_resync: Duration,
    /// The cluster's DNS domain: managed registries are reached at
    /// `<name>.<namespace>.svc.<domain>`.
    pub cluster_domain: String,
    /// Options of the registry clients. Their `age_cache` is shared by every run, so a
    /// scheduled run reads only the image configs earlier runs have not read.
    pub registry_client: ClientOptions,
    /// With leader election: how long the Lease holds without a renewal (whole seconds, at
    /// least 2). The leader renews it a third of that before it runs out, and the deletion
    /// fence takes an unanswered read of it after a third of it as a no.
    pub leader_lease_duration: Duration,
    /// Whether an external Registry's URL may name a Service of another namespace
    /// (`--allow-cross-namespace-services`). The address policy itself is
    /// `registry_client.address_policy`.
    pub allow_cross_namespace_services: bool,
    /// What Registries may ask of the operator (`--allowed-image`, `--secret-label`, …).
    pub lockdown: Lockdown,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            health_interval: Duration::from_secs(60),
            backoff_base: Duration::from_secs(5),
            backoff_max: Duration::from_secs(300),
            policy_resync: Duration::from_secs(600),
            cluster_domain: DEFAULT_CLUSTER_DOMAIN.to_string(),
            registry_client: ClientOptions {
                age_cache: Some(Arc::new(AgeCache::default())),
                ..ClientOptions::default()
            },
            leader_lease_duration: DEFAULT_LEASE_DURATION,
            allow_cross_namespace_services: false,
            lockdown: Lockdown::default(),
        }
    }
}

/// The leader-election Lease's duration unless `--leader-election-lease-duration-seconds`
/// says otherwise.
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(15);

/// The DNS domain of a cluster set up with the defaults.
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";

/// Checks a `--cluster-domain` value: DNS labels of lowercase letters, digits and `-`,
/// separated by dots (no leading or trailing dot).
pub fn parse_cluster_domain(value: &str) -> Result<String, String> {
    let ok = !value.is_empty()
        && value.len() <= 253
        && value.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        });
    if ok {
        Ok(value.to_string())
    } else {
        Err(format!(
            "{value:?} is not a DNS domain (lowercase labels separated by dots, like cluster.local)"
        ))
    }
}

/// Shared state of the reconcilers.
pub struct Context {
    /// Kubernetes API client.
    pub client: Client,
    /// Metrics registry.
    pub metrics: Metrics,
    /// Settings.
    pub settings: Settings,
    /// Publishes Events; one recorder, so a repeated event is counted rather than duplicated.
    pub recorder: Recorder,
    /// Asked before deleting (with leader election: whether this replica still holds the
    /// Lease).
    pub fence: Option<crate::engine::Fence>,
    failures: Mutex<HashMap<String, u32>>,
}

impl Settings {
    /// Where external Registries' URLs may point, as `registry::address` judges them.
    pub fn url_policy(&self) -> crate::controller::registry::address::UrlPolicy<'_> {
        crate::controller::registry::address::UrlPolicy {
            addresses: self.registry_client.address_policy,
            allow_cross_namespace_services: self.allow_cross_namespace_services,
            cluster_domain: &self.cluster_domain,
        }
    }
}

impl Context {
    /// A context with the given client, metrics and settings. Every registry client built
    /// from these settings reports its requests to `metrics`.
    pub fn new(client: Client, metrics: Metrics, mut settings: Settings) -> Self {
        settings.registry_client.observer = Some(Arc::new(metrics.clone()));
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: FIELD_MANAGER.into(),
                instance: None,
            },
        );
        Context {
            client,
            metrics,
            settings,
            recorder,
            fence: None,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// The same context, asking `fence` before deleting.
    pub fn with_fence(mut self, fence: crate::engine::Fence) -> Self {
        self.fence = Some(fence);
        self
    }

    /// Records a transient failure of `key` and returns how long to wait before retrying:
    /// base × 2^(failures-1), capped.
    pub fn backoff(&self, key: &str) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let n = failures.entry(key.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        let factor = 1u32
            .checked_shl(n.saturating_sub(1).min(16))
            .unwrap_or(u32::MAX);
        self.settings
            .backoff_base
            .saturating_mul(factor)
            .min(self.settings.backoff_max)
    }

    /// Forgets the failures of `key` after a success.
    pub fn reset_backoff(&self, key: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures.remove(key);
    }
}

impl Context {
    /// Publishes an Event about `reference`; failures are logged, never fatal.
    pub async fn publish(
        &self,
        reference: &k8s_openapi::api::core::v1::ObjectReference,
        type_: EventType,
        reason: &str,
        action: &str,
        note: &str,
    ) {
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(note.chars().take(1000).collect()),
            action: action.into(),
            secondary: None,
        };
        // Without the resourceVersion, events about the same object aggregate into one series
        // (the version changes with every status write).
        let mut reference = reference.clone();
        reference.resource_version = None;
        if let Err(e) = self.recorder.publish(&event, &reference).await {
            tracing::warn!(error = %e, "publishing event");
        }
    }
}
