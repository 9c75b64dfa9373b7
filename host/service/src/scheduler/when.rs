//! When a schedule fires: a cron expression (UTC, crontab's fields) or a
//! fixed interval, within an optional window.

use chrono::{DateTime, TimeZone, Utc};

use super::crontab::Crontab;
use stratbox_store::schedules::ScheduleDefinition;

/// The parsed timing of a schedule.
#[derive(Debug, Clone)]
pub enum When {
    Cron(Box<Crontab>),
    Every { secs: u64 },
}

/// A timing error, naming the request field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid {field}: {message}")]
pub struct WhenError {
    pub field: &'static str,
    pub message: String,
}

fn error(field: &'static str, message: impl Into<String>) -> WhenError {
    WhenError {
        field,
        message: message.into(),
    }
}

impl When {
    /// Exactly one of `cron` (crontab(5): 5 fields, or 6 with seconds
    /// first) and `every_secs` (at least 1).
    pub fn parse(cron: Option<&str>, every_secs: Option<u64>) -> Result<When, WhenError> {
        match (cron, every_secs) {
            (Some(_), Some(_)) => Err(error("cron", "give either cron or every_secs, not both")),
            (None, None) => Err(error("cron", "give a cron expression or every_secs")),
            (None, Some(0)) => Err(error("every_secs", "must be at least 1")),
            (None, Some(secs)) => Ok(When::Every { secs }),
            (Some(text), None) => Crontab::parse(text)
                .map(|c| When::Cron(Box::new(c)))
                .map_err(|e| error("cron", format!("`{text}`: {e}"))),
        }
    }

    pub fn of(definition: &ScheduleDefinition) -> Result<When, WhenError> {
        When::parse(definition.cron.as_deref(), definition.every_secs)
    }

    /// The first occurrence strictly after `after_ms`, not before
    /// `start_ms` and not after `end_ms`.
    pub fn next_after(&self, after_ms: i64, start_ms: i64, end_ms: Option<i64>) -> Option<i64> {
        let next = match self {
            When::Every { secs } => {
                let step = (*secs as i64).saturating_mul(1000);
                if after_ms < start_ms {
                    start_ms
                } else {
                    // On the grid start, start + step, ...
                    start_ms + ((after_ms - start_ms) / step + 1) * step
                }
            }
            When::Cron(schedule) => {
                let from = after_ms.max(start_ms - 1);
                let at: DateTime<Utc> = Utc.timestamp_millis_opt(from).single()?;
                schedule.after(&at)?.timestamp_millis()
            }
        };
        match end_ms {
            Some(end) if next > end => None,
            _ => Some(next),
        }
    }
}

/// Missed occurrences (the scheduler was down) are coalesced: the
/// overdue occurrence fires once, and the next one is the first after
/// now, so a long outage gives one run, not a burst.
pub fn next_after_firing(
    when: &When,
    occurrence_ms: i64,
    now_ms: i64,
    start_ms: i64,
    end_ms: Option<i64>,
) -> Option<i64> {
    when.next_after(occurrence_ms.max(now_ms), start_ms, end_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_704_067_200_000; // 2024-01-01T00:00:00Z

    #[test]
    fn intervals_stay_on_their_grid() {
        let every = When::parse(None, Some(10)).unwrap();
        assert_eq!(every.next_after(T0 - 5, T0, None), Some(T0));
        assert_eq!(every.next_after(T0, T0, None), Some(T0 + 10_000));
        assert_eq!(every.next_after(T0 + 10_001, T0, None), Some(T0 + 20_000));
        assert_eq!(every.next_after(T0 + 10_000, T0, Some(T0 + 15_000)), None);
    }

    #[test]
    fn cron_in_utc_with_five_or_six_fields() {
        let hourly = When::parse(Some("30 * * * *"), None).unwrap();
        assert_eq!(hourly.next_after(T0, T0, None), Some(T0 + 30 * 60_000));
        let per_second = When::parse(Some("* * * * * *"), None).unwrap();
        assert_eq!(per_second.next_after(T0 + 500, T0, None), Some(T0 + 1_000));
        // The start bound is inclusive.
        let daily = When::parse(Some("0 0 * * *"), None).unwrap();
        assert_eq!(daily.next_after(T0 - 1_000, T0, None), Some(T0));
    }

    #[test]
    fn cron_days_of_week_are_crontabs() {
        const DAY: i64 = 86_400_000;
        const SUNDAY: i64 = T0 + 6 * DAY; // 2024-01-07T00:00:00Z
                                          // 03:00 UTC on these days of January 2024 (the 7th a Sunday).
        let at_three = |days: &[i64]| -> Vec<i64> {
            days.iter()
                .map(|d| T0 + (d - 1) * DAY + 3 * 3_600_000)
                .collect()
        };
        for (cron, days) in [
            ("0 3 * * 1-5", at_three(&[8, 9, 10, 11, 12, 15])),
            ("0 3 * * MON-FRI", at_three(&[8, 9, 10, 11, 12, 15])),
            ("0 3 * * 0", at_three(&[7, 14, 21, 28])),
            ("0 3 * * 7", at_three(&[7, 14, 21, 28])),
            ("0 3 * * sat,sun", at_three(&[7, 13, 14, 20, 21])),
            ("0 3 * * */2", at_three(&[7, 9, 11, 13, 14, 16])),
            ("0 3 * * 1-5/2", at_three(&[8, 10, 12, 15, 17])),
            ("0 0 3 * * 6", at_three(&[13, 20, 27])),
        ] {
            let when = When::parse(Some(cron), None).unwrap_or_else(|e| panic!("{cron}: {e}"));
            let mut at = SUNDAY;
            let mut got = Vec::new();
            for _ in 0..days.len() {
                at = when.next_after(at, T0, None).unwrap();
                got.push(at);
            }
            assert_eq!(got, days, "{cron}");
        }
        let e = When::parse(Some("0 3 * * 8"), None).unwrap_err();
        assert_eq!(e.field, "cron");
        assert_eq!(
            e.to_string(),
            "invalid cron: `0 3 * * 8`: day-of-week field `8`: `8` is out of range \
             0-7 (0 and 7 are Sunday) or sun-sat"
        );
    }

    #[test]
    fn bad_timings_name_the_field() {
        for (cron, every, field) in [
            (Some("61 * * * *"), None, "cron"),
            (Some("* * *"), None, "cron"),
            (Some("not a cron at all"), None, "cron"),
            (None, Some(0), "every_secs"),
            (None, None, "cron"),
            (Some("* * * * *"), Some(5), "cron"),
        ] {
            let e = When::parse(cron, every).unwrap_err();
            assert_eq!(e.field, field, "{cron:?} {every:?}: {e}");
        }
    }

    #[test]
    fn an_outage_gives_one_run_then_the_next_future_occurrence() {
        let every = When::parse(None, Some(60)).unwrap();
        // Due at T0 + 60 s, noticed at T0 + 10 min: fires once, next at
        // T0 + 11 min.
        let next = next_after_firing(&every, T0 + 60_000, T0 + 600_000, T0, None);
        assert_eq!(next, Some(T0 + 660_000));
    }
}
