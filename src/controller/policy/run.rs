//! The run: one lock per registry endpoint, a plan on every registry, the run's limits, then
//! execution.

use std::collections::HashMap;
use std::sync::Arc;

use jiff::Timestamp;
use kube::api::{Api, ListParams};
use kube::ResourceExt;
use tokio::sync::Mutex as AsyncMutex;

use super::summary::RegistryRun;
use super::vetoes::other_policies;
use super::view::PolicyView;
use super::PolicyContext;
use crate::api::retention::PolicyMode;
use crate::api::Registry;
use crate::controller::access::denied_message;
use crate::controller::endpoint::endpoint;
use crate::controller::error::{reason_of_denial, ControllerError};
use crate::controller::target::{self, CredentialSource};
use crate::engine::{plan_policy, Hold, InUseSource, ReadyToExecute, RunOptions, RunResult};
use crate::oci::RegistryClient;
use crate::retention::{check_limits, LimitBreach, Policy};

/// Serialises runs per registry endpoint (see [`endpoint`]) across both policy controllers,
/// whichever Registry objects name it.
#[derive(Default)]
pub struct RunLocks(std::sync::Mutex<HashMap<String, Arc<AsyncMutex<()>>>>);

impl RunLocks {
    pub(super) fn lock_for(&self, registry: &str) -> Arc<AsyncMutex<()>> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(registry.to_string()).or_default().clone()
    }
}

/// The run proper: every endpoint's lock for the whole run, a plan on every registry (reads
/// only), the run's limits checked on all the plans together, then each plan executed — or
/// held, when the limits stop the run as a whole. One actual registry is run once, whichever
/// of the Registry objects naming it the policy selected. Returns each registry's result
/// (`namespace/name` first) and the breach that held them all.
#[allow(clippy::type_complexity)]
pub(super) async fn run_on_registries(
    view: &PolicyView,
    policy: &Policy,
    registries: Vec<Registry>,
    pctx: &PolicyContext,
    now: Timestamp,
) -> Result<(Vec<RegistryRun>, Option<(LimitBreach, String)>), ControllerError> {
    let ctx = &pctx.ctx;
    // Every Registry object: several may name one actual registry, which is what runs are
    // serialised on and what other policies' keeps veto on.
    let all_registries = Api::<Registry>::all(ctx.client.clone())
        .list(&ListParams::default())
        .await?
        .items;
    // One actual registry is run once, whichever of the Registry objects naming it the
    // policy selected (the first by namespace/name): twice would send every request twice and
    // count its deletions twice against the limits.
    let mut seen = std::collections::BTreeSet::new();
    let registries: Vec<Registry> = registries
        .into_iter()
        .filter(|r| seen.insert(endpoint(r, &ctx.settings.cluster_domain)))
        .collect();
    let endpoints: Vec<String> = registries
        .iter()
        .map(|r| endpoint(r, &ctx.settings.cluster_domain))
        .collect();
    // Every endpoint's lock for the whole run, taken in one global order (sorted) so that runs
    // holding several cannot deadlock.
    let mut keys = endpoints.clone();
    keys.sort();
    keys.dedup();
    let mut guards = Vec::with_capacity(keys.len());
    for key in &keys {
        guards.push(pctx.locks.lock_for(key).lock_owned().await);
    }
    // Plan every registry before executing anything: the limits hold for the run as a whole.
    let mut planned = Vec::with_capacity(registries.len());
    for (registry, key) in registries.iter().zip(&endpoints) {
        // Boxed: the run's future is large, and erasing its type keeps the reconciler's future
        // provably Send (rustc cannot see through it otherwise).
        let plan: futures::future::BoxFuture<'_, _> = Box::pin(plan_on_registry(
            view,
            policy,
            registry,
            key,
            &all_registries,
            pctx,
            now,
        ));
        planned.push(plan.await);
    }
    let held = run_limit_breach(view, &registries, &planned);
    let mut results = Vec::with_capacity(planned.len());
    for (registry, p) in registries.iter().zip(planned) {
        let reg_key = format!(
            "{}/{}",
            registry.namespace().unwrap_or_default(),
            registry.name_any()
        );
        let (result, source) = match p {
            Ok(ready) => {
                let source = ready.source.clone();
                let run: futures::future::BoxFuture<'_, _> =
                    Box::pin(ready.execute(held.as_ref().map(|(b, _)| *b)));
                (run.await, source)
            }
            Err(e) => (Err(e), None),
        };
        // A run that read what it could but was refused a repository or a deletion: the
        // condition names the Registry, the Secret and what was refused.
        let access = result
            .as_ref()
            .ok()
            .and_then(|r| r.denial())
            .map(|(d, detail)| {
                (
                    reason_of_denial(d),
                    denied_message(d, &reg_key, source.as_ref(), &detail),
                )
            });
        results.push((reg_key, result, access));
    }
    drop(guards);
    Ok((results, held))
}

/// One registry's part of a run, planned and not executed yet: the engine's plan with the
/// client and options it is to be executed with.
pub(super) struct RegistryPlan {
    pub(super) planned: ReadyToExecute,
    pub(super) client: RegistryClient,
    pub(super) options: RunOptions,
    /// Where the Registry's credentials come from (for messages about refusals).
    pub(super) source: Option<CredentialSource>,
}

impl RegistryPlan {
    /// Executes the plan, or nothing when `held` (a breach of the run's limits) stops the run.
    pub(super) async fn execute(
        self,
        held: Option<LimitBreach>,
    ) -> Result<RunResult, ControllerError> {
        let result = match held {
            Some(b) => Ok(self.planned.hold(b)),
            None => self.planned.execute(&self.client, &self.options).await,
        };
        result.map_err(ControllerError::Run)
    }
}

pub(super) async fn plan_on_registry(
    view: &PolicyView,
    policy: &Policy,
    registry: &Registry,
    endpoint_key: &str,
    all_registries: &[Registry],
    pctx: &PolicyContext,
    now: Timestamp,
) -> Result<RegistryPlan, ControllerError> {
    let ctx = &pctx.ctx;
    let t = target::resolve_with(ctx, registry).await?;
    let client = t.client()?;
    let others = other_policies(view, registry, endpoint_key, all_registries, pctx).await?;
    // Read when it matters (after the registry was read, and before each repository's
    // deletions), not now: reading a large registry takes minutes.
    let in_use_source: Option<InUseSource> = view.rules.protects_in_use().then(|| {
        let index = pctx.in_use.clone();
        // Every host name any Registry object for this endpoint declares (its aliases too).
        let domain = &ctx.settings.cluster_domain;
        let mut hosts = t.hosts.clone();
        for same in all_registries
            .iter()
            .filter(|r| endpoint(r, domain) == endpoint_key)
        {
            hosts.extend(target::hosts(same, domain));
        }
        hosts.sort();
        hosts.dedup();
        let source: InUseSource = Arc::new(move |in_scope: &dyn Fn(&str) -> bool| {
            if !index.synced() {
                return Err("the operator is listing Pods and workloads again".to_string());
            }
            Ok(index.for_hosts(&hosts, in_scope).to_in_use())
        });
        source
    });
    // Repository by repository: the run holds its deletions and counts, not the registry.
    let mut options = RunOptions {
        others,
        in_use_source,
        hold: Hold::Deletions,
        ..RunOptions::default()
    };
    options.execute.fence = ctx.fence.clone();
    let planned = plan_policy(&client, policy, &options, now).await;
    if let Some(ages) = &ctx.settings.registry_client.age_cache {
        ctx.metrics
            .age_cache_configs
            .set(i64::try_from(ages.len()).unwrap_or(i64::MAX));
    }
    match planned {
        Ok(planned) => Ok(RegistryPlan {
            planned,
            client,
            options,
            source: t.credentials_source,
        }),
        Err(e) => {
            // Counted whether or not the run succeeded: the requests were sent either way.
            let registry_key = format!(
                "{}/{}",
                registry.namespace().unwrap_or_default(),
                registry.name_any()
            );
            Err(match e.denial() {
                Some(denial) => ControllerError::Denied {
                    denial,
                    message: denied_message(
                        denial,
                        &registry_key,
                        t.credentials_source.as_ref(),
                        &e.to_string(),
                    ),
                },
                None => ControllerError::Run(e),
            })
        }
    }
}

/// The breach that stops an Enforce run over several registries as a whole, with the message
/// for its status: one registry's plan breaching the limits, or all of them together (the
/// count, and the percentage of every tag in scope). A run over one registry is checked by
/// the engine as it executes.
pub(super) fn run_limit_breach(
    view: &PolicyView,
    registries: &[Registry],
    planned: &[Result<RegistryPlan, ControllerError>],
) -> Option<(LimitBreach, String)> {
    let plans: Vec<(&Registry, &RegistryPlan)> = registries
        .iter()
        .zip(planned)
        .filter_map(|(r, p)| p.as_ref().ok().map(|p| (r, p)))
        .collect();
    if view.rules.mode != PolicyMode::Enforce || plans.len() < 2 {
        return None;
    }
    let n = plans.len();
    let head = format!("nothing deleted on any of the {n} registries of this run");
    let deletions = plans
        .iter()
        .map(|(_, p)| p.planned.plan.counts.deletions)
        .sum();
    let in_scope = plans.iter().map(|(_, p)| p.planned.plan.counts.tags).sum();
    let limits = plans[0].1.planned.plan.limits;
    if let Err(b) = check_limits(limits, deletions, in_scope) {
        let what = match b {
            LimitBreach::MaxDeletionsPerRun { planned, limit } => format!(
                "together they would delete {planned} tags, more than limits.maxDeletionsPerRun ({limit}), which counts every registry of a run"
            ),
            LimitBreach::MaxDeletionPercent {
                planned,
                in_scope,
                percent,
            } => format!(
                "together they would delete {planned} of {in_scope} tags in scope, more than limits.maxDeletionPercent ({percent}%), which counts every registry of a run"
            ),
        };
        return Some((b, format!("{head}: {what}")));
    }
    plans.iter().find_map(|(r, p)| {
        let b = p.planned.plan.check_blast_radius().err()?;
        let reg_key = format!("{}/{}", r.namespace().unwrap_or_default(), r.name_any());
        Some((b, format!("{head}: {reg_key}: {b}")))
    })
}
