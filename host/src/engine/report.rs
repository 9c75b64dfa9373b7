//! The backtest report (SPEC section 5), serialised as the JSON of
//! `stratbox backtest --json`. Field order is declaration order, so the
//! same run always prints the same bytes.

use serde::Serialize;
use std::collections::BTreeMap;

use super::params::ParamValue;
use super::strategy::FillReason;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TradeSide {
    Long,
    Short,
}

/// A closed round trip (or the closed part of one).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trade {
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
    /// stop, stop_loss or take_profit.
    pub exit_reason: FillReason,
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

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EquityPoint {
    pub ts: i64,
    pub equity: f64,
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
    pub fuel_used: u64,
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
    pub fn into_json(mut self) -> serde_json::Result<String> {
        const EMPTY_CURVE_AT_END: &[u8] = b"\"equity_curve\":[]}";
        let mut out = Vec::with_capacity(self.json_size_estimate());
        let curve = std::mem::take(&mut self.equity_curve);
        serde_json::to_writer(&mut out, &self)?;
        if out.ends_with(EMPTY_CURVE_AT_END) {
            out.truncate(out.len() - 2);
            for (i, point) in curve.iter().enumerate() {
                out.extend_from_slice(if i == 0 { b"{\"ts\":" } else { b",{\"ts\":" });
                serde_json::to_writer(&mut out, &point.ts)?;
                out.extend_from_slice(b",\"equity\":");
                serde_json::to_writer(&mut out, &point.equity)?;
                out.push(b'}');
            }
            out.extend_from_slice(b"]}");
        } else {
            // The curve is no longer last: all through serde.
            out.clear();
            self.equity_curve = curve;
            serde_json::to_writer(&mut out, &self)?;
        }
        String::from_utf8(out).map_err(|e| serde::ser::Error::custom(e.to_string()))
    }

    /// Bytes the JSON takes, rounded up: a curve point is at most about 50
    /// (`{"ts":1704067200,"equity":10006.626135100414},`), a trade about
    /// 330, the rest under 1.5 KB with the strategy's name and params.
    pub fn json_size_estimate(&self) -> usize {
        1536 + 56 * self.equity_curve.len() + 384 * self.trades.len()
    }
}
