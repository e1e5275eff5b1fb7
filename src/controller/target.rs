//! How the operator reaches a Registry: its URL, credentials, TLS trust, and every host name Pods
//! may use to pull from it (for in-use protection).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::{Client, ResourceExt};

use super::context::Context;
use super::error::ControllerError;
use crate::api::registry::DEFAULT_SERVICE_PORT;
use crate::api::Registry;
use crate::oci::{credentials_from_secret_data, ClientOptions, Credentials, RegistryClient};

/// Key of the CA bundle in `caSecretRef` when none is named.
pub const DEFAULT_CA_KEY: &str = "ca.crt";

/// A resolved registry endpoint.
#[derive(Debug, Clone)]
pub struct Target {
    /// Base URL (before `/v2/`).
    pub url: String,
    /// Credentials the operator uses.
    pub credentials: Credentials,
    /// Client options (TLS trust included).
    pub options: ClientOptions,
    /// Host names (`host` or `host:port`, lower case) Pods may pull from this registry with.
    pub hosts: Vec<String>,
    /// Where the credentials come from: the Secret and key (None: anonymous, none declared).
    pub credentials_source: Option<CredentialSource>,
}

/// The Secret and key a Registry's credentials are read from — what status messages name
/// (never the value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialSource {
    /// Namespace of the Secret.
    pub namespace: String,
    /// Name of the Secret.
    pub name: String,
    /// The key the credentials were read from (`password`, `.dockerconfigjson`, …).
    pub key: String,
}

impl std::fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Secret {}/{} (key {})",
            self.namespace, self.name, self.key
        )
    }
}

/// The key of a credentials Secret the operator reads, as [`credentials_from_secret_data`]
/// chooses it: the docker config when there is one, else `password` (with `username`).
fn credentials_key(secret_type: Option<&str>, data: &BTreeMap<String, Vec<u8>>) -> &'static str {
    match secret_type {
        Some("kubernetes.io/dockercfg") => ".dockercfg",
        Some("kubernetes.io/dockerconfigjson") => ".dockerconfigjson",
        _ if data.contains_key(".dockerconfigjson") => ".dockerconfigjson",
        _ if data.contains_key(".dockercfg") => ".dockercfg",
        _ => "password",
    }
}

impl Target {
    /// A client for this target.
    pub fn client(&self) -> Result<RegistryClient, ControllerError> {
        Ok(RegistryClient::new(
            &self.url,
            self.credentials.clone(),
            self.options.clone(),
        )?)
    }
}

/// The in-cluster URL of a managed Registry's Service.
pub fn managed_url(registry: &Registry, cluster_domain: &str) -> String {
    let name = registry.name_any();
    let ns = registry.namespace().unwrap_or_default();
    let port = service_port(registry);
    let scheme = if registry.spec.tls.is_some() {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{name}.{ns}.svc.{cluster_domain}:{port}")
}

fn service_port(registry: &Registry) -> i32 {
    registry
        .spec
        .service
        .as_ref()
        .and_then(|s| s.port)
        .unwrap_or(DEFAULT_SERVICE_PORT)
}

/// Every host name of a Registry: Service DNS forms for managed ones, the URL's host for
/// external ones, plus `spec.aliases` — each in [`crate::oci::host::image_host`]'s spelling.
pub fn hosts(registry: &Registry, cluster_domain: &str) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(ext) = &registry.spec.external {
        if let Ok(url) = url::Url::parse(&ext.url) {
            if let Some(host) = url.host_str() {
                out.push(match url.port() {
                    Some(p) => format!("{host}:{p}"),
                    None => host.to_string(),
                });
            }
        }
    } else {
        let name = registry.name_any();
        let ns = registry.namespace().unwrap_or_default();
        let port = service_port(registry);
        for host in [
            format!("{name}.{ns}.svc.{cluster_domain}"),
            format!("{name}.{ns}.svc"),
            format!("{name}.{ns}"),
        ] {
            out.push(format!("{host}:{port}"));
        }
    }
    out.extend(registry.spec.aliases.iter().cloned());
    let mut out: Vec<String> = out
        .into_iter()
        .map(|h| crate::oci::host::image_host(&h))
        .filter(|h| !h.is_empty())
        .collect();
    out.sort();
    out.dedup();
    out
}

async fn secret_data(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<(Option<String>, BTreeMap<String, Vec<u8>>), ControllerError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = api
        .get_opt(name)
        .await?
        .ok_or_else(|| ControllerError::SecretNotFound {
            namespace: namespace.to_string(),
            name: name.to_string(),
        })?;
    let data = secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    Ok((secret.type_, data))
}

/// The docker-config entries a Registry's credentials are looked up under, in order: the
/// host of the URL the operator talks to, then, for an external Registry, the
/// `credentialsFallbackHosts` it lists — never an alias it does not list. A managed Registry's
/// are its Service's names, the full one first.
pub fn credential_hosts(registry: &Registry, cluster_domain: &str) -> Vec<String> {
    let Some(ext) = &registry.spec.external else {
        let name = registry.name_any();
        let ns = registry.namespace().unwrap_or_default();
        let port = service_port(registry);
        return [
            format!("{name}.{ns}.svc.{cluster_domain}"),
            format!("{name}.{ns}.svc"),
            format!("{name}.{ns}"),
        ]
        .into_iter()
        .map(|h| format!("{h}:{port}"))
        .collect();
    };
    let mut out: Vec<String> = Vec::new();
    if let Ok(url) = url::Url::parse(&ext.url) {
        let host = crate::oci::host::url_host(&url);
        if !host.is_empty() {
            out.push(host);
        }
    }
    for h in &ext.credentials_fallback_hosts {
        let h = crate::oci::host::host_part(h);
        if !h.is_empty() && !out.contains(&h) {
            out.push(h);
        }
    }
    out
}

/// The credentials in the Secret `secret` names (anonymous without one), from the entry of
/// the first of `hosts` the Secret has one for, with the Secret and key they come from. A
/// docker config with none of them is an error that says which hosts were looked for.
async fn credentials(
    client: &Client,
    namespace: &str,
    secret: Option<&crate::api::common::SecretRef>,
    hosts: &[String],
) -> Result<(Credentials, Option<CredentialSource>), ControllerError> {
    let Some(r) = secret else {
        return Ok((Credentials::Anonymous, None));
    };
    let (type_, data) = secret_data(client, namespace, &r.name).await?;
    let source = CredentialSource {
        namespace: namespace.to_string(),
        name: r.name.clone(),
        key: credentials_key(type_.as_deref(), &data).to_string(),
    };
    let invalid = |message: String| ControllerError::SecretInvalid {
        namespace: namespace.to_string(),
        name: r.name.clone(),
        message,
    };
    let credentials = credentials_from_secret_data(type_.as_deref(), &data, hosts)
        .map_err(|e| invalid(e.to_string()))?
        .ok_or_else(|| {
            invalid(format!(
                "key {} has no entry for {}: add one for the registry's host, or list the entry's host in spec.external.credentialsFallbackHosts (aliases are not used for credentials unless listed there)",
                source.key,
                hosts.join(", then ")
            ))
        })?;
    Ok((credentials, Some(source)))
}

/// The Secret holding the credentials `registry` declares for the operator, if any:
/// `external.credentialsSecretRef`, or `auth.operatorCredentialsSecretRef` of a managed zot.
pub fn credentials_secret(registry: &Registry) -> Option<&crate::api::common::SecretRef> {
    match &registry.spec.external {
        Some(ext) => ext.credentials_secret_ref.as_ref(),
        None => registry
            .spec
            .auth
            .as_ref()
            .and_then(|a| a.operator_credentials_secret_ref.as_ref()),
    }
}

/// [`resolve`] with the operator's client, registry client options and cluster domain, once
/// the operator's lockdown admits the Registry (a policy naming a refused Registry gets the
/// refusal, and nothing is sent to it).
pub async fn resolve_with(ctx: &Context, registry: &Registry) -> Result<Target, ControllerError> {
    // Where an external URL points is judged before any Secret is read or anything contacted.
    if let Some(ext) = &registry.spec.external {
        let namespace = registry.namespace().unwrap_or_default();
        super::registry::address::check_external_url(
            &ext.url,
            &namespace,
            &ctx.settings.url_policy(),
        )
        .map_err(|refused| ControllerError::AddressNotAllowed {
            namespace,
            name: registry.name_any(),
            refused,
        })?;
    }
    super::registry::dereference::admit(ctx, registry).await?;
    resolve(
        &ctx.client,
        registry,
        &ctx.settings.registry_client,
        &ctx.settings.cluster_domain,
    )
    .await
}

/// Resolves how to reach `registry`, reading the Secrets it references.
pub async fn resolve(
    client: &Client,
    registry: &Registry,
    base: &ClientOptions,
    cluster_domain: &str,
) -> Result<Target, ControllerError> {
    let namespace = registry.namespace().unwrap_or_default();
    let mut options = base.clone();
    let hosts = hosts(registry, cluster_domain);
    let credential_hosts = credential_hosts(registry, cluster_domain);
    let Some(ext) = &registry.spec.external else {
        // A managed zot with htpasswd: the operator signs in with the account named in
        // `auth.operatorCredentialsSecretRef` (anonymous without one).
        let secret = registry
            .spec
            .auth
            .as_ref()
            .and_then(|a| a.operator_credentials_secret_ref.as_ref());
        let (credentials, credentials_source) =
            credentials(client, &namespace, secret, &credential_hosts).await?;
        // zot serves HTTPS with the certificate in `spec.tls`; no public CA signs a
        // `*.svc.<cluster domain>` name, so the operator trusts the CA that Secret carries
        // (cert-manager puts it in `ca.crt`).
        if let Some(tls) = &registry.spec.tls {
            let (_, data) = secret_data(client, &namespace, &tls.name).await?;
            let pem = data
                .get(DEFAULT_CA_KEY)
                .filter(|pem| !pem.is_empty())
                .cloned()
                .ok_or_else(|| ControllerError::SecretInvalid {
                    namespace: namespace.clone(),
                    name: tls.name.clone(),
                    message: format!(
                        "no {DEFAULT_CA_KEY:?}: the operator verifies the registry's HTTPS certificate with the CA in the TLS Secret's {DEFAULT_CA_KEY} (cert-manager adds it when a CA or self-signed issuer signs the certificate); add the PEM CA bundle that signed tls.crt under {DEFAULT_CA_KEY}"
                    ),
                })?;
            options.ca_pem = Some(pem);
        }
        return Ok(Target {
            url: managed_url(registry, cluster_domain),
            credentials,
            options,
            hosts,
            credentials_source,
        });
    };
    let (credentials, credentials_source) = credentials(
        client,
        &namespace,
        ext.credentials_secret_ref.as_ref(),
        &credential_hosts,
    )
    .await?;
    if let Some(r) = &ext.ca_secret_ref {
        let key = r.key.as_deref().unwrap_or(DEFAULT_CA_KEY);
        let (_, data) = secret_data(client, &namespace, &r.name).await?;
        let pem = data
            .get(key)
            .cloned()
            .ok_or_else(|| ControllerError::SecretInvalid {
                namespace: namespace.clone(),
                name: r.name.clone(),
                message: format!("no key {key:?} with a PEM CA bundle"),
            })?;
        options.ca_pem = Some(pem);
    }
    options.insecure_skip_tls_verify = ext.insecure_skip_tls_verify.unwrap_or(false);
    options.trusted_token_realms = ext.trusted_token_realms.clone();
    Ok(Target {
        url: ext.url.clone(),
        credentials,
        options,
        hosts,
        credentials_source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::registry::{ExternalRegistry, RegistrySpec};

    fn registry(spec: RegistrySpec) -> Registry {
        let mut r = Registry::new("main", spec);
        r.metadata.namespace = Some("platform".into());
        r
    }

    #[test]
    fn a_managed_registry_answers_to_its_service_dns_names_and_aliases() {
        let r = registry(RegistrySpec {
            version: Some("v2.1.20".into()),
            aliases: vec!["Registry.Example.com".into()],
            ..Default::default()
        });
        assert_eq!(
            hosts(&r, "cluster.local"),
            vec![
                "main.platform.svc.cluster.local:5000",
                "main.platform.svc:5000",
                "main.platform:5000",
                "registry.example.com",
            ]
        );
        assert_eq!(
            managed_url(&r, "cluster.local"),
            "http://main.platform.svc.cluster.local:5000"
        );
        assert_eq!(
            managed_url(&r, "k8s.corp.example"),
            "http://main.platform.svc.k8s.corp.example:5000"
        );
        assert!(hosts(&r, "k8s.corp.example")
            .contains(&"main.platform.svc.k8s.corp.example:5000".to_string()));
    }

    #[test]
    fn an_external_registry_answers_to_its_url_host() {
        let r = registry(RegistrySpec {
            external: Some(ExternalRegistry {
                url: "https://harbor.example.com:8443".into(),
                ..Default::default()
            }),
            ..Default::default()
        });
        assert_eq!(hosts(&r, "cluster.local"), vec!["harbor.example.com:8443"]);
    }

    #[test]
    fn hosts_are_spelled_as_images_name_them_whatever_the_spec_says() {
        let r = registry(RegistrySpec {
            external: Some(ExternalRegistry {
                url: "https://Harbor.example.com:443/".into(),
                ..Default::default()
            }),
            aliases: vec![
                "https://mirror.example.com/".into(),
                "ingress.example.com:443".into(),
                "node.example.com:30500".into(),
            ],
            ..Default::default()
        });
        assert_eq!(
            hosts(&r, "cluster.local"),
            vec![
                "harbor.example.com",
                "ingress.example.com",
                "mirror.example.com",
                "node.example.com:30500",
            ]
        );
        // a Pod image naming the default port explicitly is the same host
        let pod = crate::oci::ImageReference::parse("harbor.example.com:443/team/app:v1").unwrap();
        assert_eq!(
            crate::oci::host::image_host(&pod.registry),
            "harbor.example.com"
        );
        // a managed registry on port 443: Pods write the Service name without it
        let managed = registry(RegistrySpec {
            version: Some("v2.1.20".into()),
            service: Some(crate::api::registry::ServiceSpec {
                port: Some(443),
                ..Default::default()
            }),
            ..Default::default()
        });
        assert!(hosts(&managed, "cluster.local").contains(&"main.platform.svc".to_string()));
    }
}
