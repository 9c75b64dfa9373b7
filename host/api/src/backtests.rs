//! Backtest records: status, progress and the report; deleting finished ones.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;

use super::auth::Scope;
use super::error::{ApiResult, AppError, ErrorBody, ErrorCode};
use super::AppState;
use stratbox_store::StoreError;

#[derive(Debug, Serialize, ToSchema)]
pub struct Backtest {
    pub backtest_id: u64,
    /// `queued`, `running`, `completed`, `failed` or `cancelled`.
    pub status: String,
    /// 0 to 1.
    pub progress: f64,
    /// The report (as `stratbox backtest --json` prints it), once completed.
    #[schema(value_type = Option<Object>)]
    pub report: Option<Box<RawValue>>,
    /// `{"code", "message"}` of a failed run.
    #[schema(value_type = Option<Object>)]
    pub error: Option<stratbox_store::BacktestError>,
    pub task_id: Option<String>,
}

async fn record_or_404(
    store: &stratbox_store::Store,
    id: u64,
) -> ApiResult<stratbox_store::BacktestRecord> {
    store.get_backtest(id).await?.ok_or_else(|| {
        AppError::not_found(
            ErrorCode::BacktestNotFound,
            format!("backtest {id} not found"),
        )
    })
}

#[utoipa::path(get, path = "/api/v1/backtests/{id}", tag = "backtests",
    params(("id" = u64, Path)),
    responses((status = 200, body = Backtest), (status = 404, body = ErrorBody)))]
pub async fn get_one(
    scope: Scope,
    id: Result<Path<u64>, PathRejection>,
) -> ApiResult<Json<Backtest>> {
    let Path(id) = id?;
    let record = record_or_404(&scope.store, id).await?;
    // Embedded verbatim: the bytes the worker wrote, not a re-encoding.
    let report = record
        .report
        .map(RawValue::from_string)
        .transpose()
        .map_err(|e| AppError::Internal(anyhow::anyhow!("stored report of backtest {id}: {e}")))?;
    Ok(Json(Backtest {
        backtest_id: id,
        status: record.status.as_str().to_string(),
        progress: record.progress,
        report,
        error: record.error,
        task_id: record.task_id,
    }))
}

/// Delete a finished backtest: its record, report and log. 409 while it
/// is queued or running (cancel its task first).
#[utoipa::path(delete, path = "/api/v1/backtests/{id}", tag = "backtests",
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
    match scope.store.delete_backtest(id, &homes).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(StoreError::NotFound { .. }) => Err(AppError::not_found(
            ErrorCode::BacktestNotFound,
            format!("backtest {id} not found"),
        )),
        Err(StoreError::Busy { status, .. }) => {
            let task = scope
                .store
                .get_backtest(id)
                .await?
                .and_then(|r| r.task_id)
                .unwrap_or_else(|| "{task_id}".into());
            Err(AppError::Conflict(format!(
                "backtest {id} is {status}; cancel it first with DELETE /api/v1/queue/tasks/{task}"
            )))
        }
        Err(e) => Err(e.into()),
    }
}

/// Most a listing returns.
const MAX_LIST: usize = 500;

/// `?limit=` of the listings (backtests, optimizations).
/// One line the strategy logged.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LogLine {
    /// `debug`, `info`, `warn` or `error`.
    pub level: String,
    pub message: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BacktestLog {
    pub backtest_id: u64,
    /// The run the lines are from (the backtest's current task).
    pub task_id: Option<String>,
    /// What the strategy logged in its current run, bounded as the sandbox
    /// bounds it (lines, bytes per line and in all); empty when it logged
    /// nothing or has not run yet.
    pub lines: Vec<LogLine>,
    /// Lines past the limit, not kept.
    pub dropped: u64,
}

/// The strategy log of a backtest's current run (the queued twin of
/// `stratbox backtest --show-log`), for a run that failed as for one that
/// completed.
#[utoipa::path(get, path = "/api/v1/backtests/{id}/log", tag = "backtests",
    params(("id" = u64, Path)),
    responses((status = 200, body = BacktestLog), (status = 404, body = ErrorBody)))]
pub async fn get_log(
    scope: Scope,
    id: Result<Path<u64>, PathRejection>,
) -> ApiResult<Json<BacktestLog>> {
    let Path(id) = id?;
    let record = record_or_404(&scope.store, id).await?;
    let log = scope
        .store
        .backtest_log(id, record.task_id.as_deref())
        .await?;
    let (lines, dropped) = match log {
        Some(log) => (
            log.lines
                .into_iter()
                .map(|l| LogLine {
                    level: l.level,
                    message: l.message,
                })
                .collect(),
            log.dropped,
        ),
        None => (Vec::new(), 0),
    };
    Ok(Json(BacktestLog {
        backtest_id: id,
        task_id: record.task_id,
        lines,
        dropped,
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    /// How many, newest first (1 to 500, default 50).
    pub limit: Option<usize>,
}

impl ListQuery {
    /// The limit asked for, checked.
    pub fn checked(&self) -> ApiResult<usize> {
        let limit = self.limit.unwrap_or(50);
        if !(1..=MAX_LIST).contains(&limit) {
            return Err(AppError::invalid(
                "limit",
                format!("{limit} is outside 1..={MAX_LIST}"),
            ));
        }
        Ok(limit)
    }
}

/// One backtest in a listing: its definition and outcome, no report.
#[derive(Debug, Serialize, ToSchema)]
pub struct BacktestSummary {
    pub backtest_id: u64,
    pub status: String,
    pub progress: f64,
    pub task_id: Option<String>,
    pub strategy_id: Option<u64>,
    pub strategy_sha256: String,
    /// The config name given at submission.
    pub name: Option<String>,
    pub symbol: String,
    pub timeframe: String,
    pub start_date: String,
    pub end_date: String,
    pub created_at_ms: i64,
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
    /// Headline figures of the report, once completed.
    pub final_equity: Option<f64>,
    pub total_return_pct: Option<f64>,
    pub num_trades: Option<u64>,
    #[schema(value_type = Option<Object>)]
    pub error: Option<stratbox_store::BacktestError>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BacktestList {
    pub backtests: Vec<BacktestSummary>,
}

/// Recent backtests, newest first.
#[utoipa::path(get, path = "/api/v1/backtests", tag = "backtests",
    params(ListQuery),
    responses((status = 200, body = BacktestList), (status = 400, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn list(
    scope: Scope,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult<Json<BacktestList>> {
    let Query(query) = query?;
    let records = scope.store.list_backtests(query.checked()?).await?;
    let backtests = records
        .into_iter()
        .map(|record| {
            #[derive(Deserialize)]
            struct Headline {
                final_equity: Option<f64>,
                total_return_pct: Option<f64>,
                num_trades: Option<u64>,
            }
            let headline = record
                .report
                .as_deref()
                .and_then(|r| serde_json::from_str::<Headline>(r).ok());
            let d = record.definition;
            BacktestSummary {
                backtest_id: record.id,
                status: record.status.as_str().to_string(),
                progress: record.progress,
                task_id: record.task_id,
                strategy_id: d.strategy_id,
                strategy_sha256: d.strategy_sha256,
                name: d.name,
                symbol: d.symbol,
                timeframe: stratbox_engine::candles::format_timeframe(d.timeframe_secs),
                start_date: stratbox_engine::time::format_rfc3339_secs(d.start_ts),
                end_date: stratbox_engine::time::format_rfc3339_secs(d.end_ts),
                created_at_ms: record.created_at_ms,
                started_at_ms: record.started_at_ms,
                finished_at_ms: record.finished_at_ms,
                final_equity: headline.as_ref().and_then(|h| h.final_equity),
                total_return_pct: headline.as_ref().and_then(|h| h.total_return_pct),
                num_trades: headline.as_ref().and_then(|h| h.num_trades),
                error: record.error,
            }
        })
        .collect();
    Ok(Json(BacktestList { backtests }))
}
