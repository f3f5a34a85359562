//! The API's one error type and its HTTP mapping: every error is JSON `{"error": code, "message": text}`. Bad
//! input is always a 4xx; a frame that fails to render is a 500 for that frame only; anything unexpected is an
//! opaque 500 with a log line.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};

/// Why a request could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed: a frame index that is not a number, an unknown format, a bad message.
    #[error("{0}")]
    BadRequest(String),
    /// No such sequence, frame, video or file.
    #[error("{0}")]
    NotFound(String),
    /// The path exists, the method does not.
    #[error("{method} is not allowed here: use GET")]
    MethodNotAllowed { method: String },
    /// A byte range outside the file.
    #[error("the requested byte range is outside the file ({len} bytes)")]
    Range { len: u64 },
    /// The frame's render failed; other frames are unaffected.
    #[error("frame {index} could not be rendered: {message}")]
    RenderFailed { index: usize, message: String },
    /// Too much work queued; the client may retry.
    #[error("the server is busy rendering: retry shortly")]
    Busy,
    /// Something that should not happen; the details go to the log, not the client.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// The stable error code in the JSON body.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::Range { .. } => "range",
            ApiError::RenderFailed { .. } => "render_error",
            ApiError::Busy => "busy",
            ApiError::Internal(_) => "internal",
        }
    }

    pub fn not_found(what: impl Into<String>) -> ApiError {
        ApiError::NotFound(what.into())
    }

    pub fn bad_request(what: impl Into<String>) -> ApiError {
        ApiError::BadRequest(what.into())
    }
}

/// The JSON body of every error.
#[derive(serde::Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: String,
}

/// A JSON error response with `status`, for errors built outside [`ApiError`] (e.g. a rewritten 416).
pub fn json_error(status: StatusCode, code: &str, message: String) -> HttpResponse {
    let body = serde_json::to_string(&ErrorBody {
        error: code,
        message,
    })
    .unwrap_or_else(|_| format!("{{\"error\":\"{code}\"}}"));
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body)
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Range { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            ApiError::RenderFailed { .. } | ApiError::Internal(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            ApiError::Busy => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Internal(detail) = self {
            tracing::error!(%detail, "internal error answering a request");
        }
        let mut response = json_error(self.status_code(), self.code(), self.to_string());
        match self {
            ApiError::Busy => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            ApiError::MethodNotAllowed { .. } => {
                response
                    .headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            }
            ApiError::Range { len } => {
                if let Ok(value) = HeaderValue::from_str(&format!("bytes */{len}")) {
                    response.headers_mut().insert(header::CONTENT_RANGE, value);
                }
            }
            _ => {}
        }
        response
    }
}
