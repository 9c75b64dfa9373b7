//! One error type for every handler: a fixed status per failure and the
//! JSON body `{"error": {"code": ..., "message": ...}}`.

use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use stratbox_queue::QueueError;
use stratbox_service::tasks::strategies::DeleteError;
use stratbox_service::tasks::SubmitError;
use stratbox_store::StoreError;

/// Every `code` of an error reply, a stable snake_case string: an error
/// keeps its code and status; new codes may be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Malformed JSON, a missing field, a wrong type; a bad path or query.
    BadRequest,
    /// A mutating request without the right bearer token; any request
    /// without a key once API keys exist.
    Unauthorized,
    /// A valid key that may not do this (an admin operation).
    Forbidden,
    /// Over one of the tenant's quotas; `field` names it, `Retry-After`
    /// says when to try again.
    QuotaExceeded,
    /// No such endpoint, or a record the store did not find.
    NotFound,
    StrategyNotFound,
    BacktestNotFound,
    CandlesNotFound,
    TaskNotFound,
    OptimizationNotFound,
    ScheduleNotFound,
    /// No such dashboard asset.
    AssetNotFound,
    Conflict,
    PayloadTooLarge,
    /// A well-formed request with a bad value.
    ValidationError,
    /// A strategy param outside its schema.
    InvalidParam,
    /// A component the sandbox refused.
    InvalidPlugin,
    /// A candle CSV that does not parse.
    InvalidCsv,
    RedisUnavailable,
    InternalError,
}

impl ErrorCode {
    /// The status of an error reply: the one place it is chosen.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::BadRequest => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::QuotaExceeded => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::NotFound
            | ErrorCode::StrategyNotFound
            | ErrorCode::BacktestNotFound
            | ErrorCode::CandlesNotFound
            | ErrorCode::TaskNotFound
            | ErrorCode::OptimizationNotFound
            | ErrorCode::ScheduleNotFound
            | ErrorCode::AssetNotFound => StatusCode::NOT_FOUND,
            ErrorCode::Conflict => StatusCode::CONFLICT,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::ValidationError
            | ErrorCode::InvalidParam
            | ErrorCode::InvalidPlugin
            | ErrorCode::InvalidCsv => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::RedisUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// A failed request. The variant shapes the message; the code (fixed for
/// most variants, chosen by the caller for `NotFound` and `Invalid`)
/// decides the status.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Malformed body, missing field, wrong type.
    #[error("{0}")]
    BadRequest(String),
    #[error("missing or wrong bearer token")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    /// Nothing was queued; `quota` names the limit.
    #[error("over the `{quota}` quota: {message}")]
    QuotaExceeded {
        quota: String,
        message: String,
        retry_after_secs: u64,
    },
    /// `code`: `not_found` or a more precise 404 code.
    #[error("{message}")]
    NotFound {
        code: ErrorCode,
        field: Option<String>,
        message: String,
    },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    /// A well-formed request with a bad value; `field` names it. `code`:
    /// `validation_error` or a more precise 422 code.
    #[error("invalid {field}: {message}")]
    Invalid {
        code: ErrorCode,
        field: String,
        message: String,
    },
    /// Redis unreachable; the cause is logged, not shown.
    #[error("redis unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0:#}")]
    Internal(anyhow::Error),
}

/// The error envelope, as documented in the OpenAPI schema.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    pub message: String,
    /// The request field at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl AppError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        AppError::Invalid {
            code: ErrorCode::ValidationError,
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn not_found(code: ErrorCode, message: impl Into<String>) -> Self {
        AppError::NotFound {
            code,
            field: None,
            message: message.into(),
        }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            AppError::BadRequest(_) => ErrorCode::BadRequest,
            AppError::Unauthorized => ErrorCode::Unauthorized,
            AppError::Forbidden(_) => ErrorCode::Forbidden,
            AppError::QuotaExceeded { .. } => ErrorCode::QuotaExceeded,
            AppError::NotFound { code, .. } | AppError::Invalid { code, .. } => *code,
            AppError::Conflict(_) => ErrorCode::Conflict,
            AppError::PayloadTooLarge(_) => ErrorCode::PayloadTooLarge,
            AppError::Unavailable(_) => ErrorCode::RedisUnavailable,
            AppError::Internal(_) => ErrorCode::InternalError,
        }
    }

    pub fn status(&self) -> StatusCode {
        self.code().status()
    }

    fn detail(&self) -> ErrorDetail {
        let code = self.code();
        if code.status().is_server_error() {
            // Ours, not the client's: the cause is logged, never shown.
            let message = match code {
                ErrorCode::RedisUnavailable => "the data store is unavailable; retry later",
                _ => "internal server error",
            };
            return ErrorDetail {
                code,
                message: message.to_string(),
                field: None,
            };
        }
        let (field, message) = match self {
            AppError::NotFound { field, message, .. } => (field.clone(), message.clone()),
            AppError::Invalid { field, .. } => (Some(field.clone()), self.to_string()),
            AppError::BadRequest(m)
            | AppError::Conflict(m)
            | AppError::PayloadTooLarge(m)
            | AppError::Forbidden(m) => (None, m.clone()),
            AppError::QuotaExceeded { quota, .. } => (Some(quota.clone()), self.to_string()),
            // `Unavailable` and `Internal` are 5xx, answered above.
            AppError::Unauthorized | AppError::Unavailable(_) | AppError::Internal(_) => {
                (None, self.to_string())
            }
        };
        ErrorDetail {
            code,
            message,
            field,
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        let retry_after = match &self {
            AppError::QuotaExceeded {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            _ => None,
        };
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), error = %self, "request failed");
        } else {
            // Client mistakes are normal traffic, never errors of ours.
            tracing::info!(status = status.as_u16(), error = %self, "request refused");
        }
        let mut response = (
            status,
            Json(ErrorBody {
                error: self.detail(),
            }),
        )
            .into_response();
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

/// Connection trouble is 503 (retry later); anything else from Redis
/// (a script bug, a wrong type) is ours: 500.
fn redis_error(e: &redis::RedisError) -> AppError {
    if e.is_io_error() || e.is_connection_refusal() || e.is_timeout() || e.is_connection_dropped() {
        AppError::Unavailable(e.to_string())
    } else {
        AppError::Internal(anyhow::anyhow!("redis: {e}"))
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Redis(e) => redis_error(&e),
            StoreError::NotFound { what } => {
                AppError::not_found(ErrorCode::NotFound, format!("{what} not found"))
            }
            StoreError::Invalid { field, message } => AppError::invalid(field, message),
            StoreError::Conflict { .. } | StoreError::Busy { .. } => {
                AppError::Conflict(e.to_string())
            }
            StoreError::Corrupt { .. } => AppError::Internal(e.into()),
        }
    }
}

impl From<QueueError> for AppError {
    fn from(e: QueueError) -> Self {
        match e {
            QueueError::Redis(e) => redis_error(&e),
            QueueError::Invalid { field, message } => AppError::invalid(field, message),
            QueueError::Reply(_) => AppError::Internal(e.into()),
            QueueError::GuardFailed(_) => AppError::Conflict(e.to_string()),
        }
    }
}

impl From<DeleteError> for AppError {
    fn from(e: DeleteError) -> Self {
        let message = e.to_string();
        match e {
            DeleteError::NotFound(_) => AppError::not_found(ErrorCode::StrategyNotFound, message),
            DeleteError::InUse { .. } => AppError::Conflict(message),
            DeleteError::Store(e) => e.into(),
            DeleteError::Queue(e) => e.into(),
        }
    }
}

impl From<SubmitError> for AppError {
    fn from(e: SubmitError) -> Self {
        let message = e.to_string();
        match e {
            SubmitError::UnknownStrategy(_) => AppError::NotFound {
                code: ErrorCode::StrategyNotFound,
                field: Some("strategy_id".into()),
                message,
            },
            SubmitError::UnknownBacktest(_) => AppError::NotFound {
                code: ErrorCode::BacktestNotFound,
                field: Some("backtest_id".into()),
                message,
            },
            SubmitError::UnknownCandles { .. } => AppError::NotFound {
                code: ErrorCode::CandlesNotFound,
                field: Some("symbol".into()),
                message,
            },
            SubmitError::Param(e) => AppError::Invalid {
                code: ErrorCode::InvalidParam,
                field: format!("config.params.{}", e.field()),
                message: e.to_string(),
            },
            SubmitError::Invalid { field, message } => AppError::invalid(field, message),
            SubmitError::Store(e) => e.into(),
            SubmitError::Queue(e) => e.into(),
        }
    }
}

impl From<JsonRejection> for AppError {
    fn from(e: JsonRejection) -> Self {
        match e.status() {
            StatusCode::PAYLOAD_TOO_LARGE => AppError::PayloadTooLarge(e.body_text()),
            _ => AppError::BadRequest(e.body_text()),
        }
    }
}

impl From<BytesRejection> for AppError {
    fn from(e: BytesRejection) -> Self {
        match e.status() {
            StatusCode::PAYLOAD_TOO_LARGE => AppError::PayloadTooLarge(e.body_text()),
            _ => AppError::BadRequest(e.body_text()),
        }
    }
}

impl From<PathRejection> for AppError {
    fn from(e: PathRejection) -> Self {
        AppError::BadRequest(e.body_text())
    }
}

impl From<QueryRejection> for AppError {
    fn from(e: QueryRejection) -> Self {
        AppError::BadRequest(e.body_text())
    }
}

pub type ApiResult<T> = Result<T, AppError>;

#[cfg(test)]
mod tests {

    use std::collections::BTreeSet;

    use serde_json::{json, Value};
    use utoipa::OpenApi;

    use super::*;

    /// Every code with its string and status, written out by hand: the
    /// contract of docs/conventions/api-compat.md (errors keep both).
    #[rustfmt::skip]
    const CODES: [(ErrorCode, &str, u16); 20] = [
        (ErrorCode::BadRequest, "bad_request", 400),
        (ErrorCode::Unauthorized, "unauthorized", 401),
        (ErrorCode::Forbidden, "forbidden", 403),
        (ErrorCode::QuotaExceeded, "quota_exceeded", 429),
        (ErrorCode::NotFound, "not_found", 404),
        (ErrorCode::StrategyNotFound, "strategy_not_found", 404),
        (ErrorCode::BacktestNotFound, "backtest_not_found", 404),
        (ErrorCode::CandlesNotFound, "candles_not_found", 404),
        (ErrorCode::TaskNotFound, "task_not_found", 404),
        (ErrorCode::OptimizationNotFound, "optimization_not_found", 404),
        (ErrorCode::ScheduleNotFound, "schedule_not_found", 404),
        (ErrorCode::AssetNotFound, "asset_not_found", 404),
        (ErrorCode::Conflict, "conflict", 409),
        (ErrorCode::PayloadTooLarge, "payload_too_large", 413),
        (ErrorCode::ValidationError, "validation_error", 422),
        (ErrorCode::InvalidParam, "invalid_param", 422),
        (ErrorCode::InvalidPlugin, "invalid_plugin", 422),
        (ErrorCode::InvalidCsv, "invalid_csv", 422),
        (ErrorCode::RedisUnavailable, "redis_unavailable", 503),
        (ErrorCode::InternalError, "internal_error", 500),
    ];

    #[test]
    fn every_code_serialises_to_its_string_and_has_its_status() {
        for (code, text, status) in CODES {
            assert_eq!(serde_json::to_value(code).unwrap(), json!(text), "{code:?}");
            assert_eq!(code.status().as_u16(), status, "{code:?}");
        }
        // The table has every variant: the document lists the enum's
        // strings, and `code` of the error body is that enum.
        let doc = serde_json::to_value(crate::ApiDoc::openapi()).unwrap();
        let schemas = &doc["components"]["schemas"];
        let listed: BTreeSet<&str> = schemas["ErrorCode"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let table: BTreeSet<&str> = CODES.iter().map(|(_, text, _)| *text).collect();
        assert_eq!(listed, table);
        assert_eq!(table.len(), CODES.len(), "a string twice in the table");
        assert_eq!(schemas["ErrorCode"]["type"], "string");
        assert_eq!(
            schemas["ErrorDetail"]["properties"]["code"]["$ref"],
            "#/components/schemas/ErrorCode"
        );
    }

    async fn reply(error: AppError) -> (u16, Value) {
        let response = error.into_response();
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn a_5xx_tells_the_client_nothing_of_its_cause() {
        let cases = [
            AppError::Internal(anyhow::anyhow!("secret cause")),
            AppError::Unavailable("secret cause".into()),
            AppError::NotFound {
                code: ErrorCode::InternalError,
                field: Some("secret".into()),
                message: "secret cause".into(),
            },
        ];
        for error in cases {
            let (status, body) = reply(error).await;
            assert!((500..600).contains(&status), "{body}");
            assert!(!body.to_string().contains("secret"), "{body}");
        }
        let (status, body) = reply(AppError::Unavailable("x".into())).await;
        assert_eq!(status, 503);
        assert_eq!(
            body,
            json!({"error": {"code": "redis_unavailable",
                "message": "the data store is unavailable; retry later"}})
        );
        let (status, body) = reply(AppError::Internal(anyhow::anyhow!("x"))).await;
        assert_eq!(status, 500);
        assert_eq!(
            body,
            json!({"error": {"code": "internal_error", "message": "internal server error"}})
        );
    }
}
