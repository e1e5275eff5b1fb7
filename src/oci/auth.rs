//! Credentials and authentication challenges.
//!
//! - [`Credentials`]: anonymous or basic (user/password). Bearer tokens are obtained by the
//!   client itself from the realm a `WWW-Authenticate: Bearer` challenge names.
//! - [`DockerConfig`]: the `auths` map of `$DOCKER_CONFIG/config.json` /
//!   `~/.docker/config.json` (as every registry tool reads it), including the base64 `auth`
//!   field, and the legacy `.dockercfg` shape.
//! - [`credentials_from_secret_data`]: credentials from the data of a Kubernetes Secret of type
//!   `kubernetes.io/dockerconfigjson`, `kubernetes.io/dockercfg` or `kubernetes.io/basic-auth`,
//!   taken as plain bytes so that this module knows nothing of Kubernetes.
//! - [`parse_challenges`]: the `WWW-Authenticate` header grammar of RFC 9110 §11.6.1.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use base64::Engine as _;
use serde::Deserialize;

use super::error::{OciError, Result};
use super::host::docker_config_host;

/// Who the client is towards a registry.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Credentials {
    /// No credentials; bearer tokens are still requested anonymously when challenged.
    #[default]
    Anonymous,
    /// User name and password (or a robot token used as password), sent as HTTP Basic to the
    /// registry or to its token realm.
    Basic {
        /// The user name.
        username: String,
        /// The password; never printed by `Debug`.
        password: String,
    },
}

impl Credentials {
    /// Basic credentials.
    pub fn basic(username: impl Into<String>, password: impl Into<String>) -> Self {
        Credentials::Basic {
            username: username.into(),
            password: password.into(),
        }
    }

    /// The `Authorization: Basic …` header value, if these are basic credentials.
    pub(crate) fn basic_header(&self) -> Option<String> {
        match self {
            Credentials::Anonymous => None,
            Credentials::Basic { username, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
            )),
        }
    }

    /// The user name, if any (safe to log).
    pub fn username(&self) -> Option<&str> {
        match self {
            Credentials::Anonymous => None,
            Credentials::Basic { username, .. } => Some(username),
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Anonymous => f.write_str("Anonymous"),
            Credentials::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"***")
                .finish(),
        }
    }
}

#[derive(Clone, Default)]
struct AuthEntry {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

impl fmt::Debug for AuthEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthEntry")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// The `auths` section of a docker `config.json` (or a legacy `.dockercfg` map), and the
/// credential helpers it names (`credsStore`, `credHelpers`).
#[derive(Debug, Clone, Default)]
pub struct DockerConfig {
    auths: BTreeMap<String, AuthEntry>,
    /// The original `auths` keys, by normalised host (a helper is asked with that key).
    keys: BTreeMap<String, String>,
    creds_store: Option<String>,
    cred_helpers: BTreeMap<String, String>,
}

impl DockerConfig {
    /// Parses `config.json` bytes (`{"auths": {...}}`) or a legacy `.dockercfg` map
    /// (`{"host": {"auth": ...}}`). An error says where the file is malformed (line and
    /// column, or the key) and what was expected, and never quotes a value: a config is
    /// mostly secrets.
    pub fn from_slice(bytes: &[u8]) -> Result<Self> {
        let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
            let what = match e.classify() {
                serde_json::error::Category::Eof => "ends early",
                _ => "is not JSON",
            };
            OciError::InvalidCredentials {
                message: format!(
                    "docker config {what} (line {}, column {})",
                    e.line(),
                    e.column()
                ),
            }
        })?;
        let Some(top) = v.as_object() else {
            return Err(shape_error("the document", "an object", &v));
        };
        let creds_store = match top.get("credsStore") {
            Some(serde_json::Value::String(h)) if !h.is_empty() => Some(h.clone()),
            _ => None,
        };
        let cred_helpers: BTreeMap<String, String> = match top.get("credHelpers") {
            Some(serde_json::Value::Object(m)) => {
                let mut out = BTreeMap::new();
                for (k, h) in m {
                    let h = h
                        .as_str()
                        .ok_or_else(|| shape_error(&format!("credHelpers.{k}"), "a string", h))?;
                    out.insert(docker_config_host(k), h.to_string());
                }
                out
            }
            Some(serde_json::Value::Null) | None => BTreeMap::new(),
            Some(other) => return Err(shape_error("credHelpers", "an object", other)),
        };
        let (map, prefix) = match top.get("auths") {
            Some(serde_json::Value::Null) => (None, "auths."),
            Some(serde_json::Value::Object(a)) => (Some(a), "auths."),
            Some(other) => return Err(shape_error("auths", "an object", other)),
            None if creds_store.is_none() && cred_helpers.is_empty() => (Some(top), ""),
            None => (None, ""),
        };
        let mut raw: BTreeMap<String, AuthEntry> = BTreeMap::new();
        for (k, e) in map.into_iter().flatten() {
            raw.insert(k.clone(), auth_entry(&format!("{prefix}{k}"), e)?);
        }
        let mut auths = BTreeMap::new();
        let mut keys = BTreeMap::new();
        for (k, e) in raw {
            let host = docker_config_host(&k);
            keys.entry(host.clone()).or_insert(k);
            auths.entry(host).or_insert(e);
        }
        Ok(DockerConfig {
            auths,
            keys,
            creds_store,
            cred_helpers,
        })
    }

    /// The credential helper docker would ask for `registry`: its `credHelpers` entry, else
    /// `credsStore`.
    pub fn helper_for(&self, registry: &str) -> Option<&str> {
        self.cred_helpers
            .get(&docker_config_host(registry))
            .or(self.creds_store.as_ref())
            .map(String::as_str)
    }

    /// Credentials for `registry` as the docker CLI finds them: from its credential helper
    /// when the config names one (running `docker-credential-<helper> get`), else from
    /// `auths`. For command-line use only — the operator never runs programs for
    /// credentials. Errors say what to do: a helper missing from `PATH`, failing, or
    /// answering with an identity token (not supported) is an error, never a silent fall back
    /// to anonymous access.
    pub fn resolve(&self, registry: &str) -> Result<Option<Credentials>> {
        let Some(helper) = self.helper_for(registry) else {
            return self.credentials_for(registry);
        };
        let host = docker_config_host(registry);
        let server = match self.keys.get(&host) {
            Some(k) => k.clone(),
            None if host == "docker.io" => "https://index.docker.io/v1/".to_string(),
            None => host.clone(),
        };
        match run_credential_helper(helper, &server)? {
            Some(c) => Ok(Some(c)),
            // the helper has nothing for this registry: docker then tries `auths`
            None => self.credentials_for(registry),
        }
    }

    /// Where docker looks for its config: `$DOCKER_CONFIG/config.json`, else
    /// `$HOME/.docker/config.json`.
    pub fn default_path() -> Option<PathBuf> {
        if let Some(d) = std::env::var_os("DOCKER_CONFIG") {
            return Some(PathBuf::from(d).join("config.json"));
        }
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker").join("config.json"))
    }

    /// Loads the default docker config; `Ok(None)` when there is none.
    pub fn load_default() -> Result<Option<Self>> {
        let Some(path) = Self::default_path() else {
            return Ok(None);
        };
        match std::fs::read(&path) {
            Ok(bytes) => Self::from_slice(&bytes).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(OciError::InvalidCredentials {
                message: format!("reading {}: {e}", path.display()),
            }),
        }
    }

    /// The credentials stored for `registry` (`host[:port]`, any docker key spelling).
    /// `Ok(None)` when there is no entry; an error when the entry is malformed.
    pub fn credentials_for(&self, registry: &str) -> Result<Option<Credentials>> {
        let Some(e) = self.auths.get(&docker_config_host(registry)) else {
            return Ok(None);
        };
        if let (Some(u), Some(p)) = (&e.username, &e.password) {
            if !u.is_empty() {
                return Ok(Some(Credentials::basic(u, p)));
            }
        }
        let Some(auth) = e.auth.as_deref().filter(|a| !a.is_empty()) else {
            return Ok(None);
        };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|_| OciError::InvalidCredentials {
                message: format!("the `auth` field for {registry} is not base64"),
            })?;
        let text = String::from_utf8(decoded).map_err(|_| OciError::InvalidCredentials {
            message: format!("the `auth` field for {registry} is not UTF-8"),
        })?;
        let Some((u, p)) = text.split_once(':') else {
            return Err(OciError::InvalidCredentials {
                message: format!("the `auth` field for {registry} is not `user:password`"),
            });
        };
        Ok(Some(Credentials::basic(u, p)))
    }

    /// The registries this config has entries for (normalised hosts).
    pub fn registries(&self) -> impl Iterator<Item = &str> {
        self.auths.keys().map(String::as_str)
    }
}

/// The JSON type of `v`, in words (never its value).
fn json_type(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// A docker config of the wrong shape at `path`: what was expected and what type was found.
fn shape_error(path: &str, expected: &str, found: &serde_json::Value) -> OciError {
    OciError::InvalidCredentials {
        message: format!(
            "docker config `{path}` must be {expected}, not {}",
            json_type(found)
        ),
    }
}

/// One `auths` entry: an object whose `auth`, `username` and `password` are strings when set
/// (other keys, such as `email` or `identitytoken`, are not read).
fn auth_entry(path: &str, v: &serde_json::Value) -> Result<AuthEntry> {
    let Some(m) = v.as_object() else {
        return Err(shape_error(path, "an object", v));
    };
    let field = |k: &str| -> Result<Option<String>> {
        match m.get(k) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(shape_error(&format!("{path}.{k}"), "a string", other)),
        }
    };
    Ok(AuthEntry {
        auth: field("auth")?,
        username: field("username")?,
        password: field("password")?,
    })
}

/// How long a docker credential helper may take to answer.
const HELPER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Runs `docker-credential-<helper> get` with `server` on standard input (the docker
/// credential helper protocol); `Ok(None)` when it has no credentials for `server`.
fn run_credential_helper(helper: &str, server: &str) -> Result<Option<Credentials>> {
    if helper.is_empty() || helper.contains(['/', '\\']) {
        return Err(OciError::InvalidCredentials {
            message: format!("credential helper name {helper:?} is not valid"),
        });
    }
    helper_get(
        &format!("docker-credential-{helper}"),
        server,
        HELPER_TIMEOUT,
    )
}

/// `program get`, with `server` on standard input, answered within `timeout`.
fn helper_get(
    program: &str,
    server: &str,
    timeout: std::time::Duration,
) -> Result<Option<Credentials>> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let fail = |message: String| OciError::InvalidCredentials { message };
    let mut child = Command::new(program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            fail(format!(
                "the docker config asks credential helper {program} for {server}, but it cannot be run ({e}); install it, or pass --username with REGISTRY_PASSWORD or --password-stdin"
            ))
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        // a helper that exits without reading is reported by its exit status below
        let _ = stdin.write_all(server.as_bytes());
    }
    // Read both pipes aside, and give the helper a bounded time: one waiting for a keychain
    // to be unlocked, or a pinentry nobody answers, must not hang the command forever.
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(p) = pipe {
                use std::io::Read as _;
                let _ = p.take(1 << 20).read_to_end(&mut buf);
            }
            buf
        })
    };
    let stdout_reader = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
    );
    let stderr_reader = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
    );
    let deadline = std::time::Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail(format!(
                    "{program} get did not answer within {:.1}s (is it waiting for a keychain or a passphrase?); pass --username with REGISTRY_PASSWORD or --password-stdin instead",
                    timeout.as_secs_f64()
                )));
            }
            Err(e) => return Err(fail(format!("{program} get: {e}"))),
        }
    };
    let out = std::process::Output {
        status,
        stdout: stdout_reader.join().unwrap_or_default(),
        stderr: stderr_reader.join().unwrap_or_default(),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let said = format!(
            "{} {}",
            stdout.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        if said.to_ascii_lowercase().contains("credentials not found") {
            return Ok(None);
        }
        return Err(fail(format!(
            "{program} get failed for {server} ({}): {}",
            out.status,
            said.trim()
        )));
    }
    #[derive(Deserialize)]
    struct Answer {
        #[serde(rename = "Username", default)]
        username: String,
        #[serde(rename = "Secret", default)]
        secret: String,
    }
    let a: Answer = serde_json::from_str(&stdout).map_err(|e| {
        fail(format!(
            "{program} get answered with something other than credentials: {e}"
        ))
    })?;
    if a.username == "<token>" {
        return Err(fail(format!(
            "{program} holds an identity token for {server}, which this client does not support; pass --username with REGISTRY_PASSWORD or --password-stdin"
        )));
    }
    if a.username.is_empty() && a.secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(Credentials::basic(a.username, a.secret)))
}

/// Builds credentials from the `data` of a Kubernetes Secret (values already base64-decoded,
/// as the API client returns them), for a registry known by `hosts` — the first being the
/// host of the URL the client talks to, the rest explicit fallbacks, in order.
///
/// - `kubernetes.io/dockerconfigjson`: key `.dockerconfigjson`, the entry for the first of
///   `hosts` it has one for;
/// - `kubernetes.io/dockercfg`: key `.dockercfg`, likewise;
/// - `kubernetes.io/basic-auth` (or any type with `username` and `password` keys): those keys.
///
/// `Ok(None)` for a docker config with an entry for none of `hosts` (never silently
/// anonymous: the caller says which hosts were looked for); a Secret with none of these keys
/// is an error.
pub fn credentials_from_secret_data(
    secret_type: Option<&str>,
    data: &BTreeMap<String, Vec<u8>>,
    hosts: &[String],
) -> Result<Option<Credentials>> {
    let docker_key = match secret_type {
        Some("kubernetes.io/dockercfg") => Some(".dockercfg"),
        Some("kubernetes.io/dockerconfigjson") => Some(".dockerconfigjson"),
        _ if data.contains_key(".dockerconfigjson") => Some(".dockerconfigjson"),
        _ if data.contains_key(".dockercfg") => Some(".dockercfg"),
        _ => None,
    };
    if let Some(key) = docker_key {
        let bytes = data.get(key).ok_or_else(|| OciError::InvalidCredentials {
            message: format!("Secret has no key {key}"),
        })?;
        let cfg = DockerConfig::from_slice(bytes).map_err(|e| match e {
            OciError::InvalidCredentials { message } => OciError::InvalidCredentials {
                message: format!("key {key}: {message}"),
            },
            e => e,
        })?;
        for host in hosts {
            if let Some(c) = cfg.credentials_for(host)? {
                return Ok(Some(c));
            }
        }
        return Ok(None);
    }
    let text =
        |k: &str| -> Result<Option<String>> {
            match data.get(k) {
                None => Ok(None),
                Some(b) => String::from_utf8(b.clone()).map(Some).map_err(|_| {
                    OciError::InvalidCredentials {
                        message: format!("Secret key {k} is not UTF-8"),
                    }
                }),
            }
        };
    match (text("username")?, text("password")?) {
        (Some(u), Some(p)) => Ok(Some(Credentials::basic(
            u.trim_end_matches('\n'),
            p.trim_end_matches('\n'),
        ))),
        _ => Err(OciError::InvalidCredentials {
            message: "Secret has neither .dockerconfigjson nor username/password".to_string(),
        }),
    }
}

/// One challenge of a `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Auth scheme, lower-cased (`basic`, `bearer`).
    pub scheme: String,
    /// Parameters with lower-cased names (`realm`, `service`, `scope`, `error`).
    pub params: BTreeMap<String, String>,
}

impl Challenge {
    /// A parameter by (lower-case) name.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
}

fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// Parses a `WWW-Authenticate` header into its challenges (RFC 9110 §11.6.1): auth schemes
/// followed by comma-separated `name=value` parameters, values as tokens or quoted strings.
/// Token68 credentials (`Negotiate abc==`) are accepted and ignored.
pub fn parse_challenges(header: &str) -> std::result::Result<Vec<Challenge>, String> {
    let chars: Vec<char> = header.chars().collect();
    let n = chars.len();
    let mut i = 0;
    let mut out: Vec<Challenge> = Vec::new();
    let skip_ws = |i: &mut usize| {
        while *i < n && (chars[*i] == ' ' || chars[*i] == '\t') {
            *i += 1;
        }
    };
    let read_token = |i: &mut usize| -> String {
        let s = *i;
        while *i < n && is_tchar(chars[*i]) {
            *i += 1;
        }
        chars[s..*i].iter().collect()
    };
    loop {
        skip_ws(&mut i);
        while i < n && chars[i] == ',' {
            i += 1;
            skip_ws(&mut i);
        }
        if i >= n {
            break;
        }
        let scheme = read_token(&mut i);
        if scheme.is_empty() {
            return Err(format!("expected an auth scheme at position {i}"));
        }
        let mut ch = Challenge {
            scheme: scheme.to_ascii_lowercase(),
            params: BTreeMap::new(),
        };
        // parameters
        loop {
            skip_ws(&mut i);
            if i >= n {
                break;
            }
            let save = i;
            let name = read_token(&mut i);
            skip_ws(&mut i);
            if name.is_empty() {
                if chars[i] == ',' {
                    i += 1;
                    continue;
                }
                return Err(format!("unexpected {:?} at position {i}", chars[i]));
            }
            if i >= n || chars[i] != '=' {
                // a new challenge (scheme) starts here
                i = save;
                break;
            }
            i += 1; // '='
                    // token68 ends with '='s: "abc==" -> name "abc", then more '='
            if i < n && chars[i] == '=' {
                while i < n && chars[i] == '=' {
                    i += 1;
                }
                skip_ws(&mut i);
                if i < n && chars[i] == ',' {
                    i += 1;
                }
                continue;
            }
            skip_ws(&mut i);
            let value = if i < n && chars[i] == '"' {
                i += 1;
                let mut v = String::new();
                let mut closed = false;
                while i < n {
                    match chars[i] {
                        '\\' if i + 1 < n => {
                            v.push(chars[i + 1]);
                            i += 2;
                        }
                        '"' => {
                            closed = true;
                            i += 1;
                            break;
                        }
                        c => {
                            v.push(c);
                            i += 1;
                        }
                    }
                }
                if !closed {
                    return Err("unterminated quoted string".to_string());
                }
                v
            } else {
                let v = read_token(&mut i);
                if v.is_empty() {
                    return Err(format!("parameter {name} has no value"));
                }
                v
            };
            ch.params.insert(name.to_ascii_lowercase(), value);
            skip_ws(&mut i);
            if i < n {
                if chars[i] == ',' {
                    i += 1;
                } else {
                    return Err(format!("expected ',' at position {i}"));
                }
            }
        }
        out.push(ch);
    }
    if out.is_empty() {
        return Err("no challenge".to_string());
    }
    Ok(out)
}

/// A bearer token endpoint's answer (Docker token spec; `access_token` is the OAuth2 name).
#[derive(Debug, Deserialize)]
pub(crate) struct TokenResponse {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub access_token: Option<String>,
    #[serde(default)]
    pub expires_in: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bearer_challenge_with_quoted_scope_is_parsed() {
        let c = parse_challenges(
            r#"Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull,push""#,
        )
        .unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(c[0].param("realm"), Some("https://auth.example.com/token"));
        assert_eq!(c[0].param("scope"), Some("repository:a/b:pull,push"));
    }

    #[test]
    fn several_challenges_in_one_header_are_all_returned() {
        let c =
            parse_challenges(r#"Basic realm="x", Bearer realm="https://t/", service=reg"#).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[1].scheme, "bearer");
        assert_eq!(c[1].param("service"), Some("reg"));
        let c = parse_challenges("Negotiate abc==, Basic realm=\"r\"").unwrap();
        assert_eq!(c.last().map(|c| c.scheme.as_str()), Some("basic"));
    }

    #[test]
    fn malformed_challenges_are_errors() {
        for bad in [
            "",
            "   ",
            r#"Bearer realm="open"#,
            "Bearer realm=",
            "=x",
            r#"Bearer realm="a" x"#,
        ] {
            assert!(parse_challenges(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn docker_config_names_the_credential_helper_per_host() {
        let c = DockerConfig::from_slice(
            br#"{"auths": {"https://index.docker.io/v1/": {}}, "credsStore": "desktop",
                 "credHelpers": {"123.dkr.ecr.eu-west-1.amazonaws.com": "ecr-login"}}"#,
        )
        .unwrap();
        assert_eq!(c.helper_for("docker.io"), Some("desktop"));
        assert_eq!(c.helper_for("reg.example.com:5000"), Some("desktop"));
        assert_eq!(
            c.helper_for("123.dkr.ecr.eu-west-1.amazonaws.com"),
            Some("ecr-login")
        );
        let plain = DockerConfig::from_slice(br#"{"auths": {"r.io": {"auth": "dTpw"}}}"#).unwrap();
        assert_eq!(plain.helper_for("r.io"), None);
        assert_eq!(
            plain.resolve("r.io").unwrap(),
            Some(Credentials::basic("u", "p"))
        );
        // a helper that cannot be run is an error that names it, not anonymous access
        let missing =
            DockerConfig::from_slice(br#"{"credsStore": "surely-not-installed-here"}"#).unwrap();
        let err = missing.resolve("r.io").unwrap_err().to_string();
        assert!(
            err.contains("docker-credential-surely-not-installed-here"),
            "{err}"
        );
    }

    #[test]
    fn a_credential_helper_that_does_not_answer_is_stopped_with_a_clear_error() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("docker-credential-slow");
        std::fs::write(&script, "#!/bin/sh\nsleep 5\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let started = std::time::Instant::now();
        let err = helper_get(
            script.to_str().unwrap(),
            "r.io",
            std::time::Duration::from_millis(300),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("did not answer within 0.3s"), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(3));
        // one that answers is believed
        let good = dir.path().join("docker-credential-good");
        std::fs::write(
            &good,
            "#!/bin/sh\nread s\nprintf '{\"ServerURL\":\"%s\",\"Username\":\"u\",\"Secret\":\"p\"}' \"$s\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&good, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(
            helper_get(
                good.to_str().unwrap(),
                "r.io",
                std::time::Duration::from_secs(5)
            )
            .unwrap(),
            Some(Credentials::basic("u", "p"))
        );
    }

    #[test]
    fn docker_config_auth_field_is_decoded_per_host() {
        let auth = base64::engine::general_purpose::STANDARD.encode("bob:pa:ss");
        let cfg = format!(
            r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{auth}"}},"reg.io:5000":{{"username":"u","password":"p"}}}}}}"#
        );
        let cfg = DockerConfig::from_slice(cfg.as_bytes()).unwrap();
        assert_eq!(
            cfg.credentials_for("docker.io").unwrap(),
            Some(Credentials::basic("bob", "pa:ss"))
        );
        assert_eq!(
            cfg.credentials_for("http://reg.io:5000").unwrap(),
            Some(Credentials::basic("u", "p"))
        );
        assert_eq!(cfg.credentials_for("other.io").unwrap(), None);
        let bad = DockerConfig::from_slice(br#"{"auths":{"r.io":{"auth":"!!!"}}}"#).unwrap();
        assert_eq!(
            bad.credentials_for("r.io").unwrap_err().reason(),
            "InvalidCredentials"
        );
        assert!(DockerConfig::from_slice(b"garbage").is_err());
    }

    fn hosts(h: &[&str]) -> Vec<String> {
        h.iter().map(|h| h.to_string()).collect()
    }

    #[test]
    fn secret_data_of_each_type_gives_credentials() {
        let mut data = BTreeMap::new();
        data.insert(
            ".dockerconfigjson".to_string(),
            br#"{"auths":{"reg.io":{"username":"a","password":"b"}}}"#.to_vec(),
        );
        let c = credentials_from_secret_data(
            Some("kubernetes.io/dockerconfigjson"),
            &data,
            &hosts(&["reg.io"]),
        )
        .unwrap();
        assert_eq!(c, Some(Credentials::basic("a", "b")));
        // no entry for the host: not anonymous, nothing — the caller says so
        let c = credentials_from_secret_data(None, &data, &hosts(&["other.io"])).unwrap();
        assert_eq!(c, None);
        let mut basic = BTreeMap::new();
        basic.insert("username".to_string(), b"robot".to_vec());
        basic.insert("password".to_string(), b"tok".to_vec());
        let c = credentials_from_secret_data(Some("kubernetes.io/basic-auth"), &basic, &[])
            .unwrap()
            .unwrap();
        assert_eq!(c, Credentials::basic("robot", "tok"));
        assert!(credentials_from_secret_data(Some("Opaque"), &BTreeMap::new(), &[]).is_err());
        assert!(!format!("{c:?}").contains("tok"));
    }

    #[test]
    fn the_entry_of_the_first_listed_host_is_used_not_the_alphabetically_first() {
        let mut data = BTreeMap::new();
        data.insert(
            ".dockerconfigjson".to_string(),
            br#"{"auths":{"0.example":{"username":"alias","password":"x"},"reg.io:5000":{"username":"url","password":"y"}}}"#.to_vec(),
        );
        let c = credentials_from_secret_data(None, &data, &hosts(&["reg.io:5000", "0.example"]))
            .unwrap();
        assert_eq!(c, Some(Credentials::basic("url", "y")));
        let c =
            credentials_from_secret_data(None, &data, &hosts(&["other.io", "0.example"])).unwrap();
        assert_eq!(
            c,
            Some(Credentials::basic("alias", "x")),
            "an explicit fallback"
        );
    }

    #[test]
    fn a_malformed_docker_config_is_reported_by_position_or_key_never_by_value() {
        let secret = "hunter2-Sup3rSecret";
        for (bad, says) in [
            (
                format!(r#"{{"auths": "{secret}"}}"#),
                "`auths` must be an object, not a string",
            ),
            (
                format!(r#"{{"auths": {{"reg.io": {{"auth": 12, "password": "{secret}"}}}}}}"#),
                "`auths.reg.io.auth` must be a string, not a number",
            ),
            (
                format!(r#"{{"auths": {{"reg.io": ["{secret}"]}}}}"#),
                "`auths.reg.io` must be an object, not an array",
            ),
            (
                format!(r#"{{"credHelpers": {{"reg.io": ["{secret}"]}}}}"#),
                "`credHelpers.reg.io` must be a string",
            ),
            (
                format!(r#"["{secret}"]"#),
                "must be an object, not an array",
            ),
            (
                format!(r#"{{"auths": {{"reg.io": {{"auth": "{secret}"#),
                "ends early",
            ),
            (
                format!(r#"{{"auths": {secret}}}"#),
                "is not JSON (line 1, column",
            ),
            (
                format!(r#"{{"reg.io": {{"auth": "{secret}" "x": 1}}}}"#),
                "is not JSON",
            ),
        ] {
            let e = DockerConfig::from_slice(bad.as_bytes())
                .unwrap_err()
                .to_string();
            assert!(e.contains(says), "{bad}: {e}");
            assert!(!e.contains("hunter2") && !e.contains("Sup3r"), "{bad}: {e}");
        }
    }

    proptest! {
        #[test]
        fn challenge_parser_never_panics(s in "\\PC{0,200}") {
            let _ = parse_challenges(&s);
        }
    }
}
