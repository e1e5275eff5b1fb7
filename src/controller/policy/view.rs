//! A policy of either kind, as the shared reconcile sees it.

use std::collections::BTreeMap;

use crate::controller::reconcile::Object;
use kube::api::Api;
use kube::{Resource, ResourceExt};

use crate::api::retention::{
    ClusterRetentionPolicy, RetentionPolicy, RetentionPolicyStatus, RetentionRules,
};

/// Which kind of policy, with what it needs to find its registries.
#[derive(Clone)]
pub(super) enum Kind {
    Namespaced {
        namespace: String,
        registry: String,
    },
    Cluster {
        registries: k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
        namespaces: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,
    },
}

/// A policy of either kind, as the shared reconcile sees it.
pub(super) struct PolicyView {
    pub(super) kind: Kind,
    /// `namespace/name` or `name`: how reasons and other policies refer to it.
    pub(super) display: String,
    pub(super) name: String,
    pub(super) generation: Option<i64>,
    pub(super) annotations: BTreeMap<String, String>,
    pub(super) rules: RetentionRules,
    pub(super) status: RetentionPolicyStatus,
    pub(super) object_ref: k8s_openapi::api::core::v1::ObjectReference,
}

impl PolicyView {
    /// The policy as the status step writes it, through `api`.
    pub(super) fn object<K>(&self, api: Api<K>) -> Object<'_, K> {
        Object {
            api,
            name: &self.name,
            reference: &self.object_ref,
            controller: self.controller(),
            generation: self.generation,
        }
    }

    pub(super) fn controller(&self) -> &'static str {
        match self.kind {
            Kind::Namespaced { .. } => "retentionpolicy",
            Kind::Cluster { .. } => "clusterretentionpolicy",
        }
    }
}

pub(super) fn namespaced_view(p: &RetentionPolicy) -> PolicyView {
    let namespace = p.namespace().unwrap_or_default();
    let kind = Kind::Namespaced {
        namespace: namespace.clone(),
        registry: p.spec.registry_ref.name.clone(),
    };
    let display = format!("{namespace}/{}", p.name_any());
    view_of(p, kind, display, &p.spec.rules, p.status.as_ref())
}

pub(super) fn cluster_view(p: &ClusterRetentionPolicy) -> PolicyView {
    let kind = Kind::Cluster {
        registries: p.spec.registry_selector.clone(),
        namespaces: p.spec.namespace_selector.clone(),
    };
    view_of(p, kind, p.name_any(), &p.spec.rules, p.status.as_ref())
}

/// What either kind's view takes from the object alike.
fn view_of<K: Resource<DynamicType = ()>>(
    p: &K,
    kind: Kind,
    display: String,
    rules: &RetentionRules,
    status: Option<&RetentionPolicyStatus>,
) -> PolicyView {
    PolicyView {
        kind,
        display,
        name: p.name_any(),
        generation: p.meta().generation,
        annotations: p.annotations().clone(),
        rules: rules.clone(),
        status: status.cloned().unwrap_or_default(),
        object_ref: p.object_ref(&()),
    }
}
