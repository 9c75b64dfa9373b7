//! Parameter optimization: a search space from a strategy's own param
//! schema, grid or seeded random sampling or a Bayesian search, an
//! optional constraint between params, an objective over a report metric,
//! an optional out-of-sample hold-out, and a ranked table. Runs many param
//! sets against one strategy factory and one loaded candle range.
//!
//! The core (`space`, `constraint`, `objective`, `holdout`, `rank`, `run`,
//! `bayes`, `walkforward`) knows only the engine; `factory` adapts the native references to
//! [`StrategyFactory`] (the sandbox crate adapts components).

pub mod bayes;
pub mod constraint;
mod error;
pub mod factory;
pub mod holdout;
pub mod objective;
pub mod rank;
pub mod run;
pub mod space;
pub mod walkforward;

pub use bayes::{Bayes, Sampler, Trial};
pub use constraint::Constraint;
pub use error::OptimizeError;
pub use factory::ReferenceFactory;
pub use holdout::{Holdout, Split};
pub use objective::{Direction, Objective, Summary, METRICS};
pub use rank::{rank, Ranked, Row, Table};
pub use run::{
    evaluate, evaluate_data, evaluate_one, full_report, full_report_of, Data, StrategyFactory,
};
pub use space::{Combination, DimensionSpec, Method, Space, DEFAULT_MAX_COMBINATIONS};
pub use walkforward::{WalkForward, WalkForwardReport, Window};

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
    let (space, constraint) = checked_space(schema, params, dims, constraint, max_combinations)?;
    space.combinations(method, constraint.as_ref(), max_combinations)
}

/// The space and the constraint checked against `schema`, as
/// [`combinations`] checks them (a Bayesian search starts from them).
pub fn checked_space(
    schema: &[ParamSpec],
    params: &BTreeMap<String, ParamInput>,
    dims: &BTreeMap<String, DimensionSpec>,
    constraint: Option<&str>,
    max_combinations: usize,
) -> Result<(Space, Option<Constraint>), OptimizeError> {
    let space = Space::new(schema, params, dims, max_combinations)?;
    let constraint = constraint
        .filter(|c| !c.trim().is_empty())
        .map(|c| Constraint::parse(c, schema))
        .transpose()?;
    Ok((space, constraint))
}
