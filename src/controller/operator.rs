//! `registry-operator run`: checks the cluster, serves health and metrics, waits for leadership,
//! runs the controllers, and stops cleanly on SIGTERM.

use std::net::SocketAddr;
use std::sync::Arc;

use futures::future::{BoxFuture, FutureExt, Shared};
use kube::Client;
use tokio::sync::watch;
use tracing::{error, info};

use super::context::{Context, Settings};
use super::http::{serve, Readiness};
use super::inuse::InUseIndex;
use super::metrics::Metrics;
use super::policy::PolicyContext;
use super::runtime::{check_crds, elect, fence_read_timeout, LeaderElection, RuntimeError};

/// How the operator runs.
#[derive(Debug, Clone)]
pub struct OperatorConfig {
    /// Address of `/metrics`, `/healthz`, `/readyz`.
    pub http_listen: SocketAddr,
    /// Leader election, when several replicas run.
    pub leader_election: Option<LeaderElection>,
    /// Namespaces to watch; empty = all.
    pub watch_namespaces: Vec<String>,
    /// Reconciler settings.
    pub settings: Settings,
}

/// A future that resolves once shutdown was requested; cheap to clone.
pub type ShutdownSignal = Shared<BoxFuture<'static, ()>>;

/// A shutdown signal fired by SIGTERM or SIGINT, and a sender to fire it by hand.
pub fn shutdown_signal() -> (ShutdownSignal, watch::Sender<bool>) {
    let (tx, mut rx) = watch::channel(false);
    let signal = async move {
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => futures::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = futures::future::pending::<()>();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => info!("SIGINT received, shutting down"),
            _ = term => info!("SIGTERM received, shutting down"),
            _ = rx.wait_for(|v| *v) => {}
        }
    }
    .boxed()
    .shared();
    (signal, tx)
}

/// Runs the operator against `client` until `shutdown` fires.
pub async fn run(
    client: Client,
    config: OperatorConfig,
    shutdown: ShutdownSignal,
) -> Result<(), RuntimeError> {
    check_crds(&client).await?;
    let metrics = Metrics::new();
    // Without leader election this replica is the only one, so it leads.
    metrics
        .leader
        .set(i64::from(config.leader_election.is_none()));
    let readiness = Readiness::default();
    let (addr, server) = serve(config.http_listen, metrics.clone(), readiness.clone())
        .await
        .map_err(|source| RuntimeError::Listen {
            addr: config.http_listen,
            source,
        })?;
    info!(%addr, "serving /metrics, /healthz and /readyz");
    // A standby replica is ready: it answers and will take over when elected.
    readiness.set(true);

    if let Some(le) = &config.leader_election {
        let mut leader = elect(client.clone(), le, config.settings.leader_lease_duration).await?;
        info!(lease = %le.lease, identity = %le.identity, "waiting for leadership");
        tokio::select! {
            r = leader.wait_for(|l| *l) => { r.map_err(|e| RuntimeError::LeaderElection(e.to_string()))?; }
            _ = shutdown.clone() => { server.abort(); return Ok(()); }
        }
        info!("elected leader");
        metrics.leader.set(1);
        // Losing the Lease ends the process: a new leader must not race a stale one.
        let gauge = metrics.leader.clone();
        let lost = async move {
            let _ = leader.wait_for(|l| !*l).await;
            gauge.set(0);
            error!("lost leadership, exiting");
            std::process::exit(1);
        };
        tokio::spawn(lost);
    }

    let mut ctx = Context::new(client.clone(), metrics, config.settings.clone());
    if let Some(le) = &config.leader_election {
        let timeout = fence_read_timeout(config.settings.leader_lease_duration);
        ctx = ctx.with_fence(super::runtime::lease_fence(client.clone(), le, timeout));
    }
    let ctx = Arc::new(ctx);
    // Images in use are watched cluster-wide whatever namespaces are reconciled: a Pod in any
    // namespace may run an image of a watched registry.
    let in_use = InUseIndex::new();
    let index_task = tokio::spawn(in_use.clone().watch(client));
    let index_gauges = tokio::spawn({
        let (index, metrics) = (in_use.clone(), ctx.metrics.clone());
        async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            loop {
                tick.tick().await;
                metrics
                    .in_use_objects
                    .set(i64::try_from(index.len()).unwrap_or(i64::MAX));
                metrics.in_use_synced.set(i64::from(index.synced()));
            }
        }
    });
    let pctx = Arc::new(PolicyContext::start(ctx.clone(), in_use));
    let namespaces: Vec<Option<String>> = if config.watch_namespaces.is_empty() {
        vec![None]
    } else {
        config.watch_namespaces.iter().cloned().map(Some).collect()
    };
    let mut tasks = Vec::new();
    for ns in namespaces {
        tasks.push(tokio::spawn(super::registry::run(
            ctx.clone(),
            ns.clone(),
            shutdown.clone(),
        )));
        tasks.push(tokio::spawn(super::policy::run_namespaced(
            pctx.clone(),
            ns.clone(),
            shutdown.clone(),
        )));
    }
    tasks.push(tokio::spawn(super::policy::run_cluster(
        pctx.clone(),
        shutdown.clone(),
    )));
    for t in tasks {
        let _ = t.await;
    }
    index_task.abort();
    index_gauges.abort();
    server.abort();
    info!("stopped");
    Ok(())
}
