//! Optimizations: create and queue (validated in full before anything is
//! queued), status with progress and the top results, the whole ranked
//! table as CSV, cancellation (of every chunk), and deleting finished ones.

use std::collections::BTreeMap;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Scope;
use super::error::{ApiResult, AppError, ErrorBody, ErrorCode};
use super::queue::{parse_create, CreateAndRunRequest};
use super::quota::{admit, Admission};
use super::AppState;
use stratbox_engine::optimize::Direction;
use stratbox_service::tasks::optimization::{
    cancel_optimization, submit_optimization, OptimizationRequest,
};
use stratbox_service::tasks::{SubmitError, SubmitOptions};
use stratbox_store::{BacktestStatus, StoreError};

#[derive(Debug, Deserialize, ToSchema)]
pub struct ObjectiveRequest {
    /// Any numeric report metric, e.g. `sharpe`, `total_return_pct`,
    /// `max_drawdown_pct`.
    pub metric: String,
    /// `maximize` (default) or `minimize`.
    #[serde(default)]
    pub direction: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct HoldoutRequest {
    /// A date (RFC 3339): bars from it on are out of sample; or a
    /// fraction (0 < f < 1): the last part of the bars is.
    #[schema(value_type = Object)]
    pub split: serde_json::Value,
}

/// Backtest create-and-run's fields, plus the search.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateOptimizationRequest {
    /// The backtest every combination runs; its `config.params` are the
    /// fixed (not searched) params.
    #[serde(flatten)]
    pub backtest: CreateAndRunRequest,
    /// Param name -> a list of values, or `{"min", "max", "step"}` (step
    /// defaults to the schema's).
    #[schema(value_type = Object)]
    pub search_space: BTreeMap<String, serde_json::Value>,
    /// `grid` (default), `random`, or `bayes`: a Bayesian search (TPE)
    /// that runs `trials` param sets in rounds, each round's batch
    /// proposed from every result so far.
    #[serde(default)]
    pub method: Option<String>,
    /// Combinations drawn by `random`.
    #[serde(default)]
    pub samples: Option<usize>,
    /// Param sets `bayes` runs in all.
    #[serde(default)]
    pub trials: Option<usize>,
    /// `bayes`: param sets proposed at once, run together by the workers,
    /// then learnt from (at least 1; default as `stratbox optimize
    /// --batch`). The same seed and batch give the same trials.
    #[serde(default)]
    pub batch: Option<usize>,
    /// `bayes`: trials drawn at random before the model is used (default
    /// as `stratbox optimize --startup`).
    #[serde(default)]
    pub startup: Option<usize>,
    /// Seed of `random` and `bayes`: the same seed gives the same
    /// combinations.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Default: `sharpe`, maximised.
    #[serde(default)]
    pub objective: Option<ObjectiveRequest>,
    /// Results with fewer closed trades are listed, not ranked.
    #[serde(default)]
    pub min_trades: Option<u64>,
    /// E.g. `fast_period < slow_period`.
    #[serde(default)]
    pub constraint: Option<String>,
    #[serde(default)]
    pub holdout: Option<HoldoutRequest>,
    /// Walk-forward: `{"train": 2000 | "90d", "test": ..., "step": ...,
    /// "anchored": false}`, lengths in bars or durations; each window's
    /// search runs on its train bars, its winner on the test bars after
    /// (docs/optimization.md, "Walk-forward"). Not with `holdout` or
    /// `bayes`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub walk_forward: Option<serde_json::Value>,
    /// At most 20,000 (the default).
    #[serde(default)]
    pub max_combinations: Option<usize>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreateOptimizationResponse {
    pub optimization_id: u64,
    pub task_id: String,
    pub status: String,
    pub message: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Progress {
    /// Chunks whose results are in.
    pub done: usize,
    /// Chunks in all (`bayes`: those its rounds will submit if the space
    /// does not run out first).
    pub total: usize,
}

/// A Bayesian search's trials as its rounds come in.
#[derive(Debug, Serialize, ToSchema)]
pub struct TrialsProgress {
    /// Trials whose results are in (updated when a round is: the search
    /// learns, and the record moves, a batch at a time).
    pub done: usize,
    /// Trials planned (fewer run if the space runs out of new points).
    pub total: usize,
    /// The row ranking first among them so far (rank, index, score,
    /// params, metrics, as a row of `top`); null until one is ranked.
    #[schema(value_type = Option<Object>)]
    pub best: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ObjectiveInfo {
    pub metric: String,
    pub direction: String,
    pub min_trades: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Optimization {
    pub optimization_id: u64,
    /// `queued`, `running`, `completed`, `failed` or `cancelled`.
    pub status: String,
    pub progress: Progress,
    /// `bayes` only: the trials done and the best so far, while it runs
    /// and once it has ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trials: Option<TrialsProgress>,
    pub combinations: usize,
    pub strategy_id: Option<u64>,
    pub name: Option<String>,
    pub symbol: String,
    pub timeframe: String,
    /// `spot` or `linear_perpetual`.
    #[schema(value_type = super::queue::Market)]
    pub market: stratbox_engine::Market,
    /// The searched params, in table-column order.
    pub search_params: Vec<String>,
    pub objective: ObjectiveInfo,
    /// The best rows (rank, index, score, params, metrics, oos metrics
    /// with a hold-out), once completed.
    #[schema(value_type = Option<Vec<Object>>)]
    pub top: Option<Vec<serde_json::Value>>,
    /// Once completed: the probability that the best row's Sharpe ratio is
    /// not luck given every combination tried (the deflated Sharpe ratio,
    /// docs/optimization.md); null when undefined.
    pub deflated_sharpe: Option<f64>,
    /// A walk-forward's report once completed, as `stratbox optimize
    /// --walk-forward --json` prints it: each window's choice and its
    /// out-of-sample result, the stitched out-of-sample report, the
    /// efficiency. `top` and `deflated_sharpe` are then the last window's.
    #[schema(value_type = Option<Object>)]
    pub walk_forward: Option<Box<serde_json::value::RawValue>>,
    #[schema(value_type = Option<Object>)]
    pub error: Option<stratbox_store::BacktestError>,
    /// The fan-out task.
    pub task_id: Option<String>,
    pub created_at_ms: i64,
    pub finished_at_ms: Option<i64>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct TopQuery {
    /// Rows of the ranking to return (1 to 100, default 10).
    #[serde(default)]
    pub top: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CancelResponse {
    pub optimization_id: u64,
    /// `cancelled`, or the status it had already ended with.
    pub status: String,
}

/// The fixed params are `config.params` in this request.
pub(super) fn request_field(e: SubmitError) -> AppError {
    match e {
        SubmitError::Invalid { field, message } if field.starts_with("params.") => {
            AppError::invalid(format!("config.{field}"), message)
        }
        other => other.into(),
    }
}

/// A create-and-run request parsed, its strategy resolved: where a
/// submission and a schedule both start (neither is checked in full yet).
pub(super) async fn parse_optimization(
    store: &stratbox_store::Store,
    r: CreateOptimizationRequest,
) -> ApiResult<(OptimizationRequest, SubmitOptions)> {
    let (metric, direction) = match &r.objective {
        None => ("sharpe".to_string(), Direction::Maximize),
        Some(o) => {
            let direction = match o.direction.as_deref() {
                None | Some("maximize") => Direction::Maximize,
                Some("minimize") => Direction::Minimize,
                Some(other) => {
                    return Err(AppError::invalid(
                        "objective.direction",
                        format!("`{other}`: one of maximize, minimize"),
                    ))
                }
            };
            (o.metric.clone(), direction)
        }
    };
    let holdout = match &r.holdout {
        None => None,
        Some(h) => Some(match &h.split {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            other => {
                return Err(AppError::invalid(
                    "holdout.split",
                    format!("must be a date (RFC 3339) or a fraction, got {other}"),
                ))
            }
        }),
    };
    let walk_forward = match r.walk_forward {
        None | Some(serde_json::Value::Null) => None,
        Some(v @ serde_json::Value::Object(_)) => {
            let spec: stratbox_engine::optimize::WalkForward = serde_json::from_value(v)
                .map_err(|e| AppError::invalid("walk_forward", e.to_string()))?;
            Some(Box::new(spec))
        }
        Some(other) => {
            return Err(AppError::invalid(
                "walk_forward",
                format!("must be an object {{\"train\", \"test\", \"anchored\"}}, got {other}"),
            ))
        }
    };
    let method = r.method.unwrap_or_else(|| "grid".into());
    // A search keeps its trials where a random sweep keeps its samples.
    let samples = match (method.as_str(), r.samples, r.trials) {
        ("bayes", Some(_), _) => {
            return Err(AppError::invalid(
                "samples",
                "the bayes method takes trials, not samples",
            ))
        }
        ("bayes", None, trials) => trials,
        (_, _, Some(_)) => {
            return Err(AppError::invalid(
                "trials",
                "only the bayes method takes trials",
            ))
        }
        (_, samples, None) => samples,
    };
    if method != "bayes" {
        for (field, given) in [("batch", r.batch), ("startup", r.startup)] {
            if given.is_some() {
                return Err(AppError::invalid(
                    field,
                    format!("only the bayes method takes {field}"),
                ));
            }
        }
    }
    let parsed = parse_create(store, r.backtest).await?;
    let request = OptimizationRequest {
        backtest: parsed.definition,
        search_space: r.search_space,
        method,
        samples,
        batch: small("batch", r.batch)?,
        startup: small("startup", r.startup)?,
        seed: r.seed.unwrap_or(0),
        metric,
        direction,
        min_trades: r.min_trades.unwrap_or(0),
        constraint: r.constraint,
        holdout,
        walk_forward,
        max_combinations: r.max_combinations,
    };
    let options = SubmitOptions {
        priority: parsed.priority,
        ..SubmitOptions::default()
    };
    Ok((request, options))
}

/// A count the stored request keeps as `u32`.
fn small(field: &str, value: Option<usize>) -> ApiResult<Option<u32>> {
    value
        .map(|v| {
            u32::try_from(v)
                .map_err(|_| AppError::invalid(field, format!("{v} is above {}", u32::MAX)))
        })
        .transpose()
}

/// Create an optimization and queue it (fan-out into chunk tasks, ranked
/// when every chunk is in); validated before anything is queued.
#[utoipa::path(post, path = "/api/v1/queue/optimization/create-and-run", tag = "optimizations",
    request_body = CreateOptimizationRequest,
    responses((status = 200, body = CreateOptimizationResponse),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody), (status = 429, body = ErrorBody, description = "over a tenant's quota (Retry-After)")),
    security((), ("bearer" = [])))]
pub async fn create_and_run(
    State(state): State<AppState>,
    scope: Scope,
    body: Result<Json<CreateOptimizationRequest>, JsonRejection>,
) -> ApiResult<Json<CreateOptimizationResponse>> {
    let Json(r) = body?;
    let (mut request, options) = parse_optimization(&scope.store, r).await?;
    let admission = Admission {
        tasks: 1,
        results: 1,
    };
    admit(
        &state,
        &scope,
        admission,
        Some(&mut request.backtest.limits),
    )
    .await?;
    let (optimization_id, task_id) =
        submit_optimization(&scope.store, &state.queue, &request, &options)
            .await
            .map_err(request_field)?;
    Ok(Json(CreateOptimizationResponse {
        optimization_id,
        task_id,
        status: "submitted".into(),
        message: format!("Optimization {optimization_id} created and submitted to queue"),
    }))
}

async fn record(
    store: &stratbox_store::Store,
    id: u64,
) -> ApiResult<stratbox_store::OptimizationRecord> {
    store.get_optimization(id).await?.ok_or_else(|| {
        AppError::not_found(
            ErrorCode::OptimizationNotFound,
            format!("optimization {id} not found"),
        )
    })
}

/// Status, progress (chunks done of total) and the top N results.
#[utoipa::path(get, path = "/api/v1/optimizations/{id}", tag = "optimizations",
    params(("id" = u64, Path), TopQuery),
    responses((status = 200, body = Optimization), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn get_one(
    scope: Scope,
    id: Result<Path<u64>, PathRejection>,
    query: Result<Query<TopQuery>, QueryRejection>,
) -> ApiResult<Json<Optimization>> {
    let Path(id) = id?;
    let Query(query) = query?;
    let top_n = query.top.unwrap_or(10);
    if !(1..=stratbox_store::optimizations::TOP_KEPT).contains(&top_n) {
        return Err(AppError::invalid(
            "top",
            format!("must be between 1 and 100, got {top_n}"),
        ));
    }
    let r = record(&scope.store, id).await?;
    Ok(Json(view(r, top_n)?))
}

/// The API's view of a record, with its `top_n` best rows.
fn view(r: stratbox_store::OptimizationRecord, top_n: usize) -> ApiResult<Optimization> {
    let id = r.id;
    let top = match &r.top {
        Some(json) => {
            let mut rows: Vec<serde_json::Value> = serde_json::from_str(json).map_err(|e| {
                AppError::Internal(anyhow::anyhow!("stored ranking of optimization {id}: {e}"))
            })?;
            rows.truncate(top_n);
            Some(rows)
        }
        None => None,
    };
    let def = &r.definition;
    let trials = match (def.bayes, &r.trials) {
        (None, _) => None,
        (Some(b), None) => Some(TrialsProgress {
            done: 0,
            total: b.trials,
            best: None,
        }),
        (Some(b), Some(json)) => {
            #[derive(Deserialize)]
            struct Stored {
                done: usize,
                best: Option<serde_json::Value>,
            }
            let stored: Stored = serde_json::from_str(json).map_err(|e| {
                AppError::Internal(anyhow::anyhow!("stored trials of optimization {id}: {e}"))
            })?;
            Some(TrialsProgress {
                done: stored.done,
                total: b.trials,
                best: stored.best,
            })
        }
    };
    Ok(Optimization {
        optimization_id: id,
        status: r.status.as_str().to_string(),
        progress: Progress {
            done: r.done,
            total: match (def.bayes, r.status) {
                (Some(b), BacktestStatus::Queued | BacktestStatus::Running) => {
                    planned_chunks(b, def.chunk_size).max(r.chunks)
                }
                _ => r.chunks,
            },
        },
        trials,
        combinations: r.combinations,
        strategy_id: def.backtest.strategy_id,
        name: def.backtest.name.clone(),
        symbol: def.backtest.symbol.clone(),
        timeframe: stratbox_engine::candles::format_timeframe(def.backtest.timeframe_secs),
        market: def.backtest.market,
        search_params: def.search_space.keys().cloned().collect(),
        objective: ObjectiveInfo {
            metric: def.metric.clone(),
            direction: match def.direction {
                Direction::Maximize => "maximize".into(),
                Direction::Minimize => "minimize".into(),
            },
            min_trades: def.min_trades,
        },
        top,
        deflated_sharpe: r.deflated_sharpe,
        walk_forward: r
            .walk_forward
            .map(serde_json::value::RawValue::from_string)
            .transpose()
            .map_err(|e| {
                AppError::Internal(anyhow::anyhow!(
                    "stored walk-forward of optimization {id}: {e}"
                ))
            })?,
        error: r.error,
        task_id: r.task_id,
        created_at_ms: r.created_at_ms,
        finished_at_ms: r.finished_at_ms,
    })
}

/// Chunks a Bayesian search submits over all its rounds.
fn planned_chunks(b: stratbox_engine::optimize::Bayes, chunk_size: usize) -> usize {
    let chunk_size = chunk_size.max(1);
    let batch = b.batch.max(1);
    let last = b.trials % batch;
    (b.trials / batch) * batch.div_ceil(chunk_size) + last.div_ceil(chunk_size)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OptimizationList {
    /// Newest first, each with its best row once completed.
    pub optimizations: Vec<Optimization>,
}

/// Recent optimizations with status, progress and the best row.
#[utoipa::path(get, path = "/api/v1/optimizations", tag = "optimizations",
    params(super::backtests::ListQuery),
    responses((status = 200, body = OptimizationList), (status = 422, body = ErrorBody)))]
pub async fn list(
    scope: Scope,
    query: Result<Query<super::backtests::ListQuery>, QueryRejection>,
) -> ApiResult<Json<OptimizationList>> {
    let Query(query) = query?;
    let optimizations = scope
        .store
        .list_optimizations(query.checked()?)
        .await?
        .into_iter()
        .map(|r| view(r, 1))
        .collect::<ApiResult<_>>()?;
    Ok(Json(OptimizationList { optimizations }))
}

/// The whole ranked table as CSV (once completed).
#[utoipa::path(get, path = "/api/v1/optimizations/{id}/table.csv", tag = "optimizations",
    params(("id" = u64, Path)),
    responses((status = 200, content_type = "text/csv", body = String),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn table_csv(
    scope: Scope,
    id: Result<Path<u64>, PathRejection>,
) -> ApiResult<impl IntoResponse> {
    let Path(id) = id?;
    let status = scope.store.optimization_status(id).await?.ok_or_else(|| {
        AppError::not_found(
            ErrorCode::OptimizationNotFound,
            format!("optimization {id} not found"),
        )
    })?;
    if status != BacktestStatus::Completed {
        return Err(AppError::Conflict(format!(
            "optimization {id} is {status}; the table exists once it is completed"
        )));
    }
    let csv = scope
        .store
        .optimization_table(id)
        .await?
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("optimization {id} has no table")))?;
    Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], csv))
}

/// Cancel an optimization and every chunk task it queued.
#[utoipa::path(post, path = "/api/v1/optimizations/{id}/cancel", tag = "optimizations",
    params(("id" = u64, Path)),
    responses((status = 200, body = CancelResponse), (status = 404, body = ErrorBody)),
    security((), ("bearer" = [])))]
pub async fn cancel(
    State(state): State<AppState>,
    scope: Scope,
    id: Result<Path<u64>, PathRejection>,
) -> ApiResult<Json<CancelResponse>> {
    let Path(id) = id?;
    let r = record(&scope.store, id).await?;
    let cancelled = cancel_optimization(&scope.store, &state.queue, id, r.chunks).await?;
    let status = if cancelled {
        "cancelled".to_string()
    } else {
        r.status.as_str().to_string()
    };
    Ok(Json(CancelResponse {
        optimization_id: id,
        status,
    }))
}

/// Delete a finished optimization: its record, table and chunk records.
/// 409 while it is queued or running (cancel it first).
#[utoipa::path(delete, path = "/api/v1/optimizations/{id}", tag = "optimizations",
    params(("id" = u64, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security((), ("bearer" = [])))]
pub async fn delete_one(
    State(state): State<AppState>,
    scope: Scope,
    id: Result<Path<u64>, PathRejection>,
) -> ApiResult<StatusCode> {
    let Path(id) = id?;
    let homes = state.queue.keys().task_homes();
    match scope.store.delete_optimization(id, &homes).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(StoreError::NotFound { .. }) => Err(AppError::not_found(
            ErrorCode::OptimizationNotFound,
            format!("optimization {id} not found"),
        )),
        Err(StoreError::Busy { status, .. }) if status == "stopping" => {
            Err(AppError::Conflict(format!(
                "optimization {id} has tasks still queued or running; stop them with \
                 POST /api/v1/optimizations/{id}/cancel, then delete it"
            )))
        }
        Err(StoreError::Busy { status, .. }) => Err(AppError::Conflict(format!(
            "optimization {id} is {status}; cancel it first with POST /api/v1/optimizations/{id}/cancel"
        ))),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    //! The router against a private Redis; no worker runs, so what is
    //! submitted stays queued (the runs are in `tests/e2e/queue_optimize.rs`).

    use super::super::{app, AppState};
    use axum::body::Body;
    use axum::http::{header, Request, StatusCode};
    use serde_json::{json, Value};
    use stratbox_engine::{Column, Description, ParamSpec, ParamType, ParamValue};
    use stratbox_queue::Class;
    use stratbox_store::test_support::TestRedis;
    use tower::ServiceExt;

    const HOUR: i64 = 3600;
    const START: i64 = 1_704_067_200; // 2024-01-01T00:00:00Z

    async fn start(name: &str) -> (TestRedis, AppState, u64) {
        let (redis, state) = crate::tests::test_state(name, None).await;
        // A stored strategy with the EMA crossover's schema (the bytes are
        // never run here) and 1,000 hourly bars.
        let spec = |name: &str, kind, default, max: Option<f64>| ParamSpec {
            name: name.into(),
            kind,
            default,
            min: max.map(|_| 1.0),
            max,
            step: max.map(|_| 1.0),
            help: String::new(),
        };
        let description = Description {
            name: "ema-crossover".into(),
            version: "0.1.0".into(),
            summary: "test".into(),
            params: vec![
                spec(
                    "fast_period",
                    ParamType::Int,
                    ParamValue::Int(12),
                    Some(1000.0),
                ),
                spec(
                    "slow_period",
                    ParamType::Int,
                    ParamValue::Int(26),
                    Some(5000.0),
                ),
                spec(
                    "allow_short",
                    ParamType::Bool,
                    ParamValue::Bool(false),
                    None,
                ),
            ],
            columns: vec![Column::Close],
        };
        let bytes = b"not really a component".to_vec();
        let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
        let (record, _) = state
            .store
            .put_plugin(&sha, &bytes, "ema-crossover", "0.1.0", &description)
            .await
            .unwrap();
        let data = stratbox_engine::candles::synth(1_000, 7, HOUR, START, 42_000.0);
        state
            .store
            .import_candles("BTCUSDT", HOUR, &data)
            .await
            .unwrap();
        (redis, state, record.strategy_id)
    }

    async fn send(state: &AppState, request: Request<Body>) -> (StatusCode, Value) {
        let response = app(state.clone()).oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, value)
    }

    fn post(body: &Value) -> Request<Body> {
        Request::post("/api/v1/queue/optimization/create-and-run")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    }

    fn get(uri: &str) -> Request<Body> {
        Request::get(uri).body(Body::empty()).unwrap()
    }

    async fn queued(state: &AppState) -> u64 {
        let mut conn = state.queue.connection();
        let mut total = 0;
        for class in Class::ALL {
            let n: u64 = redis::cmd("XLEN")
                .arg(state.queue.keys().stream(class))
                .query_async(&mut conn)
                .await
                .unwrap();
            total += n;
        }
        total
    }

    fn request(strategy_id: u64) -> Value {
        json!({
            "strategy_id": strategy_id,
            "symbol": "BTCUSDT",
            "timeframe": "1h",
            "start_date": "2024-01-01T00:00:00Z",
            "end_date": "2024-02-10T00:00:00Z",
            "initial_capital": 10000.0,
            "leverage": 1,
            "commission": 0.0006,
            "config": {"name": "EMA sweep", "params": {"allow_short": true}},
            "search_space": {
                "fast_period": {"min": 5, "max": 25, "step": 5},
                "slow_period": [30, 40, 50, 60, 70]
            },
            "objective": {"metric": "sharpe", "direction": "maximize"},
            "min_trades": 2,
            "constraint": "fast_period < slow_period",
            "holdout": {"split": "2024-02-01T00:00:00Z"},
            "priority": 7
        })
    }

    #[tokio::test]
    async fn create_queues_one_fanout_task_and_reads_back() {
        let (_redis, state, strategy_id) = start("opt-api-create").await;
        let (status, body) = send(&state, post(&request(strategy_id))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["status"], "submitted");
        let id = body["optimization_id"].as_u64().unwrap();
        let task_id = body["task_id"].as_str().unwrap().to_string();
        assert_eq!(queued(&state).await, 1);
        let (status, got) = send(&state, get(&format!("/api/v1/optimizations/{id}"))).await;
        assert_eq!(status, StatusCode::OK, "{got}");
        assert_eq!(got["status"], "queued");
        assert_eq!(got["combinations"], 25);
        assert_eq!(got["progress"], json!({"done": 0, "total": 25}));
        assert_eq!(
            got["objective"],
            json!({"metric": "sharpe", "direction": "maximize", "min_trades": 2})
        );
        assert_eq!(got["task_id"], task_id.as_str());
        assert!(got["top"].is_null());
        let task = state.queue.task(&task_id).await.unwrap().unwrap();
        assert_eq!(task.kind, "optimization");
        assert_eq!(task.priority, 7);
        // No table before it completes; unknown ids are 404.
        let (status, _) = send(
            &state,
            get(&format!("/api/v1/optimizations/{id}/table.csv")),
        )
        .await;
        assert_eq!(status, StatusCode::CONFLICT);
        let (status, e) = send(&state, get("/api/v1/optimizations/999")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(e["error"]["code"], "optimization_not_found");
        let (status, e) = send(&state, get(&format!("/api/v1/optimizations/{id}?top=0"))).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e["error"]["field"], "top");
        // Deleting it while it may run is refused, naming the cancel.
        let delete = || {
            Request::delete(format!("/api/v1/optimizations/{id}"))
                .body(Body::empty())
                .unwrap()
        };
        let cancel = |id: u64| {
            Request::post(format!("/api/v1/optimizations/{id}/cancel"))
                .body(Body::empty())
                .unwrap()
        };
        let (status, e) = send(&state, delete()).await;
        assert_eq!(status, StatusCode::CONFLICT, "{e}");
        assert_eq!(
            e["error"]["message"],
            format!("optimization {id} is queued; cancel it first with POST /api/v1/optimizations/{id}/cancel")
        );
        // Cancelling ends the record and its queued fan-out task.
        let (status, c) = send(&state, cancel(id)).await;
        assert_eq!(status, StatusCode::OK, "{c}");
        assert_eq!(c, json!({"optimization_id": id, "status": "cancelled"}));
        let task = state.queue.task(&task_id).await.unwrap().unwrap();
        assert_eq!(task.status.as_str(), "cancelled");
        let (_, got) = send(&state, get(&format!("/api/v1/optimizations/{id}"))).await;
        assert_eq!(got["status"], "cancelled");
        // Again: it says where it stands.
        let (status, c) = send(&state, cancel(id)).await;
        assert_eq!(
            (status, c["status"].as_str()),
            (StatusCode::OK, Some("cancelled"))
        );
        let (status, e) = send(&state, cancel(999)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{e}");
        // Ended: deleted, and nothing of it is left.
        let (status, body) = send(&state, delete()).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        let (status, e) = send(&state, get(&format!("/api/v1/optimizations/{id}"))).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{e}");
        let (status, e) = send(&state, delete()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{e}");
        assert_eq!(e["error"]["code"], "optimization_not_found");
        let left: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", state.store.keys().optimization(id)))
            .query_async(&mut state.store.connection())
            .await
            .unwrap();
        assert!(left.is_empty(), "{left:?}");
        let (_, list) = send(&state, get("/api/v1/optimizations")).await;
        assert_eq!(list["optimizations"], json!([]));
        // The document lists the endpoints.
        let (_, doc) = send(&state, get("/api-docs/openapi.json")).await;
        assert!(
            doc["paths"]["/api/v1/optimizations/{id}"]["delete"]["responses"]["204"].is_object()
        );
        assert!(doc["paths"]["/api/v1/optimizations/{id}/cancel"]["post"].is_object());
        for path in [
            "/api/v1/queue/optimization/create-and-run",
            "/api/v1/optimizations/{id}",
            "/api/v1/optimizations/{id}/cancel",
            "/api/v1/optimizations/{id}/table.csv",
        ] {
            assert!(doc["paths"][path].is_object(), "{path}");
        }
    }

    #[tokio::test]
    async fn a_bayes_search_is_queued_with_its_trials_planned_in_rounds() {
        let (_redis, state, strategy_id) = start("opt-api-bayes").await;
        let mut body = request(strategy_id);
        body["method"] = json!("bayes");
        body["trials"] = json!(20);
        body["seed"] = json!(4);
        let (status, body) = send(&state, post(&body)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let id = body["optimization_id"].as_u64().unwrap();
        assert_eq!(queued(&state).await, 1, "the fan-out only");
        let (_, got) = send(&state, get(&format!("/api/v1/optimizations/{id}"))).await;
        assert_eq!(got["status"], "queued");
        assert_eq!(got["combinations"], 20);
        // Rounds of 8, 8 and 4 trials, a chunk each trial.
        assert_eq!(got["progress"], json!({"done": 0, "total": 20}));
        // No round in yet: no trial done, no best.
        assert_eq!(got["trials"], json!({"done": 0, "total": 20, "best": null}));
        let r = state.store.get_optimization(id).await.unwrap().unwrap();
        assert_eq!(r.chunks, 8, "the first round's");
        let b = r.definition.bayes.unwrap();
        assert_eq!((b.trials, b.batch, b.seed), (20, 8, 4));
        assert_eq!(r.definition.samples, Some(20));
    }

    #[tokio::test]
    async fn a_bayes_search_takes_its_batch_and_startup() {
        let (_redis, state, strategy_id) = start("opt-api-bayes-batch").await;
        let mut body = request(strategy_id);
        body["method"] = json!("bayes");
        body["trials"] = json!(20);
        body["batch"] = json!(3);
        body["startup"] = json!(5);
        let (status, body) = send(&state, post(&body)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let id = body["optimization_id"].as_u64().unwrap();
        let r = state.store.get_optimization(id).await.unwrap().unwrap();
        let b = r.definition.bayes.unwrap();
        assert_eq!((b.trials, b.batch, b.startup), (20, 3, 5));
        assert_eq!(r.chunks, 3, "the first round's: one batch");
        // Rounds of 3 (six) and 2 trials, a chunk each trial.
        let (_, got) = send(&state, get(&format!("/api/v1/optimizations/{id}"))).await;
        assert_eq!(got["progress"], json!({"done": 0, "total": 20}));
        // Unset, they are the CLI's defaults.
        let mut body = request(strategy_id);
        body["method"] = json!("bayes");
        body["trials"] = json!(20);
        let (_, body) = send(&state, post(&body)).await;
        let id = body["optimization_id"].as_u64().unwrap();
        let r = state.store.get_optimization(id).await.unwrap().unwrap();
        let b = r.definition.bayes.unwrap();
        assert_eq!(
            (b.batch, b.startup),
            (
                stratbox_engine::optimize::bayes::DEFAULT_BATCH,
                stratbox_engine::optimize::bayes::DEFAULT_STARTUP
            )
        );
    }

    #[tokio::test]
    async fn bad_input_is_a_4xx_naming_the_field_and_nothing_is_queued() {
        let (_redis, state, strategy_id) = start("opt-api-bad").await;
        let with = |path: &[&str], value: Value| {
            let mut body = request(strategy_id);
            let mut at = &mut body;
            for key in &path[..path.len() - 1] {
                at = &mut at[*key];
            }
            at[path[path.len() - 1]] = value;
            body
        };
        let cases = [
            (
                with(&["search_space", "nope"], json!([1, 2])),
                "search_space.nope",
            ),
            (
                with(
                    &["search_space", "fast_period"],
                    json!({"min": 5, "max": 2000, "step": 5}),
                ),
                "search_space.fast_period.max",
            ),
            (
                with(
                    &["search_space", "fast_period"],
                    json!({"min": 0, "max": 20, "step": 5}),
                ),
                "search_space.fast_period.min",
            ),
            (
                with(
                    &["search_space", "fast_period"],
                    json!({"min": 5, "max": 20, "step": 0}),
                ),
                "search_space.fast_period.step",
            ),
            (
                with(
                    &["search_space", "fast_period"],
                    json!({"min": 5, "max": 20, "step": -1}),
                ),
                "search_space.fast_period.step",
            ),
            (
                with(
                    &["search_space"],
                    json!({"fast_period": {"min": 1, "max": 1000}, "slow_period": {"min": 1, "max": 100}}),
                ),
                "search_space",
            ),
            (
                with(&["search_space", "slow_period"], json!("often")),
                "search_space.slow_period",
            ),
            (
                with(&["objective", "metric"], json!("sharp")),
                "objective.metric",
            ),
            (
                with(&["objective", "direction"], json!("up")),
                "objective.direction",
            ),
            (
                with(&["constraint"], json!("fast_period < slowest")),
                "constraint",
            ),
            (
                with(&["holdout", "split"], json!("2025-01-01T00:00:00Z")),
                "holdout.split",
            ),
            (
                with(&["holdout", "split"], json!("2023-06-01T00:00:00Z")),
                "holdout.split",
            ),
            (with(&["holdout", "split"], json!(1.5)), "holdout.split"),
            (
                with(&["config", "params", "bogus"], json!(1)),
                "config.params.bogus",
            ),
            (
                with(&["config", "params", "fast_period"], json!(3)),
                "search_space.fast_period",
            ),
            (with(&["method"], json!("anneal")), "method"),
            (with(&["method"], json!("random")), "samples"),
            (with(&["samples"], json!(5)), "samples"),
            (with(&["initial_capital"], json!(-5)), "initial_capital"),
            (
                with(&["start_date"], json!("2024-03-01T00:00:00Z")),
                "start_date",
            ),
            (with(&["max_combinations"], json!(10)), "search_space"),
        ];
        // The bayes method's own fields.
        let bayes = |extra: Value| {
            let mut body = request(strategy_id);
            body["method"] = json!("bayes");
            for (k, v) in extra.as_object().unwrap() {
                body[k] = v.clone();
            }
            body
        };
        let bayes_cases = [
            (bayes(json!({})), "trials"),
            (bayes(json!({"trials": 0})), "trials"),
            (
                bayes(json!({"trials": 30, "max_combinations": 10})),
                "trials",
            ),
            (bayes(json!({"trials": 10, "samples": 5})), "samples"),
            (with(&["trials"], json!(10)), "trials"),
            (
                bayes(json!({"trials": 10, "constraint": "fast_period > 100"})),
                "constraint",
            ),
            (
                bayes(json!({"trials": 10, "search_space": {"nope": [1]}})),
                "search_space.nope",
            ),
            (bayes(json!({"trials": 10, "batch": 0})), "batch"),
            (bayes(json!({"trials": 10, "batch": 1u64 << 40})), "batch"),
            (
                bayes(json!({"trials": 10, "startup": 1u64 << 40})),
                "startup",
            ),
            (with(&["batch"], json!(4)), "batch"),
            (with(&["startup"], json!(4)), "startup"),
        ];
        for (body, field) in cases.into_iter().chain(bayes_cases) {
            let (status, e) = send(&state, post(&body)).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{field}: {e}");
            assert_eq!(e["error"]["field"], field, "{e}");
        }
        // A perpetual sweep is checked as a perpetual backtest: leverage
        // against the contract's maximum (no stored one here: the default
        // BTCUSDT's 100), a funding rate only with the perpetual market.
        let mut perp = with(&["market"], json!("linear_perpetual"));
        perp["leverage"] = json!(110);
        let mut spot_funding = request(strategy_id);
        spot_funding["funding_rate"] = json!(0.0001);
        for (body, field) in [(perp, "leverage"), (spot_funding, "funding_rate")] {
            let (status, e) = send(&state, post(&body)).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{field}: {e}");
            assert_eq!(e["error"]["field"], field, "{e}");
        }
        let (status, e) = send(&state, post(&with(&["strategy_id"], json!(99)))).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(e["error"]["field"], "strategy_id");
        let (status, e) = send(&state, post(&with(&["symbol"], json!("ETHUSDT")))).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(e["error"]["field"], "symbol");
        assert_eq!(queued(&state).await, 0);
        let mut conn = state.store.connection();
        let ids: Option<u64> = redis::cmd("GET")
            .arg(state.store.keys().optimization_next_id())
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(ids, None, "no optimization was recorded");
    }
}
