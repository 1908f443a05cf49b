//! Errors as HTTP responses: a status code and a stable JSON body.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use stpt_core::{Error, NoMatch};
use utoipa::ToSchema;

/// Seconds a client should wait before retrying a `503 busy`.
pub(crate) const RETRY_AFTER: &str = "1";

/// Why a request failed, ready to become a response.
///
/// Body: `{"error": {"code": "...", "message": "...", ...}}`. `code` is stable and meant for
/// programs; `message` is for people. Server-side failures are logged in full and shown to
/// clients only as `internal_error`; `503 busy` also sends `Retry-After: 1`.
#[derive(Debug)]
pub(crate) struct ApiError {
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
    /// Only on the seed's runner paths (`/tm_api/dry_run/`, `test_start/`, `test_stop/`):
    /// `error.message` again, where a Django REST framework client looks for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

/// What went wrong: a stable code for programs and a message for people.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ErrorBody {
    /// Stable, for programs: `malformed_json`, `malformed_xml`, `malformed_form`,
    /// `invalid_input`, `unreadable_body`, `unsupported_media_type`, `body_too_large`,
    /// `unauthorized`, `forbidden`, `not_found`, `no_match`, `conflict` (not retryable as it
    /// is), `idempotency_key_reused` (never retry with that key), `busy` (`503`: retry after
    /// `Retry-After` seconds), `method_not_allowed`, `request_timeout`, `not_supported` or
    /// `internal_error`.
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
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
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
    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        let mut error = Self::new(StatusCode::BAD_REQUEST, "invalid_input", message);
        error.body.field = Some(field.into());
        error
    }

    /// `500 internal_error`, the only thing clients learn of a server-side failure.
    pub(crate) fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "internal error; the server log has details",
        )
    }

    /// The response status.
    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }

    /// The message for people.
    pub(crate) fn message(&self) -> &str {
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
            Error::Busy { message } | Error::Stale { message } => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                format!(
                    "a concurrent update got in the way and nothing was changed; retry: {message}"
                ),
            ),
            Error::Unavailable { message } => {
                // Not a bug: the database is down or full. Said once per request, without
                // the stack of a failure, and the runner retries after `Retry-After`.
                tracing::warn!(%message, "request refused: the store is unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "busy",
                    "the database is unavailable; retry with the same Idempotency-Key",
                )
            }
            Error::Conflict { message } => Self::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("conflicts with what is stored: {message}"),
            ),
            Error::IdempotencyKeyReused { event_id } => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                format!(
                    "event id `{event_id}` was already used for a different event on this machine; \
                     nothing was changed. Do not retry with this id: give each event its own id"
                ),
            ),
            Error::NotSupported { operation } => Self::new(
                StatusCode::NOT_IMPLEMENTED,
                "not_supported",
                format!("not supported by this server's store: {operation}"),
            ),
            Error::Invariant { message } => {
                tracing::error!(%message, "request failed: stored state broke a rule");
                Self::internal()
            }
            other => {
                tracing::error!(error = %other, source = ?std::error::Error::source(&other), "request failed");
                Self::internal()
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status;
        let mut response = (
            status,
            Json(ErrorEnvelope {
                error: self.body,
                detail: None,
            }),
        )
            .into_response();
        // Also wherever the JSON routers' middleware is not (a host's fallback).
        response.headers_mut().insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"stpt\""),
            );
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER));
        }
        response
    }
}

/// The most of a non-JSON error body quoted in its JSON replacement, in bytes.
const MAX_QUOTED_BODY: usize = 1024;

/// Middleware of the JSON routers: every error answer is the JSON envelope (a framework's
/// plain-text rejection, an empty `405`, …, are rewritten; JSON answers, the seed's shapes
/// included, pass unchanged), and every JSON answer carries `X-Content-Type-Options:
/// nosniff` and `Cache-Control: no-store`.
pub(crate) async fn json_answers(response: Response) -> Response {
    let status = response.status();
    let mut response =
        if (status.is_client_error() || status.is_server_error()) && !is_json(response.headers()) {
            as_envelope(response).await
        } else {
            response
        };
    if is_json(response.headers()) {
        let headers = response.headers_mut();
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

fn is_json(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|essence| {
            let essence = essence.trim().to_ascii_lowercase();
            essence == "application/json" || essence.ends_with("+json")
        })
}

async fn as_envelope(response: Response) -> Response {
    let (parts, body) = response.into_parts();
    let status = parts.status;
    let code = match status {
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::REQUEST_TIMEOUT => "request_timeout",
        StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::SERVICE_UNAVAILABLE => "busy",
        status if status.is_server_error() => "internal_error",
        _ => "invalid_input",
    };
    let text = axum::body::to_bytes(body, MAX_QUOTED_BODY)
        .await
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_owned())
        .unwrap_or_default();
    let message = match (status, text.is_empty()) {
        (StatusCode::METHOD_NOT_ALLOWED, _) => "this path does not take this method".to_owned(),
        (status, _) if status.is_server_error() => {
            "internal error; the server log has details".to_owned()
        }
        (_, false) => text,
        (status, true) => status
            .canonical_reason()
            .unwrap_or("request refused")
            .to_owned(),
    };
    let mut answer = ApiError::new(status, code, message).into_response();
    // Keep what the original said about the request (`Allow` on a 405, `Retry-After`…).
    for name in [header::ALLOW, header::RETRY_AFTER] {
        if let Some(value) = parts.headers.get(&name) {
            answer.headers_mut().insert(name, value.clone());
        }
    }
    answer
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn answer(error: Error) -> (StatusCode, Option<String>, serde_json::Value) {
        let api = ApiError::from(error);
        let body = api.body_json();
        let response = api.into_response();
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .map(|value| value.to_str().unwrap().to_owned());
        (response.status(), retry_after, body)
    }

    #[test]
    fn a_busy_store_is_503_with_retry_after() {
        for error in [
            Error::Busy {
                message: "database is locked".to_owned(),
            },
            Error::Stale {
                message: "machine version moved".to_owned(),
            },
        ] {
            let (status, retry_after, body) = answer(error);
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(retry_after.as_deref(), Some("1"));
            assert_eq!(body["code"], "busy");
            assert!(body["message"].as_str().unwrap().contains("retry"));
        }
    }

    #[test]
    fn an_unavailable_store_is_503_with_retry_after_and_no_detail() {
        let (status, retry_after, body) = answer(Error::Unavailable {
            message: "pool timed out while waiting for an open connection".to_owned(),
        });
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry_after.as_deref(), Some("1"));
        assert_eq!(body["code"], "busy");
        assert!(
            !body["message"].as_str().unwrap().contains("pool"),
            "{body}"
        );
    }

    #[test]
    fn a_conflict_with_stored_state_is_409_and_not_retryable() {
        let (status, retry_after, body) = answer(Error::Conflict {
            message: "username `ada` is taken".to_owned(),
        });
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(retry_after, None);
        assert_eq!(body["code"], "conflict");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains("`ada` is taken"), "{message}");
        assert!(!message.to_lowercase().contains("retry"), "{message}");
    }

    #[test]
    fn a_reused_key_is_422() {
        let (status, _, body) = answer(Error::IdempotencyKeyReused {
            event_id: "k-1".to_owned(),
        });
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["code"], "idempotency_key_reused");
        assert!(body["message"].as_str().unwrap().contains("`k-1`"));
    }

    #[test]
    fn a_broken_invariant_is_500_and_shows_nothing() {
        let (status, retry_after, body) = answer(Error::invariant("run 3 has two running tests"));
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(retry_after, None);
        assert_eq!(body["code"], "internal_error");
        assert!(!body["message"].as_str().unwrap().contains("run 3"));
    }
}
