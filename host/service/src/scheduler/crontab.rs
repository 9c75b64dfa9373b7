//! Unix crontab expressions (crontab(5), as Vixie cron reads them) turned
//! into the `cron` crate's schedules, which number days of week 1-7 from
//! Sunday and always AND the day of month with the day of week.
//!
//! Every field is read here, into the explicit list of values crontab
//! means, so the crate only ever sees plain numbers: its own day numbers
//! and name tables are never used.

use std::collections::BTreeSet;
use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};

/// A parsed crontab expression: one schedule, or two whose union is the
/// expression when the day of month and the day of week are both
/// restricted (either day fires, as in Vixie cron).
#[derive(Debug, Clone)]
pub struct Crontab {
    schedules: Vec<cron::Schedule>,
}

struct Unit {
    name: &'static str,
    min: u32,
    max: u32,
    /// Names by value: value `min + i` is `names[i]` (three letters) or
    /// `long_names[i]`.
    names: &'static [&'static str],
    long_names: &'static [&'static str],
    hint: &'static str,
    /// `?` means `*` (the day fields, as the cron crate reads them).
    question_mark: bool,
}

const SECOND: Unit = Unit {
    name: "second",
    min: 0,
    max: 59,
    names: &[],
    long_names: &[],
    hint: "0-59",
    question_mark: false,
};
const MINUTE: Unit = Unit {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
    long_names: &[],
    hint: "0-59",
    question_mark: false,
};
const HOUR: Unit = Unit {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
    long_names: &[],
    hint: "0-23",
    question_mark: false,
};
const DAY_OF_MONTH: Unit = Unit {
    name: "day-of-month",
    min: 1,
    max: 31,
    names: &[],
    long_names: &[],
    hint: "1-31",
    question_mark: true,
};
const MONTH: Unit = Unit {
    name: "month",
    min: 1,
    max: 12,
    names: &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ],
    long_names: &[
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ],
    hint: "1-12 or jan-dec",
    question_mark: false,
};
const DAY_OF_WEEK: Unit = Unit {
    name: "day-of-week",
    min: 0,
    max: 7,
    names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
    long_names: &[
        "sunday",
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
    ],
    hint: "0-7 (0 and 7 are Sunday) or sun-sat",
    question_mark: true,
};

impl Crontab {
    /// Five fields (`min hour dom mon dow`) or six with seconds first.
    /// The error says which field is wrong and why.
    pub fn parse(text: &str) -> Result<Crontab, String> {
        let fields: Vec<&str> = text.split_whitespace().collect();
        let (second, rest) = match fields.len() {
            5 => ("0".to_string(), &fields[..]),
            6 => (read_field(&SECOND, fields[0])?, &fields[1..]),
            n => {
                return Err(format!(
                    "has {n} fields; expected 5 (min hour dom mon dow) or 6 (sec first)"
                ))
            }
        };
        let [minute, hour, dom, month, dow] = rest else {
            unreachable!("five fields by the match above")
        };
        let minute_set = read_field(&MINUTE, minute)?;
        let hour_set = read_field(&HOUR, hour)?;
        let dom_set = read_field(&DAY_OF_MONTH, dom)?;
        let month_set = read_field(&MONTH, month)?;
        let dow_set = read_days_of_week(dow)?;
        let time = format!("{second} {minute_set} {hour_set}");
        // Vixie cron: a day field counts as restricted unless it starts
        // with `*` (so `*/2` does not), and two restricted fields are ORed.
        let unrestricted = |f: &str| f.starts_with('*') || f.starts_with('?');
        let expressions = if unrestricted(dom) || unrestricted(dow) {
            vec![format!("{time} {dom_set} {month_set} {dow_set}")]
        } else {
            vec![
                format!("{time} {dom_set} {month_set} *"),
                format!("{time} * {month_set} {dow_set}"),
            ]
        };
        let schedules = expressions
            .iter()
            .map(|e| cron::Schedule::from_str(e).map_err(|err| format!("read as `{e}`: {err}")))
            .collect::<Result<Vec<_>, _>>()?;
        let crontab = Crontab { schedules };
        let epoch = Utc
            .timestamp_opt(0, 0)
            .single()
            .expect("the epoch is a time");
        if crontab.after(&epoch).is_none() {
            return Err("never fires: no date has its day of month in its months".into());
        }
        Ok(crontab)
    }

    /// The first occurrence strictly after `at`.
    pub fn after(&self, at: &DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.schedules
            .iter()
            .filter_map(|s| s.after(at).next())
            .min()
    }
}

/// A field as the crate's list of values, or `*` when it holds them all.
fn read_field(unit: &Unit, text: &str) -> Result<String, String> {
    let values = read_values(unit, text)?;
    Ok(if values.len() as u32 == unit.max - unit.min + 1 {
        "*".to_string()
    } else {
        join(&values)
    })
}

/// Crontab's 0-7 (0 and 7 Sunday) as the crate's 1-7 (1 Sunday).
fn read_days_of_week(text: &str) -> Result<String, String> {
    let days: BTreeSet<u32> = read_values(&DAY_OF_WEEK, text)?
        .into_iter()
        .map(|d| d % 7 + 1)
        .collect();
    Ok(if days.len() == 7 {
        "*".to_string()
    } else {
        join(&days)
    })
}

fn join(values: &BTreeSet<u32>) -> String {
    values
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// A comma-separated list of `*`, `N`, `A-B`, each optionally `/STEP`
/// (`N/STEP` runs from N to the top of the range, as in cronie and the
/// cron crate). `?` is `*` in the day fields.
fn read_values(unit: &Unit, text: &str) -> Result<BTreeSet<u32>, String> {
    let wrong = |what: String| format!("{} field `{text}`: {what}", unit.name);
    let mut values = BTreeSet::new();
    for item in text.split(',') {
        if item.is_empty() {
            return Err(wrong("an empty item in the list".into()));
        }
        let (base, step) = match item.split_once('/') {
            Some((base, step)) => {
                let span = unit.max - unit.min + 1;
                let step = step
                    .parse::<u32>()
                    .ok()
                    .filter(|s| (1..=span).contains(s))
                    .ok_or_else(|| wrong(format!("step `{step}` is not a number 1-{span}")))?;
                (base, Some(step))
            }
            None => (item, None),
        };
        let any = base == "*" || (base == "?" && unit.question_mark);
        let (low, high) = if any {
            (unit.min, unit.max)
        } else if let Some((a, b)) = base.split_once('-') {
            let low = value(unit, a).map_err(&wrong)?;
            let mut high = value(unit, b).map_err(&wrong)?;
            // `fri-sun`: Sunday closes a range as 7.
            if unit.max == 7 && high == 0 && low > 0 {
                high = 7;
            }
            if low > high {
                return Err(wrong(format!(
                    "range `{base}` runs backwards; write it as a list of two ranges"
                )));
            }
            (low, high)
        } else {
            let v = value(unit, base).map_err(&wrong)?;
            (v, if step.is_some() { unit.max } else { v })
        };
        values.extend((low..=high).step_by(step.unwrap_or(1) as usize));
    }
    Ok(values)
}

fn value(unit: &Unit, text: &str) -> Result<u32, String> {
    if text.is_empty() {
        return Err(format!("a value {} is missing", unit.hint));
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse::<u32>()
            .ok()
            .filter(|v| (unit.min..=unit.max).contains(v))
            .ok_or_else(|| format!("`{text}` is out of range {}", unit.hint));
    }
    let lower = text.to_ascii_lowercase();
    unit.names
        .iter()
        .zip(unit.long_names)
        .position(|(short, long)| lower == *short || lower == *long)
        .map(|i| unit.min + i as u32)
        .ok_or_else(|| format!("`{text}` is not a value {}", unit.hint))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, Weekday};

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    /// The first `n` occurrences after `from`.
    fn occurrences(expression: &str, from: &str, n: usize) -> Vec<DateTime<Utc>> {
        let crontab = Crontab::parse(expression).unwrap();
        let mut at = utc(from);
        let mut out = Vec::new();
        for _ in 0..n {
            at = crontab.after(&at).unwrap();
            out.push(at);
        }
        out
    }

    /// 03:00 UTC on each day of January 2024 given.
    fn at_three(days: &[u32]) -> Vec<DateTime<Utc>> {
        days.iter()
            .map(|d| utc(&format!("2024-01-{d:02}T03:00:00Z")))
            .collect()
    }

    // From Sunday 2024-01-07 00:00 UTC. January 2024: Mon 1, Sun 7,
    // Mon 8 .. Sat 13, Sun 14, Mon 15, ..., Sun 21, Sun 28.
    const SUNDAY: &str = "2024-01-07T00:00:00Z";

    #[test]
    fn days_of_week_are_crontabs() {
        let table: &[(&str, &[u32])] = &[
            ("0 3 * * 1-5", &[8, 9, 10, 11, 12, 15]),
            ("0 3 * * MON-FRI", &[8, 9, 10, 11, 12, 15]),
            ("0 3 * * mon-fri", &[8, 9, 10, 11, 12, 15]),
            ("0 3 * * 0", &[7, 14, 21, 28]),
            ("0 3 * * 7", &[7, 14, 21, 28]),
            ("0 3 * * sun", &[7, 14, 21, 28]),
            ("0 3 * * Sunday", &[7, 14, 21, 28]),
            ("0 3 * * 1", &[8, 15, 22, 29]),
            ("0 3 * * 6", &[13, 20, 27]),
            ("0 3 * * sat,sun", &[7, 13, 14, 20, 21]),
            ("0 3 * * 6,0", &[7, 13, 14, 20, 21]),
            ("0 3 * * 6-7", &[7, 13, 14, 20, 21]),
            ("0 3 * * fri-sun", &[7, 12, 13, 14, 19]),
            ("0 3 * * */2", &[7, 9, 11, 13, 14, 16]),
            ("0 3 * * 1-5/2", &[8, 10, 12, 15, 17]),
            ("0 3 * * 1/3", &[7, 8, 11, 14]),
            ("0 3 * * 0-7", &[7, 8, 9, 10]),
            ("0 3 * * 1,3-4,tue", &[8, 9, 10, 11, 15]),
            ("0 3 * * ?", &[7, 8, 9]),
            // Six fields, seconds first.
            ("0 0 3 * * 1-5", &[8, 9, 10, 11, 12, 15]),
        ];
        for (expression, days) in table {
            assert_eq!(
                occurrences(expression, SUNDAY, days.len()),
                at_three(days),
                "{expression}"
            );
        }
    }

    #[test]
    fn weekday_names_agree_with_chrono() {
        let crontab = Crontab::parse("30 12 * * 1-5").unwrap();
        let mut at = utc("2024-02-25T00:00:00Z");
        for _ in 0..50 {
            at = crontab.after(&at).unwrap();
            assert!(!matches!(at.weekday(), Weekday::Sat | Weekday::Sun), "{at}");
        }
    }

    #[test]
    fn day_of_month_or_day_of_week_when_both_are_restricted() {
        // Vixie cron: the 1st and 15th, and every Friday.
        assert_eq!(
            occurrences("0 3 1,15 * fri", "2024-01-01T04:00:00Z", 6),
            at_three(&[5, 12, 15, 19, 26])
                .into_iter()
                .chain([utc("2024-02-01T03:00:00Z")])
                .collect::<Vec<_>>()
        );
        // The 13th or a Friday.
        assert_eq!(
            occurrences("0 3 13 * 5", SUNDAY, 3),
            at_three(&[12, 13, 19])
        );
        // A day field starting with `*` is unrestricted, so the two AND:
        // the 13th on a Sunday or a Friday (`*/5` is 0 and 5).
        assert_eq!(
            occurrences("0 3 13 * */5", SUNDAY, 3),
            vec![
                utc("2024-09-13T03:00:00Z"),
                utc("2024-10-13T03:00:00Z"),
                utc("2024-12-13T03:00:00Z"),
            ]
        );
        // Mondays the 1st, 11th, 21st or 31st.
        assert_eq!(
            occurrences("0 3 */10 * 1", SUNDAY, 3),
            vec![
                utc("2024-03-11T03:00:00Z"),
                utc("2024-04-01T03:00:00Z"),
                utc("2024-07-01T03:00:00Z"),
            ]
        );
    }

    #[test]
    fn other_fields_are_crontabs_too() {
        assert_eq!(
            occurrences("*/20 9-10 * * *", SUNDAY, 4),
            vec![
                utc("2024-01-07T09:00:00Z"),
                utc("2024-01-07T09:20:00Z"),
                utc("2024-01-07T09:40:00Z"),
                utc("2024-01-07T10:00:00Z"),
            ]
        );
        assert_eq!(
            occurrences("0 0 1 jan,Jul *", SUNDAY, 2),
            vec![utc("2024-07-01T00:00:00Z"), utc("2025-01-01T00:00:00Z")]
        );
        assert_eq!(
            occurrences("0 0 29 2 *", SUNDAY, 2),
            vec![utc("2024-02-29T00:00:00Z"), utc("2028-02-29T00:00:00Z")]
        );
    }

    #[test]
    fn bad_expressions_say_which_field_and_why() {
        for (expression, needle) in [
            (
                "0 3 * * 8",
                "day-of-week field `8`: `8` is out of range 0-7",
            ),
            (
                "0 3 * * mon-fry",
                "day-of-week field `mon-fry`: `fry` is not a value",
            ),
            ("0 3 * * fri-mon", "range `fri-mon` runs backwards"),
            ("0 3 * * */0", "step `0` is not a number 1-8"),
            ("0 3 * * 1,,2", "an empty item"),
            ("0 3 * * -1", "day-of-week field `-1`: a value 0-7"),
            ("61 * * * *", "minute field `61`: `61` is out of range 0-59"),
            ("0 24 * * *", "hour field `24`"),
            (
                "0 3 0 * *",
                "day-of-month field `0`: `0` is out of range 1-31",
            ),
            ("0 3 * 13 *", "month field `13`"),
            (
                "0 3 * foo *",
                "month field `foo`: `foo` is not a value 1-12 or jan-dec",
            ),
            ("0 3 * ? *", "month field `?`"),
            ("60 0 3 * * *", "second field `60`"),
            ("* * *", "has 3 fields; expected 5"),
            ("0 0 30 2 *", "never fires"),
        ] {
            let e = Crontab::parse(expression).unwrap_err();
            assert!(e.contains(needle), "{expression}: {e}");
        }
    }
}
