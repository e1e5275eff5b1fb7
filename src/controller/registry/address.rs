//! Where an external Registry's URL may point, judged before anything is contacted: the
//! address policy on IP literals (the client judges resolved names again at connect time), and
//! the in-cluster rule only the Kubernetes side knows — a Service of another namespace
//! (`<svc>.<ns>.svc[.<cluster-domain>]`, `<svc>.<ns>`) is another team's, refused unless the
//! operator runs with `--allow-cross-namespace-services`.
//!
//! Pure: the operator's reconciler and `registry-operator render` call the same function.

use std::net::IpAddr;

use crate::oci::address::HostCheck;
use crate::oci::{parse_base_url, AddressPolicy, AddressRule};

/// The rule name of the in-cluster check, as messages write it.
pub const CROSS_NAMESPACE_RULE: &str = "cross-namespace-service";

/// What the operator may reach, besides the fixed rules of the address policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UrlPolicy<'a> {
    /// The address policy the registry client enforces.
    pub addresses: AddressPolicy,
    /// Whether a Service of another namespace may be a Registry's URL.
    pub allow_cross_namespace_services: bool,
    /// The cluster's DNS domain (`cluster.local`).
    pub cluster_domain: &'a str,
}

/// Where an allowed URL points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// An IP literal the policy allows.
    Address(IpAddr),
    /// A Service (or a Pod behind one) in this namespace; its addresses are judged at
    /// connect time.
    Service {
        /// The namespace named.
        namespace: String,
    },
    /// A host name outside the cluster: its addresses are judged when it is resolved, at
    /// connect time (offline, nothing more can be said).
    Name,
}

/// Why a Registry's URL is refused. `rule` names the rule ("not allowed by …").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlRefused {
    /// Not a registry URL at all (no scheme, not http(s), no host).
    #[error("spec.external.url: {0}")]
    Invalid(String),
    /// An address the address policy refuses.
    #[error("spec.external.url: host {host}: address {address} is not allowed by the {rule} rule ({})", rule.why())]
    Address {
        /// The host as written.
        host: String,
        /// The address refused.
        address: IpAddr,
        /// The rule.
        rule: AddressRule,
    },
    /// A single-label host (`http://zot:5000`): the operator pod's DNS search list resolves it
    /// as a Service of the operator's own namespace, not the Registry's.
    #[error("spec.external.url: host {host} is a single label, which the operator's DNS search list resolves as a Service of the operator's own namespace: not allowed by the {CROSS_NAMESPACE_RULE} rule (name the Service with its namespace, {host}.<namespace>.svc, or write a full host name)")]
    SingleLabel {
        /// The host as written.
        host: String,
    },
    /// A Service of another namespace.
    #[error("spec.external.url: host {host} names a Service of namespace {namespace:?}, not the Registry's namespace {own:?}: not allowed by the {CROSS_NAMESPACE_RULE} rule (the operator allows it with --allow-cross-namespace-services; a public name spelled like this is written with a trailing dot, {host}.)")]
    CrossNamespace {
        /// The host as written.
        host: String,
        /// The namespace it names.
        namespace: String,
        /// The Registry's namespace.
        own: String,
    },
}

impl UrlRefused {
    /// The rule that refused the URL (`cloud-metadata`, `cross-namespace-service`), `None`
    /// for a URL that is not one.
    pub fn rule(&self) -> Option<&'static str> {
        match self {
            UrlRefused::Invalid(_) => None,
            UrlRefused::Address { rule, .. } => Some(rule.as_str()),
            UrlRefused::CrossNamespace { .. } | UrlRefused::SingleLabel { .. } => {
                Some(CROSS_NAMESPACE_RULE)
            }
        }
    }
}

/// Judges an external Registry's URL for a Registry in `namespace`.
pub fn check_external_url(
    url: &str,
    namespace: &str,
    policy: &UrlPolicy<'_>,
) -> Result<Destination, UrlRefused> {
    let base = parse_base_url(url).map_err(|e| UrlRefused::Invalid(e.to_string()))?;
    match policy.addresses.check_url(&base) {
        Err(r) => {
            return Err(UrlRefused::Address {
                host: r.host,
                address: r.address,
                rule: r.rule,
            })
        }
        Ok(HostCheck::Address(ip)) => return Ok(Destination::Address(ip)),
        Ok(HostCheck::Name) => {}
    }
    let host = base.host_str().unwrap_or_default();
    let single_label = !host.contains('.') && !host.eq_ignore_ascii_case("localhost");
    if single_label && !policy.allow_cross_namespace_services {
        return Err(UrlRefused::SingleLabel {
            host: host.to_string(),
        });
    }
    let Some(service_namespace) = service_namespace(host, policy.cluster_domain) else {
        return Ok(Destination::Name);
    };
    if service_namespace != namespace && !policy.allow_cross_namespace_services {
        return Err(UrlRefused::CrossNamespace {
            host: host.to_string(),
            namespace: service_namespace.to_string(),
            own: namespace.to_string(),
        });
    }
    Ok(Destination::Service {
        namespace: service_namespace.to_string(),
    })
}

/// The namespace a host names when the cluster's DNS would answer it with a Service (or a Pod
/// behind one): `<svc>.<ns>.svc.<cluster-domain>`, `<svc>.<ns>.svc`, and `<svc>.<ns>` — the
/// last one only when `<ns>` is not a public suffix (`quay.io` is Quay, but `zot.team-b`
/// reaches team-b's Service through the pod's DNS search list). An absolute name (trailing
/// dot) skips the search list and is never a Service unless it ends in the cluster domain.
pub fn service_namespace<'h>(host: &'h str, cluster_domain: &str) -> Option<&'h str> {
    let absolute = host.ends_with('.');
    let name = host.trim_end_matches('.');
    let lower = name.to_ascii_lowercase();
    let domain_suffix = format!(".svc.{cluster_domain}");
    let in_cluster = if lower.ends_with(&domain_suffix) {
        Some(&name[..name.len() - domain_suffix.len()])
    } else if !absolute && lower.ends_with(".svc") {
        Some(&name[..name.len() - ".svc".len()])
    } else {
        None
    };
    if let Some(rest) = in_cluster {
        // <svc>.<ns> or <pod>.<svc>.<ns>: the namespace is the last label
        return rest
            .rsplit_once('.')
            .map(|(_, ns)| ns)
            .filter(|ns| !ns.is_empty());
    }
    if absolute {
        return None;
    }
    let (svc, ns) = name.split_once('.')?;
    if svc.is_empty() || ns.is_empty() || ns.contains('.') {
        return None;
    }
    let public = psl::suffix(ns.as_bytes()).is_some_and(|s| s.is_known());
    (!public).then_some(ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allow_cross: bool) -> UrlPolicy<'static> {
        UrlPolicy {
            addresses: AddressPolicy {
                allow_loopback: false,
            },
            allow_cross_namespace_services: allow_cross,
            cluster_domain: "cluster.local",
        }
    }

    #[test]
    fn service_names_of_every_form_give_their_namespace() {
        let d = "cluster.local";
        assert_eq!(
            service_namespace("zot.team-b.svc.cluster.local", d),
            Some("team-b")
        );
        assert_eq!(
            service_namespace("zot.team-b.svc.cluster.local.", d),
            Some("team-b")
        );
        assert_eq!(service_namespace("zot.team-b.svc", d), Some("team-b"));
        assert_eq!(service_namespace("zot-0.zot.team-b.svc", d), Some("team-b"));
        assert_eq!(service_namespace("zot.team-b", d), Some("team-b"));
        assert_eq!(
            service_namespace("zot.team-b.svc.k8s.corp", "k8s.corp"),
            Some("team-b")
        );
    }

    #[test]
    fn public_names_are_not_services() {
        let d = "cluster.local";
        for host in [
            "ghcr.io",
            "quay.io",
            "docker.io",
            "harbor.example.com",
            "zot.team-b.",
        ] {
            assert_eq!(service_namespace(host, d), None, "{host}");
        }
    }

    #[test]
    fn another_namespaces_service_is_refused_unless_allowed() {
        let err =
            check_external_url("http://zot.team-b.svc:5000", "team-a", &policy(false)).unwrap_err();
        assert_eq!(err.rule(), Some(CROSS_NAMESPACE_RULE));
        assert!(err
            .to_string()
            .contains("not allowed by the cross-namespace-service rule"));
        assert_eq!(
            check_external_url("http://zot.team-b.svc:5000", "team-a", &policy(true)),
            Ok(Destination::Service {
                namespace: "team-b".into()
            })
        );
        assert_eq!(
            check_external_url(
                "http://zot.team-a.svc.cluster.local:5000",
                "team-a",
                &policy(false)
            ),
            Ok(Destination::Service {
                namespace: "team-a".into()
            })
        );
    }

    #[test]
    fn a_single_label_host_is_refused_as_a_service_of_the_operators_namespace() {
        let err = check_external_url("http://zot:5000", "team-a", &policy(false)).unwrap_err();
        assert_eq!(err.rule(), Some(CROSS_NAMESPACE_RULE));
        assert!(
            err.to_string().contains("operator's own namespace"),
            "{err}"
        );
        assert_eq!(
            check_external_url("http://zot:5000", "team-a", &policy(true)),
            Ok(Destination::Name)
        );
        // localhost is loopback, judged by the address policy
        assert_eq!(
            check_external_url("http://localhost:5000", "team-a", &policy(false))
                .unwrap_err()
                .rule(),
            Some("loopback")
        );
    }

    #[test]
    fn metadata_literals_are_refused_and_names_wait_for_connect_time() {
        let err = check_external_url("http://169.254.169.254", "a", &policy(true)).unwrap_err();
        assert_eq!(err.rule(), Some("cloud-metadata"));
        assert_eq!(
            check_external_url("https://harbor.example.com", "a", &policy(false)),
            Ok(Destination::Name)
        );
        assert!(matches!(
            check_external_url("harbor.example.com", "a", &policy(false)),
            Err(UrlRefused::Invalid(_))
        ));
    }
}
