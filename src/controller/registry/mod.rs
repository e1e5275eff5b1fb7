//! The Registry reconciler: dereference → validate → build → apply → status.
//!
//! Managed registries get their ConfigMap, Services and StatefulSet applied server-side with one
//! field manager and a controller owner reference; the config hash on the pod template rolls zot
//! when the config changes. External registries only get credentials resolved and health
//! checked. Status is patched only when it changed (timestamps and latency aside).

pub mod builders;
pub mod storage;
pub mod zot_input;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::{info, warn};

use self::builders::{desired_registry, RegistryRef};
use self::storage::{storage_change, STORAGE_CHANGE_REFUSED};
use crate::api::registry::{RegistryHealth, RegistryStatus};
use crate::api::Registry;
use crate::controller::conditions::{
    conditions_for, differ_ignoring_timestamps, Health, ROLLING_OUT,
};
use crate::controller::context::{Context, FIELD_MANAGER};
use crate::controller::error::ControllerError;
use crate::controller::metrics::{ControllerLabels, FailureLabels};
use crate::controller::status_patch::status_patch;
use crate::controller::target;

const CONTROLLER: &str = "registry";
/// Health and latency are refreshed in status at least this often even when nothing changed.
const HEALTH_REFRESH: Duration = Duration::from_secs(600);

/// Reconciles one Registry.
pub async fn reconcile(
    registry: Arc<Registry>,
    ctx: Arc<Context>,
) -> Result<Action, ControllerError> {
    let labels = ControllerLabels {
        controller: CONTROLLER,
    };
    ctx.metrics.reconciles.get_or_create(&labels).inc();
    let started = std::time::Instant::now();
    let key = object_key(&registry);
    let result = reconcile_inner(&registry, &ctx).await;
    ctx.metrics
        .durations
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    if result.is_ok() {
        ctx.reset_backoff(&key);
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

    let (health_state, requeue) = if registry.spec.is_managed() {
        reconcile_managed(registry, ctx, &mut status).await?
    } else {
        reconcile_external(registry, ctx, &mut status).await?
    };
    status.conditions = conditions_for(&previous.conditions, &health_state, generation, now);
    let changed = differ_ignoring_timestamps(&previous.conditions, &status.conditions);
    write_status_if_changed(registry, ctx, &previous, status).await?;
    // A reconcile that ends in a failure condition is a failed reconcile, like one that
    // returns an error (counted in error_policy): an alert on rising failures sees both.
    if let Some(reason) = health_state.failure_reason() {
        // One Event per problem: when it appears or changes, not on every health check.
        if changed {
            ctx.publish(
                &registry.object_ref(&()),
                EventType::Warning,
                reason,
                "Reconcile",
                health_state.message(),
            )
            .await;
        }
        ctx.metrics
            .failures
            .get_or_create(&FailureLabels {
                controller: CONTROLLER,
                reason: reason.to_string(),
            })
            .inc();
    }
    Ok(Action::requeue(requeue))
}

/// Renders and applies what a managed Registry owns; returns the condition to report.
async fn reconcile_managed(
    registry: &Registry,
    ctx: &Context,
    status: &mut RegistryStatus,
) -> Result<(Health, Duration), ControllerError> {
    let name = registry.name_any();
    let namespace = registry.namespace().unwrap_or_default();
    // Dereference: the Secrets the pods mount must exist, or zot would not start.
    for secret in referenced_secrets(registry) {
        let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
        if api.get_metadata_opt(&secret).await?.is_none() {
            let msg = format!("waiting for Secret {namespace}/{secret}, which the registry mounts");
            return Ok((
                Health::reconciling("SecretNotFound", msg),
                ctx.settings.backoff_base * 6,
            ));
        }
    }
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
                Health::stalled("InvalidSpec", message),
                ctx.settings.health_interval,
            ));
        }
    };
    let owner = owner_reference(registry)?;
    let objects = desired.objects;
    // A StatefulSet's volume claim templates are immutable: a storage change would be refused
    // (422) after the ConfigMap was applied. Nothing is applied; the condition says how to
    // migrate.
    let sts_api: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &namespace);
    if let Some(existing) = sts_api.get_opt(&name).await? {
        if let Some(change) = storage_change(&existing, &objects.stateful_set) {
            return Ok((
                Health::stalled(STORAGE_CHANGE_REFUSED, change.message(&namespace, &name)),
                ctx.settings.health_interval,
            ));
        }
    }
    // Apply: the ConfigMap first, so pods never start on a config that is not there yet. An
    // object the API server refuses as invalid stalls the Registry with the server's message.
    let applied = async {
        apply(ctx, &namespace, with_owner(objects.config_map, &owner)).await?;
        apply(
            ctx,
            &namespace,
            with_owner(objects.headless_service, &owner),
        )
        .await?;
        apply(ctx, &namespace, with_owner(objects.service, &owner)).await?;
        apply(ctx, &namespace, with_owner(objects.stateful_set, &owner)).await
    }
    .await;
    let sts: StatefulSet = match applied {
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
            Health::reconciling(ROLLING_OUT, msg),
            Duration::from_secs(10),
        ));
    }
    let health = check_health(registry, ctx, status).await;
    Ok(match health {
        Ok(()) => (
            Health::ready(
                "Available",
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
) -> Result<(Health, Duration), ControllerError> {
    if let Some(ext) = &registry.spec.external {
        status.url = Some(ext.url.clone());
    }
    status.config_hash = None;
    status.ready_replicas = None;
    match check_health(registry, ctx, status).await {
        Ok(()) => Ok((
            Health::ready("Available", "registry answers /v2/"),
            ctx.settings.health_interval,
        )),
        Err(e) => Ok((unhealthy(&e), ctx.settings.health_interval)),
    }
}

/// The condition for a failed health check: a malformed Secret needs a person (Stalled);
/// anything else may pass (Reconciling, checked again).
fn unhealthy(e: &ControllerError) -> Health {
    if e.is_permanent() {
        Health::stalled(e.reason(), e.to_string())
    } else {
        Health::reconciling(e.reason(), e.to_string())
    }
}

/// `GET /v2/` through the operator's client; records health in status. Errors resolving the
/// target (missing or malformed credentials Secret) are reported as unhealthy with the reason.
async fn check_health(
    registry: &Registry,
    ctx: &Context,
    status: &mut RegistryStatus,
) -> Result<(), ControllerError> {
    let checked = Time(Timestamp::now());
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
        ctx.metrics.count_requests(&client.stats());
        Ok::<_, ControllerError>((health?, version))
    }
    .await;
    match outcome {
        Ok((health, version)) => {
            if version.is_some() {
                status.version = version;
            }
            status.health = Some(RegistryHealth {
                healthy: true,
                latency_ms: Some(i64::try_from(health.latency.as_millis()).unwrap_or(i64::MAX)),
                last_checked: Some(checked),
                error: None,
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
            Err(e)
        }
    }
}

/// Names of the Secrets a managed registry's pods mount or read.
fn referenced_secrets(registry: &Registry) -> Vec<String> {
    let spec = &registry.spec;
    let mut out = Vec::new();
    if let Some(r) = spec
        .auth
        .as_ref()
        .and_then(|a| a.htpasswd_secret_ref.as_ref())
    {
        out.push(r.name.clone());
    }
    if let Some(r) = &spec.tls {
        out.push(r.name.clone());
    }
    if let Some(r) = spec
        .sync
        .as_ref()
        .and_then(|s| s.credentials_secret_ref.as_ref())
    {
        out.push(r.name.clone());
    }
    if let Some(r) = spec
        .storage
        .as_ref()
        .and_then(|s| s.s3.as_ref())
        .and_then(|s| s.credentials_secret_ref.as_ref())
    {
        out.push(r.name.clone());
    }
    out.sort();
    out.dedup();
    out
}

fn owner_reference(registry: &Registry) -> Result<OwnerReference, ControllerError> {
    registry
        .controller_owner_ref(&())
        .ok_or_else(|| ControllerError::InvalidSpec("the Registry has no uid yet".into()))
}

fn with_owner<K: Resource>(mut object: K, owner: &OwnerReference) -> K {
    object.meta_mut().owner_references = Some(vec![owner.clone()]);
    object
}

/// Server-side apply of one owned object, forcing ownership of the fields the operator sets.
async fn apply<K>(ctx: &Context, namespace: &str, object: K) -> Result<K, ControllerError>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + Serialize
        + DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), namespace);
    let name = object.name_any();
    let params = PatchParams::apply(FIELD_MANAGER).force();
    match api.patch(&name, &params, &Patch::Apply(&object)).await {
        Ok(applied) => Ok(applied),
        Err(kube::Error::Api(status)) if status.code == 422 => Err(ControllerError::Rejected {
            kind: K::kind(&K::DynamicType::default()).into_owned(),
            namespace: namespace.to_string(),
            name,
            message: status.message,
        }),
        Err(e) => Err(e.into()),
    }
}

/// Whether two statuses differ in anything a person would care about (not check timestamps or
/// latency), or the recorded health is older than [`HEALTH_REFRESH`].
fn status_changed(old: &RegistryStatus, new: &RegistryStatus) -> bool {
    let strip = |s: &RegistryStatus| {
        let mut s = s.clone();
        s.conditions = Vec::new();
        if let Some(h) = s.health.as_mut() {
            h.latency_ms = None;
            h.last_checked = None;
        }
        s
    };
    if strip(old) != strip(new) || differ_ignoring_timestamps(&old.conditions, &new.conditions) {
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

async fn write_status_if_changed(
    registry: &Registry,
    ctx: &Context,
    old: &RegistryStatus,
    new: RegistryStatus,
) -> Result<(), ControllerError> {
    if registry.status.is_some() && !status_changed(old, &new) {
        return Ok(());
    }
    let api: Api<Registry> = Api::namespaced(
        ctx.client.clone(),
        &registry.namespace().unwrap_or_default(),
    );
    // Fields that became empty (a cleared health error) are sent as null, or the server
    // would keep them and every later reconcile would see a difference and write again.
    let patch = status_patch(old, &new)?;
    api.patch_status(
        &registry.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(())
}

/// Requeues after an error: permanent errors wait for a change, transient ones back off.
pub fn error_policy(registry: Arc<Registry>, error: &ControllerError, ctx: Arc<Context>) -> Action {
    ctx.metrics
        .failures
        .get_or_create(&FailureLabels {
            controller: CONTROLLER,
            reason: error.reason().into(),
        })
        .inc();
    warn!(registry = %object_key(&registry), reason = error.reason(), error = %error, "reconcile failed");
    if error.is_permanent() {
        Action::await_change()
    } else {
        Action::requeue(ctx.backoff(&object_key(&registry)))
    }
}

/// Runs the Registry controller until `shutdown` resolves.
pub async fn run(
    ctx: Arc<Context>,
    namespace: Option<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    let (registries, configmaps, services, statefulsets, secrets) = match &namespace {
        Some(ns) => (
            Api::<Registry>::namespaced(client.clone(), ns),
            Api::<ConfigMap>::namespaced(client.clone(), ns),
            Api::<Service>::namespaced(client.clone(), ns),
            Api::<StatefulSet>::namespaced(client.clone(), ns),
            Api::<Secret>::namespaced(client.clone(), ns),
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
    controller
        .owns(configmaps, owned.clone())
        .owns(services, owned.clone())
        .owns(statefulsets, owned)
        // A Secret a Registry references changed (created late, rotated): look again.
        .watches(secrets, watcher::Config::default(), move |secret: Secret| {
            let ns = secret.namespace().unwrap_or_default();
            let name = secret.name_any();
            store
                .state()
                .into_iter()
                .filter(|r| r.namespace().as_deref() == Some(ns.as_str()))
                .filter(|r| {
                    referenced_secrets(r).contains(&name)
                        || r.spec.external.as_ref().is_some_and(|e| {
                            e.credentials_secret_ref.as_ref().is_some_and(|s| s.name == name)
                                || e.ca_secret_ref.as_ref().is_some_and(|s| s.name == name)
                        })
                        || r.spec.auth.as_ref().and_then(|a| a.operator_credentials_secret_ref.as_ref()).is_some_and(|s| s.name == name)
                })
                .map(|r| ObjectRef::from_obj(&*r))
                .collect::<Vec<_>>()
        })
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Ok((obj, _)) = result {
                info!(registry = %format!("{}/{}", obj.namespace.unwrap_or_default(), obj.name), "reconciled");
            }
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

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
