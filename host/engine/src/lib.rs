//! The backtest engine: market data, strategy-agnostic order filling,
//! accounting and reporting, the native reference strategies and the
//! optimization core. It knows nothing of WebAssembly, Redis or HTTP:
//! anything that implements [`Strategy`] can be backtested. Nothing that
//! reaches a report iterates a hash map: reports are bit-identical.
#![forbid(unsafe_code)]

mod backtest;
mod broker;
pub mod candles;
pub mod optimize;
pub mod params;
pub mod perp;
pub mod portfolio;
pub mod reference;
mod report;
pub mod rng;
pub mod stats;
mod strategy;
pub mod time;

pub use backtest::{run_backtest, run_backtest_observed, BacktestConfig, EngineError};
pub use params::{
    Column, Description, ParamError, ParamInput, ParamSpec, ParamType, ParamValue, Params,
};
pub use report::{
    expand_compact_json, CompactReportError, EquityPoint, ExitReason, OpenPosition, Report,
    StrategyInfo, SymbolSummary, Trade, TradeSide,
};
pub use strategy::{
    Action, Assumed, Fill, FillReason, Market, Order, OrderKind, Plan, PortfolioView, Quantity,
    Side, Strategy, StrategyError,
};
#[cfg(test)]
mod scripted;
#[cfg(test)]
mod tests;
