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
    /// What runs it: `compiled` (Rust and other compiled languages),
    /// `python` or `javascript`.
    pub runtime: String,
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
            runtime: r.runtime,
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

/// Components at least this large that this host has not compiled yet
/// are compiled after the reply (202): a Python or JavaScript component
/// (12-18 MB, an interpreter inside) takes 6-12 s to compile, a Rust one
/// (about 200 KB) about 100 ms, which stays on the request path (201).
pub const BACKGROUND_COMPILE_BYTES: usize = 4 << 20;

/// A staged upload whose compile started this long ago and never ended
/// was lost with its process; the next poll starts it again.
const STALE_COMPILE_MS: i64 = 10 * 60 * 1000;

/// A large upload, compiling after the reply. Poll `poll` until `status`
/// is `ready` (then `strategy` is the stored strategy) or `failed` (then
/// `error` says why the sandbox refused it).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UploadReply {
    pub sha256: String,
    /// `compiling`, `ready` or `failed`.
    pub status: String,
    pub error: Option<String>,
    pub strategy: Option<Strategy>,
    /// What runs the strategy: `compiled`, `python` or `javascript`.
    pub runtime: Option<String>,
    pub poll: String,
}

/// Upload a strategy component. The sandbox checks it first (format,
/// contract version, imports); the same bytes again give the same strategy.
/// A large component not compiled yet on this host (Python, JavaScript)
/// is checked without compiling, then compiled in the background: the
/// reply is 202 with where to poll.
#[utoipa::path(post, path = "/api/v1/strategies", tag = "strategies",
    request_body(description = "the component: raw bytes, or a multipart form with one file field",
        content((ComponentBytes = "application/wasm"), (ComponentBytes = "application/octet-stream"),
            (UploadForm = "multipart/form-data"))),
    responses((status = 201, body = Strategy, description = "stored"),
        (status = 200, body = Strategy, description = "already stored"),
        (status = 202, body = UploadReply, description = "checked, compiling in the background"),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)),
    security((), ("bearer" = [])))]
pub async fn upload(
    State(state): State<AppState>,
    scope: Scope,
    request: Request,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let bytes = component_bytes(&state, request).await?;
    if bytes.is_empty() {
        return Err(AppError::invalid("body", "empty body; send the component"));
    }
    let refused = |e: stratbox_sandbox::LoadError| AppError::Invalid {
        code: ErrorCode::InvalidPlugin,
        field: "body".into(),
        message: e.to_string(),
    };
    let checked = bytes.clone();
    let prechecked = tokio::task::spawn_blocking(move || stratbox_sandbox::precheck(&checked))
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("plugin check panicked: {e}")))?
        .map_err(refused)?;
    if let Some(record) = scope.store.plugin_record_by_sha(&prechecked.sha256).await? {
        return Ok((StatusCode::OK, Json(Strategy::from(record))).into_response());
    }
    if bytes.len() >= BACKGROUND_COMPILE_BYTES && !state.sandbox.is_compiled(&prechecked.sha256) {
        let sha256 = prechecked.sha256;
        let restart = scope
            .store
            .upload_state(&sha256)
            .await?
            .is_some_and(|s| s.status == "failed");
        if scope.store.stage_upload(&sha256, &bytes, restart).await? {
            compile_in_background(&state, scope.store.clone(), sha256.clone(), bytes);
        }
        let reply = upload_reply(&scope, &sha256, Some(prechecked.runtime.as_str())).await?;
        let location = reply.poll.clone();
        return Ok((
            StatusCode::ACCEPTED,
            [(header::LOCATION, location)],
            Json(reply),
        )
            .into_response());
    }
    let sandbox = state.sandbox.clone();
    // Compiling is CPU work of up to seconds: off the async threads.
    let plugin = tokio::task::spawn_blocking(move || sandbox.load(&bytes).map(|p| (p, bytes)))
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("plugin check panicked: {e}")))?
        .map_err(refused)?;
    let (plugin, bytes) = plugin;
    let (record, created) = store_plugin(&scope.store, &plugin, &bytes).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(Strategy::from(record))).into_response())
}

/// Stores a plugin the sandbox loaded, with what it found in it.
async fn store_plugin(
    store: &stratbox_store::Store,
    plugin: &stratbox_sandbox::Plugin,
    bytes: &[u8],
) -> Result<(PluginRecord, bool), stratbox_store::StoreError> {
    let d = &plugin.description;
    store
        .put_plugin_of(
            &plugin.sha256,
            bytes,
            &d.name,
            &d.version,
            d,
            plugin.runtime.as_str(),
            plugin.is_portfolio(),
        )
        .await
}

/// Background compiles at a time, per API process: compiling a 12-18 MB
/// interpreter component takes a core and up to about 540 MB for up to
/// tens of seconds, so a burst of uploads queues instead of piling up.
static BACKGROUND_COMPILES: std::sync::LazyLock<tokio::sync::Semaphore> =
    std::sync::LazyLock::new(|| tokio::sync::Semaphore::new(1));

/// Compiles a staged upload off the request path and records the outcome.
fn compile_in_background(
    state: &AppState,
    store: stratbox_store::Store,
    sha256: String,
    bytes: Bytes,
) {
    let sandbox = state.sandbox.clone();
    tokio::spawn(async move {
        let _turn = BACKGROUND_COMPILES.acquire().await;
        let started = std::time::Instant::now();
        let loaded =
            tokio::task::spawn_blocking(move || sandbox.load(&bytes).map(|p| (p, bytes))).await;
        let outcome = match loaded {
            Ok(Ok((plugin, bytes))) => match store_plugin(&store, &plugin, &bytes).await {
                Ok((record, _)) => Ok(record.strategy_id),
                Err(e) => {
                    tracing::error!(sha256 = %sha256, error = %e, "cannot store a compiled upload");
                    Err("the strategy compiled but could not be stored; upload it again".into())
                }
            },
            Ok(Err(refused)) => Err(refused.to_string()),
            Err(panic) => {
                tracing::error!(sha256 = %sha256, error = %panic, "the compile of an upload panicked");
                Err("internal error while compiling; upload it again".into())
            }
        };
        tracing::info!(sha256 = %sha256, ok = outcome.is_ok(), secs = started.elapsed().as_secs_f64(), "background compile of an upload ended");
        if let Err(e) = store.finish_upload(&sha256, outcome).await {
            tracing::error!(sha256 = %sha256, error = %e, "cannot record the end of a background compile");
        }
    });
}

async fn upload_reply(
    scope: &Scope,
    sha256: &str,
    runtime: Option<&str>,
) -> ApiResult<UploadReply> {
    let state = scope.store.upload_state(sha256).await?;
    let strategy = match state.as_ref().and_then(|s| s.strategy_id) {
        Some(id) => scope
            .store
            .plugin_record_by_id(id)
            .await?
            .map(Strategy::from),
        None => None,
    };
    Ok(UploadReply {
        sha256: sha256.to_string(),
        status: state
            .as_ref()
            .map_or("compiling".into(), |s| s.status.clone()),
        error: state.and_then(|s| s.error),
        runtime: runtime.map(str::to_string),
        strategy,
        poll: format!("/api/v1/strategies/uploads/{sha256}"),
    })
}

/// The state of an upload compiling in the background.
#[utoipa::path(get, path = "/api/v1/strategies/uploads/{sha256}", tag = "strategies",
    params(("sha256" = String, Path)),
    responses((status = 200, body = UploadReply), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn upload_status(
    State(state): State<AppState>,
    scope: Scope,
    sha256: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<UploadReply>> {
    let Path(sha256) = sha256?;
    let Some(staged) = scope.store.upload_state(&sha256).await? else {
        return Err(AppError::not_found(
            ErrorCode::NotFound,
            format!("no upload of {sha256} is compiling (uploads are kept a day)"),
        ));
    };
    if staged.status == "compiling"
        && stratbox_store::now_ms() - staged.started_at_ms > STALE_COMPILE_MS
    {
        if let Some(bytes) = scope.store.upload_bytes(&sha256).await? {
            scope.store.stage_upload(&sha256, &bytes, true).await?;
            compile_in_background(
                &state,
                scope.store.clone(),
                sha256.clone(),
                Bytes::from(bytes),
            );
        }
    }
    Ok(Json(upload_reply(&scope, &sha256, None).await?))
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
