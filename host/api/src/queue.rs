//! The old service's queue endpoints (field for field), plus tasks and
//! the dead-letter stream.

use std::collections::BTreeMap;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Scope;
use super::error::{ApiResult, AppError, ErrorBody, ErrorCode};
use super::quota::{admit, Admission};
use super::{AppState, HEALTH_TIMEOUT};
use stratbox_queue::{CancelState, Counters};
use stratbox_service::tasks;
use stratbox_store::BacktestDefinition;

const DEFAULT_PRIORITY: i64 = stratbox_queue::task::DEFAULT_PRIORITY;

#[derive(Debug, Deserialize, ToSchema)]
pub struct RunRequest {
    pub backtest_id: u64,
    #[serde(default)]
    pub priority: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RunResponse {
    pub task_id: String,
    pub status: String,
    pub message: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct StrategyConfig {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub params: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateAndRunRequest {
    /// The integer id from `POST /api/v1/strategies`.
    pub strategy_id: u64,
    /// The symbol of a one-symbol run; give `symbols` instead for several.
    #[serde(default)]
    pub symbol: String,
    /// Several symbols on one timeline, for a strategy that exports
    /// `portfolio` (docs/strategies.md, "Several symbols"). Every symbol's
    /// candles must be stored for the timeframe and range.
    #[serde(default)]
    pub symbols: Vec<String>,
    /// Like `1h`, `15m`, `1d`.
    pub timeframe: String,
    /// RFC 3339; bars with `start_date <= ts <= end_date` are used.
    pub start_date: String,
    pub end_date: String,
    #[serde(default = "default_capital")]
    pub initial_capital: f64,
    #[serde(default = "default_leverage")]
    pub leverage: f64,
    #[serde(default = "default_commission")]
    pub commission: f64,
    #[serde(default)]
    pub slippage_bps: f64,
    #[serde(default)]
    pub config: Option<StrategyConfig>,
    #[serde(default)]
    pub priority: Option<i64>,
    /// `spot` (the default) or `linear_perpetual`: a USDT-margined
    /// perpetual with the symbol's stored instrument (else BTCUSDT's),
    /// funding and mark prices.
    #[serde(default)]
    #[schema(value_type = Market)]
    pub market: stratbox_engine::Market,
    /// A constant funding rate per 8-hour settlement, for a
    /// `linear_perpetual` run of a symbol without stored funding history.
    #[serde(default)]
    pub funding_rate: Option<f64>,
    /// Fuel for this run (default: the worker's base + per bar), at most
    /// the server's maximum.
    #[serde(default)]
    pub fuel: Option<u64>,
    /// Strategy memory for this run in MiB (default and maximum: the
    /// server's).
    #[serde(default)]
    pub memory_mib: Option<u64>,
    /// Wall-clock limit of one attempt in ms (default: the queue's task
    /// timeout), at most the server's maximum.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

/// What a backtest trades (the schema of `stratbox_engine::Market`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)] // only its schema is used
pub enum Market {
    Spot,
    LinearPerpetual,
}

fn default_capital() -> f64 {
    10_000.0
}
fn default_leverage() -> f64 {
    1.0
}
fn default_commission() -> f64 {
    0.0006
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreateAndRunResponse {
    pub backtest_id: u64,
    pub task_id: String,
    pub status: String,
    pub message: String,
}

/// The five counters of the old service, exactly.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Metrics {
    pub tasks_submitted: i64,
    pub tasks_completed: i64,
    pub tasks_failed: i64,
    pub tasks_timeout: i64,
    pub active_tasks: i64,
}

impl From<Counters> for Metrics {
    fn from(c: Counters) -> Self {
        Metrics {
            tasks_submitted: c.tasks_submitted,
            tasks_completed: c.tasks_completed,
            tasks_failed: c.tasks_failed,
            tasks_timeout: c.tasks_timeout,
            active_tasks: c.active_tasks,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `healthy` or `unhealthy`.
    pub status: String,
    pub redis_connected: bool,
    /// Null when Redis is down.
    pub metrics: Option<Metrics>,
}

pub(super) fn priority(p: Option<i64>) -> ApiResult<i64> {
    match p {
        None => Ok(DEFAULT_PRIORITY),
        Some(p) if (0..=255).contains(&p) => Ok(p),
        Some(p) => Err(AppError::invalid(
            "priority",
            format!("{p} is outside 0..=255 (0-3 low, 4-6 normal, 7+ high)"),
        )),
    }
}

pub(super) fn date(field: &str, value: &str) -> ApiResult<i64> {
    stratbox_engine::time::parse_rfc3339_secs(value)
        .map_err(|m| AppError::invalid(field, format!("`{value}`: {m}")))
}

/// Queue a stored backtest again.
#[utoipa::path(post, path = "/api/v1/queue/backtest/run", tag = "queue",
    request_body = RunRequest,
    responses((status = 200, body = RunResponse),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody), (status = 429, body = ErrorBody, description = "over a tenant's quota (Retry-After)")),
    security((), ("bearer" = [])))]
pub async fn run_backtest(
    State(state): State<AppState>,
    scope: Scope,
    body: Result<Json<RunRequest>, JsonRejection>,
) -> ApiResult<Json<RunResponse>> {
    let Json(request) = body?;
    let priority = priority(request.priority)?;
    let admission = Admission {
        tasks: 1,
        results: 0,
    };
    admit(&state, &scope, admission, None).await?;
    let task_id =
        tasks::resubmit_backtest(&scope.store, &state.queue, request.backtest_id, priority).await?;
    Ok(Json(RunResponse {
        task_id,
        status: "submitted".into(),
        message: format!("Backtest {} submitted to queue", request.backtest_id),
    }))
}

/// Create a backtest and queue it; validated before anything is queued.
#[utoipa::path(post, path = "/api/v1/queue/backtest/create-and-run", tag = "queue",
    request_body = CreateAndRunRequest,
    responses((status = 200, body = CreateAndRunResponse),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody), (status = 429, body = ErrorBody, description = "over a tenant's quota (Retry-After)")),
    security((), ("bearer" = [])))]
pub async fn create_and_run(
    State(state): State<AppState>,
    scope: Scope,
    body: Result<Json<CreateAndRunRequest>, JsonRejection>,
) -> ApiResult<Json<CreateAndRunResponse>> {
    let Json(request) = body?;
    let mut parsed = parse_create(&scope.store, request).await?;
    let admission = Admission {
        tasks: 1,
        results: 1,
    };
    admit(
        &state,
        &scope,
        admission,
        Some(&mut parsed.definition.limits),
    )
    .await?;
    let options = tasks::SubmitOptions {
        priority: parsed.priority,
        ..tasks::SubmitOptions::default()
    };
    let (backtest_id, task_id) = tasks::submit_backtest_for_plugin(
        &scope.store,
        &state.queue,
        &parsed.definition,
        parsed.plugin,
        parsed.series,
        &options,
    )
    .await?;
    Ok(Json(CreateAndRunResponse {
        backtest_id,
        task_id,
        status: "submitted".into(),
        message: "Backtest created and submitted to queue".into(),
    }))
}

/// A create-and-run request with its fields parsed and its strategy
/// resolved: where a submission and a schedule both start.
pub(super) struct ParsedCreate {
    pub definition: BacktestDefinition,
    pub plugin: stratbox_store::PluginRecord,
    pub series: Option<stratbox_store::SeriesInfo>,
    pub priority: i64,
}

pub(super) async fn parse_create(
    store: &stratbox_store::Store,
    request: CreateAndRunRequest,
) -> ApiResult<ParsedCreate> {
    let priority = priority(request.priority)?;
    let symbol = match (request.symbol.is_empty(), request.symbols.first()) {
        (false, None) => request.symbol.clone(),
        (true, Some(first)) => first.clone(),
        // As serde would say it, had `symbol` stayed required: a missing
        // field is a 400, as it always was.
        (true, None) => {
            return Err(AppError::BadRequest(
                "Failed to deserialize the JSON body into the target type: missing field \
                 `symbol` (or give `symbols` for several)"
                    .into(),
            ))
        }
        (false, Some(_)) => {
            return Err(AppError::invalid(
                "symbols",
                "give `symbol` or `symbols`, not both",
            ))
        }
    };
    if let Some(empty) = request.symbols.iter().position(|s| s.trim().is_empty()) {
        return Err(AppError::invalid(
            "symbols",
            format!("symbols[{empty}] is empty"),
        ));
    }
    let timeframe_secs = stratbox_engine::candles::parse_timeframe(&request.timeframe)
        .map_err(|e| AppError::invalid("timeframe", e.to_string()))?;
    let start_ts = date("start_date", &request.start_date)?;
    let end_ts = date("end_date", &request.end_date)?;
    // Both lookups in flight at once: one round trip on the shared
    // connection. A failed series lookup is redone (and reported) by
    // the validation.
    let (plugin, series) = tokio::join!(
        store.plugin_record_by_id(request.strategy_id),
        store.series_info(&symbol, timeframe_secs)
    );
    let plugin = plugin?.ok_or_else(|| AppError::NotFound {
        code: ErrorCode::StrategyNotFound,
        field: Some("strategy_id".into()),
        message: format!("strategy {} not found", request.strategy_id),
    })?;
    let (name, params) = match request.config {
        Some(config) => (config.name, config.params),
        None => (None, BTreeMap::new()),
    };
    let definition = BacktestDefinition {
        strategy_sha256: plugin.sha256.clone(),
        strategy_id: Some(request.strategy_id),
        name,
        symbol,
        symbols: request.symbols,
        timeframe_secs,
        start_ts,
        end_ts,
        initial_capital: request.initial_capital,
        commission: request.commission,
        leverage: request.leverage,
        slippage_bps: request.slippage_bps,
        params,
        market: request.market,
        funding_rate: request.funding_rate,
        limits: stratbox_store::TaskLimits {
            fuel: request.fuel,
            memory_mib: request.memory_mib,
            timeout_ms: request.timeout_ms,
        },
    };
    Ok(ParsedCreate {
        definition,
        plugin,
        series: series.ok().flatten(),
        priority,
    })
}

/// Shared queue counters.
#[utoipa::path(get, path = "/api/v1/queue/metrics", tag = "queue",
    responses((status = 200, body = Metrics), (status = 503, body = ErrorBody)))]
pub async fn metrics(State(state): State<AppState>, scope: Scope) -> ApiResult<Json<Metrics>> {
    scope.require_install()?;
    Ok(Json(state.queue.counters().await?.into()))
}

/// Redis reachability and the counters; 503 while Redis is down.
#[utoipa::path(get, path = "/api/v1/queue/health", tag = "queue",
    responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn health(State(state): State<AppState>) -> Response {
    let counters = tokio::time::timeout(HEALTH_TIMEOUT, state.queue.counters()).await;
    match counters {
        Ok(Ok(counters)) => Json(Health {
            status: "healthy".into(),
            redis_connected: true,
            metrics: Some(counters.into()),
        })
        .into_response(),
        failed => {
            let cause = match failed {
                Ok(Err(e)) => e.to_string(),
                _ => format!("no reply within {HEALTH_TIMEOUT:?}"),
            };
            tracing::warn!(%cause, "health check: redis unavailable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(Health {
                    status: "unhealthy".into(),
                    redis_connected: false,
                    metrics: None,
                }),
            )
                .into_response()
        }
    }
}

/// A task as stored: status, attempts, times, errors, retries.
#[utoipa::path(get, path = "/api/v1/queue/tasks/{task_id}", tag = "queue",
    params(("task_id" = String, Path)),
    responses((status = 200, description = "the task: status, attempts, times, errors, retries"),
        (status = 404, body = ErrorBody)))]
pub async fn get_task(
    State(state): State<AppState>,
    scope: Scope,
    task_id: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<stratbox_queue::TaskInfo>> {
    let Path(task_id) = task_id?;
    visible_task(&state, &scope, &task_id).await.map(Json)
}

/// The task, if it is the caller's to see: another tenant's task is as
/// unknown as one that never was.
async fn visible_task(
    state: &AppState,
    scope: &Scope,
    task_id: &str,
) -> ApiResult<stratbox_queue::TaskInfo> {
    state
        .queue
        .task(task_id)
        .await?
        .filter(|info| scope.owns_task(info.lane.as_deref()))
        .ok_or_else(|| {
            AppError::not_found(ErrorCode::TaskNotFound, format!("task {task_id} not found"))
        })
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CancelResponse {
    pub task_id: String,
    /// `cancelled` (it was queued) or `cancelling` (its worker stops it).
    pub status: String,
}

/// Cancel a queued task at once, or ask a running one to stop.
#[utoipa::path(delete, path = "/api/v1/queue/tasks/{task_id}", tag = "queue",
    params(("task_id" = String, Path)),
    responses((status = 200, body = CancelResponse), (status = 202, body = CancelResponse),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security((), ("bearer" = [])))]
pub async fn cancel_task(
    State(state): State<AppState>,
    scope: Scope,
    task_id: Result<Path<String>, PathRejection>,
) -> ApiResult<(StatusCode, Json<CancelResponse>)> {
    let Path(task_id) = task_id?;
    if scope.tenant().is_some() || !scope.caller.admin {
        visible_task(&state, &scope, &task_id).await?;
    }
    let (code, status) = match state.queue.cancel(&task_id).await? {
        CancelState::Cancelled => (StatusCode::OK, "cancelled"),
        CancelState::Cancelling => (StatusCode::ACCEPTED, "cancelling"),
        CancelState::AlreadyFinished(s) => {
            return Err(AppError::Conflict(format!(
                "task {task_id} has already finished ({})",
                s.as_str()
            )))
        }
        CancelState::NotFound => {
            return Err(AppError::not_found(
                ErrorCode::TaskNotFound,
                format!("task {task_id} not found"),
            ))
        }
    };
    Ok((
        code,
        Json(CancelResponse {
            task_id,
            status: status.into(),
        }),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DlqQuery {
    /// Newest entries first; at most this many [default: 100].
    pub count: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DlqList {
    #[schema(value_type = Vec<Object>)]
    pub entries: Vec<stratbox_queue::DlqEntry>,
}

/// Dead-lettered tasks, newest first, with reason and attempts.
#[utoipa::path(get, path = "/api/v1/queue/dlq", tag = "queue", params(DlqQuery),
    responses((status = 200, body = DlqList)))]
pub async fn list_dlq(
    State(state): State<AppState>,
    scope: Scope,
    query: Result<Query<DlqQuery>, QueryRejection>,
) -> ApiResult<Json<DlqList>> {
    let Query(query) = query?;
    let count = query.count.unwrap_or(100).clamp(1, 10_000);
    Ok(Json(DlqList {
        // A tenant sees its own dead letters only.
        entries: state
            .queue
            .dlq_entries(count, scope.tenant().map(|t| t.as_str()))
            .await?,
    }))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct RequeueRequest {
    /// One DLQ entry id; absent requeues every entry.
    #[serde(default)]
    pub entry_id: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RequeueResponse {
    pub requeued: u64,
}

/// Requeue one dead letter (by entry id) or all, with fresh attempts.
#[utoipa::path(post, path = "/api/v1/queue/dlq/requeue", tag = "queue",
    request_body(content = RequeueRequest, description = "optional"),
    responses((status = 200, body = RequeueResponse), (status = 422, body = ErrorBody)),
    security((), ("bearer" = [])))]
pub async fn requeue_dlq(
    State(state): State<AppState>,
    scope: Scope,
    body: axum::body::Bytes,
) -> ApiResult<Json<RequeueResponse>> {
    scope.require_admin()?;
    // An empty body means "all", so no Content-Type is required.
    let request: RequeueRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RequeueRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| AppError::BadRequest(e.to_string()))?
    };
    Ok(Json(RequeueResponse {
        requeued: state.queue.requeue(request.entry_id.as_deref()).await?,
    }))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PurgeResponse {
    pub purged: u64,
}

/// Delete every dead letter.
#[utoipa::path(delete, path = "/api/v1/queue/dlq", tag = "queue",
    responses((status = 200, body = PurgeResponse)),
    security((), ("bearer" = [])))]
pub async fn purge_dlq(
    State(state): State<AppState>,
    scope: Scope,
) -> ApiResult<Json<PurgeResponse>> {
    scope.require_admin()?;
    Ok(Json(PurgeResponse {
        purged: state.queue.purge_dlq().await?,
    }))
}

/// One live worker process, from its heartbeat.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WorkerInfo {
    pub consumer: String,
    pub pid: Option<u64>,
    pub slots: Option<u64>,
    pub started_at_ms: Option<i64>,
    /// When its last heartbeat was written.
    pub seen_at_ms: Option<i64>,
    /// Ids of the tasks it runs now.
    #[serde(default)]
    pub running: Vec<String>,
    pub version: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QueueState {
    /// Waiting (not yet delivered) tasks per class: high, normal, low.
    #[schema(value_type = Object)]
    pub waiting: BTreeMap<&'static str, u64>,
    /// Delivered, not yet finished, per class.
    #[schema(value_type = Object)]
    pub pending: BTreeMap<&'static str, u64>,
    /// Retries waiting for their backoff.
    pub delayed: u64,
    pub dlq: u64,
    /// How long the oldest waiting task has waited, in ms.
    pub oldest_wait_ms: Option<u64>,
    pub workers: Vec<WorkerInfo>,
    pub counters: Metrics,
}

/// The queue at a glance: depth per priority class, pending, delayed,
/// DLQ length, the oldest wait, live workers with what they run, and the
/// counters.
#[utoipa::path(get, path = "/api/v1/queue/state", tag = "queue",
    responses((status = 200, body = QueueState)))]
pub async fn queue_state(
    State(state): State<AppState>,
    scope: Scope,
) -> ApiResult<Json<QueueState>> {
    scope.require_install()?;
    let (stats, backlog, beats, counters) = tokio::try_join!(
        state.queue.stats(),
        state.queue.backlog(),
        state.queue.workers(),
        state.queue.counters()
    )?;
    let workers = beats
        .into_iter()
        .map(|(consumer, beat)| {
            // A heartbeat another version wrote may lack fields: what
            // parses is shown.
            serde_json::from_str::<WorkerInfo>(&beat).unwrap_or(WorkerInfo {
                consumer,
                pid: None,
                slots: None,
                started_at_ms: None,
                seen_at_ms: None,
                running: Vec::new(),
                version: None,
            })
        })
        .collect();
    Ok(Json(QueueState {
        waiting: stats.waiting,
        pending: stats.pending,
        delayed: stats.delayed,
        dlq: stats.dlq,
        oldest_wait_ms: backlog.oldest_wait_ms,
        workers,
        counters: counters.into(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct HistoryQuery {
    /// Minutes back, the current one included (1 to 120, default 60).
    pub minutes: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct History {
    /// Oldest first; minutes with nothing ended have zero counts.
    #[schema(value_type = Vec<Object>)]
    pub minutes: Vec<stratbox_queue::metrics::Minute>,
}

/// Throughput and latency per minute: tasks completed and failed, mean
/// run time and mean wait from submission to start.
#[utoipa::path(get, path = "/api/v1/queue/history", tag = "queue", params(HistoryQuery),
    responses((status = 200, body = History), (status = 422, body = ErrorBody)))]
pub async fn history(
    State(state): State<AppState>,
    scope: Scope,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> ApiResult<Json<History>> {
    scope.require_install()?;
    let Query(query) = query?;
    let minutes = query.minutes.unwrap_or(60);
    if !(1..=120).contains(&minutes) {
        return Err(AppError::invalid(
            "minutes",
            format!("{minutes} is outside 1..=120"),
        ));
    }
    Ok(Json(History {
        minutes: state.queue.history(minutes).await?,
    }))
}
