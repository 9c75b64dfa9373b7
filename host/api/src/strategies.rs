//! Strategy components: upload (checked by the sandbox), list, get, delete.

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{header, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Scope;
use super::error::{ApiResult, AppError, ErrorBody, ErrorCode};
use super::AppState;
use stratbox_store::PluginRecord;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Strategy {
    pub strategy_id: u64,
    pub sha256: String,
    pub name: String,
    pub version: String,
    pub summary: String,
    /// The parameter schema: name, type, default, min, max, step, help.
    #[schema(value_type = Vec<Object>)]
    pub params: Vec<stratbox_engine::ParamSpec>,
    pub size: u64,
    pub created_at_ms: i64,
}

impl From<PluginRecord> for Strategy {
    fn from(r: PluginRecord) -> Self {
        Strategy {
            strategy_id: r.strategy_id,
            sha256: r.sha256,
            name: r.name,
            version: r.version,
            summary: r.description.summary,
            params: r.description.params,
            size: r.size,
            created_at_ms: r.created_at_ms,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StrategyList {
    pub strategies: Vec<Strategy>,
}

/// The component: the raw body (`application/wasm`), or the first file of
/// a `multipart/form-data` form.
async fn component_bytes(state: &AppState, request: Request) -> ApiResult<Bytes> {
    let multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    if !multipart {
        return Ok(Bytes::from_request(request, state).await?);
    }
    let mut form = Multipart::from_request(request, state)
        .await
        .map_err(|e| AppError::BadRequest(e.body_text()))?;
    loop {
        let field = form.next_field().await.map_err(|e| multipart_error(&e))?;
        let Some(field) = field else {
            return Err(AppError::BadRequest(
                "the form has no file field with the component".into(),
            ));
        };
        if field.file_name().is_some() || field.name() == Some("file") {
            return field.bytes().await.map_err(|e| multipart_error(&e));
        }
    }
}

fn multipart_error(e: &axum::extract::multipart::MultipartError) -> AppError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        AppError::PayloadTooLarge(e.body_text())
    } else {
        AppError::BadRequest(e.body_text())
    }
}

/// A component's bytes, as sent (documentation only: the handler reads
/// the raw body).
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct ComponentBytes(Vec<u8>);

/// The multipart form of an upload: the first file field (or a field
/// named `file`) is the component. Documentation only, like
/// [`ComponentBytes`].
#[allow(dead_code)]
#[derive(ToSchema)]
pub struct UploadForm {
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
}

/// Upload a strategy component. The sandbox checks it first (format,
/// contract version, imports); the same bytes again give the same strategy.
#[utoipa::path(post, path = "/api/v1/strategies", tag = "strategies",
    request_body(description = "the component: raw bytes, or a multipart form with one file field",
        content((ComponentBytes = "application/wasm"), (ComponentBytes = "application/octet-stream"),
            (UploadForm = "multipart/form-data"))),
    responses((status = 201, body = Strategy, description = "stored"),
        (status = 200, body = Strategy, description = "already stored"),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)),
    security((), ("bearer" = [])))]
pub async fn upload(
    State(state): State<AppState>,
    scope: Scope,
    request: Request,
) -> ApiResult<(StatusCode, Json<Strategy>)> {
    let bytes = component_bytes(&state, request).await?;
    if bytes.is_empty() {
        return Err(AppError::invalid("body", "empty body; send the component"));
    }
    let sandbox = state.sandbox.clone();
    let checked = bytes.clone();
    // Compiling is CPU work of up to seconds: off the async threads.
    let plugin = tokio::task::spawn_blocking(move || sandbox.load(&checked))
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("plugin check panicked: {e}")))?
        .map_err(|e| AppError::Invalid {
            code: ErrorCode::InvalidPlugin,
            field: "body".into(),
            message: e.to_string(),
        })?;
    let d = &plugin.description;
    let (record, created) = scope
        .store
        .put_plugin(&plugin.sha256, &bytes, &d.name, &d.version, d)
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(record.into())))
}

/// Every stored strategy, by id.
#[utoipa::path(get, path = "/api/v1/strategies", tag = "strategies",
    responses((status = 200, body = StrategyList)))]
pub async fn list(scope: Scope) -> ApiResult<Json<StrategyList>> {
    let strategies = scope.store.list_plugins().await?;
    Ok(Json(StrategyList {
        strategies: strategies.into_iter().map(Strategy::from).collect(),
    }))
}

fn not_found(id: u64) -> AppError {
    AppError::not_found(
        ErrorCode::StrategyNotFound,
        format!("strategy {id} not found"),
    )
}

#[utoipa::path(get, path = "/api/v1/strategies/{id}", tag = "strategies",
    params(("id" = u64, Path)),
    responses((status = 200, body = Strategy), (status = 404, body = ErrorBody)))]
pub async fn get_one(
    scope: Scope,
    id: Result<Path<u64>, PathRejection>,
) -> ApiResult<Json<Strategy>> {
    let Path(id) = id?;
    let record = scope
        .store
        .plugin_record_by_id(id)
        .await?
        .ok_or_else(|| not_found(id))?;
    Ok(Json(record.into()))
}

/// Delete a strategy; 409 while a queued or running task needs it.
#[utoipa::path(delete, path = "/api/v1/strategies/{id}", tag = "strategies",
    params(("id" = u64, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security((), ("bearer" = [])))]
pub async fn delete_one(
    State(state): State<AppState>,
    scope: Scope,
    id: Result<Path<u64>, PathRejection>,
) -> ApiResult<StatusCode> {
    let Path(id) = id?;
    stratbox_service::tasks::strategies::delete_strategy(&scope.store, &state.queue, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
