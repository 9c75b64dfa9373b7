#![allow(unsafe_code)]
//! Hostile test plugin: a strategy of another contract version.
//!
//! It does not use the SDK: it binds its own copy of the WIT contract with
//! the package bumped to `stratbox:strategy@0.99.0`, a version no host
//! speaks (0.1.0, 0.2.0 and 0.3.0 all load), and implements it minimally.
//! Attacks the contract check: the host must refuse it at load with a
//! contract version mismatch.

wit_bindgen::generate!({ path: "wit", world: "plugin" });

use exports::stratbox::strategy::strategy::{Description, Guest, Param, Portfolio, Step};

pub struct WrongVersion;

impl Guest for WrongVersion {
    fn describe() -> Description {
        Description {
            name: "hostile: wrong version".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            summary: "Speaks contract 0.99.0; the host must refuse it at load".to_string(),
            params: Vec::new(),
        }
    }

    fn init(_params: Vec<Param>) -> Result<(), String> {
        Ok(())
    }

    fn push_bars(
        _first_index: u64,
        _ts: Vec<i64>,
        _open: Vec<f64>,
        _high: Vec<f64>,
        _low: Vec<f64>,
        _close: Vec<f64>,
        _volume: Vec<f64>,
    ) {
    }

    fn run(_portfolio: Portfolio, start: u32, end: u32) -> Step {
        Step {
            consumed: end.saturating_sub(start),
            actions: Vec::new(),
        }
    }
}

// Native builds (workspace tests) cannot link export names with `:`.
#[cfg(target_arch = "wasm32")]
export!(WrongVersion);
