//! When a retention policy runs: a five-field cron expression in UTC or `@every <duration>`.

use croner::parser::CronParser;
use croner::Cron;
use jiff::tz::TimeZone;
use jiff::Timestamp;

use crate::duration::GoDuration;

/// Shortest `@every` period accepted: more often than this is a hot loop against a registry.
pub const MIN_EVERY_SECS: i64 = 60;

/// A parsed `spec.schedule`.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// A cron expression, evaluated in UTC.
    Cron(Box<Cron>),
    /// A fixed period after the previous run's start.
    Every(GoDuration),
}

/// Why a schedule is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("schedule {input:?}: {why}")]
pub struct ScheduleError {
    /// The rejected schedule.
    pub input: String,
    /// What is wrong.
    pub why: String,
}

impl Schedule {
    /// Parses `0 3 * * *` (minute hour day-of-month month day-of-week, UTC) or `@every 6h`.
    pub fn parse(input: &str) -> Result<Self, ScheduleError> {
        let err = |why: String| ScheduleError {
            input: input.to_string(),
            why,
        };
        let trimmed = input.trim();
        if let Some(period) = trimmed.strip_prefix("@every") {
            let d = GoDuration::parse(period.trim()).map_err(|e| err(e.to_string()))?;
            if d.as_signed().as_secs() < MIN_EVERY_SECS {
                return Err(err(format!("@every must be at least {MIN_EVERY_SECS}s")));
            }
            return Ok(Schedule::Every(d));
        }
        if trimmed.split_whitespace().count() != 5 && !trimmed.starts_with('@') {
            return Err(err(
                "a cron schedule has five fields: minute hour day-of-month month day-of-week"
                    .into(),
            ));
        }
        let cron = CronParser::new()
            .parse(trimmed)
            .map_err(|e| err(e.to_string()))?;
        Ok(Schedule::Cron(Box::new(cron)))
    }

    /// The first run time strictly after `after` (for `@every`: `after` plus the period,
    /// where `after` is the previous run's start).
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        match self {
            Schedule::Every(d) => after.checked_add(d.as_signed()).ok(),
            Schedule::Cron(cron) => {
                let zoned = after.to_zoned(TimeZone::UTC);
                cron.find_next_occurrence(&zoned, false)
                    .ok()
                    .map(|z| z.timestamp())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_daily_cron_runs_next_at_its_utc_time() {
        let s = Schedule::parse("0 3 * * *").unwrap();
        assert_eq!(
            s.next_after(ts("2026-11-23T02:59:00Z")),
            Some(ts("2026-11-23T03:00:00Z"))
        );
        assert_eq!(
            s.next_after(ts("2026-11-23T03:00:00Z")),
            Some(ts("2026-11-24T03:00:00Z"))
        );
    }

    #[test]
    fn every_runs_one_period_after_the_previous_start() {
        let s = Schedule::parse("@every 6h").unwrap();
        assert_eq!(
            s.next_after(ts("2026-11-23T03:00:00Z")),
            Some(ts("2026-11-23T09:00:00Z"))
        );
    }

    #[test]
    fn malformed_schedules_are_rejected_with_a_reason() {
        for bad in [
            "every day",
            "0 3 * *",
            "61 3 * * *",
            "@every 1d",
            "@every 10s",
            "",
        ] {
            let e = Schedule::parse(bad).unwrap_err();
            assert!(!e.why.is_empty(), "{bad}");
        }
    }
}
