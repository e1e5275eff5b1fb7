//! Prometheus metrics of the operator. Label values come from small fixed sets (controller
//! names, PascalCase reasons, modes, outcomes, HTTP status classes), so cardinality stays bounded
//! however many objects the operator watches.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// The controllers, as they appear in the `controller` label.
pub const CONTROLLERS: [&str; 3] = ["registry", "retentionpolicy", "clusterretentionpolicy"];

/// Labels naming a controller.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    /// `registry`, `retentionpolicy` or `clusterretentionpolicy`.
    pub controller: &'static str,
}

/// Labels of a failed reconcile.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    /// The controller.
    pub controller: &'static str,
    /// PascalCase reason of the error.
    pub reason: String,
}

/// Labels of a retention run.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RunLabels {
    /// The controller (policy kind).
    pub controller: &'static str,
    /// `Plan` or `Enforce`.
    pub mode: String,
    /// `Succeeded`, `PartiallyFailed`, `Blocked`, `Failed`.
    pub outcome: String,
}

/// Labels of registry requests.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// What the request was for: `Ping`, `Catalog`, `Tags`, `HeadManifest`, `DeleteManifest`, …
    /// (a fixed set; retries count as requests).
    pub operation: String,
}

/// Every metric the operator exports.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    /// Reconciles started.
    pub reconciles: Family<ControllerLabels, Counter>,
    /// Reconciles that failed, by reason.
    pub failures: Family<FailureLabels, Counter>,
    /// Reconcile durations.
    pub durations: Family<ControllerLabels, Histogram>,
    /// Retention runs, by mode and outcome.
    pub runs: Family<RunLabels, Counter>,
    /// Tags deleted by retention.
    pub tags_deleted: Family<ControllerLabels, Counter>,
    /// Requests sent to registries, by operation.
    pub registry_requests: Family<RequestLabels, Counter>,
    /// Image config `created` times remembered for the next runs.
    pub age_cache_configs: Gauge,
    /// Objects (Pods and workloads) in the in-use index.
    pub in_use_objects: Gauge,
    /// 1 once every kind of the in-use index has been listed (runs wait for it), else 0.
    pub in_use_synced: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric under the `registry_operator` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("registry_operator");
        let reconciles = Family::<ControllerLabels, Counter>::default();
        let failures = Family::<FailureLabels, Counter>::default();
        let durations = Family::<ControllerLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.005, 2.0, 14))
        });
        let runs = Family::<RunLabels, Counter>::default();
        let tags_deleted = Family::<ControllerLabels, Counter>::default();
        let registry_requests = Family::<RequestLabels, Counter>::default();
        let age_cache_configs = Gauge::default();
        let in_use_objects = Gauge::default();
        let in_use_synced = Gauge::default();
        registry.register("reconciles", "Reconciles started", reconciles.clone());
        registry.register(
            "reconcile_failures",
            "Reconciles that failed, by reason",
            failures.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Duration of reconciles",
            durations.clone(),
        );
        registry.register(
            "retention_runs",
            "Retention runs by mode and outcome",
            runs.clone(),
        );
        registry.register(
            "retention_tags_deleted",
            "Tags deleted by retention",
            tags_deleted.clone(),
        );
        registry.register(
            "registry_requests",
            "Requests sent to registries",
            registry_requests.clone(),
        );
        registry.register(
            "age_cache_configs",
            "Image config created times remembered, so later runs do not read those configs again",
            age_cache_configs.clone(),
        );
        registry.register(
            "in_use_objects",
            "Pods and workloads in the index of images in use",
            in_use_objects.clone(),
        );
        registry.register(
            "in_use_synced",
            "1 once the index of images in use has listed every kind (retention runs wait for it)",
            in_use_synced.clone(),
        );
        // Every controller's series exist from the start, so dashboards and rate() see zeros
        // rather than gaps before the first reconcile.
        for controller in CONTROLLERS {
            let labels = ControllerLabels { controller };
            let _ = reconciles.get_or_create(&labels);
            let _ = tags_deleted.get_or_create(&labels);
            let _ = durations.get_or_create(&labels);
        }
        Metrics {
            registry: Arc::new(registry),
            reconciles,
            failures,
            durations,
            runs,
            tags_deleted,
            registry_requests,
            age_cache_configs,
            in_use_objects,
            in_use_synced,
        }
    }

    /// Adds a registry client's request counts (as returned by its `stats()`, usually the
    /// difference over one run) to `registry_requests`.
    pub fn count_requests(&self, stats: &crate::oci::RequestStats) {
        for (op, n) in &stats.by_operation {
            if *n > 0 {
                self.registry_requests
                    .get_or_create(&RequestLabels {
                        operation: op.as_str().to_string(),
                    })
                    .inc_by(*n);
            }
        }
    }

    /// The metrics in Prometheus' text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_appear_in_the_exposition_with_their_labels() {
        let m = Metrics::new();
        m.reconciles
            .get_or_create(&ControllerLabels {
                controller: "registry",
            })
            .inc();
        m.failures
            .get_or_create(&FailureLabels {
                controller: "registry",
                reason: "InvalidSpec".into(),
            })
            .inc();
        let text = m.encode();
        assert!(
            text.contains("registry_operator_reconciles_total{controller=\"registry\"} 1"),
            "{text}"
        );
        assert!(text.contains("registry_operator_reconcile_failures_total{controller=\"registry\",reason=\"InvalidSpec\"} 1"), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }
}
