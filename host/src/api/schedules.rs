//! Schedules: submit a backtest on a cron expression or an interval (UTC).

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiResult, AppError, ErrorBody};
use super::queue::{date, parse_create, CreateAndRunRequest};
use super::AppState;
use crate::candles::csv::format_rfc3339_secs;
use crate::scheduler::when::When;
use crate::store::schedules::{ScheduleDefinition, ScheduleRecord};

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateSchedule {
    pub name: Option<String>,
    /// Cron expression in UTC: 5 fields (`min hour dom mon dow`) or 6
    /// with seconds first. Give this or `every_secs`.
    pub cron: Option<String>,
    /// A fixed interval in seconds, from `start_at`.
    pub every_secs: Option<u64>,
    /// RFC 3339; no occurrence before it (default: now).
    pub start_at: Option<String>,
    /// RFC 3339; no occurrence after it.
    pub end_at: Option<String>,
    /// What each occurrence submits: a create-and-run request.
    pub backtest: CreateAndRunRequest,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Schedule {
    pub schedule_id: u64,
    pub name: Option<String>,
    pub cron: Option<String>,
    pub every_secs: Option<u64>,
    pub paused: bool,
    /// RFC 3339 (UTC) of the next occurrence; null when paused or ended.
    pub next_run: Option<String>,
    pub last_run: Option<String>,
    pub last_backtest_id: Option<u64>,
    pub runs: u64,
    /// Why the last occurrence could not submit, if it could not.
    pub last_error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleList {
    pub schedules: Vec<Schedule>,
}

fn iso(ms: i64) -> String {
    let mut text = format_rfc3339_secs(ms.div_euclid(1000));
    let millis = ms.rem_euclid(1000);
    if millis != 0 {
        text.insert_str(text.len() - 1, &format!(".{millis:03}"));
    }
    text
}

impl From<ScheduleRecord> for Schedule {
    fn from(r: ScheduleRecord) -> Self {
        Schedule {
            schedule_id: r.id,
            name: r.definition.name,
            cron: r.definition.cron,
            every_secs: r.definition.every_secs,
            paused: r.paused,
            next_run: r.next_run_ms.map(iso),
            last_run: r.last_run_ms.map(iso),
            last_backtest_id: r.last_backtest_id,
            runs: r.runs,
            last_error: r.last_error,
        }
    }
}

fn not_found(id: u64) -> AppError {
    AppError::not_found("schedule_not_found", format!("schedule {id} not found"))
}

/// Create a schedule. The backtest is validated now (a bad one is refused
/// here) and again at each occurrence. Missed occurrences (every
/// scheduler down) are coalesced into one run when one comes back.
#[utoipa::path(post, path = "/api/v1/schedules", tag = "schedules",
    request_body = CreateSchedule,
    responses((status = 201, body = Schedule), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security((), ("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    body: Result<Json<CreateSchedule>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<Schedule>)> {
    let Json(request) = body?;
    let when = When::parse(request.cron.as_deref(), request.every_secs)
        .map_err(|e| AppError::invalid(e.field, e.message))?;
    let now = crate::clock::now_ms();
    let start_at_ms = match &request.start_at {
        Some(text) => date("start_at", text)? * 1000,
        None => now,
    };
    let end_at_ms = match &request.end_at {
        Some(text) => Some(date("end_at", text)? * 1000),
        None => None,
    };
    if end_at_ms.is_some_and(|end| end < start_at_ms) {
        return Err(AppError::invalid("end_at", "is before start_at"));
    }
    let parsed = parse_create(&state, request.backtest)
        .await
        .map_err(prefixed)?;
    let backtest = crate::tasks::validate_backtest(&state.store, &parsed.definition)
        .await
        .map_err(|e| prefixed(e.into()))?;
    let first = when.next_after(now.max(start_at_ms) - 1, start_at_ms, end_at_ms);
    let Some(first) = first else {
        return Err(AppError::invalid("end_at", "no occurrence falls before it"));
    };
    let definition = ScheduleDefinition {
        name: request.name,
        cron: request.cron,
        every_secs: request.every_secs,
        start_at_ms,
        end_at_ms,
        priority: parsed.priority,
        backtest,
    };
    let id = state
        .store
        .create_schedule(&definition, Some(first))
        .await?;
    let record = state
        .store
        .get_schedule(id)
        .await?
        .ok_or_else(|| not_found(id))?;
    Ok((StatusCode::CREATED, Json(record.into())))
}

/// Backtest fields are named as in the request: `backtest.<field>`.
fn prefixed(error: AppError) -> AppError {
    match error {
        AppError::Invalid {
            code,
            field,
            message,
        } => AppError::Invalid {
            code,
            field: format!("backtest.{field}"),
            message,
        },
        AppError::NotFound {
            code,
            field,
            message,
        } => AppError::NotFound {
            code,
            field: field.map(|f| format!("backtest.{f}")),
            message,
        },
        other => other,
    }
}

#[utoipa::path(get, path = "/api/v1/schedules", tag = "schedules",
    responses((status = 200, body = ScheduleList)))]
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<ScheduleList>> {
    let schedules = state.store.list_schedules().await?;
    Ok(Json(ScheduleList {
        schedules: schedules.into_iter().map(Schedule::from).collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/schedules/{id}", tag = "schedules",
    params(("id" = u64, Path)),
    responses((status = 200, body = Schedule), (status = 404, body = ErrorBody)))]
pub async fn get_one(
    State(state): State<AppState>,
    id: Result<Path<u64>, PathRejection>,
) -> ApiResult<Json<Schedule>> {
    let Path(id) = id?;
    let record = state
        .store
        .get_schedule(id)
        .await?
        .ok_or_else(|| not_found(id))?;
    Ok(Json(record.into()))
}

/// Pause: no occurrence fires until resumed (one in flight is refused).
#[utoipa::path(post, path = "/api/v1/schedules/{id}/pause", tag = "schedules",
    params(("id" = u64, Path)),
    responses((status = 200, body = Schedule), (status = 404, body = ErrorBody)),
    security((), ("bearer" = [])))]
pub async fn pause(
    State(state): State<AppState>,
    id: Result<Path<u64>, PathRejection>,
) -> ApiResult<Json<Schedule>> {
    let Path(id) = id?;
    set_paused(&state, id, true).await
}

/// Resume: the next occurrence after now.
#[utoipa::path(post, path = "/api/v1/schedules/{id}/resume", tag = "schedules",
    params(("id" = u64, Path)),
    responses((status = 200, body = Schedule), (status = 404, body = ErrorBody)),
    security((), ("bearer" = [])))]
pub async fn resume(
    State(state): State<AppState>,
    id: Result<Path<u64>, PathRejection>,
) -> ApiResult<Json<Schedule>> {
    let Path(id) = id?;
    set_paused(&state, id, false).await
}

async fn set_paused(state: &AppState, id: u64, paused: bool) -> ApiResult<Json<Schedule>> {
    let record = state
        .store
        .get_schedule(id)
        .await?
        .ok_or_else(|| not_found(id))?;
    let definition = &record.definition;
    let next = When::of(definition).ok().and_then(|when| {
        when.next_after(
            crate::clock::now_ms(),
            definition.start_at_ms,
            definition.end_at_ms,
        )
    });
    if !state.store.set_schedule_paused(id, paused, next).await? {
        return Err(not_found(id));
    }
    let record = state
        .store
        .get_schedule(id)
        .await?
        .ok_or_else(|| not_found(id))?;
    Ok(Json(record.into()))
}

#[utoipa::path(delete, path = "/api/v1/schedules/{id}", tag = "schedules",
    params(("id" = u64, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)),
    security((), ("bearer" = [])))]
pub async fn delete_one(
    State(state): State<AppState>,
    id: Result<Path<u64>, PathRejection>,
) -> ApiResult<StatusCode> {
    let Path(id) = id?;
    if state.store.delete_schedule(id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found(id))
    }
}
