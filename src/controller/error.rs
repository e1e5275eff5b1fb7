//! Errors of the reconcilers, each with the PascalCase reason used in conditions, events and
//! metric labels, and whether waiting helps (transient) or a person must act (permanent).

use crate::api::common::condition::Reason;
use crate::engine::{Interruption, RunError};
use crate::oci::{Denial, OciError};

/// What went wrong while reconciling one object.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// The spec is invalid; retrying will not help until it changes.
    #[error("{0}")]
    InvalidSpec(String),
    /// A referenced Secret does not exist (yet).
    #[error("Secret {namespace}/{name} not found")]
    SecretNotFound {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// A referenced Secret lacks a key or holds something unusable.
    #[error("Secret {namespace}/{name}: {message}")]
    SecretInvalid {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// A referenced Registry does not exist.
    #[error("Registry {namespace}/{name} not found")]
    RegistryNotFound {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// The registry could not be reached or answered with an error.
    #[error("registry: {0}")]
    Registry(#[from] OciError),
    /// A retention run could not plan (the registry could not be inventoried), or was stopped
    /// from outside the registry before its first deletion.
    #[error(transparent)]
    Run(#[from] RunError),
    /// The API server refused an object the operator applied as invalid (422): retrying the
    /// same object cannot help.
    #[error("the API server rejected {kind} {namespace}/{name}: {message}")]
    Rejected {
        /// Kind of the object.
        kind: String,
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The API server's message.
        message: String,
    },
    /// The registry refused the operator's account (credentials missing or rejected, or a
    /// right the account lacks); the message names the Registry and the Secret. Only a change
    /// of the Secret or of the account's rights helps.
    #[error("{message}")]
    Denied {
        /// How the registry refused.
        denial: Denial,
        /// For people: which Registry, which Secret and key, what was refused, what to do.
        message: String,
    },
    /// The Registry's URL points where the operator may not connect; nothing was contacted.
    #[error("Registry {namespace}/{name}: {refused}")]
    AddressNotAllowed {
        /// Namespace of the Registry.
        namespace: String,
        /// Name of the Registry.
        name: String,
        /// Which rule refused what.
        refused: crate::controller::registry::address::UrlRefused,
    },
    /// The operator's lockdown refuses what the Registry asks for (an image, insecure TLS,
    /// plain-http credentials, an unlabelled Secret): only a change of the spec or of the
    /// operator's flags helps.
    #[error(transparent)]
    NotAllowed(#[from] crate::controller::lockdown::Refusal),
    /// The Kubernetes API failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// An object could not be serialised.
    #[error("serialising: {0}")]
    Serialize(#[from] serde_json::Error),
}

impl ControllerError {
    /// The reason for conditions, events and metrics. A run stopped from outside the registry
    /// (this replica no longer leads, the images in use cannot be checked) says so; any other
    /// failed run is the registry's.
    pub fn reason(&self) -> Reason {
        match self {
            ControllerError::InvalidSpec(_) => Reason::InvalidSpec,
            ControllerError::SecretNotFound { .. } => Reason::SecretNotFound,
            ControllerError::SecretInvalid { .. } => Reason::SecretInvalid,
            ControllerError::RegistryNotFound { .. } => Reason::RegistryNotFound,
            ControllerError::Registry(OciError::AddressNotAllowed { .. })
            | ControllerError::AddressNotAllowed { .. } => Reason::AddressNotAllowed,
            ControllerError::Registry(e) => e
                .denial()
                .map_or(Reason::RegistryUnreachable, reason_of_denial),
            ControllerError::Run(e) => match (e.interruption(), e.denial()) {
                (Some(i), _) => i.reason(),
                (None, Some(d)) => reason_of_denial(d),
                (None, None) => Reason::RegistryUnreachable,
            },
            ControllerError::Denied { denial, .. } => reason_of_denial(*denial),
            ControllerError::Rejected { .. } => Reason::ApplyRejected,
            ControllerError::NotAllowed(r) => r.reason(),
            ControllerError::Kube(_) => Reason::KubeApiError,
            ControllerError::Serialize(_) => Reason::InternalError,
        }
    }

    /// What stopped a run from outside the registry, when that is what failed.
    pub fn interruption(&self) -> Option<Interruption> {
        match self {
            ControllerError::Run(e) => e.interruption(),
            _ => None,
        }
    }

    /// How the registry refused the operator's account, when that is what failed.
    pub fn denial(&self) -> Option<Denial> {
        match self {
            ControllerError::Registry(e) => e.denial(),
            ControllerError::Run(e) => e.denial(),
            ControllerError::Denied { denial, .. } => Some(*denial),
            _ => None,
        }
    }

    /// Whether only a change by a person can fix it (the object is Stalled): an invalid spec
    /// or Secret, an object the API server refuses, or a registry refusing the operator's
    /// account — retrying the same credentials would only repeat the refusal — or a URL the
    /// address policy refuses.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            ControllerError::InvalidSpec(_)
                | ControllerError::SecretInvalid { .. }
                | ControllerError::Rejected { .. }
                | ControllerError::AddressNotAllowed { .. }
                | ControllerError::Registry(OciError::AddressNotAllowed { .. })
                | ControllerError::NotAllowed(_)
        ) || self.denial().is_some()
    }
}

/// The condition reason of a registry's refusal.
pub fn reason_of_denial(denial: Denial) -> Reason {
    match denial {
        Denial::CredentialsRequired => Reason::CredentialsRequired,
        Denial::CredentialsRejected => Reason::CredentialsRejected,
        Denial::PermissionDenied(_) => Reason::PermissionDenied,
        Denial::UntrustedTokenRealm => Reason::UntrustedTokenRealm,
    }
}
