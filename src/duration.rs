//! Go duration strings (`90s`, `1h30m`, `720h`, Go's `time.ParseDuration`): the one duration
//! syntax of the API, of zot's config (where a bare number would be read as nanoseconds) and of
//! retention policies.

use std::fmt;
use std::time::Duration;

/// A non-negative duration that renders as a compact Go duration string (`1h30m`, `90s` → `1m30s`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GoDuration(pub Duration);

/// A Go duration string as parsed, which may be negative.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignedGoDuration {
    /// Whether the string started with `-` (and is not zero).
    pub negative: bool,
    /// The magnitude.
    pub magnitude: Duration,
}

/// Parses a Go duration string: an optional sign, then one or more `<number><unit>` with units
/// `ns`, `us`, `µs`, `ms`, `s`, `m`, `h` (`"0"` alone is also accepted, as in Go).
pub fn parse_go_duration(input: &str) -> Result<SignedGoDuration, String> {
    let bad = || format!("{input:?} is not a Go duration (e.g. 90s, 1h30m, 720h)");
    let (negative, mut rest) = match input.as_bytes().first() {
        Some(b'-') => (true, &input[1..]),
        Some(b'+') => (false, &input[1..]),
        _ => (false, input),
    };
    if rest == "0" {
        return Ok(SignedGoDuration {
            negative: false,
            magnitude: Duration::ZERO,
        });
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut nanos: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let int_part = &rest[..int_len];
        rest = &rest[int_len..];
        let mut frac_part = "";
        if let Some(after_dot) = rest.strip_prefix('.') {
            let frac_len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
            frac_part = &after_dot[..frac_len];
            rest = &after_dot[frac_len..];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(bad());
        }
        let unit_len = rest
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() || *c == '.')
            .map_or(rest.len(), |(i, _)| i);
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(bad()),
        };
        let whole: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| bad())?
        };
        let mut part = whole.checked_mul(scale).ok_or_else(bad)?;
        if !frac_part.is_empty() {
            let digits: u128 = frac_part
                .get(..frac_part.len().min(18))
                .unwrap_or("0")
                .parse()
                .map_err(|_| bad())?;
            let denom = 10u128.pow(frac_part.len().min(18) as u32);
            part += digits * scale / denom;
        }
        nanos = nanos.checked_add(part).ok_or_else(bad)?;
    }
    if nanos > i64::MAX as u128 {
        return Err(bad());
    }
    let magnitude = Duration::from_nanos(nanos as u64);
    Ok(SignedGoDuration {
        negative: negative && !magnitude.is_zero(),
        magnitude,
    })
}

impl fmt::Display for GoDuration {
    /// Compact Go form: `0s`, `1h`, `1h30m`, `1m30s`, `1.5s`, `250ms`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.0.as_nanos();
        if total == 0 {
            return f.write_str("0s");
        }
        const NS_PER_S: u128 = 1_000_000_000;
        if total < NS_PER_S {
            return if total.is_multiple_of(1_000_000) {
                write!(f, "{}ms", total / 1_000_000)
            } else if total.is_multiple_of(1_000) {
                write!(f, "{}us", total / 1_000)
            } else {
                write!(f, "{total}ns")
            };
        }
        let hours = total / (3600 * NS_PER_S);
        let minutes = (total / (60 * NS_PER_S)) % 60;
        let sub_minute = total % (60 * NS_PER_S);
        let mut out = String::new();
        if hours > 0 {
            out.push_str(&format!("{hours}h"));
        }
        if minutes > 0 {
            out.push_str(&format!("{minutes}m"));
        }
        if sub_minute > 0 {
            let secs = sub_minute / NS_PER_S;
            let frac = sub_minute % NS_PER_S;
            if frac == 0 {
                out.push_str(&format!("{secs}s"));
            } else {
                let frac = format!("{frac:09}");
                out.push_str(&format!("{secs}.{}s", frac.trim_end_matches('0')));
            }
        }
        f.write_str(&out)
    }
}

/// Why a string is not a usable non-negative Go duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a Go duration ({why}); use a number with a unit ns, us, ms, s, m or h, e.g. 90s, 1h30m, 720h")]
pub struct DurationError {
    /// The rejected text.
    pub input: String,
    /// What is wrong with it.
    pub why: &'static str,
}

impl From<jiff::SignedDuration> for GoDuration {
    /// A signed duration as a Go duration; a negative one (never parsed) is zero.
    fn from(d: jiff::SignedDuration) -> Self {
        GoDuration(Duration::try_from(d).unwrap_or(Duration::ZERO))
    }
}

impl GoDuration {
    /// Parses a non-negative Go duration (`1h30m`, `300s`, `0s`, `1.5h`); negative ones, `d`/`w`
    /// units and bare numbers other than `0` are rejected.
    pub fn parse(input: &str) -> Result<Self, DurationError> {
        match parse_go_duration(input) {
            Ok(d) if d.negative => Err(DurationError {
                input: input.to_string(),
                why: "negative",
            }),
            Ok(d) => Ok(GoDuration(d.magnitude)),
            Err(_) => Err(DurationError {
                input: input.to_string(),
                why: "malformed",
            }),
        }
    }

    /// The duration as jiff's signed type (saturating at its maximum).
    pub fn as_signed(self) -> jiff::SignedDuration {
        jiff::SignedDuration::try_from(self.0).unwrap_or(jiff::SignedDuration::MAX)
    }

    /// The duration as std's type.
    pub fn as_std(self) -> Duration {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::SignedDuration;

    /// A non-negative Go duration as jiff's type, as policies and reasons use it.
    fn signed(s: &str) -> Result<SignedDuration, DurationError> {
        GoDuration::parse(s).map(GoDuration::as_signed)
    }

    fn render(s: &str) -> String {
        let d = parse_go_duration(s).expect("valid");
        assert!(!d.negative);
        GoDuration(d.magnitude).to_string()
    }

    #[test]
    fn renders_compact_go_durations() {
        assert_eq!(render("1h"), "1h");
        assert_eq!(render("60m"), "1h");
        assert_eq!(render("90s"), "1m30s");
        assert_eq!(render("1h30m"), "1h30m");
        assert_eq!(render("720h"), "720h");
        assert_eq!(render("0"), "0s");
        assert_eq!(render("0s"), "0s");
        assert_eq!(render("1.5s"), "1.5s");
        assert_eq!(render("250ms"), "250ms");
        assert_eq!(render("1.5h"), "1h30m");
    }

    #[test]
    fn rejects_what_go_rejects() {
        for bad in ["", "1", "1d", "1w", "h", "1h-5m", "abc", "-", "1.h5", "."] {
            assert!(
                parse_go_duration(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn non_negative_parsing_rejects_negatives_days_and_bare_numbers_with_the_reason() {
        assert_eq!(GoDuration::parse("1h30m").unwrap().as_std().as_secs(), 5400);
        assert_eq!(
            GoDuration::parse("250ms").unwrap().as_std().as_millis(),
            250
        );
        assert_eq!(GoDuration::parse("-1h").unwrap_err().why, "negative");
        for bad in ["1d", "2w", "30", ""] {
            let e = GoDuration::parse(bad).unwrap_err();
            assert!(e.to_string().contains("Go duration"), "{bad}");
        }
    }

    #[test]
    fn reports_negative_durations() {
        let d = parse_go_duration("-1h").expect("valid syntax");
        assert!(d.negative);
        assert!(!parse_go_duration("-0s").expect("valid").negative);
    }

    #[test]
    fn go_durations_parse_like_go() {
        let h = |n: i64| SignedDuration::from_hours(n);
        assert_eq!(signed("720h"), Ok(h(720)));
        assert_eq!(signed("1h30m"), Ok(SignedDuration::from_mins(90)));
        assert_eq!(signed("1.5h"), Ok(SignedDuration::from_mins(90)));
        assert_eq!(signed("90s"), Ok(SignedDuration::from_secs(90)));
        assert_eq!(signed("250ms"), Ok(SignedDuration::from_millis(250)));
        assert_eq!(signed("3µs"), Ok(SignedDuration::from_micros(3)));
        assert_eq!(signed("0"), Ok(SignedDuration::ZERO));
    }

    #[test]
    fn malformed_go_durations_are_rejected() {
        for bad in ["", "30d", "h", "10", "-1h", "99999999999999999999h"] {
            assert!(signed(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn durations_print_back_as_written() {
        assert_eq!(
            GoDuration::from(SignedDuration::from_hours(720)).to_string(),
            "720h"
        );
        assert_eq!(
            GoDuration::from(SignedDuration::from_mins(90)).to_string(),
            "1h30m"
        );
        assert_eq!(
            GoDuration::from(SignedDuration::from_secs(45)).to_string(),
            "45s"
        );
        assert_eq!(
            GoDuration::from(SignedDuration::from_millis(250)).to_string(),
            "250ms"
        );
    }
}
