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

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Malformed body, missing field, wrong type.
    #[error("{0}")]
    BadRequest(String),
    #[error("missing or wrong bearer token")]
    Unauthorized,
    #[error("{message}")]
    NotFound {
        code: &'static str,
        field: Option<String>,
        message: String,
    },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    /// A well-formed request with a bad value; `field` names it.
    #[error("invalid {field}: {message}")]
    Invalid {
        code: &'static str,
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
    pub code: String,
    pub message: String,
    /// The request field at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl AppError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        AppError::Invalid {
            code: "validation_error",
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        AppError::NotFound {
            code,
            field: None,
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Unauthorized => StatusCode::UNAUTHORIZED,
            AppError::NotFound { .. } => StatusCode::NOT_FOUND,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn detail(&self) -> ErrorDetail {
        let (code, field, message) = match self {
            AppError::BadRequest(m) => ("bad_request", None, m.clone()),
            AppError::Unauthorized => ("unauthorized", None, self.to_string()),
            AppError::NotFound {
                code,
                field,
                message,
            } => (*code, field.clone(), message.clone()),
            AppError::Conflict(m) => ("conflict", None, m.clone()),
            AppError::PayloadTooLarge(m) => ("payload_too_large", None, m.clone()),
            AppError::Invalid { code, field, .. } => (*code, Some(field.clone()), self.to_string()),
            AppError::Unavailable(_) => (
                "redis_unavailable",
                None,
                "the data store is unavailable; retry later".to_string(),
            ),
            AppError::Internal(_) => ("internal_error", None, "internal server error".to_string()),
        };
        ErrorDetail {
            code: code.to_string(),
            message,
            field,
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
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
                AppError::not_found("not_found", format!("{what} not found"))
            }
            StoreError::Invalid { field, message } => AppError::invalid(field, message),
            StoreError::Conflict { .. } => AppError::Conflict(e.to_string()),
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
            DeleteError::NotFound(_) => AppError::not_found("strategy_not_found", message),
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
                code: "strategy_not_found",
                field: Some("strategy_id".into()),
                message,
            },
            SubmitError::UnknownBacktest(_) => AppError::NotFound {
                code: "backtest_not_found",
                field: Some("backtest_id".into()),
                message,
            },
            SubmitError::UnknownCandles { .. } => AppError::NotFound {
                code: "candles_not_found",
                field: Some("symbol".into()),
                message,
            },
            SubmitError::Param(e) => AppError::Invalid {
                code: "invalid_param",
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
