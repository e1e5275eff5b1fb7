//! Prometheus metrics of the operator. Label values come from small fixed sets (controller
//! names, PascalCase reasons, modes, outcomes, HTTP status classes), so cardinality stays bounded
//! however many objects the operator watches.

use std::sync::Arc;
use std::time::Duration;

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
    pub operation: &'static str,
    /// The status class of the answer: `2xx`, `3xx`, `4xx`, `5xx`, or `error` when no answer
    /// came (connection refused, timeout, TLS failure).
    pub code: &'static str,
}

/// Labels of registry request durations.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    /// What the request was for, as in [`RequestLabels::operation`].
    pub operation: &'static str,
}

/// Labels of the build-information gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    /// The operator's version (`CARGO_PKG_VERSION`).
    pub version: &'static str,
}

/// The `code` label of an answer with `status`, or of no answer (`None`).
pub fn status_class(status: Option<u16>) -> &'static str {
    match status {
        Some(200..=299) => "2xx",
        Some(300..=399) => "3xx",
        Some(400..=499) => "4xx",
        Some(500..=599) => "5xx",
        // 1xx never ends a request; anything outside 100..=599 is not HTTP
        Some(_) | None => "error",
    }
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
    /// Requests sent to registries, by operation and status class.
    pub registry_requests: Family<RequestLabels, Counter>,
    /// How long registries took to answer, by operation.
    pub registry_request_durations: Family<OperationLabels, Histogram>,
    /// 1, labelled with the operator's version.
    pub build_info: Family<BuildLabels, Gauge>,
    /// 1 while this replica leads (or leader election is off), else 0.
    pub leader: Gauge,
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
        // 5 ms … about 41 s: a ping on loopback up to a request near the 30 s timeout
        let registry_request_durations =
            Family::<OperationLabels, Histogram>::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.005, 2.0, 14))
            });
        let build_info = Family::<BuildLabels, Gauge>::default();
        let leader = Gauge::default();
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
            "Requests sent to registries (every attempt), by operation and status class",
            registry_requests.clone(),
        );
        registry.register(
            "registry_request_duration_seconds",
            "Time registries took to answer a request (until the headers), by operation",
            registry_request_durations.clone(),
        );
        registry.register(
            "build_info",
            "Always 1; the version label says which operator runs",
            build_info.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica leads (or leader election is off), else 0",
            leader.clone(),
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
        build_info
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        Metrics {
            registry: Arc::new(registry),
            reconciles,
            failures,
            durations,
            runs,
            tags_deleted,
            registry_requests,
            registry_request_durations,
            build_info,
            leader,
            age_cache_configs,
            in_use_objects,
            in_use_synced,
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

impl crate::oci::RequestObserver for Metrics {
    fn observe(&self, op: crate::oci::Operation, status: Option<u16>, elapsed: Duration) {
        let operation = op.as_str();
        self.registry_requests
            .get_or_create(&RequestLabels {
                operation,
                code: status_class(status),
            })
            .inc();
        self.registry_request_durations
            .get_or_create(&OperationLabels { operation })
            .observe(elapsed.as_secs_f64());
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

    #[test]
    fn a_registry_request_is_counted_by_status_class_and_timed() {
        use crate::oci::{Operation, RequestObserver};
        let m = Metrics::new();
        m.observe(Operation::Tags, Some(200), Duration::from_millis(12));
        m.observe(Operation::Tags, Some(503), Duration::from_millis(3));
        m.observe(Operation::Tags, None, Duration::from_secs(31));
        m.observe(Operation::Ping, Some(401), Duration::from_millis(1));
        let text = m.encode();
        for series in [
            "registry_operator_registry_requests_total{operation=\"Tags\",code=\"2xx\"} 1\n",
            "registry_operator_registry_requests_total{operation=\"Tags\",code=\"5xx\"} 1\n",
            "registry_operator_registry_requests_total{operation=\"Tags\",code=\"error\"} 1\n",
            "registry_operator_registry_requests_total{operation=\"Ping\",code=\"4xx\"} 1\n",
            "registry_operator_registry_request_duration_seconds_count{operation=\"Tags\"} 3\n",
            // 3 ms and 12 ms are under 20 ms; 31 s only in +Inf
            "registry_operator_registry_request_duration_seconds_bucket{le=\"0.02\",operation=\"Tags\"} 2\n",
            "registry_operator_registry_request_duration_seconds_bucket{le=\"+Inf\",operation=\"Tags\"} 3\n",
        ] {
            assert!(text.contains(series), "{series} missing from {text}");
        }
    }

    #[test]
    fn status_classes_are_the_first_digit_and_error_without_an_answer() {
        assert_eq!(status_class(Some(204)), "2xx");
        assert_eq!(status_class(Some(307)), "3xx");
        assert_eq!(status_class(Some(404)), "4xx");
        assert_eq!(status_class(Some(502)), "5xx");
        assert_eq!(status_class(None), "error");
        assert_eq!(status_class(Some(999)), "error");
    }

    #[test]
    fn build_info_is_one_with_the_version_and_leader_starts_at_zero() {
        let text = Metrics::new().encode();
        let build = format!(
            "registry_operator_build_info{{version=\"{}\"}} 1\n",
            env!("CARGO_PKG_VERSION")
        );
        assert!(text.contains(&build), "{text}");
        assert!(text.contains("registry_operator_leader 0\n"), "{text}");
    }
}
