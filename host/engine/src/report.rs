//! The backtest report (docs/conventions/engine.md, "Report"), serialised as the JSON of
//! `stratbox backtest --json`. Field order is declaration order, so the
//! same run always prints the same bytes.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::BTreeMap;

use super::params::ParamValue;
use super::perp::FundingSource;
use super::strategy::{FillReason, Market};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TradeSide {
    Long,
    Short,
}

/// A closed round trip (or the closed part of one).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trade {
    /// Several symbols: the trade's symbol (its bars are that symbol's
    /// own). Absent in a single-symbol report.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub symbol: Option<String>,
    /// Open time of the bar on which the entry filled.
    pub entry_ts: i64,
    /// Open time of the bar on which the exit filled.
    pub exit_ts: i64,
    pub side: TradeSide,
    pub qty: f64,
    pub entry_price: f64,
    pub exit_price: f64,
    /// Net of both commissions.
    pub pnl: f64,
    /// `pnl` over entry notional, in percent.
    pub return_pct: f64,
    /// Entry plus exit commission.
    pub fees: f64,
    pub entry_bar: usize,
    pub exit_bar: usize,
    pub duration_secs: i64,
    /// How the entry filled: market, limit or stop.
    pub entry_reason: FillReason,
    /// How the exit filled: market (a reversal), close_position, limit,
    /// stop, stop_loss, take_profit, or (perpetuals) liquidation.
    pub exit_reason: ExitReason,
    /// Perpetuals: funding paid by this trade's position (positive = paid,
    /// negative = received), included in `pnl`. Absent on spot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub funding: Option<f64>,
    /// Perpetuals: the position's liquidation price when it closed.
    /// Absent on spot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub liquidation_price: Option<f64>,
}

/// How a trade's exit filled: a [`FillReason`], or a liquidation
/// (perpetuals; not a fill the strategy placed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitReason {
    Market,
    Limit,
    Stop,
    StopLoss,
    TakeProfit,
    ClosePosition,
    Liquidation,
}

impl From<FillReason> for ExitReason {
    fn from(reason: FillReason) -> Self {
        match reason {
            FillReason::Market => ExitReason::Market,
            FillReason::Limit => ExitReason::Limit,
            FillReason::Stop => ExitReason::Stop,
            FillReason::StopLoss => ExitReason::StopLoss,
            FillReason::TakeProfit => ExitReason::TakeProfit,
            FillReason::ClosePosition => ExitReason::ClosePosition,
        }
    }
}

impl PartialEq<FillReason> for ExitReason {
    fn eq(&self, other: &FillReason) -> bool {
        *self == ExitReason::from(*other)
    }
}

/// A position still open at the end of the data: valued at the last close
/// with no exit commission, and not counted as a trade.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpenPosition {
    pub side: TradeSide,
    pub qty: f64,
    pub entry_ts: i64,
    pub entry_price: f64,
    pub mark_price: f64,
    /// Mark-to-close P&L net of the entry commission.
    pub unrealized_pnl: f64,
    /// Entry commission paid so far.
    pub fees: f64,
}

impl OpenPosition {
    /// A position of `qty` opened at `entry_price`, marked at `mark_price`.
    pub fn marked(
        side: TradeSide,
        qty: f64,
        entry_ts: i64,
        entry_price: f64,
        fees: f64,
        mark_price: f64,
    ) -> Self {
        let direction = match side {
            TradeSide::Long => 1.0,
            TradeSide::Short => -1.0,
        };
        Self {
            side,
            qty,
            entry_ts,
            entry_price,
            mark_price,
            unrealized_pnl: (mark_price - entry_price) * qty * direction - fees,
            fees,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EquityPoint {
    pub ts: i64,
    pub equity: f64,
}

/// One symbol's part of a portfolio report (docs/conventions/engine.md,
/// "Several symbols").
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SymbolSummary {
    pub symbol: String,
    /// This symbol's bars in the run.
    pub bars: usize,
    pub num_trades: usize,
    pub win_rate_pct: Option<f64>,
    /// Sum of this symbol's closed trades' `pnl` (net of fees and funding).
    pub realized_pnl: f64,
    /// Its open position's `unrealized_pnl` at the end, else 0.
    pub unrealized_pnl: f64,
    /// `(realized_pnl + unrealized_pnl) / initial_capital x 100`: the
    /// symbol's share of the total return.
    pub contribution_pct: f64,
    pub fees_paid: f64,
    /// Timeline steps with a position in this symbol, in percent of all.
    pub exposure_pct: f64,
    /// First open to last close of this symbol.
    pub buy_and_hold_return_pct: f64,
    /// Perpetuals: this symbol's liquidations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub liquidations: Option<u64>,
    /// Perpetuals: net funding this symbol's positions paid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub funding_paid: Option<f64>,
    pub open_position: Option<OpenPosition>,
}

/// Who produced the report; filled in by the caller, not the engine.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StrategyInfo {
    pub name: String,
    pub version: String,
    /// sha256 of the component, for sandboxed strategies.
    pub sha256: Option<String>,
    pub params: BTreeMap<String, ParamValue>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub strategy: Option<StrategyInfo>,
    pub bars: usize,
    pub start_ts: i64,
    pub end_ts: i64,
    pub timeframe_secs: i64,
    pub initial_capital: f64,
    pub commission: f64,
    pub slippage_bps: f64,
    pub leverage: f64,
    pub final_equity: f64,
    pub total_return_pct: f64,
    pub buy_and_hold_return_pct: f64,
    pub cagr_pct: Option<f64>,
    /// Positive percentage.
    pub max_drawdown_pct: f64,
    pub max_drawdown_duration_bars: usize,
    pub max_drawdown_duration_secs: i64,
    pub sharpe: Option<f64>,
    pub sortino: Option<f64>,
    pub calmar: Option<f64>,
    pub num_trades: usize,
    pub win_rate_pct: Option<f64>,
    pub profit_factor: Option<f64>,
    pub avg_trade_pct: Option<f64>,
    pub best_trade_pct: Option<f64>,
    pub worst_trade_pct: Option<f64>,
    pub avg_trade_duration_secs: Option<f64>,
    pub exposure_pct: f64,
    pub fees_paid: f64,
    /// Standard deviation of bar returns, annualised, in percent.
    pub annual_volatility_pct: Option<f64>,
    /// Mean depth (positive percentage) and length of the drawdowns.
    pub avg_drawdown_pct: f64,
    pub avg_drawdown_duration_secs: f64,
    /// System Quality Number of the trades' PnL.
    pub sqn: Option<f64>,
    /// Mean PnL per trade, in the account currency.
    pub expectancy: Option<f64>,
    /// Kelly fraction of the trades' returns.
    pub kelly: Option<f64>,
    /// Skewness and (non-excess) kurtosis of the bar returns.
    pub return_skewness: Option<f64>,
    pub return_kurtosis: Option<f64>,
    pub fuel_used: u64,
    /// Perpetual runs only (absent on spot, whose report is unchanged):
    /// `spot` is never written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub market: Option<Market>,
    /// Perpetuals: positions liquidated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub liquidations: Option<u64>,
    /// Perpetuals: net funding, positive = paid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub funding_paid: Option<f64>,
    /// Perpetuals: fees of maker fills (limit orders that rested).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fees_maker: Option<f64>,
    /// Perpetuals: fees of taker fills.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fees_taker: Option<f64>,
    /// Perpetuals: orders refused, by reason (`below_min_qty`,
    /// `insufficient_margin`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejected_orders: Option<BTreeMap<String, u64>>,
    /// Perpetuals: `history`, `constant` or `none`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub funding_source: Option<FundingSource>,
    /// Several symbols: each one's figures, in the request's order. The
    /// portfolio's own figures are the fields above; `trades` holds every
    /// symbol's, by exit time, and `open_position` is then absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub symbols: Option<Vec<SymbolSummary>>,
    pub open_position: Option<OpenPosition>,
    pub trades: Vec<Trade>,
    /// Marked to close; downsampled evenly (first and last kept) on long runs.
    /// The last field: `to_json` writes it after the rest.
    pub equity_curve: Vec<EquityPoint>,
}

impl Report {
    /// The report's JSON, as `stratbox backtest --json` prints it, written
    /// into a buffer sized for it up front: a worker writes one per tiny
    /// backtest, and growing the buffer from empty cost about a quarter of
    /// the serialisation (reallocations and copies, in perf).
    ///
    /// The curve is most of the report, and serde writes each point as a
    /// map, escaping both keys every time (about a tenth of a worker's CPU
    /// per 100-bar backtest, in perf). So the rest goes through serde with
    /// an empty curve, and the points are written here with serde_json's
    /// own number formatting: the same bytes (a test holds both to it).
    pub fn to_json(&self) -> serde_json::Result<String> {
        self.clone().into_json()
    }

    /// [`Report::to_json`] for a report no longer needed: its curve is
    /// moved out rather than the report copied (a worker's case).
    pub fn into_json(self) -> serde_json::Result<String> {
        self.write_with_curve(|out, curve| {
            out.push(b'[');
            for (i, point) in curve.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                open_point(out, point.ts);
                serde_json::to_writer(&mut *out, &point.equity)?;
                out.push(b'}');
            }
            out.push(b']');
            Ok(())
        })
    }

    /// The report as a worker stores it: [`Report::into_json`] with the
    /// curve in columns, `{"start":t0,"step":s,"equity":[..]}` when its
    /// times are evenly spaced (`ts[i] = t0 + i*s`), else
    /// `{"ts":[..],"equity":[..]}`. The curve is most of a report and most
    /// of each point is its two keys: a 100-bar report takes 3.4 KB, not
    /// 6 KB, of Redis memory, AOF and rewrites, and less time to write.
    /// [`expand_compact_json`] gives back the `into_json` bytes.
    pub fn into_compact_json(self) -> serde_json::Result<String> {
        self.write_with_curve(|out, curve| {
            out.push(b'{');
            match even_spacing(curve) {
                Some((start, step)) => {
                    out.extend_from_slice(b"\"start\":");
                    write_int(out, start);
                    out.extend_from_slice(b",\"step\":");
                    write_int(out, step);
                }
                None => {
                    out.extend_from_slice(b"\"ts\":[");
                    for (i, point) in curve.iter().enumerate() {
                        if i > 0 {
                            out.push(b',');
                        }
                        write_int(out, point.ts);
                    }
                    out.push(b']');
                }
            }
            out.extend_from_slice(b",\"equity\":[");
            for (i, point) in curve.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, &point.equity)?;
            }
            out.extend_from_slice(b"]}");
            Ok(())
        })
    }

    /// Everything but the curve through serde (it is the last field), then
    /// the curve's value by `write_curve`.
    fn write_with_curve(
        mut self,
        write_curve: impl FnOnce(&mut Vec<u8>, &[EquityPoint]) -> serde_json::Result<()>,
    ) -> serde_json::Result<String> {
        let mut out = Vec::with_capacity(self.json_size_estimate());
        let curve = std::mem::take(&mut self.equity_curve);
        serde_json::to_writer(&mut out, &self)?;
        if !out.ends_with(EMPTY_CURVE_AT_END) {
            return Err(serde::ser::Error::custom(
                "the report's equity curve is not its last field",
            ));
        }
        out.truncate(out.len() - 3);
        write_curve(&mut out, &curve)?;
        out.push(b'}');
        String::from_utf8(out).map_err(|e| serde::ser::Error::custom(e.to_string()))
    }

    /// Bytes the JSON takes, rounded up: a curve point is at most about 50
    /// (`{"ts":1704067200,"equity":10006.626135100414},`), a trade about
    /// 330, the rest under 1.5 KB with the strategy's name and params.
    pub fn json_size_estimate(&self) -> usize {
        let (base, per_trade) = if self.market.is_some() {
            // Perpetual fields, and per trade `funding` and `liquidation_price`.
            (1_792, 448)
        } else {
            (1_536, 384)
        };
        base + 56 * self.equity_curve.len() + per_trade * self.trades.len()
    }
}

const CURVE_KEY: &str = "\"equity_curve\":";
const EMPTY_CURVE_AT_END: &[u8] = b"\"equity_curve\":[]}";

/// A point as serde writes it, up to its equity value: `{"ts":<ts>,"equity":`
/// (the caller writes the value and the closing `}`).
fn open_point(out: &mut Vec<u8>, ts: i64) {
    out.extend_from_slice(b"{\"ts\":");
    write_int(out, ts);
    out.extend_from_slice(b",\"equity\":");
}

fn write_int(out: &mut Vec<u8>, n: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// `(t0, s)` when every point's time is `t0 + i*s` with no overflow (two
/// points or more; one point is `t0` with step 0).
fn even_spacing(curve: &[EquityPoint]) -> Option<(i64, i64)> {
    let start = curve.first()?.ts;
    let step = match curve.get(1) {
        Some(second) => second.ts.checked_sub(start)?,
        None => 0,
    };
    let mut expected = Some(start);
    for point in curve {
        if expected != Some(point.ts) {
            return None;
        }
        expected = point.ts.checked_add(step);
    }
    Some((start, step))
}

/// A stored report's curve in columns (see [`Report::into_compact_json`]);
/// the equity values are kept as written, so they come back to the byte.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CurveColumns<'a> {
    start: Option<i64>,
    step: Option<i64>,
    ts: Option<Vec<i64>>,
    #[serde(borrow)]
    equity: Vec<&'a RawValue>,
}

/// A stored report that [`expand_compact_json`] cannot read.
#[derive(Debug, thiserror::Error)]
#[error("stored report: {0}")]
pub struct CompactReportError(String);

/// The JSON of [`Report::into_json`] from that of
/// [`Report::into_compact_json`], byte for byte. A report whose curve is
/// already a list of points (stored before curves were kept in columns)
/// comes back as it is.
pub fn expand_compact_json(stored: &str) -> Result<Cow<'_, str>, CompactReportError> {
    let fail = |why: String| CompactReportError(why);
    // The curve is the last field, so its key is the last one of that
    // name (a strategy's params come before it).
    let Some(at) = stored.rfind(CURVE_KEY) else {
        return Ok(Cow::Borrowed(stored));
    };
    let value_at = at + CURVE_KEY.len();
    if !stored[value_at..].starts_with('{') {
        return Ok(Cow::Borrowed(stored));
    }
    let Some(value) = stored[value_at..].strip_suffix('}') else {
        return Err(fail("the equity curve is not its last field".into()));
    };
    let columns: CurveColumns =
        serde_json::from_str(value).map_err(|e| fail(format!("equity curve: {e}")))?;
    let times: Vec<i64> = match (columns.ts, columns.start, columns.step) {
        (Some(ts), None, None) => ts,
        (None, Some(start), Some(step)) => (0..columns.equity.len() as i64)
            .map(|i| {
                i.checked_mul(step)
                    .and_then(|offset| start.checked_add(offset))
                    .ok_or_else(|| fail(format!("equity curve: point {i} overflows")))
            })
            .collect::<Result<_, _>>()?,
        _ => {
            return Err(fail(
                "equity curve: needs `ts`, or `start` and `step`".into(),
            ))
        }
    };
    if times.len() != columns.equity.len() {
        return Err(fail(format!(
            "equity curve: {} times for {} values",
            times.len(),
            columns.equity.len()
        )));
    }
    let mut out = Vec::with_capacity(value_at + 48 * times.len() + 2);
    out.extend_from_slice(&stored.as_bytes()[..value_at]);
    out.push(b'[');
    for (i, (ts, equity)) in times.iter().zip(&columns.equity).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let token = equity.get();
        // Each value is one number or null: nothing else reaches a curve.
        if token.starts_with(['[', '{', '"']) {
            return Err(fail(format!("equity curve: value {i} is not a number")));
        }
        open_point(&mut out, *ts);
        out.extend_from_slice(token.as_bytes());
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
    String::from_utf8(out)
        .map(Cow::Owned)
        .map_err(|e| fail(e.to_string()))
}
