//! Names, tags, digests and full image references, validated by the distribution spec's
//! grammar (<https://github.com/opencontainers/distribution-spec/blob/main/spec.md>).
//!
//! ```text
//! repository := component ("/" component)*            at most 255 characters
//! component  := [a-z0-9]+ ((\. | _ | __ | -+) [a-z0-9]+)*
//! tag        := [a-zA-Z0-9_] [a-zA-Z0-9._-]{0,127}
//! digest     := algorithm ":" encoded   (sha256: 64 lowercase hex, sha512: 128)
//! reference  := [host[:port] "/"] repository [":" tag] ["@" digest]
//! ```

use std::fmt;
use std::str::FromStr;

use super::digest::validate_digest;
use super::error::{OciError, Result};
use super::host::is_valid_host;

/// Longest repository name accepted (the distribution reference grammar's limit).
pub const MAX_REPOSITORY_LEN: usize = 255;
/// Longest tag accepted.
pub const MAX_TAG_LEN: usize = 128;
/// The registry host Docker Hub images live on when a reference names no host.
pub const DOCKER_HUB: &str = "docker.io";

fn is_lower_alnum(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn component_ok(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_lower_alnum(b[0]) || !is_lower_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_lower_alnum(b[i]) {
            i += 1;
            continue;
        }
        // a separator run: ".", "_", "__" or one or more "-"
        let start = i;
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < b.len() && b[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < b.len() && b[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
        if i == start || i >= b.len() || !is_lower_alnum(b[i]) {
            return false;
        }
    }
    true
}

/// `value` (a `what`) is neither empty nor longer than `max` bytes.
fn check_length(what: &'static str, value: &str, max: usize) -> Result<()> {
    if value.is_empty() {
        return Err(OciError::invalid(what, value, "empty"));
    }
    if value.len() > max {
        return Err(OciError::invalid(
            what,
            value,
            format!("longer than {max} characters"),
        ));
    }
    Ok(())
}

/// Checks a repository name (`team-a/app`) against the distribution grammar.
pub fn validate_repository(name: &str) -> Result<()> {
    check_length("repository", name, MAX_REPOSITORY_LEN)?;
    for c in name.split('/') {
        if !component_ok(c) {
            return Err(OciError::invalid(
                "repository",
                name,
                format!("path component {c:?} must match [a-z0-9]+((.|_|__|-+)[a-z0-9]+)*"),
            ));
        }
    }
    Ok(())
}

/// Checks a tag (`v1.2.3`) against the distribution grammar.
pub fn validate_tag(tag: &str) -> Result<()> {
    let b = tag.as_bytes();
    check_length("tag", tag, MAX_TAG_LEN)?;
    let first_ok = b[0].is_ascii_alphanumeric() || b[0] == b'_';
    let rest_ok = b[1..]
        .iter()
        .all(|&c| c.is_ascii_alphanumeric() || c == b'_' || c == b'.' || c == b'-');
    if !first_ok || !rest_ok {
        return Err(OciError::invalid(
            "tag",
            tag,
            "must match [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}",
        ));
    }
    Ok(())
}

/// Checks a manifest reference: a tag or a digest.
pub fn validate_manifest_reference(reference: &str) -> Result<()> {
    if reference.contains(':') {
        validate_digest(reference)
    } else {
        validate_tag(reference)
    }
}

/// A full image reference as written in a Pod spec: `host[:port]/path[:tag][@digest]`.
///
/// A reference without a host is a Docker Hub image: `nginx` is `docker.io/library/nginx`,
/// `bitnami/redis` is `docker.io/bitnami/redis`; `index.docker.io` is normalised to `docker.io`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageReference {
    /// Registry host, with port when one was given (`registry.example.com:5000`).
    pub registry: String,
    /// Repository path inside the registry (`team-a/app`, `library/nginx`).
    pub repository: String,
    /// Tag, when given.
    pub tag: Option<String>,
    /// Digest, when given.
    pub digest: Option<String>,
}

impl ImageReference {
    /// Parses a reference; see the type's documentation for the normalisation rules.
    pub fn parse(input: &str) -> Result<Self> {
        let bad = |msg: &str| OciError::invalid("reference", input, msg);
        if input.is_empty() {
            return Err(bad("empty"));
        }
        if input.len() > 4096 {
            return Err(bad("longer than 4096 characters"));
        }
        if input
            .bytes()
            .any(|c| c.is_ascii_whitespace() || c.is_ascii_control())
        {
            return Err(bad("contains whitespace or control characters"));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((r, d)) => {
                validate_digest(d)?;
                (r, Some(d.to_string()))
            }
            None => (input, None),
        };
        let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let t = &rest[last_slash + i + 1..];
                validate_tag(t)?;
                (&rest[..last_slash + i], Some(t.to_string()))
            }
            None => (rest, None),
        };
        if name.is_empty() {
            return Err(bad("missing repository"));
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, path))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                if !is_valid_host(first) {
                    return Err(bad("invalid registry host"));
                }
                let host = if first == "index.docker.io" || first == "registry-1.docker.io" {
                    DOCKER_HUB.to_string()
                } else {
                    first.to_string()
                };
                (host, path.to_string())
            }
            Some(_) => (DOCKER_HUB.to_string(), name.to_string()),
            None => (DOCKER_HUB.to_string(), name.to_string()),
        };
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        validate_repository(&repository)?;
        Ok(ImageReference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// Parses a container runtime image ID as found in `status.containerStatuses[].imageID`:
    /// strips a `docker-pullable://` or `docker://` prefix first. IDs that are a bare digest
    /// (`sha256:…`, no repository) are rejected: they name no registry.
    pub fn parse_image_id(input: &str) -> Result<Self> {
        let s = input
            .strip_prefix("docker-pullable://")
            .or_else(|| input.strip_prefix("docker://"))
            .unwrap_or(input);
        Self::parse(s)
    }

    /// The tag, or `latest` when neither a tag nor a digest was given (what a runtime pulls).
    pub fn tag_or_default(&self) -> Option<&str> {
        match (&self.tag, &self.digest) {
            (Some(t), _) => Some(t),
            (None, None) => Some("latest"),
            (None, Some(_)) => None,
        }
    }
}

impl FromStr for ImageReference {
    type Err = OciError;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl fmt::Display for ImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn repository_grammar_accepts_nested_names_and_separators() {
        for ok in [
            "a",
            "team-a/app",
            "a/b/c",
            "a__b",
            "a.b_c--d",
            "project-a/team-1/service-9",
        ] {
            assert!(validate_repository(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "A", "a/", "/a", "a//b", "-a", "a-", "a___b", "a..b", "a:b", "a b",
        ] {
            assert!(validate_repository(bad).is_err(), "{bad}");
        }
        assert!(validate_repository(&"a".repeat(256)).is_err());
    }

    #[test]
    fn tag_grammar_limits_charset_and_length() {
        for ok in ["latest", "v1.2.3", "_x", "sha256-abc", "A-b_c.d"] {
            assert!(validate_tag(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".x", "-x", "a:b", "a/b", "ä"] {
            assert!(validate_tag(bad).is_err(), "{bad}");
        }
        assert!(validate_tag(&"a".repeat(128)).is_ok());
        assert!(validate_tag(&"a".repeat(129)).is_err());
    }

    #[test]
    fn docker_hub_short_names_are_normalised() {
        let r = ImageReference::parse("nginx").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/nginx");
        assert_eq!(r.tag_or_default(), Some("latest"));
        let r = ImageReference::parse("bitnami/redis:7").unwrap();
        assert_eq!(r.to_string(), "docker.io/bitnami/redis:7");
        let r = ImageReference::parse("index.docker.io/library/alpine:3").unwrap();
        assert_eq!(r.registry, "docker.io");
    }

    #[test]
    fn hosts_ports_tags_and_digests_are_split() {
        let r = ImageReference::parse(&format!("localhost:5000/team-a/app:v1@{D}")).unwrap();
        assert_eq!(r.registry, "localhost:5000");
        assert_eq!(r.repository, "team-a/app");
        assert_eq!(r.tag.as_deref(), Some("v1"));
        assert_eq!(r.digest.as_deref(), Some(D));
        let r = ImageReference::parse(&format!("reg.example.com/app@{D}")).unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.tag_or_default(), None);
        let r = ImageReference::parse("[::1]:5000/app").unwrap();
        assert_eq!(r.registry, "[::1]:5000");
        let r =
            ImageReference::parse_image_id(&format!("docker-pullable://reg.io/a/b@{D}")).unwrap();
        assert_eq!(r.repository, "a/b");
    }

    #[test]
    fn malformed_references_are_typed_errors() {
        for bad in [
            "",
            "UPPER/case",
            "reg.io/app:",
            "reg.io/app@sha256:short",
            "reg.io/:tag",
            "reg.io/app:bad/tag",
            "re g.io/app",
            "reg..io/app",
            "reg.io:99999999/app",
        ] {
            let e = ImageReference::parse(bad).unwrap_err();
            assert_eq!(e.reason(), "InvalidReference", "{bad}");
        }
    }

    proptest! {
        #[test]
        fn reference_parser_never_panics(s in "\\PC{0,300}") {
            let _ = ImageReference::parse(&s);
            let _ = validate_repository(&s);
            let _ = validate_tag(&s);
            let _ = validate_digest(&s);
        }

        #[test]
        fn valid_references_round_trip(
            host in "[a-z][a-z0-9]{0,10}\\.[a-z]{2,5}(:[0-9]{1,5})?",
            repo in "[a-z0-9]{1,8}(/[a-z0-9]{1,8}(-[a-z0-9]{1,4})?){0,3}",
            tag in proptest::option::of("[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}"),
        ) {
            let mut s = format!("{host}/{repo}");
            if let Some(t) = &tag { s.push(':'); s.push_str(t); }
            let r = ImageReference::parse(&s).unwrap();
            prop_assert_eq!(r.to_string(), s);
            prop_assert_eq!(r.tag, tag);
        }
    }
}
