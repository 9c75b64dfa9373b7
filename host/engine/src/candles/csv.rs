//! Strict CSV reader and writer for [`Candles`].
//!
//! # Format
//!
//! ```text
//! ts,open,high,low,close,volume
//! 1704067200,42000.5,42100,41950.25,42080,12.5
//! 2024-01-01T00:01:00Z,42080,42090,42010,42015.5,8.25
//! ```
//!
//! * The first line is the header: the six columns
//!   `ts,open,high,low,close,volume`, in any order, case-insensitive, each
//!   name trimmed of surrounding whitespace. Other columns (Bybit's
//!   `turnover`, say) are allowed and ignored, their values unread.
//!   Missing, duplicate or empty column names are errors.
//! * Every following line is one bar with as many comma-separated fields
//!   as the header (no quoting). Fields are trimmed of surrounding
//!   whitespace.
//! * `ts` is one of
//!   - unix seconds (an integer below `100_000_000_000`, may be negative),
//!   - unix milliseconds (an integer `>= 100_000_000_000`; must be a whole
//!     number of seconds),
//!   - an RFC 3339 date-time with a `Z` or `±HH:MM` offset, e.g.
//!     `2024-01-01T00:00:00Z`, `2024-01-01T02:00:00+02:00`,
//!     `2024-01-01 00:00:00Z`; fractional seconds are accepted only if they
//!     are all zero (`.000`).
//!
//!   All forms are converted to unix seconds UTC.
//! * Prices and volume are decimal floats (anything Rust's `f64` parser
//!   accepts, e.g. `1e3`), and must be finite.
//! * Rows must have strictly increasing `ts`, `high >= low`,
//!   `high >= max(open, close)`, `low <= min(open, close)` and `volume >= 0`.
//! * A UTF-8 byte-order mark, CRLF line endings and blank *trailing* lines
//!   are accepted. A blank line between rows is an error.
//! * Read for a named timeframe ([`parse_csv_on_timeframe`]), every gap
//!   between consecutive rows is a whole number of bars: gaps are allowed,
//!   finer spacing is not (1-minute bars are not a 1h series).
//!
//! Nothing is ever skipped silently: the first problem is reported as a
//! [`CsvError`] carrying the 1-based line number of the file and, where it
//! applies, the column name.

use std::fmt::Write as _;
use std::io;

use super::{format_timeframe, Candles};
use crate::time::parse_rfc3339;

/// The six required columns, in canonical (output) order.
pub const COLUMNS: [&str; 6] = ["ts", "open", "high", "low", "close", "volume"];
const HEADER: &str = "ts,open,high,low,close,volume";
/// Integers at or above this are read as unix milliseconds (1973-03-03 in
/// milliseconds, year 5138 in seconds).
const MILLIS_THRESHOLD: i64 = 100_000_000_000;
/// Offending text is quoted in messages up to this many characters.
const MAX_QUOTED_CHARS: usize = 40;

/// What kind of problem a [`CsvError`] reports, for programmatic matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CsvErrorKind {
    /// The file is empty or contains only whitespace.
    Empty,
    /// The header has a missing, duplicate or empty column name.
    Header,
    /// A row does not have as many fields as the header.
    FieldCount,
    /// A blank line appears between rows (only trailing blank lines are allowed).
    BlankLine,
    /// A price or volume field is empty or not a number.
    NotANumber,
    /// A price or volume field is NaN or infinite.
    NonFinite,
    /// A `ts` field is not a valid timestamp.
    Timestamp,
    /// `ts` is not strictly greater than the previous row's `ts`.
    NotIncreasing,
    /// The gap from the previous row's `ts` is not a whole number of bars
    /// of the named timeframe.
    Spacing,
    /// `high < low`.
    HighBelowLow,
    /// `high < max(open, close)`.
    HighBelowBody,
    /// `low > min(open, close)`.
    LowAboveBody,
    /// `volume < 0`.
    NegativeVolume,
    /// The file has a header but no data rows.
    NoRows,
}

/// A CSV problem at a specific line (1-based) and, where it applies, column.
///
/// Displays as `line 7, column high: high 99.5 is below low 100.2`, or
/// `line 3: expected 6 fields ..., found 5` when no single column is at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}{}: {message}", column_suffix(.column))]
pub struct CsvError {
    /// 1-based line number in the file.
    pub line: usize,
    /// The column at fault, if any (lowercase for the six known columns; as
    /// written in the header for unknown ones).
    pub column: Option<String>,
    pub kind: CsvErrorKind,
    /// Human-readable description, without the line/column prefix.
    pub message: String,
}

fn column_suffix(column: &Option<String>) -> String {
    match column {
        Some(c) => format!(", column {c}"),
        None => String::new(),
    }
}

impl CsvError {
    fn new(line: usize, column: Option<&str>, kind: CsvErrorKind, message: String) -> Self {
        CsvError {
            line,
            column: column.map(str::to_string),
            kind,
            message,
        }
    }
}

/// Quotes user text for an error message, truncated to 40 characters.
fn quote(text: &str) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(MAX_QUOTED_CHARS).collect();
    if chars.next().is_some() {
        format!("`{head}…`")
    } else {
        format!("`{head}`")
    }
}

fn is_blank(line: &str) -> bool {
    line.trim().is_empty()
}

/// Parses candles from CSV text. See the [module docs](self) for the format.
pub fn parse_csv(text: &str) -> Result<Candles, CsvError> {
    parse(text, None)
}

/// Parses candles for a series of `timeframe_secs` (positive, as
/// [`parse_timeframe`](super::parse_timeframe) gives): as [`parse_csv`],
/// and every gap between consecutive rows must be a multiple of it, else
/// a [`CsvErrorKind::Spacing`] error names the line. Annualisation
/// trusts the named timeframe, so finer bars would skew it.
pub fn parse_csv_on_timeframe(text: &str, timeframe_secs: i64) -> Result<Candles, CsvError> {
    parse(text, u64::try_from(timeframe_secs).ok().filter(|t| *t > 0))
}

fn parse(text: &str, timeframe_secs: Option<u64>) -> Result<Candles, CsvError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if is_blank(text) {
        return Err(CsvError::new(
            1,
            None,
            CsvErrorKind::Empty,
            format!("empty file: expected a header line `{HEADER}`"),
        ));
    }
    let mut lines = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .enumerate()
        .map(|(i, l)| (i + 1, l));

    // Header.
    let (header_line, header) = lines.next().unwrap_or((1, ""));
    let columns = parse_header(header_line, header)?;

    let mut out = Candles::with_capacity(text.len() / 48);
    let mut prev: Option<(i64, usize)> = None;
    let mut first_blank: Option<usize> = None;
    for (line_no, line) in lines {
        if is_blank(line) {
            first_blank.get_or_insert(line_no);
            continue;
        }
        if let Some(blank) = first_blank {
            return Err(CsvError::new(
                blank,
                None,
                CsvErrorKind::BlankLine,
                format!(
                    "blank line between rows (the next row is on line {line_no}); \
                     only trailing blank lines are allowed"
                ),
            ));
        }
        let (ts, [open, high, low, close, volume]) = parse_row(line_no, line, &columns)?;

        if let Some((prev_ts, prev_line)) = prev {
            if ts <= prev_ts {
                return Err(CsvError::new(
                    line_no,
                    Some("ts"),
                    CsvErrorKind::NotIncreasing,
                    format!(
                        "ts {ts} is not after the previous row's ts {prev_ts} (line {prev_line}); \
                         rows must be strictly increasing"
                    ),
                ));
            }
            if let Some(step) = timeframe_secs {
                let gap = ts.abs_diff(prev_ts);
                if gap % step != 0 {
                    return Err(CsvError::new(
                        line_no,
                        Some("ts"),
                        CsvErrorKind::Spacing,
                        format!(
                            "{gap} s after the previous bar (line {prev_line}); a {} series \
                             needs multiples of {step} s",
                            format_timeframe(step as i64)
                        ),
                    ));
                }
            }
        }
        prev = Some((ts, line_no));
        check_bar(line_no, open, high, low, close, volume)?;
        out.push(ts, open, high, low, close, volume);
    }
    if out.is_empty() {
        return Err(CsvError::new(
            header_line,
            None,
            CsvErrorKind::NoRows,
            "no candles: the file has a header but no rows".to_string(),
        ));
    }
    Ok(out)
}

/// Maps each field position of a row to its canonical column index
/// (0 = ts, 1 = open, ... 5 = volume), or `None` for an ignored column.
fn parse_header(line_no: usize, header: &str) -> Result<Vec<Option<usize>>, CsvError> {
    let header_err = |column: Option<&str>, message: String| {
        CsvError::new(
            line_no,
            column,
            CsvErrorKind::Header,
            format!(
                "{message}; the header must have the columns `{HEADER}` \
                 (in any order; others are ignored)"
            ),
        )
    };
    if is_blank(header) {
        return Err(header_err(
            None,
            "found a blank line where the header was expected".to_string(),
        ));
    }
    let mut position: [Option<usize>; 6] = [None; 6];
    let mut columns = Vec::with_capacity(6);
    // Ignored names are quoted as written (trimmed), not lowercased.
    let mut ignored: Vec<&str> = Vec::new();
    for (pos, written) in header.split(',').map(str::trim).enumerate() {
        let name = written.to_lowercase();
        if name.is_empty() {
            return Err(header_err(
                None,
                format!("header field {} is an empty column name", pos + 1),
            ));
        }
        let col = COLUMNS.iter().position(|c| *c == name);
        match col {
            Some(col) => {
                if position[col].is_some() {
                    return Err(header_err(
                        Some(COLUMNS[col]),
                        format!("duplicate column `{name}`"),
                    ));
                }
                position[col] = Some(pos);
            }
            None => ignored.push(written),
        }
        columns.push(col);
    }
    let missing: Vec<&str> = COLUMNS
        .iter()
        .zip(position)
        .filter(|(_, p)| p.is_none())
        .map(|(c, _)| *c)
        .collect();
    let list = |names: &[&str]| {
        names
            .iter()
            .map(|n| quote(n))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let plural = |names: &[&str]| if names.len() == 1 { "" } else { "s" };
    if missing.len() == COLUMNS.len() {
        return Err(header_err(
            None,
            format!(
                "the first line {} names none of the columns (is the header missing?)",
                quote(header.trim())
            ),
        ));
    }
    if !missing.is_empty() {
        let mut message = format!("missing column{} {}", plural(&missing), list(&missing));
        if !ignored.is_empty() {
            let _ = write!(
                message,
                " (column{} {} would be ignored)",
                plural(&ignored),
                list(&ignored)
            );
        }
        return Err(header_err(missing.first().copied(), message));
    }
    Ok(columns)
}

/// Parses one data row into `(ts, [open, high, low, close, volume])`,
/// reporting the leftmost bad field; ignored columns are not read.
fn parse_row(
    line_no: usize,
    line: &str,
    columns: &[Option<usize>],
) -> Result<(i64, [f64; 5]), CsvError> {
    let count = line.split(',').count();
    if count != columns.len() {
        return Err(CsvError::new(
            line_no,
            None,
            CsvErrorKind::FieldCount,
            format!(
                "expected {} comma-separated fields, found {count} (one per header column)",
                columns.len()
            ),
        ));
    }
    let mut ts = 0i64;
    let mut values = [0.0f64; 5];
    for (field, col) in line.split(',').zip(columns) {
        let Some(col) = *col else { continue };
        let raw = field.trim();
        let name = COLUMNS[col];
        if col == 0 {
            ts = parse_ts(raw).map_err(|message| {
                CsvError::new(line_no, Some(name), CsvErrorKind::Timestamp, message)
            })?;
        } else {
            values[col - 1] = parse_number(line_no, name, raw)?;
        }
    }
    Ok((ts, values))
}

fn parse_number(line_no: usize, name: &str, raw: &str) -> Result<f64, CsvError> {
    let err = |kind, message| Err(CsvError::new(line_no, Some(name), kind, message));
    if raw.is_empty() {
        return err(
            CsvErrorKind::NotANumber,
            format!("empty {name} value; expected a number"),
        );
    }
    match raw.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => err(
            CsvErrorKind::NonFinite,
            format!(
                "{name} {} is not finite; values must be finite numbers",
                quote(raw)
            ),
        ),
        Err(_) => err(
            CsvErrorKind::NotANumber,
            format!("{name} {} is not a number", quote(raw)),
        ),
    }
}

const TS_FORMS: &str = "expected unix seconds, unix milliseconds or an RFC 3339 date-time \
                        such as 2024-01-01T00:00:00Z";

/// Parses a `ts` field (already trimmed) into unix seconds UTC.
fn parse_ts(raw: &str) -> Result<i64, String> {
    if raw.is_empty() {
        return Err(format!("empty ts; {TS_FORMS}"));
    }
    let bytes = raw.as_bytes();
    let digits = match bytes[0] {
        b'-' | b'+' => &bytes[1..],
        _ => bytes,
    };
    if !digits.is_empty() && digits.iter().all(u8::is_ascii_digit) {
        let v: i64 = raw
            .parse()
            .map_err(|_| format!("ts {} is out of range", quote(raw)))?;
        if v >= MILLIS_THRESHOLD {
            if v % 1000 != 0 {
                return Err(format!(
                    "ts {v} is read as unix milliseconds (integers >= {MILLIS_THRESHOLD} are) \
                     but is not a whole number of seconds"
                ));
            }
            return Ok(v / 1000);
        }
        return Ok(v);
    }
    let looks_like_date =
        bytes.len() >= 5 && bytes[..4].iter().all(u8::is_ascii_digit) && bytes[4] == b'-';
    if looks_like_date {
        return parse_rfc3339(bytes).map_err(|m| format!("ts {}: {m}", quote(raw)));
    }
    Err(format!("ts {} is not a timestamp; {TS_FORMS}", quote(raw)))
}

/// Writes candles as CSV: the header `ts,open,high,low,close,volume`, then
/// one `\n`-terminated row per bar with `ts` in unix seconds and floats in
/// Rust's shortest round-trip `Display` form, so that
/// `parse_csv(write_csv(x)) == x` bit for bit (for valid, non-empty candles).
///
/// Returns an [`io::ErrorKind::InvalidInput`] error, writing nothing, if the
/// columns have different lengths. Output is buffered internally, so an
/// unbuffered writer (e.g. a `File`) is fine.
pub fn write_csv(candles: &Candles, out: &mut impl io::Write) -> io::Result<()> {
    let n = candles.ts.len();
    for (name, len) in [
        ("open", candles.open.len()),
        ("high", candles.high.len()),
        ("low", candles.low.len()),
        ("close", candles.close.len()),
        ("volume", candles.volume.len()),
    ] {
        if len != n {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("column {name} has {len} values but ts has {n}"),
            ));
        }
    }
    const FLUSH_AT: usize = 64 * 1024;
    let mut buf = String::with_capacity(FLUSH_AT + 256);
    buf.push_str(HEADER);
    buf.push('\n');
    let rows = candles
        .ts
        .iter()
        .zip(&candles.open)
        .zip(&candles.high)
        .zip(&candles.low)
        .zip(&candles.close)
        .zip(&candles.volume);
    for (((((ts, o), h), l), c), v) in rows {
        // Writing into a String cannot fail.
        let _ = writeln!(buf, "{ts},{o},{h},{l},{c},{v}");
        if buf.len() >= FLUSH_AT {
            out.write_all(buf.as_bytes())?;
            buf.clear();
        }
    }
    out.write_all(buf.as_bytes())?;
    out.flush()
}

fn check_bar(
    line_no: usize,
    open: f64,
    high: f64,
    low: f64,
    close: f64,
    volume: f64,
) -> Result<(), CsvError> {
    let err =
        |column: &str, kind, message| Err(CsvError::new(line_no, Some(column), kind, message));
    if high < low {
        return err(
            "high",
            CsvErrorKind::HighBelowLow,
            format!("high {high} is below low {low}"),
        );
    }
    let (top_name, top) = if close > open {
        ("close", close)
    } else {
        ("open", open)
    };
    if high < top {
        return err(
            "high",
            CsvErrorKind::HighBelowBody,
            format!("high {high} is below {top_name} {top}; high must be >= open and close"),
        );
    }
    let (bottom_name, bottom) = if close < open {
        ("close", close)
    } else {
        ("open", open)
    };
    if low > bottom {
        return err(
            "low",
            CsvErrorKind::LowAboveBody,
            format!("low {low} is above {bottom_name} {bottom}; low must be <= open and close"),
        );
    }
    if volume < 0.0 {
        return err(
            "volume",
            CsvErrorKind::NegativeVolume,
            format!("volume {volume} is negative"),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "ts,open,high,low,close,volume\n";

    fn err(text: &str) -> CsvError {
        parse_csv(text).unwrap_err()
    }

    /// Asserts the error's line, column and kind, and that its Display starts
    /// with the matching `line N, column C:` prefix and contains `needle`.
    fn check(text: &str, line: usize, column: Option<&str>, kind: CsvErrorKind, needle: &str) {
        let e = err(text);
        let shown = e.to_string();
        assert_eq!(e.line, line, "{shown}");
        assert_eq!(e.column.as_deref(), column, "{shown}");
        assert_eq!(e.kind, kind, "{shown}");
        let prefix = match column {
            Some(c) => format!("line {line}, column {c}: "),
            None => format!("line {line}: "),
        };
        assert!(
            shown.starts_with(&prefix),
            "{shown:?} should start with {prefix:?}"
        );
        assert!(
            shown.contains(needle),
            "{shown:?} should contain {needle:?}"
        );
    }

    #[test]
    fn parses_basic_file() {
        let c = parse_csv(
            "ts,open,high,low,close,volume\n\
             1704067200,100,101.5,99.25,100.5,12\n\
             1704067260,100.5,102,100,101,0\n",
        )
        .unwrap();
        assert_eq!(c.ts, vec![1_704_067_200, 1_704_067_260]);
        assert_eq!(c.open, vec![100.0, 100.5]);
        assert_eq!(c.high, vec![101.5, 102.0]);
        assert_eq!(c.low, vec![99.25, 100.0]);
        assert_eq!(c.close, vec![100.5, 101.0]);
        assert_eq!(c.volume, vec![12.0, 0.0]);
        c.validate().unwrap();
    }

    #[test]
    fn header_any_order_case_and_whitespace() {
        let c = parse_csv(
            " Volume , CLOSE,low ,High,\tOpen,TS \r\n\
             12, 100.5 ,99.25,101.5,100,1704067200\r\n",
        )
        .unwrap();
        assert_eq!(c.ts, vec![1_704_067_200]);
        assert_eq!(c.open, vec![100.0]);
        assert_eq!(c.high, vec![101.5]);
        assert_eq!(c.low, vec![99.25]);
        assert_eq!(c.close, vec![100.5]);
        assert_eq!(c.volume, vec![12.0]);
    }

    #[test]
    fn bom_crlf_and_trailing_blank_lines() {
        let text = "\u{feff}ts,open,high,low,close,volume\r\n1,1,2,0.5,1.5,3\r\n2,1.5,2,1,1,0\r\n\r\n  \n\n";
        let c = parse_csv(text).unwrap();
        assert_eq!(c.ts, vec![1, 2]);
        // No final newline at all is fine too.
        assert_eq!(
            parse_csv("ts,open,high,low,close,volume\n1,1,1,1,1,1")
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn timestamp_formats_agree() {
        let expected = 1_704_067_200; // 2024-01-01T00:00:00Z
        for ts in [
            "1704067200",
            "1704067200000",
            "2024-01-01T00:00:00Z",
            "2024-01-01t00:00:00z",
            "2024-01-01 00:00:00Z",
            "2024-01-01T00:00:00.000Z",
            "2024-01-01T02:00:00+02:00",
            "2023-12-31T19:00:00-05:00",
            "2024-01-01T05:30:00+05:30",
            "2024-01-01T00:00:00+00:00",
            "2024-01-01T00:00:00-00:00",
            " 2024-01-01T00:00:00Z ",
        ] {
            let c = parse_csv(&format!("{H}{ts},1,1,1,1,1\n")).unwrap();
            assert_eq!(c.ts, vec![expected], "{ts}");
        }
        let one = |ts: &str| parse_csv(&format!("{H}{ts},1,1,1,1,1\n")).unwrap().ts[0];
        assert_eq!(one("1970-01-01T00:00:00Z"), 0);
        assert_eq!(one("0"), 0);
        assert_eq!(one("1969-12-31T23:59:59Z"), -1);
        assert_eq!(one("-1"), -1);
        assert_eq!(one("2000-02-29T12:00:00Z"), 951_825_600);
        assert_eq!(one("2024-02-29T00:00:00Z"), 1_709_164_800);
        assert_eq!(one("2024-12-31T23:59:59Z"), 1_735_689_599);
        assert_eq!(one("2038-01-19T03:14:08Z"), 2_147_483_648);
        assert_eq!(one("1900-03-01T00:00:00Z"), -2_203_891_200);
        // Just below the millisecond threshold: seconds (year 5138).
        assert_eq!(one("99999999999"), 99_999_999_999);
        assert_eq!(one("100000000000"), 100_000_000);
    }

    #[test]
    fn round_trip_is_bit_exact() {
        let mut c = Candles::new();
        let tricky = [
            0.1,
            1.0 / 3.0,
            42_000.123_456_789,
            1e-7,
            5e-324,
            f64::MIN_POSITIVE,
            1e300,
            f64::MAX,
            123_456_789_012_345_680.0,
            0.000_000_123_4,
        ];
        for (i, &p) in tricky.iter().enumerate() {
            c.push(i as i64 * 60 - 120, p, p, p, p, p);
        }
        c.push(1_000, 2.0, 3.0, 1.0, 2.5, 0.0);
        c.push(1_060, 2.5, 2.5, 2.5, 2.5, -0.0);
        let all_synth = crate::candles::synth::synth(2_000, 5, 60, 1_704_067_200, 42_000.0);
        for target in [c, all_synth] {
            let mut buf = Vec::new();
            write_csv(&target, &mut buf).unwrap();
            let text = String::from_utf8(buf).unwrap();
            assert!(text.starts_with("ts,open,high,low,close,volume\n"));
            let back = parse_csv(&text).unwrap();
            assert_eq!(back, target);
            let bits = |c: &Candles| -> Vec<u64> {
                c.open
                    .iter()
                    .chain(&c.high)
                    .chain(&c.low)
                    .chain(&c.close)
                    .chain(&c.volume)
                    .map(|v| v.to_bits())
                    .collect()
            };
            assert_eq!(bits(&back), bits(&target));
        }
    }

    #[test]
    fn write_format() {
        let mut c = Candles::new();
        c.push(1_704_067_200, 1.5, 2.0, 1.0, 1.25, 10.0);
        let mut buf = Vec::new();
        write_csv(&c, &mut buf).unwrap();
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "ts,open,high,low,close,volume\n1704067200,1.5,2,1,1.25,10\n"
        );
        c.volume.pop();
        let mut buf = Vec::new();
        let e = write_csv(&c, &mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(buf.is_empty());
    }

    #[test]
    fn error_empty_file() {
        for text in ["", "\u{feff}", "\n\n", "  \r\n"] {
            check(text, 1, None, CsvErrorKind::Empty, "empty file");
        }
    }

    #[test]
    fn error_no_rows() {
        for text in [
            "ts,open,high,low,close,volume",
            H,
            "ts,open,high,low,close,volume\r\n\r\n\n",
        ] {
            check(
                text,
                1,
                None,
                CsvErrorKind::NoRows,
                "no candles: the file has a header but no rows",
            );
        }
    }

    #[test]
    fn error_missing_column() {
        check(
            "ts,open,high,low,close\n1,1,1,1,1\n",
            1,
            Some("volume"),
            CsvErrorKind::Header,
            "missing column `volume`",
        );
        check(
            "ts,open,close,volume\n",
            1,
            Some("high"),
            CsvErrorKind::Header,
            "missing columns `high`, `low`",
        );
        // A file without a header: its first row is read as the header.
        check(
            "1704067200,1,1,1,1,1\n",
            1,
            None,
            CsvErrorKind::Header,
            "the first line `1704067200,1,1,1,1,1` names none of the columns \
             (is the header missing?); the header must have the columns \
             `ts,open,high,low,close,volume`",
        );
    }

    #[test]
    fn extra_columns_are_ignored() {
        let six = parse_csv(&format!(
            "{H}1,100,101,99,100.5,12\n2,100.5,102,100,101,0\n"
        ))
        .unwrap();
        // Bybit's kline columns: turnover last.
        let bybit = "ts,open,high,low,close,volume,turnover\n\
                     1,100,101,99,100.5,12,1206\n\
                     2,100.5,102,100,101,0,0\n";
        assert_eq!(parse_csv(bybit).unwrap(), six);
        // Anywhere, any name, any value: never read.
        let mixed = "Symbol,ts,open,high,low,close,Trades,volume,vwap\n\
                     BTCUSDT,1,100,101,99,100.5,,12,n/a\n\
                     BTCUSDT,2,100.5,102,100,101,7,0,NaN\n";
        assert_eq!(parse_csv(mixed).unwrap(), six);
        // Rows still have one field per header column, and a bad value
        // still names its line and column.
        check(
            "ts,open,high,low,close,volume,turnover\n1,1,1,1,1,1,1\n2,1,1,1,1,1\n",
            3,
            None,
            CsvErrorKind::FieldCount,
            "expected 7 comma-separated fields, found 6",
        );
        check(
            "symbol,ts,open,high,low,close,volume\nX,1,1,1,1,1,1\nX,2,oops,1,1,1,1\n",
            3,
            Some("open"),
            CsvErrorKind::NotANumber,
            "open `oops` is not a number",
        );
    }

    #[test]
    fn error_duplicate_and_empty_columns() {
        check(
            "time,open,high,low,close,volume\n",
            1,
            Some("ts"),
            CsvErrorKind::Header,
            "missing column `ts` (column `time` would be ignored)",
        );
        check(
            "ts,open,high,low,close,volume, OPEN\n",
            1,
            Some("open"),
            CsvErrorKind::Header,
            "duplicate column `open`",
        );
        check(
            "ts,open,high,low,close,volume,\n",
            1,
            None,
            CsvErrorKind::Header,
            "header field 7 is an empty column name",
        );
    }

    #[test]
    fn error_wrong_field_count() {
        check(
            &format!("{H}1,1,1,1,1,1\n2,1,1,1,1\n"),
            3,
            None,
            CsvErrorKind::FieldCount,
            "expected 6 comma-separated fields, found 5",
        );
        check(
            &format!("{H}1,1,1,1,1,1,\n"),
            2,
            None,
            CsvErrorKind::FieldCount,
            "found 7",
        );
    }

    #[test]
    fn error_blank_line_between_rows() {
        check(
            &format!("{H}1,1,1,1,1,1\n\n2,1,1,1,1,1\n"),
            3,
            None,
            CsvErrorKind::BlankLine,
            "the next row is on line 4",
        );
        check(
            &format!("\n{H}1,1,1,1,1,1\n"),
            1,
            None,
            CsvErrorKind::Header,
            "found a blank line where the header was expected",
        );
    }

    #[test]
    fn error_non_numeric() {
        check(
            &format!("{H}1,1,1,1,1,1\n2,abc,1,1,1,1\n"),
            3,
            Some("open"),
            CsvErrorKind::NotANumber,
            "open `abc` is not a number",
        );
        check(
            &format!("{H}1,1,1,1,,1\n"),
            2,
            Some("close"),
            CsvErrorKind::NotANumber,
            "empty close value",
        );
        let long = "x".repeat(100);
        let e = err(&format!("{H}1,1,1,1,1,{long}\n"));
        assert_eq!((e.line, e.column.as_deref()), (2, Some("volume")));
        assert!(e.message.contains(&format!("`{}…`", "x".repeat(40))), "{e}");
        assert!(!e.message.contains(&"x".repeat(41)), "{e}");
        // Column order follows the header, and the leftmost bad field wins.
        check(
            "close,high,ts,open,low,volume\n1,1,1,1,1,1\n1,oops,2,bad,1,1\n",
            3,
            Some("high"),
            CsvErrorKind::NotANumber,
            "high `oops` is not a number",
        );
    }

    #[test]
    fn error_non_finite() {
        for bad in ["NaN", "nan", "inf", "-inf", "infinity", "1e400"] {
            check(
                &format!("{H}1,1,{bad},1,1,1\n"),
                2,
                Some("high"),
                CsvErrorKind::NonFinite,
                &format!("high `{bad}` is not finite"),
            );
        }
        check(
            &format!("{H}1,1,1,1,1,NaN\n"),
            2,
            Some("volume"),
            CsvErrorKind::NonFinite,
            "not finite",
        );
    }

    #[test]
    fn error_bad_timestamps() {
        let cases: [(&str, &str); 16] = [
            ("abc", "`abc` is not a timestamp"),
            ("", "empty ts"),
            ("1704067200.5", "is not a timestamp"),
            ("1704067200500", "not a whole number of seconds"),
            ("99999999999999999999", "out of range"),
            ("2024-01-01", "date without a time"),
            ("2024-01-01T00:00:00", "missing timezone"),
            (
                "2024-01-01T00:00:00.5Z",
                "fractional seconds `.5` are not supported",
            ),
            (
                "2024-01-01T00:00:00.Z",
                "missing digits after the decimal point",
            ),
            ("2024-01-01T00:00:00+0200", "malformed timezone offset"),
            ("2024-01-01T00:00:00+24:00", "out of range"),
            ("2024-13-01T00:00:00Z", "month 13"),
            ("2023-02-29T00:00:00Z", "day 29 is out of range for 2023-02"),
            ("2024-01-01T24:00:00Z", "hour 24"),
            ("2024-01-01T00:00:60Z", "leap second"),
            ("2024-01-01X00:00:00Z", "malformed date-time"),
        ];
        for (ts, needle) in cases {
            check(
                &format!("{H}1,1,1,1,1,1\n{ts},1,1,1,1,1\n"),
                3,
                Some("ts"),
                CsvErrorKind::Timestamp,
                needle,
            );
        }
    }

    #[test]
    fn error_not_increasing() {
        check(
            &format!(
                "{H}1704063600,1,1,1,1,1\n1704067200,1,1,1,1,1\n1704074400,1,1,1,1,1\n1704070800,1,1,1,1,1\n"
            ),
            5,
            Some("ts"),
            CsvErrorKind::NotIncreasing,
            "ts 1704070800 is not after the previous row's ts 1704074400 (line 4); rows must be strictly increasing",
        );
        // Duplicates, including across formats.
        check(
            &format!("{H}1704067200,1,1,1,1,1\n2024-01-01T00:00:00Z,1,1,1,1,1\n"),
            3,
            Some("ts"),
            CsvErrorKind::NotIncreasing,
            "is not after the previous row's ts 1704067200 (line 2)",
        );
    }

    #[test]
    fn error_high_below_low() {
        let text = format!(
            "{H}1,100,101,99,100,1\n2,100,101,99,100,1\n3,100,101,99,100,1\n4,100,101,99,100,1\n\
             5,100,101,99,100,1\n6,100,99.5,100.2,100,1\n"
        );
        let e = err(&text);
        assert_eq!(
            e.to_string(),
            "line 7, column high: high 99.5 is below low 100.2"
        );
        assert_eq!(e.kind, CsvErrorKind::HighBelowLow);
    }

    #[test]
    fn error_high_below_body() {
        check(
            &format!("{H}1,100,101,99,102,1\n"),
            2,
            Some("high"),
            CsvErrorKind::HighBelowBody,
            "high 101 is below close 102",
        );
        check(
            &format!("{H}1,103,101,99,100,1\n"),
            2,
            Some("high"),
            CsvErrorKind::HighBelowBody,
            "high 101 is below open 103",
        );
    }

    #[test]
    fn error_low_above_body() {
        check(
            &format!("{H}1,100,101,99.5,99,1\n"),
            2,
            Some("low"),
            CsvErrorKind::LowAboveBody,
            "low 99.5 is above close 99",
        );
        check(
            &format!("{H}1,100,101,100.5,100.7,1\n"),
            2,
            Some("low"),
            CsvErrorKind::LowAboveBody,
            "low 100.5 is above open 100",
        );
    }

    #[test]
    fn error_negative_volume() {
        check(
            &format!("{H}1,1,1,1,1,1\n2,1,1,1,1,-0.5\n"),
            3,
            Some("volume"),
            CsvErrorKind::NegativeVolume,
            "volume -0.5 is negative",
        );
    }

    #[test]
    fn spacing_is_a_whole_number_of_bars_of_the_timeframe() {
        const HOUR: i64 = 3_600;
        let at = |hours: &[i64]| -> String {
            let mut text = H.to_string();
            for h in hours {
                text.push_str(&format!("{},1,1,1,1,1\n", 1_704_067_200 + h * HOUR));
            }
            text
        };
        // Gaps of whole bars are fine.
        let c = parse_csv_on_timeframe(&at(&[0, 1, 2, 5, 29]), HOUR).unwrap();
        assert_eq!(c.len(), 5);
        // 1-minute bars named 1h: refused at the first, naming the timeframe.
        let minutes = format!("{H}1704067200,1,1,1,1,1\n1704067260,1,1,1,1,1\n");
        assert_eq!(
            parse_csv_on_timeframe(&minutes, HOUR)
                .unwrap_err()
                .to_string(),
            "line 3, column ts: 60 s after the previous bar (line 2); \
             a 1h series needs multiples of 3600 s"
        );
        assert_eq!(parse_csv_on_timeframe(&minutes, 60).unwrap().len(), 2);
        // Without a timeframe nothing is checked.
        assert_eq!(parse_csv(&minutes).unwrap().len(), 2);
        // A gap of a bar and a half, later in the file, in milliseconds.
        check_spacing(
            &format!(
                "{H}1704067200000,1,1,1,1,1\n1704070800000,1,1,1,1,1\n1704076200000,1,1,1,1,1\n"
            ),
            HOUR,
            4,
            "5400 s after the previous bar (line 3); a 1h series needs multiples of 3600 s",
        );
        check_spacing(
            &at(&[0, 24, 36]),
            24 * HOUR,
            4,
            "43200 s after the previous bar (line 3); a 1d series needs multiples of 86400 s",
        );
        // Weekly bars open on Mondays, off the epoch's (Thursday) grid:
        // only the gaps count. 2024-01-01 and 2024-01-15 are Mondays.
        let weeks = format!("{H}2024-01-01T00:00:00Z,1,1,1,1,1\n2024-01-15T00:00:00Z,1,1,1,1,1\n");
        assert_eq!(
            parse_csv_on_timeframe(&weeks, 7 * 24 * HOUR).unwrap().len(),
            2
        );
        // Bad values and order are reported as without a timeframe.
        let e = parse_csv_on_timeframe(&format!("{H}7200,1,1,1,1,1\n3600,1,1,1,1,1\n"), HOUR)
            .unwrap_err();
        assert_eq!((e.line, e.kind), (3, CsvErrorKind::NotIncreasing), "{e}");
    }

    fn check_spacing(text: &str, timeframe: i64, line: usize, needle: &str) {
        let e = parse_csv_on_timeframe(text, timeframe).unwrap_err();
        assert_eq!(
            (e.line, e.column.as_deref(), e.kind),
            (line, Some("ts"), CsvErrorKind::Spacing),
            "{e}"
        );
        assert_eq!(e.message, needle);
    }

    #[test]
    fn line_numbers_count_bom_and_crlf_correctly() {
        check(
            "\u{feff}ts,open,high,low,close,volume\r\n1,1,1,1,1,1\r\n2,1,1,1,1,x\r\n",
            3,
            Some("volume"),
            CsvErrorKind::NotANumber,
            "volume `x` is not a number",
        );
    }
}
