//! The admin's lockdown: what a Registry may make the operator do, set by `registry-operator run`
//! flags (the chart's `lockdown:` values). Flux's multi-tenancy lockdown is the model: whoever may
//! create a Registry in a namespace gets a registry, not a Pod with any image and every Secret.
//!
//! - `--allowed-image PATTERN`: the images a managed Registry may run ([`ImagePattern`]);
//! - `--allow-insecure-skip-tls-verify`: `spec.external.insecureSkipTlsVerify: true`;
//! - `--allow-plain-http-credentials`: credentials over plain `http://` to a host outside the
//!   cluster ([`is_inside_cluster`]);
//! - `--secret-label KEY[=VALUE]`: the label every Secret a Registry names must carry.
//!
//! The checks are pure: they take the spec (and, for the label, the labels of the Secrets it
//! names) and return the first [`Refusal`], which names the field, the value and the setting.
//! The reconciler asks before it reads a Secret's data or applies anything.

use std::collections::BTreeMap;
use std::net::IpAddr;

use globset::{GlobBuilder, GlobMatcher};

use crate::api::common::condition::Reason;
use crate::api::registry::RegistrySpec;
use crate::oci::ImageReference;

/// What Registries may ask of the operator. `Default` is the binary run by hand: any image, no
/// label required; insecure TLS and plain-http credentials to hosts outside the cluster refused.
#[derive(Clone, Debug, Default)]
pub struct Lockdown {
    /// Images a managed Registry may run; empty allows any.
    pub allowed_images: Vec<ImagePattern>,
    /// Whether `spec.external.insecureSkipTlsVerify: true` is honoured.
    pub allow_insecure_skip_tls_verify: bool,
    /// Whether credentials may go over plain http to a host outside the cluster.
    pub allow_plain_http_credentials: bool,
    /// The label every Secret a Registry names must carry.
    pub secret_label: Option<SecretLabel>,
}

/// One `--allowed-image` pattern, compared with the image reference normalised as Pods name
/// images (`zot` is `docker.io/library/zot`):
///
/// - `host/path` (no tag, no digest): that repository, any tag or digest;
/// - `host/path/` (trailing slash): every repository below it;
/// - `host/path:tag` or `host/path@sha256:…`: that tag or digest only;
///
/// and `*` (within one path segment), `**` (any depth), `?` and `[…]` as globs anywhere.
#[derive(Clone, Debug)]
pub struct ImagePattern {
    text: String,
    matcher: GlobMatcher,
    part: PatternPart,
}

/// What part of an image reference a pattern is compared with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PatternPart {
    /// `host/repository`.
    Repository,
    /// `host/repository:tag`.
    Tag,
    /// `host/repository@digest`.
    Digest,
}

impl ImagePattern {
    /// Parses a pattern; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("an image pattern must not be empty".to_string());
        }
        let last_slash = text.rfind('/').map_or(0, |i| i + 1);
        let part = if text.contains('@') {
            PatternPart::Digest
        } else if text[last_slash..].contains(':') {
            PatternPart::Tag
        } else {
            PatternPart::Repository
        };
        let glob = match text.strip_suffix('/') {
            Some(prefix) if part == PatternPart::Repository => format!("{prefix}/**"),
            _ => text.to_string(),
        };
        let matcher = GlobBuilder::new(&glob)
            .literal_separator(true)
            .build()
            .map_err(|e| format!("{text:?} is not an image pattern: {}", e.kind()))?
            .compile_matcher();
        Ok(ImagePattern {
            text: text.to_string(),
            matcher,
            part,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `image` (parsed) matches.
    fn matches(&self, image: &ImageReference) -> bool {
        let repository = format!("{}/{}", image.registry, image.repository);
        let candidate = match self.part {
            PatternPart::Repository => Some(repository),
            // A tag pattern allows that tag only as the kubelet pulls it: a reference that also
            // names a digest is pulled by the digest, which the tag does not vouch for.
            PatternPart::Tag => image
                .tag
                .as_ref()
                .filter(|_| image.digest.is_none())
                .map(|t| format!("{repository}:{t}")),
            PatternPart::Digest => image.digest.as_ref().map(|d| format!("{repository}@{d}")),
        };
        candidate.is_some_and(|c| self.matcher.is_match(c))
    }
}

/// The official zot image repositories (multi-arch, single-arch, minimal): the chart's default
/// `lockdown.allowedImages`, and what the operator runs when `spec.image` is not set.
pub const OFFICIAL_ZOT_IMAGES: &[&str] = &[
    "ghcr.io/project-zot/zot",
    "ghcr.io/project-zot/zot-linux-amd64",
    "ghcr.io/project-zot/zot-linux-arm64",
    "ghcr.io/project-zot/zot-minimal",
    "ghcr.io/project-zot/zot-minimal-linux-amd64",
    "ghcr.io/project-zot/zot-minimal-linux-arm64",
];

/// `--secret-label KEY[=VALUE]`: a Secret carries the key (with that value, when one is given).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretLabel {
    /// The label key.
    pub key: String,
    /// The value it must have; `None` accepts any value.
    pub value: Option<String>,
}

impl SecretLabel {
    /// Parses `KEY` or `KEY=VALUE`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (key, value) = match text.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim().to_string())),
            None => (text.trim(), None),
        };
        let key_ok = !key.is_empty()
            && key.len() <= 317
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b));
        if !key_ok {
            return Err(format!(
                "{text:?} is not KEY or KEY=VALUE with a label key such as registry-operator.dev/usable"
            ));
        }
        Ok(SecretLabel {
            key: key.to_string(),
            value,
        })
    }

    /// Whether a Secret with these labels carries it.
    pub fn carried_by(&self, labels: &BTreeMap<String, String>) -> bool {
        match (labels.get(&self.key), &self.value) {
            (Some(v), Some(want)) => v == want,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }
}

impl std::fmt::Display for SecretLabel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.value {
            Some(v) => write!(f, "{}={v}", self.key),
            None => f.write_str(&self.key),
        }
    }
}

/// Why the lockdown refuses a Registry. Every variant is permanent: a person must change the
/// spec (or the admin the operator's flags).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The image is not among `--allowed-image`.
    #[error("spec.image {image:?} is not allowed by the operator's --allowed-image (chart value lockdown.allowedImages): allowed are {}", allowed.join(", "))]
    ImageNotAllowed {
        /// The image the Registry would run.
        image: String,
        /// The allowed patterns.
        allowed: Vec<String>,
    },
    /// `insecureSkipTlsVerify: true` without `--allow-insecure-skip-tls-verify`.
    #[error("spec.external.insecureSkipTlsVerify for {url} is not allowed by the operator (--allow-insecure-skip-tls-verify, chart value lockdown.allowInsecureSkipTLSVerify, is off): trust the registry's CA with spec.external.caSecretRef instead")]
    InsecureTlsNotAllowed {
        /// The registry's URL.
        url: String,
    },
    /// Credentials over plain http to a host outside the cluster.
    #[error("spec.external.credentialsSecretRef: the credentials would go over plain http to {host}, outside the cluster, which is not allowed by the operator (--allow-plain-http-credentials, chart value lockdown.allowPlainHttpCredentials, is off): use an https URL")]
    PlainHttpCredentialsNotAllowed {
        /// The host the credentials would go to.
        host: String,
    },
    /// A Secret the Registry names lacks `--secret-label`.
    #[error("Secret {namespace}/{name}, which {field} names, is not allowed by the operator: Secrets a Registry uses must carry the label {label} (--secret-label, chart value lockdown.secretLabel)")]
    SecretNotAllowed {
        /// Namespace of the Secret.
        namespace: String,
        /// Name of the Secret.
        name: String,
        /// The spec field naming it.
        field: String,
        /// The required label.
        label: String,
    },
}

impl Refusal {
    /// The PascalCase reason for conditions, events and metrics.
    pub fn reason(&self) -> Reason {
        match self {
            Refusal::ImageNotAllowed { .. } => Reason::ImageNotAllowed,
            Refusal::InsecureTlsNotAllowed { .. } => Reason::InsecureTlsNotAllowed,
            Refusal::PlainHttpCredentialsNotAllowed { .. } => {
                Reason::PlainHttpCredentialsNotAllowed
            }
            Refusal::SecretNotAllowed { .. } => Reason::SecretNotAllowed,
        }
    }
}

/// One Secret a Registry names, with the field naming it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SecretUse {
    /// The spec field (`spec.auth.htpasswdSecretRef`).
    pub field: String,
    /// The Secret's name.
    pub name: String,
}

/// Every Secret a Registry names, in the order a reader meets the fields: the operator reads
/// them (credentials, CAs) or mounts them into zot's pods (TLS, htpasswd, auth files, sync and
/// S3 credentials).
pub fn secret_uses(spec: &RegistrySpec) -> Vec<SecretUse> {
    let mut out = Vec::new();
    let mut add = |field: String, name: &str| {
        out.push(SecretUse {
            field,
            name: name.to_string(),
        })
    };
    if let Some(ext) = &spec.external {
        if let Some(r) = &ext.credentials_secret_ref {
            add("spec.external.credentialsSecretRef".into(), &r.name);
        }
        if let Some(r) = &ext.ca_secret_ref {
            add("spec.external.caSecretRef".into(), &r.name);
        }
    }
    if let Some(auth) = &spec.auth {
        if let Some(r) = &auth.htpasswd_secret_ref {
            add("spec.auth.htpasswdSecretRef".into(), &r.name);
        }
        if let Some(r) = &auth.operator_credentials_secret_ref {
            add("spec.auth.operatorCredentialsSecretRef".into(), &r.name);
        }
        if let Some(m) = &auth.mtls {
            add(
                "spec.auth.mtls.clientCaSecretRef".into(),
                &m.client_ca_secret_ref.name,
            );
        }
        if let Some(b) = &auth.bearer {
            if let Some(r) = &b.cert_secret_ref {
                add("spec.auth.bearer.certSecretRef".into(), &r.name);
            }
            for (i, o) in b.oidc.iter().enumerate() {
                if let Some(r) = &o.ca_secret_ref {
                    add(format!("spec.auth.bearer.oidc[{i}].caSecretRef"), &r.name);
                }
            }
        }
        if let Some(l) = &auth.ldap {
            if let Some(r) = &l.credentials_secret_ref {
                add("spec.auth.ldap.credentialsSecretRef".into(), &r.name);
            }
            if let Some(r) = &l.ca_secret_ref {
                add("spec.auth.ldap.caSecretRef".into(), &r.name);
            }
        }
        if let Some(o) = &auth.openid {
            for (i, p) in o.providers.iter().enumerate() {
                add(
                    format!("spec.auth.openid.providers[{i}].credentialsSecretRef"),
                    &p.credentials_secret_ref.name,
                );
            }
        }
    }
    if let Some(r) = &spec.tls {
        add("spec.tls".into(), &r.name);
    }
    if let Some(r) = spec
        .sync
        .as_ref()
        .and_then(|s| s.credentials_secret_ref.as_ref())
    {
        add("spec.sync.credentialsSecretRef".into(), &r.name);
    }
    if let Some(r) = spec
        .storage
        .as_ref()
        .and_then(|s| s.s3.as_ref())
        .and_then(|s| s.credentials_secret_ref.as_ref())
    {
        add("spec.storage.s3.credentialsSecretRef".into(), &r.name);
    }
    out
}

/// Whether `host` (as in a URL, without port) is inside the cluster: a loopback address or
/// `localhost`, or a Service name (`<service>.<namespace>.svc`, optionally followed by the
/// cluster domain). Any other name or address counts as outside.
pub fn is_inside_cluster(host: &str, cluster_domain: &str) -> bool {
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase();
    if let Ok(ip) = host.parse::<IpAddr>() {
        return ip.is_loopback();
    }
    if host == "localhost" || host.ends_with(".localhost") {
        return true;
    }
    let service = host
        .strip_suffix(&format!(".{cluster_domain}"))
        .unwrap_or(&host);
    service
        .strip_suffix(".svc")
        .is_some_and(|rest| rest.split('.').count() == 2 && rest.split('.').all(|l| !l.is_empty()))
}

impl Lockdown {
    /// The checks that need only the spec: the image of a managed Registry (`version` gives the
    /// default image's tag), then the transport of an external one. `default_image` is the image
    /// run when `spec.image` is unset.
    pub fn check_spec(
        &self,
        spec: &RegistrySpec,
        default_image: &str,
        cluster_domain: &str,
    ) -> Result<(), Refusal> {
        if spec.is_managed() {
            self.check_image(spec.image.as_deref().unwrap_or(default_image))?;
        }
        let Some(ext) = &spec.external else {
            return Ok(());
        };
        if ext.insecure_skip_tls_verify == Some(true) && !self.allow_insecure_skip_tls_verify {
            return Err(Refusal::InsecureTlsNotAllowed {
                url: crate::oci::redact::display_url(&ext.url),
            });
        }
        if ext.credentials_secret_ref.is_some() && !self.allow_plain_http_credentials {
            if let Ok(url) = url::Url::parse(&ext.url) {
                let host = url.host_str().unwrap_or_default();
                if url.scheme() == "http" && !is_inside_cluster(host, cluster_domain) {
                    return Err(Refusal::PlainHttpCredentialsNotAllowed {
                        host: host.to_string(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Whether a managed Registry may run `image`.
    pub fn check_image(&self, image: &str) -> Result<(), Refusal> {
        if self.allowed_images.is_empty() {
            return Ok(());
        }
        let allowed = ImageReference::parse(image.trim())
            .is_ok_and(|r| self.allowed_images.iter().any(|p| p.matches(&r)));
        if allowed {
            Ok(())
        } else {
            Err(Refusal::ImageNotAllowed {
                image: image.to_string(),
                allowed: self
                    .allowed_images
                    .iter()
                    .map(|p| p.as_str().to_string())
                    .collect(),
            })
        }
    }

    /// Whether the label check needs the Secrets' labels at all.
    pub fn needs_secret_labels(&self) -> bool {
        self.secret_label.is_some()
    }

    /// Whether every Secret the Registry names carries `--secret-label`. `labels` holds the
    /// labels of each Secret that exists (by name); a missing one is not refused here (the
    /// reconciler waits for it, and checks again once it exists).
    pub fn check_secrets(
        &self,
        namespace: &str,
        uses: &[SecretUse],
        labels: &BTreeMap<String, BTreeMap<String, String>>,
    ) -> Result<(), Refusal> {
        let Some(label) = &self.secret_label else {
            return Ok(());
        };
        for u in uses {
            if let Some(l) = labels.get(&u.name) {
                if !label.carried_by(l) {
                    return Err(Refusal::SecretNotAllowed {
                        namespace: namespace.to_string(),
                        name: u.name.clone(),
                        field: u.field.clone(),
                        label: label.to_string(),
                    });
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::common::{SecretKeyRef, SecretRef};
    use crate::api::registry::{
        AuthSpec, ExternalRegistry, LdapSpec, MtlsSpec, S3Storage, StorageSpec, SyncSpec,
    };

    fn official() -> Lockdown {
        Lockdown {
            allowed_images: OFFICIAL_ZOT_IMAGES
                .iter()
                .map(|p| ImagePattern::parse(p).unwrap())
                .collect(),
            ..Lockdown::default()
        }
    }

    fn managed(image: Option<&str>) -> RegistrySpec {
        RegistrySpec {
            version: Some("v2.1.20".into()),
            image: image.map(str::to_string),
            ..RegistrySpec::default()
        }
    }

    fn external(url: &str, credentials: bool, insecure: bool) -> RegistrySpec {
        RegistrySpec {
            external: Some(ExternalRegistry {
                url: url.into(),
                credentials_secret_ref: credentials.then(|| SecretRef {
                    name: "pull".into(),
                }),
                insecure_skip_tls_verify: insecure.then_some(true),
                ..ExternalRegistry::default()
            }),
            ..RegistrySpec::default()
        }
    }

    const DEFAULT: &str = "ghcr.io/project-zot/zot:v2.1.20";

    #[test]
    fn the_official_images_pass_and_a_foreign_image_is_refused_naming_it_and_the_list() {
        let l = official();
        assert_eq!(
            l.check_spec(&managed(None), DEFAULT, "cluster.local"),
            Ok(())
        );
        for ok in [
            "ghcr.io/project-zot/zot-linux-arm64:v2.1.20",
            "ghcr.io/project-zot/zot-minimal:v2.1.20@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert_eq!(l.check_image(ok), Ok(()), "{ok}");
        }
        let refused = l
            .check_spec(
                &managed(Some("evil.example/miner:v1")),
                DEFAULT,
                "cluster.local",
            )
            .unwrap_err();
        assert_eq!(refused.reason(), Reason::ImageNotAllowed);
        let message = refused.to_string();
        assert!(message.contains("\"evil.example/miner:v1\""), "{message}");
        assert!(
            message.contains("ghcr.io/project-zot/zot-minimal-linux-amd64"),
            "{message}"
        );
        // a look-alike repository is no prefix match
        assert!(l
            .check_image("ghcr.io/project-zot/zot-evil:v2.1.20")
            .is_err());
        assert!(l.check_image("ghcr.io/project-zot/zot/extra:v1").is_err());
        assert!(l.check_image("not a reference").is_err());
    }

    #[test]
    fn without_allowed_images_any_image_runs() {
        assert_eq!(
            Lockdown::default().check_image("evil.example/miner:v1"),
            Ok(())
        );
    }

    #[test]
    fn patterns_match_a_repository_a_subtree_a_tag_or_a_digest() {
        let l = |p: &str| Lockdown {
            allowed_images: vec![ImagePattern::parse(p).unwrap()],
            ..Lockdown::default()
        };
        let mirror = l("registry.corp.example:5000/mirror/");
        assert!(mirror
            .check_image("registry.corp.example:5000/mirror/zot:v2.1.20")
            .is_ok());
        assert!(mirror
            .check_image("registry.corp.example:5000/mirror/a/zot:v1")
            .is_ok());
        assert!(mirror
            .check_image("registry.corp.example:5000/other/zot:v1")
            .is_err());
        let tags = l("ghcr.io/project-zot/zot:v2.1.*");
        assert!(tags.check_image("ghcr.io/project-zot/zot:v2.1.20").is_ok());
        assert!(tags.check_image("ghcr.io/project-zot/zot:latest").is_err());
        assert!(tags.check_image("ghcr.io/project-zot/zot").is_err());
        // an allowed tag does not vouch for a digest pulled beside it
        assert!(tags
            .check_image(
                "ghcr.io/project-zot/zot:v2.1.20@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
            )
            .is_err());
        let glob = l("ghcr.io/project-zot/*");
        assert!(glob
            .check_image("ghcr.io/project-zot/zot-minimal:v2.1.20")
            .is_ok());
        assert!(glob.check_image("ghcr.io/project-zot/a/b:v1").is_err());
        let digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let pinned = l(&format!("ghcr.io/project-zot/zot@{digest}"));
        assert!(pinned
            .check_image(&format!("ghcr.io/project-zot/zot:v2.1.20@{digest}"))
            .is_ok());
        assert!(pinned
            .check_image("ghcr.io/project-zot/zot:v2.1.20")
            .is_err());
        // Docker Hub short names are compared in their full form
        assert!(l("docker.io/library/zot").check_image("zot:v1").is_ok());
        assert!(ImagePattern::parse("ghcr.io/[").is_err());
        assert!(ImagePattern::parse(" ").is_err());
    }

    #[test]
    fn insecure_tls_is_refused_unless_allowed() {
        let spec = external("https://harbor.example.com", false, true);
        let refused = Lockdown::default()
            .check_spec(&spec, DEFAULT, "cluster.local")
            .unwrap_err();
        assert_eq!(refused.reason(), Reason::InsecureTlsNotAllowed);
        assert!(refused.to_string().contains("https://harbor.example.com"));
        // the message (a condition, an Event) never carries user info of the URL
        let with_user = external("https://robot:s3cret@harbor.example.com", false, true);
        let refused = Lockdown::default()
            .check_spec(&with_user, DEFAULT, "cluster.local")
            .unwrap_err();
        assert!(!refused.to_string().contains("s3cret"), "{refused}");
        let allowed = Lockdown {
            allow_insecure_skip_tls_verify: true,
            ..Lockdown::default()
        };
        assert_eq!(allowed.check_spec(&spec, DEFAULT, "cluster.local"), Ok(()));
    }

    #[test]
    fn credentials_over_plain_http_leave_the_cluster_only_when_allowed() {
        let l = Lockdown::default();
        let outside = external("http://registry.example.com:5000", true, false);
        let refused = l
            .check_spec(&outside, DEFAULT, "cluster.local")
            .unwrap_err();
        assert_eq!(refused.reason(), Reason::PlainHttpCredentialsNotAllowed);
        assert!(refused.to_string().contains("registry.example.com"));
        for inside in [
            "http://127.0.0.1:5000",
            "http://127.0.0.2:5000",
            "http://[::1]:5000",
            "http://localhost:5000",
            "http://zot.team-a.svc:5000",
            "http://zot.team-a.svc.cluster.local:5000",
        ] {
            let spec = external(inside, true, false);
            assert_eq!(
                l.check_spec(&spec, DEFAULT, "cluster.local"),
                Ok(()),
                "{inside}"
            );
        }
        for outside in [
            "http://10.0.0.8:5000",
            "http://zot.svc.example.com",
            "http://svc:5000",
            "http://zot.team-a.svc.other.domain",
        ] {
            let spec = external(outside, true, false);
            assert!(
                l.check_spec(&spec, DEFAULT, "cluster.local").is_err(),
                "{outside}"
            );
        }
        // https, or no credentials at all, is fine
        assert_eq!(
            l.check_spec(
                &external("https://registry.example.com", true, false),
                DEFAULT,
                "cluster.local"
            ),
            Ok(())
        );
        assert_eq!(
            l.check_spec(
                &external("http://registry.example.com", false, false),
                DEFAULT,
                "cluster.local"
            ),
            Ok(())
        );
        let allowed = Lockdown {
            allow_plain_http_credentials: true,
            ..Lockdown::default()
        };
        assert_eq!(
            allowed.check_spec(&outside, DEFAULT, "cluster.local"),
            Ok(())
        );
    }

    fn many_secrets() -> RegistrySpec {
        RegistrySpec {
            version: Some("v2.1.20".into()),
            tls: Some(SecretRef { name: "tls".into() }),
            auth: Some(AuthSpec {
                htpasswd_secret_ref: Some(SecretKeyRef {
                    name: "users".into(),
                    key: None,
                }),
                mtls: Some(MtlsSpec {
                    client_ca_secret_ref: SecretKeyRef {
                        name: "clients".into(),
                        key: None,
                    },
                    ..MtlsSpec::default()
                }),
                ldap: Some(LdapSpec {
                    credentials_secret_ref: Some(SecretKeyRef {
                        name: "ldap-bind".into(),
                        key: None,
                    }),
                    ..LdapSpec::default()
                }),
                ..AuthSpec::default()
            }),
            sync: Some(SyncSpec {
                credentials_secret_ref: Some(SecretKeyRef {
                    name: "upstream".into(),
                    key: None,
                }),
                ..SyncSpec::default()
            }),
            storage: Some(StorageSpec {
                s3: Some(S3Storage {
                    credentials_secret_ref: Some(SecretRef { name: "s3".into() }),
                    ..S3Storage::default()
                }),
                ..StorageSpec::default()
            }),
            ..RegistrySpec::default()
        }
    }

    #[test]
    fn every_secret_a_registry_names_is_listed_with_its_field() {
        let fields: Vec<(String, String)> = secret_uses(&many_secrets())
            .into_iter()
            .map(|u| (u.field, u.name))
            .collect();
        let want = [
            ("spec.auth.htpasswdSecretRef", "users"),
            ("spec.auth.mtls.clientCaSecretRef", "clients"),
            ("spec.auth.ldap.credentialsSecretRef", "ldap-bind"),
            ("spec.tls", "tls"),
            ("spec.sync.credentialsSecretRef", "upstream"),
            ("spec.storage.s3.credentialsSecretRef", "s3"),
        ];
        assert_eq!(
            fields,
            want.map(|(f, n)| (f.to_string(), n.to_string())).to_vec()
        );
    }

    /// Every property of the Registry schema that names a Secret (`*SecretRef`, and `tls`),
    /// as `spec.auth.bearer.oidc[].caSecretRef`.
    fn schema_secret_fields() -> Vec<String> {
        fn walk(schema: &serde_json::Value, path: &str, out: &mut Vec<String>) {
            if let Some(props) = schema["properties"].as_object() {
                for (k, v) in props {
                    let here = format!("{path}.{k}");
                    if k.ends_with("SecretRef") || here == "spec.tls" {
                        out.push(here.clone());
                    }
                    walk(v, &here, out);
                }
            }
            if schema["items"].is_object() {
                walk(&schema["items"], &format!("{path}[]"), out);
            }
        }
        use kube::CustomResourceExt;
        let crd = serde_json::to_value(crate::api::Registry::crd()).unwrap();
        let root = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
        let mut out = Vec::new();
        walk(root, "spec", &mut out);
        out.sort();
        out
    }

    #[test]
    fn every_secret_field_of_the_schema_is_asked_about() {
        let rest: RegistrySpec = serde_json::from_value(serde_json::json!({
            "external": {"url": "https://r.example", "credentialsSecretRef": {"name": "ec"},
                         "caSecretRef": {"name": "eca"}},
            "auth": {
                "operatorCredentialsSecretRef": {"name": "op"},
                "bearer": {"realm": "https://a.example", "service": "s", "certSecretRef": {"name": "bc"},
                           "oidc": [{"issuer": "https://i.example", "audiences": ["a"], "caSecretRef": {"name": "oc"}}]},
                "ldap": {"address": "l", "baseDN": "dc=x", "userAttribute": "uid", "caSecretRef": {"name": "lca"}},
                "openid": {"providers": [{"kind": "oidc", "issuer": "https://i.example", "scopes": ["openid"],
                                          "credentialsSecretRef": {"name": "oid"}}]}
            }
        }))
        .unwrap();
        let mut asked: Vec<String> = secret_uses(&many_secrets())
            .into_iter()
            .chain(secret_uses(&rest))
            .map(|u| u.field.replace("[0]", "[]"))
            .collect();
        asked.sort();
        asked.dedup();
        assert_eq!(asked, schema_secret_fields());
    }

    #[test]
    fn a_secret_without_the_label_is_refused_by_name_and_field() {
        let l = Lockdown {
            secret_label: Some(SecretLabel::parse("registry-operator.dev/usable=true").unwrap()),
            ..Lockdown::default()
        };
        let uses = secret_uses(&many_secrets());
        let good = BTreeMap::from([(
            "registry-operator.dev/usable".to_string(),
            "true".to_string(),
        )]);
        let mut labels: BTreeMap<String, BTreeMap<String, String>> = uses
            .iter()
            .map(|u| (u.name.clone(), good.clone()))
            .collect();
        assert_eq!(l.check_secrets("team-a", &uses, &labels), Ok(()));
        // a Secret not there yet is not refused here
        labels.remove("users");
        assert_eq!(l.check_secrets("team-a", &uses, &labels), Ok(()));
        labels.insert(
            "ldap-bind".into(),
            BTreeMap::from([("registry-operator.dev/usable".into(), "no".into())]),
        );
        let refused = l.check_secrets("team-a", &uses, &labels).unwrap_err();
        assert_eq!(refused.reason(), Reason::SecretNotAllowed);
        assert_eq!(
            refused.to_string(),
            "Secret team-a/ldap-bind, which spec.auth.ldap.credentialsSecretRef names, is not allowed by the operator: Secrets a Registry uses must carry the label registry-operator.dev/usable=true (--secret-label, chart value lockdown.secretLabel)"
        );
        // without --secret-label, nothing is asked
        assert_eq!(
            Lockdown::default().check_secrets("team-a", &uses, &BTreeMap::new()),
            Ok(())
        );
    }

    #[test]
    fn a_secret_label_is_a_key_or_a_key_and_value() {
        let any = SecretLabel::parse("team.example/registry").unwrap();
        assert!(any.carried_by(&BTreeMap::from([(
            "team.example/registry".into(),
            "".into()
        )])));
        assert!(!any.carried_by(&BTreeMap::new()));
        assert_eq!(any.to_string(), "team.example/registry");
        assert!(SecretLabel::parse("").is_err());
        assert!(SecretLabel::parse("=x").is_err());
        assert!(SecretLabel::parse("bad key").is_err());
    }
}
