//! The Registry reconciler: dereference → validate → build → apply → status.
//!
//! Managed registries get their ConfigMap, Services and StatefulSet applied server-side with one
//! field manager and a controller owner reference; the config hash on the pod template rolls zot
//! when the config changes. External registries only get credentials resolved and health
//! checked. Status is patched only when it changed (timestamps and latency aside).
//!
//! The phases, each in its file: [`dereference`] (the Secrets the pods mount), [`validate`]
//! (the Kubernetes-side checks, the zot release, what is wired into zot), build ([`builders`],
//! rendering with `zot::render`), [`storage`] (changes a StatefulSet cannot take),
//! [`apply`] (server-side, with owner references), [`health`] and [`status`]; the status
//! write, timer, metrics and error policy are the shared [`reconcile`](super::reconcile).

pub mod address;
mod apply;
pub mod builders;
pub(crate) mod dereference;
mod health;
mod status;
pub mod storage;
pub mod validate;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kube::api::{Api, PartialObjectMeta};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use tracing::info;

use self::apply::{apply_owned, owner_reference};
use self::builders::{desired_registry, set_secrets_hash, RegistryRef};
use self::dereference::{missing_secret, secret_file_digest};
use self::health::{check_health, unhealthy, CredentialsCheck};
use self::storage::storage_change;
use crate::api::registry::RegistryStatus;
use crate::api::Registry;
use crate::controller::conditions::{Health, Reason};
use crate::controller::context::Context;
use crate::controller::error::ControllerError;
use crate::controller::lockdown::secret_uses;
use crate::controller::reconcile::{self, timed, write_status_with, Object, Write};
use crate::controller::target;

const CONTROLLER: &str = "registry";

/// Reconciles one Registry.
pub async fn reconcile(
    registry: Arc<Registry>,
    ctx: Arc<Context>,
) -> Result<Action, ControllerError> {
    let result = timed(&ctx, CONTROLLER, reconcile_inner(&registry, &ctx)).await;
    if result.is_ok() {
        ctx.reset_backoff(&object_key(&registry));
    }
    result
}

fn object_key(registry: &Registry) -> String {
    format!(
        "registry/{}/{}",
        registry.namespace().unwrap_or_default(),
        registry.name_any()
    )
}

async fn reconcile_inner(registry: &Registry, ctx: &Context) -> Result<Action, ControllerError> {
    let now = Timestamp::now();
    let generation = registry.metadata.generation;
    let previous = registry.status.clone().unwrap_or_default();
    let mut status = RegistryStatus {
        observed_generation: generation,
        ..previous.clone()
    };

    let mut credentials = None;
    let admitted = match dereference::admit(ctx, registry).await {
        Ok(()) => None,
        Err(ControllerError::NotAllowed(refusal)) => Some((
            Health::stalled(refusal.reason(), refusal.to_string()),
            ctx.settings.health_interval,
        )),
        Err(e) => return Err(e),
    };
    let (mut health, requeue) = if let Some(refused) = admitted {
        // The lockdown refuses it: nothing is read, applied or checked.
        refused
    } else if registry.spec.is_managed() {
        reconcile_managed(registry, ctx, &mut status, &mut credentials).await?
    } else {
        reconcile_external(registry, ctx, &mut status, &mut credentials).await?
    };
    // Ready reflects the credentials: a registry that rejects them is not ready for anything
    // the operator does with it.
    if let Some(refused) = credentials.as_ref().and_then(|c| c.refused.clone()) {
        if matches!(health, Health::Ready { .. }) {
            health = refused;
        }
    }
    let extra: Vec<_> = credentials.into_iter().map(|c| c.condition).collect();
    let object = Object {
        api: Api::<Registry>::namespaced(
            ctx.client.clone(),
            &registry.namespace().unwrap_or_default(),
        ),
        name: &registry.name_any(),
        reference: &registry.object_ref(&()),
        controller: CONTROLLER,
        generation,
    };
    let write = Write {
        always: registry.status.is_none(),
        quiet: false,
    };
    write_status_with(ctx, object, &previous, status, &health, &extra, now, write).await?;
    Ok(Action::requeue(requeue))
}

/// Renders and applies what a managed Registry owns; returns the condition to report.
async fn reconcile_managed(
    registry: &Registry,
    ctx: &Context,
    status: &mut RegistryStatus,
    credentials: &mut Option<CredentialsCheck>,
) -> Result<(Health, Duration), ControllerError> {
    let name = registry.name_any();
    let namespace = registry.namespace().unwrap_or_default();
    // Dereference: the Secrets the pods mount must exist, or zot would not start.
    if let Some(msg) = missing_secret(ctx, registry).await? {
        return Ok((
            Health::reconciling(Reason::SecretNotFound, msg),
            ctx.settings.backoff_base * 6,
        ));
    }
    // The files zot reads from Secrets at startup must hold what it needs; their digest on
    // the pod template rolls zot when one is rotated.
    let secrets_digest = match secret_file_digest(ctx, registry).await? {
        Ok(digest) => digest,
        Err(health) => {
            let wait = if matches!(health, Health::Stalled { .. }) {
                ctx.settings.health_interval
            } else {
                ctx.settings.backoff_base * 6
            };
            return Ok((health, wait));
        }
    };
    // Validate and build: a spec that fails never reaches zot.
    let desired = match desired_registry(
        RegistryRef {
            name: &name,
            namespace: &namespace,
            spec: &registry.spec,
            cluster_domain: &ctx.settings.cluster_domain,
        },
        None,
    ) {
        Ok(d) => d,
        Err(errors) => {
            let message = errors.lines().join("; ");
            return Ok((
                Health::stalled(Reason::InvalidSpec, message),
                ctx.settings.health_interval,
            ));
        }
    };
    let owner = owner_reference(registry)?;
    let mut objects = desired.objects;
    if let Some(digest) = &secrets_digest {
        set_secrets_hash(&mut objects.stateful_set, digest);
    }
    // A StatefulSet's volume claim templates are immutable: a storage change would be refused
    // (422) after the ConfigMap was applied. Nothing is applied; the condition says how to
    // migrate.
    let sts_api: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &namespace);
    if let Some(existing) = sts_api.get_opt(&name).await? {
        if let Some(change) = storage_change(&existing, &objects.stateful_set) {
            return Ok((
                Health::stalled(
                    Reason::StorageChangeRefused,
                    change.message(&namespace, &name),
                ),
                ctx.settings.health_interval,
            ));
        }
    }
    // Apply. An object the API server refuses as invalid stalls the Registry with the
    // server's message.
    let sts: StatefulSet = match apply_owned(ctx, &namespace, objects, &owner).await {
        Ok(sts) => sts,
        Err(e @ ControllerError::Rejected { .. }) => {
            return Ok((
                Health::stalled(e.reason(), e.to_string()),
                ctx.settings.health_interval,
            ))
        }
        Err(e) => return Err(e),
    };

    let want = sts.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let sts_status = sts.status.clone().unwrap_or_default();
    let ready = sts_status.ready_replicas.unwrap_or(0);
    let updated = sts_status.updated_replicas.unwrap_or(0);
    let observed = sts_status.observed_generation == sts.metadata.generation;
    status.url = Some(target::managed_url(registry, &ctx.settings.cluster_domain));
    status.config_hash = Some(desired.config.hash.clone());
    status.ready_replicas = Some(ready);
    status.version = Some(desired.version.to_string());

    if !(observed && ready >= want && updated >= want) {
        let msg = format!(
            "rolling out zot {}: {ready}/{want} replicas ready, {updated}/{want} updated",
            desired.version
        );
        return Ok((
            Health::reconciling(Reason::RollingOut, msg),
            Duration::from_secs(10),
        ));
    }
    let health = check_health(registry, ctx, status, credentials).await;
    Ok(match health {
        Ok(()) => (
            Health::ready(
                Reason::Available,
                format!(
                    "zot {} serving with {ready}/{want} replicas",
                    desired.version
                ),
            ),
            ctx.settings.health_interval,
        ),
        Err(e) => (unhealthy(&e), ctx.settings.health_interval),
    })
}

/// Resolves credentials of an external Registry and checks its health.
async fn reconcile_external(
    registry: &Registry,
    ctx: &Context,
    status: &mut RegistryStatus,
    credentials: &mut Option<CredentialsCheck>,
) -> Result<(Health, Duration), ControllerError> {
    if let Some(ext) = &registry.spec.external {
        // as written, but never with the user info a URL may carry
        status.url = Some(crate::oci::redact::display_url(&ext.url));
    }
    status.config_hash = None;
    status.ready_replicas = None;
    match check_health(registry, ctx, status, credentials).await {
        Ok(()) => Ok((
            Health::ready(Reason::Available, "registry answers /v2/"),
            ctx.settings.health_interval,
        )),
        Err(e) => Ok((unhealthy(&e), ctx.settings.health_interval)),
    }
}

/// Requeues after an error: permanent errors wait for a change, transient ones back off.
pub fn error_policy(registry: Arc<Registry>, error: &ControllerError, ctx: Arc<Context>) -> Action {
    reconcile::error_policy(&ctx, CONTROLLER, &object_key(&registry), error)
}

/// Runs the Registry controller until `shutdown` resolves.
pub async fn run(
    ctx: Arc<Context>,
    namespace: Option<String>,
    shutdown: impl std::future::Future<Output = ()> + Clone + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    let (registries, configmaps, services, statefulsets, secrets) = match &namespace {
        Some(ns) => (
            Api::<Registry>::namespaced(client.clone(), ns),
            Api::<ConfigMap>::namespaced(client.clone(), ns),
            Api::<Service>::namespaced(client.clone(), ns),
            Api::<StatefulSet>::namespaced(client.clone(), ns),
            Api::<PartialObjectMeta<Secret>>::namespaced(client.clone(), ns),
        ),
        None => (
            Api::all(client.clone()),
            Api::all(client.clone()),
            Api::all(client.clone()),
            Api::all(client.clone()),
            Api::all(client.clone()),
        ),
    };
    let owned = watcher::Config::default().labels("app.kubernetes.io/managed-by=registry-operator");
    let controller = Controller::new(registries, watcher::Config::default());
    let store = controller.store();
    let cache = store.clone();
    let run = controller
        .owns(configmaps, owned.clone())
        .owns(services, owned.clone())
        .owns(statefulsets, owned)
        // A Secret a Registry names changed (created late, rotated, relabelled): look again. Only
        // the Secrets' metadata is watched: their names say which Registries to look at.
        .watches(
            secrets,
            watcher::Config::default(),
            move |secret: PartialObjectMeta<Secret>| {
                let ns = secret.namespace().unwrap_or_default();
                let name = secret.name_any();
                store
                    .state()
                    .into_iter()
                    .filter(|r| r.namespace().as_deref() == Some(ns.as_str()))
                    .filter(|r| secret_uses(&r.spec).iter().any(|u| u.name == name))
                    .map(|r| ObjectRef::from_obj(&*r))
                    .collect::<Vec<_>>()
            },
        )
        .graceful_shutdown_on(shutdown.clone())
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Ok((obj, _)) = result {
                info!(registry = %format!("{}/{}", obj.namespace.unwrap_or_default(), obj.name), "reconciled");
            }
        });
    reconcile::run_controller(CONTROLLER, run, cache, shutdown).await;
}
