//! Errors as HTTP responses: a status code and a stable JSON body.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use stpt_core::{Error, NoMatch};
use utoipa::ToSchema;

/// Why a request failed, ready to become a response.
///
/// Body: `{"error": {"code": "...", "message": "...", ...}}`. `code` is stable and meant for
/// programs; `message` is for people. Server-side failures are logged in full and shown to
/// clients only as `internal_error`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    // Boxed: errors travel in every handler's `Result`, keep the happy path small.
    body: Box<ErrorBody>,
}

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"error": {"code": "invalid_input", "message": "`machine_name` must not be blank", "field": "machine_name"}}))]
pub(crate) struct ErrorEnvelope {
    /// What went wrong.
    error: Box<ErrorBody>,
}

/// What went wrong: a stable code for programs and a message for people.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ErrorBody {
    /// Stable, for programs: `malformed_json`, `invalid_input`, `unreadable_body`,
    /// `unsupported_media_type`, `body_too_large`, `unauthorized`, `forbidden`, `not_found`,
    /// `no_match`, `conflict`,
    /// `not_supported` or `internal_error`.
    #[schema(value_type = String, example = "invalid_input")]
    code: &'static str,
    /// For people; wording may change.
    message: String,
    /// With `invalid_input`: where in the input, e.g. `master_scenario.scenarios[2].file_name`,
    /// `status`, `page` or `Idempotency-Key`.
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
    /// With `no_match`: why the event matched nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    no_match: Option<NoMatch>,
}

impl ApiError {
    /// A client error with a code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: Box::new(ErrorBody {
                code,
                message: message.into(),
                field: None,
                no_match: None,
            }),
        }
    }

    /// `400 invalid_input` about `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        let mut error = Self::new(StatusCode::BAD_REQUEST, "invalid_input", message);
        error.body.field = Some(field.into());
        error
    }

    /// The response status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The message for people.
    pub fn message(&self) -> &str {
        &self.body.message
    }

    /// The error object of the body (without the `{"error": ...}` envelope).
    pub(crate) fn body_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        match error {
            Error::InvalidInput { field, problem } => {
                let message = format!("`{field}` {problem}");
                Self::invalid(field, message)
            }
            Error::NotFound { kind, id } => Self::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("{kind} {id} not found"),
            ),
            Error::NoMatch(reason) => {
                // 409: the request was well-formed but matched nothing in the machine's
                // current state; seed runners ignore the answer, newer clients can act on it.
                let mut error = Self::new(
                    StatusCode::CONFLICT,
                    "no_match",
                    format!("event matched nothing: {reason}"),
                );
                error.body.no_match = Some(reason);
                error
            }
            Error::Conflict { message } | Error::Stale { message } => Self::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("concurrent update, retry: {message}"),
            ),
            Error::NotSupported { operation } => Self::new(
                StatusCode::NOT_IMPLEMENTED,
                "not_supported",
                format!("not supported by this server's store: {operation}"),
            ),
            other => {
                tracing::error!(error = %other, source = ?std::error::Error::source(&other), "request failed");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "internal error; the server log has details",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status;
        let mut response = (status, Json(ErrorEnvelope { error: self.body })).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"stpt\""),
            );
        }
        response
    }
}
