//! What a registry's refusal of the operator's account means, in words a person can act on:
//! which Registry, which Secret and key (never the value), what was refused, and what to do.
//! Pure: the Registry and policy reconcilers build their messages here.

use super::target::CredentialSource;
use crate::oci::{Denial, Refused};

/// `Secret ns/name (key k)`, or what stands for no credentials at all.
fn account(source: Option<&CredentialSource>) -> String {
    match source {
        Some(s) => s.to_string(),
        None => "no credentials (none declared)".to_string(),
    }
}

/// The message for `denial` by the registry of Registry `registry` (`namespace/name`), whose
/// credentials come from `source`; `detail` is what the registry answered to what.
pub fn denied_message(
    denial: Denial,
    registry: &str,
    source: Option<&CredentialSource>,
    detail: &str,
) -> String {
    let who = account(source);
    match (denial, source) {
        (Denial::CredentialsRejected, _) => format!(
            "Registry {registry} rejects the credentials in {who}: {detail}; correct the Secret (the operator tries again when it changes)"
        ),
        (Denial::CredentialsRequired, None) => format!(
            "Registry {registry} wants credentials and declares none: {detail}; name a Secret in spec.external.credentialsSecretRef (or auth.operatorCredentialsSecretRef)"
        ),
        (Denial::CredentialsRequired, Some(_)) => format!(
            "Registry {registry} wants credentials but sent no challenge the operator answers with those in {who} (a Basic challenge from the registry's own address, or a Bearer token realm), so none were sent: {detail}"
        ),
        (Denial::PermissionDenied(Refused::Catalog), _) => format!(
            "the account in {who} may not list the catalog of Registry {registry}: {detail}; name the repositories in spec.repositories.include without wildcards (they are then read one by one), or grant the account catalog access"
        ),
        (Denial::PermissionDenied(Refused::Repository), _) => format!(
            "the account in {who} may not read a repository of Registry {registry}: {detail}; grant it read (pull) access, or exclude the repository"
        ),
        (Denial::PermissionDenied(Refused::Delete), _) => format!(
            "the account in {who} may read Registry {registry} but not delete: {detail}; mode: Plan works with this account, Enforce needs delete rights"
        ),
        (Denial::PermissionDenied(Refused::Push), _) => format!(
            "the account in {who} may not push to Registry {registry}: {detail}; grant it push access to the repository, or leave out what needs it"
        ),
        (Denial::PermissionDenied(Refused::Other), _) => format!(
            "Registry {registry} refuses the account in {who}: {detail}"
        ),
        (Denial::UntrustedTokenRealm, _) => format!(
            "Registry {registry} sends the credentials in {who} to a token realm the operator does not trust, so none were sent: {detail}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> CredentialSource {
        CredentialSource {
            namespace: "platform".into(),
            name: "robot".into(),
            key: "password".into(),
        }
    }

    #[test]
    fn a_rejected_password_names_the_registry_the_secret_and_its_key() {
        let m = denied_message(
            Denial::CredentialsRejected,
            "platform/harbor",
            Some(&secret()),
            "Catalog …: unauthorized (401)",
        );
        assert!(m.contains("Registry platform/harbor"), "{m}");
        assert!(m.contains("Secret platform/robot (key password)"), "{m}");
        assert!(m.contains("correct the Secret"), "{m}");
    }

    #[test]
    fn a_refused_delete_says_plan_mode_works_and_enforce_needs_delete_rights() {
        let m = denied_message(
            Denial::PermissionDenied(Refused::Delete),
            "platform/harbor",
            Some(&secret()),
            "DeleteManifest …: permission denied (403)",
        );
        assert!(m.contains("mode: Plan works"), "{m}");
        assert!(m.contains("Enforce needs delete rights"), "{m}");
    }

    #[test]
    fn a_refused_catalog_says_how_to_do_without_it() {
        let m = denied_message(
            Denial::PermissionDenied(Refused::Catalog),
            "platform/harbor",
            Some(&secret()),
            "Catalog …: permission denied (403)",
        );
        assert!(m.contains("may not list the catalog"), "{m}");
        assert!(m.contains("without wildcards"), "{m}");
    }
}
