//! Contract versions side by side: components built against 0.1.0 and
//! 0.2.0 before the next version existed (the frozen fixtures) still load
//! with their versions and trade to the same report as today's 0.3.0
//! build, and a 0.2.0+ component reads the market state the host passes
//! (docs/conventions/contract.md#versioning).

use serde_json::Value;
use sha2::{Digest, Sha256};
use stratbox_engine::candles::Candles;
use stratbox_engine::perp::{Funding, PerpConfig};
use stratbox_engine::{
    run_backtest, Action, BacktestConfig, Market, ParamInput, ParamSpec, Params, Plan,
    PortfolioView, Report, Strategy,
};
use stratbox_sandbox::{
    CancelToken, ContractVersion, RunLimits, Sandbox, SandboxConfig, StrategyKind,
};

use crate::support::{
    candles_csv, path_str, plugin, plugin_bytes, scratch, stderr, stdout, stratbox, workspace,
};

/// Built from plugins/ema-crossover at 9e523d6, before contract 0.2.0
/// (tests/fixtures/README.md).
const FIXTURE: &str = "tests/fixtures/ema-crossover-0.1.0.wasm";
const FIXTURE_SHA256: &str = "daefea857fca52559b103e5ae06ce1d634fe21e533e9d16f67bf80bdb219f4bc";

/// Built from plugins/ema-crossover at 6cf726f, before contract 0.3.0
/// (tests/fixtures/README.md).
const FIXTURE_0_2_0: &str = "tests/fixtures/ema-crossover-0.2.0.wasm";
const FIXTURE_0_2_0_SHA256: &str =
    "4b931eaf09bd342908de1f4fe5f97abe8df40a4de3105d0c4967484634193a6b";

fn fixture() -> std::path::PathBuf {
    workspace().join(FIXTURE)
}

fn fixture_0_2_0() -> std::path::PathBuf {
    workspace().join(FIXTURE_0_2_0)
}

fn sandbox_in(dir: &std::path::Path) -> Sandbox {
    Sandbox::new(SandboxConfig {
        cache_dir: Some(dir.to_path_buf()),
        ..SandboxConfig::default()
    })
    .unwrap()
}

fn backtest(
    dir: &std::path::Path,
    plugin: &std::path::Path,
    csv: &std::path::Path,
    extra: &[&str],
) -> Value {
    let mut args = vec![
        "backtest",
        "--plugin",
        path_str(plugin),
        "--candles",
        path_str(csv),
        "--json",
    ];
    args.extend_from_slice(extra);
    let out = stratbox(dir, &args);
    assert!(out.status.success(), "backtest failed: {}", stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap()
}

/// Every field but the strategy's identity and the fuel (other code,
/// other instructions) is the same, floats to the bit.
fn assert_same_report(a: &Value, b: &Value) {
    for (key, value) in a.as_object().unwrap() {
        if key == "strategy" || key == "fuel_used" {
            continue;
        }
        assert_eq!(value, &b[key], "field {key} differs");
    }
    assert_eq!(
        a["final_equity"].as_f64().unwrap().to_bits(),
        b["final_equity"].as_f64().unwrap().to_bits()
    );
}

/// `schema`'s defaults with `set` (name, value as text) applied.
fn params(schema: &[ParamSpec], set: &[(&str, &str)]) -> Params {
    let inputs = set
        .iter()
        .map(|(name, value)| (name.to_string(), ParamInput::Text(value.to_string())))
        .collect();
    Params::validate(schema, &inputs).unwrap()
}

fn portfolio<'a>(
    market: Market,
    liquidation_price: Option<f64>,
    funding_rate: Option<f64>,
) -> PortfolioView<'a> {
    PortfolioView {
        cash: 10_000.0,
        position: 0.0,
        entry_price: 0.0,
        stop_loss: None,
        take_profit: None,
        open_orders: 0,
        commission: 0.0006,
        leverage: 1.0,
        slippage_bps: 0.0,
        fills: &[],
        market,
        liquidation_price,
        funding_rate,
    }
}

/// Calls `on_bars` once; (bars walked, actions, plan).
fn call(
    strategy: &mut dyn Strategy,
    candles: &Candles,
    start: usize,
    end: usize,
    view: &PortfolioView<'_>,
) -> (usize, Vec<Action>, Plan) {
    let mut actions = Vec::new();
    let mut plan = Plan::default();
    let walked = strategy
        .on_bars(candles, start, end, view, &mut actions, &mut plan)
        .unwrap();
    (walked, actions, plan)
}

#[test]
fn the_fixtures_are_the_components_built_before_0_2_0_and_0_3_0() {
    let readme = std::fs::read_to_string(workspace().join("tests/fixtures/README.md")).unwrap();
    for (path, sha256) in [
        (fixture(), FIXTURE_SHA256),
        (fixture_0_2_0(), FIXTURE_0_2_0_SHA256),
    ] {
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(hex::encode(Sha256::digest(&bytes)), sha256, "{path:?}");
        assert!(readme.contains(sha256), "README names another sha256");
    }
}

#[test]
fn a_0_2_0_component_loads_with_its_version() {
    let dir = scratch("versions-load-0.2.0");
    let sandbox = sandbox_in(&dir);
    let old = sandbox
        .load(&std::fs::read(fixture_0_2_0()).unwrap())
        .unwrap();
    assert_eq!(old.contract_version, ContractVersion::V0_2_0);
    assert_eq!(old.kind, StrategyKind::Single);
    assert_eq!(old.imports, ["stratbox:strategy/log@0.2.0"]);
    assert_eq!(old.exports, ["stratbox:strategy/strategy@0.2.0"]);
    assert_eq!(old.description.name, "EMA Crossover");
    let new = sandbox.load(&plugin_bytes("ema-crossover")).unwrap();
    assert_eq!(new.description.params, old.description.params);
    assert_eq!(new.description.columns, old.description.columns);

    let out = stratbox(
        &dir,
        &["plugin", "inspect", path_str(&fixture_0_2_0()), "--json"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let info: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        info["imports"],
        serde_json::json!(["stratbox:strategy/log@0.2.0"])
    );
    assert_eq!(info["kind"], "single");
}

#[test]
fn a_0_1_0_component_loads_with_its_version_and_the_sdk_builds_0_3_0() {
    let dir = scratch("versions-load");
    let sandbox = sandbox_in(&dir);
    let old = sandbox.load(&std::fs::read(fixture()).unwrap()).unwrap();
    assert_eq!(old.contract_version, ContractVersion::V0_1_0);
    assert_eq!(old.imports, ["stratbox:strategy/log@0.1.0"]);
    assert!(old
        .exports
        .contains(&"stratbox:strategy/strategy@0.1.0".to_string()));
    assert_eq!(old.description.name, "EMA Crossover");

    let new = sandbox.load(&plugin_bytes("ema-crossover")).unwrap();
    assert_eq!(new.contract_version, ContractVersion::V0_3_0);
    assert_eq!(new.contract_version, ContractVersion::CURRENT);
    assert_eq!(new.kind, StrategyKind::Single);
    // A single-symbol build of the SDK imports the log only, though the
    // SDK also carries the portfolio world.
    assert_eq!(new.imports, ["stratbox:strategy/log@0.3.0"]);
    assert_eq!(new.exports, ["stratbox:strategy/strategy@0.3.0"]);
    assert_eq!(new.description.params, old.description.params);
    assert_eq!(stratbox_sandbox::CONTRACT_VERSION, "0.3.0");

    // Inspect shows the version it was read as.
    let out = stratbox(&dir, &["plugin", "inspect", path_str(&fixture()), "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let info: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        info["imports"],
        serde_json::json!(["stratbox:strategy/log@0.1.0"])
    );
}

/// Spot backtests of `old` and of today's build of ema-crossover, long
/// only and long/short, are the same to the bit.
fn assert_reports_as_the_current_build(test: &str, old: &std::path::Path) {
    let dir = scratch(test);
    let (csv, _) = candles_csv(&dir, 20_000, 21, 3_600);
    let fresh = plugin("ema-crossover");
    for extra in [&[][..], &["--param", "allow_short=true"][..]] {
        let old = backtest(&dir, old, &csv, extra);
        let new = backtest(&dir, &fresh, &csv, extra);
        assert!(
            new["num_trades"].as_u64().unwrap() > 50,
            "too few trades to compare"
        );
        assert_same_report(&old, &new);
        assert_ne!(old["strategy"]["sha256"], new["strategy"]["sha256"]);
    }
}

#[test]
fn the_0_1_0_fixture_reports_exactly_as_the_0_3_0_build_on_spot() {
    assert_reports_as_the_current_build("versions-parity", &fixture());
}

#[test]
fn the_0_2_0_fixture_reports_exactly_as_the_0_3_0_build_on_spot() {
    assert_reports_as_the_current_build("versions-parity-0.2.0", &fixture_0_2_0());
}

#[test]
fn funding_aware_on_spot_trades_as_the_ema_crossover_long_only() {
    let dir = scratch("versions-funding-aware");
    let (csv, _) = candles_csv(&dir, 10_000, 22, 3_600);
    let periods = ["--param", "fast_period=8", "--param", "slow_period=21"];
    let aware = backtest(&dir, &plugin("funding-aware"), &csv, &periods);
    let ema = backtest(&dir, &plugin("ema-crossover"), &csv, &periods);
    assert!(aware["num_trades"].as_u64().unwrap() > 20);
    assert_same_report(&aware, &ema);
}

#[test]
fn a_0_2_0_component_reads_the_market_state_the_host_passes() {
    let dir = scratch("versions-market-state");
    let (_, candles) = candles_csv(&dir, 50, 23, 3_600);
    let sandbox = sandbox_in(&dir);
    let probe = sandbox.load(&plugin_bytes("hostile/market-probe")).unwrap();
    assert_eq!(probe.contract_version, ContractVersion::CURRENT);
    let params = params(&probe.description.params, &[("buy_at", "2")]);
    let start = |sandbox: &Sandbox| {
        sandbox
            .instantiate(
                &probe,
                &params,
                candles.len(),
                RunLimits::default(),
                CancelToken::default(),
            )
            .unwrap()
    };

    // Spot: the guest is told nothing, reads no values, and fills its own
    // market buy, walking on to the end of the range.
    let mut spot = start(&sandbox);
    let (walked, actions, plan) = call(
        &mut spot,
        &candles,
        0,
        10,
        &portfolio(Market::Spot, None, None),
    );
    assert_eq!(walked, 10);
    assert!(actions.is_empty());
    assert_eq!(plan.actions.len(), 1, "the guest fills on spot: {plan:?}");
    let (log, _) = spot.log();
    assert_eq!(log[0].message, "bar=0 market=spot lp=none funding=none");
    assert_eq!(log.len(), 1);

    // Perpetual: the guest reads exactly what the host passed, and hands
    // its buy to the host on the bar it placed it.
    let mut perp = start(&sandbox);
    let view = portfolio(Market::LinearPerpetual, Some(87.8), Some(0.0001));
    let (walked, actions, plan) = call(&mut perp, &candles, 0, 10, &view);
    assert_eq!(walked, 3, "the range ends at the bar with the buy");
    assert_eq!(actions.len(), 1);
    assert!(
        plan.actions.is_empty() && plan.assumed.is_empty(),
        "{plan:?}"
    );
    // A new state shows from the next call on; an unchanged one re-reads
    // the same values.
    let (walked, _, _) = call(&mut perp, &candles, 3, 5, &view);
    assert_eq!(walked, 2);
    let changed = portfolio(Market::LinearPerpetual, Some(91.25), Some(-0.0002));
    call(&mut perp, &candles, 5, 8, &changed);
    let flat_spot_values = portfolio(Market::LinearPerpetual, None, None);
    call(&mut perp, &candles, 8, 9, &flat_spot_values);
    let bits = |v: f64| format!("{:016x}", v.to_bits());
    let (log, _) = perp.log();
    let lines: Vec<&str> = log.iter().map(|l| l.message.as_str()).collect();
    assert_eq!(
        lines,
        [
            format!(
                "bar=0 market=linear_perpetual lp={} funding={}",
                bits(87.8),
                bits(0.0001)
            ),
            format!(
                "bar=5 market=linear_perpetual lp={} funding={}",
                bits(91.25),
                bits(-0.0002)
            ),
            "bar=8 market=linear_perpetual lp=none funding=none".to_string(),
        ]
    );
}

#[test]
fn a_0_1_0_component_under_a_perpetual_is_walked_one_bar_at_a_time() {
    let dir = scratch("versions-old-perp");
    let (_, candles) = candles_csv(&dir, 400, 24, 3_600);
    let sandbox = sandbox_in(&dir);
    let old = sandbox.load(&std::fs::read(fixture()).unwrap()).unwrap();
    let params = params(
        &old.description.params,
        &[("fast_period", "2"), ("slow_period", "5")],
    );
    let mut strategy = sandbox
        .instantiate(
            &old,
            &params,
            candles.len(),
            RunLimits::default(),
            CancelToken::default(),
        )
        .unwrap();
    let view = portfolio(Market::LinearPerpetual, Some(1.0), Some(0.0001));
    let mut acted = 0;
    let mut bar = 0;
    while bar < candles.len() {
        let (walked, actions, plan) = call(&mut strategy, &candles, bar, candles.len(), &view);
        // One bar per call: no later bar in the range to fill an order at.
        assert_eq!(walked, 1, "bar {bar}");
        assert!(plan.actions.is_empty() && plan.assumed.is_empty());
        acted += usize::from(!actions.is_empty());
        bar += walked;
    }
    // Flat throughout (this test fills nothing), it buys on every
    // bullish cross: it did trade.
    assert!(acted > 5, "{acted} bars with actions");
}

/// A 10x perpetual backtest of `wasm` through the engine, with a constant
/// funding rate; the report and the strategy's log lines.
fn perpetual_run(
    sandbox: &Sandbox,
    wasm: &[u8],
    set: &[(&str, &str)],
    candles: &Candles,
    funding: f64,
) -> (Report, Vec<String>) {
    let loaded = sandbox.load(wasm).unwrap();
    let params = params(&loaded.description.params, set);
    let mut strategy = sandbox
        .instantiate(
            &loaded,
            &params,
            candles.len(),
            RunLimits::default(),
            CancelToken::default(),
        )
        .unwrap();
    let config = BacktestConfig {
        market: Market::LinearPerpetual,
        leverage: 10.0,
        perp: PerpConfig {
            funding: Funding::Constant(funding),
            ..PerpConfig::default()
        },
        ..BacktestConfig::default()
    };
    let report = run_backtest(candles, &mut strategy, &config).unwrap();
    let log = strategy.log().0.iter().map(|l| l.message.clone()).collect();
    (report, log)
}

#[test]
fn the_0_1_0_and_0_2_0_fixtures_run_a_perpetual_backtest_as_the_0_3_0_build() {
    let dir = scratch("versions-perp-parity");
    let (_, candles) = candles_csv(&dir, 3_000, 25, 3_600);
    let sandbox = sandbox_in(&dir);
    let set = [
        ("fast_period", "5"),
        ("slow_period", "20"),
        ("allow_short", "true"),
    ];
    let (old, _) = perpetual_run(
        &sandbox,
        &std::fs::read(fixture()).unwrap(),
        &set,
        &candles,
        0.0001,
    );
    let (new, _) = perpetual_run(
        &sandbox,
        &plugin_bytes("ema-crossover"),
        &set,
        &candles,
        0.0001,
    );
    let (v0_2_0, _) = perpetual_run(
        &sandbox,
        &std::fs::read(fixture_0_2_0()).unwrap(),
        &set,
        &candles,
        0.0001,
    );
    assert_eq!(old.market, Some(Market::LinearPerpetual));
    assert!(old.num_trades > 20, "{} trades", old.num_trades);
    // None reads the market state, and the engine fills every order of
    // each: the same run, though the 0.1.0 one was called bar by bar.
    let (old, new, v0_2_0) = (
        serde_json::to_value(&old).unwrap(),
        serde_json::to_value(&new).unwrap(),
        serde_json::to_value(&v0_2_0).unwrap(),
    );
    assert_same_report(&old, &new);
    assert_same_report(&v0_2_0, &new);
}

#[test]
fn funding_aware_reads_funding_and_liquidation_in_a_perpetual_run() {
    let dir = scratch("versions-perp-funding-aware");
    let (_, candles) = candles_csv(&dir, 3_000, 26, 3_600);
    let sandbox = sandbox_in(&dir);
    let wasm = plugin_bytes("funding-aware");
    let set = [
        ("fast_period", "5"),
        ("slow_period", "20"),
        ("max_funding_rate", "0.0003"),
        ("liq_buffer", "0.5"),
    ];
    // Funding above the threshold from the first funding time on: no long.
    let (high, _) = perpetual_run(&sandbox, &wasm, &set, &candles, 0.001);
    assert_eq!(high.num_trades, 0);
    assert!(high.open_position.is_none());

    // Below it: it trades, and every long gets a stop halfway between the
    // liquidation price it read and its entry.
    let (low, log) = perpetual_run(&sandbox, &wasm, &set, &candles, 0.0001);
    assert!(low.num_trades > 10, "{} trades", low.num_trades);
    let stops: Vec<(f64, f64)> = log
        .iter()
        .filter_map(|line| {
            let rest = line.split_once("stop-loss ")?.1;
            let (stop, rest) = rest.split_once(" (liquidation at ")?;
            Some((stop.parse().ok()?, rest.trim_end_matches(')').parse().ok()?))
        })
        .collect();
    assert!(stops.len() >= low.num_trades, "{log:?}");
    for (stop, lp) in &stops {
        // 10x long: liquidation about 9.5% under the entry.
        assert!(
            lp.is_finite() && *lp > 0.0 && stop > lp,
            "stop {stop} at lp {lp}"
        );
        assert!(stop / lp < 1.07, "stop {stop} too far above lp {lp}");
    }
}
