//! [`ApiError`]: the one error type of the HTTP edge, rendered as
//! `{"error": {"code": "...", "message": "..."}}` with a fitting status. Internal details
//! (storage paths, SQL) are logged, never echoed.
//!
//! [`json_errors`] holds the contract for answers that do not come from a handler (a 405 of
//! the router, an extractor's rejection, a layer's refusal): every error is this JSON.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::http::{HeaderValue, StatusCode, header};
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
    /// 405: the route exists, the method does not (the answer keeps its `Allow` header).
    #[error("{0}")]
    MethodNotAllowed(String),
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
    /// 503: the server is at its connection limit; nothing was read.
    #[error("{0}")]
    Busy(String),
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
            ApiError::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            ApiError::Unprocessable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "refused"),
            ApiError::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::Storage(_) => (StatusCode::SERVICE_UNAVAILABLE, "storage"),
            ApiError::Busy(_) => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
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

impl From<WebSocketUpgradeRejection> for ApiError {
    fn from(r: WebSocketUpgradeRejection) -> Self {
        match r {
            WebSocketUpgradeRejection::MethodNotGet(_) => {
                ApiError::MethodNotAllowed("a WebSocket is opened with GET".into())
            }
            other => ApiError::BadRequest(format!(
                "this route is a WebSocket; connect with a WebSocket client ({})",
                other.body_text()
            )),
        }
    }
}

/// The stable code of a status that did not come from an [`ApiError`].
fn code_of(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::CONFLICT => "conflict",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::UNPROCESSABLE_ENTITY => "refused",
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        s if s.is_client_error() => "bad_request",
        _ => "internal",
    }
}

/// Router-wide: rewrites an error answer that is not JSON (axum's plain-text rejections, its
/// empty 405) into `{"error": {"code", "message"}}`, keeping the status and headers such as
/// `Allow` and `Retry-After`. A client error keeps its text as the message (axum's rejection
/// texts describe the request, not the server); a server error says only "internal error".
pub async fn json_errors(resp: Response) -> Response {
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 1024)
        .await
        .ok()
        .and_then(|b| String::from_utf8(b.to_vec()).ok())
        .map(|t| t.trim().to_owned())
        .unwrap_or_default();
    let message = if status.is_server_error() {
        tracing::error!(%status, error = %text, "request failed outside a handler");
        "internal error".to_owned()
    } else if text.is_empty() {
        match status {
            StatusCode::METHOD_NOT_ALLOWED => "this route does not take this method".to_owned(),
            s => s.canonical_reason().unwrap_or("error").to_owned(),
        }
    } else {
        text
    };
    let body = json!({"error": {"code": code_of(status), "message": message}}).to_string();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, axum::body::Body::from(body))
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
