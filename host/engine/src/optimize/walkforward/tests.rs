//! Walk-forward windows, stitching and the absence of look-ahead, with
//! test strategies that would profit from the future if they saw it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use super::*;
use crate::optimize::{self, factory::ReferenceFactory, rank, Direction, Method};
use crate::{Description, Order, OrderKind, ParamSpec, ParamType, Quantity, Side, StrategyInfo};

const HOUR: i64 = 3_600;

#[test]
fn windows_tile_the_range_exactly_rolling_and_anchored() {
    for bars in 1..120 {
        for train in 1..25 {
            for test in 1..25 {
                for anchored in [false, true] {
                    let spec = WalkForward {
                        train: Length::Bars(train),
                        test: Length::Bars(test),
                        step: None,
                        anchored,
                    };
                    let windows = match spec.windows(bars, HOUR) {
                        Ok(w) => w,
                        Err(e) => {
                            assert!(bars <= train, "{bars} {train} {test}: {e}");
                            assert_eq!(e.field, "walk_forward.train");
                            continue;
                        }
                    };
                    assert!(bars > train);
                    assert_eq!(windows.len(), (bars - train).div_ceil(test));
                    assert_eq!(windows[0].test.start, train);
                    assert_eq!(windows.last().unwrap().test.end, bars);
                    for (k, w) in windows.iter().enumerate() {
                        // Train right before test, never overlapping it.
                        assert_eq!(w.train.end, w.test.start);
                        assert!(!w.test.is_empty() && w.test.len() <= test);
                        if k + 1 < windows.len() {
                            assert_eq!(w.test.len(), test);
                            assert_eq!(w.test.end, windows[k + 1].test.start);
                        }
                        if anchored {
                            assert_eq!(w.train.start, 0);
                        } else {
                            assert_eq!(w.train.len(), train);
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn lengths_parse_as_bars_or_durations_and_errors_name_the_part() {
    let spec = WalkForward::parse("train=90d, test=30d,anchored").unwrap();
    assert_eq!(spec.train, Length::Secs(90 * 86_400));
    assert!(spec.anchored);
    assert_eq!(spec.lengths(HOUR).unwrap(), (2_160, 720));
    let spec = WalkForward::parse("train=2000,test=12h,step=12h").unwrap();
    assert_eq!(spec.lengths(HOUR).unwrap(), (2_000, 12));
    assert_eq!(spec.lengths(4 * HOUR).unwrap(), (2_000, 3));
    assert_eq!(
        spec.lengths(5 * HOUR).unwrap_err().field,
        "walk_forward.test"
    );
    for (text, field) in [
        ("train=90x,test=30d", "walk_forward.train"),
        ("train=0,test=30d", "walk_forward.train"),
        ("train=90d", "walk_forward.test"),
        ("train=90d,test=-3d", "walk_forward.test"),
        ("train=90d,test=30d,step=x", "walk_forward.step"),
        ("train=90d,test=30d,slide", "walk_forward"),
    ] {
        assert_eq!(WalkForward::parse(text).unwrap_err().field, field, "{text}");
    }
    let uneven = WalkForward::parse("train=90d,test=30d,step=15d").unwrap();
    let err = uneven.lengths(HOUR).unwrap_err();
    assert_eq!(err.field, "walk_forward.step");
    assert!(err.message.contains("must equal test"), "{}", err.message);
    // The API's object, both ways.
    let json = r#"{"train":2000,"test":"30d","anchored":true}"#;
    let spec: WalkForward = serde_json::from_str(json).unwrap();
    assert_eq!(spec.test, Length::Secs(30 * 86_400));
    assert_eq!(serde_json::to_string(&spec).unwrap(), json);
    assert!(serde_json::from_str::<WalkForward>(r#"{"train":"9q","test":5}"#).is_err());
    let many = WalkForward::parse("train=10,test=1").unwrap();
    assert_eq!(
        many.windows(MAX_WINDOWS + 20, HOUR).unwrap_err().field,
        "walk_forward.test"
    );
}

#[test]
fn efficiency_by_hand() {
    // 1 % over 876 hourly bars (a tenth of a year): 10 % a year.
    assert!((annualized_return_pct(1.0, 876, HOUR) - 10.0).abs() < 1e-12);
    // In sample 5 % and 15 % a year: mean 10; out of sample 10: 1.0.
    assert_eq!(efficiency(10.0, &[5.0, 15.0]), Some(1.0));
    assert_eq!(efficiency(-4.0, &[5.0, 15.0]), Some(-0.4));
    assert_eq!(efficiency(10.0, &[-5.0, 4.0]), None);
    assert_eq!(efficiency(10.0, &[]), None);
}

/// A strategy for these tests, with a recorder of the candles it is given.
struct TestFactory {
    description: Description,
    /// (first ts, last ts) of every candle set an instance was handed.
    seen: Mutex<BTreeSet<(i64, i64)>>,
    kind: Kind,
}

#[derive(Clone, Copy)]
enum Kind {
    /// Long while the close `horizon` bars ahead is higher, if it has that
    /// bar: it profits from any bar it is given beyond the present.
    Peek,
    /// All in on `side` (0 long, 1 short) whenever flat.
    Side,
}

impl TestFactory {
    fn new(kind: Kind) -> Self {
        let name = match kind {
            Kind::Peek => "horizon",
            Kind::Side => "side",
        };
        Self {
            description: Description {
                name: "test".into(),
                version: "0".into(),
                summary: String::new(),
                params: vec![ParamSpec {
                    name: name.into(),
                    kind: ParamType::Int,
                    default: crate::ParamValue::Int(0),
                    min: Some(0.0),
                    max: Some(10_000.0),
                    step: Some(1.0),
                    help: String::new(),
                }],
                columns: Vec::new(),
            },
            seen: Mutex::new(BTreeSet::new()),
            kind,
        }
    }
}

struct Test<'a> {
    factory: &'a TestFactory,
    value: i64,
    recorded: bool,
}

fn all_in(side: Side) -> Action {
    Action::Submit(Order {
        side,
        quantity: Quantity::Equity(1.0),
        kind: OrderKind::Market,
        stop_loss: None,
        take_profit: None,
    })
}

impl Strategy for Test<'_> {
    fn on_bars(
        &mut self,
        candles: &Candles,
        start: usize,
        end: usize,
        view: &PortfolioView<'_>,
        actions: &mut Vec<Action>,
        _plan: &mut Plan,
    ) -> Result<usize, StrategyError> {
        if !self.recorded {
            let span = (candles.ts[0], candles.ts[candles.len() - 1]);
            self.factory.seen.lock().unwrap().insert(span);
            self.recorded = true;
        }
        for i in start..end {
            let act = match self.factory.kind {
                Kind::Peek => {
                    let ahead = candles.close.get(i + self.value as usize);
                    let want = ahead.is_some_and(|&c| c > candles.close[i]);
                    match (want, view.position > 0.0) {
                        (true, false) => Some(all_in(Side::Buy)),
                        (false, true) => Some(Action::ClosePosition),
                        _ => None,
                    }
                }
                Kind::Side => (view.position == 0.0).then(|| {
                    all_in(if self.value == 0 {
                        Side::Buy
                    } else {
                        Side::Sell
                    })
                }),
            };
            if let Some(action) = act {
                actions.push(action);
                return Ok(i + 1 - start);
            }
        }
        Ok(end - start)
    }
}

impl StrategyFactory for TestFactory {
    fn description(&self) -> &Description {
        &self.description
    }

    fn build(&self, params: &Params, _bars: usize) -> Result<Box<dyn Strategy + '_>, EngineError> {
        let value = match params.0.first() {
            Some((_, crate::ParamValue::Int(v))) => *v,
            _ => 0,
        };
        Ok(Box::new(Test {
            factory: self,
            value,
            recorded: false,
        }))
    }

    fn info(&self, params: &Params) -> StrategyInfo {
        StrategyInfo {
            name: "test".into(),
            version: "0".into(),
            sha256: None,
            params: params.to_map(),
        }
    }
}

/// A whole walk-forward as the CLI runs it: each window's grid on its
/// train bars alone, ranked, then the report.
fn walk(
    factory: &dyn StrategyFactory,
    candles: &Candles,
    spec: &WalkForward,
    space: serde_json::Value,
    objective: &Objective,
) -> WalkForwardReport {
    let config = BacktestConfig::default();
    let windows = spec.windows(candles.len(), HOUR).unwrap();
    let dims: BTreeMap<String, optimize::DimensionSpec> = serde_json::from_value(space).unwrap();
    let combos = optimize::combinations(
        &factory.description().params,
        &BTreeMap::new(),
        &dims,
        Method::Grid,
        None,
        1_000,
    )
    .unwrap();
    let tables: Vec<Table> = windows
        .iter()
        .map(|w| {
            let train = slice(candles, w.train.clone());
            let rows =
                optimize::evaluate(factory, &combos, &train, None, &config, 2, &|_| {}, &|_| {
                    false
                })
                .unwrap();
            rank(objective, rows)
        })
        .collect();
    report(factory, candles, spec, &windows, &tables, &config).unwrap()
}

fn rolling(train: usize, test: usize) -> WalkForward {
    WalkForward {
        train: Length::Bars(train),
        test: Length::Bars(test),
        step: None,
        anchored: false,
    }
}

fn by_return() -> Objective {
    Objective::new("total_return_pct", Direction::Maximize, 0).unwrap()
}

#[test]
fn a_strategy_peeking_ahead_gets_nothing_beyond_its_test_window() {
    let candles = crate::candles::synth(1_200, 4, HOUR, 1_704_067_200, 100.0);
    let (train, test) = (300, 100);
    // Peeking exactly one test window ahead: a legitimate run never has
    // that bar during its test window.
    let factory = TestFactory::new(Kind::Peek);
    let spec = rolling(train, test);
    let out = walk(
        &factory,
        &candles,
        &spec,
        serde_json::json!({"horizon": [100, 150]}),
        &by_return(),
    );
    assert_eq!(out.windows.len(), 9);
    assert_eq!(out.stitched.num_trades, 0, "{:?}", out.stitched.trades);
    assert!(out.stitched.open_position.is_none());
    assert_eq!(out.stitched.final_equity, 10_000.0);
    for w in &out.windows {
        let chosen = w.chosen.as_ref().unwrap();
        assert_eq!(chosen.out_of_sample.num_trades(), 0);
        // In sample it did see ahead (its own train bars), and profited.
        assert!(chosen.score > 0.0, "{chosen:?}");
    }
    // Teeth: handed the whole range, it profits (42 % on these bars).
    let mut whole = factory
        .build(
            &Params(vec![("horizon".into(), crate::ParamValue::Int(100))]),
            0,
        )
        .unwrap();
    let plain = crate::run_backtest(&candles, whole.as_mut(), &BacktestConfig::default()).unwrap();
    assert!(plain.total_return_pct > 20.0, "{}", plain.total_return_pct);
    // Every candle set handed out ended at a train or a test window's end.
    let windows = spec.windows(candles.len(), HOUR).unwrap();
    let allowed: BTreeSet<(i64, i64)> = windows
        .iter()
        .flat_map(|w| {
            let first = candles.ts[w.train.start];
            [
                (first, candles.ts[w.train.end - 1]),
                (first, candles.ts[w.test.end - 1]),
            ]
        })
        .chain([(candles.ts[0], candles.ts[candles.len() - 1])]) // the teeth run
        .collect();
    let seen = factory.seen.lock().unwrap();
    assert!(seen.is_subset(&allowed), "{seen:?}");
    assert_eq!(seen.len(), allowed.len());
}

/// Hourly bars in alternating runs of `run` bars, up then down by 1 % a bar.
fn zigzag(runs: usize, run: usize) -> Candles {
    let mut c = Candles::new();
    let mut price = 100.0;
    for i in 0..runs * run {
        let up = (i / run).is_multiple_of(2);
        let next = if up { price * 1.01 } else { price / 1.01 };
        let (hi, lo) = if up { (next, price) } else { (price, next) };
        c.push(i as i64 * HOUR, price, hi, lo, next, 1.0);
        price = next;
    }
    c.validate().unwrap();
    c
}

#[test]
fn params_are_chosen_on_the_train_bars_alone() {
    // Each train window is one run, its test window the opposite run: a
    // choice that looked at the test bars would take the other side.
    let run = 50;
    let candles = zigzag(8, run);
    let factory = TestFactory::new(Kind::Side);
    let out = walk(
        &factory,
        &candles,
        &rolling(run, run),
        serde_json::json!({"side": [0, 1]}),
        &by_return(),
    );
    assert_eq!(out.windows.len(), 7);
    for (k, w) in out.windows.iter().enumerate() {
        let chosen = w.chosen.as_ref().unwrap();
        let side = if k.is_multiple_of(2) { 0 } else { 1 }; // long after an up run
        assert_eq!(chosen.params, [("side".to_string(), ParamValue::Int(side))]);
        assert!(chosen.score > 0.0);
        assert!(chosen.out_of_sample.get(1).unwrap() < 0.0, "{k}");
    }
    assert!(out.stitched.total_return_pct < -50.0);
    assert!(out.efficiency.unwrap() < 0.0);
}

#[test]
fn the_stitched_account_trades_each_window_as_its_own_run_does() {
    let candles = crate::candles::synth(3_000, 11, HOUR, 1_704_067_200, 100.0);
    let factory = ReferenceFactory::new("ema-crossover").unwrap();
    let spec = rolling(1_000, 400);
    let objective = Objective::new("sharpe", Direction::Maximize, 1).unwrap();
    let space = serde_json::json!({"fast_period": [5, 10, 20], "slow_period": [30, 60]});
    let out = walk(&factory, &candles, &spec, space.clone(), &objective);
    assert_eq!(out.windows.len(), 5);
    assert_eq!(out.stitched.bars, 2_000);
    assert_eq!(out.stitched.start_ts, candles.ts[1_000]);
    assert_eq!(out.stitched.initial_capital, 10_000.0);
    // Each window's entries in the one account are its own run's entries
    // (the same warm-up, the same params); only the sizes differ, from
    // the equity carried over.
    for w in &out.windows {
        let chosen = w.chosen.as_ref().unwrap();
        let k = w.index;
        let windows = spec.windows(candles.len(), HOUR).unwrap();
        let test = slice(&candles, windows[k].test.clone());
        let segment = Segment::new(
            &candles,
            &windows[k],
            windows[k].test.start,
            Some(Params(chosen.params.clone())),
        );
        let mut alone = Stitched::new(&factory, vec![segment]);
        let report = crate::run_backtest(&test, &mut alone, &BacktestConfig::default()).unwrap();
        assert_eq!(Summary::of(&report), chosen.out_of_sample);
        let mut own: Vec<i64> = report.trades.iter().map(|t| t.entry_ts).collect();
        own.extend(report.open_position.iter().map(|p| p.entry_ts));
        let (from, to) = (w.test.start_ts, w.test.end_ts);
        let stitched: Vec<i64> = out
            .stitched
            .trades
            .iter()
            .map(|t| t.entry_ts)
            .chain(out.stitched.open_position.iter().map(|p| p.entry_ts))
            .filter(|ts| (from..=to).contains(ts))
            .collect();
        assert_eq!(stitched, own, "window {k}");
    }
    // Positions do not cross a window's end: closed at the next open.
    let starts: Vec<i64> = out.windows.iter().map(|w| w.test.start_ts).collect();
    for t in &out.stitched.trades {
        let window = starts.iter().rposition(|&s| s <= t.entry_ts).unwrap();
        if let Some(&next) = starts.get(window + 1) {
            assert!(t.exit_ts <= next, "{t:?}");
        }
    }
    // Deterministic, byte for byte.
    let again = walk(&factory, &candles, &spec, space, &objective);
    assert_eq!(
        serde_json::to_string(&out).unwrap(),
        serde_json::to_string(&again).unwrap()
    );
}

#[test]
fn a_window_without_a_ranked_row_stays_flat() {
    let candles = crate::candles::synth(900, 2, HOUR, 1_704_067_200, 100.0);
    let factory = ReferenceFactory::new("ema-crossover").unwrap();
    // No run makes 10,000 trades: nothing is ranked anywhere.
    let objective = Objective::new("sharpe", Direction::Maximize, 10_000).unwrap();
    let out = walk(
        &factory,
        &candles,
        &rolling(300, 300),
        serde_json::json!({"fast_period": [5, 10]}),
        &objective,
    );
    assert!(out
        .windows
        .iter()
        .all(|w| w.chosen.is_none() && w.ranked == 0));
    assert_eq!(out.stitched.num_trades, 0);
    assert_eq!(out.stitched.final_equity, 10_000.0);
    assert_eq!(out.efficiency, None);
}
