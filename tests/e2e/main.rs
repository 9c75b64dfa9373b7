//! End-to-end tests: the real `stratbox` binary and the real sandbox,
//! running real components built from `plugins/`. One test binary, one
//! module per feature.

// clippy.toml's allow-unwrap-in-tests covers `#[test]` functions only, not
// the shared helpers (support.rs, each module's fixtures).
#![allow(clippy::unwrap_used)]

mod api;
mod autoscale;
mod backtest_cli;
mod bad_input;
mod browser;
mod contract_versions;
mod dashboard;
mod data_fetch;
mod demo;
mod hostile;
mod languages;
mod many_hosts;
mod ops_cli;
mod optimize_cli;
mod perp_api;
mod perp_cli;
mod perp_fetch;
mod perp_opt;
mod plugin_load;
mod portfolio;
mod portfolio_languages;
mod portfolio_sandbox;
mod queue_backtest;
mod queue_optimize;
mod queue_recovery;
mod retention;
mod scaffold;
mod scheduler;
mod service;
mod strategy_log;
mod support;
mod task_limits;
mod tenants;
