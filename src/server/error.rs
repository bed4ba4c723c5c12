//! [`ApiError`]: the one error type of the HTTP edge, rendered as
//! `{"error": {"code": "...", "message": "..."}}` with a fitting status. Internal details
//! (storage paths, SQL) are logged, never echoed.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// 400: malformed request.
    #[error("{0}")]
    BadRequest(String),
    /// 401: missing or wrong token.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: not yours.
    #[error("{0}")]
    Forbidden(String),
    /// 404: unknown thing.
    #[error("{0}")]
    NotFound(String),
    /// 409: not allowed in this state.
    #[error("{0}")]
    Conflict(String),
    /// 413: too large.
    #[error("{0}")]
    TooLarge(String),
    /// 422: a playbook was refused (carries diagnostics in the message).
    #[error("{0}")]
    Unprocessable(String),
    /// 429: rate limited.
    #[error("{0}")]
    RateLimited(String),
    /// 503: storage trouble; the change was not acknowledged.
    #[error("{0}")]
    Storage(String),
    /// 500: a bug.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// The status and the stable code.
    pub fn status_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            ApiError::Unprocessable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "refused"),
            ApiError::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::Storage(_) => (StatusCode::SERVICE_UNAVAILABLE, "storage"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl From<crate::persist::StoreError> for ApiError {
    fn from(e: crate::persist::StoreError) -> Self {
        ApiError::Storage(e.to_string())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::BytesRejection(b) if b.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::TooLarge("the request body is too large".into())
            }
            other => ApiError::BadRequest(other.body_text()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_code();
        let message = match &self {
            ApiError::Storage(m) | ApiError::Internal(m) => {
                tracing::error!(error = %m, code, "request failed");
                if matches!(self, ApiError::Storage(_)) {
                    "storage is unavailable; the change was not accepted, try again".to_owned()
                } else {
                    "internal error".to_owned()
                }
            }
            other => other.to_string(),
        };
        (
            status,
            Json(json!({"error": {"code": code, "message": message}})),
        )
            .into_response()
    }
}
