//! The optimization task: submission (everything checked before anything
//! is queued), the fan-out into chunk tasks, the chunk runs, and the
//! reduce into the ranked table.
//!
//! Delivery is at least once, so every step is idempotent: the fan-out
//! submits its chunks only if their records do not exist yet (the queue
//! writes them with the tasks, all or none); a chunk's rows are written
//! once under its number (HSETNX), so a redelivered chunk is not counted
//! twice; whichever chunk completion sees every chunk in ranks the rows
//! and writes the table, and writing it again changes nothing.
//!
//! A Bayesian search (`bayes`) runs in rounds: the fan-out submits the
//! first batch's chunks; the completion that sees every chunk so far in
//! proposes the next batch from all the rows (a function of the seed and
//! the rows alone, so a redelivery proposes the same) and submits its
//! chunks, numbered on from the last, guarded by the record's chunk count
//! so that only one completion does; when no batch is left, it reduces.
//!
//! A walk-forward runs each window's sweep as a group of chunks, numbered
//! window by window (chunk `c` is window `c / per_window`); the fan-out
//! loads the candles to count the windows. The completion that sees every
//! chunk in ranks each window's rows, runs the windows' choices on their
//! test bars (`stratbox_engine::optimize::walkforward::report`, the code
//! `stratbox optimize --walk-forward` runs) and writes the report.

use super::backtest::{
    engine_config, engine_error, load_plugin, load_range, load_universe, perp_config, run_limits,
    store_error, Validator,
};
use super::{SubmitError, SubmitOptions, TaskContext, Tasks};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use stratbox_engine::optimize::bayes::{DEFAULT_BATCH, DEFAULT_STARTUP};
use stratbox_engine::optimize::{
    self, rank, walkforward, Bayes, Combination, DimensionSpec, Holdout, Method, Objective, Row,
    Sampler, Window, DEFAULT_MAX_COMBINATIONS,
};
use stratbox_engine::{Market, ParamInput, ParamValue, Params};
use stratbox_queue::{Delivery, Guard, Queue, QueueConfig, Record, TaskError, TaskSpec};
use stratbox_sandbox::PluginFactory;
use stratbox_store::optimizations::{fields, TOP_KEPT};
use stratbox_store::{OptimizationDefinition, Store};

pub const KIND_OPTIMIZATION: &str = "optimization";
pub const KIND_OPTIMIZATION_CHUNK: &str = "optimization_chunk";

/// Chunks an optimization aims for: enough to spread over many workers
/// and to lose little to a crash, few enough that per-task costs vanish.
const TARGET_CHUNKS: usize = 32;
const MAX_CHUNK: usize = 250;

pub use stratbox_store::OptimizationRequest;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct FanoutPayload {
    optimization_id: u64,
}

/// One param set, serialised as an object in schema order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ParamSet(
    #[serde(with = "stratbox_engine::optimize::rank::ordered")] Vec<(String, ParamValue)>,
);

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ChunkPayload {
    optimization_id: u64,
    chunk: usize,
    /// Combination index of the first param set.
    first_index: usize,
    params: Vec<ParamSet>,
    definition: OptimizationDefinition,
    /// A walk-forward's window: the rows are of its train bars.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    window: Option<usize>,
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> SubmitError {
    SubmitError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

impl From<optimize::OptimizeError> for SubmitError {
    fn from(e: optimize::OptimizeError) -> Self {
        invalid(e.field, e.message)
    }
}

/// The sweep a method runs; `None` for `bayes` (checked by [`bayes_of`]).
fn method_of(
    method: &str,
    samples: Option<usize>,
    seed: u64,
) -> Result<Option<Method>, SubmitError> {
    match (method, samples) {
        ("grid", None) => Ok(Some(Method::Grid)),
        ("grid", Some(_)) => Err(invalid("samples", "only the random method takes samples")),
        ("random", Some(samples)) => Ok(Some(Method::Random { samples, seed })),
        ("random", None) => Err(invalid(
            "samples",
            "the random method needs a number of samples",
        )),
        ("bayes", Some(_)) => Ok(None),
        ("bayes", None) => Err(invalid(
            "trials",
            "the bayes method needs a number of trials",
        )),
        (other, _) => Err(invalid(
            "method",
            format!("unknown method `{other}`; one of: grid, random, bayes"),
        )),
    }
}

fn fixed_params(given: &BTreeMap<String, serde_json::Value>) -> BTreeMap<String, ParamInput> {
    given
        .iter()
        .map(|(k, v)| (k.clone(), ParamInput::Json(v.clone())))
        .collect()
}

/// The combinations of a stored definition to submit first: every one
/// for a sweep, the first batch of a Bayesian search.
fn combinations_of(
    def: &OptimizationDefinition,
    schema: &[stratbox_engine::ParamSpec],
) -> Result<Vec<Combination>, SubmitError> {
    match def.bayes {
        Some(bayes) => next_batch(def, schema, bayes, &[]),
        None => {
            let method = method_of(&def.method, def.samples, def.seed)?
                .ok_or_else(|| invalid("method", "a bayes search without its settings"))?;
            Ok(optimize::combinations(
                schema,
                &fixed_params(&def.backtest.params),
                &def.search_space,
                method,
                def.constraint.as_deref(),
                def.max_combinations,
            )?)
        }
    }
}

/// A Bayesian search's batch after `rows` (every trial so far).
fn next_batch(
    def: &OptimizationDefinition,
    schema: &[stratbox_engine::ParamSpec],
    bayes: Bayes,
    rows: &[Row],
) -> Result<Vec<Combination>, SubmitError> {
    let (space, constraint) = optimize::checked_space(
        schema,
        &fixed_params(&def.backtest.params),
        &def.search_space,
        def.constraint.as_deref(),
        def.max_combinations,
    )?;
    let objective = Objective::new(&def.metric, def.direction, def.min_trades)?;
    let sampler = Sampler::new(&space, constraint.as_ref(), bayes, &objective);
    let batch = sampler.propose(&sampler.trials(rows));
    if batch.is_empty() && rows.is_empty() {
        return Err(invalid(
            "constraint",
            "no combination of the search space satisfies it",
        ));
    }
    Ok(batch)
}

/// Combinations per chunk task: about [`TARGET_CHUNKS`] chunks for a
/// sweep, or for each round of a Bayesian search.
fn chunk_size(def: &OptimizationDefinition, first: usize) -> usize {
    let per_round = def.bayes.map_or(first, |b| b.batch.min(b.trials));
    per_round.div_ceil(TARGET_CHUNKS).clamp(1, MAX_CHUNK)
}

/// A checked optimization, ready to record and queue.
struct Prepared {
    definition: OptimizationDefinition,
    combinations: usize,
    chunks: usize,
}

/// Validates an optimization fully (the backtest part as a backtest, then
/// the space, method, objective, constraint and hold-out), records it and
/// queues its fan-out task. Returns (optimization id, task id). Nothing is
/// queued on error; the error names the request field.
pub async fn submit_optimization(
    store: &Store,
    queue: &Queue,
    request: &OptimizationRequest,
    options: &SubmitOptions,
) -> Result<(u64, String), SubmitError> {
    let prepared = prepare(store, request, options).await?;
    submit_prepared(store, queue, &prepared, |_| None).await
}

/// Checks an optimization as [`submit_optimization`] would, without
/// recording or queueing anything; the definition it would store.
pub async fn validate_optimization(
    store: &Store,
    request: &OptimizationRequest,
    options: &SubmitOptions,
) -> Result<OptimizationDefinition, SubmitError> {
    Ok(prepare(store, request, options).await?.definition)
}

/// One optimization, submitted only if `guard` (built from the
/// optimization id) holds: `SubmitError::Queue(QueueError::GuardFailed)`
/// when another process went first, and then no record exists either.
pub async fn submit_optimization_guarded(
    store: &Store,
    queue: &Queue,
    request: &OptimizationRequest,
    options: &SubmitOptions,
    guard: impl FnOnce(u64) -> Guard,
) -> Result<(u64, String), SubmitError> {
    let prepared = prepare(store, request, options).await?;
    submit_prepared(store, queue, &prepared, |id| Some(guard(id))).await
}

async fn prepare(
    store: &Store,
    request: &OptimizationRequest,
    options: &SubmitOptions,
) -> Result<Prepared, SubmitError> {
    // The backtest checks, without filling in defaults for searched params.
    let mut probe = request.backtest.clone();
    probe.params.clear();
    let (checked, candles_version) = Validator::new(store).check(&probe).await?;
    if !checked.symbols.is_empty() && request.walk_forward.is_some() {
        // Windows split one series (docs/optimization.md).
        return Err(super::backtest::invalid(
            "walk_forward",
            "not over several symbols yet: a portfolio strategy is optimized on one range (a hold-out may follow it)",
        ));
    }
    let mut search_space = BTreeMap::new();
    for (name, value) in &request.search_space {
        let field = format!("search_space.{name}");
        search_space.insert(name.clone(), DimensionSpec::from_json(value, &field)?);
    }
    let objective = Objective::new(&request.metric, request.direction, request.min_trades)?;
    let holdout = request.holdout.as_deref().map(Holdout::parse).transpose()?;
    let plugin = store
        .plugin_record_by_sha(&checked.strategy_sha256)
        .await?
        .ok_or_else(|| SubmitError::UnknownStrategy(checked.strategy_sha256.clone()))?;
    let max_combinations = request.max_combinations.unwrap_or(DEFAULT_MAX_COMBINATIONS);
    if max_combinations == 0 || max_combinations > DEFAULT_MAX_COMBINATIONS {
        return Err(invalid(
            "max_combinations",
            format!("must be between 1 and {DEFAULT_MAX_COMBINATIONS}"),
        ));
    }
    let mut backtest = checked;
    backtest.params = request.backtest.params.clone();
    // Checked before the space, as a sweep's method is.
    let bayes = match method_of(&request.method, request.samples, request.seed)? {
        Some(_) => {
            for (field, given) in [("batch", request.batch), ("startup", request.startup)] {
                if given.is_some() {
                    return Err(invalid(
                        field,
                        format!("only the bayes method takes {field}"),
                    ));
                }
            }
            None
        }
        None => Some(Bayes::new(
            request.samples.unwrap_or(0),
            request.batch.map_or(DEFAULT_BATCH, |b| b as usize),
            request.startup.map_or(DEFAULT_STARTUP, |s| s as usize),
            request.seed,
            max_combinations,
        )?),
    };
    if let Some(wf) = &request.walk_forward {
        if holdout.is_some() {
            return Err(invalid(
                "walk_forward",
                "a walk-forward tests out of sample itself: drop holdout",
            ));
        }
        if bayes.is_some() {
            return Err(invalid(
                "walk_forward",
                "not with the bayes method through the queue yet (stratbox optimize runs it)",
            ));
        }
        let b = &backtest;
        let (train, _) = wf.lengths(b.timeframe_secs)?;
        let series = store
            .series_info(&b.symbol, b.timeframe_secs)
            .await?
            .ok_or_else(|| SubmitError::UnknownCandles {
                symbol: b.symbol.clone(),
                timeframe: stratbox_engine::candles::format_timeframe(b.timeframe_secs),
            })?;
        // The most bars the range can hold (gaps make it fewer: the
        // fan-out counts them and fails the optimization naming the field).
        let (from, to) = (
            b.start_ts.max(series.first_ts),
            b.end_ts.min(series.last_ts),
        );
        let most = if to >= from {
            ((to - from) / b.timeframe_secs.max(1)) as usize + 1
        } else {
            0
        };
        if most <= train {
            return Err(invalid(
                "walk_forward.train",
                format!("{train} bars leave nothing to test in the {most} bars of the range"),
            ));
        }
    }
    let mut definition = OptimizationDefinition {
        backtest,
        search_space,
        method: request.method.clone(),
        samples: request.samples,
        seed: request.seed,
        bayes,
        metric: objective.metric.clone(),
        direction: objective.direction,
        min_trades: objective.min_trades,
        constraint: request.constraint.clone().filter(|c| !c.trim().is_empty()),
        holdout,
        walk_forward: request.walk_forward.as_deref().copied(),
        max_combinations,
        chunk_size: 1,
        candles_version,
        priority: options.priority,
        timeout_ms: options.timeout_ms,
        max_attempts: options.max_attempts,
    };
    let combos = combinations_of(&definition, &plugin.description.params)?;
    if let Some(holdout) = &definition.holdout {
        // The split must fall inside the candles the run will load.
        let b = &definition.backtest;
        let series = store
            .series_info(&b.symbol, b.timeframe_secs)
            .await?
            .ok_or_else(|| SubmitError::UnknownCandles {
                symbol: b.symbol.clone(),
                timeframe: stratbox_engine::candles::format_timeframe(b.timeframe_secs),
            })?;
        holdout.check_range(
            b.start_ts.max(series.first_ts),
            b.end_ts.min(series.last_ts),
        )?;
    }
    definition.chunk_size = chunk_size(&definition, combos.len());
    Ok(Prepared {
        chunks: combos.len().div_ceil(definition.chunk_size),
        combinations: definition.bayes.map_or(combos.len(), |b| b.trials),
        definition,
    })
}

/// Records the optimization and queues its fan-out task in one script:
/// the record is created by a guard of the submission, so it exists with
/// its task or not at all (a refused `guard`, a process dying between
/// the two, leave no record behind).
async fn submit_prepared(
    store: &Store,
    queue: &Queue,
    prepared: &Prepared,
    guard: impl FnOnce(u64) -> Option<Guard>,
) -> Result<(u64, String), SubmitError> {
    let definition = &prepared.definition;
    let init =
        store.optimization_init_fields(definition, prepared.combinations, prepared.chunks)?;
    let id = store.allocate_optimization_id().await?;
    let payload = serde_json::to_string(&FanoutPayload {
        optimization_id: id,
    })
    .map_err(|e| invalid("payload", e.to_string()))?;
    let mut spec = super::tenant_task(store, KIND_OPTIMIZATION, payload);
    spec.priority = definition.priority;
    spec.timeout_ms = definition.timeout_ms;
    spec.max_attempts = definition.max_attempts;
    spec.record = Some(Record::new(store.keys().optimization_fanout(id), "result"));
    // The plugin stays undeletable while the optimization may run.
    spec.holds = Some(
        store
            .keys()
            .plugin_tasks(&definition.backtest.strategy_sha256),
    );
    let create = Guard {
        key: store.keys().optimization(id),
        field: stratbox_store::optimizations::fields::STATUS.into(),
        // A fresh id has no record: never overwrite one.
        expect: String::new(),
        set: init,
        index: Some((store.keys().optimizations(), id.to_string(), id as i64)),
    };
    // The caller's guard first: when it fails, the error names it.
    let guards: Vec<Guard> = guard(id).into_iter().chain([create]).collect();
    let task_id = queue
        .submit_guarded(std::slice::from_ref(&spec), &guards)
        .await?
        .pop()
        .ok_or_else(|| invalid("request", "nothing was submitted"))?;
    Ok((id, task_id))
}

/// Cancels an optimization: its record, its fan-out and every chunk task.
/// `false` when it had already ended.
pub async fn cancel_optimization(
    store: &Store,
    queue: &Queue,
    id: u64,
    chunks: usize,
) -> Result<bool, SubmitError> {
    let cancelled = store.cancel_optimization_record(id).await?;
    for task_id in store.optimization_task_ids(id, chunks).await? {
        queue.cancel(&task_id).await?;
    }
    Ok(cancelled)
}

fn skipped(why: &str) -> Result<String, TaskError> {
    Ok(serde_json::json!({ "skipped": why }).to_string())
}

/// The fan-out task: submits every chunk task in one atomic step, once.
pub(super) fn run_fanout(
    tasks: &Tasks,
    rt: &tokio::runtime::Handle,
    payload: &str,
) -> Result<String, TaskError> {
    let payload: FanoutPayload = serde_json::from_str(payload)
        .map_err(|e| TaskError::permanent("bad_payload", format!("optimization payload: {e}")))?;
    let id = payload.optimization_id;
    let store = &tasks.store;
    let record = rt
        .block_on(store.get_optimization(id))
        .map_err(store_error)?
        .ok_or_else(|| TaskError::permanent("not_found", format!("optimization {id} not found")))?;
    if record.status.is_terminal() {
        return skipped(record.status.as_str());
    }
    let def = &record.definition;
    let schema = plugin_schema(store, rt, def)?;
    let combos = combinations_of(def, &schema)
        .map_err(|e| TaskError::permanent("invalid_optimization", e.to_string()))?;
    let chunk_size = def.chunk_size.max(1);
    let per_window = combos.len().div_ceil(chunk_size);
    let windows = match &def.walk_forward {
        Some(_) => match windows_of(tasks, rt, def) {
            Ok((_, windows)) => Some(windows),
            Err(e) => {
                let _ = rt.block_on(store.fail_optimization(id, &e.code, &e.message));
                return Err(e);
            }
        },
        None => None,
    };
    let chunks = per_window * windows.as_ref().map_or(1, Vec::len);
    match rt
        .block_on(store.mark_fanned_out(id, chunks))
        .map_err(store_error)?
    {
        Some(status) if status.is_terminal() => return skipped(status.as_str()),
        None => {
            return Err(TaskError::permanent(
                "not_found",
                format!("optimization {id} not found"),
            ))
        }
        _ => {}
    }
    if rt
        .block_on(store.chunks_submitted(id))
        .map_err(store_error)?
    {
        return Ok(serde_json::json!({ "chunks": chunks, "resubmitted": false }).to_string());
    }
    let specs = match &windows {
        None => chunk_specs(store, id, def, 0, &combos, None)?,
        Some(windows) => {
            let mut specs = Vec::with_capacity(chunks);
            for w in 0..windows.len() {
                specs.extend(chunk_specs(
                    store,
                    id,
                    def,
                    w * per_window,
                    &combos,
                    Some(w),
                )?);
            }
            specs
        }
    };
    rt.block_on(submitter(store)?.submit(&specs))
        .map_err(|e| TaskError::transient("redis_error", e.to_string()))?;
    Ok(serde_json::json!({ "chunks": chunks, "resubmitted": true }).to_string())
}

/// A walk-forward's candles and windows (the same on every worker: the
/// candles are the version the submission saw).
fn windows_of(
    tasks: &Tasks,
    rt: &tokio::runtime::Handle,
    def: &OptimizationDefinition,
) -> Result<(stratbox_engine::candles::Candles, Vec<Window>), TaskError> {
    let candles = load_range(tasks, rt, &def.backtest, def.candles_version)?;
    let windows = match &def.walk_forward {
        Some(wf) => wf
            .windows(candles.len(), def.backtest.timeframe_secs)
            .map_err(|e| TaskError::permanent("invalid_walk_forward", e.to_string()))?,
        None => Vec::new(),
    };
    Ok((candles, windows))
}

/// The param schema of the optimization's stored plugin.
fn plugin_schema(
    store: &Store,
    rt: &tokio::runtime::Handle,
    def: &OptimizationDefinition,
) -> Result<Vec<stratbox_engine::ParamSpec>, TaskError> {
    let plugin = rt
        .block_on(store.plugin_record_by_sha(&def.backtest.strategy_sha256))
        .map_err(store_error)?
        .ok_or_else(|| {
            TaskError::permanent(
                "plugin_not_found",
                format!("strategy {} is not stored", def.backtest.strategy_sha256),
            )
        })?;
    Ok(plugin.description.params)
}

/// A queue handle only to submit: the chunks carry their own timeout and
/// attempts, or take the queue defaults the fetching worker applies.
fn submitter(store: &Store) -> Result<Queue, TaskError> {
    Queue::new(
        store.connection(),
        store.keys().prefix(),
        QueueConfig::default(),
    )
    .map_err(|e| TaskError::permanent("queue_error", e.to_string()))
}

/// The chunk tasks of `combos`, numbered from `first_chunk`.
fn chunk_specs(
    store: &Store,
    id: u64,
    def: &OptimizationDefinition,
    first_chunk: usize,
    combos: &[Combination],
    window: Option<usize>,
) -> Result<Vec<TaskSpec>, TaskError> {
    let mut specs = Vec::new();
    for (i, part) in combos.chunks(def.chunk_size.max(1)).enumerate() {
        let chunk = first_chunk + i;
        let payload = ChunkPayload {
            optimization_id: id,
            chunk,
            first_index: part.first().map_or(0, |c| c.index),
            params: part.iter().map(|c| ParamSet(c.params.0.clone())).collect(),
            definition: def.clone(),
            window,
        };
        let payload = serde_json::to_string(&payload)
            .map_err(|e| TaskError::permanent("bad_payload", e.to_string()))?;
        let mut spec = super::tenant_task(store, KIND_OPTIMIZATION_CHUNK, payload);
        spec.priority = def.priority;
        spec.timeout_ms = def.timeout_ms;
        spec.max_attempts = def.max_attempts;
        spec.record = Some(Record::new(
            store.keys().optimization_chunk(id, chunk),
            "result",
        ));
        spec.holds = Some(store.keys().plugin_tasks(&def.backtest.strategy_sha256));
        specs.push(spec);
    }
    Ok(specs)
}

/// A chunk: its param sets against one loaded plugin and one loaded
/// candle range, rows written once, then the reduce if it was the last.
pub(super) fn run_chunk(
    tasks: &Tasks,
    rt: &tokio::runtime::Handle,
    delivery: &Delivery,
    ctx: &TaskContext,
) -> Result<String, TaskError> {
    let started = Instant::now();
    let payload: ChunkPayload = serde_json::from_str(&delivery.payload)
        .map_err(|e| TaskError::permanent("bad_payload", format!("chunk payload: {e}")))?;
    let id = payload.optimization_id;
    let store = &tasks.store;
    let status = rt
        .block_on(store.optimization_status(id))
        .map_err(store_error)?;
    match status {
        None => return skipped("missing"),
        Some(s) if s.is_terminal() => return skipped(s.as_str()),
        _ => {}
    }
    let rows = if rt
        .block_on(store.chunk_result_exists(id, payload.chunk))
        .map_err(store_error)?
    {
        // A redelivery after the rows were written: only the reduce may
        // be left to do.
        String::new()
    } else {
        match run_params(tasks, rt, &payload, ctx, started) {
            Ok(rows) => rows,
            Err(e) => {
                let last = !e.transient || delivery.attempt >= delivery.max_attempts;
                if last && !ctx.cancel.is_cancelled() {
                    // It goes to the dead-letter stream: the optimization
                    // cannot complete.
                    let message =
                        format!("chunk {} failed: {}: {}", payload.chunk, e.code, e.message);
                    let _ = rt.block_on(store.fail_optimization(id, "chunk_failed", &message));
                }
                return Err(e);
            }
        }
    };
    let (status, done, chunks) = rt
        .block_on(store.put_chunk_result(id, payload.chunk, &rows))
        .map_err(store_error)?;
    if status == "running" && done >= chunks {
        match (payload.definition.bayes, &payload.definition.walk_forward) {
            (Some(bayes), _) => next_round(store, rt, id, &payload.definition, bayes, chunks)?,
            (None, Some(_)) => reduce_walk_forward(tasks, rt, id, &payload.definition, ctx)?,
            (None, None) => reduce(store, rt, id, &payload.definition)?,
        }
    }
    Ok(serde_json::json!({
        "chunk": payload.chunk,
        "combinations": payload.params.len(),
        "done": done,
        "chunks": chunks,
    })
    .to_string())
}

fn run_params(
    tasks: &Tasks,
    rt: &tokio::runtime::Handle,
    payload: &ChunkPayload,
    ctx: &TaskContext,
    started: Instant,
) -> Result<String, TaskError> {
    let def = &payload.definition;
    let b = &def.backtest;
    let plugin = load_plugin(tasks, rt, &b.strategy_sha256)?;
    if !b.symbols.is_empty() {
        return run_portfolio_params(tasks, rt, payload, ctx, started, plugin);
    }
    let candles = load_range(tasks, rt, b, def.candles_version)?;
    let (in_sample, out_of_sample) = match (&def.holdout, payload.window, &def.walk_forward) {
        (_, Some(w), Some(wf)) => {
            let windows = wf
                .windows(candles.len(), b.timeframe_secs)
                .map_err(|e| TaskError::permanent("invalid_walk_forward", e.to_string()))?;
            let window = windows.get(w).ok_or_else(|| {
                TaskError::permanent("invalid_walk_forward", format!("no window {w}"))
            })?;
            (walkforward::slice(&candles, window.train.clone()), None)
        }
        (Some(h), _, _) => {
            let (a, o) = h
                .split(&candles)
                .map_err(|e| TaskError::permanent("invalid_holdout", e.to_string()))?;
            (a, Some(o))
        }
        _ => (candles, None),
    };
    let combos = combinations(payload);
    let factory = chunk_factory(tasks, plugin, b, ctx, started);
    // The symbol's stored contract, funding and marks, read once for the
    // chunk; both parts of a hold-out run with them, as the CLI's do.
    let mut config = engine_config(b);
    if config.market == Market::LinearPerpetual {
        config.perp = perp_config(tasks, rt, b)?;
        config
            .check()
            .map_err(|e| TaskError::permanent("invalid_config", e.to_string()))?;
    }
    let total = combos.len().max(1) as f64;
    let rows = optimize::evaluate(
        &factory,
        &combos,
        &in_sample,
        out_of_sample.as_ref(),
        &config,
        1,
        &|done| ctx.set_progress(done as f64 / total),
        &stratbox_sandbox::is_fatal,
    )
    .map_err(engine_error)?;
    serde_json::to_string(&rows).map_err(|e| TaskError::permanent("report_error", e.to_string()))
}

/// The chunk's combinations over several symbols, in and out of sample
/// with a hold-out (no windows: refused at submission).
fn run_portfolio_params(
    tasks: &Tasks,
    rt: &tokio::runtime::Handle,
    payload: &ChunkPayload,
    ctx: &TaskContext,
    started: Instant,
    plugin: std::sync::Arc<stratbox_sandbox::Plugin>,
) -> Result<String, TaskError> {
    let def = &payload.definition;
    let b = &def.backtest;
    let (universe, perps) = load_universe(tasks, rt, b, def.candles_version)?;
    let held_out = def
        .holdout
        .as_ref()
        .map(|h| h.split_universe(&universe))
        .transpose()
        .map_err(|e| TaskError::permanent("invalid_holdout", e.to_string()))?;
    let (in_sample, out_of_sample) = match &held_out {
        Some((a, o)) => (a, Some(o)),
        None => (&universe, None),
    };
    let factory = chunk_factory(tasks, plugin, b, ctx, started);
    let total = payload.params.len().max(1) as f64;
    let rows = optimize::evaluate_data(
        &factory,
        &combinations(payload),
        optimize::Data::Portfolio(in_sample, &perps),
        out_of_sample.map(|o| optimize::Data::Portfolio(o, &perps)),
        &engine_config(b),
        1,
        &|done| ctx.set_progress(done as f64 / total),
        &stratbox_sandbox::is_fatal,
    )
    .map_err(engine_error)?;
    serde_json::to_string(&rows).map_err(|e| TaskError::permanent("report_error", e.to_string()))
}

/// A chunk's runs: each with its own fuel and memory, the chunk's
/// deadline bounding their time.
fn chunk_factory<'a>(
    tasks: &'a Tasks,
    plugin: std::sync::Arc<stratbox_sandbox::Plugin>,
    b: &stratbox_store::BacktestDefinition,
    ctx: &TaskContext,
    started: Instant,
) -> PluginFactory<'a> {
    PluginFactory {
        sandbox: &tasks.sandbox,
        plugin,
        limits: run_limits(&b.limits, None),
        cancel: ctx.cancel.clone(),
        until: Some(started + ctx.timeout.max(Duration::from_millis(1))),
    }
}

/// A chunk's params as numbered combinations.
fn combinations(payload: &ChunkPayload) -> Vec<optimize::Combination> {
    payload
        .params
        .iter()
        .enumerate()
        .map(|(i, p)| optimize::Combination {
            index: payload.first_index + i,
            params: Params(p.0.clone()),
        })
        .collect()
}

/// Every chunk's rows so far.
fn all_rows(store: &Store, rt: &tokio::runtime::Handle, id: u64) -> Result<Vec<Row>, TaskError> {
    let results = rt.block_on(store.chunk_results(id)).map_err(store_error)?;
    let mut rows: Vec<Row> = Vec::new();
    for (chunk, json) in results {
        let part: Vec<Row> = serde_json::from_str(&json).map_err(|e| {
            TaskError::permanent("corrupt_chunk", format!("chunk {chunk} rows: {e}"))
        })?;
        rows.extend(part);
    }
    Ok(rows)
}

/// A Bayesian search's round is in (all `chunks` so far): submits the
/// next batch's chunks, or reduces when none is left. Only the completion
/// that finds the record at `chunks` submits; another finds it moved on.
fn next_round(
    store: &Store,
    rt: &tokio::runtime::Handle,
    id: u64,
    def: &OptimizationDefinition,
    bayes: Bayes,
    chunks: usize,
) -> Result<(), TaskError> {
    let rows = all_rows(store, rt, id)?;
    let schema = plugin_schema(store, rt, def)?;
    let batch = next_batch(def, &schema, bayes, &rows)
        .map_err(|e| TaskError::permanent("invalid_optimization", e.to_string()))?;
    if batch.is_empty() {
        return reduce_rows(store, rt, id, def, rows);
    }
    let objective = Objective::new(&def.metric, def.direction, def.min_trades)
        .map_err(|e| TaskError::permanent("invalid_optimization", e.to_string()))?;
    let done = rows.len();
    let trials = trials_so_far(&rank(&objective, rows), done)?;
    let specs = chunk_specs(store, id, def, chunks, &batch, None)?;
    let key = store.keys().optimization(id);
    let guards = [
        Guard {
            key: key.clone(),
            field: fields::STATUS.into(),
            expect: "running".into(),
            set: Vec::new(),
            index: None,
        },
        Guard {
            key,
            field: fields::CHUNKS.into(),
            expect: chunks.to_string(),
            // The round's progress moves with its submission: a second
            // completion finds the guard moved on and writes nothing.
            set: vec![
                (fields::CHUNKS.into(), (chunks + specs.len()).to_string()),
                (fields::TRIALS.into(), trials),
            ],
            index: None,
        },
    ];
    match rt.block_on(submitter(store)?.submit_guarded(&specs, &guards)) {
        Ok(_) | Err(stratbox_queue::QueueError::GuardFailed(_)) => Ok(()),
        Err(e) => Err(TaskError::transient("redis_error", e.to_string())),
    }
}

/// A walk-forward's every chunk is in: ranks each window's rows, runs
/// the report, writes it with the last window's table (the params one
/// would trade next). A second reducer finds it completed.
fn reduce_walk_forward(
    tasks: &Tasks,
    rt: &tokio::runtime::Handle,
    id: u64,
    def: &OptimizationDefinition,
    ctx: &TaskContext,
) -> Result<(), TaskError> {
    let store = &tasks.store;
    let Some(wf) = &def.walk_forward else {
        return reduce(store, rt, id, def);
    };
    let schema = plugin_schema(store, rt, def)?;
    let combos = combinations_of(def, &schema)
        .map_err(|e| TaskError::permanent("invalid_optimization", e.to_string()))?;
    let per_window = combos.len().div_ceil(def.chunk_size.max(1)).max(1);
    let (candles, windows) = windows_of(tasks, rt, def)?;
    let mut rows: Vec<Vec<Row>> = vec![Vec::new(); windows.len()];
    for (chunk, json) in rt.block_on(store.chunk_results(id)).map_err(store_error)? {
        let part: Vec<Row> = serde_json::from_str(&json).map_err(|e| {
            TaskError::permanent("corrupt_chunk", format!("chunk {chunk} rows: {e}"))
        })?;
        let slot = rows.get_mut(chunk / per_window).ok_or_else(|| {
            TaskError::permanent("corrupt_chunk", format!("chunk {chunk} is in no window"))
        })?;
        slot.extend(part);
    }
    let objective = Objective::new(&def.metric, def.direction, def.min_trades)
        .map_err(|e| TaskError::permanent("invalid_optimization", e.to_string()))?;
    let tables: Vec<optimize::Table> = rows.into_iter().map(|r| rank(&objective, r)).collect();
    let b = &def.backtest;
    let factory = PluginFactory {
        sandbox: &tasks.sandbox,
        plugin: load_plugin(tasks, rt, &b.strategy_sha256)?,
        limits: run_limits(&b.limits, None),
        cancel: ctx.cancel.clone(),
        until: Some(Instant::now() + ctx.timeout.max(Duration::from_millis(1))),
    };
    let mut config = engine_config(b);
    if config.market == Market::LinearPerpetual {
        config.perp = perp_config(tasks, rt, b)?;
    }
    let report = walkforward::report(&factory, &candles, wf, &windows, &tables, &config)
        .map_err(engine_error)?;
    let json = serde_json::to_string(&report)
        .map_err(|e| TaskError::permanent("report_error", e.to_string()))?;
    let last = tables
        .last()
        .ok_or_else(|| TaskError::permanent("invalid_walk_forward", "no windows"))?;
    let top = serde_json::to_string(last.top(TOP_KEPT))
        .map_err(|e| TaskError::permanent("report_error", e.to_string()))?;
    let dsr = last.deflated_sharpe(b.timeframe_secs);
    rt.block_on(store.complete_walk_forward(id, &last.to_csv(), &top, dsr, &json))
        .map_err(store_error)?;
    Ok(())
}

/// Ranks every chunk's rows and writes the table (once: a second reducer
/// finds the optimization completed and changes nothing).
fn reduce(
    store: &Store,
    rt: &tokio::runtime::Handle,
    id: u64,
    def: &OptimizationDefinition,
) -> Result<(), TaskError> {
    let rows = all_rows(store, rt, id)?;
    reduce_rows(store, rt, id, def, rows)
}

fn reduce_rows(
    store: &Store,
    rt: &tokio::runtime::Handle,
    id: u64,
    def: &OptimizationDefinition,
    rows: Vec<Row>,
) -> Result<(), TaskError> {
    let objective = Objective::new(&def.metric, def.direction, def.min_trades)
        .map_err(|e| TaskError::permanent("invalid_optimization", e.to_string()))?;
    let done = rows.len();
    let table = rank(&objective, rows);
    let top = serde_json::to_string(table.top(TOP_KEPT))
        .map_err(|e| TaskError::permanent("report_error", e.to_string()))?;
    let deflated_sharpe = table.deflated_sharpe(def.backtest.timeframe_secs);
    let trials = match def.bayes {
        Some(_) => Some(trials_so_far(&table, done)?),
        None => None,
    };
    rt.block_on(store.complete_optimization(
        id,
        &table.to_csv(),
        &top,
        deflated_sharpe,
        trials.as_deref(),
    ))
    .map_err(store_error)?;
    Ok(())
}

/// A Bayesian search's progress as the record keeps it
/// (`fields::TRIALS`): the trials in, and the row ranking first among
/// them (as the final ranking would rank it, ties by index), or null.
fn trials_so_far(table: &optimize::Table, done: usize) -> Result<String, TaskError> {
    let best = table.rows.first().filter(|r| r.rank == Some(1));
    serde_json::to_string(&serde_json::json!({"done": done, "best": best}))
        .map_err(|e| TaskError::permanent("report_error", e.to_string()))
}
