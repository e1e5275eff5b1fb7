//! Which actual registry a Registry object points at. Several Registry objects (in different
//! namespaces, written by different teams) may name the same registry; runs are serialised, and
//! other policies' keeps veto, per endpoint rather than per object.

use kube::ResourceExt;

use super::target::managed_url;
use crate::api::Registry;
use crate::oci::host::endpoint_with_port;
use crate::oci::parse_base_url;

/// The normalised base URL of the registry `registry` points at: scheme, lower-case host,
/// explicit port, path without a trailing slash (`https://harbor.example.com:443/mirror`). A
/// managed registry's is its in-cluster Service URL, so an external Registry naming that URL
/// is the same endpoint. A URL that does not parse is its own endpoint (such a Registry
/// cannot be run against anyway).
pub fn endpoint(registry: &Registry, cluster_domain: &str) -> String {
    let url = match &registry.spec.external {
        Some(ext) => ext.url.clone(),
        None => managed_url(registry, cluster_domain),
    };
    normalise(&url).unwrap_or_else(|| {
        format!(
            "invalid:{}/{}",
            registry.namespace().unwrap_or_default(),
            registry.name_any()
        )
    })
}

fn normalise(url: &str) -> Option<String> {
    endpoint_with_port(&parse_base_url(url).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::registry::{ExternalRegistry, RegistrySpec};

    fn external(ns: &str, url: &str) -> Registry {
        let mut r = Registry::new(
            "r",
            RegistrySpec {
                external: Some(ExternalRegistry {
                    url: url.into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
        );
        r.metadata.namespace = Some(ns.into());
        r
    }

    #[test]
    fn every_spelling_of_one_registry_url_is_one_endpoint() {
        let key = endpoint(
            &external("a", "https://harbor.example.com"),
            "cluster.local",
        );
        assert_eq!(key, "https://harbor.example.com:443");
        for url in [
            "https://Harbor.Example.COM/",
            "HTTPS://harbor.example.com:443",
            "https://harbor.example.com/v2/",
            " https://user:secret@harbor.example.com:443// ",
        ] {
            assert_eq!(endpoint(&external("b", url), "cluster.local"), key, "{url}");
        }
        assert_ne!(
            endpoint(&external("a", "http://harbor.example.com"), "cluster.local"),
            key,
            "another scheme is another endpoint"
        );
        assert_ne!(
            endpoint(
                &external("a", "https://harbor.example.com/mirror/"),
                "cluster.local"
            ),
            key,
            "another path is another registry"
        );
        assert_eq!(
            endpoint(
                &external("a", "https://harbor.example.com/mirror/"),
                "cluster.local"
            ),
            "https://harbor.example.com:443/mirror"
        );
    }

    #[test]
    fn a_managed_registry_is_its_service_url_whoever_names_it() {
        let mut managed = Registry::new(
            "main",
            RegistrySpec {
                version: Some("v2.1.20".into()),
                ..Default::default()
            },
        );
        managed.metadata.namespace = Some("platform".into());
        assert_eq!(
            endpoint(&managed, "cluster.local"),
            endpoint(
                &external("team-a", "http://MAIN.platform.svc.cluster.local:5000/"),
                "cluster.local"
            )
        );
    }
}
