//! The HTTP API (axum), base `/api/v1`: the old service's queue endpoints
//! field for field (docs/conventions/api-compat.md), plus strategies, candles, backtests, tasks and the
//! dead-letter stream. Handlers are thin: validation and every state
//! change live in `tasks`, `store` and `queue`.
#![forbid(unsafe_code)]

pub mod auth;
mod backtests;
mod candles;
mod dashboard;
pub mod error;
mod market;
pub mod metrics;
mod optimizations;
mod queue;
mod quota;
mod schedules;
mod strategies;
mod tenants;
#[cfg(test)]
mod tests;

pub use error::{ApiResult, AppError, ErrorCode};

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::HeaderName;
use axum::middleware;
use axum::routing::{get, post};
use axum::Router;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use stratbox_queue::Queue;
use stratbox_sandbox::Sandbox;
use stratbox_store::Store;

/// Where `stratbox serve` listens, and the clients look, unless told:
/// loopback only, so nothing is exposed by accident.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8000";

/// Largest strategy component accepted.
pub const PLUGIN_BODY_LIMIT: usize = 64 << 20;
/// Largest candle CSV accepted (about 2.5 million rows).
pub const CANDLES_BODY_LIMIT: usize = 256 << 20;
/// Every other body (JSON requests).
pub const JSON_BODY_LIMIT: usize = 1 << 20;
/// How long the health check waits for Redis before calling it down.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(1);

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What every handler shares. One `Arc`: axum clones the state for every
/// extractor of every request, so a clone must not copy key strings.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub store: Store,
    pub queue: Queue,
    /// Validates uploads (and keeps them compiled, as a worker would).
    pub sandbox: Arc<Sandbox>,
    /// The token, API keys and tenants' stores (see `auth`).
    pub auth: auth::Auth,
    /// Tenants' quotas and usage as recently read (see `quota`).
    pub quotas: quota::QuotaCache,
    /// This process's request counts and latencies.
    pub http: metrics::HttpMetrics,
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    /// `token`: `None` or empty leaves the API open.
    pub fn new(store: Store, queue: Queue, sandbox: Sandbox, token: Option<&str>) -> Self {
        Self(Arc::new(Shared {
            store,
            queue,
            sandbox: Arc::new(sandbox),
            auth: auth::Auth::new(token),
            quotas: quota::QuotaCache::default(),
            http: metrics::HttpMetrics::default(),
        }))
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "stratbox API", description = "Sandboxed WebAssembly trading strategies: backtests through a Redis Streams queue."),
    paths(
        queue::run_backtest,
        queue::create_and_run,
        queue::metrics,
        queue::health,
        queue::queue_state,
        queue::history,
        queue::get_task,
        queue::cancel_task,
        queue::list_dlq,
        queue::requeue_dlq,
        queue::purge_dlq,
        strategies::upload,
        strategies::upload_status,
        strategies::list,
        strategies::get_one,
        strategies::delete_one,
        candles::import,
        candles::list,
        market::fetch,
        market::fetch_status,
        market::import_funding,
        market::get_funding,
        market::import_mark,
        market::put_instrument,
        market::get_instrument,
        backtests::get_one,
        backtests::get_log,
        backtests::delete_one,
        optimizations::create_and_run,
        optimizations::get_one,
        optimizations::list,
        optimizations::table_csv,
        optimizations::cancel,
        optimizations::delete_one,
        backtests::list,
        metrics::prometheus,
        schedules::create,
        schedules::list,
        schedules::get_one,
        schedules::pause,
        schedules::resume,
        schedules::delete_one,
        tenants::create_key,
        tenants::list_keys,
        tenants::revoke_key,
        tenants::list_tenants,
        tenants::get_tenant,
        tenants::put_quota,
    ),
    components(schemas(error::ErrorBody, error::ErrorDetail, error::ErrorCode)),
    modifiers(&BearerAuth, &CommonErrors),
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
        }
    }
}

/// Failures any operation can meet, documented once for all of them so
/// the document cannot forget one: 400 (malformed path, query or body),
/// 401 (mutations when a token is set; everything once API keys exist),
/// 403 (another tenant named, an admin's operation), 413 (bodies), 503
/// (Redis down).
struct CommonErrors;

impl utoipa::Modify for CommonErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let error = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build()
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            // Prometheus gets its answer even while Redis is down.
            let uses_redis = path != "/metrics";
            // Health stays open for load balancers; /metrics is outside.
            let authenticated = path.starts_with("/api/v1/") && path != "/api/v1/queue/health";
            let operations = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
            ];
            for operation in operations {
                let Some(operation) = operation.as_mut() else {
                    continue;
                };
                let responses = &mut operation.responses.responses;
                let mut add = |status: &str, description: &str| {
                    responses
                        .entry(status.to_string())
                        .or_insert_with(|| error(description).into());
                };
                add("400", "malformed path, query or body");
                if authenticated {
                    add(
                        "401",
                        "missing or wrong bearer token or API key (writes when the server has a token; every request once API keys exist)",
                    );
                    add(
                        "403",
                        "a key that may not do this: an admin's operation, or another tenant named in X-Stratbox-Tenant",
                    );
                }
                if operation.request_body.is_some() {
                    add("413", "body larger than the route's limit");
                }
                if uses_redis {
                    add("503", "Redis unavailable");
                }
            }
        }
    }
}

/// Every `/api/v1` route, without auth: mounted there, and again under
/// `/dashboard/api` behind the token on every method.
fn routes() -> Router<AppState> {
    Router::new()
        .route("/queue/backtest/run", post(queue::run_backtest))
        .route(
            "/queue/backtest/create-and-run",
            post(queue::create_and_run),
        )
        .route("/queue/metrics", get(queue::metrics))
        .route("/queue/health", get(queue::health))
        .route("/queue/state", get(queue::queue_state))
        .route("/queue/history", get(queue::history))
        .route(
            "/queue/tasks/{task_id}",
            get(queue::get_task).delete(queue::cancel_task),
        )
        .route("/queue/dlq", get(queue::list_dlq).delete(queue::purge_dlq))
        .route("/queue/dlq/requeue", post(queue::requeue_dlq))
        .route(
            "/strategies",
            post(strategies::upload)
                .layer(DefaultBodyLimit::max(PLUGIN_BODY_LIMIT))
                .get(strategies::list),
        )
        .route(
            "/strategies/uploads/{sha256}",
            get(strategies::upload_status),
        )
        .route(
            "/strategies/{id}",
            get(strategies::get_one).delete(strategies::delete_one),
        )
        .route(
            "/candles/{symbol}/{timeframe}",
            post(candles::import).layer(DefaultBodyLimit::max(CANDLES_BODY_LIMIT)),
        )
        .route("/candles", get(candles::list))
        .route("/data/fetch", post(market::fetch))
        .route("/data/fetch/{task_id}", get(market::fetch_status))
        .route(
            "/funding/{symbol}",
            post(market::import_funding)
                .layer(DefaultBodyLimit::max(CANDLES_BODY_LIMIT))
                .get(market::get_funding),
        )
        .route(
            "/mark/{symbol}/{timeframe}",
            post(market::import_mark).layer(DefaultBodyLimit::max(CANDLES_BODY_LIMIT)),
        )
        .route(
            "/instruments/{symbol}",
            post(market::put_instrument).get(market::get_instrument),
        )
        .route("/schedules", post(schedules::create).get(schedules::list))
        .route(
            "/schedules/{id}",
            get(schedules::get_one).delete(schedules::delete_one),
        )
        .route("/schedules/{id}/pause", post(schedules::pause))
        .route("/schedules/{id}/resume", post(schedules::resume))
        .route("/backtests", get(backtests::list))
        .route(
            "/backtests/{id}",
            get(backtests::get_one).delete(backtests::delete_one),
        )
        .route("/backtests/{id}/log", get(backtests::get_log))
        // Optimizations (issue 5).
        .route(
            "/queue/optimization/create-and-run",
            post(optimizations::create_and_run),
        )
        .route("/keys", post(tenants::create_key).get(tenants::list_keys))
        .route("/keys/{id}", axum::routing::delete(tenants::revoke_key))
        .route("/tenants", get(tenants::list_tenants))
        .route("/tenants/{tenant}", get(tenants::get_tenant))
        .route(
            "/tenants/{tenant}/quota",
            axum::routing::put(tenants::put_quota),
        )
        .route("/optimizations", get(optimizations::list))
        .route(
            "/optimizations/{id}",
            get(optimizations::get_one).delete(optimizations::delete_one),
        )
        .route("/optimizations/{id}/cancel", post(optimizations::cancel))
        .route(
            "/optimizations/{id}/table.csv",
            get(optimizations::table_csv),
        )
}

/// The whole service as one router.
pub fn app(state: AppState) -> Router {
    let api = routes()
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        .layer(DefaultBodyLimit::max(JSON_BODY_LIMIT));
    Router::new()
        .nest("/api/v1", api)
        .merge(dashboard::routes(state.clone()))
        .route("/metrics", get(metrics::prometheus))
        .merge(SwaggerUi::new("/docs").url("/api-docs/openapi.json", ApiDoc::openapi()))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), metrics::track))
        .with_state(state)
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request| {
                let id = request
                    .headers()
                    .get(&REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!("request", method = %request.method(), uri = %request.uri(), request_id = %id)
            }),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

async fn not_found() -> AppError {
    AppError::not_found(ErrorCode::NotFound, "no such endpoint")
}

/// Serves `app` on `listener` until `shutdown` resolves; requests in
/// flight are finished first.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    use anyhow::Context;
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
        .context("http server failed")
}
