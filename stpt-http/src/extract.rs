//! Request extractors that turn every bad input into a clear [`ApiError`].

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, OriginalUri, Query, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, Uri, header};
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use stpt_core::PageRequest;

use crate::ApiError;

/// A JSON body: requires a JSON content type, reports the path of a bad field, and answers
/// `413` past the configured body limit.
#[derive(Debug)]
pub(crate) struct RunnerJson<T>(pub(crate) T);

impl<S, T> FromRequest<S> for RunnerJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("");
        let essence = content_type.split(';').next().unwrap_or("").trim();
        let is_json = essence.eq_ignore_ascii_case("application/json")
            || essence.to_ascii_lowercase().ends_with("+json");
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!("expected `Content-Type: application/json`, got `{content_type}`"),
            ));
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "body_too_large",
                        "the request body is larger than this server accepts",
                    )
                } else {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "unreadable_body",
                        format!("the request body could not be read: {rejection}"),
                    )
                }
            })?;
        parse_json(&bytes).map(RunnerJson)
    }
}

/// Parses JSON, naming the path of the first bad field.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        let message = if path == "." {
            format!("malformed JSON: {inner}")
        } else {
            format!("`{path}`: {inner}")
        };
        let mut api = ApiError::invalid(path, message);
        if inner.is_syntax() || inner.is_eof() {
            api = ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                format!("malformed JSON: {inner}"),
            );
        }
        api
    })?;
    deserializer.end().map_err(|error| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("malformed JSON: {error}"),
        )
    })?;
    Ok(value)
}

/// `?page=&page_size=` with the seed's defaults; anything else is a `400`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pagination(pub(crate) PageRequest);

impl<S: Send + Sync> FromRequestParts<S> for Pagination {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query: HashMap<String, String> = Query::try_from_uri(&parts.uri)
            .map(|Query(query)| query)
            .map_err(|rejection| {
                ApiError::invalid("query", format!("unreadable query string: {rejection}"))
            })?;
        let number = parse_number(&query, "page", 1)?;
        let size = parse_number(&query, "page_size", PageRequest::DEFAULT_SIZE)?;
        Ok(Pagination(PageRequest::new(number, size)?))
    }
}

/// `?liveness=online|quiet|offline`, if given.
pub(crate) fn liveness_filter(uri: &Uri) -> Result<Option<stpt_core::Liveness>, ApiError> {
    let query: HashMap<String, String> = Query::try_from_uri(uri)
        .map(|Query(query)| query)
        .map_err(|rejection| {
            ApiError::invalid("query", format!("unreadable query string: {rejection}"))
        })?;
    parse_liveness(query.get("liveness").map(String::as_str))
}

/// A liveness named in a query: `online`, `quiet` or `offline`; blank or absent is none.
pub(crate) fn parse_liveness(value: Option<&str>) -> Result<Option<stpt_core::Liveness>, ApiError> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some("online") => Ok(Some(stpt_core::Liveness::Online)),
        Some("quiet") => Ok(Some(stpt_core::Liveness::Quiet)),
        Some("offline") => Ok(Some(stpt_core::Liveness::Offline)),
        Some(_) => Err(ApiError::invalid(
            "liveness",
            "must be `online`, `quiet` or `offline`",
        )),
    }
}

/// `?sort=name|liveness` of the machines list: whether it is sorted least alive first.
pub(crate) fn parse_sort(value: Option<&str>) -> Result<bool, ApiError> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None | Some("name") => Ok(false),
        Some("liveness") => Ok(true),
        Some(_) => Err(ApiError::invalid("sort", "must be `name` or `liveness`")),
    }
}

pub(crate) fn parse_number(
    query: &HashMap<String, String>,
    name: &str,
    default: u32,
) -> Result<u32, ApiError> {
    match query.get(name).map(|v| v.trim()).filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(text) => text.parse::<u32>().map_err(|_| {
            ApiError::invalid(
                name,
                format!("`{name}` must be a positive whole number, got `{text}`"),
            )
        }),
    }
}

/// Parses an id from a path segment; a non-number is a `400`.
pub(crate) fn parse_id(what: &'static str, text: &str) -> Result<i64, ApiError> {
    text.trim_end_matches('/')
        .parse::<i64>()
        .map_err(|_| ApiError::invalid(what, format!("`{text}` is not a valid {what} id")))
}

/// The address of stpt's home page (the machines) under `prefix`: `/` at the root, else the
/// prefix itself, as `Router::nest` serves a nested `/` there (and not at `{prefix}/`).
pub(crate) fn home_url(prefix: &str) -> String {
    if prefix.is_empty() {
        "/".to_owned()
    } else {
        prefix.to_owned()
    }
}

/// The path prefix this router is mounted under (e.g. `/stpt` after
/// `Router::nest("/stpt", ..)`), so links survive nesting.
#[derive(Debug, Clone)]
pub(crate) struct MountPrefix(pub(crate) String);

impl<S: Send + Sync> FromRequestParts<S> for MountPrefix {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let inner = parts.uri.path().to_owned();
        let original = parts
            .extensions
            .get::<OriginalUri>()
            .map_or_else(|| inner.clone(), |uri| uri.0.path().to_owned());
        // Nested at `/stpt`, a request for `/stpt` reaches the inner router as `/`.
        let prefix = original
            .strip_suffix(inner.as_str())
            .or_else(|| original.strip_suffix(inner.trim_end_matches('/')))
            .unwrap_or("")
            .trim_end_matches('/')
            .to_owned();
        Ok(MountPrefix(prefix))
    }
}

/// Middleware: a request whose `Content-Length` is over the body limit (the state) gets
/// `413` at once, before its body is read or even sent (`Expect: 100-continue`).
pub(crate) async fn refuse_oversized(
    axum::extract::State(limit): axum::extract::State<usize>,
    request: Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the request body is larger than this server accepts ({limit} bytes)"),
        )
        .into_response();
    }
    next.run(request).await
}
