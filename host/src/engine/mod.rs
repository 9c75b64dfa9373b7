//! The backtest engine: strategy-agnostic order filling, accounting and
//! reporting. It knows nothing of WebAssembly, Redis or HTTP: anything that
//! implements [`Strategy`] can be backtested.

mod backtest;
mod broker;
pub mod params;
mod report;
pub mod stats;
mod strategy;

pub use backtest::{run_backtest, run_backtest_observed, BacktestConfig, EngineError};
pub use params::{
    Column, Description, ParamError, ParamInput, ParamSpec, ParamType, ParamValue, Params,
};
pub use report::{
    expand_compact_json, CompactReportError, EquityPoint, OpenPosition, Report, StrategyInfo,
    Trade, TradeSide,
};
pub use strategy::{
    Action, Assumed, Fill, FillReason, Order, OrderKind, Plan, PortfolioView, Quantity, Side,
    Strategy, StrategyError,
};
#[cfg(test)]
mod tests;
