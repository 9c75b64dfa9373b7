//! Market data beside the candles (docs/conventions/market-data.md): a
//! queued Bybit fetch and its status, and by-hand imports of funding
//! history, mark-price candles and instruments. Every import is checked
//! whole before anything is written.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Scope;
use super::candles::{parse_candle_body, Series};
use super::error::{ApiResult, AppError, ErrorBody, ErrorCode};
use super::queue::{date, priority};
use super::AppState;
use stratbox_engine::perp::{parse_funding_csv, Funding, Instrument};
use stratbox_service::tasks::data_fetch::{submit_data_fetch, DataFetchRequest, KIND_DATA_FETCH};
use stratbox_service::tasks::SubmitOptions;
use stratbox_store::candles::normalize_symbol;

/// What to fetch from Bybit's public market data into the store.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DataFetchBody {
    /// The exchange; only `bybit`.
    #[serde(default)]
    pub source: Option<String>,
    /// Bybit symbol, e.g. `BTCUSDT`.
    pub symbol: String,
    /// `linear` (USDT perpetuals, the default), `spot` or `inverse`.
    #[serde(default)]
    pub category: Option<String>,
    /// Bybit's code (`1 3 5 15 30 60 120 240 360 720 D W`) or `1m`, `1h`,
    /// `1d`, `1w`.
    pub interval: String,
    /// RFC 3339: the first bar's open time.
    pub start_date: String,
    /// RFC 3339, exclusive; now when absent (the forming bar is never
    /// fetched).
    #[serde(default)]
    pub end_date: Option<String>,
    /// Also fetch mark-price candles (stored as `{SYMBOL}.MARK`).
    #[serde(default)]
    pub mark: bool,
    /// Also fetch the funding history.
    #[serde(default)]
    pub funding: bool,
    /// Also fetch the instrument (tick, step, min qty, max leverage,
    /// margin tiers; fees are the defaults).
    #[serde(default)]
    pub instrument: bool,
    #[serde(default)]
    pub priority: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DataFetchQueued {
    pub task_id: String,
    pub status: String,
    /// Where the fetch's status and, once done, its summary are.
    pub status_url: String,
}

/// Queue a fetch of Bybit market data into the store; resumable (only
/// what the store lacks is asked). A worker does the fetching.
#[utoipa::path(post, path = "/api/v1/data/fetch", tag = "market data",
    request_body = DataFetchBody,
    responses((status = 202, body = DataFetchQueued),
        (status = 400, body = ErrorBody), (status = 422, body = ErrorBody)),
    security((), ("bearer" = [])))]
pub async fn fetch(
    State(state): State<AppState>,
    scope: Scope,
    body: Result<Json<DataFetchBody>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<DataFetchQueued>)> {
    let Json(body) = body?;
    if let Some(source) = body.source.as_deref().filter(|s| *s != "bybit") {
        return Err(AppError::invalid(
            "source",
            format!("`{source}` is not a known source; only bybit"),
        ));
    }
    let start_ts = date("start_date", &body.start_date)?;
    let end_ts = match &body.end_date {
        Some(end) => date("end_date", end)?,
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64),
    };
    let request = DataFetchRequest {
        symbol: body.symbol.trim().to_string(),
        category: body.category.unwrap_or_else(|| "linear".into()),
        interval: body.interval,
        start_ts,
        end_ts,
        mark: body.mark,
        funding: body.funding,
        instrument: body.instrument,
    };
    let options = SubmitOptions {
        priority: priority(body.priority)?,
        ..SubmitOptions::default()
    };
    let task_id = submit_data_fetch(&scope.store, &state.queue, &request, &options).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(DataFetchQueued {
            status_url: format!("/api/v1/data/fetch/{task_id}"),
            task_id,
            status: "queued".into(),
        }),
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DataFetchStatus {
    pub task_id: String,
    /// `queued` (a retry waits queued too), `running`, `completed`,
    /// `failed` or `cancelled`.
    pub status: String,
    /// 0 to 1 while running.
    pub progress: Option<f64>,
    pub attempts: u32,
    pub error_code: Option<String>,
    pub error: Option<String>,
    /// Once completed: bars fetched, pages, ranges asked and gaps (never
    /// filled) per series, funding settlements fetched, the instrument.
    #[schema(value_type = Option<Object>)]
    pub result: Option<serde_json::Value>,
}

/// A fetch's status, progress and, once done, what it fetched.
#[utoipa::path(get, path = "/api/v1/data/fetch/{task_id}", tag = "market data",
    params(("task_id" = String, Path)),
    responses((status = 200, body = DataFetchStatus), (status = 404, body = ErrorBody)))]
pub async fn fetch_status(
    State(state): State<AppState>,
    scope: Scope,
    task_id: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<DataFetchStatus>> {
    let Path(task_id) = task_id?;
    let not_found =
        || AppError::not_found(ErrorCode::TaskNotFound, format!("no data fetch {task_id}"));
    let task = state
        .queue
        .task(&task_id)
        .await?
        .filter(|t| t.kind == KIND_DATA_FETCH && scope.owns_task(t.lane.as_deref()))
        .ok_or_else(not_found)?;
    let result = match task.result.as_deref() {
        Some(json) => Some(serde_json::from_str(json).map_err(|e| {
            AppError::Internal(anyhow::anyhow!(
                "data fetch {task_id}: result is not JSON: {e}"
            ))
        })?),
        None => None,
    };
    Ok(Json(DataFetchStatus {
        task_id: task.task_id,
        status: task.status.as_str().into(),
        progress: task.progress,
        attempts: task.attempts,
        error_code: task.error_code,
        error: task.error,
        result,
    }))
}

/// One funding settlement.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FundingRow {
    /// Unix seconds.
    pub ts: i64,
    pub rate: f64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FundingHistory {
    pub symbol: String,
    pub rows: u64,
    /// Unix seconds of the first and last settlement held.
    pub first_ts: i64,
    pub last_ts: i64,
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// Import funding history: CSV `ts,rate` (ts in unix seconds,
/// milliseconds or RFC 3339) or a JSON array of `{ts, rate}`, strictly
/// increasing. Merged into what is held; a settlement given again
/// replaces the old rate. A bad row is refused with its line, and nothing
/// is stored.
#[utoipa::path(post, path = "/api/v1/funding/{symbol}", tag = "market data",
    params(("symbol" = String, Path)),
    request_body(content = String, content_type = "text/csv"),
    responses((status = 200, body = FundingHistory), (status = 413, body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security((), ("bearer" = [])))]
pub async fn import_funding(
    scope: Scope,
    symbol: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<FundingHistory>> {
    let Path(symbol) = symbol?;
    let body = body?;
    normalize_symbol(&symbol)?;
    let rows = if is_json(&headers) {
        let rows: Vec<FundingRow> = serde_json::from_slice(&body).map_err(|e| {
            AppError::invalid("body", format!("not a JSON array of {{ts, rate}}: {e}"))
        })?;
        rows.into_iter().map(|r| (r.ts, r.rate)).collect()
    } else {
        let text = std::str::from_utf8(&body)
            .map_err(|e| AppError::invalid("body", format!("the CSV is not UTF-8: {e}")))?;
        match parse_funding_csv(text) {
            Ok(Funding::History(rows)) => rows.to_vec(),
            Ok(_) => Vec::new(),
            Err(e) => {
                return Err(AppError::Invalid {
                    code: ErrorCode::InvalidCsv,
                    field: "body".into(),
                    message: format!("{}: {}", e.what, e.message),
                })
            }
        }
    };
    let info = scope.store.import_funding(&symbol, &rows).await?;
    Ok(Json(FundingHistory {
        symbol: info.symbol,
        rows: info.rows,
        first_ts: info.first_ts,
        last_ts: info.last_ts,
    }))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FundingRows {
    pub symbol: String,
    pub rows: Vec<FundingRow>,
}

/// The funding history held for a symbol (empty when none).
#[utoipa::path(get, path = "/api/v1/funding/{symbol}", tag = "market data",
    params(("symbol" = String, Path)),
    responses((status = 200, body = FundingRows), (status = 422, body = ErrorBody)))]
pub async fn get_funding(
    scope: Scope,
    symbol: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<FundingRows>> {
    let Path(symbol) = symbol?;
    let symbol = normalize_symbol(&symbol)?;
    let rows = scope
        .store
        .load_funding(&symbol, i64::MIN, i64::MAX)
        .await?;
    Ok(Json(FundingRows {
        symbol,
        rows: rows
            .into_iter()
            .map(|(ts, rate)| FundingRow { ts, rate })
            .collect(),
    }))
}

/// Import mark-price candles (the candle CSV, `ts,open,high,low,close,volume`;
/// volume and other columns are ignored, bars spaced by whole bars of the
/// timeframe), merged into the symbol's mark series. A perpetual run
/// liquidates on them where present.
#[utoipa::path(post, path = "/api/v1/mark/{symbol}/{timeframe}", tag = "market data",
    params(("symbol" = String, Path), ("timeframe" = String, Path, description = "like 1h")),
    request_body(content = String, content_type = "text/csv"),
    responses((status = 200, body = Series), (status = 413, body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security((), ("bearer" = [])))]
pub async fn import_mark(
    scope: Scope,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Series>> {
    let Path((symbol, timeframe)) = path?;
    let (timeframe_secs, candles) = parse_candle_body(&symbol, &timeframe, body?).await?;
    let info = scope
        .store
        .import_mark(&symbol, timeframe_secs, &candles)
        .await?;
    Ok(Json(info.into()))
}

/// A maintenance-margin tier.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[allow(dead_code)] // only its schema is used
pub struct RiskTierSchema {
    /// Position value (USDT) up to which the tier applies; null: no bound.
    pub up_to_value: Option<f64>,
    pub mmr: f64,
    pub mm_deduction: f64,
}

/// The instrument of a perpetual symbol (the schema of
/// `stratbox_engine::perp::Instrument`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[allow(dead_code)] // only its schema is used
pub struct InstrumentSchema {
    pub symbol: Option<String>,
    pub tick_size: f64,
    pub qty_step: f64,
    pub min_qty: f64,
    pub max_leverage: f64,
    pub maker_fee: f64,
    pub taker_fee: f64,
    /// Ascending by `up_to_value`, at least one (`tiers` is accepted too).
    pub risk_tiers: Vec<RiskTierSchema>,
}

/// Store (replace) the instrument of a symbol; every field is checked and
/// a bad one named. Perpetual runs of the symbol use it.
#[utoipa::path(post, path = "/api/v1/instruments/{symbol}", tag = "market data",
    params(("symbol" = String, Path)),
    request_body = InstrumentSchema,
    responses((status = 200, body = InstrumentSchema), (status = 400, body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security((), ("bearer" = [])))]
pub async fn put_instrument(
    scope: Scope,
    symbol: Result<Path<String>, PathRejection>,
    body: Result<Json<Instrument>, JsonRejection>,
) -> ApiResult<Json<Instrument>> {
    let Path(symbol) = symbol?;
    let Json(mut instrument) = body?;
    let symbol = normalize_symbol(&symbol)?;
    if let Some(named) = instrument.symbol.as_deref() {
        if !named.eq_ignore_ascii_case(&symbol) {
            return Err(AppError::invalid(
                "symbol",
                format!("the body names {named}, the path {symbol}"),
            ));
        }
    }
    instrument.symbol = Some(symbol.clone());
    scope.store.put_instrument(&symbol, &instrument).await?;
    Ok(Json(instrument))
}

/// The instrument stored for a symbol; 404 when none is (perpetual runs
/// then use BTCUSDT's defaults).
#[utoipa::path(get, path = "/api/v1/instruments/{symbol}", tag = "market data",
    params(("symbol" = String, Path)),
    responses((status = 200, body = InstrumentSchema), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn get_instrument(
    scope: Scope,
    symbol: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<Instrument>> {
    let Path(symbol) = symbol?;
    scope
        .store
        .get_instrument(&symbol)
        .await?
        .map(Json)
        .ok_or_else(|| {
            AppError::not_found(
                ErrorCode::NotFound,
                format!("no instrument stored for {symbol}"),
            )
        })
}
