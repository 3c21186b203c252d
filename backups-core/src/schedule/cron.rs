//! Cron expressions: 5 fields (minute hour day-of-month month day-of-week)
//! or 6 with seconds first, evaluated in UTC by `croner`; and the catch-up
//! decision made from a job's last run.

use std::fmt;
use std::str::FromStr;

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use time::OffsetDateTime;

use crate::error::{Error, InputKind, Result};

/// A parsed cron expression, evaluated in UTC.
#[derive(Clone)]
pub struct CronSchedule {
    expression: String,
    cron: Cron,
}

impl fmt::Debug for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CronSchedule")
            .field(&self.expression)
            .finish()
    }
}

impl fmt::Display for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.expression)
    }
}

impl FromStr for CronSchedule {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        CronSchedule::parse(s)
    }
}

impl CronSchedule {
    /// Parses `expression`: 5 fields (`30 3 * * *`: 03:30 every day) or 6
    /// with seconds first (`*/2 * * * * *`: every two seconds).
    pub fn parse(expression: &str) -> Result<Self> {
        let invalid = |reason: String| Error::InvalidInput {
            what: InputKind::CronExpression,
            value: expression.to_string(),
            reason,
        };
        let fields = expression.split_whitespace().count();
        if fields != 5 && fields != 6 {
            return Err(invalid(format!(
                "{fields} fields; expected 5 (minute hour day month weekday) or 6 (seconds first)"
            )));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .build()
            .parse(expression)
            .map_err(|e| invalid(e.to_string()))?;
        let schedule = CronSchedule {
            expression: expression.trim().to_string(),
            cron,
        };
        // An expression no date satisfies (`0 0 31 2 *`) would never run.
        if schedule.next_after(OffsetDateTime::now_utc()).is_none() {
            return Err(invalid(
                "it never fires: no date matches its day, month and weekday".into(),
            ));
        }
        Ok(schedule)
    }

    /// The first time the expression matches strictly after `after` (whole
    /// seconds); `None` when it never matches again.
    pub fn next_after(&self, after: OffsetDateTime) -> Option<OffsetDateTime> {
        let start = chrono::DateTime::from_timestamp(after.unix_timestamp(), 0)?;
        let next = self.cron.find_next_occurrence(&start, false).ok()?;
        OffsetDateTime::from_unix_timestamp(next.timestamp()).ok()
    }

    /// The next `n` times the expression matches after `after`.
    pub fn upcoming(&self, after: OffsetDateTime, n: usize) -> Vec<OffsetDateTime> {
        let mut out = Vec::with_capacity(n);
        let mut t = after;
        while out.len() < n {
            match self.next_after(t) {
                Some(next) => {
                    out.push(next);
                    t = next;
                }
                None => break,
            }
        }
        out
    }

    /// How far apart runs are expected to be, seen from `after`: the gap
    /// between the next two matches (`None` when there are not two more).
    /// For `0 3 * * *` a day; for `0 9 * * 1-5` a day or, over a weekend,
    /// three. Exported as `backups_schedule_expected_interval_seconds`, so
    /// an alert on staleness needs no hand-written interval.
    pub fn interval_after(&self, after: OffsetDateTime) -> Option<std::time::Duration> {
        match self.upcoming(after, 2).as_slice() {
            [a, b] => Some((*b - *a).unsigned_abs()),
            _ => None,
        }
    }

    /// Whether a job that last ran at `last_run` missed a run before `now`:
    /// the expression matched after its last run and at or before now.
    /// A job that never ran has missed nothing (there is no run to catch
    /// up on: its first run is its first scheduled time).
    pub fn missed_since(&self, last_run: Option<OffsetDateTime>, now: OffsetDateTime) -> bool {
        last_run
            .and_then(|last| self.next_after(last))
            .is_some_and(|next| next <= now)
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn five_fields_are_minutes_and_six_start_with_seconds() {
        let daily = CronSchedule::parse("30 3 * * *").unwrap();
        assert_eq!(
            daily.next_after(datetime!(2026-12-01 12:00:00 UTC)),
            Some(datetime!(2026-12-02 03:30:00 UTC))
        );
        let every_two = CronSchedule::parse("*/2 * * * * *").unwrap();
        assert_eq!(
            every_two.upcoming(datetime!(2026-12-01 12:00:00.5 UTC), 3),
            vec![
                datetime!(2026-12-01 12:00:02 UTC),
                datetime!(2026-12-01 12:00:04 UTC),
                datetime!(2026-12-01 12:00:06 UTC),
            ]
        );
    }

    #[test]
    fn the_next_run_is_strictly_after_the_given_time() {
        let hourly = CronSchedule::parse("0 * * * *").unwrap();
        assert_eq!(
            hourly.next_after(datetime!(2026-12-01 12:00:00 UTC)),
            Some(datetime!(2026-12-01 13:00:00 UTC))
        );
        // Weekdays: 2026-12-05 is a Saturday, so Monday the 7th.
        let weekdays = CronSchedule::parse("0 9 * * 1-5").unwrap();
        assert_eq!(
            weekdays.next_after(datetime!(2026-12-05 10:00:00 UTC)),
            Some(datetime!(2026-12-07 09:00:00 UTC))
        );
    }

    #[test]
    fn the_interval_is_the_gap_between_the_next_two_runs() {
        let at = datetime!(2026-12-01 12:00:00 UTC);
        let secs = |e: &str| {
            CronSchedule::parse(e)
                .unwrap()
                .interval_after(at)
                .map(|d| d.as_secs())
        };
        assert_eq!(secs("0 * * * *"), Some(3600));
        assert_eq!(secs("30 3 * * *"), Some(86_400));
        assert_eq!(secs("*/2 * * * * *"), Some(2));
        // 2026-12-04 is a Friday: from Friday 10:00 the next two weekday
        // runs are Monday and Tuesday.
        let weekdays = CronSchedule::parse("0 9 * * 1-5").unwrap();
        assert_eq!(
            weekdays
                .interval_after(datetime!(2026-12-04 10:00:00 UTC))
                .map(|d| d.as_secs()),
            Some(86_400)
        );
        assert_eq!(
            weekdays
                .interval_after(datetime!(2026-12-04 08:00:00 UTC))
                .map(|d| d.as_secs()),
            Some(3 * 86_400)
        );
    }

    #[test]
    fn bad_expressions_say_why() {
        for bad in [
            "* * * *",
            "* * * * * * *",
            "61 * * * *",
            "nonsense x y z w",
            "0 0 31 2 *",
            "0 0 30 2 *",
        ] {
            let e = CronSchedule::parse(bad).unwrap_err();
            assert!(
                matches!(
                    e,
                    Error::InvalidInput {
                        what: InputKind::CronExpression,
                        ..
                    }
                ),
                "{bad}: {e}"
            );
            assert!(e.to_string().contains(bad), "{e}");
        }
    }

    #[test]
    fn catch_up_only_when_a_run_was_missed_since_the_last_one() {
        let daily = CronSchedule::parse("0 3 * * *").unwrap();
        let now = datetime!(2026-12-01 12:00:00 UTC);
        // Ran this morning: nothing missed.
        assert!(!daily.missed_since(Some(datetime!(2026-12-01 03:00:01 UTC)), now));
        // Last ran yesterday morning: this morning's run was missed.
        assert!(daily.missed_since(Some(datetime!(2026-11-30 03:00:00 UTC)), now));
        // Down for a week: still one catch-up decision (one run, not seven).
        assert!(daily.missed_since(Some(datetime!(2026-11-24 03:00:00 UTC)), now));
        // Never ran: nothing to catch up on.
        assert!(!daily.missed_since(None, now));
        // Due exactly now counts as missed.
        assert!(daily.missed_since(
            Some(datetime!(2026-11-30 03:00:00 UTC)),
            datetime!(2026-12-01 03:00:00 UTC)
        ));
    }
}
