//! Hostile plugins end their run with a named error, fast, and leave the
//! process able to run a normal backtest.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use stratbox_engine::candles::{self, Candles};
use stratbox_engine::reference;
use stratbox_engine::{self as engine, BacktestConfig, ParamInput, Params};
use stratbox_sandbox::{
    CancelToken, NanCanonicalization, Plugin, RunError, RunLimits, Sandbox, SandboxConfig,
    WasmStrategy,
};

use crate::support::{plugin_bytes, scratch};

fn sandbox(test: &str) -> Sandbox {
    Sandbox::new(SandboxConfig {
        cache_dir: Some(scratch(test)),
        ..SandboxConfig::default()
    })
    .unwrap()
}

const BARS: usize = 2_000;

fn data() -> Candles {
    candles::synth(BARS, 9, 60, 1_704_067_200, 42_000.0)
}

/// `plugins/<name>` loaded, with `inputs` checked against its schema.
fn load(
    sandbox: &Sandbox,
    name: &str,
    inputs: &BTreeMap<String, ParamInput>,
) -> (Arc<Plugin>, Params) {
    let plugin = sandbox.load(&plugin_bytes(name)).unwrap();
    let params = Params::validate(&plugin.description.params, inputs).unwrap();
    (plugin, params)
}

/// A fresh instance for a run over `data()`.
fn instantiate(
    sandbox: &Sandbox,
    (plugin, params): &(Arc<Plugin>, Params),
    limits: RunLimits,
) -> WasmStrategy {
    sandbox
        .instantiate(plugin, params, BARS, limits, CancelToken::default())
        .unwrap()
}

/// Loads (not timed: compiling is not the run) and runs one plugin;
/// returns the run's error and its wall time.
fn run_hostile(sandbox: &Sandbox, name: &str, limits: RunLimits) -> (RunError, Duration) {
    let loaded = load(sandbox, name, &BTreeMap::new());
    let candles = data();
    let started = Instant::now();
    let mut strategy = instantiate(sandbox, &loaded, limits);
    let err = engine::run_backtest(&candles, &mut strategy, &BacktestConfig::default())
        .expect_err("a hostile plugin must not complete");
    let elapsed = started.elapsed();
    let engine::EngineError::Strategy(inner) = err else {
        panic!("{name}: expected a strategy error, got {err}");
    };
    (*inner.downcast::<RunError>().unwrap(), elapsed)
}

fn assert_normal_run_still_works(sandbox: &Sandbox) {
    let candles = data();
    let loaded = load(sandbox, "ema-crossover", &BTreeMap::new());
    let mut wasm = instantiate(sandbox, &loaded, RunLimits::default());
    let wasm = engine::run_backtest(&candles, &mut wasm, &BacktestConfig::default()).unwrap();
    let mut native = reference::build("ema-crossover", &loaded.1).unwrap();
    let native =
        engine::run_backtest(&candles, native.as_mut(), &BacktestConfig::default()).unwrap();
    assert_eq!(wasm.trades, native.trades);
    assert_eq!(wasm.final_equity.to_bits(), native.final_equity.to_bits());
}

const FAST: Duration = Duration::from_secs(1);

#[test]
fn each_hostile_plugin_gets_its_named_error_quickly() {
    let sandbox = sandbox("hostile-all");
    let cases: [(&str, &str, Option<&str>); 4] = [
        ("hostile/infinite-loop", "fuel_exhausted", None),
        ("hostile/memory-bomb", "memory_limit", None),
        // Rust keeps big frames on a stack in linear memory: that stack
        // overflowing reads as an out-of-bounds access, which the host
        // names as a likely stack overflow.
        (
            "hostile/deep-recursion",
            "strategy_trap",
            Some("stack overflow"),
        ),
        (
            "hostile/panic",
            "strategy_trap",
            Some("deliberate panic at bar 10"),
        ),
    ];
    for (name, code, text) in cases {
        let (err, elapsed) = run_hostile(&sandbox, name, RunLimits::default());
        assert_eq!(err.code(), code, "{name}: {err}");
        if let Some(text) = text {
            assert!(err.to_string().contains(text), "{name}: {err}");
        }
        assert!(elapsed < FAST, "{name} took {elapsed:?}");
        assert!(!err.to_string().contains('\n'), "{name}: one line: {err}");
        // The same process (and the same sandbox) carries on.
        assert_normal_run_still_works(&sandbox);
    }
}

#[test]
fn an_endless_loop_with_unlimited_fuel_hits_the_deadline() {
    let sandbox = sandbox("hostile-deadline");
    let limits = RunLimits {
        fuel: Some(u64::MAX / 2),
        deadline: Some(Duration::from_millis(200)),
        memory_limit_bytes: None,
    };
    let (err, elapsed) = run_hostile(&sandbox, "hostile/infinite-loop", limits);
    assert_eq!(err.code(), "deadline_exceeded", "{err}");
    assert!(
        elapsed >= Duration::from_millis(200) && elapsed < FAST,
        "{elapsed:?}"
    );
    assert_normal_run_still_works(&sandbox);
}

#[test]
fn a_running_strategy_can_be_cancelled() {
    let sandbox = sandbox("hostile-cancel");
    let (plugin, params) = load(&sandbox, "hostile/infinite-loop", &BTreeMap::new());
    let candles = data();
    let cancel = CancelToken::default();
    let limits = RunLimits {
        fuel: Some(u64::MAX / 2),
        ..RunLimits::default()
    };
    let mut strategy = sandbox
        .instantiate(&plugin, &params, candles.len(), limits, cancel.clone())
        .unwrap();
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        cancel.cancel();
    });
    let started = Instant::now();
    let err =
        engine::run_backtest(&candles, &mut strategy, &BacktestConfig::default()).unwrap_err();
    canceller.join().unwrap();
    let engine::EngineError::Strategy(inner) = err else {
        panic!("expected a strategy error");
    };
    assert_eq!(inner.downcast::<RunError>().unwrap().code(), "cancelled");
    assert!(started.elapsed() < FAST);
}

#[test]
fn a_smaller_memory_cap_per_run_is_enforced() {
    let sandbox = sandbox("hostile-memory-cap");
    let limits = RunLimits {
        memory_limit_bytes: Some(8 << 20),
        ..RunLimits::default()
    };
    let (err, _) = run_hostile(&sandbox, "hostile/memory-bomb", limits);
    assert_eq!(
        err,
        RunError::MemoryLimit {
            limit_bytes: 8 << 20
        }
    );
}

#[test]
fn a_log_flood_is_stopped_and_a_chatty_log_is_bounded() {
    let sandbox = sandbox("hostile-log");
    // 1 MiB per bar: stopped once the run's log volume passes 64 MiB.
    let (err, elapsed) = run_hostile(&sandbox, "hostile/log-flood", RunLimits::default());
    assert_eq!(err.code(), "strategy_trap", "{err}");
    assert!(err.to_string().contains("log flood"), "{err}");
    assert!(elapsed < FAST, "{elapsed:?}");

    // 2,000 bars of 2 KiB lines: 1,000 lines kept, cut to 1 KiB, 1,000 dropped.
    let inputs = [("line_bytes".to_string(), ParamInput::Text("2048".into()))].into();
    let loaded = load(&sandbox, "hostile/log-flood", &inputs);
    let mut strategy = instantiate(&sandbox, &loaded, RunLimits::default());
    engine::run_backtest(&data(), &mut strategy, &BacktestConfig::default()).unwrap();
    let (lines, dropped) = strategy.log();
    assert_eq!(lines.len(), 1_000);
    assert_eq!(dropped, 1_000);
    assert!(lines
        .iter()
        .all(|l| l.level == "info" && l.message.len() <= 1_024 + '…'.len_utf8()));
    assert_normal_run_still_works(&sandbox);
}

/// A strategy that reads the bits of a NaN it computed sees the canonical
/// NaN, so its report is the same on every CPU. With canonicalisation off
/// x86-64 shows its own negative NaN, and the strategy buys.
#[test]
fn a_strategy_reading_nan_bits_sees_the_canonical_nan() {
    let mut modes = vec![
        (
            NanCanonicalization::AtObservation,
            "7ff8000000000000",
            false,
        ),
        (
            NanCanonicalization::EveryOperation,
            "7ff8000000000000",
            false,
        ),
    ];
    if cfg!(target_arch = "x86_64") {
        modes.push((NanCanonicalization::Off, "fff8000000000000", true));
    }
    let candles = data();
    for (mode, bits, bought) in modes {
        let sandbox = Sandbox::new(SandboxConfig {
            cache_dir: Some(scratch(&format!("nan-bits-{mode:?}"))),
            nan_canonicalization: mode,
            ..SandboxConfig::default()
        })
        .unwrap();
        let loaded = load(&sandbox, "hostile/nan-bits", &BTreeMap::new());
        let mut strategy = instantiate(&sandbox, &loaded, RunLimits::default());
        let report =
            engine::run_backtest(&candles, &mut strategy, &BacktestConfig::default()).unwrap();
        let (lines, _) = strategy.log();
        assert_eq!(lines.len(), 1, "{mode:?}");
        assert_eq!(lines[0].message, format!("nan bits {bits}"), "{mode:?}");
        // Bought and held to the end: an open position, not a closed trade.
        assert_eq!(report.open_position.is_some(), bought, "{mode:?}");
    }
}
