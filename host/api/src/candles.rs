//! Candle import (CSV, docs/conventions/engine.md "Candles") and the series held.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::Path;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Scope;
use super::error::{ApiResult, AppError, ErrorBody, ErrorCode};
use stratbox_store::SeriesInfo;

/// A stored series: symbol, timeframe and the range held.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Series {
    pub symbol: String,
    pub timeframe: String,
    pub timeframe_secs: i64,
    pub rows: u64,
    pub first_ts: i64,
    pub last_ts: i64,
    pub version: u64,
}

impl From<SeriesInfo> for Series {
    fn from(s: SeriesInfo) -> Self {
        Series {
            symbol: s.symbol,
            timeframe: s.timeframe,
            timeframe_secs: s.timeframe_secs,
            rows: s.rows,
            first_ts: s.first_ts,
            last_ts: s.last_ts,
            version: s.version,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SeriesList {
    pub series: Vec<Series>,
}

/// Import candles from CSV (`ts,open,high,low,close,volume`; other
/// columns ignored), merged into the stored series; a bad row, or one not
/// a whole number of bars of the timeframe after the previous, is refused
/// with its line and column, and nothing is stored.
#[utoipa::path(post, path = "/api/v1/candles/{symbol}/{timeframe}", tag = "candles",
    params(("symbol" = String, Path), ("timeframe" = String, Path, description = "like 1h")),
    request_body(content = String, content_type = "text/csv"),
    responses((status = 200, body = Series), (status = 413, body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security((), ("bearer" = [])))]
pub async fn import(
    scope: Scope,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Series>> {
    let Path((symbol, timeframe)) = path?;
    let (timeframe_secs, candles) = parse_candle_body(&symbol, &timeframe, body?).await?;
    let info = scope
        .store
        .import_candles(&symbol, timeframe_secs, &candles)
        .await?;
    Ok(Json(info.into()))
}

/// A candle CSV body for `symbol` at `timeframe`, parsed and its spacing
/// checked against the timeframe; errors name the path field or the
/// CSV's line and column. The parse runs on a blocking thread: a body may
/// be hundreds of MiB.
pub(super) async fn parse_candle_body(
    symbol: &str,
    timeframe: &str,
    body: Bytes,
) -> ApiResult<(i64, stratbox_engine::candles::Candles)> {
    let timeframe_secs = stratbox_engine::candles::parse_timeframe(timeframe)
        .map_err(|e| AppError::invalid("timeframe", e.to_string()))?;
    stratbox_store::candles::normalize_symbol(symbol)?;
    let candles = tokio::task::spawn_blocking(move || {
        let text = std::str::from_utf8(&body)
            .map_err(|e| AppError::invalid("body", format!("the CSV is not UTF-8: {e}")))?;
        stratbox_engine::candles::parse_csv_on_timeframe(text, timeframe_secs).map_err(|e| {
            AppError::Invalid {
                code: ErrorCode::InvalidCsv,
                field: "body".into(),
                message: e.to_string(),
            }
        })
    })
    .await
    .map_err(|e| AppError::Internal(anyhow::anyhow!("the CSV parse did not finish: {e}")))??;
    Ok((timeframe_secs, candles))
}

/// Every series held, by symbol then timeframe.
#[utoipa::path(get, path = "/api/v1/candles", tag = "candles",
    responses((status = 200, body = SeriesList)))]
pub async fn list(scope: Scope) -> ApiResult<Json<SeriesList>> {
    let series = scope.store.list_series().await?;
    Ok(Json(SeriesList {
        series: series.into_iter().map(Series::from).collect(),
    }))
}
