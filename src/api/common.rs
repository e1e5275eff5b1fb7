//! Types shared by the custom resources: references, conditions, durations.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

/// The API group of every resource this operator serves.
pub const GROUP: &str = "registry-operator.dev";
/// The API version of the custom resources.
pub const VERSION: &str = "v1alpha1";
/// The `kubectl get <category>` name that lists every resource of the operator.
pub const CATEGORY: &str = "registry-operator";

pub use super::refs::{SecretKeyRef, SecretRef, GO_DURATION_PATTERN};

/// kstatus condition types used by every resource of the operator.
pub mod condition {
    /// Whether the registry accepts the credentials the operator was given (a Registry that
    /// declares credentials only): the result of an authenticated request, not of `GET /v2/`.
    pub const CREDENTIALS_ACCEPTED: &str = "CredentialsAccepted";
    /// The resource is fully reconciled and serving / running as declared.
    pub const READY: &str = "Ready";
    /// The operator is working towards the declared state.
    pub const RECONCILING: &str = "Reconciling";
    /// The operator cannot make progress without a change by a person.
    pub const STALLED: &str = "Stalled";

    /// Every reason the operator writes into a condition, an Event or a metric label: written
    /// here once, PascalCase as kstatus wants.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub enum Reason {
        /// A registry serves (managed: every replica ready and updated).
        Available,
        /// A managed registry's pods are rolling out.
        RollingOut,
        /// A Secret the object names does not exist (yet).
        SecretNotFound,
        /// A Secret the object names lacks a key or holds something unusable.
        SecretInvalid,
        /// The spec is invalid.
        InvalidSpec,
        /// The API server refused an object the operator applied as invalid.
        ApplyRejected,
        /// A storage change a StatefulSet cannot take in place.
        StorageChangeRefused,
        /// The Registry a policy names does not exist.
        RegistryNotFound,
        /// The registry could not be reached or answered with an error.
        RegistryUnreachable,
        /// The Kubernetes API failed.
        KubeApiError,
        /// Something inside the operator failed (serialising an object).
        InternalError,
        /// A policy waits for the index of images Pods run.
        WaitingForInUseIndex,
        /// A policy waits for the caches of the other policies.
        WaitingForCaches,
        /// A policy has not run yet.
        Pending,
        /// A policy is suspended (`spec.suspend`).
        Suspended,
        /// A Plan run finished.
        Planned,
        /// An Enforce run finished.
        Enforced,
        /// A run would delete more than its limits allow: nothing was deleted.
        BlastRadiusExceeded,
        /// This replica no longer leads: nothing more is deleted.
        NotLeader,
        /// A plan made in Plan mode is not executed.
        PlanMode,
        /// The registry accepts the operator's credentials (and lets it list the catalog).
        CredentialsAccepted,
        /// The registry accepts the operator's credentials but refuses it the catalog.
        CatalogRefused,
        /// The registry rejects the operator's credentials (401): wrong, expired or revoked.
        CredentialsRejected,
        /// The registry wants credentials and the operator has none for it.
        CredentialsRequired,
        /// The registry knows the account and refuses it what was asked (403): the catalog,
        /// a repository, a deletion.
        PermissionDenied,
        /// The registry sent the operator to a token realm not trusted with the credentials:
        /// none were sent.
        UntrustedTokenRealm,
        /// The registry answered the authenticated request without asking for credentials:
        /// none were sent, so whether it accepts them is not known.
        CredentialsNotRequested,
        /// The Registry's URL points where the operator may not connect (a cloud metadata or
        /// link-local address, loopback when not allowed, another namespace's Service).
        AddressNotAllowed,
        /// The operator's lockdown does not allow the Registry's image (`--allowed-image`).
        ImageNotAllowed,
        /// The operator's lockdown does not allow skipping TLS verification.
        InsecureTlsNotAllowed,
        /// The operator's lockdown does not allow credentials over plain http to a host
        /// outside the cluster.
        PlainHttpCredentialsNotAllowed,
        /// A Secret the Registry names lacks the label the operator's lockdown requires.
        SecretNotAllowed,
    }

    impl Reason {
        /// The PascalCase string.
        pub const fn as_str(self) -> &'static str {
            match self {
                Reason::Available => "Available",
                Reason::RollingOut => "RollingOut",
                Reason::SecretNotFound => "SecretNotFound",
                Reason::SecretInvalid => "SecretInvalid",
                Reason::InvalidSpec => "InvalidSpec",
                Reason::ApplyRejected => "ApplyRejected",
                Reason::StorageChangeRefused => "StorageChangeRefused",
                Reason::RegistryNotFound => "RegistryNotFound",
                Reason::RegistryUnreachable => "RegistryUnreachable",
                Reason::KubeApiError => "KubeApiError",
                Reason::InternalError => "InternalError",
                Reason::WaitingForInUseIndex => "WaitingForInUseIndex",
                Reason::WaitingForCaches => "WaitingForCaches",
                Reason::Pending => "Pending",
                Reason::Suspended => "Suspended",
                Reason::Planned => "Planned",
                Reason::Enforced => "Enforced",
                Reason::BlastRadiusExceeded => "BlastRadiusExceeded",
                Reason::NotLeader => "NotLeader",
                Reason::PlanMode => "PlanMode",
                Reason::CredentialsAccepted => "CredentialsAccepted",
                Reason::CatalogRefused => "CatalogRefused",
                Reason::CredentialsRejected => "CredentialsRejected",
                Reason::CredentialsRequired => "CredentialsRequired",
                Reason::PermissionDenied => "PermissionDenied",
                Reason::UntrustedTokenRealm => "UntrustedTokenRealm",
                Reason::CredentialsNotRequested => "CredentialsNotRequested",
                Reason::AddressNotAllowed => "AddressNotAllowed",
                Reason::ImageNotAllowed => "ImageNotAllowed",
                Reason::InsecureTlsNotAllowed => "InsecureTLSNotAllowed",
                Reason::PlainHttpCredentialsNotAllowed => "PlainHTTPCredentialsNotAllowed",
                Reason::SecretNotAllowed => "SecretNotAllowed",
            }
        }
    }

    impl AsRef<str> for Reason {
        fn as_ref(&self) -> &str {
            self.as_str()
        }
    }

    impl PartialEq<&str> for Reason {
        fn eq(&self, other: &&str) -> bool {
            self.as_str() == *other
        }
    }

    impl std::fmt::Display for Reason {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.as_str())
        }
    }
}

/// Finds a condition by type.
pub fn find_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}
