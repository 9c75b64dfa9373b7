//! RFC 3339 date-times and unix seconds UTC: the parser behind CSV `ts`
//! fields and the API's and optimizer's date fields, and the formatter of
//! the API's dates. Proleptic Gregorian calendar, whole seconds, no leap
//! seconds.

/// Parses an RFC 3339 date-time (`2024-01-01T00:00:00Z`, or with an
/// offset) into unix seconds UTC, as the API's date fields need.
pub fn parse_rfc3339_secs(raw: &str) -> Result<i64, String> {
    parse_rfc3339(raw.trim().as_bytes())
}

/// Reads `len` ASCII digits at `at` as a number.
fn digits_at(b: &[u8], at: usize, len: usize) -> Option<i64> {
    let field = b.get(at..at + len)?;
    field.iter().try_fold(0i64, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
    })
}

fn is_leap_year(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap_year(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`). `m` is 1..=12, `d` is 1..=31.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400; // [0, 399]
    let mp = (m + 9) % 12; // March = 0 ... February = 11
    let doy = (153 * mp + 2) / 5 + d - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01 (inverse of
/// [`days_from_civil`], same algorithm family).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // March = 0
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`, the form the API's dates take.
pub fn format_rfc3339_secs(secs: i64) -> String {
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let t = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        t / 3600,
        t / 60 % 60,
        t % 60
    )
}

/// Parses `YYYY-MM-DD(T|t| )HH:MM:SS[.000…](Z|z|±HH:MM)` into unix seconds.
/// The error is a bare reason; callers say which field it is about.
pub(crate) fn parse_rfc3339(b: &[u8]) -> Result<i64, String> {
    const SHAPE: &str = "expected YYYY-MM-DDTHH:MM:SS followed by Z or an offset like +02:00";
    let sep = |at: usize, c: u8| b.get(at) == Some(&c);
    let (Some(year), true, Some(month), true, Some(day)) = (
        digits_at(b, 0, 4),
        sep(4, b'-'),
        digits_at(b, 5, 2),
        sep(7, b'-'),
        digits_at(b, 8, 2),
    ) else {
        return Err(format!("malformed date; {SHAPE}"));
    };
    if b.len() == 10 {
        return Err(format!("date without a time; {SHAPE}"));
    }
    let (true, Some(hour), true, Some(minute), true, Some(second)) = (
        matches!(b.get(10), Some(b'T' | b't' | b' ')),
        digits_at(b, 11, 2),
        sep(13, b':'),
        digits_at(b, 14, 2),
        sep(16, b':'),
        digits_at(b, 17, 2),
    ) else {
        return Err(format!("malformed date-time; {SHAPE}"));
    };
    let mut pos = 19;
    if sep(pos, b'.') {
        let start = pos + 1;
        let mut end = start;
        while b.get(end).is_some_and(u8::is_ascii_digit) {
            end += 1;
        }
        if end == start {
            return Err(format!("missing digits after the decimal point; {SHAPE}"));
        }
        if b[start..end].iter().any(|&c| c != b'0') {
            let frac = String::from_utf8_lossy(&b[pos..end]);
            return Err(format!(
                "fractional seconds `{frac}` are not supported; timestamps must be whole seconds"
            ));
        }
        pos = end;
    }
    let offset_secs = match &b[pos..] {
        b"Z" | b"z" => 0,
        [] => {
            return Err("missing timezone; append Z for UTC or an offset like +02:00".to_string())
        }
        [sign @ (b'+' | b'-'), rest @ ..] if rest.len() == 5 && rest[2] == b':' => {
            let (Some(oh), Some(om)) = (digits_at(rest, 0, 2), digits_at(rest, 3, 2)) else {
                return Err(format!("malformed timezone offset; {SHAPE}"));
            };
            if oh > 23 || om > 59 {
                return Err(format!("timezone offset {oh:02}:{om:02} is out of range"));
            }
            let secs = oh * 3_600 + om * 60;
            if *sign == b'-' {
                -secs
            } else {
                secs
            }
        }
        _ => return Err(format!("malformed timezone offset; {SHAPE}")),
    };
    if !(1..=12).contains(&month) {
        return Err(format!("month {month} is out of range 01-12"));
    }
    if day < 1 || day > days_in_month(year, month) {
        return Err(format!(
            "day {day} is out of range for {year:04}-{month:02}"
        ));
    }
    if hour > 23 {
        return Err(format!("hour {hour} is out of range 00-23"));
    }
    if minute > 59 {
        return Err(format!("minute {minute} is out of range 00-59"));
    }
    if second == 60 {
        return Err("leap second 60 is not supported".to_string());
    }
    if second > 59 {
        return Err(format!("second {second} is out of range 00-59"));
    }
    let days = days_from_civil(year, month, day);
    Ok(days * 86_400 + hour * 3_600 + minute * 60 + second - offset_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_offsets_and_gives_bare_reasons() {
        for text in [
            "2024-01-01T00:00:00Z",
            " 2024-01-01t02:00:00+02:00\n",
            "2023-12-31 19:00:00-05:00",
            "2024-01-01T00:00:00.000z",
        ] {
            assert_eq!(parse_rfc3339_secs(text), Ok(1_704_067_200), "{text:?}");
        }
        let reason = |text: &str| parse_rfc3339_secs(text).unwrap_err();
        assert_eq!(
            reason("2024-02-30T00:00:00Z"),
            "day 30 is out of range for 2024-02"
        );
        assert_eq!(
            reason("2024-01-01T00:00:00"),
            "missing timezone; append Z for UTC or an offset like +02:00"
        );
        assert!(reason("1704067200").starts_with("malformed date; expected YYYY-MM-DD"));
        assert!(reason("").starts_with("malformed date;"));
    }

    #[test]
    fn days_from_civil_matches_day_counting() {
        // Walk every day from 1600 to 2400 and compare with a running count.
        let mut expected = days_from_civil(1600, 1, 1);
        for y in 1600..2400 {
            for m in 1..=12 {
                for d in 1..=days_in_month(y, m) {
                    assert_eq!(days_from_civil(y, m, d), expected, "{y}-{m}-{d}");
                    expected += 1;
                }
            }
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
    }

    #[test]
    fn formatted_dates_parse_back() {
        assert_eq!(format_rfc3339_secs(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339_secs(1_704_067_200), "2024-01-01T00:00:00Z");
        assert_eq!(format_rfc3339_secs(1_709_164_799), "2024-02-28T23:59:59Z");
        assert_eq!(format_rfc3339_secs(1_709_251_199), "2024-02-29T23:59:59Z");
        assert_eq!(format_rfc3339_secs(-1), "1969-12-31T23:59:59Z");
        for secs in (-5_000_000_000i64..5_000_000_000).step_by(86_399 * 37) {
            let text = format_rfc3339_secs(secs);
            assert_eq!(parse_rfc3339_secs(&text), Ok(secs), "{text}");
        }
    }
}
