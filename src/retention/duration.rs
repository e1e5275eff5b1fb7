//! Go durations (`720h`, `1h30m`, `90s`), as the policy fields are written, and the short
//! human ages (`41d`, `3h`, `12m`) the decision reasons use.

use std::fmt;

use jiff::SignedDuration;

/// Why a Go duration string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// The string is empty.
    #[error("empty duration")]
    Empty,
    /// A number was expected at this byte offset.
    #[error("expected a number at byte {0}")]
    ExpectedNumber(usize),
    /// A unit (`ns`, `us`, `µs`, `ms`, `s`, `m`, `h`) was expected at this byte offset.
    #[error("expected a unit (ns, us, µs, ms, s, m, h) at byte {0}")]
    ExpectedUnit(usize),
    /// The value does not fit in a signed 64-bit count of nanoseconds (about 292 years).
    #[error("duration too large")]
    Overflow,
}

/// Parses a Go duration (`time.ParseDuration` syntax without a sign): one or more
/// `<number><unit>` pairs, the number possibly fractional, e.g. `720h`, `1h30m`, `1.5h`.
/// A lone `0` is accepted, as in Go.
pub fn parse_go_duration(s: &str) -> Result<SignedDuration, DurationError> {
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    if s == "0" {
        return Ok(SignedDuration::ZERO);
    }
    let bytes = s.as_bytes();
    let mut pos = 0;
    let mut total: i128 = 0;
    while pos < bytes.len() {
        let start = pos;
        let mut whole: i128 = 0;
        while pos < bytes.len() && bytes[pos].is_ascii_digit() {
            whole = whole
                .checked_mul(10)
                .and_then(|w| w.checked_add(i128::from(bytes[pos] - b'0')))
                .ok_or(DurationError::Overflow)?;
            pos += 1;
        }
        let mut had_digits = pos > start;
        let mut frac: i128 = 0;
        let mut frac_scale: i128 = 1;
        if pos < bytes.len() && bytes[pos] == b'.' {
            pos += 1;
            while pos < bytes.len() && bytes[pos].is_ascii_digit() {
                // Digits beyond nanosecond precision of an hour are irrelevant; stop scaling.
                if frac_scale < 1_000_000_000_000_000_000 {
                    frac = frac * 10 + i128::from(bytes[pos] - b'0');
                    frac_scale *= 10;
                }
                had_digits = true;
                pos += 1;
            }
        }
        if !had_digits {
            return Err(DurationError::ExpectedNumber(start));
        }
        let rest = &s[pos..];
        let (unit_nanos, len): (i128, usize) = if rest.starts_with("ns") {
            (1, 2)
        } else if rest.starts_with("us") {
            (1_000, 2)
        } else if rest.starts_with("µs") {
            (1_000, "µs".len())
        } else if rest.starts_with("ms") {
            (1_000_000, 2)
        } else if rest.starts_with('s') {
            (1_000_000_000, 1)
        } else if rest.starts_with('m') {
            (60_000_000_000, 1)
        } else if rest.starts_with('h') {
            (3_600_000_000_000, 1)
        } else {
            return Err(DurationError::ExpectedUnit(pos));
        };
        pos += len;
        let part = whole
            .checked_mul(unit_nanos)
            .and_then(|w| w.checked_add(frac * unit_nanos / frac_scale))
            .ok_or(DurationError::Overflow)?;
        total = total.checked_add(part).ok_or(DurationError::Overflow)?;
        if total > i128::from(i64::MAX) {
            return Err(DurationError::Overflow);
        }
    }
    i64::try_from(total)
        .map(SignedDuration::from_nanos)
        .map_err(|_| DurationError::Overflow)
}

/// Writes a duration the way a policy would (`720h`, `1h30m`, `45s`, `250ms`).
pub struct GoDuration(pub SignedDuration);

impl fmt::Display for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d.is_negative() {
            f.write_str("-")?;
        }
        let secs = d.as_secs().unsigned_abs();
        let nanos = d.subsec_nanos().unsigned_abs();
        if secs == 0 {
            return match nanos {
                0 => f.write_str("0s"),
                n if n % 1_000_000 == 0 => write!(f, "{}ms", n / 1_000_000),
                n if n % 1_000 == 0 => write!(f, "{}us", n / 1_000),
                n => write!(f, "{n}ns"),
            };
        }
        let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
        if h > 0 {
            write!(f, "{h}h")?;
        }
        if m > 0 {
            write!(f, "{m}m")?;
        }
        if s > 0 || nanos > 0 {
            if nanos > 0 {
                let frac = format!("{:09}", nanos);
                write!(f, "{s}.{}s", frac.trim_end_matches('0'))?;
            } else {
                write!(f, "{s}s")?;
            }
        }
        Ok(())
    }
}

/// Writes an age roughly, the way people say it: `41d`, `3h`, `12m`, `30s`. Negative ages
/// (a push time in the future, clock skew) are written `in the future`.
pub struct HumanAge(pub SignedDuration);

impl fmt::Display for HumanAge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.as_secs();
        if secs < 0 {
            return f.write_str("in the future");
        }
        match secs {
            s if s >= 2 * 86_400 => write!(f, "{}d", s / 86_400),
            s if s >= 3_600 => write!(f, "{}h", s / 3_600),
            s if s >= 60 => write!(f, "{}m", s / 60),
            s => write!(f, "{s}s"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse_like_go() {
        let h = |n: i64| SignedDuration::from_hours(n);
        assert_eq!(parse_go_duration("720h"), Ok(h(720)));
        assert_eq!(
            parse_go_duration("1h30m"),
            Ok(SignedDuration::from_mins(90))
        );
        assert_eq!(parse_go_duration("1.5h"), Ok(SignedDuration::from_mins(90)));
        assert_eq!(parse_go_duration("90s"), Ok(SignedDuration::from_secs(90)));
        assert_eq!(
            parse_go_duration("250ms"),
            Ok(SignedDuration::from_millis(250))
        );
        assert_eq!(parse_go_duration("3µs"), Ok(SignedDuration::from_micros(3)));
        assert_eq!(parse_go_duration("0"), Ok(SignedDuration::ZERO));
    }

    #[test]
    fn malformed_go_durations_are_rejected_with_the_position() {
        assert_eq!(parse_go_duration(""), Err(DurationError::Empty));
        assert_eq!(
            parse_go_duration("30d"),
            Err(DurationError::ExpectedUnit(2))
        );
        assert_eq!(
            parse_go_duration("h"),
            Err(DurationError::ExpectedNumber(0))
        );
        assert_eq!(parse_go_duration("10"), Err(DurationError::ExpectedUnit(2)));
        assert_eq!(
            parse_go_duration("-1h"),
            Err(DurationError::ExpectedNumber(0))
        );
        assert_eq!(
            parse_go_duration("99999999999999999999h"),
            Err(DurationError::Overflow)
        );
    }

    #[test]
    fn durations_print_back_as_written() {
        assert_eq!(
            GoDuration(SignedDuration::from_hours(720)).to_string(),
            "720h"
        );
        assert_eq!(
            GoDuration(SignedDuration::from_mins(90)).to_string(),
            "1h30m"
        );
        assert_eq!(GoDuration(SignedDuration::from_secs(45)).to_string(), "45s");
        assert_eq!(
            GoDuration(SignedDuration::from_millis(250)).to_string(),
            "250ms"
        );
    }

    #[test]
    fn ages_print_in_the_largest_sensible_unit() {
        assert_eq!(
            HumanAge(SignedDuration::from_hours(41 * 24)).to_string(),
            "41d"
        );
        assert_eq!(HumanAge(SignedDuration::from_hours(30)).to_string(), "30h");
        assert_eq!(HumanAge(SignedDuration::from_mins(12)).to_string(), "12m");
        assert_eq!(
            HumanAge(SignedDuration::from_secs(-5)).to_string(),
            "in the future"
        );
    }
}
