//! Funding of a perpetual run (docs/conventions/engine.md, "Perpetual
//! futures", "Funding"): where the rates come from, the CSV form of a
//! funding history, and the clock that walks the funding times.

use std::sync::Arc;

use serde::Serialize;

/// Seconds between funding times of a constant rate (00:00, 08:00, 16:00 UTC).
pub const FUNDING_INTERVAL_SECS: i64 = 8 * 3_600;

/// Where a run's funding rates come from.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Funding {
    /// No funding known: nothing is paid or received.
    #[default]
    None,
    /// This rate every 8 hours from 00:00 UTC.
    Constant(f64),
    /// `(ts, rate)` in strictly increasing ts (unix seconds): a funding
    /// time at each ts. Build it with [`parse_funding_csv`] or
    /// [`Funding::history`], which check the order.
    History(Arc<[(i64, f64)]>),
}

/// How the report names the funding source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FundingSource {
    History,
    Constant,
    None,
}

/// A funding history or rate that cannot be used; the message names the
/// line (CSV) or the entry.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid funding {what}: {message}")]
pub struct FundingError {
    pub what: String,
    pub message: String,
}

impl Funding {
    /// A history from `(ts, rate)` pairs, checked: strictly increasing ts,
    /// finite rates.
    pub fn history(rows: Vec<(i64, f64)>) -> Result<Self, FundingError> {
        for (k, &(ts, rate)) in rows.iter().enumerate() {
            if !rate.is_finite() {
                return Err(FundingError {
                    what: format!("entry {k}"),
                    message: format!("rate must be a finite number, got {rate}"),
                });
            }
            if k > 0 && ts <= rows[k - 1].0 {
                return Err(FundingError {
                    what: format!("entry {k}"),
                    message: format!(
                        "ts {ts} is not after the previous entry's {}",
                        rows[k - 1].0
                    ),
                });
            }
        }
        Ok(Funding::History(rows.into()))
    }

    pub fn source(&self) -> FundingSource {
        match self {
            Funding::None => FundingSource::None,
            Funding::Constant(_) => FundingSource::Constant,
            Funding::History(_) => FundingSource::History,
        }
    }

    /// Checks a constant's rate, or a history's order and rates (a
    /// history built directly, not through [`Funding::history`]).
    pub fn check(&self) -> Result<(), FundingError> {
        match self {
            Funding::Constant(rate) if !rate.is_finite() => Err(FundingError {
                what: "funding_rate".into(),
                message: format!("must be a finite number, got {rate}"),
            }),
            Funding::History(rows) => Funding::history(rows.to_vec()).map(|_| ()),
            _ => Ok(()),
        }
    }
}

/// Parses a funding history CSV: a header `ts,rate`, then one row per
/// funding time, ts in unix seconds or milliseconds (from
/// 100,000,000,000 up) or RFC 3339, strictly increasing, rate a finite
/// decimal. A bad row is an error naming its 1-based line.
pub fn parse_funding_csv(text: &str) -> Result<Funding, FundingError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.lines().enumerate();
    let at = |line: usize, message: String| FundingError {
        what: format!("CSV line {line}"),
        message,
    };
    let (ts_col, rate_col) = match lines.next() {
        Some((_, header)) => {
            let names: Vec<String> = header
                .split(',')
                .map(|h| h.trim().to_ascii_lowercase())
                .collect();
            let find = |name: &str| names.iter().position(|h| h == name);
            match (find("ts"), find("rate"), names.len()) {
                (Some(t), Some(r), 2) => (t, r),
                _ => {
                    return Err(at(
                        1,
                        format!("the header must be `ts,rate`, got `{header}`"),
                    ))
                }
            }
        }
        None => return Err(at(1, "empty file: the header `ts,rate` is missing".into())),
    };
    let mut rows: Vec<(i64, f64)> = Vec::new();
    let mut trailing_blank = None;
    for (k, line) in lines {
        let line_no = k + 1;
        if line.trim().is_empty() {
            trailing_blank.get_or_insert(line_no);
            continue;
        }
        if let Some(blank) = trailing_blank {
            return Err(at(blank, "blank line between rows".into()));
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != 2 {
            return Err(at(
                line_no,
                format!("expected 2 fields, got {}", fields.len()),
            ));
        }
        let ts = parse_ts(fields[ts_col]).ok_or_else(|| {
            at(
                line_no,
                format!(
                    "ts `{}` is not unix seconds, milliseconds or RFC 3339",
                    fields[ts_col]
                ),
            )
        })?;
        let rate: f64 = fields[rate_col]
            .parse()
            .ok()
            .filter(|r: &f64| r.is_finite())
            .ok_or_else(|| {
                at(
                    line_no,
                    format!("rate `{}` is not a number", fields[rate_col]),
                )
            })?;
        if let Some(&(previous, _)) = rows.last() {
            if ts <= previous {
                return Err(at(
                    line_no,
                    format!("ts {ts} is not after the previous row's {previous} (rows must be in increasing time)"),
                ));
            }
        }
        rows.push((ts, rate));
    }
    Ok(Funding::History(rows.into()))
}

fn parse_ts(field: &str) -> Option<i64> {
    if let Ok(n) = field.parse::<i64>() {
        return if n >= 100_000_000_000 {
            (n % 1_000 == 0).then_some(n / 1_000)
        } else {
            Some(n)
        };
    }
    crate::time::parse_rfc3339_secs(field).ok()
}

/// Walks the funding times of a run in order.
#[derive(Debug, Clone)]
pub(crate) struct FundingClock {
    funding: Funding,
    /// History: index of the next entry; constant: unused.
    next_index: usize,
    /// The next funding time (`i64::MAX` when none is left).
    next_ts: i64,
    /// The rate of the latest funding time passed, or the constant.
    latest: Option<f64>,
}

impl FundingClock {
    /// A clock whose next funding time is the first one after `start_ts`
    /// (times at or before the first bar's open find no position).
    pub fn new(funding: &Funding, start_ts: i64) -> Self {
        let mut clock = Self {
            funding: funding.clone(),
            next_index: 0,
            next_ts: i64::MAX,
            latest: None,
        };
        match funding {
            Funding::None => {}
            Funding::Constant(rate) => {
                clock.latest = Some(*rate);
                clock.next_ts = next_multiple_after(start_ts);
            }
            Funding::History(rows) => {
                let k = rows.partition_point(|&(ts, _)| ts <= start_ts);
                clock.latest = k.checked_sub(1).map(|j| rows[j].1);
                clock.next_index = k;
                clock.next_ts = rows.get(k).map_or(i64::MAX, |r| r.0);
            }
        }
        clock
    }

    pub fn is_history(&self) -> bool {
        matches!(self.funding, Funding::History(_))
    }

    /// The next funding time not yet settled.
    #[inline]
    pub fn next_ts(&self) -> i64 {
        self.next_ts
    }

    /// The latest rate known (the constant, or the last history entry passed).
    pub fn latest(&self) -> Option<f64> {
        self.latest
    }

    /// Takes the next funding time and its rate, and moves on.
    pub fn pop(&mut self) -> (i64, f64) {
        let ts = self.next_ts;
        match &self.funding {
            Funding::None => (i64::MAX, 0.0),
            Funding::Constant(rate) => {
                self.next_ts = ts.saturating_add(FUNDING_INTERVAL_SECS);
                (ts, *rate)
            }
            Funding::History(rows) => {
                let rate = rows[self.next_index].1;
                self.next_index += 1;
                self.next_ts = rows.get(self.next_index).map_or(i64::MAX, |r| r.0);
                self.latest = Some(rate);
                (ts, rate)
            }
        }
    }
}

/// The first multiple of 8 h (from 00:00 UTC) strictly after `ts`.
fn next_multiple_after(ts: i64) -> i64 {
    (ts.div_euclid(FUNDING_INTERVAL_SECS) + 1) * FUNDING_INTERVAL_SECS
}
