//! Process-level plumbing of `registry-operator run`: logging, the CRD check, leader election.

use std::time::Duration;

use kube::api::{Api, ListParams};
use kube::Client;
use kube_lease_manager::{LeaseManagerBuilder, LeaseParams};
use tokio::sync::watch;

use crate::api::{ClusterRetentionPolicy, Registry, RetentionPolicy};

/// Errors that stop the operator from starting.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The custom resource definitions are not installed.
    #[error("CRD {0} is not installed in the cluster; install it with `kubectl apply -f crds/` (or the Helm chart) and restart")]
    CrdMissing(String),
    /// The API server could not be reached or refused the operator.
    #[error("talking to the Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// Leader election failed.
    #[error("leader election: {0}")]
    LeaderElection(String),
    /// The HTTP endpoint could not be bound.
    #[error("serving metrics and health on {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

impl RuntimeError {
    /// PascalCase reason for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            RuntimeError::CrdMissing(_) => "CrdMissing",
            RuntimeError::Kube(_) => "KubeApiError",
            RuntimeError::LeaderElection(_) => "LeaderElectionFailed",
            RuntimeError::Listen { .. } => "ListenFailed",
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line, for log pipelines.
    Json,
    /// Human-readable lines.
    Text,
}

/// Installs the global tracing subscriber. `level` is a filter such as `info` or
/// `info,registry_operator=debug`; `RUST_LOG` overrides it.
pub fn init_tracing(format: LogFormat, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Fails with a clear message unless all three CRDs are served.
pub async fn check_crds(client: &Client) -> Result<(), RuntimeError> {
    let probe = ListParams::default().limit(1);
    let missing = |e: &kube::Error| matches!(e, kube::Error::Api(s) if s.code == 404);
    if let Err(e) = Api::<Registry>::all(client.clone())
        .list_metadata(&probe)
        .await
    {
        return Err(if missing(&e) {
            RuntimeError::CrdMissing("registries.registry-operator.dev".into())
        } else {
            e.into()
        });
    }
    if let Err(e) = Api::<RetentionPolicy>::all(client.clone())
        .list_metadata(&probe)
        .await
    {
        return Err(if missing(&e) {
            RuntimeError::CrdMissing("retentionpolicies.registry-operator.dev".into())
        } else {
            e.into()
        });
    }
    if let Err(e) = Api::<ClusterRetentionPolicy>::all(client.clone())
        .list_metadata(&probe)
        .await
    {
        return Err(if missing(&e) {
            RuntimeError::CrdMissing("clusterretentionpolicies.registry-operator.dev".into())
        } else {
            e.into()
        });
    }
    Ok(())
}

/// Where the leader-election Lease lives and who this replica is.
#[derive(Debug, Clone)]
pub struct LeaderElection {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub lease: String,
    /// This replica's identity (the pod name).
    pub identity: String,
}

/// The Lease's duration and renewal margin in whole seconds, as the lease manager takes them:
/// at least 2 s, and the leader renews a third of the duration (at least 1 s) before it runs out.
pub fn lease_timings(duration: Duration) -> (u64, u64) {
    let seconds = duration.as_secs().max(2);
    (seconds, (seconds / 3).max(1))
}

/// How long the deletion fence waits for the Lease: a third of its duration (at least 1 s).
/// An API server that does not answer within it is a no — its renewals cannot get through
/// either, so the Lease may run out and another replica take over.
pub fn fence_read_timeout(duration: Duration) -> Duration {
    Duration::from_secs(lease_timings(duration).1)
}

/// Starts competing for the Lease (held `lease_duration` without renewal, see
/// [`lease_timings`]); the receiver turns `true` while this replica leads.
pub async fn elect(
    client: Client,
    le: &LeaderElection,
    lease_duration: Duration,
) -> Result<watch::Receiver<bool>, RuntimeError> {
    let (duration, grace) = lease_timings(lease_duration);
    let manager = LeaseManagerBuilder::new(client, &le.lease)
        .with_namespace(&le.namespace)
        .with_identity(&le.identity)
        .with_parameters(
            LeaseParams::new(&le.identity, duration, grace)
                .with_field_manager("registry-operator-leader"),
        )
        .build()
        .await
        .map_err(|e| RuntimeError::LeaderElection(e.to_string()))?;
    let (rx, _task) = manager.watch().await;
    Ok(rx)
}

/// A fence for deletions: this replica may delete only while the Lease names it and will not
/// run out for [`FENCE_TRUST`](crate::engine::FENCE_TRUST) (how long the engine trusts a yes),
/// read fresh from the API server (an API server it cannot reach,
/// or that does not answer within `read_timeout`, is a no). The lease manager's own view can
/// lag behind: cut off from the API server, a replica keeps believing it leads while another
/// takes over.
pub fn lease_fence(
    client: Client,
    le: &LeaderElection,
    read_timeout: Duration,
) -> crate::engine::Fence {
    let api: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(client, &le.namespace);
    let (namespace, name, me) = (le.namespace.clone(), le.lease.clone(), le.identity.clone());
    std::sync::Arc::new(move || {
        let (api, namespace, name, me) = (api.clone(), namespace.clone(), name.clone(), me.clone());
        Box::pin(async move {
            let lease = tokio::time::timeout(read_timeout, api.get(&name))
                .await
                .map_err(|_| {
                    format!(
                        "the API server did not answer a read of the leader Lease {namespace}/{name} within {}s",
                        read_timeout.as_secs_f64()
                    )
                })?
                .map_err(|e| format!("cannot read the leader Lease {namespace}/{name}: {e}"))?;
            let spec = lease.spec.unwrap_or_default();
            let holder = spec.holder_identity.unwrap_or_default();
            if holder != me {
                return Err(format!(
                    "the leader Lease {namespace}/{name} is held by {holder:?}, not by this replica ({me})"
                ));
            }
            let duration = i64::from(spec.lease_duration_seconds.unwrap_or(15));
            let renewed = spec.renew_time.map(|t| t.0);
            // A yes is trusted for FENCE_TRUST: the Lease must outlast it.
            let now = jiff::Timestamp::now();
            let trust = jiff::SignedDuration::try_from(crate::engine::FENCE_TRUST)
                .unwrap_or(jiff::SignedDuration::from_secs(2));
            match renewed {
                Some(t) if t + jiff::SignedDuration::from_secs(duration) > now + trust => Ok(()),
                Some(t) => Err(format!(
                    "the leader Lease {namespace}/{name} was last renewed at {t}: it runs out in less than {}s (duration {duration}s)",
                    trust.as_secs()
                )),
                None => Err(format!(
                    "the leader Lease {namespace}/{name} has no renew time"
                )),
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_leader_renews_a_third_of_the_lease_before_it_runs_out_and_never_below_a_second() {
        assert_eq!(lease_timings(Duration::from_secs(15)), (15, 5));
        assert_eq!(lease_timings(Duration::from_secs(6)), (6, 2));
        // the lease manager needs 0 < renewal margin < duration
        assert_eq!(lease_timings(Duration::from_millis(500)), (2, 1));
        assert_eq!(
            fence_read_timeout(Duration::from_secs(15)),
            Duration::from_secs(5)
        );
    }
}
