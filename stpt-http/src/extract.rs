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
        if MediaType::of(&request) != MediaType::Json {
            return Err(unsupported(
                &request,
                "expected `Content-Type: application/json`",
            ));
        }
        let bytes = read_body(request, state).await?;
        parse_json(&bytes).map(RunnerJson)
    }
}

/// A runner's body on the seed's paths: JSON as [`RunnerJson`], or the form-encoded and
/// multipart bodies the seed also took, read into the same payload (see
/// [`crate::seed::form`]) within the same body limit. A form or multipart body that a
/// browser says comes from another site is refused (`403`): unlike JSON, another site's
/// page can make a browser send one, and runners never say where they come from.
#[derive(Debug)]
pub(crate) struct SeedRunnerBody<T>(pub(crate) T);

impl<T> FromRequest<crate::AppState> for SeedRunnerBody<T>
where
    T: DeserializeOwned + crate::seed::form::SeedForm,
{
    type Rejection = ApiError;

    async fn from_request(
        request: Request,
        state: &crate::AppState,
    ) -> Result<Self, Self::Rejection> {
        let fields = match MediaType::of(&request) {
            MediaType::Json => {
                let bytes = read_body(request, state).await?;
                return parse_json(&bytes).map(SeedRunnerBody);
            }
            MediaType::Other => {
                return Err(unsupported(
                    &request,
                    "expected `Content-Type: application/json`, \
                     `application/x-www-form-urlencoded` or `multipart/form-data`",
                ));
            }
            _ if crate::security::is_cross_site(
                request.headers(),
                state.security.public_url.as_deref(),
            ) =>
            {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "refused: a form posted from another site",
                ));
            }
            MediaType::Form => form_fields(&read_body(request, state).await?)?,
            MediaType::Multipart => multipart_fields(request, state).await?,
        };
        let value = crate::seed::form::nest::<T>(fields)?;
        parse_value(value).map(SeedRunnerBody)
    }
}

/// What a request's `Content-Type` says its body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MediaType {
    /// `application/json` or any `+json` type.
    Json,
    /// `application/x-www-form-urlencoded`.
    Form,
    /// `multipart/form-data`.
    Multipart,
    Other,
}

impl MediaType {
    fn of(request: &Request) -> MediaType {
        let essence = content_type(request)
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "application/json" => MediaType::Json,
            "application/x-www-form-urlencoded" => MediaType::Form,
            "multipart/form-data" => MediaType::Multipart,
            json if json.ends_with("+json") => MediaType::Json,
            _ => MediaType::Other,
        }
    }
}

fn content_type(request: &Request) -> &str {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
}

/// `415`: what was `expected`, and what came instead.
fn unsupported(request: &Request, expected: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        format!("{expected}, got `{}`", content_type(request)),
    )
}

/// The whole body, within the body limit (`413` past it).
async fn read_body<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(request, state)
        .await
        .map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                too_large()
            } else {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "unreadable_body",
                    format!("the request body could not be read: {rejection}"),
                )
            }
        })
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        "the request body is larger than this server accepts",
    )
}

/// `400 malformed_form`: a form or multipart body that cannot be read.
pub(crate) fn malformed_form(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "malformed_form", message)
}

/// The fields of an `application/x-www-form-urlencoded` body, in order.
fn form_fields(bytes: &[u8]) -> Result<Vec<(String, String)>, ApiError> {
    if bytes
        .iter()
        .find(|byte| !byte.is_ascii_whitespace())
        .is_some_and(|first| matches!(first, b'{' | b'['))
    {
        return Err(malformed_form(
            "the body is JSON sent as `application/x-www-form-urlencoded` (what `curl --data` \
             says unless told otherwise): send it with `Content-Type: application/json`",
        ));
    }
    // Decoding the whole body at once finds the same bad bytes as decoding each name and
    // value would: `&` and `=` are ASCII, never part of a character.
    if percent_encoding::percent_decode(bytes)
        .decode_utf8()
        .is_err()
    {
        return Err(malformed_form(
            "the form is not UTF-8 text once its `%XX` escapes are decoded",
        ));
    }
    serde_urlencoded::from_bytes(bytes)
        .map_err(|error| malformed_form(format!("the form could not be read: {error}")))
}

/// The parts of a `multipart/form-data` body, in order: each part's name and its text (a
/// file part's content, so `curl -F script=@test.py` sends the file as the script).
async fn multipart_fields<S: Send + Sync>(
    request: Request,
    state: &S,
) -> Result<Vec<(String, String)>, ApiError> {
    let unreadable = |error: axum::extract::multipart::MultipartError| {
        if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            malformed_form(format!(
                "the multipart body could not be read: {}",
                error.body_text()
            ))
        }
    };
    let mut multipart = axum::extract::Multipart::from_request(request, state)
        .await
        .map_err(|rejection| {
            malformed_form(format!(
                "the multipart body could not be read: {}",
                rejection.body_text()
            ))
        })?;
    let mut fields = Vec::new();
    while let Some(field) = multipart.next_field().await.map_err(unreadable)? {
        let Some(name) = field.name().map(str::to_owned) else {
            return Err(malformed_form(
                "a part of the multipart body has no name \
                 (`Content-Disposition: form-data; name=\"...\"`)",
            ));
        };
        let bytes = field.bytes().await.map_err(unreadable)?;
        let text = String::from_utf8(bytes.into()).map_err(|_| {
            malformed_form(format!(
                "multipart part `{}` is not UTF-8 text",
                crate::seed::form::shown(&name)
            ))
        })?;
        fields.push((name, text));
    }
    Ok(fields)
}

/// Parses JSON, naming the path of the first bad field.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                format!("malformed JSON: {inner}"),
            );
        }
        field_error("malformed JSON", &path, &inner)
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

/// Reads a payload out of JSON already parsed (a form's fields, nested), naming the path of
/// the first bad field as [`parse_json`] does.
fn parse_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value)
        .map_err(|error| field_error("incomplete form", &error.path().to_string(), error.inner()))
}

/// `400 invalid_input` about the field at `path` (`.`: the whole body, which is `whole`).
fn field_error(whole: &str, path: &str, inner: &serde_json::Error) -> ApiError {
    let message = if path == "." {
        format!("{whole}: {inner}")
    } else {
        format!("`{path}`: {inner}")
    };
    ApiError::invalid(path, message)
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
