//! Parameter optimization: a search space from a strategy's own param
//! schema, grid or seeded random sampling, an optional constraint between
//! params, an objective over a report metric, an optional out-of-sample
//! hold-out, and a ranked table. Runs many param sets against one strategy
//! factory and one loaded candle range.
//!
//! The core (`space`, `constraint`, `objective`, `holdout`, `rank`, `run`)
//! knows only the engine; `factory` adapts the native references to
//! [`StrategyFactory`] (the sandbox crate adapts components).

pub mod constraint;
mod error;
pub mod factory;
pub mod holdout;
pub mod objective;
pub mod rank;
pub mod run;
pub mod space;

pub use constraint::Constraint;
pub use error::OptimizeError;
pub use factory::ReferenceFactory;
pub use holdout::{Holdout, Split};
pub use objective::{Direction, Objective, Summary, METRICS};
pub use rank::{rank, Ranked, Row, Table};
pub use run::{evaluate, evaluate_one, full_report, StrategyFactory};
pub use space::{Combination, DimensionSpec, Method, Space, DEFAULT_MAX_COMBINATIONS};

use std::collections::BTreeMap;

use crate::{ParamInput, ParamSpec};

/// Everything a submission or the CLI checks before any run: the space
/// against `schema`, the constraint, the method and the limit. Returns
/// the combinations to run.
pub fn combinations(
    schema: &[ParamSpec],
    params: &BTreeMap<String, ParamInput>,
    dims: &BTreeMap<String, DimensionSpec>,
    method: Method,
    constraint: Option<&str>,
    max_combinations: usize,
) -> Result<Vec<Combination>, OptimizeError> {
    let space = Space::new(schema, params, dims, max_combinations)?;
    let constraint = constraint
        .filter(|c| !c.trim().is_empty())
        .map(|c| Constraint::parse(c, schema))
        .transpose()?;
    space.combinations(method, constraint.as_ref(), max_combinations)
}
