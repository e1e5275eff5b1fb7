//! The RetentionPolicy and ClusterRetentionPolicy reconcilers.
//!
//! A run happens when a policy is created or its spec changes, when its schedule is due, and
//! when the `registry-operator.dev/run-requested-at` annotation gets a new value — never while
//! `spec.suspend` is true (a request made then waits; resuming starts one run). A run resolves
//! the target registries, the other policies that apply to each (their keep entries veto
//! deletions), and the images the cluster runs; then the engine plans and, in Enforce mode,
//! deletes. Never two runs against one registry at once. Status carries the last run, a bounded
//! list of candidates and kstatus conditions; Events tell what happened.
//!
//! The phases, each in its file: [`view`] (either kind as one), [`validate`], [`trigger`] and
//! [`schedule`] (is a run due), [`targets`] and [`selector`] (which registries), [`vetoes`]
//! (the other policies' keeps), [`run`] (locks, plans, the run's limits, execution),
//! [`summary`] (the pure fold of the results) and [`status`]; the status write, timer,
//! metrics and error policy are the shared [`reconcile`](super::reconcile).

mod credentials;
mod reconcile;
mod run;
pub mod schedule;
pub mod selector;
mod status;
mod summary;
mod targets;
pub mod trigger;
mod validate;
mod vetoes;
mod view;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PartialObjectMeta};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, reflector, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::ResourceExt;

use self::reconcile::reconcile_view;
pub use self::run::RunLocks;
use self::status::{finish, Outcome};
use self::view::{cluster_view, namespaced_view, PolicyView};
use crate::api::retention::{ClusterRetentionPolicy, RetentionPolicy, RetentionPolicyStatus};
use crate::controller::conditions::Health;
use crate::controller::context::Context;
use crate::controller::error::ControllerError;
use crate::controller::inuse::InUseIndex;
use crate::controller::reconcile::{error_policy, run_controller, timed};

/// What the policy controllers share beyond [`Context`].
pub struct PolicyContext {
    /// The common context.
    pub ctx: Arc<Context>,
    /// Images the cluster runs.
    pub in_use: InUseIndex,
    /// One lock per registry endpoint.
    pub locks: RunLocks,
    /// Every RetentionPolicy (watch cache), for the vetoes of other policies.
    pub policies: Store<RetentionPolicy>,
    /// Every ClusterRetentionPolicy (watch cache).
    pub cluster_policies: Store<ClusterRetentionPolicy>,
}

impl PolicyContext {
    /// A policy context whose policy caches are fed by watches started here; runs wait until
    /// both caches have listed once (an unseen policy could not veto).
    pub fn start(ctx: Arc<Context>, in_use: InUseIndex) -> Self {
        let client = ctx.client.clone();
        let (policies, writer) = reflector::store();
        let rp = reflector(
            writer,
            watcher(
                Api::<RetentionPolicy>::all(client.clone()),
                watcher::Config::default(),
            ),
        );
        tokio::spawn(
            rp.default_backoff()
                .for_each(|_| futures::future::ready(())),
        );
        let (cluster_policies, writer) = reflector::store();
        let crp = reflector(
            writer,
            watcher(
                Api::<ClusterRetentionPolicy>::all(client),
                watcher::Config::default(),
            ),
        );
        tokio::spawn(
            crp.default_backoff()
                .for_each(|_| futures::future::ready(())),
        );
        PolicyContext {
            ctx,
            in_use,
            locks: RunLocks::default(),
            policies,
            cluster_policies,
        }
    }

    pub(super) async fn caches_ready(&self) -> bool {
        let wait = async {
            let _ = self.policies.wait_until_ready().await;
            let _ = self.cluster_policies.wait_until_ready().await;
        };
        tokio::time::timeout(Duration::from_secs(30), wait)
            .await
            .is_ok()
    }
}

async fn reconcile_common(
    view: PolicyView,
    pctx: Arc<PolicyContext>,
) -> Result<Action, ControllerError> {
    let reconcile = async {
        match reconcile_view(&view, &pctx).await {
            Ok(o) => finish(&view, &pctx, o).await,
            // Only a person can fix it: Stalled with the error's reason, not retried.
            Err(e) if e.is_permanent() => {
                let status = RetentionPolicyStatus {
                    observed_generation: view.generation,
                    ..view.status.clone()
                };
                let outcome = Outcome {
                    health: Health::stalled(e.reason(), e.to_string()),
                    requeue: pctx.ctx.settings.policy_resync,
                    status,
                    ran: false,
                };
                finish(&view, &pctx, outcome).await
            }
            Err(e) => Err(e),
        }
    };
    timed(&pctx.ctx, view.controller(), reconcile).await
}

/// Reconciles one RetentionPolicy.
pub async fn reconcile_namespaced(
    p: Arc<RetentionPolicy>,
    pctx: Arc<PolicyContext>,
) -> Result<Action, ControllerError> {
    reconcile_common(namespaced_view(&p), pctx).await
}

/// Reconciles one ClusterRetentionPolicy.
pub async fn reconcile_cluster(
    p: Arc<ClusterRetentionPolicy>,
    pctx: Arc<PolicyContext>,
) -> Result<Action, ControllerError> {
    reconcile_common(cluster_view(&p), pctx).await
}

/// Requeues after an error (see [`error_policy`]); a permanent error never gets
/// here, it stalls the policy in [`reconcile_common`].
fn error_policy_for(
    controller: &'static str,
    key: String,
    error: &ControllerError,
    pctx: &PolicyContext,
) -> Action {
    error_policy(&pctx.ctx, controller, &format!("policy/{key}"), error)
}

fn error_policy_namespaced(
    p: Arc<RetentionPolicy>,
    e: &ControllerError,
    c: Arc<PolicyContext>,
) -> Action {
    error_policy_for(
        "retentionpolicy",
        format!("{}/{}", p.namespace().unwrap_or_default(), p.name_any()),
        e,
        &c,
    )
}

fn error_policy_cluster(
    p: Arc<ClusterRetentionPolicy>,
    e: &ControllerError,
    c: Arc<PolicyContext>,
) -> Action {
    error_policy_for("clusterretentionpolicy", p.name_any(), e, &c)
}

/// Runs the RetentionPolicy controller (in `namespace`, or everywhere) until `shutdown`.
pub async fn run_namespaced(
    pctx: Arc<PolicyContext>,
    namespace: Option<String>,
    shutdown: impl std::future::Future<Output = ()> + Clone + Send + Sync + 'static,
) {
    let client = pctx.ctx.client.clone();
    let (api, secrets): (Api<RetentionPolicy>, Api<PartialObjectMeta<Secret>>) = match &namespace {
        Some(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
        ),
        None => (Api::all(client.clone()), Api::all(client.clone())),
    };
    let controller = Controller::new(api, watcher::Config::default());
    let cache = controller.store();
    let store = cache.clone();
    let run = controller
        // A Secret changed: a policy the registry refused in that namespace looks again (its
        // reconcile runs it when one of its registries' credentials Secrets is newer than
        // the refused run).
        // Only the Secrets' metadata is watched: the namespace says which policies to look at.
        .watches(
            secrets,
            watcher::Config::default(),
            move |secret: PartialObjectMeta<Secret>| {
                let ns = secret.namespace();
                store
                    .state()
                    .into_iter()
                    .filter(|p| p.namespace() == ns && credentials::refused(p.status.as_ref()))
                    .map(|p| ObjectRef::from_obj(&*p))
                    .collect::<Vec<_>>()
            },
        )
        .graceful_shutdown_on(shutdown.clone())
        .run(reconcile_namespaced, error_policy_namespaced, pctx)
        .for_each(|_| async {});
    run_controller("retentionpolicy", run, cache, shutdown).await;
}

/// Runs the ClusterRetentionPolicy controller until `shutdown`.
pub async fn run_cluster(
    pctx: Arc<PolicyContext>,
    shutdown: impl std::future::Future<Output = ()> + Clone + Send + Sync + 'static,
) {
    let api: Api<ClusterRetentionPolicy> = Api::all(pctx.ctx.client.clone());
    let secrets: Api<PartialObjectMeta<Secret>> = Api::all(pctx.ctx.client.clone());
    let controller = Controller::new(api, watcher::Config::default());
    let cache = controller.store();
    let store = cache.clone();
    let run = controller
        // A Secret changed: every cluster policy the registry refused looks again. Only the
        // Secrets' metadata is watched.
        .watches(
            secrets,
            watcher::Config::default(),
            move |_: PartialObjectMeta<Secret>| {
                store
                    .state()
                    .into_iter()
                    .filter(|p| credentials::refused(p.status.as_ref()))
                    .map(|p| ObjectRef::from_obj(&*p))
                    .collect::<Vec<_>>()
            },
        )
        .graceful_shutdown_on(shutdown.clone())
        .run(reconcile_cluster, error_policy_cluster, pctx)
        .for_each(|_| async {});
    run_controller("clusterretentionpolicy", run, cache, shutdown).await;
}
