//! References to Secrets and the Go duration pattern: plain serde types shared by every
//! resource, without a Kubernetes client or k8s-openapi (the zot renderer reads them too).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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
