//! The backtest task: submission (validated before anything is queued)
//! and the run on a worker.

use super::{TaskContext, Tasks, KIND_BACKTEST};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use stratbox_engine::perp::{Funding, PerpConfig};
use stratbox_engine::{self as engine, BacktestConfig, Market, ParamInput, Params};
use stratbox_queue::{Guard, Queue, QueueError, Record, TaskError, TaskSpec};
use stratbox_sandbox::{RunError, RunLimits};
use stratbox_store::backtests::{fields, BacktestDefinition};
use stratbox_store::{PluginRecord, SeriesInfo, Store, StoreError};

/// What a client asks for; the same fields a stored definition keeps.
pub type BacktestRequest = BacktestDefinition;

/// The queue payload of one backtest run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BacktestPayload {
    pub backtest_id: u64,
    pub definition: BacktestDefinition,
    /// Candle series version seen at submission: the worker's cache may
    /// serve any version at least this new without asking Redis.
    pub candles_version: u64,
}

impl BacktestPayload {
    /// The payload's JSON around a definition already serialised (for its
    /// record): byte for byte what serde_json writes for the struct.
    pub fn json(backtest_id: u64, definition_json: &str, candles_version: u64) -> String {
        format!(
            r#"{{"backtest_id":{backtest_id},"definition":{definition_json},"candles_version":{candles_version}}}"#
        )
    }
}

/// Why a submission was refused. Nothing is queued for any of these.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("strategy {0} not found")]
    UnknownStrategy(String),
    #[error("backtest {0} not found")]
    UnknownBacktest(u64),
    #[error("{0}")]
    Param(#[from] engine::ParamError),
    #[error("no candles for {symbol} {timeframe}")]
    UnknownCandles { symbol: String, timeframe: String },
    #[error("invalid {field}: {message}")]
    Invalid { field: String, message: String },
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("queue: {0}")]
    Queue(#[from] QueueError),
}

impl SubmitError {
    /// The request field the error is about, when there is one.
    pub fn field(&self) -> Option<&str> {
        match self {
            SubmitError::UnknownStrategy(_) => Some("strategy_id"),
            SubmitError::Param(e) => Some(e.field()),
            SubmitError::UnknownCandles { .. } => Some("symbol"),
            SubmitError::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }
}

/// A refusal of `field`; nothing is queued.
pub(super) fn invalid(field: &str, message: impl Into<String>) -> SubmitError {
    SubmitError::Invalid {
        field: field.to_string(),
        message: message.into(),
    }
}

/// The server's maxima for per-task limits (docs/http-api.md, "Per-task
/// limits"), each overridable by environment for the API and scheduler
/// processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitCaps {
    /// `STRATBOX_MAX_TASK_FUEL`: 10^12, 50 times the default budget of a
    /// 1,000,000-bar run (10^8 + 20,000 per bar): room for heavy
    /// strategies, while the timeout still bounds a run's wall time.
    pub max_fuel: u64,
    /// `STRATBOX_MEMORY_MIB` (the worker's own cap, read from the same
    /// variable): a worker's pooled memories are that size, so it cannot
    /// give a run more.
    pub max_memory_mib: u64,
    /// `STRATBOX_MAX_TASK_TIMEOUT_MS`: 6 hours. Longer attempts hold a
    /// slot through worker restarts and deploys; split the work instead.
    pub max_timeout_ms: u64,
}

impl Default for LimitCaps {
    fn default() -> Self {
        LimitCaps {
            max_fuel: 1_000_000_000_000,
            max_memory_mib: (stratbox_sandbox::SandboxConfig::default().memory_limit_bytes >> 20)
                as u64,
            max_timeout_ms: 6 * 3_600 * 1_000,
        }
    }
}

impl LimitCaps {
    /// The defaults with the environment's overrides (a value that is not
    /// a positive number is ignored), read once per process: every
    /// submission asks, and the environment does not change under it.
    pub fn from_env() -> Self {
        static CAPS: std::sync::OnceLock<LimitCaps> = std::sync::OnceLock::new();
        *CAPS.get_or_init(Self::read_env)
    }

    fn read_env() -> Self {
        let read = |name: &str, default: u64| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .filter(|v| *v > 0)
                .unwrap_or(default)
        };
        let d = LimitCaps::default();
        LimitCaps {
            max_fuel: read("STRATBOX_MAX_TASK_FUEL", d.max_fuel),
            max_memory_mib: read("STRATBOX_MEMORY_MIB", d.max_memory_mib),
            max_timeout_ms: read("STRATBOX_MAX_TASK_TIMEOUT_MS", d.max_timeout_ms),
        }
    }

    /// Checks a run's limits; the error names the field.
    pub fn check(&self, limits: &stratbox_store::TaskLimits) -> Result<(), SubmitError> {
        let bounded = |field: &str, value: Option<u64>, max: u64, unit: &str| match value {
            Some(0) => Err(invalid(field, "must be at least 1")),
            Some(v) if v > max => Err(invalid(
                field,
                format!("{v} {unit} is above the server's maximum of {max} {unit}"),
            )),
            _ => Ok(()),
        };
        bounded("fuel", limits.fuel, self.max_fuel, "units")?;
        bounded("memory_mib", limits.memory_mib, self.max_memory_mib, "MiB")?;
        bounded("timeout_ms", limits.timeout_ms, self.max_timeout_ms, "ms")
    }
}

/// How a backtest is queued.
#[derive(Debug, Clone, PartialEq)]
pub struct SubmitOptions {
    /// Celery-style number: 0-3 low, 4-6 normal, 7+ high.
    pub priority: i64,
    /// Wall-clock limit of one attempt (default: the worker's).
    pub timeout_ms: Option<u64>,
    /// Deliveries before the dead-letter stream (default: the queue's).
    pub max_attempts: Option<u32>,
}

impl Default for SubmitOptions {
    fn default() -> Self {
        Self {
            priority: stratbox_queue::task::DEFAULT_PRIORITY,
            timeout_ms: None,
            max_attempts: None,
        }
    }
}

/// Validates a backtest against the stored plugin's schema and the stored
/// candles, records it, and queues it. Returns (backtest id, task id).
pub async fn submit_backtest(
    store: &Store,
    queue: &Queue,
    request: &BacktestRequest,
    priority: i64,
) -> Result<(u64, String), SubmitError> {
    let options = SubmitOptions {
        priority,
        ..SubmitOptions::default()
    };
    submit_backtest_with(store, queue, request, &options).await
}

/// [`submit_backtest`] with every queueing option.
pub async fn submit_backtest_with(
    store: &Store,
    queue: &Queue,
    request: &BacktestRequest,
    options: &SubmitOptions,
) -> Result<(u64, String), SubmitError> {
    single(submit_backtests(store, queue, std::slice::from_ref(request), options).await)
}

/// The one submission of a one-request batch.
fn single(
    submitted: Result<Vec<(u64, String)>, (usize, SubmitError)>,
) -> Result<(u64, String), SubmitError> {
    submitted
        .map_err(|(_, e)| e)?
        .pop()
        .ok_or_else(|| invalid("request", "nothing was submitted"))
}

/// Many backtests at once: each is validated (plugin and candles looked
/// up once per distinct one), then all are recorded and queued in a few
/// round trips, all or none. An error gives the index of the request.
pub async fn submit_backtests(
    store: &Store,
    queue: &Queue,
    requests: &[BacktestRequest],
    options: &SubmitOptions,
) -> Result<Vec<(u64, String)>, (usize, SubmitError)> {
    submit_validated(
        store,
        queue,
        requests,
        options,
        Validator::new(store),
        |_| None,
    )
    .await
}

/// Checks a request as a submission would, without queueing anything;
/// the definition comes back with its params resolved.
pub async fn validate_backtest(
    store: &Store,
    request: &BacktestRequest,
) -> Result<BacktestDefinition, SubmitError> {
    Ok(Validator::new(store).check(request).await?.0)
}

/// One backtest, submitted only if `guard` (built from the backtest id)
/// holds: `SubmitError::Queue(QueueError::GuardFailed)` when another
/// process went first.
pub async fn submit_backtest_guarded(
    store: &Store,
    queue: &Queue,
    request: &BacktestRequest,
    options: &SubmitOptions,
    guard: impl FnOnce(u64) -> Guard,
) -> Result<(u64, String), SubmitError> {
    single(
        submit_validated(
            store,
            queue,
            std::slice::from_ref(request),
            options,
            Validator::new(store),
            |ids| ids.first().map(|id| guard(*id)),
        )
        .await,
    )
}

/// [`submit_backtest_with`] for a caller that has just read the plugin
/// record (the API, resolving `strategy_id`), and maybe the candle series
/// next to it: neither is read again.
pub async fn submit_backtest_for_plugin(
    store: &Store,
    queue: &Queue,
    request: &BacktestRequest,
    plugin: PluginRecord,
    series: Option<SeriesInfo>,
    options: &SubmitOptions,
) -> Result<(u64, String), SubmitError> {
    let mut validator = Validator::new(store);
    validator
        .plugins
        .insert(plugin.sha256.clone(), Arc::new(plugin));
    if let Some(series) = series {
        validator
            .series
            .insert((series.symbol.clone(), series.timeframe_secs), series);
    }
    single(
        submit_validated(
            store,
            queue,
            std::slice::from_ref(request),
            options,
            validator,
            |_| None,
        )
        .await,
    )
}

async fn submit_validated(
    store: &Store,
    queue: &Queue,
    requests: &[BacktestRequest],
    options: &SubmitOptions,
    mut validator: Validator<'_>,
    guard: impl FnOnce(&[u64]) -> Option<Guard>,
) -> Result<Vec<(u64, String)>, (usize, SubmitError)> {
    let mut checked = Vec::with_capacity(requests.len());
    for (i, request) in requests.iter().enumerate() {
        checked.push(validator.check(request).await.map_err(|e| (i, e))?);
    }
    let ids = store
        .allocate_backtest_ids(checked.len())
        .await
        .map_err(|e| (0, e.into()))?;
    let mut specs = Vec::with_capacity(ids.len());
    for (i, (&backtest_id, (definition, candles_version))) in ids.iter().zip(checked).enumerate() {
        // The record is created by the submission itself: one round trip,
        // and never a record without its task.
        let init = store
            .backtest_init_fields(&definition)
            .map_err(|e| (i, e.into()))?;
        // The record's definition, serialised once for the payload too.
        let definition_json = init
            .iter()
            .find(|(name, _)| name == fields::DEFINITION)
            .map(|(_, json)| json.as_str());
        let mut spec = task_spec(
            store,
            backtest_id,
            &definition,
            definition_json,
            candles_version,
            options,
        )
        .map_err(|e| (i, e))?;
        if let Some(record) = spec.record.as_mut() {
            record.init = init;
            record.index = Some((store.keys().backtests(), backtest_id.to_string()));
        }
        specs.push(spec);
    }
    let guard = guard(&ids);
    let task_ids = queue
        .submit_guarded(&specs, guard.as_slice())
        .await
        .map_err(|e| (0, e.into()))?;
    Ok(ids.into_iter().zip(task_ids).collect())
}

/// Runs a stored backtest again (`POST /backtest/run`): validated again,
/// since its plugin or candles may have changed since.
pub async fn resubmit_backtest(
    store: &Store,
    queue: &Queue,
    backtest_id: u64,
    priority: i64,
) -> Result<String, SubmitError> {
    let record = store
        .get_backtest(backtest_id)
        .await?
        .ok_or(SubmitError::UnknownBacktest(backtest_id))?;
    let (definition, candles_version) = Validator::new(store).check(&record.definition).await?;
    let options = SubmitOptions {
        priority,
        ..SubmitOptions::default()
    };
    let spec = task_spec(
        store,
        backtest_id,
        &definition,
        None,
        candles_version,
        &options,
    )?;
    // Deleted since it was read (DELETE /backtests/{id}): nothing is
    // queued, rather than a record without its definition.
    let exists = Guard {
        key: store.keys().backtest(backtest_id),
        field: fields::CREATED_AT_MS.into(),
        expect: record.created_at_ms.to_string(),
        set: Vec::new(),
        index: None,
    };
    match queue
        .submit_guarded(std::slice::from_ref(&spec), &[exists])
        .await
    {
        Ok(mut ids) => ids
            .pop()
            .ok_or_else(|| invalid("request", "nothing was submitted")),
        Err(QueueError::GuardFailed(_)) => Err(SubmitError::UnknownBacktest(backtest_id)),
        Err(e) => Err(e.into()),
    }
}

/// `definition_json`: the definition as serde_json writes it, when the
/// caller has it already.
fn task_spec(
    store: &Store,
    backtest_id: u64,
    definition: &BacktestDefinition,
    definition_json: Option<&str>,
    candles_version: u64,
    options: &SubmitOptions,
) -> Result<TaskSpec, SubmitError> {
    let holds = store.keys().plugin_tasks(&definition.strategy_sha256);
    let serialised;
    let definition_json = match definition_json {
        Some(json) => json,
        None => {
            serialised =
                serde_json::to_string(definition).map_err(|e| invalid("payload", e.to_string()))?;
            &serialised
        }
    };
    let payload = BacktestPayload::json(backtest_id, definition_json, candles_version);
    let mut spec = super::tenant_task(store, KIND_BACKTEST, payload);
    spec.priority = options.priority;
    spec.timeout_ms = options.timeout_ms.or(definition.limits.timeout_ms);
    spec.max_attempts = options.max_attempts;
    let mut record = Record::new(store.keys().backtest(backtest_id), fields::REPORT);
    record.hosts_task = true;
    spec.record = Some(record);
    spec.holds = Some(holds);
    Ok(spec)
}

/// Checks everything a worker would trip on. Plugins and candle series
/// are read once per distinct one, so a batch costs a few round trips.
pub(super) struct Validator<'a> {
    store: &'a Store,
    plugins: HashMap<String, Arc<PluginRecord>>,
    series: HashMap<(String, i64), SeriesInfo>,
    /// Stored instruments by symbol (perpetual requests only).
    instruments: HashMap<String, Option<Arc<engine::perp::Instrument>>>,
    caps: LimitCaps,
}

impl<'a> Validator<'a> {
    pub(super) fn new(store: &'a Store) -> Self {
        Self {
            store,
            plugins: HashMap::new(),
            series: HashMap::new(),
            instruments: HashMap::new(),
            caps: LimitCaps::from_env(),
        }
    }

    /// The definition with its params resolved (defaults filled) and the
    /// candle version it was checked against.
    pub(super) async fn check(
        &mut self,
        request: &BacktestRequest,
    ) -> Result<(BacktestDefinition, u64), SubmitError> {
        self.caps.check(&request.limits)?;
        if request.funding_rate.is_some() && request.market != Market::LinearPerpetual {
            return Err(invalid(
                "funding_rate",
                "only for a perpetual run (set market to linear_perpetual)",
            ));
        }
        // The account settings first; a perpetual's contract is checked
        // once the symbol is known.
        let mut config = engine_config(request);
        config.market = Market::Spot;
        config.check().map_err(config_error)?;
        if let Some(rate) = request.funding_rate {
            engine::perp::Funding::Constant(rate)
                .check()
                .map_err(|e| invalid("funding_rate", e.message))?;
        }
        if request.start_ts > request.end_ts {
            return Err(invalid(
                "start_date",
                format!(
                    "start ({}) is after end ({})",
                    request.start_ts, request.end_ts
                ),
            ));
        }
        let plugin = match self.plugins.get(&request.strategy_sha256) {
            Some(plugin) => plugin.clone(),
            None => {
                let plugin = self
                    .store
                    .plugin_record_by_sha(&request.strategy_sha256)
                    .await?
                    .map(Arc::new)
                    .ok_or_else(|| SubmitError::UnknownStrategy(request.strategy_sha256.clone()))?;
                self.plugins
                    .insert(request.strategy_sha256.clone(), plugin.clone());
                plugin
            }
        };
        let params = resolve_params(&plugin.description.params, &request.params)?;
        // A portfolio strategy given one symbol runs a portfolio of one.
        let universe: Vec<String> = match (request.symbols.is_empty(), plugin.portfolio) {
            (true, false) => Vec::new(),
            (true, true) => vec![request.symbol.clone()],
            (false, true) => request.symbols.clone(),
            (false, false) => {
                return Err(invalid(
                    "symbols",
                    format!(
                        "strategy {} trades one symbol; several symbols need a strategy that \
                         exports the `portfolio` interface (docs/strategies.md)",
                        plugin.description.name
                    ),
                ))
            }
        };
        if universe.len() > engine::portfolio::MAX_SYMBOLS {
            return Err(invalid(
                "symbols",
                format!(
                    "at most {} symbols in one backtest, got {}",
                    engine::portfolio::MAX_SYMBOLS,
                    universe.len()
                ),
            ));
        }
        let mut canonical = Vec::with_capacity(universe.len());
        for symbol in &universe {
            let series = self.check_series(request, symbol).await?;
            if canonical.contains(&series.symbol) {
                return Err(invalid(
                    "symbols",
                    format!("{} is named twice", series.symbol),
                ));
            }
            canonical.push(series.symbol);
        }
        let series = self.check_series(request, &request.symbol).await?;
        let mut definition = request.clone();
        if !canonical.is_empty() {
            definition.symbol = canonical[0].clone();
            definition.symbols = canonical;
        } else {
            definition.symbol = series.symbol.clone();
        }
        definition.params = params
            .0
            .iter()
            .map(|(name, value)| (name.clone(), serde_json::json!(value)))
            .collect();
        Ok((definition, series.version))
    }

    /// A symbol's stored series, checked against the request's range (and,
    /// for a perpetual, its instrument and marks); errors name the symbol.
    async fn check_series(
        &mut self,
        request: &BacktestRequest,
        symbol: &str,
    ) -> Result<SeriesInfo, SubmitError> {
        // Only errors name the timeframe: a bulk submission checks
        // thousands of requests per series.
        let timeframe = || stratbox_engine::candles::format_timeframe(request.timeframe_secs);
        let key = (symbol.to_ascii_uppercase(), request.timeframe_secs);
        if !self.series.contains_key(&key) {
            let series = self
                .store
                .series_info(symbol, request.timeframe_secs)
                .await?
                .ok_or_else(|| SubmitError::UnknownCandles {
                    symbol: symbol.to_string(),
                    timeframe: timeframe(),
                })?;
            self.series.insert(key.clone(), series);
        }
        let series = &self.series[&key];
        if request.end_ts < series.first_ts || request.start_ts > series.last_ts {
            return Err(invalid(
                if request.symbols.is_empty() {
                    "start_date"
                } else {
                    "symbols"
                },
                format!(
                    "no {} {} candles between {} and {} (held: {} to {})",
                    series.symbol,
                    timeframe(),
                    request.start_ts,
                    request.end_ts,
                    series.first_ts,
                    series.last_ts
                ),
            ));
        }
        let series = series.clone();
        if request.market == Market::LinearPerpetual {
            let symbol = series.symbol.clone();
            let instrument = match self.instruments.get(&symbol) {
                Some(instrument) => instrument.clone(),
                None => {
                    let instrument = self.store.get_instrument(&symbol).await?.map(Arc::new);
                    self.instruments.insert(symbol, instrument.clone());
                    instrument
                }
            };
            let mut config = engine_config(request);
            config.perp.instrument = instrument;
            config.check().map_err(config_error)?;
            // The run's bars need marks at both ends (engine rule
            // `check_mark_covers`); refused here so nothing is queued.
            let mark_symbol = stratbox_store::Keys::mark_symbol(&series.symbol);
            if let Some(mark) = self
                .store
                .series_info(&mark_symbol, request.timeframe_secs)
                .await?
            {
                let first = request.start_ts.max(series.first_ts);
                let last = request.end_ts.min(series.last_ts);
                if mark.first_ts > first || mark.last_ts < last {
                    let fmt = engine::time::format_rfc3339_secs;
                    return Err(invalid(
                        "mark",
                        format!(
                            "the stored mark series of {} covers {} to {}, not the run's {} to {}; fetch or import the missing marks",
                            series.symbol,
                            fmt(mark.first_ts),
                            fmt(mark.last_ts),
                            fmt(first),
                            fmt(last)
                        ),
                    ));
                }
            }
        }
        Ok(series)
    }
}

fn resolve_params(
    schema: &[engine::ParamSpec],
    given: &BTreeMap<String, serde_json::Value>,
) -> Result<Params, engine::ParamError> {
    let inputs: BTreeMap<String, ParamInput> = given
        .iter()
        .map(|(name, value)| (name.clone(), ParamInput::Json(value.clone())))
        .collect();
    Params::validate(schema, &inputs)
}

fn config_error(e: engine::EngineError) -> SubmitError {
    match e {
        engine::EngineError::InvalidConfig { field, message } => invalid(field, message),
        other => invalid("config", other.to_string()),
    }
}

/// The account settings and the market of a definition; a perpetual's
/// instrument, funding and marks are added by [`perp_config`].
pub(super) fn engine_config(definition: &BacktestDefinition) -> BacktestConfig {
    BacktestConfig {
        initial_capital: definition.initial_capital,
        commission: definition.commission,
        slippage_bps: definition.slippage_bps,
        leverage: definition.leverage,
        market: definition.market,
        ..BacktestConfig::default()
    }
}

/// A perpetual run's contract, funding and marks from what is stored for
/// the symbol: its instrument (else the default), its funding history
/// over the range (else the definition's constant rate, else none) and
/// its mark series `{SYMBOL}.MARK` over the range, when there is one.
pub(super) fn perp_config(
    tasks: &Tasks,
    rt: &tokio::runtime::Handle,
    definition: &BacktestDefinition,
) -> Result<PerpConfig, TaskError> {
    let symbol = &definition.symbol;
    let instrument = rt
        .block_on(tasks.store.get_instrument(symbol))
        .map_err(store_error)?
        .map(Arc::new);
    // A settlement inside the last bar still falls in the run.
    let end_ts = definition.end_ts.saturating_add(definition.timeframe_secs);
    let rows = rt
        .block_on(
            tasks
                .store
                .load_funding(symbol, definition.start_ts, end_ts),
        )
        .map_err(store_error)?;
    let funding = if !rows.is_empty() {
        Funding::history(rows)
            .map_err(|e| TaskError::permanent("invalid_funding", e.to_string()))?
    } else if let Some(rate) = definition.funding_rate {
        Funding::Constant(rate)
    } else {
        Funding::None
    };
    let mark = match rt.block_on(tasks.store.load_mark(
        &tasks.candles,
        symbol,
        definition.timeframe_secs,
        definition.start_ts,
        definition.end_ts,
    )) {
        Ok(candles) if !candles.is_empty() => Some(Arc::new(candles)),
        Ok(_) | Err(StoreError::NotFound { .. }) => None,
        Err(e) => return Err(store_error(e)),
    };
    Ok(PerpConfig {
        instrument,
        funding,
        mark,
    })
}

/// Runs a backtest on a worker's slot thread (a blocking thread: the
/// strategy run and any compile happen right here); Redis reads go through
/// `rt`. The result is the report JSON, the same bytes `stratbox backtest
/// --json` prints for the same inputs.
pub(super) fn run(
    tasks: &Tasks,
    rt: &tokio::runtime::Handle,
    payload: &str,
    task_id: &str,
    ctx: &TaskContext,
) -> Result<String, TaskError> {
    let payload: BacktestPayload = serde_json::from_str(payload)
        .map_err(|e| TaskError::permanent("bad_payload", format!("backtest payload: {e}")))?;
    let plugin = load_plugin(tasks, rt, &payload.definition.strategy_sha256)?;
    let params = resolve_params(&plugin.description.params, &payload.definition.params)
        .map_err(|e| TaskError::permanent("invalid_params", e.to_string()))?;
    if !payload.definition.symbols.is_empty() {
        return run_portfolio(tasks, rt, &payload, &plugin, &params, task_id, ctx);
    }
    let definition = payload.definition;
    let candles = load_range(tasks, rt, &definition, payload.candles_version)?;
    let mut config = engine_config(&definition);
    if config.market == Market::LinearPerpetual {
        config.perp = perp_config(tasks, rt, &definition)?;
        config
            .check()
            .map_err(|e| TaskError::permanent("invalid_config", e.to_string()))?;
    }
    let limits = run_limits(&definition.limits, Some(ctx.timeout));
    let mut strategy = tasks
        .sandbox
        .instantiate(&plugin, &params, candles.len(), limits, ctx.cancel.clone())
        .map_err(|e| run_error(&e))?;
    let bars = candles.len() as f64;
    let run = engine::run_backtest_observed(&candles, &mut strategy, &config, &mut |done| {
        ctx.set_progress(done as f64 / bars)
    });
    // Kept whether the run succeeded or not: a failed run's log is what
    // says why.
    keep_log(tasks, rt, payload.backtest_id, task_id, &strategy)?;
    let mut report = run.map_err(engine_error)?;
    report.strategy = Some(plugin.info(&params));
    // Stored with its curve in columns; readers expand it (`store`).
    report
        .into_compact_json()
        .map_err(|e| TaskError::permanent("report_error", e.to_string()))
}

/// [`run`] over several symbols (docs/conventions/engine.md, "Several
/// symbols"): each symbol's candles (the first at the version checked at
/// submission, the others as the cache holds them) on one timeline, each
/// perpetual symbol with its own instrument, funding and marks.
fn run_portfolio(
    tasks: &Tasks,
    rt: &tokio::runtime::Handle,
    payload: &BacktestPayload,
    plugin: &stratbox_sandbox::Plugin,
    params: &Params,
    task_id: &str,
    ctx: &TaskContext,
) -> Result<String, TaskError> {
    let definition = &payload.definition;
    let (universe, perps) = load_universe(tasks, rt, definition, payload.candles_version)?;
    let config = engine_config(definition);
    let limits = run_limits(&definition.limits, Some(ctx.timeout));
    let mut strategy = tasks
        .sandbox
        .instantiate_portfolio(
            plugin,
            params,
            &universe,
            config.market,
            limits,
            ctx.cancel.clone(),
        )
        .map_err(|e| run_error(&e))?;
    let steps = universe.steps() as f64;
    let run =
        engine::portfolio::run_portfolio(&universe, &mut strategy, &config, &perps, &mut |done| {
            ctx.set_progress(done as f64 / steps)
        });
    let (lines, dropped) = strategy.log();
    keep_lines(tasks, rt, payload.backtest_id, task_id, lines, dropped)?;
    let mut report = run.map_err(engine_error)?;
    report.strategy = Some(plugin.info(params));
    report
        .into_compact_json()
        .map_err(|e| TaskError::permanent("report_error", e.to_string()))
}

/// The symbols of a definition on one timeline (the first symbol's candles
/// at least `version` new, the others as the cache holds them), and each
/// one's perpetual settings on a perpetual run (else none).
pub(super) fn load_universe(
    tasks: &Tasks,
    rt: &tokio::runtime::Handle,
    definition: &BacktestDefinition,
    version: u64,
) -> Result<(engine::portfolio::Universe, Vec<PerpConfig>), TaskError> {
    let mut series = Vec::with_capacity(definition.symbols.len());
    let mut perps = Vec::new();
    for (k, symbol) in definition.symbols.iter().enumerate() {
        let one = BacktestDefinition {
            symbol: symbol.clone(),
            symbols: Vec::new(),
            ..definition.clone()
        };
        let version = if k == 0 { version } else { 0 };
        let candles = load_range(tasks, rt, &one, version)?;
        series.push((symbol.clone(), Arc::new(candles)));
        if definition.market == Market::LinearPerpetual {
            perps.push(perp_config(tasks, rt, &one)?);
        }
    }
    let universe = engine::portfolio::Universe::new(series).map_err(engine_error)?;
    Ok((universe, perps))
}

/// A run's sandbox limits: its own fuel and memory where it set them (the
/// sandbox caps memory at its pool's size), and `deadline` (an
/// optimization chunk bounds its runs by the chunk's deadline instead).
pub(super) fn run_limits(
    limits: &stratbox_store::TaskLimits,
    deadline: Option<std::time::Duration>,
) -> RunLimits {
    RunLimits {
        fuel: limits.fuel,
        memory_limit_bytes: limits.memory_mib.map(|mib| {
            usize::try_from(mib)
                .unwrap_or(usize::MAX)
                .saturating_mul(1 << 20)
        }),
        deadline,
    }
}

/// Stores what the strategy logged, if anything (a quiet run, the usual
/// case, costs nothing).
fn keep_log(
    tasks: &Tasks,
    rt: &tokio::runtime::Handle,
    backtest_id: u64,
    task_id: &str,
    strategy: &stratbox_sandbox::WasmStrategy,
) -> Result<(), TaskError> {
    let (lines, dropped) = strategy.log();
    keep_lines(tasks, rt, backtest_id, task_id, lines, dropped)
}

fn keep_lines(
    tasks: &Tasks,
    rt: &tokio::runtime::Handle,
    backtest_id: u64,
    task_id: &str,
    lines: &[stratbox_sandbox::LogLine],
    dropped: u64,
) -> Result<(), TaskError> {
    if lines.is_empty() && dropped == 0 {
        return Ok(());
    }
    let log = stratbox_store::StrategyLog {
        task_id: task_id.to_string(),
        lines: lines
            .iter()
            .map(|l| stratbox_store::LogEntry {
                level: l.level.to_string(),
                message: l.message.clone(),
            })
            .collect(),
        dropped,
    };
    rt.block_on(tasks.store.put_backtest_log(backtest_id, &log))
        .map_err(store_error)
}

/// The compiled plugin: from the sandbox's memory, else from Redis once.
pub(super) fn load_plugin(
    tasks: &Tasks,
    rt: &tokio::runtime::Handle,
    sha256: &str,
) -> Result<Arc<stratbox_sandbox::Plugin>, TaskError> {
    if let Some(plugin) = tasks.sandbox.cached(sha256) {
        return Ok(plugin);
    }
    let bytes = rt
        .block_on(tasks.store.plugin_bytes(sha256))
        .map_err(store_error)?
        .ok_or_else(|| {
            TaskError::permanent(
                "plugin_not_found",
                format!("strategy {sha256} is not stored"),
            )
        })?;
    tasks
        .sandbox
        .load(&bytes)
        .map_err(|e| TaskError::permanent("invalid_plugin", e.to_string()))
}

/// The candles of a definition's range, at least `version` new. A cache
/// hit (the hot path) makes no round trip; no bars is a permanent error.
pub(super) fn load_range(
    tasks: &Tasks,
    rt: &tokio::runtime::Handle,
    definition: &BacktestDefinition,
    version: u64,
) -> Result<stratbox_engine::candles::Candles, TaskError> {
    let (candles, _version) = rt
        .block_on(tasks.store.load_candles(
            &tasks.candles,
            &definition.symbol,
            definition.timeframe_secs,
            definition.start_ts,
            definition.end_ts,
            version,
        ))
        .map_err(store_error)?;
    if candles.is_empty() {
        return Err(TaskError::permanent(
            "no_candles",
            format!(
                "no {} candles between {} and {}",
                definition.symbol, definition.start_ts, definition.end_ts
            ),
        ));
    }
    Ok(candles)
}

pub(super) fn store_error(e: StoreError) -> TaskError {
    match e {
        StoreError::Redis(e) => TaskError::transient("redis_error", e.to_string()),
        StoreError::NotFound { what } => {
            TaskError::permanent("not_found", format!("{what} not found"))
        }
        StoreError::Conflict { .. } => TaskError::transient("store_conflict", e.to_string()),
        other => TaskError::permanent("store_error", other.to_string()),
    }
}

pub(super) fn run_error(e: &RunError) -> TaskError {
    let code = e.code();
    match e {
        RunError::DeadlineExceeded { .. } => TaskError {
            code: code.into(),
            message: e.to_string(),
            transient: true,
            timeout: true,
        },
        RunError::Host { .. } => TaskError::transient(code, e.to_string()),
        _ => TaskError::permanent(code, e.to_string()),
    }
}

pub(super) fn engine_error(e: engine::EngineError) -> TaskError {
    match e {
        engine::EngineError::Strategy(inner) => match inner.downcast::<RunError>() {
            Ok(run) => run_error(&run),
            Err(other) => TaskError::permanent("strategy_error", other.to_string()),
        },
        engine::EngineError::Protocol(m) => TaskError::permanent("protocol_error", m),
        other => TaskError::permanent("engine_error", other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_json_is_what_serde_writes() {
        let definition = BacktestDefinition {
            strategy_sha256: "ab".repeat(32),
            strategy_id: Some(7),
            name: Some("a \"quoted\" name".into()),
            symbol: "BTCUSDT".into(),
            symbols: Vec::new(),
            timeframe_secs: 3600,
            start_ts: -86_400,
            end_ts: 1_704_423_600,
            initial_capital: 10_000.0,
            commission: 0.0006,
            leverage: 1.0,
            slippage_bps: 2.5,
            params: BTreeMap::from([
                ("fast".to_string(), serde_json::json!(5)),
                ("mode".to_string(), serde_json::json!("x\ny")),
            ]),
            market: Default::default(),
            funding_rate: None,
            limits: Default::default(),
        };
        let definition_json = serde_json::to_string(&definition).unwrap();
        let built = BacktestPayload::json(u64::MAX, &definition_json, 3);
        let payload = BacktestPayload {
            backtest_id: u64::MAX,
            definition,
            candles_version: 3,
        };
        assert_eq!(built, serde_json::to_string(&payload).unwrap());
        let back: BacktestPayload = serde_json::from_str(&built).unwrap();
        assert_eq!(back, payload);

        // A perpetual definition round-trips with its two fields.
        let mut perp = payload.clone();
        perp.definition.market = Market::LinearPerpetual;
        perp.definition.funding_rate = Some(-0.000_25);
        let definition_json = serde_json::to_string(&perp.definition).unwrap();
        let built = BacktestPayload::json(u64::MAX, &definition_json, 3);
        assert_eq!(built, serde_json::to_string(&perp).unwrap());
        assert!(built.contains(r#""market":"linear_perpetual","funding_rate":-0.00025"#));
        let back: BacktestPayload = serde_json::from_str(&built).unwrap();
        assert_eq!(back, perp);
        assert_eq!(
            engine_config(&back.definition).market,
            Market::LinearPerpetual
        );
    }
}
