//! Go durations (`720h`, `1h30m`, `90s`) as the policy fields are written (parsed by
//! [`crate::duration`]), and the short human ages (`41d`, `3h`, `12m`) the decision reasons use.

use std::fmt;

use jiff::SignedDuration;

/// Parses a non-negative Go duration (`720h`, `1h30m`, `1.5h`, a lone `0`) into jiff's type,
/// with the one parser the whole project uses ([`crate::duration`]).
pub fn parse_go_duration(s: &str) -> Result<SignedDuration, crate::duration::DurationError> {
    crate::duration::GoDuration::parse(s).map(|d| d.as_signed())
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
    fn malformed_go_durations_are_rejected() {
        for bad in ["", "30d", "h", "10", "-1h", "99999999999999999999h"] {
            assert!(parse_go_duration(bad).is_err(), "{bad:?}");
        }
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
