//! The market flags of `stratbox backtest` and `stratbox optimize`
//! (`--market`, `--funding`, `--funding-rate`, `--mark`, `--instrument`):
//! one definition, and one way of turning them into the engine's
//! perpetual settings, for both commands.

use anyhow::{anyhow, Context};
use clap::Args;
use std::path::PathBuf;

use super::candles::load_csv;
use super::CliError;
use stratbox_engine::perp::{parse_funding_csv, Funding, Instrument, PerpConfig};
use stratbox_engine::{BacktestConfig, EngineError, Market};

/// The market a run trades and, for perpetuals, the contract, funding
/// and mark prices (docs/conventions/engine.md, "Perpetual futures").
#[derive(Debug, Args)]
pub struct MarketArgs {
    /// The market: `spot` or `linear_perpetual` (also `linear-perpetual`).
    #[arg(long, value_enum, default_value_t = MarketArg::Spot)]
    market: MarketArg,
    /// Funding history CSV (header ts,rate); perpetuals only.
    #[arg(long, value_name = "PATH", conflicts_with = "funding_rate")]
    funding: Option<PathBuf>,
    /// A constant funding rate paid every 8 hours from 00:00 UTC;
    /// perpetuals only.
    #[arg(long, value_name = "RATE", allow_negative_numbers = true)]
    funding_rate: Option<f64>,
    /// Mark-price candle CSV (same format as --candles); perpetuals only.
    #[arg(long, value_name = "PATH")]
    mark: Option<PathBuf>,
    /// The contract: an instrument JSON file, or `bybit-default` (BTCUSDT);
    /// perpetuals only.
    #[arg(long, value_name = "PATH|bybit-default")]
    instrument: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum MarketArg {
    Spot,
    #[value(name = "linear_perpetual", alias = "linear-perpetual")]
    LinearPerpetual,
}

impl MarketArgs {
    /// Sets the market and the perpetual settings on `config`, checked; a
    /// perpetual-only flag on spot, or a bad file, names its flag.
    pub fn apply(&self, config: &mut BacktestConfig) -> Result<(), CliError> {
        if self.market == MarketArg::Spot {
            let given = [
                ("--funding", self.funding.is_some()),
                ("--funding-rate", self.funding_rate.is_some()),
                ("--mark", self.mark.is_some()),
                ("--instrument", self.instrument.is_some()),
            ];
            if let Some((flag, _)) = given.iter().find(|(_, set)| *set) {
                return Err(CliError::input(anyhow!(
                    "{flag}: only for a perpetual run (add --market linear_perpetual)"
                )));
            }
            return Ok(());
        }
        let instrument = match self.instrument.as_deref() {
            None | Some("bybit-default") => None,
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("--instrument: cannot read {path}"))
                    .map_err(CliError::input)?;
                let instrument = Instrument::from_json(&text)
                    .map_err(|e| CliError::input(anyhow!("--instrument {path}: {e}")))?;
                Some(std::sync::Arc::new(instrument))
            }
        };
        let funding = match (&self.funding, self.funding_rate) {
            (Some(path), _) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("--funding: cannot read {}", path.display()))
                    .map_err(CliError::input)?;
                parse_funding_csv(&text)
                    .map_err(|e| CliError::input(anyhow!("--funding {}: {e}", path.display())))?
            }
            (None, Some(rate)) => Funding::Constant(rate),
            (None, None) => Funding::None,
        };
        let mark = match &self.mark {
            Some(path) => Some(std::sync::Arc::new(load_csv(path)?)),
            None => None,
        };
        config.market = Market::LinearPerpetual;
        config.perp = PerpConfig {
            instrument,
            funding,
            mark,
        };
        config.check().map_err(|e| {
            let message = flag_message(&e);
            let message = match message.strip_prefix("funding_rate: ") {
                Some(rest) if self.funding.is_some() => format!("--funding: {rest}"),
                Some(rest) => format!("--funding-rate: {rest}"),
                None => message,
            };
            CliError::input(anyhow!("{message}"))
        })
    }
}

/// `invalid initial_capital: ...` reads better as the flag the user typed.
/// A `--mark` series must reach both ends of the candles (the engine's
/// `check_mark_covers`); said before the run, naming the flag.
pub(super) fn check_marks(
    candles: &stratbox_engine::candles::Candles,
    config: &BacktestConfig,
) -> Result<(), CliError> {
    match config.perp.mark.as_deref() {
        Some(mark) => stratbox_engine::perp::check_mark_covers(candles, mark)
            .map_err(|e| CliError::input(anyhow!("{}", flag_message(&e)))),
        None => Ok(()),
    }
}

pub(super) fn flag_message(e: &EngineError) -> String {
    match e {
        EngineError::InvalidConfig { field, message } => {
            let flag = match *field {
                "initial_capital" => "--capital",
                "commission" => "--commission",
                "leverage" => "--leverage",
                "slippage_bps" => "--slippage-bps",
                "instrument" => "--instrument",
                "mark" => "--mark",
                other => other,
            };
            format!("{flag}: {message}")
        }
        other => other.to_string(),
    }
}
