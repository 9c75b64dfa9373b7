//! stratbox: sandboxed WebAssembly trading strategies.
//!
//! Layers, each depending only on those listed before it:
//! `candles` (market data) → `engine` (strategy trait, fills, report) →
//! `sandbox` (wasmtime components as engine strategies) and `reference`
//! (native strategies) → `store` (Redis data) and `queue` (generic Redis
//! Streams mechanics) → `tasks` (backtest) → `worker` and `api` (HTTP) → `cli`.

pub mod api;
pub mod autoscale;
pub mod candles;
pub mod cli;
pub mod clock;
pub mod connection;
pub mod engine;
pub mod optimize;
pub mod queue;
pub mod reference;
pub mod sandbox;
pub mod scheduler;
pub mod store;
pub mod tasks;
pub mod worker;
