//! API errors: a status code, a stable code, a message; `{"error": {"code", "message"}}`.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::Error;

/// The body of every error response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorDetail {
    /// A stable code: `bad_request`, `unauthorized`, `forbidden`, `bad_signature`, `bad_csrf`,
    /// `not_found`, `method_not_allowed`, `already_answered`, `already_voted`, `run_finished`,
    /// `request_expired`, `request_cancelled`, `link_expired`, `payload_too_large`,
    /// `invalid_answer`, `internal`, `unavailable`.
    pub code: String,
    /// A sentence saying what is wrong and what to do.
    pub message: String,
}

/// An error answered by the API (and, rendered as a page, by the HTML routes).
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub(crate) fn unauthorized(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub(crate) fn invalid_answer(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_answer", message)
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        let (status, code) = match &error {
            Error::RequestNotFound { .. } | Error::RunNotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
            Error::AlreadyAnswered { .. } => (StatusCode::CONFLICT, "already_answered"),
            Error::AlreadyVoted { .. } => (StatusCode::CONFLICT, "already_voted"),
            Error::RunFinished { .. } => (StatusCode::CONFLICT, "run_finished"),
            Error::RunNotBlocked { .. } => (StatusCode::CONFLICT, "run_not_blocked"),
            Error::RequestExpired { .. } => (StatusCode::GONE, "request_expired"),
            Error::RequestCancelled { .. } => (StatusCode::GONE, "request_cancelled"),
            Error::ResponderNotAllowed { .. } => (StatusCode::FORBIDDEN, "forbidden"),
            Error::InvalidAnswer { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_answer"),
            Error::Closed => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            _ => {
                tracing::error!(%error, "the server could not complete a request");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        };
        ApiError::new(status, code, error.to_string())
    }
}

impl From<axum::extract::rejection::BytesRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::BytesRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the request body is larger than the server accepts",
            )
        } else {
            ApiError::bad_request(format!(
                "the request body could not be read: {}",
                rejection.body_text()
            ))
        }
    }
}

impl From<axum::extract::rejection::PathRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::PathRejection) -> Self {
        ApiError::bad_request(format!("bad path: {}", rejection.body_text()))
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::QueryRejection) -> Self {
        ApiError::bad_request(format!("bad query: {}", rejection.body_text()))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}
