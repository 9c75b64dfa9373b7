//! The search space: per param a list of values or a `min/max/step` range,
//! checked against the strategy's own schema, expanded as a grid or
//! sampled with a seed.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::constraint::Constraint;
use super::error::OptimizeError;
use crate::rng::SplitMix64;
use crate::{ParamInput, ParamSpec, ParamType, ParamValue, Params};

/// Combinations allowed by default (the API's and the CLI's limit).
pub const DEFAULT_MAX_COMBINATIONS: usize = 20_000;

/// Grid points a random sample may be drawn from (they are enumerated to
/// draw without replacement).
pub const MAX_RANDOM_POOL: u64 = 2_000_000;

/// One searched param, as a client writes it: a list of values, or
/// `{"min", "max", "step"}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum DimensionSpec {
    /// Every value to try, e.g. `[true, false]` or `[5, 10, 20]`.
    Values(Vec<serde_json::Value>),
    /// `min`, `min + step`, ... up to `max` (inclusive when it falls on a
    /// step). `step` defaults to the schema's own step.
    Range {
        min: f64,
        max: f64,
        #[serde(skip_serializing_if = "Option::is_none")]
        step: Option<f64>,
    },
}

impl DimensionSpec {
    /// Reads one dimension; errors name `field` (`search_space.<param>`).
    pub fn from_json(value: &serde_json::Value, field: &str) -> Result<Self, OptimizeError> {
        match value {
            serde_json::Value::Array(values) => Ok(DimensionSpec::Values(values.clone())),
            serde_json::Value::Object(map) => {
                if let Some(other) = map
                    .keys()
                    .find(|k| !["min", "max", "step"].contains(&k.as_str()))
                {
                    return Err(OptimizeError::new(
                        format!("{field}.{other}"),
                        "unknown key; a range has min, max and step",
                    ));
                }
                let number = |key: &str| -> Result<Option<f64>, OptimizeError> {
                    match map.get(key) {
                        None | Some(serde_json::Value::Null) => Ok(None),
                        Some(v) => v.as_f64().map(Some).ok_or_else(|| {
                            OptimizeError::new(
                                format!("{field}.{key}"),
                                format!("must be a number, got {v}"),
                            )
                        }),
                    }
                };
                let required = |key: &str| {
                    number(key)?
                        .ok_or_else(|| OptimizeError::new(format!("{field}.{key}"), "is required"))
                };
                Ok(DimensionSpec::Range {
                    min: required("min")?,
                    max: required("max")?,
                    step: number("step")?,
                })
            }
            other => Err(OptimizeError::new(
                field,
                format!("must be a list of values or {{\"min\", \"max\", \"step\"}}, got {other}"),
            )),
        }
    }
}

impl<'de> Deserialize<'de> for DimensionSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        DimensionSpec::from_json(&value, "search_space").map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Every combination, in order (the last param varies fastest).
    Grid,
    /// `samples` distinct grid points drawn with a seeded generator.
    Random { samples: usize, seed: u64 },
}

/// One param set to run: its place in the generated order and the full,
/// validated params (fixed ones and defaults included).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Combination {
    pub index: usize,
    pub params: Params,
}

/// A checked search space.
#[derive(Debug, Clone, PartialEq)]
pub struct Space {
    /// Fixed params and defaults; searched params are overwritten.
    base: Params,
    /// (position in `base`, values), in schema order.
    axes: Vec<(usize, Vec<ParamValue>)>,
}

impl Space {
    /// Checks `dims` and the fixed `params` against `schema`. Errors name
    /// `search_space.<param>[.min|.max|.step|.values]` or `params.<param>`.
    pub fn new(
        schema: &[ParamSpec],
        params: &BTreeMap<String, ParamInput>,
        dims: &BTreeMap<String, DimensionSpec>,
        max_combinations: usize,
    ) -> Result<Space, OptimizeError> {
        let known = || {
            let names: Vec<&str> = schema.iter().map(|s| s.name.as_str()).collect();
            if names.is_empty() {
                "no params".to_string()
            } else {
                names.join(", ")
            }
        };
        if dims.is_empty() {
            return Err(OptimizeError::new(
                "search_space",
                format!(
                    "name at least one param to search; this strategy takes: {}",
                    known()
                ),
            ));
        }
        let base = Params::validate(schema, params)
            .map_err(|e| OptimizeError::new(format!("params.{}", e.field()), e.to_string()))?;
        let mut axes = Vec::new();
        for (position, spec) in schema.iter().enumerate() {
            let Some(dim) = dims.get(&spec.name) else {
                continue;
            };
            let field = format!("search_space.{}", spec.name);
            if params.contains_key(&spec.name) {
                return Err(OptimizeError::new(
                    field,
                    "is also given as a fixed param; give it in one place",
                ));
            }
            let values = match dim {
                DimensionSpec::Values(values) => expand_values(schema, spec, values, &field)?,
                DimensionSpec::Range { min, max, step } => {
                    expand_range(spec, *min, *max, *step, max_combinations, &field)?
                }
            };
            axes.push((position, values));
        }
        if let Some(name) = dims.keys().find(|n| !schema.iter().any(|s| &s.name == *n)) {
            return Err(OptimizeError::new(
                format!("search_space.{name}"),
                format!("unknown param `{name}`; this strategy takes: {}", known()),
            ));
        }
        Ok(Space { base, axes })
    }

    /// Grid points before any constraint (saturating).
    pub fn size(&self) -> u64 {
        self.axes
            .iter()
            .fold(1u64, |n, (_, v)| n.saturating_mul(v.len() as u64))
    }

    /// The searched param names, in schema order.
    pub fn names(&self) -> Vec<String> {
        self.axes
            .iter()
            .map(|(p, _)| self.base.0[*p].0.clone())
            .collect()
    }

    /// The params at grid point `n` (mixed radix, last axis fastest).
    fn point(&self, mut n: u64) -> Params {
        let mut params = self.base.clone();
        for (position, values) in self.axes.iter().rev() {
            let len = values.len() as u64;
            params.0[*position].1 = values[(n % len) as usize];
            n /= len;
        }
        params
    }

    /// The searched axes: (position in the params, values), in schema
    /// order.
    pub(super) fn axes(&self) -> &[(usize, Vec<ParamValue>)] {
        &self.axes
    }

    /// The params with axis `a` at its value `indices[a]`.
    pub(super) fn params_at(&self, indices: impl IntoIterator<Item = usize>) -> Params {
        let mut params = self.base.clone();
        for ((position, values), i) in self.axes.iter().zip(indices) {
            params.0[*position].1 = values[i];
        }
        params
    }

    /// The param sets to run, numbered from 0 in the order generated. At
    /// most `max_combinations`; none that fails `constraint`.
    pub fn combinations(
        &self,
        method: Method,
        constraint: Option<&Constraint>,
        max_combinations: usize,
    ) -> Result<Vec<Combination>, OptimizeError> {
        let size = self.size();
        let keep = |params: &Params| constraint.is_none_or(|c| c.holds(params));
        let chosen: Vec<Params> = match method {
            Method::Grid => {
                if size > max_combinations as u64 {
                    return Err(OptimizeError::new(
                        "search_space",
                        format!(
                            "the grid has {size} combinations, more than the limit of \
                             {max_combinations}; narrow a range, raise a step, or use \
                             method random with a number of samples"
                        ),
                    ));
                }
                (0..size).map(|n| self.point(n)).filter(keep).collect()
            }
            Method::Random { samples, seed } => {
                if samples == 0 {
                    return Err(OptimizeError::new("samples", "must be at least 1"));
                }
                if samples > max_combinations {
                    return Err(OptimizeError::new(
                        "samples",
                        format!("{samples} is more than the limit of {max_combinations}"),
                    ));
                }
                if size > MAX_RANDOM_POOL {
                    return Err(OptimizeError::new(
                        "search_space",
                        format!(
                            "the grid has {size} points, more than the {MAX_RANDOM_POOL} \
                             random sampling draws from; narrow a range or raise a step"
                        ),
                    ));
                }
                let mut pool: Vec<u64> = (0..size).filter(|&n| keep(&self.point(n))).collect();
                // Partial Fisher-Yates: the first `take` entries are a
                // uniform sample without replacement, in draw order.
                let take = samples.min(pool.len());
                let mut rng = SplitMix64::new(seed);
                for i in 0..take {
                    let j = i + rng.below((pool.len() - i) as u64) as usize;
                    pool.swap(i, j);
                }
                pool.truncate(take);
                pool.into_iter().map(|n| self.point(n)).collect()
            }
        };
        if chosen.is_empty() {
            return Err(OptimizeError::new(
                "constraint",
                "no combination of the search space satisfies it",
            ));
        }
        Ok(chosen
            .into_iter()
            .enumerate()
            .map(|(index, params)| Combination { index, params })
            .collect())
    }
}

fn expand_values(
    schema: &[ParamSpec],
    spec: &ParamSpec,
    values: &[serde_json::Value],
    field: &str,
) -> Result<Vec<ParamValue>, OptimizeError> {
    if values.is_empty() {
        return Err(OptimizeError::new(field, "give at least one value"));
    }
    let mut out: Vec<ParamValue> = Vec::with_capacity(values.len());
    for value in values {
        let input = BTreeMap::from([(spec.name.clone(), ParamInput::Json(value.clone()))]);
        let params = Params::validate(schema, &input)
            .map_err(|e| OptimizeError::new(field, e.to_string()))?;
        let value = params
            .get(&spec.name)
            .ok_or_else(|| OptimizeError::new(field, "value lost in validation"))?;
        if out.contains(&value) {
            return Err(OptimizeError::new(
                field,
                format!("value {value} is repeated"),
            ));
        }
        out.push(value);
    }
    Ok(out)
}

fn expand_range(
    spec: &ParamSpec,
    min: f64,
    max: f64,
    step: Option<f64>,
    max_combinations: usize,
    field: &str,
) -> Result<Vec<ParamValue>, OptimizeError> {
    let at = |part: &str| format!("{field}.{part}");
    if spec.kind == ParamType::Bool {
        return Err(OptimizeError::new(
            field,
            "is a bool param: give a list of values, e.g. [true, false]",
        ));
    }
    let step = step.or(spec.step).ok_or_else(|| {
        OptimizeError::new(at("step"), "is required (the schema declares no step)")
    })?;
    if !(step.is_finite() && step > 0.0) {
        return Err(OptimizeError::new(
            at("step"),
            format!("must be above 0, got {step}"),
        ));
    }
    for (part, v) in [("min", min), ("max", max)] {
        if !v.is_finite() {
            return Err(OptimizeError::new(
                at(part),
                format!("must be a number, got {v}"),
            ));
        }
    }
    if min > max {
        return Err(OptimizeError::new(
            at("min"),
            format!("{min} is above max {max}"),
        ));
    }
    if let Some(lo) = spec.min.filter(|lo| min < *lo) {
        return Err(OptimizeError::new(
            at("min"),
            format!(
                "{min} is below the schema's minimum {lo} for `{}`",
                spec.name
            ),
        ));
    }
    if let Some(hi) = spec.max.filter(|hi| max > *hi) {
        return Err(OptimizeError::new(
            at("max"),
            format!(
                "{max} is above the schema's maximum {hi} for `{}`",
                spec.name
            ),
        ));
    }
    if spec.kind == ParamType::Int {
        for (part, v) in [("min", min), ("max", max), ("step", step)] {
            if v.fract() != 0.0 || v.abs() > 9.0e15 {
                return Err(OptimizeError::new(
                    at(part),
                    format!("`{}` is an int param, got {v}", spec.name),
                ));
            }
        }
    }
    // A tolerance of a millionth of a step keeps `max` when float steps
    // land a rounding error short of it.
    let steps = ((max - min) / step + 1e-6).floor();
    if steps + 1.0 > max_combinations as f64 {
        return Err(OptimizeError::new(
            field,
            format!(
                "the range has {} values, more than the limit of {max_combinations} combinations",
                steps + 1.0
            ),
        ));
    }
    let count = steps as usize + 1;
    Ok((0..count)
        .map(|k| match spec.kind {
            ParamType::Int => ParamValue::Int(min as i64 + k as i64 * step as i64),
            _ => ParamValue::Float(tidy(min + k as f64 * step).min(max)),
        })
        .collect())
}

/// `0.1 + 2 * 0.1` is 0.30000000000000004; what a user means (and what
/// the table shows) is 0.3. Twelve significant digits are plenty for a
/// param.
fn tidy(v: f64) -> f64 {
    format!("{v:.12e}").parse().unwrap_or(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ParamValue::{Bool, Float, Int};

    pub(crate) fn schema() -> Vec<ParamSpec> {
        let spec = |name: &str, kind, default, min, max, step| ParamSpec {
            name: name.into(),
            kind,
            default,
            min,
            max,
            step,
            help: String::new(),
        };
        vec![
            spec(
                "fast_period",
                ParamType::Int,
                Int(12),
                Some(1.0),
                Some(1000.0),
                Some(1.0),
            ),
            spec(
                "slow_period",
                ParamType::Int,
                Int(26),
                Some(1.0),
                Some(5000.0),
                Some(1.0),
            ),
            spec(
                "allow_short",
                ParamType::Bool,
                Bool(false),
                None,
                None,
                None,
            ),
            spec(
                "threshold",
                ParamType::Float,
                Float(0.5),
                Some(0.0),
                Some(1.0),
                None,
            ),
        ]
    }

    fn dims(json: serde_json::Value) -> BTreeMap<String, DimensionSpec> {
        serde_json::from_value(json).unwrap()
    }

    fn space(json: serde_json::Value) -> Result<Space, OptimizeError> {
        Space::new(&schema(), &BTreeMap::new(), &dims(json), 1000)
    }

    fn grid(space: &Space) -> Vec<Vec<ParamValue>> {
        space
            .combinations(Method::Grid, None, 1000)
            .unwrap()
            .into_iter()
            .map(|c| c.params.0.into_iter().map(|(_, v)| v).collect())
            .collect()
    }

    #[test]
    fn grid_is_every_combination_last_param_fastest() {
        let s = space(serde_json::json!({
            "fast_period": {"min": 5, "max": 10, "step": 5},
            "allow_short": [true, false],
        }))
        .unwrap();
        assert_eq!(s.size(), 4);
        assert_eq!(s.names(), ["fast_period", "allow_short"]);
        assert_eq!(
            grid(&s),
            vec![
                vec![Int(5), Int(26), Bool(true), Float(0.5)],
                vec![Int(5), Int(26), Bool(false), Float(0.5)],
                vec![Int(10), Int(26), Bool(true), Float(0.5)],
                vec![Int(10), Int(26), Bool(false), Float(0.5)],
            ]
        );
    }

    #[test]
    fn ranges_include_max_on_a_step_and_tidy_floats() {
        let s =
            space(serde_json::json!({"threshold": {"min": 0.1, "max": 0.3, "step": 0.1}})).unwrap();
        let values: Vec<ParamValue> = grid(&s).into_iter().map(|p| p[3]).collect();
        assert_eq!(values, [Float(0.1), Float(0.2), Float(0.3)]);
        // 7 is not on a step from 1 by 3: 1, 4 only... and 7 is.
        let s = space(serde_json::json!({"fast_period": {"min": 1, "max": 8, "step": 3}})).unwrap();
        assert_eq!(s.size(), 3); // 1, 4, 7
                                 // The schema's step is the default.
        let s = space(serde_json::json!({"slow_period": {"min": 10, "max": 14}})).unwrap();
        assert_eq!(s.size(), 5);
    }

    #[test]
    fn fixed_params_and_defaults_fill_the_rest() {
        let fixed = BTreeMap::from([("slow_period".to_string(), ParamInput::Json(40.into()))]);
        let s = Space::new(
            &schema(),
            &fixed,
            &dims(serde_json::json!({"fast_period": [3]})),
            10,
        )
        .unwrap();
        assert_eq!(
            grid(&s),
            vec![vec![Int(3), Int(40), Bool(false), Float(0.5)]]
        );
    }

    #[test]
    fn every_bad_input_names_its_field() {
        let cases = [
            (serde_json::json!({"nope": [1]}), "search_space.nope"),
            (serde_json::json!({}), "search_space"),
            (
                serde_json::json!({"fast_period": {"min": 0, "max": 5, "step": 1}}),
                "search_space.fast_period.min",
            ),
            (
                serde_json::json!({"fast_period": {"min": 1, "max": 1001, "step": 1}}),
                "search_space.fast_period.max",
            ),
            (
                serde_json::json!({"fast_period": {"min": 1, "max": 5, "step": 0}}),
                "search_space.fast_period.step",
            ),
            (
                serde_json::json!({"fast_period": {"min": 1, "max": 5, "step": -1}}),
                "search_space.fast_period.step",
            ),
            (
                serde_json::json!({"fast_period": {"min": 1, "max": 5, "step": 1.5}}),
                "search_space.fast_period.step",
            ),
            (
                serde_json::json!({"fast_period": {"min": 5, "max": 1, "step": 1}}),
                "search_space.fast_period.min",
            ),
            (
                serde_json::json!({"threshold": {"min": 0, "max": 1}}),
                "search_space.threshold.step",
            ),
            (
                serde_json::json!({"allow_short": {"min": 0, "max": 1, "step": 1}}),
                "search_space.allow_short",
            ),
            (
                serde_json::json!({"fast_period": [2000]}),
                "search_space.fast_period",
            ),
            (
                serde_json::json!({"fast_period": [1.5]}),
                "search_space.fast_period",
            ),
            (
                serde_json::json!({"fast_period": [2, 2]}),
                "search_space.fast_period",
            ),
            (
                serde_json::json!({"fast_period": []}),
                "search_space.fast_period",
            ),
            (
                serde_json::json!({"slow_period": {"min": 1, "max": 5000, "step": 1}}),
                "search_space.slow_period",
            ),
        ];
        for (json, field) in cases {
            let err = space(json.clone()).unwrap_err();
            assert_eq!(err.field, field, "{json}: {err}");
        }
        let fixed = BTreeMap::from([("fast_period".to_string(), ParamInput::Json(3.into()))]);
        let err = Space::new(
            &schema(),
            &fixed,
            &dims(serde_json::json!({"fast_period": [2]})),
            10,
        )
        .unwrap_err();
        assert_eq!(err.field, "search_space.fast_period");
        let fixed = BTreeMap::from([("bogus".to_string(), ParamInput::Json(3.into()))]);
        let err = Space::new(
            &schema(),
            &fixed,
            &dims(serde_json::json!({"fast_period": [2]})),
            10,
        )
        .unwrap_err();
        assert_eq!(err.field, "params.bogus");
    }

    #[test]
    fn too_many_combinations_is_an_error_naming_the_limit() {
        let s = Space::new(
            &schema(),
            &BTreeMap::new(),
            &dims(serde_json::json!({
                "fast_period": {"min": 1, "max": 10, "step": 1},
                "slow_period": {"min": 1, "max": 10, "step": 1},
            })),
            99,
        )
        .unwrap();
        let err = s.combinations(Method::Grid, None, 99).unwrap_err();
        assert_eq!(err.field, "search_space");
        assert!(err
            .message
            .contains("100 combinations, more than the limit of 99"));
        assert_eq!(s.combinations(Method::Grid, None, 100).unwrap().len(), 100);
    }

    #[test]
    fn constraint_drops_combinations_and_renumbers() {
        let s = space(serde_json::json!({
            "fast_period": {"min": 1, "max": 3, "step": 1},
            "slow_period": {"min": 1, "max": 3, "step": 1},
        }))
        .unwrap();
        let c = Constraint::parse("fast_period < slow_period", &schema()).unwrap();
        let combos = s.combinations(Method::Grid, Some(&c), 100).unwrap();
        let pairs: Vec<(usize, ParamValue, ParamValue)> = combos
            .iter()
            .map(|c| (c.index, c.params.0[0].1, c.params.0[1].1))
            .collect();
        assert_eq!(
            pairs,
            [
                (0, Int(1), Int(2)),
                (1, Int(1), Int(3)),
                (2, Int(2), Int(3))
            ]
        );
        let never = Constraint::parse("fast_period > 5", &schema()).unwrap();
        assert_eq!(
            s.combinations(Method::Grid, Some(&never), 100)
                .unwrap_err()
                .field,
            "constraint"
        );
    }

    #[test]
    fn random_is_distinct_seeded_and_within_the_space() {
        let s = space(serde_json::json!({
            "fast_period": {"min": 1, "max": 10, "step": 1},
            "slow_period": {"min": 1, "max": 10, "step": 1},
        }))
        .unwrap();
        let draw = |seed| {
            s.combinations(Method::Random { samples: 20, seed }, None, 1000)
                .unwrap()
                .into_iter()
                .map(|c| (c.params.0[0].1, c.params.0[1].1))
                .collect::<Vec<_>>()
        };
        let a = draw(7);
        assert_eq!(a.len(), 20);
        assert_eq!(a, draw(7));
        assert_ne!(a, draw(8));
        let distinct: std::collections::BTreeSet<String> =
            a.iter().map(|p| format!("{p:?}")).collect();
        assert_eq!(distinct.len(), 20);
        // Asking for more than there is gives all of it, shuffled.
        let all = s
            .combinations(
                Method::Random {
                    samples: 500,
                    seed: 1,
                },
                None,
                1000,
            )
            .unwrap();
        assert_eq!(all.len(), 100);
        let err = s
            .combinations(
                Method::Random {
                    samples: 0,
                    seed: 1,
                },
                None,
                1000,
            )
            .unwrap_err();
        assert_eq!(err.field, "samples");
    }
}
