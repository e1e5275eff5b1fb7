//! Redaction of URLs before they reach an error, a log line or a status field.
//!
//! User info (`https://user:pass@host`) is replaced by `***`, and every query value is replaced
//! by `***` except the few pagination and upload parameters of the Distribution API that carry
//! no secret (`n`, `last`, `digest`, `mount`, `from`, `artifactType`, `service`, `scope`).
//! Signed blob URLs (S3 `X-Amz-Signature`, GCS `X-Goog-Signature`, Azure `sig`, ...) therefore
//! never leak, whatever the signing scheme calls its parameters.

use url::Url;

const SAFE_QUERY_KEYS: &[&str] = &[
    "n",
    "last",
    "digest",
    "mount",
    "from",
    "artifactType",
    "service",
    "scope",
];

/// Returns `url` with credentials and signed query values replaced by `***`.
pub fn redact_url(url: &Url) -> String {
    let mut u = url.clone();
    if !u.username().is_empty() {
        let _ = u.set_username("***");
    }
    if u.password().is_some() {
        let _ = u.set_password(Some("***"));
    }
    if u.query().is_some() {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| {
                let v = if SAFE_QUERY_KEYS.contains(&k.as_ref()) {
                    v.into_owned()
                } else {
                    "***".to_string()
                };
                (k.into_owned(), v)
            })
            .collect();
        if pairs.is_empty() {
            u.set_query(None);
        } else {
            u.query_pairs_mut().clear().extend_pairs(pairs);
        }
    }
    u.set_fragment(None);
    u.to_string()
}

/// Redacts a URL given as a string; a string that does not parse as a URL is reduced to
/// `<unparseable url>` (it might hold anything).
pub fn redact_str(url: &str) -> String {
    match Url::parse(url) {
        Ok(u) => redact_url(&u),
        Err(_) => "<unparseable url>".to_string(),
    }
}

/// A URL as a person wrote it, for a status field: unchanged when it holds no user info, query
/// or fragment; otherwise without the user info (not even `***@`), with query values redacted
/// as [`redact_url`] does. A string that does not parse is `<unparseable url>`.
pub fn display_url(url: &str) -> String {
    let Ok(mut u) = Url::parse(url) else {
        return "<unparseable url>".to_string();
    };
    if u.username().is_empty()
        && u.password().is_none()
        && u.query().is_none()
        && u.fragment().is_none()
    {
        return url.to_string();
    }
    let _ = u.set_username("");
    let _ = u.set_password(None);
    let bare_root = u.path() == "/" && !url.trim_end().ends_with('/') && u.query().is_none();
    let out = redact_url(&u);
    if bare_root {
        out.trim_end_matches('/').to_string()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_and_signatures_are_removed_but_pagination_is_kept() {
        let u = Url::parse(
            "https://alice:s3cret@reg.example.com/v2/_catalog?n=10&last=a%2Fb&X-Amz-Signature=abc&sig=zzz#frag",
        )
        .unwrap();
        let r = redact_url(&u);
        assert!(!r.contains("alice"), "{r}");
        assert!(!r.contains("s3cret"), "{r}");
        assert!(!r.contains("abc"), "{r}");
        assert!(!r.contains("zzz"), "{r}");
        assert!(r.contains("n=10"), "{r}");
        assert!(r.contains("last=a%2Fb"), "{r}");
        assert!(!r.contains("frag"), "{r}");
        assert_eq!(redact_str("not a url with password"), "<unparseable url>");
    }

    #[test]
    fn a_status_url_shows_no_user_info_and_is_otherwise_as_written() {
        assert_eq!(
            display_url("https://alice:s3cret@reg.example.com"),
            "https://reg.example.com"
        );
        assert_eq!(
            display_url("https://alice@reg.example.com:8443/mirror/"),
            "https://reg.example.com:8443/mirror/"
        );
        assert_eq!(
            display_url("http://127.0.0.1:5000"),
            "http://127.0.0.1:5000"
        );
        let q = display_url("https://u:p@reg.example.com/?token=abc");
        assert!(!q.contains("abc") && !q.contains("u:p"), "{q}");
    }
}
