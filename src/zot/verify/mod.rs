//! zot's own `zot verify` rules, applied to the final config document (rendered + raw), so that
//! a config the operator writes is never one zot refuses at startup. Rule numbers refer to the
//! list in the project's zot notes; a few operator checks that zot lacks but that would break
//! zot at run time (negative retention counts, bare-number durations) are applied here too.

mod extensions;
mod http;
mod storage;
#[cfg(test)]
mod tests;

use serde_json::Value;

use self::extensions::check_extensions;
use self::http::check_http;
use self::storage::check_storage;
use super::error::{RenderErrors, ZotError};
use super::version::ZotVersion;
use crate::duration::parse_go_duration;

pub use self::extensions::{CATALOGLESS_HOSTS, TOKEN_EXCHANGE_GRANT};
pub use self::http::{
    authentication_counted, BEARER_AUTHN_SINCE, METRICS_ANONYMOUS_SINCE, MTLS_AUTHN_SINCE,
    MTLS_IDENTITY_ATTRIBUTES, OAUTH2_PROVIDERS, OPENID_PROVIDERS,
};
pub use self::storage::DYNAMODB_META_KEYS;

/// Case-insensitive lookup of one key, as viper does.
pub fn get<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    value
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

/// Case-insensitive lookup of a dotted path.
pub fn get_path<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(value, |v, k| get(v, k))
}

fn truthy(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

fn non_empty(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
        Some(_) => true,
    }
}

/// An extension counts as enabled when its object is present and `enable` is not false.
fn extension_enabled(config: &Value, name: &str) -> bool {
    match get_path(config, &format!("extensions.{name}")) {
        Some(Value::Object(o)) => !matches!(
            o.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("enable"))
                .map(|(_, v)| v),
            Some(Value::Bool(false))
        ),
        Some(Value::Null) | None => false,
        Some(_) => true,
    }
}

struct Checker {
    errors: RenderErrors,
}

impl Checker {
    fn fail(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ZotError::invalid(path, message));
    }

    /// Checks a duration value; returns its signed nanoseconds when valid.
    fn duration(&mut self, path: &str, value: Option<&Value>) -> Option<i128> {
        match value? {
            Value::String(s) => match parse_go_duration(s) {
                Ok(d) => {
                    let n = d.magnitude.as_nanos() as i128;
                    Some(if d.negative { -n } else { n })
                }
                Err(message) => {
                    self.fail(path, message);
                    None
                }
            },
            Value::Null => None,
            _ => {
                self.fail(path, "must be a Go duration string such as \"1h\"; zot reads a bare number as nanoseconds");
                None
            }
        }
    }

    fn regex(&mut self, path: &str, value: Option<&Value>) {
        if let Some(Value::String(s)) = value {
            if let Err(e) = regex::Regex::new(s) {
                let first = e
                    .to_string()
                    .lines()
                    .last()
                    .unwrap_or("invalid")
                    .trim()
                    .to_string();
                self.fail(
                    path,
                    format!("regular expression {s:?} does not compile: {first}"),
                );
            }
        }
    }

    fn glob(&mut self, path: &str, pattern: &str) {
        if let Err(e) = globset::GlobBuilder::new(pattern)
            .literal_separator(true)
            .build()
        {
            self.fail(
                path,
                format!("glob {pattern:?} does not compile: {}", e.kind()),
            );
        }
    }

    fn count(&mut self, path: &str, value: Option<&Value>) {
        if let Some(v) = value {
            if v.as_i64().is_some_and(|n| n < 0) {
                self.fail(path, "must not be negative");
            }
        }
    }
}

/// Applies zot's verify rules to a config document and returns every violation.
pub fn verify(config: &Value, version: ZotVersion) -> RenderErrors {
    let mut c = Checker {
        errors: RenderErrors::default(),
    };
    check_log(&mut c, config);
    check_http(&mut c, config, version);
    check_storage(&mut c, config, version);
    check_extensions(&mut c, config);
    check_cluster(&mut c, config);
    c.errors
}

fn check_log(c: &mut Checker, config: &Value) {
    // Rule 2.
    if let Some(level) = get_path(config, "log.level") {
        let ok = level.as_str().is_some_and(|l| {
            matches!(
                l.to_ascii_lowercase().as_str(),
                "debug" | "trace" | "info" | "warn" | "warning" | "error" | "fatal" | "panic"
            )
        });
        if !ok {
            c.fail("log.level", format!("{level} is not a zot log level"));
        }
    }
}

fn check_cluster(c: &mut Checker, config: &Value) {
    // Rule 26.
    let Some(cluster) = get(config, "cluster") else {
        return;
    };
    if !non_empty(get(cluster, "members")) {
        c.fail("cluster.members", "needs at least one member");
    }
    let key_len = get(cluster, "hashKey")
        .and_then(Value::as_str)
        .map(|k| k.chars().count());
    if key_len != Some(16) {
        c.fail("cluster.hashKey", "must be exactly 16 characters");
    }
}
