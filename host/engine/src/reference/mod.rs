//! Native reference strategies: plain Rust implementations of the engine's
//! [`crate::Strategy`], used to check the sandbox bit for bit and
//! as the native side of benchmarks.

mod ema_crossover;
mod momentum_rotation;

pub use ema_crossover::EmaCrossover;
pub use momentum_rotation::MomentumRotation;

use crate::{Column, Description, ParamSpec, ParamType, ParamValue, Params, Strategy};

/// The parameter schema of a reference strategy (the same as its plugin's).
pub fn schema(name: &str) -> Option<Description> {
    let spec = |name: &str, kind, default, min: Option<f64>, max: Option<f64>| ParamSpec {
        name: name.into(),
        kind,
        default,
        min,
        max,
        step: min.map(|_| 1.0),
        help: String::new(),
    };
    match name {
        "ema-crossover" => Some(Description {
            name: "EMA Crossover".into(),
            version: "reference".into(),
            summary: "native reference of the ema-crossover plugin".into(),
            params: vec![
                spec(
                    "fast_period",
                    ParamType::Int,
                    ParamValue::Int(12),
                    Some(1.0),
                    Some(1000.0),
                ),
                spec(
                    "slow_period",
                    ParamType::Int,
                    ParamValue::Int(26),
                    Some(1.0),
                    Some(5000.0),
                ),
                spec(
                    "allow_short",
                    ParamType::Bool,
                    ParamValue::Bool(false),
                    None,
                    None,
                ),
            ],
            columns: vec![Column::Close],
        }),
        _ => None,
    }
}

/// A reference strategy with validated params.
pub fn build(name: &str, params: &Params) -> Option<Box<dyn Strategy>> {
    match name {
        "ema-crossover" => {
            let int = |n| match params.get(n) {
                Some(ParamValue::Int(v)) => v.clamp(1, u32::MAX as i64) as u32,
                _ => 1,
            };
            let allow_short = matches!(params.get("allow_short"), Some(ParamValue::Bool(true)));
            Some(Box::new(EmaCrossover::new(
                int("fast_period"),
                int("slow_period"),
                allow_short,
            )))
        }
        _ => None,
    }
}
