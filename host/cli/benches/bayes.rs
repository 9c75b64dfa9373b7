//! The Bayesian search's own cost: the time `Sampler::propose` takes per
//! trial over a 500-trial search, on objectives that cost nothing (so
//! only the sampler is timed), in a 2-D float space (Branin) and a 4-D
//! mixed one (two floats, an int, a bool) with a constraint.
//!
//! ```text
//! cargo bench -p stratbox --bench bayes [-- --trials 500 --batch 8 --reps 5]
//! ```
//!
//! Without `--bench` (as `cargo test -p stratbox --benches` runs it) it
//! runs one short search of each space as a check, and measures nothing.

use clap::Parser;
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use stratbox_engine::optimize::bayes::{DEFAULT_BATCH, DEFAULT_STARTUP};
use stratbox_engine::optimize::{
    Bayes, Constraint, DimensionSpec, Direction, Objective, Sampler, Space, Trial,
};
use stratbox_engine::{ParamSpec, ParamType, ParamValue, Params};

#[derive(Debug, Parser)]
#[command(name = "bayes")]
struct BayesBenchArgs {
    /// Trials of each search.
    #[arg(long, default_value_t = 500)]
    trials: usize,
    /// Trials proposed per round.
    #[arg(long, default_value_t = DEFAULT_BATCH)]
    batch: usize,
    /// Searches of each space (the median is reported).
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Passed by `cargo bench`: measure.
    #[arg(long)]
    bench: bool,
}

fn main() -> ExitCode {
    let args = BayesBenchArgs::parse();
    if !args.bench {
        for case in cases() {
            let (_, trials) = search(&case, 40, DEFAULT_BATCH, 1);
            assert_eq!(trials, 40, "{}", case.name);
        }
        println!("bayes bench: checks passed (add --bench to measure)");
        return ExitCode::SUCCESS;
    }
    println!(
        "sampler time per trial, {} trials in batches of {}, median of {} seeds:",
        args.trials, args.batch, args.reps
    );
    for case in cases() {
        let mut per_trial: Vec<f64> = Vec::new();
        let mut last_round: Vec<f64> = Vec::new();
        for seed in 0..args.reps as u64 {
            let (rounds, trials) = search(&case, args.trials, args.batch, seed);
            let total: Duration = rounds.iter().map(|(d, _)| *d).sum();
            per_trial.push(total.as_secs_f64() * 1e3 / trials as f64);
            if let Some((d, n)) = rounds.last() {
                last_round.push(d.as_secs_f64() * 1e3 / *n as f64);
            }
        }
        println!(
            "  {:<34} {:.3} ms/trial (last round {:.3} ms/trial)",
            case.name,
            median(&mut per_trial),
            median(&mut last_round)
        );
    }
    ExitCode::SUCCESS
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

struct Case {
    name: &'static str,
    space: Space,
    constraint: Option<Constraint>,
    f: fn(&Params) -> f64,
}

fn spec(name: &str, kind: ParamType, min: f64, max: f64) -> ParamSpec {
    ParamSpec {
        name: name.into(),
        kind,
        default: match kind {
            ParamType::Int => ParamValue::Int(min as i64),
            ParamType::Float => ParamValue::Float(min),
            ParamType::Bool => ParamValue::Bool(false),
        },
        min: Some(min),
        max: Some(max),
        step: None,
        help: String::new(),
    }
}

fn num(p: &Params, name: &str) -> f64 {
    match p.get(name) {
        Some(ParamValue::Int(i)) => i as f64,
        Some(ParamValue::Float(f)) => f,
        Some(ParamValue::Bool(b)) => f64::from(u8::from(b)),
        None => f64::NAN,
    }
}

fn cases() -> Vec<Case> {
    let space = |schema: &[ParamSpec], dims: serde_json::Value| {
        let dims: BTreeMap<String, DimensionSpec> =
            serde_json::from_value(dims).expect("a valid space");
        Space::new(schema, &BTreeMap::new(), &dims, 1_000_000).expect("a valid space")
    };
    let branin = [
        spec("x1", ParamType::Float, -5.0, 10.0),
        spec("x2", ParamType::Float, 0.0, 15.0),
    ];
    let mixed = [
        spec("a", ParamType::Float, 0.0, 1.0),
        spec("b", ParamType::Float, 0.0, 1.0),
        spec("n", ParamType::Int, 1.0, 200.0),
        spec("flag", ParamType::Bool, 0.0, 1.0),
    ];
    vec![
        Case {
            name: "branin, 2 floats (1501 x 1501)",
            space: space(
                &branin,
                serde_json::json!({"x1": {"min": -5, "max": 10, "step": 0.01},
                                   "x2": {"min": 0, "max": 15, "step": 0.01}}),
            ),
            constraint: None,
            f: |p| {
                let (x1, x2) = (num(p, "x1"), num(p, "x2"));
                let pi = std::f64::consts::PI;
                let q = x2 - 5.1 / (4.0 * pi * pi) * x1 * x1 + 5.0 / pi * x1 - 6.0;
                q * q + 10.0 * (1.0 - 1.0 / (8.0 * pi)) * x1.cos() + 10.0
            },
        },
        Case {
            name: "2 floats, int, bool, constraint",
            space: space(
                &mixed,
                serde_json::json!({"a": {"min": 0, "max": 1, "step": 0.001},
                                   "b": {"min": 0, "max": 1, "step": 0.001},
                                   "n": {"min": 1, "max": 200, "step": 1},
                                   "flag": [true, false]}),
            ),
            constraint: Some(Constraint::parse("a < b", &mixed).expect("a valid constraint")),
            f: |p| {
                let (a, b, n) = (num(p, "a"), num(p, "b"), num(p, "n"));
                (a - 0.3).powi(2)
                    + (b - 0.7).powi(2)
                    + ((n - 50.0) / 200.0).powi(2)
                    + num(p, "flag")
            },
        },
    ]
}

/// One search; the time of each round's proposal and its trials.
fn search(case: &Case, trials: usize, batch: usize, seed: u64) -> (Vec<(Duration, usize)>, usize) {
    let objective = Objective::new("sharpe", Direction::Minimize, 0).expect("a metric");
    let settings = Bayes::new(trials, batch, DEFAULT_STARTUP, seed, 1_000_000).expect("settings");
    let sampler = Sampler::new(&case.space, case.constraint.as_ref(), settings, &objective);
    let mut done: Vec<(Params, Option<f64>)> = Vec::new();
    let mut rounds = Vec::new();
    loop {
        let history: Vec<Trial<'_>> = done
            .iter()
            .map(|(p, s)| Trial {
                params: &p.0,
                score: *s,
            })
            .collect();
        let started = Instant::now();
        let proposed = sampler.propose(&history);
        let took = started.elapsed();
        if proposed.is_empty() {
            break;
        }
        rounds.push((took, proposed.len()));
        for c in proposed {
            let score = (case.f)(&c.params);
            done.push((c.params, Some(score)));
        }
    }
    (rounds, done.len())
}
