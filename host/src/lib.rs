//! stratbox: sandboxed WebAssembly trading strategies.
//!
//! Layers, each depending only on those listed before it:
//! `candles` (market data) → `engine` (strategy trait, fills, report) →
//! `sandbox` (wasmtime components as engine strategies) and `reference`
//! (native strategies) → `cli`.

pub mod candles;
pub mod cli;
pub mod engine;
pub mod reference;
pub mod sandbox;
