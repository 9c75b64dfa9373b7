//! Backtest a strategy component from Rust, the way the CLI and the workers
//! do: load (checked, compiled or cached), validate params, instantiate
//! under limits, run the engine, read the report and the strategy's log.
//!
//! ```sh
//! cargo run --release -p stratbox --example backtest_plugin -- \
//!     path/to/ema-crossover.wasm fast_period=20
//! ```

use anyhow::{anyhow, Context};
use std::collections::BTreeMap;
use stratbox_engine::candles;
use stratbox_engine::{self as engine, BacktestConfig, ParamInput, Params};
use stratbox_sandbox::{CancelToken, RunLimits, Sandbox, SandboxConfig};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or_else(|| anyhow!("usage: backtest_plugin PLUGIN.wasm [NAME=VALUE ...]"))?;
    let inputs: BTreeMap<String, ParamInput> = args
        .map(|pair| {
            let (name, value) = pair
                .split_once('=')
                .ok_or_else(|| anyhow!("`{pair}`: expected NAME=VALUE"))?;
            Ok((name.to_string(), ParamInput::Text(value.to_string())))
        })
        .collect::<anyhow::Result<_>>()?;

    let bytes = std::fs::read(&path).with_context(|| format!("cannot read {path}"))?;
    let sandbox = Sandbox::new(SandboxConfig::default())?;
    let plugin = sandbox.load(&bytes)?;
    let params = Params::validate(&plugin.description.params, &inputs)?;

    // A year of hourly candles from a fixed seed: the same report every time.
    let candles = candles::synth(8_760, 7, 3_600, 1_704_067_200, 42_000.0);
    let mut strategy = sandbox.instantiate(
        &plugin,
        &params,
        candles.len(),
        RunLimits::default(),
        CancelToken::default(),
    )?;
    let report = engine::run_backtest(&candles, &mut strategy, &BacktestConfig::default())?;

    println!(
        "{} {}: {} trades, final equity {:.2}, max drawdown {:.2}%, {} fuel",
        plugin.description.name,
        plugin.description.version,
        report.num_trades,
        report.final_equity,
        report.max_drawdown_pct,
        report.fuel_used
    );
    let (lines, dropped) = strategy.log();
    println!("{} log lines ({dropped} dropped)", lines.len());
    Ok(())
}
