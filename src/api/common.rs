//! Types shared by the custom resources: references, conditions, durations.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The API group of every resource this operator serves.
pub const GROUP: &str = "registry-operator.dev";
/// The API version of the custom resources.
pub const VERSION: &str = "v1alpha1";
/// The `kubectl get <category>` name that lists every resource of the operator.
pub const CATEGORY: &str = "registry-operator";

/// Pattern of a Go duration string as zot and the operator accept it (`90s`, `1h30m`, `720h`).
/// Go's `time.ParseDuration` has no `d` or `w` unit, so neither does this.
pub const GO_DURATION_PATTERN: &str = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$";

/// A reference to one key of a Secret in the same namespace as the referring object.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret, in the namespace of the referring object.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key inside the Secret's data. Each field that takes a SecretKeyRef documents its default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// A reference to a whole Secret in the same namespace as the referring object.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    /// Name of the Secret, in the namespace of the referring object.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// kstatus condition types used by every resource of the operator.
pub mod condition {
    /// The resource is fully reconciled and serving / running as declared.
    pub const READY: &str = "Ready";
    /// The operator is working towards the declared state.
    pub const RECONCILING: &str = "Reconciling";
    /// The operator cannot make progress without a change by a person.
    pub const STALLED: &str = "Stalled";
}

/// Finds a condition by type.
pub fn find_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}
