//! Perpetual futures (docs/conventions/engine.md, "Perpetual futures"):
//! Bybit USDT-margined linear contracts, isolated margin, one-way mode.
//! One concept per file: the instrument, the margin arithmetic, funding,
//! mark prices, the account (broker) and the bar loop.
//! A spot run never enters this module: `run_backtest` picks the loop
//! once, before the first bar.

mod broker;
mod funding;
mod instrument;
mod margin;
mod mark;
mod run;
pub use run::check_mark_covers;

use std::sync::Arc;

pub(crate) use broker::{PerpBroker, ScanIndex};
pub use broker::{BELOW_MIN_QTY, INSUFFICIENT_MARGIN};
pub(crate) use funding::FundingClock;
pub use funding::{parse_funding_csv, Funding, FundingError, FundingSource, FUNDING_INTERVAL_SECS};
pub use instrument::{Instrument, InstrumentError, RiskTier};
pub use margin::{
    all_in_qty, bankruptcy_price, floor_step, initial_margin, liquidation_price, maintenance_margin,
};
pub(crate) use mark::{AlignedMarks, MarkView};
pub(crate) use run::run_perpetual;

use crate::backtest::EngineError;
use crate::candles::Candles;

/// What a perpetual run needs beyond the spot settings. The default (the
/// BTCUSDT instrument, no funding, trade prices as marks) allocates
/// nothing, so a spot config carries it for free.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PerpConfig {
    /// The contract; `None` is [`Instrument::bybit_default`].
    pub instrument: Option<Arc<Instrument>>,
    pub funding: Funding,
    /// Mark-price candles (same timeframe); bars without one use the
    /// trade candles.
    pub mark: Option<Arc<Candles>>,
}

impl PerpConfig {
    /// The instrument in force.
    pub fn instrument(&self) -> Instrument {
        self.instrument
            .as_deref()
            .cloned()
            .unwrap_or_else(Instrument::bybit_default)
    }

    /// Checks the instrument, the leverage against its maximum, the
    /// funding and the mark candles; the error names the field.
    pub fn check(&self, leverage: f64) -> Result<(), EngineError> {
        let bad =
            |field: &'static str, message: String| EngineError::InvalidConfig { field, message };
        let instrument = self.instrument();
        instrument
            .check()
            .map_err(|e| bad("instrument", format!("{}: {}", e.field, e.message)))?;
        if leverage > instrument.max_leverage {
            return Err(bad(
                "leverage",
                format!(
                    "must be at most the instrument's max_leverage {}, got {leverage}",
                    instrument.max_leverage
                ),
            ));
        }
        self.funding
            .check()
            .map_err(|e| bad("funding_rate", e.message))?;
        if let Some(mark) = &self.mark {
            mark.validate().map_err(|e| bad("mark", e.to_string()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
