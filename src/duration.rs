//! Go duration strings (`90s`, `1h30m`, `720h`), the one duration syntax of the API and of zot.

use std::fmt;

use jiff::SignedDuration;

/// Why a string is not a Go duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a Go duration ({why}); use a number with a unit ns, us, ms, s, m or h, e.g. 90s, 1h30m, 720h")]
pub struct DurationError {
    /// The rejected text.
    pub input: String,
    /// What is wrong with it.
    pub why: &'static str,
}

/// A non-negative duration written in Go's `time.ParseDuration` syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GoDuration(SignedDuration);

impl GoDuration {
    /// Parses `input` (`1h30m`, `300s`, `0s`, `1.5h`). Negative durations, `d`/`w` units and
    /// bare numbers other than `0` are rejected.
    pub fn parse(input: &str) -> Result<Self, DurationError> {
        let err = |why| DurationError {
            input: input.to_string(),
            why,
        };
        if input.is_empty() {
            return Err(err("empty"));
        }
        if input == "0" {
            return Ok(GoDuration(SignedDuration::ZERO));
        }
        if input.starts_with('-') {
            return Err(err("negative"));
        }
        let mut rest = input.strip_prefix('+').unwrap_or(input);
        let mut total: i128 = 0; // nanoseconds
        while !rest.is_empty() {
            let num_len = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(rest.len());
            if num_len == 0 {
                return Err(err("expected a number"));
            }
            let (num, tail) = rest.split_at(num_len);
            let unit_len = tail
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(tail.len());
            let (unit, tail) = tail.split_at(unit_len);
            let scale: i128 = match unit {
                "ns" => 1,
                "us" | "µs" | "μs" => 1_000,
                "ms" => 1_000_000,
                "s" => 1_000_000_000,
                "m" => 60 * 1_000_000_000,
                "h" => 3600 * 1_000_000_000,
                "" => return Err(err("missing unit")),
                _ => return Err(err("unknown unit")),
            };
            let (int_part, frac_part) = num.split_once('.').unwrap_or((num, ""));
            if int_part.is_empty() && frac_part.is_empty() || frac_part.contains('.') {
                return Err(err("malformed number"));
            }
            let int: i128 = if int_part.is_empty() {
                0
            } else {
                int_part.parse().map_err(|_| err("number too large"))?
            };
            let mut value = int.checked_mul(scale).ok_or_else(|| err("too large"))?;
            let mut frac_scale = scale;
            for digit in frac_part.chars().take(18) {
                frac_scale /= 10;
                value += i128::from(digit.to_digit(10).unwrap_or(0) as u8) * frac_scale;
            }
            total = total.checked_add(value).ok_or_else(|| err("too large"))?;
            if total > i128::from(i64::MAX) {
                return Err(err("too large"));
            }
            rest = tail;
        }
        let secs = (total / 1_000_000_000) as i64;
        let nanos = (total % 1_000_000_000) as i32;
        Ok(GoDuration(SignedDuration::new(secs, nanos)))
    }

    /// The duration as jiff's type.
    pub fn as_signed(self) -> SignedDuration {
        self.0
    }

    /// The duration as std's type.
    pub fn as_std(self) -> std::time::Duration {
        self.0.unsigned_abs()
    }

    /// Builds one from whole seconds.
    pub fn from_secs(secs: u32) -> Self {
        GoDuration(SignedDuration::from_secs(i64::from(secs)))
    }
}

impl fmt::Display for GoDuration {
    /// Canonical Go form: `1h30m0s`-like but without zero components (`1h30m`, `90s`, `0s`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total_ns = self.0.as_nanos();
        if total_ns == 0 {
            return f.write_str("0s");
        }
        let (h, rem) = (total_ns / 3_600_000_000_000, total_ns % 3_600_000_000_000);
        let (m, rem) = (rem / 60_000_000_000, rem % 60_000_000_000);
        let (s, ns) = (rem / 1_000_000_000, rem % 1_000_000_000);
        if h > 0 {
            write!(f, "{h}h")?;
        }
        if m > 0 {
            write!(f, "{m}m")?;
        }
        if ns > 0 {
            if s == 0 && h == 0 && m == 0 && ns % 1_000_000 == 0 {
                return write!(f, "{}ms", ns / 1_000_000);
            }
            write!(f, "{s}.{}s", format!("{ns:09}").trim_end_matches('0'))
        } else if s > 0 {
            write!(f, "{s}s")
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse_to_the_same_length_as_in_go() {
        for (text, secs) in [
            ("90s", 90),
            ("1h30m", 5400),
            ("720h", 2_592_000),
            ("0s", 0),
            ("0", 0),
            ("1.5h", 5400),
            ("2h0m30s", 7230),
        ] {
            assert_eq!(
                GoDuration::parse(text).unwrap().as_std().as_secs(),
                secs,
                "{text}"
            );
        }
        assert_eq!(
            GoDuration::parse("250ms").unwrap().as_std().as_millis(),
            250
        );
        assert_eq!(GoDuration::parse("3us").unwrap().as_std().as_nanos(), 3000);
    }

    #[test]
    fn days_weeks_negatives_and_bare_numbers_are_rejected_with_the_reason() {
        for (text, why) in [
            ("1d", "unknown unit"),
            ("2w", "unknown unit"),
            ("-1h", "negative"),
            ("30", "missing unit"),
            ("", "empty"),
            ("h", "expected a number"),
            ("1..5h", "malformed number"),
        ] {
            let e = GoDuration::parse(text).unwrap_err();
            assert_eq!(e.why, why, "{text}");
            assert!(e.to_string().contains("Go duration"));
        }
    }

    #[test]
    fn durations_print_in_canonical_go_form() {
        for (text, canonical) in [
            ("5400s", "1h30m"),
            ("90s", "1m30s"),
            ("0", "0s"),
            ("1.5s", "1.5s"),
            ("250ms", "250ms"),
            ("24h", "24h"),
        ] {
            assert_eq!(
                GoDuration::parse(text).unwrap().to_string(),
                canonical,
                "{text}"
            );
        }
    }
}
