//! Backtest records: status, progress and the report.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::Json;
use serde::Serialize;
use serde_json::value::RawValue;
use utoipa::ToSchema;

use super::error::{ApiResult, AppError, ErrorBody};
use super::AppState;

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
    pub error: Option<crate::store::BacktestError>,
    pub task_id: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/backtests/{id}", tag = "backtests",
    params(("id" = u64, Path)),
    responses((status = 200, body = Backtest), (status = 404, body = ErrorBody)))]
pub async fn get_one(
    State(state): State<AppState>,
    id: Result<Path<u64>, PathRejection>,
) -> ApiResult<Json<Backtest>> {
    let Path(id) = id?;
    let record = state.store.get_backtest(id).await?.ok_or_else(|| {
        AppError::not_found("backtest_not_found", format!("backtest {id} not found"))
    })?;
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
