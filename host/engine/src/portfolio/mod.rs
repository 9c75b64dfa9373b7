//! Several symbols in one backtest (docs/conventions/engine.md, "Several
//! symbols"): their bars on one timeline, one account across them (spot:
//! shared cash; perpetuals: one wallet, isolated margin per position),
//! each symbol filled by the single-symbol rules. A single-symbol run
//! never enters this module.

mod book;
mod run;
mod strategy;
mod universe;

pub use run::run_portfolio;
pub use strategy::{AccountView, PortfolioStrategy, PositionView, SymbolAction, SymbolFill};
pub use universe::{SymbolSeries, Universe, MAX_SYMBOLS};

#[cfg(test)]
mod tests;
