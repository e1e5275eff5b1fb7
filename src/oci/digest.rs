//! Content digests in one place: the OCI digest grammar, sha256 of bytes, the 32 bytes of a
//! sha256 digest, and the referrers tag schema's `sha256-<hex>` tags in both directions.
//!
//! ```text
//! digest := algorithm ":" encoded   (sha256: 64 lowercase hex, sha512: 128)
//! ```

use super::error::{OciError, Result};

/// Checks a digest (`sha256:<64 hex>`) against the OCI digest grammar; sha256 and sha512 must
/// have the right length of lowercase hex.
pub fn validate_digest(digest: &str) -> Result<()> {
    let Some((alg, enc)) = digest.split_once(':') else {
        return Err(OciError::invalid("digest", digest, "missing ':'"));
    };
    let alg_ok = !alg.is_empty()
        && alg.split(['+', '.', '_', '-']).all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        });
    if !alg_ok {
        return Err(OciError::invalid("digest", digest, "invalid algorithm"));
    }
    let enc_ok = !enc.is_empty()
        && enc
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'=' || c == b'_' || c == b'-');
    if !enc_ok {
        return Err(OciError::invalid("digest", digest, "invalid encoded part"));
    }
    let hex_len = match alg {
        "sha256" => Some(64),
        "sha512" => Some(128),
        _ => None,
    };
    if let Some(n) = hex_len {
        let lower_hex = enc
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c));
        if enc.len() != n || !lower_hex {
            return Err(OciError::invalid(
                "digest",
                digest,
                format!("{alg} needs {n} lowercase hex characters"),
            ));
        }
    }
    Ok(())
}

/// True when `s` is a syntactically valid digest (then it is not a tag: tags cannot hold `:`).
pub fn is_digest(s: &str) -> bool {
    validate_digest(s).is_ok()
}

/// The 32 bytes of a `sha256:<64 lowercase hex digits>` digest; `None` for any other
/// algorithm or a malformed digest.
pub fn sha256_bytes(digest: &str) -> Option<[u8; 32]> {
    let hex = digest.strip_prefix("sha256:")?;
    if hex.len() != 64 {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut bytes = [0u8; 32];
    for (i, pair) in hex.as_bytes().chunks(2).enumerate() {
        bytes[i] = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(bytes)
}

/// The `sha256:<hex>` digest of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    use sha2::{Digest as _, Sha256};
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The tag under which the OCI referrers tag schema stores the referrers of `digest`
/// (`sha256:abc…` → `sha256-abc…`).
pub fn referrers_tag(digest: &str) -> Result<String> {
    validate_digest(digest)?;
    Ok(digest.replacen(':', "-", 1))
}

/// The subject digest a referrer tag names: `sha256-<64 hex>` or `sha512-<128 hex>`,
/// optionally followed by `.` and a suffix (`.sig`, `.att`, `.sbom`), as the referrers tag
/// schema and cosign write them.
pub fn referrer_tag_subject(tag: &str) -> Option<String> {
    let (algorithm, len, rest) = if let Some(rest) = tag.strip_prefix("sha256-") {
        ("sha256", 64, rest)
    } else if let Some(rest) = tag.strip_prefix("sha512-") {
        ("sha512", 128, rest)
    } else {
        return None;
    };
    let (hex, suffix) = match rest.find('.') {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let valid_hex = hex.len() == len
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !valid_hex || suffix.is_some_and(str::is_empty) {
        return None;
    }
    Some(format!("{algorithm}:{hex}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn digest_grammar_checks_sha256_length_and_case() {
        assert!(validate_digest(D).is_ok());
        assert!(validate_digest(&D.to_uppercase()).is_err());
        assert!(validate_digest("sha256:abc").is_err());
        assert!(validate_digest("sha256").is_err());
        assert!(validate_digest(":abc").is_err());
        assert!(
            validate_digest("multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8")
                .is_ok()
        );
        assert_eq!(referrers_tag(D).unwrap(), D.replace(':', "-"));
    }
}
