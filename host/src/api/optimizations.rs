//! Optimizations: create and queue (validated in full before anything is
//! queued), status with progress and the top results, the whole ranked
//! table as CSV, and cancellation (of every chunk).

use std::collections::BTreeMap;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiResult, AppError, ErrorBody};
use super::queue::StrategyConfig;
use super::AppState;
use crate::optimize::Direction;
use crate::store::{BacktestDefinition, BacktestStatus};
use crate::tasks::optimization::{cancel_optimization, submit_optimization, OptimizationRequest};
use crate::tasks::{SubmitError, SubmitOptions};

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
    pub strategy_id: u64,
    pub symbol: String,
    pub timeframe: String,
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
    /// `params` here are fixed (not searched) params.
    #[serde(default)]
    pub config: Option<StrategyConfig>,
    /// Param name -> a list of values, or `{"min", "max", "step"}` (step
    /// defaults to the schema's).
    #[schema(value_type = Object)]
    pub search_space: BTreeMap<String, serde_json::Value>,
    /// `grid` (default) or `random`.
    #[serde(default)]
    pub method: Option<String>,
    /// Combinations drawn by `random`.
    #[serde(default)]
    pub samples: Option<usize>,
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
    /// At most 20,000 (the default).
    #[serde(default)]
    pub max_combinations: Option<usize>,
    #[serde(default)]
    pub priority: Option<i64>,
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
    pub total: usize,
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
    pub combinations: usize,
    pub objective: ObjectiveInfo,
    /// The best rows (rank, index, score, params, metrics, oos metrics
    /// with a hold-out), once completed.
    #[schema(value_type = Option<Vec<Object>>)]
    pub top: Option<Vec<serde_json::Value>>,
    #[schema(value_type = Option<Object>)]
    pub error: Option<crate::store::BacktestError>,
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
fn request_field(e: SubmitError) -> AppError {
    match e {
        SubmitError::Invalid { field, message } if field.starts_with("params.") => {
            AppError::invalid(format!("config.{field}"), message)
        }
        other => other.into(),
    }
}

/// Create an optimization and queue it (fan-out into chunk tasks, ranked
/// when every chunk is in); validated before anything is queued.
#[utoipa::path(post, path = "/api/v1/queue/optimization/create-and-run", tag = "optimizations",
    request_body = CreateOptimizationRequest,
    responses((status = 200, body = CreateOptimizationResponse),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)),
    security((), ("bearer" = [])))]
pub async fn create_and_run(
    State(state): State<AppState>,
    body: Result<Json<CreateOptimizationRequest>, JsonRejection>,
) -> ApiResult<Json<CreateOptimizationResponse>> {
    let Json(r) = body?;
    let priority = match r.priority {
        None => crate::queue::task::DEFAULT_PRIORITY,
        Some(p) if (0..=255).contains(&p) => p,
        Some(p) => {
            return Err(AppError::invalid(
                "priority",
                format!("{p} is outside 0..=255 (0-3 low, 4-6 normal, 7+ high)"),
            ))
        }
    };
    let timeframe_secs = crate::candles::parse_timeframe(&r.timeframe)
        .map_err(|e| AppError::invalid("timeframe", e.to_string()))?;
    let date = |field: &str, value: &str| {
        crate::candles::csv::parse_rfc3339_secs(value)
            .map_err(|m| AppError::invalid(field, format!("`{value}`: {m}")))
    };
    let start_ts = date("start_date", &r.start_date)?;
    let end_ts = date("end_date", &r.end_date)?;
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
    let plugin = state
        .store
        .plugin_record_by_id(r.strategy_id)
        .await?
        .ok_or_else(|| AppError::NotFound {
            code: "strategy_not_found",
            field: Some("strategy_id".into()),
            message: format!("strategy {} not found", r.strategy_id),
        })?;
    let (name, params) = match r.config {
        Some(config) => (config.name, config.params),
        None => (None, BTreeMap::new()),
    };
    let request = OptimizationRequest {
        backtest: BacktestDefinition {
            strategy_sha256: plugin.sha256,
            strategy_id: Some(r.strategy_id),
            name,
            symbol: r.symbol,
            timeframe_secs,
            start_ts,
            end_ts,
            initial_capital: r.initial_capital,
            commission: r.commission,
            leverage: r.leverage,
            slippage_bps: r.slippage_bps,
            params,
        },
        search_space: r.search_space,
        method: r.method.unwrap_or_else(|| "grid".into()),
        samples: r.samples,
        seed: r.seed.unwrap_or(0),
        metric,
        direction,
        min_trades: r.min_trades.unwrap_or(0),
        constraint: r.constraint,
        holdout,
        max_combinations: r.max_combinations,
    };
    let options = SubmitOptions {
        priority,
        ..SubmitOptions::default()
    };
    let (optimization_id, task_id) =
        submit_optimization(&state.store, &state.queue, &request, &options)
            .await
            .map_err(request_field)?;
    Ok(Json(CreateOptimizationResponse {
        optimization_id,
        task_id,
        status: "submitted".into(),
        message: format!("Optimization {optimization_id} created and submitted to queue"),
    }))
}

async fn record(state: &AppState, id: u64) -> ApiResult<crate::store::OptimizationRecord> {
    state.store.get_optimization(id).await?.ok_or_else(|| {
        AppError::not_found(
            "optimization_not_found",
            format!("optimization {id} not found"),
        )
    })
}

/// Status, progress (chunks done of total) and the top N results.
#[utoipa::path(get, path = "/api/v1/optimizations/{id}", tag = "optimizations",
    params(("id" = u64, Path), TopQuery),
    responses((status = 200, body = Optimization), (status = 404, body = ErrorBody)))]
pub async fn get_one(
    State(state): State<AppState>,
    id: Result<Path<u64>, PathRejection>,
    query: Result<Query<TopQuery>, QueryRejection>,
) -> ApiResult<Json<Optimization>> {
    let Path(id) = id?;
    let Query(query) = query?;
    let top_n = query.top.unwrap_or(10);
    if !(1..=crate::store::optimizations::TOP_KEPT).contains(&top_n) {
        return Err(AppError::invalid(
            "top",
            format!("must be between 1 and 100, got {top_n}"),
        ));
    }
    let r = record(&state, id).await?;
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
    Ok(Json(Optimization {
        optimization_id: id,
        status: r.status.as_str().to_string(),
        progress: Progress {
            done: r.done,
            total: r.chunks,
        },
        combinations: r.combinations,
        objective: ObjectiveInfo {
            metric: def.metric.clone(),
            direction: match def.direction {
                Direction::Maximize => "maximize".into(),
                Direction::Minimize => "minimize".into(),
            },
            min_trades: def.min_trades,
        },
        top,
        error: r.error,
        task_id: r.task_id,
        created_at_ms: r.created_at_ms,
        finished_at_ms: r.finished_at_ms,
    }))
}

/// The whole ranked table as CSV (once completed).
#[utoipa::path(get, path = "/api/v1/optimizations/{id}/table.csv", tag = "optimizations",
    params(("id" = u64, Path)),
    responses((status = 200, content_type = "text/csv", body = String),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn table_csv(
    State(state): State<AppState>,
    id: Result<Path<u64>, PathRejection>,
) -> ApiResult<impl IntoResponse> {
    let Path(id) = id?;
    let status = state.store.optimization_status(id).await?.ok_or_else(|| {
        AppError::not_found(
            "optimization_not_found",
            format!("optimization {id} not found"),
        )
    })?;
    if status != BacktestStatus::Completed {
        return Err(AppError::Conflict(format!(
            "optimization {id} is {status}; the table exists once it is completed"
        )));
    }
    let csv = state
        .store
        .optimization_table(id)
        .await?
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("optimization {id} has no table")))?;
    Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], csv))
}

/// Cancel an optimization and every chunk task it queued.
#[utoipa::path(delete, path = "/api/v1/optimizations/{id}", tag = "optimizations",
    params(("id" = u64, Path)),
    responses((status = 200, body = CancelResponse), (status = 404, body = ErrorBody)),
    security((), ("bearer" = [])))]
pub async fn cancel(
    State(state): State<AppState>,
    id: Result<Path<u64>, PathRejection>,
) -> ApiResult<Json<CancelResponse>> {
    let Path(id) = id?;
    let r = record(&state, id).await?;
    let cancelled = cancel_optimization(&state.store, &state.queue, id, r.chunks).await?;
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
