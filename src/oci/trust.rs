//! Who may receive the credentials: the decision, made without the network, whether a Bearer
//! challenge's token realm gets the user's Basic credentials.
//!
//! A registry names its token service in `WWW-Authenticate: Bearer realm="…"`; a hostile
//! registry can name any host there. docker sends the credentials to whatever realm it is
//! told; this client sends them only to a realm that is plausibly the registry's own:
//!
//! - the registry's host itself (any port: `reg.example.com:5000` and `reg.example.com:5001`);
//! - a host of the same registrable domain by the public suffix list (`registry-1.docker.io`
//!   and `auth.docker.io` share `docker.io`; `a.github.io` and `b.github.io` share nothing,
//!   since `github.io` is itself a public suffix). A host whose suffix the list does not know
//!   (`svc.cluster.local`, `.internal`, `.lan`) has no registrable domain: every Service of a
//!   cluster would otherwise share `cluster.local`;
//! - a host the user lists (`--trust-token-realm`, `spec.external.trustedTokenRealms`).
//!
//! IP addresses match only themselves: `127.0.0.1` and `127.0.0.2` are strangers.

use std::net::IpAddr;

/// A host name or address as compared here: lower case, without a trailing dot or the
/// brackets of an IPv6 literal.
fn normalise(host: &str) -> String {
    let h = host.trim().trim_end_matches('.').to_ascii_lowercase();
    match h.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        Some(inner) => inner.to_string(),
        None => h,
    }
}

/// The registrable domain of a DNS name by the public suffix list; `None` for an address,
/// for a name that is itself a public suffix, and for a name whose suffix the list does not
/// know.
pub fn registrable_domain(host: &str) -> Option<String> {
    let h = normalise(host);
    if h.parse::<IpAddr>().is_ok() {
        return None;
    }
    let domain = psl::domain(h.as_bytes())?;
    if !domain.suffix().is_known() {
        return None;
    }
    std::str::from_utf8(domain.trim().as_bytes())
        .ok()
        .map(str::to_string)
}

/// Whether a token realm on `realm_host` may receive the Basic credentials meant for the
/// registry on `registry_host` (hosts without port): the same host, the same registrable
/// domain, or a host in `trusted` (compared without case, trailing dot or brackets).
pub fn realm_trusted(registry_host: &str, realm_host: &str, trusted: &[String]) -> bool {
    let (registry, realm) = (normalise(registry_host), normalise(realm_host));
    if realm.is_empty() {
        return false;
    }
    if realm == registry || trusted.iter().any(|t| normalise(t) == realm) {
        return true;
    }
    match (registrable_domain(&registry), registrable_domain(&realm)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none() -> Vec<String> {
        Vec::new()
    }

    #[test]
    fn a_realm_on_the_registrys_own_host_is_trusted_whatever_its_port_or_case() {
        assert!(realm_trusted("reg.example.com", "reg.example.com", &none()));
        assert!(realm_trusted(
            "Reg.Example.com.",
            "reg.example.com",
            &none()
        ));
        assert!(realm_trusted("127.0.0.1", "127.0.0.1", &none()));
        assert!(realm_trusted("[::1]", "::1", &none()));
    }

    #[test]
    fn a_realm_in_the_registrable_domain_of_the_registry_is_trusted() {
        assert!(realm_trusted(
            "registry-1.docker.io",
            "auth.docker.io",
            &none()
        ));
        assert!(realm_trusted("ghcr.io", "ghcr.io", &none()));
        assert!(realm_trusted(
            "harbor.corp.example.co.uk",
            "sso.example.co.uk",
            &none()
        ));
        assert_eq!(
            registrable_domain("registry-1.docker.io").as_deref(),
            Some("docker.io")
        );
    }

    #[test]
    fn a_realm_of_another_domain_is_not_trusted() {
        assert!(!realm_trusted("registry-1.docker.io", "evil.com", &none()));
        assert!(!realm_trusted(
            "reg.example.com",
            "example.com.evil.com",
            &none()
        ));
        // co.uk and github.io are public suffixes: two sites under them are strangers
        assert!(!realm_trusted("a.example.co.uk", "b.other.co.uk", &none()));
        assert!(!realm_trusted(
            "alice.github.io",
            "mallory.github.io",
            &none()
        ));
        assert!(!realm_trusted("reg.example.com", "", &none()));
    }

    #[test]
    fn names_under_a_suffix_the_list_does_not_know_match_only_exactly() {
        // every in-cluster Service would otherwise share `cluster.local`
        assert!(!realm_trusted(
            "zot.team-a.svc.cluster.local",
            "token.team-b.svc.cluster.local",
            &none()
        ));
        assert_eq!(registrable_domain("zot.team-a.svc.cluster.local"), None);
        assert!(!realm_trusted("reg.lan", "auth.reg.lan", &none()));
        assert!(realm_trusted(
            "zot.team-a.svc.cluster.local",
            "zot.team-a.svc.cluster.local",
            &none()
        ));
    }

    #[test]
    fn ip_addresses_match_only_themselves() {
        assert!(!realm_trusted("127.0.0.1", "127.0.0.2", &none()));
        assert!(!realm_trusted("10.0.0.1", "10.0.0.2", &none()));
        assert!(!realm_trusted("reg.example.com", "93.184.216.34", &none()));
        assert!(!realm_trusted("[::1]", "::2", &none()));
        assert_eq!(registrable_domain("127.0.0.1"), None);
    }

    #[test]
    fn a_host_the_user_lists_is_trusted_and_only_that_host() {
        let listed = vec!["Auth.Partner.example".to_string(), "127.0.0.2".to_string()];
        assert!(realm_trusted(
            "reg.example.com",
            "auth.partner.example",
            &listed
        ));
        assert!(realm_trusted("127.0.0.1", "127.0.0.2", &listed));
        assert!(!realm_trusted("127.0.0.1", "127.0.0.3", &listed));
        assert!(!realm_trusted(
            "reg.example.com",
            "evil.partner.example",
            &listed
        ));
    }
}
