//! Registry host names in one place: [`host_part`], the one primitive, and the forms built on
//! it that differ on purpose — docker config keys with Docker Hub's aliases, image hosts
//! without the runtime's default `:443`, endpoints with an explicit port — and the host
//! grammar of image references.

use url::Url;

/// The `host[:port]` of a URL or host written any way (`https://Reg.io/v1/` → `reg.io`):
/// without scheme or path, lower case.
pub fn host_part(s: &str) -> String {
    let s = s.trim();
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    s.split('/').next().unwrap_or("").to_ascii_lowercase()
}

/// Reduces a docker config key (`https://reg.io/v1/`, `reg.io:5000`) to `host[:port]`, and
/// Docker Hub's aliases to `docker.io`.
pub fn docker_config_host(key: &str) -> String {
    let host = host_part(key);
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".to_string()
        }
        _ => host,
    }
}

/// A registry host as images name it, in one spelling: lower case, without a scheme, path or
/// trailing slash, and without `:443` — the port a container runtime uses when an image
/// names none — so `Reg.example.com:443`, `https://reg.example.com/` and `reg.example.com`
/// are one host. Other ports stay (`:5000`, and `:80`, which is not the runtime's default).
pub fn image_host(host: &str) -> String {
    let h = host_part(host);
    match h.strip_suffix(":443") {
        Some(bare) if !bare.is_empty() => bare.to_string(),
        _ => h,
    }
}

/// A base URL as one registry endpoint: scheme, lower-case host, explicit port, path without
/// a trailing slash (`https://harbor.example.com:443/mirror`). `None` without a host or a
/// known port.
pub fn endpoint_with_port(base: &Url) -> Option<String> {
    let host = host_part(base.host_str()?);
    let port = base.port_or_known_default()?;
    let path = base.path().trim_end_matches('/');
    Some(format!("{}://{host}:{port}{path}", base.scheme()))
}

/// `host[:port]` of a URL as written (no default port added), as Pod images and docker config
/// name a registry; empty without a host.
pub fn url_host(url: &Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        _ => String::new(),
    }
}

/// True when `host` is a registry host by the reference grammar: DNS labels or a bracketed
/// IPv6 address, with an optional numeric port (`reg.example.com:5000`, `[::1]:5000`).
pub fn is_valid_host(host: &str) -> bool {
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        // [ipv6]:port
        let Some((ip, after)) = rest.split_once(']') else {
            return false;
        };
        if ip.is_empty()
            || !ip
                .bytes()
                .all(|c| c.is_ascii_hexdigit() || c == b':' || c == b'.')
        {
            return false;
        }
        match after.strip_prefix(':') {
            Some(p) => ("x", Some(p)),
            None if after.is_empty() => ("x", None),
            None => return false,
        }
    } else {
        match host.split_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (host, None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || p.len() > 5 || !p.bytes().all(|c| c.is_ascii_digit()) {
            return false;
        }
    }
    !name.is_empty()
        && name.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        })
}
