//! Bayesian search over a [`Space`]: a multivariate Tree-structured
//! Parzen Estimator (TPE; Bergstra et al. 2011, in the multivariate form
//! of Falkner et al. 2018 that Optuna also uses), proposing a batch at a
//! time with a constant liar, seeded.
//!
//! The sampler keeps no state between batches: [`Sampler::propose`]
//! derives the next batch from the seed and the trials so far (params and
//! scores, in trial order) alone. So the same seed and the same results
//! give the same trials, whether the rounds run in one process (`stratbox
//! optimize`) or as queue tasks, however often one is redelivered.
//!
//! The model works on the grid the space defines: a numeric axis (int or
//! float) as its values' ranks scaled to `[0, 1]`, a bool axis as
//! categories. The scored trials split into the best few ("good") and the
//! rest; each group is a mixture of one kernel per trial (a Gaussian
//! truncated to the unit cube on numeric axes, a smoothed category on
//! bool ones) and a broad prior. Candidates drawn from the good mixture
//! are scored by the log ratio of the good density to the rest's, and the
//! best one that is new and satisfies the constraint is taken. Failed
//! runs and runs without a score are always in the rest. Within a batch
//! each pick joins the rest as a "liar", which pushes the next picks away
//! from it. Every float operation is `libm`'s or IEEE-exact, so a seed
//! gives the same trials on every platform.

use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::BTreeSet;

use super::constraint::Constraint;
use super::error::OptimizeError;
use super::objective::Objective;
use super::rank::Row;
use super::space::{Combination, Space, MAX_RANDOM_POOL};
use crate::rng::{SplitMix64, Xoshiro256StarStar};
use crate::{ParamValue, Params};

/// Trials proposed per round by default: enough for every core of a
/// small machine or a few workers, few enough that the model learns
/// often. A constant rather than the core count, so that a seed gives the
/// same trials on any machine.
pub const DEFAULT_BATCH: usize = 8;

/// Random trials before the model takes over by default: enough points
/// to tell good from bad in a few dimensions (10 and 24 did no better on
/// the ema-crossover grids of the tests below).
pub const DEFAULT_STARTUP: usize = 16;

/// Share of the trials modelled as good, and its cap (the cap, Optuna's,
/// keeps the good set sharp as trials accumulate). 0.15 rather than
/// Optuna's 0.1: slightly better on Branin and the ema-crossover grids.
const GAMMA: f64 = 0.15;
const MAX_GOOD: usize = 25;
/// Candidates scored per pick (Optuna's default), and draws allowed to
/// find them (a draw already tried or against the constraint is skipped).
const CANDIDATES: usize = 24;
const DRAWS: usize = 8 * CANDIDATES;
/// Uniform draws before a random pick enumerates what is left.
const RANDOM_TRIES: usize = 1_000;
/// Spread assumed on an axis with fewer than two points, as a share of
/// the axis (Optuna's multivariate width at one point).
const SIGMA0: f64 = 0.2;
/// Scale of Scott's rule: kernels narrower than the rule's, which is for
/// one smooth mode. Anywhere in 0.4-0.7 found the ema-crossover grid's
/// best more often (in 146-149 of 160 searches, 20 seeds on 8 candle
/// sets, against 135-143 at 1-1.5) and Branin's as often.
const BANDWIDTH: f64 = 0.6;

/// What a Bayesian search runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bayes {
    /// Trials in all (fewer when the space runs out of new points).
    pub trials: usize,
    /// Trials proposed at once, evaluated together, then learnt from.
    pub batch: usize,
    /// Trials drawn at random before the model is used.
    pub startup: usize,
    pub seed: u64,
}

impl Bayes {
    /// Errors name `trials` or `batch`.
    pub fn new(
        trials: usize,
        batch: usize,
        startup: usize,
        seed: u64,
        max_combinations: usize,
    ) -> Result<Bayes, OptimizeError> {
        if trials == 0 {
            return Err(OptimizeError::new("trials", "must be at least 1"));
        }
        if trials > max_combinations {
            return Err(OptimizeError::new(
                "trials",
                format!("{trials} is more than the limit of {max_combinations}"),
            ));
        }
        if batch == 0 {
            return Err(OptimizeError::new("batch", "must be at least 1"));
        }
        Ok(Bayes {
            trials,
            batch,
            startup,
            seed,
        })
    }
}

/// One finished trial as the sampler sees it: its params (all of them,
/// in schema order, as in a [`Row`]) and its score (`None`: failed, or
/// not ranked).
#[derive(Debug, Clone, Copy)]
pub struct Trial<'a> {
    pub params: &'a [(String, ParamValue)],
    pub score: Option<f64>,
}

/// A grid point: the rank of its value on each axis.
type Point = Vec<usize>;

/// One searched axis.
struct Dim {
    numeric: bool,
    /// The axis's value index of each rank (numeric: ascending values).
    by_rank: Vec<usize>,
    /// The rank of each value index.
    rank: Vec<usize>,
    /// Numeric: the values in rank order, to find a value's rank.
    sorted: Vec<f64>,
    /// The axis's values.
    values: Vec<ParamValue>,
}

fn as_number(v: ParamValue) -> Option<f64> {
    match v {
        ParamValue::Int(i) => Some(i as f64),
        ParamValue::Float(f) => Some(f),
        ParamValue::Bool(_) => None,
    }
}

impl Dim {
    fn of(values: &[ParamValue]) -> Dim {
        let numeric = values.iter().all(|v| as_number(*v).is_some());
        let mut by_rank: Vec<usize> = (0..values.len()).collect();
        if numeric {
            by_rank.sort_by(|&a, &b| {
                let (x, y) = (as_number(values[a]), as_number(values[b]));
                x.unwrap_or(0.0).total_cmp(&y.unwrap_or(0.0))
            });
        }
        let mut rank = vec![0; values.len()];
        for (r, &i) in by_rank.iter().enumerate() {
            rank[i] = r;
        }
        let sorted = if numeric {
            by_rank
                .iter()
                .map(|&i| as_number(values[i]).unwrap_or(0.0))
                .collect()
        } else {
            Vec::new()
        };
        Dim {
            numeric,
            by_rank,
            rank,
            sorted,
            values: values.to_vec(),
        }
    }

    fn k(&self) -> usize {
        self.by_rank.len()
    }

    fn rank_of(&self, v: ParamValue) -> Option<usize> {
        if self.numeric {
            let x = as_number(v)?;
            self.sorted.binary_search_by(|s| s.total_cmp(&x)).ok()
        } else {
            self.values
                .iter()
                .position(|w| *w == v)
                .map(|i| self.rank[i])
        }
    }

    /// The centre of rank `r`'s cell on `[0, 1]`.
    fn unit(&self, r: usize) -> f64 {
        (r as f64 + 0.5) / self.k() as f64
    }
}

/// Proposes the trials of a Bayesian search; see the module's comment.
pub struct Sampler<'a> {
    space: &'a Space,
    constraint: Option<&'a Constraint>,
    settings: Bayes,
    objective: Objective,
    dims: Vec<Dim>,
    /// (position in the params, name) of each axis.
    axes: Vec<(usize, String)>,
}

impl<'a> Sampler<'a> {
    pub fn new(
        space: &'a Space,
        constraint: Option<&'a Constraint>,
        settings: Bayes,
        objective: &Objective,
    ) -> Self {
        let names = space.names();
        let dims = space.axes().iter().map(|(_, v)| Dim::of(v)).collect();
        let axes = space
            .axes()
            .iter()
            .zip(names)
            .map(|((position, _), name)| (*position, name))
            .collect();
        Sampler {
            space,
            constraint,
            settings,
            objective: objective.clone(),
            dims,
            axes,
        }
    }

    pub fn settings(&self) -> Bayes {
        self.settings
    }

    /// The trials of `rows` (any order) in trial order, scored by the
    /// objective: a failed or unranked row has no score.
    pub fn trials<'r>(&self, rows: &'r [Row]) -> Vec<Trial<'r>> {
        let mut sorted: Vec<&Row> = rows.iter().collect();
        sorted.sort_by_key(|r| r.index);
        sorted
            .into_iter()
            .map(|r| Trial {
                params: &r.params,
                score: r.metrics.as_ref().and_then(|m| self.objective.score(m)),
            })
            .collect()
    }

    /// The next batch after `trials` (trials `0..trials.len()`, in order):
    /// at most `batch` new param sets satisfying the constraint, indexed
    /// from `trials.len()`. Empty once `trials` are done or no new point
    /// can be found.
    pub fn propose(&self, trials: &[Trial<'_>]) -> Vec<Combination> {
        let s = self.settings;
        let n = trials.len();
        let count = s.batch.min(s.trials.saturating_sub(n));
        if count == 0 {
            return Vec::new();
        }
        // Each round's stream depends on the seed and the round's start
        // only, never on what earlier rounds drew.
        let mixed =
            SplitMix64::new(s.seed ^ (n as u64).wrapping_mul(0xD1B5_4A32_D192_ED03)).next_u64();
        let mut rng = Xoshiro256StarStar::seed_from_u64(mixed);
        let observed: Vec<(Point, Option<f64>)> = trials
            .iter()
            .filter_map(|t| Some((self.point_of(t.params)?, t.score)))
            .collect();
        let mut seen: BTreeSet<Point> = observed.iter().map(|(p, _)| p.clone()).collect();
        let (good, rest) = self.split(&observed);
        let good = Mixture::fit(&self.dims, good.iter().map(|&i| observed[i].0.as_slice()));
        let mut pool = None;
        let mut picked: Vec<Point> = Vec::with_capacity(count);
        for slot in 0..count {
            let modelled = !observed.is_empty() && n + slot >= s.startup;
            let point = if modelled {
                let bad = Mixture::fit(
                    &self.dims,
                    rest.iter()
                        .map(|&i| observed[i].0.as_slice())
                        .chain(picked.iter().map(|p| p.as_slice())),
                );
                self.best_candidate(&mut rng, &good, &bad, &seen)
            } else {
                None
            };
            let Some(point) = point.or_else(|| self.random(&mut rng, &seen, &mut pool)) else {
                break;
            };
            seen.insert(point.clone());
            picked.push(point);
        }
        picked
            .into_iter()
            .enumerate()
            .map(|(i, p)| Combination {
                index: n + i,
                params: self.params(&p),
            })
            .collect()
    }

    /// A whole search in one process: proposes a batch, `evaluate`s it,
    /// learns, until the trials are done or the space has no new point.
    /// `progress` sees the rows so far after each batch. Returns every
    /// combination and its row, in trial order.
    pub fn search<E>(
        &self,
        mut evaluate: impl FnMut(&[Combination]) -> Result<Vec<Row>, E>,
        mut progress: impl FnMut(&[Row]),
    ) -> Result<(Vec<Combination>, Vec<Row>), E> {
        let mut combos: Vec<Combination> = Vec::new();
        let mut rows: Vec<Row> = Vec::new();
        loop {
            let batch = self.propose(&self.trials(&rows));
            if batch.is_empty() {
                break;
            }
            let mut got = evaluate(&batch)?;
            got.sort_by_key(|r| r.index);
            rows.extend(got);
            combos.extend(batch);
            progress(&rows);
        }
        Ok((combos, rows))
    }

    /// The grid point of `params`; `None` when a value is not on the grid.
    fn point_of(&self, params: &[(String, ParamValue)]) -> Option<Point> {
        self.axes
            .iter()
            .zip(&self.dims)
            .map(|((position, name), dim)| {
                let value = match params.get(*position) {
                    Some((n, v)) if n == name => *v,
                    _ => params.iter().find(|(n, _)| n == name)?.1,
                };
                dim.rank_of(value)
            })
            .collect()
    }

    fn params(&self, point: &[usize]) -> Params {
        self.space
            .params_at(point.iter().zip(&self.dims).map(|(&r, d)| d.by_rank[r]))
    }

    fn feasible(&self, point: &[usize]) -> bool {
        self.constraint.is_none_or(|c| c.holds(&self.params(point)))
    }

    /// Indices of the good observations and of the rest: the best scored
    /// (ties by trial order), `GAMMA` of them up to `MAX_GOOD`.
    fn split(&self, observed: &[(Point, Option<f64>)]) -> (Vec<usize>, Vec<usize>) {
        let mut order: Vec<usize> = (0..observed.len()).collect();
        // Stable: equal scores keep trial order.
        order.sort_by(|&a, &b| match (observed[a].1, observed[b].1) {
            (Some(x), Some(y)) => self.objective.better(x, y),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        });
        let scored = observed.iter().filter(|(_, s)| s.is_some()).count();
        let wanted = (GAMMA * observed.len() as f64).ceil() as usize;
        let n_good = wanted.min(MAX_GOOD).min(scored);
        let rest = order.split_off(n_good);
        (order, rest)
    }

    /// The candidate drawn from `good` with the highest density ratio to
    /// `bad`, among draws that are new and satisfy the constraint.
    fn best_candidate(
        &self,
        rng: &mut Xoshiro256StarStar,
        good: &Mixture,
        bad: &Mixture,
        seen: &BTreeSet<Point>,
    ) -> Option<Point> {
        let mut best: Option<(f64, Point)> = None;
        let mut scored = 0;
        let mut scratch = Vec::new();
        for _ in 0..DRAWS {
            if scored == CANDIDATES {
                break;
            }
            let x = good.sample(&self.dims, rng);
            if seen.contains(&x) || !self.feasible(&x) {
                continue;
            }
            scored += 1;
            let ratio = good.log_density(&self.dims, &x, &mut scratch)
                - bad.log_density(&self.dims, &x, &mut scratch);
            if best.as_ref().is_none_or(|(b, _)| ratio > *b) {
                best = Some((ratio, x));
            }
        }
        best.map(|(_, x)| x)
    }

    /// A uniform new point satisfying the constraint: uniform draws, then
    /// (small spaces) a pick among every such point left.
    fn random(
        &self,
        rng: &mut Xoshiro256StarStar,
        seen: &BTreeSet<Point>,
        pool: &mut Option<Vec<u64>>,
    ) -> Option<Point> {
        for _ in 0..RANDOM_TRIES {
            let p: Point = self
                .dims
                .iter()
                .map(|d| below(rng, d.k() as u64) as usize)
                .collect();
            if !seen.contains(&p) && self.feasible(&p) {
                return Some(p);
            }
        }
        let size = self.space.size();
        if size > MAX_RANDOM_POOL {
            return None;
        }
        let pool = pool.get_or_insert_with(|| {
            (0..size)
                .filter(|&g| self.feasible(&self.decode(g)))
                .collect()
        });
        let fresh: Vec<u64> = pool
            .iter()
            .copied()
            .filter(|&g| !seen.contains(&self.decode(g)))
            .collect();
        if fresh.is_empty() {
            return None;
        }
        Some(self.decode(fresh[below(rng, fresh.len() as u64) as usize]))
    }

    /// Grid point number `g` (mixed radix, last axis fastest) as ranks.
    fn decode(&self, mut g: u64) -> Point {
        let mut point = vec![0; self.dims.len()];
        for (slot, dim) in point.iter_mut().zip(&self.dims).rev() {
            let k = dim.k() as u64;
            *slot = dim.rank[(g % k) as usize];
            g /= k;
        }
        point
    }
}

/// Uniform in `0..n` (n > 0) without modulo bias, as
/// [`SplitMix64::below`] does.
fn below(rng: &mut Xoshiro256StarStar, n: u64) -> u64 {
    let zone = u64::MAX - u64::MAX % n;
    loop {
        let x = rng.next_u64();
        if x < zone {
            return x % n;
        }
    }
}

/// A standard normal draw (Box-Muller, one of the pair).
fn gaussian(rng: &mut Xoshiro256StarStar) -> f64 {
    let u1 = rng.next_f64_nonzero();
    let u2 = rng.next_f64();
    libm::sqrt(-2.0 * libm::log(u1)) * libm::cos(std::f64::consts::TAU * u2)
}

/// `ln(sqrt(2 pi))`.
const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_8;

/// The standard normal CDF.
fn phi(x: f64) -> f64 {
    0.5 * libm::erfc(-x / std::f64::consts::SQRT_2)
}

/// A mixture of one kernel per point and the prior (a Gaussian of width
/// 1 centred on each numeric axis, uniform on bool ones), equally
/// weighted.
struct Mixture {
    /// Points, the prior excluded.
    m: usize,
    /// Kernel centres, `m` rows of one value per axis: the cell centre on
    /// numeric axes, the rank on bool ones.
    mu: Vec<f64>,
    /// Log of each kernel's mass on `[0, 1]` per numeric axis (0 on bool
    /// ones), `m` rows.
    log_mass: Vec<f64>,
    /// Kernel width per axis (numeric axes).
    sigma: Vec<f64>,
    /// Per axis: `-ln(sigma * sqrt(2 pi))` (numeric), or the log weight of
    /// a kernel on its own value (bool).
    norm: Vec<f64>,
    /// Bool axes: the log weight of a kernel on each other value.
    log_other: Vec<f64>,
    /// The prior's log mass on `[0, 1]` per axis.
    prior_log_mass: Vec<f64>,
}

/// Log mass on `[0, 1]` of a Gaussian centred on `mu` of width `sigma`.
fn log_mass(mu: f64, sigma: f64) -> f64 {
    libm::log((phi((1.0 - mu) / sigma) - phi(-mu / sigma)).max(f64::MIN_POSITIVE))
}

/// Weight of a bool kernel on its own value: a point's value and, with
/// the weight of one more point, a uniform choice (Optuna's smoothing).
fn own_weight(k: usize) -> f64 {
    (1.0 + 1.0 / k as f64) / 2.0
}

impl Mixture {
    fn fit<'p>(dims: &[Dim], points: impl Iterator<Item = &'p [usize]>) -> Mixture {
        let d = dims.len();
        let mut mu = Vec::new();
        for p in points {
            mu.extend(
                p.iter()
                    .zip(dims)
                    .map(|(&r, dim)| if dim.numeric { dim.unit(r) } else { r as f64 }),
            );
        }
        let m = mu.len() / d.max(1);
        // Scott's rule on each numeric axis's spread of the points, so
        // kernels narrow as the good points gather; clipped below at a
        // cell and at Optuna's "magic clip" (1/(m + 1) of the axis, to
        // 1/100), above at the whole axis.
        let scott = libm::pow(m.max(1) as f64, -1.0 / (d as f64 + 4.0));
        let sigma: Vec<f64> = dims
            .iter()
            .enumerate()
            .map(|(a, dim)| {
                let floor = (1.0 / dim.k() as f64).max(1.0 / (m + 1).min(100) as f64);
                let spread = if m < 2 || !dim.numeric {
                    SIGMA0
                } else {
                    let mut total = 0.0;
                    for j in 0..m {
                        total += mu[j * d + a];
                    }
                    let mean = total / m as f64;
                    let mut squares = 0.0;
                    for j in 0..m {
                        let z = mu[j * d + a] - mean;
                        squares += z * z;
                    }
                    libm::sqrt(squares / (m - 1) as f64)
                };
                (BANDWIDTH * spread * scott).max(floor).min(1.0)
            })
            .collect();
        let mut log_mass_all = vec![0.0; mu.len()];
        for (j, slot) in log_mass_all.iter_mut().enumerate() {
            let a = j % d;
            if dims[a].numeric {
                *slot = log_mass(mu[j], sigma[a]);
            }
        }
        let prior_log_mass = dims
            .iter()
            .map(|dim| if dim.numeric { log_mass(0.5, 1.0) } else { 0.0 })
            .collect();
        let norm = dims
            .iter()
            .zip(&sigma)
            .map(|(dim, s)| {
                if dim.numeric {
                    -libm::log(*s) - LN_SQRT_2PI
                } else {
                    libm::log(own_weight(dim.k()))
                }
            })
            .collect();
        let log_other = dims
            .iter()
            .map(|dim| {
                let k = dim.k();
                libm::log((1.0 - own_weight(k)) / (k - 1).max(1) as f64)
            })
            .collect();
        Mixture {
            m,
            mu,
            log_mass: log_mass_all,
            sigma,
            norm,
            log_other,
            prior_log_mass,
        }
    }

    fn sample(&self, dims: &[Dim], rng: &mut Xoshiro256StarStar) -> Point {
        let j = below(rng, self.m as u64 + 1) as usize;
        let d = dims.len();
        dims.iter()
            .enumerate()
            .map(|(a, dim)| {
                let k = dim.k();
                let centre = (j < self.m).then(|| self.mu[j * d + a]);
                if dim.numeric {
                    let (mu, sigma) = match centre {
                        Some(mu) => (mu, self.sigma[a]),
                        None => (0.5, 1.0),
                    };
                    // Truncated by rejection: at least about a third of
                    // draws land inside.
                    let mut u = mu;
                    for _ in 0..64 {
                        let x = mu + sigma * gaussian(rng);
                        if (0.0..1.0).contains(&x) {
                            u = x;
                            break;
                        }
                    }
                    ((u * k as f64) as usize).min(k - 1)
                } else {
                    match centre {
                        Some(own) if rng.next_f64() < 0.5 => own as usize,
                        _ => below(rng, k as u64) as usize,
                    }
                }
            })
            .collect()
    }

    /// Log density at `x` (`scratch` holds one term per kernel).
    fn log_density(&self, dims: &[Dim], x: &[usize], scratch: &mut Vec<f64>) -> f64 {
        let d = dims.len();
        let at: Vec<f64> = dims
            .iter()
            .zip(x)
            .map(|(dim, &r)| if dim.numeric { dim.unit(r) } else { r as f64 })
            .collect();
        scratch.clear();
        let mut prior = 0.0;
        for (a, dim) in dims.iter().enumerate() {
            prior += if dim.numeric {
                let z = at[a] - 0.5;
                -0.5 * z * z - LN_SQRT_2PI - self.prior_log_mass[a]
            } else {
                -libm::log(dim.k() as f64)
            };
        }
        scratch.push(prior);
        for j in 0..self.m {
            let mut term = 0.0;
            let row = j * d;
            for (a, dim) in dims.iter().enumerate() {
                let mu = self.mu[row + a];
                term += if dim.numeric {
                    let z = (at[a] - mu) / self.sigma[a];
                    self.norm[a] - 0.5 * z * z - self.log_mass[row + a]
                } else if at[a] == mu {
                    self.norm[a]
                } else {
                    self.log_other[a]
                };
            }
            scratch.push(term);
        }
        let max = scratch.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mut sum = 0.0;
        for &t in scratch.iter() {
            sum += libm::exp(t - max);
        }
        max + libm::log(sum) - libm::log((self.m + 1) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optimize::{checked_space, StrategyFactory};
    use crate::optimize::{evaluate, DimensionSpec, Direction, Method, ReferenceFactory};
    use crate::{BacktestConfig, ParamSpec, ParamType};
    use std::collections::BTreeMap;

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

    fn space_of(schema: &[ParamSpec], dims: serde_json::Value) -> Space {
        let dims: BTreeMap<String, DimensionSpec> = serde_json::from_value(dims).unwrap();
        Space::new(schema, &BTreeMap::new(), &dims, 1_000_000).unwrap()
    }

    fn minimize() -> Objective {
        Objective::new("sharpe", Direction::Minimize, 0).unwrap()
    }

    fn num(params: &Params, name: &str) -> f64 {
        match params.get(name).unwrap() {
            ParamValue::Int(i) => i as f64,
            ParamValue::Float(f) => f,
            ParamValue::Bool(b) => f64::from(u8::from(b)),
        }
    }

    fn settings(trials: usize, startup: usize, seed: u64) -> Bayes {
        Bayes::new(trials, DEFAULT_BATCH, startup, seed, 1_000_000).unwrap()
    }

    /// A whole search of `f` (the score; `None` stands for a failed run),
    /// batch by batch: every trial in order with its score.
    fn run(
        sampler: &Sampler<'_>,
        f: impl Fn(&Params) -> Option<f64>,
    ) -> Vec<(Params, Option<f64>)> {
        let mut done: Vec<(Params, Option<f64>)> = Vec::new();
        loop {
            let trials: Vec<Trial<'_>> = done
                .iter()
                .map(|(p, s)| Trial {
                    params: &p.0,
                    score: *s,
                })
                .collect();
            let batch = sampler.propose(&trials);
            if batch.is_empty() {
                return done;
            }
            assert!(batch.len() <= sampler.settings().batch);
            for c in batch {
                assert_eq!(c.index, done.len());
                let score = f(&c.params);
                done.push((c.params, score));
            }
        }
    }

    fn best(done: &[(Params, Option<f64>)]) -> f64 {
        done.iter()
            .filter_map(|(_, s)| *s)
            .fold(f64::INFINITY, f64::min)
    }

    /// Branin-Hoo on x1 in [-5, 10], x2 in [0, 15]: three global minima of
    /// 0.397887.
    fn branin(p: &Params) -> f64 {
        let (x1, x2) = (num(p, "x1"), num(p, "x2"));
        let pi = std::f64::consts::PI;
        let q = x2 - 5.1 / (4.0 * pi * pi) * x1 * x1 + 5.0 / pi * x1 - 6.0;
        q * q + 10.0 * (1.0 - 1.0 / (8.0 * pi)) * x1.cos() + 10.0
    }

    fn branin_space() -> Space {
        let schema = [
            spec("x1", ParamType::Float, -5.0, 10.0),
            spec("x2", ParamType::Float, 0.0, 15.0),
        ];
        // 1501 x 1501 points.
        space_of(
            &schema,
            serde_json::json!({"x1": {"min": -5, "max": 10, "step": 0.01},
                               "x2": {"min": 0, "max": 15, "step": 0.01}}),
        )
    }

    #[test]
    fn finds_the_branin_minimum_within_0_01_in_200_trials_for_most_seeds() {
        let space = branin_space();
        let within = |startup: usize| {
            (0..20)
                .filter(|&seed| {
                    let sampler =
                        Sampler::new(&space, None, settings(200, startup, seed), &minimize());
                    let done = run(&sampler, |p| Some(branin(p)));
                    assert_eq!(done.len(), 200);
                    best(&done) <= 0.397887 + 0.01
                })
                .count()
        };
        // Measured: 20 of 20 seeds.
        let bayes = within(DEFAULT_STARTUP);
        assert!(bayes >= 18, "{bayes} of 20 seeds");
        // The control: 200 random trials (all startup) get there for 0.
        let random = within(200);
        assert!(random <= 2, "random search: {random} of 20 seeds");
    }

    #[test]
    fn finds_the_minimum_of_a_noisy_quadratic() {
        let schema = [
            spec("x", ParamType::Float, -5.0, 5.0),
            spec("y", ParamType::Float, -5.0, 5.0),
        ];
        let space = space_of(
            &schema,
            serde_json::json!({"x": {"min": -5, "max": 5, "step": 0.01},
                               "y": {"min": -5, "max": 5, "step": 0.01}}),
        );
        let quadratic = |p: &Params| {
            let (x, y) = (num(p, "x") - 1.3, num(p, "y") + 0.7);
            x * x + y * y
        };
        let mut ok = 0;
        for seed in 0..10 {
            // Gaussian noise of sd 0.1, from its own stream.
            let noise = std::cell::RefCell::new(Xoshiro256StarStar::seed_from_u64(1_000 + seed));
            let sampler = Sampler::new(
                &space,
                None,
                settings(100, DEFAULT_STARTUP, seed),
                &minimize(),
            );
            let done = run(&sampler, |p| {
                Some(quadratic(p) + 0.1 * gaussian(&mut noise.borrow_mut()))
            });
            // It samples the optimum's neighbourhood, noise or not...
            let nearest = done
                .iter()
                .map(|(p, _)| quadratic(p))
                .fold(f64::INFINITY, f64::min);
            if nearest <= 0.01 {
                ok += 1;
            }
            // ...and the winner it reports is off by no more than the
            // noise would explain.
            let (winner, _) = done
                .iter()
                .min_by(|a, b| a.1.unwrap().total_cmp(&b.1.unwrap()))
                .unwrap();
            assert!(quadratic(winner) <= 0.2, "seed {seed}");
        }
        // Measured: 10 of 10 (the nearest 0.0005-0.008 from the minimum,
        // the winners 0.011-0.145).
        assert!(ok >= 9, "{ok} of 10 seeds");
    }

    #[test]
    fn the_same_seed_gives_the_same_trials_and_another_seed_others() {
        let space = branin_space();
        let trials = |seed| {
            let sampler = Sampler::new(&space, None, settings(60, 10, seed), &minimize());
            run(&sampler, |p| Some(branin(p)))
                .into_iter()
                .map(|(p, _)| p)
                .collect::<Vec<_>>()
        };
        let a = trials(7);
        assert_eq!(a.len(), 60);
        assert_eq!(a, trials(7));
        let b = trials(8);
        assert!(a.iter().zip(&b).all(|(x, y)| x != y));
    }

    #[test]
    fn a_round_proposed_again_from_the_same_results_is_the_same() {
        // What a redelivered queue round does: propose from the rows so
        // far, with nothing carried over.
        let space = branin_space();
        let sampler = Sampler::new(&space, None, settings(40, 10, 3), &minimize());
        let done = run(&sampler, |p| Some(branin(p)));
        for start in (0..40).step_by(DEFAULT_BATCH) {
            let trials: Vec<Trial<'_>> = done[..start]
                .iter()
                .map(|(p, s)| Trial {
                    params: &p.0,
                    score: *s,
                })
                .collect();
            let again: Vec<Params> = sampler
                .propose(&trials)
                .into_iter()
                .map(|c| c.params)
                .collect();
            let first: Vec<Params> = done[start..start + DEFAULT_BATCH]
                .iter()
                .map(|(p, _)| p.clone())
                .collect();
            assert_eq!(again, first, "round from {start}");
        }
    }

    #[test]
    fn startup_trials_are_random_and_the_model_follows_the_scores() {
        let space = branin_space();
        let sampler = Sampler::new(&space, None, settings(48, 16, 5), &minimize());
        let a = run(&sampler, |p| Some(branin(p)));
        let b = run(&sampler, |p| Some(-branin(p)));
        let params =
            |d: &[(Params, Option<f64>)]| d.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>();
        assert_eq!(params(&a[..16]), params(&b[..16]));
        assert_ne!(params(&a[16..]), params(&b[16..]));
    }

    #[test]
    fn never_repeats_never_breaks_the_constraint_and_stops_when_the_space_is_done() {
        let schema = [
            spec("fast", ParamType::Int, 1.0, 100.0),
            spec("slow", ParamType::Int, 1.0, 100.0),
            spec("short", ParamType::Bool, 0.0, 1.0),
        ];
        let space = space_of(
            &schema,
            serde_json::json!({"fast": {"min": 1, "max": 10, "step": 1},
                               "slow": [10, 2, 6, 4, 8],
                               "short": [true, false]}),
        );
        let constraint = Constraint::parse("fast < slow", &schema).unwrap();
        let feasible = space
            .combinations(Method::Grid, Some(&constraint), 1_000)
            .unwrap()
            .len();
        assert_eq!(feasible, 2 * (1 + 3 + 5 + 7 + 9));
        // More trials than points: every feasible point once, then stop.
        for (seed, batch) in [(1, 1), (2, 8), (3, 64)] {
            let settings = Bayes::new(500, batch, 8, seed, 1_000).unwrap();
            let sampler = Sampler::new(&space, Some(&constraint), settings, &minimize());
            let done = run(&sampler, |p| {
                Some((num(p, "fast") - 4.0).abs() + num(p, "slow"))
            });
            assert_eq!(done.len(), feasible, "batch {batch}");
            let distinct: BTreeSet<String> = done.iter().map(|(p, _)| format!("{p:?}")).collect();
            assert_eq!(distinct.len(), feasible);
            assert!(done.iter().all(|(p, _)| constraint.holds(p)));
        }
        // No point satisfies it: nothing is proposed.
        let never = Constraint::parse("fast > 10", &schema).unwrap();
        let sampler = Sampler::new(&space, Some(&never), settings(10, 4, 1), &minimize());
        assert!(sampler.propose(&[]).is_empty());
    }

    #[test]
    fn failed_and_unscored_runs_count_as_bad_and_bools_are_learnt() {
        let schema = [
            spec("x", ParamType::Float, 0.0, 1.0),
            spec("flag", ParamType::Bool, 0.0, 1.0),
        ];
        let space = space_of(
            &schema,
            serde_json::json!({"x": {"min": 0, "max": 1, "step": 0.001}, "flag": [false, true]}),
        );
        // Maximised, best at x = 0.6 with the flag on; above x = 0.8 the
        // run fails, and with the flag off there is no score at all.
        let f = |p: &Params| {
            let x = num(p, "x");
            (num(p, "flag") == 1.0 && x <= 0.8).then_some(1.0 - (x - 0.6).abs())
        };
        let maximize = Objective::new("sharpe", Direction::Maximize, 0).unwrap();
        let sampler = Sampler::new(&space, None, settings(120, 16, 9), &maximize);
        let done = run(&sampler, f);
        let late = &done[60..];
        // Measured: 58 of the last 60 scored (2 with the flag off, none
        // failed); at random about 24 would be.
        let scored = late.iter().filter(|(_, s)| s.is_some()).count();
        assert!(scored >= 50, "{scored} of the last 60 have a score");
        let flag_off = late.iter().filter(|(p, _)| num(p, "flag") == 0.0).count();
        let failed = late.iter().filter(|(p, _)| num(p, "x") > 0.8).count();
        assert!(flag_off <= 6 && failed <= 6, "{flag_off} {failed}");
        let top = done.iter().filter_map(|(_, s)| *s).fold(0.0, f64::max);
        assert!(top >= 0.99, "{top}");
    }

    #[test]
    fn bad_settings_name_their_field() {
        assert_eq!(Bayes::new(0, 8, 0, 0, 10).unwrap_err().field, "trials");
        assert_eq!(Bayes::new(11, 8, 0, 0, 10).unwrap_err().field, "trials");
        assert_eq!(Bayes::new(10, 0, 0, 0, 10).unwrap_err().field, "batch");
        assert!(Bayes::new(10, 100, 100, 0, 10).is_ok());
    }

    /// The figure: ema-crossover (the native reference) over the
    /// optimize bench's candles (8,760 hourly bars, seed 1), on fast_period
    /// 2..=41 x slow_period 20..=140 step 5 (1,000 points, 940 with
    /// fast < slow).
    #[test]
    fn reaches_the_ema_crossover_grid_best_in_150_evaluations_for_most_seeds() {
        let candles = crate::candles::synth(8_760, 1, 3_600, 1_704_067_200, 42_000.0);
        let factory = ReferenceFactory::new("ema-crossover").unwrap();
        let dims = serde_json::from_value(serde_json::json!({
            "fast_period": {"min": 2, "max": 41, "step": 1},
            "slow_period": {"min": 20, "max": 140, "step": 5},
        }))
        .unwrap();
        let (space, constraint) = checked_space(
            &factory.description().params,
            &BTreeMap::new(),
            &dims,
            Some("fast_period < slow_period"),
            20_000,
        )
        .unwrap();
        assert_eq!(space.size(), 1_000);
        // The whole grid once; the searches look its rows up (a backtest
        // is deterministic, so this is what running them would give).
        let grid = space
            .combinations(Method::Grid, constraint.as_ref(), 20_000)
            .unwrap();
        assert_eq!(grid.len(), 940);
        let config = BacktestConfig::default();
        let rows = evaluate(
            &factory,
            &grid,
            &candles,
            None,
            &config,
            2,
            &|_| {},
            &|_| false,
        )
        .unwrap();
        let objective = Objective::new("sharpe", Direction::Maximize, 0).unwrap();
        let by_params: BTreeMap<String, &Row> = rows
            .iter()
            .map(|r| (format!("{:?}", r.params), r))
            .collect();
        let score = |r: &Row| r.metrics.as_ref().and_then(|m| objective.score(m));
        let best = rows
            .iter()
            .filter_map(score)
            .fold(f64::NEG_INFINITY, f64::max);
        let target = best - 0.01 * best.abs();
        // Evaluations until within 1 % of the grid's best, per seed.
        let evaluations = |startup: usize| -> Vec<Option<usize>> {
            (0..20)
                .map(|seed| {
                    let settings = Bayes::new(150, DEFAULT_BATCH, startup, seed, 20_000).unwrap();
                    let sampler = Sampler::new(&space, constraint.as_ref(), settings, &objective);
                    let (combos, found) = sampler
                        .search(
                            |batch| -> Result<Vec<Row>, ()> {
                                Ok(batch
                                    .iter()
                                    .map(|c| {
                                        let mut row =
                                            by_params[&format!("{:?}", c.params.0)].clone();
                                        row.index = c.index;
                                        row
                                    })
                                    .collect())
                            },
                            |_| {},
                        )
                        .unwrap();
                    assert_eq!(combos.len(), 150);
                    found
                        .iter()
                        .position(|r| score(r).is_some_and(|s| s >= target))
                        .map(|i| i + 1)
                })
                .collect()
        };
        let bayes = evaluations(DEFAULT_STARTUP);
        let hits = bayes.iter().flatten().count();
        // Measured: 20 of 20 seeds, in 50-90 evaluations.
        assert!(hits >= 18, "{hits} of 20 seeds: {bayes:?}");
        // The control: 150 random draws of the 940 find it for 1 seed.
        let random = evaluations(150).iter().flatten().count();
        assert!(random <= 4, "random search: {random} of 20 seeds");
    }
}
