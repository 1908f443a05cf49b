//! The OpenAPI 3.1 documents, assembled from the handlers' `#[utoipa::path]` attributes and
//! the types' `ToSchema` derives, and served at `/openapi.json`.
//!
//! Two documents, so each router lists only what it serves: the JSON API's
//! ([`api_router`](crate::api_router)), and the whole one, which adds the `/docs/` page
//! ([`router`](crate::router)). Responses every runner post can give (401, 403, 413, 415,
//! 503) are added here, in one place, rather than on each handler.
//!
//! Dependencies run one way: this module reads the handler modules' descriptions; handler
//! modules use the shared schemas of `crate::schemas` and never this module.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::sync::LazyLock;
use utoipa::OpenApi;
use utoipa::openapi::OpenApi as Document;
use utoipa::openapi::server::Server;

use crate::extract::MountPrefix;
use crate::pages::DocsView;
use crate::schemas::examples;

/// The root of the document: its info, tags, and the routes of this module.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "stpt",
        description = "System Test Progress Tracking: runners on test rigs post their plans and \
            test events as JSON; stpt stores the runs and shows them live.\n\n\
            The seed's protocol lives under `/tm_api/` unchanged, so existing runners keep \
            working; `/api/v1/` adds ids in the plan's answer, events addressed by id, \
            idempotent retries (`Idempotency-Key`, `event_id`) and batches.\n\n\
            Request bodies are JSON (`Content-Type: application/json`), at most 8 MiB by \
            default. Every error answers `{\"error\": {\"code\", \"message\", ...}}` with a \
            stable `code`. Runner timestamps may be naive (`2018-12-30 13:01:57.461401`, taken \
            as UTC) or RFC 3339; timestamps stpt writes are RFC 3339 in UTC, except where the \
            seed's display format `dd-mm-YYYY  HH:MM:SS` is noted.",
        license(name = "MIT OR Apache-2.0"),
    ),
    paths(openapi_json),
    tags(
        (name = "seed runner protocol", description = "What the seed's runners post: a plan, then a start and a stop per test. Paths work with and without the trailing slash."),
        (name = "seed read API", description = "The seed's read endpoints, paths and shapes unchanged. Paths work with and without the trailing slash."),
        (name = "v1 runner API", description = "The versioned write API: plans answer every id, events address tests by id, retries are safe, batches apply many events in order."),
        (name = "v1 read API", description = "The versioned read API: the stored model as it is, RFC 3339 timestamps, ids everywhere."),
        (name = "documentation", description = "This document, and where it is served, its human-readable page."),
    )
)]
struct RootApi;

/// Which document a router serves.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scope {
    /// The JSON API: `/tm_api/`, `/api/v1/`, `/openapi.json`.
    Api,
    /// The JSON API and the docs page `/docs/`.
    Full,
}

/// The JSON API's document.
static API: LazyLock<Document> = LazyLock::new(|| {
    let mut document = RootApi::openapi();
    document.merge(crate::seed::SeedApi::openapi());
    document.merge(crate::v1::V1Api::openapi());
    document.merge(crate::junit::JunitApi::openapi());
    document.merge(crate::insight::InsightApi::openapi());
    // The version is the crate's; utoipa would take it from the crate that derives.
    document.info.version = env!("CARGO_PKG_VERSION").to_owned();
    describe_runner_posts(&mut document);
    document
});

/// The whole document: the JSON API's and the docs page.
static FULL: LazyLock<Document> = LazyLock::new(|| {
    let mut document = API.clone();
    document.merge(crate::pages::DocsApi::openapi());
    document
});

/// The documents serialised once.
static API_JSON: LazyLock<String> = LazyLock::new(|| to_json(&API));
static FULL_JSON: LazyLock<String> = LazyLock::new(|| to_json(&FULL));

/// What the docs page shows: the whole document, built on first use.
pub(crate) static DOCS_VIEW: LazyLock<DocsView> = LazyLock::new(|| DocsView::new(&FULL));

fn to_json(document: &Document) -> String {
    serde_json::to_string(document).unwrap_or_else(|_| "{}".to_owned())
}

/// Every POST is a runner event with a JSON body (the seed's also take forms). It takes a runner token (unless the
/// operator opened ingestion to the runner's network), and can answer 401 and 403 (access),
/// 413 and 415 (the body), and 503 (a concurrent writer got in the way).
fn describe_runner_posts(document: &mut Document) {
    use utoipa::openapi::security::{
        HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
    };
    use utoipa::openapi::{ContentBuilder, HeaderBuilder, Ref, ResponseBuilder, Type};
    const SCHEME: &str = "runner_token";
    document
        .components
        .get_or_insert_with(Default::default)
        .add_security_scheme(
            SCHEME,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A runner token, created by an admin (admin page or `stpt-server token create`). \
                         Not needed from networks the operator opened with `--open-ingest`.",
                    ))
                    .build(),
            ),
        );
    let error = |description: &str, example: Option<serde_json::Value>| {
        ResponseBuilder::new().description(description).content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorEnvelope")))
                .example(example)
                .build(),
        )
    };
    let responses = [
        (
            "401",
            error("No runner token, or an unknown or revoked one, from a network not opened to tokenless runners (`unauthorized`). Nothing is changed.", None).build(),
        ),
        (
            "403",
            error("The runner token is bound to other machines (`forbidden`). Nothing is changed.", None).build(),
        ),
        (
            "413",
            error("The body is larger than the server accepts (`body_too_large`; 8 MiB by default). Nothing is changed.", Some(examples::too_large())).build(),
        ),
        (
            "415",
            error("The body is not sent as `application/json` (`unsupported_media_type`). Nothing is changed.", Some(examples::media_type())).build(),
        ),
        (
            "503",
            error("A concurrent writer got in the way (`busy`); nothing is changed by the event it met. Retrying may succeed: wait the `Retry-After` seconds, then send it again (with the same `Idempotency-Key` or `event_id`, if it had one).", Some(examples::busy()))
                .header(
                    "Retry-After",
                    HeaderBuilder::new()
                        .schema(utoipa::openapi::ObjectBuilder::new().schema_type(Type::Integer))
                        .description(Some("Seconds to wait before retrying."))
                        .build(),
                )
                .build(),
        ),
    ];
    // The JUnit import is the one POST whose body is XML.
    let not_xml = error(
        "The body is not sent as `application/xml` or `text/xml` (`unsupported_media_type`). Nothing is changed.",
        None,
    )
    .build();
    // The seed's runner paths also take forms, as the seed did.
    let seed_media = error(
        "The body is sent as neither `application/json`, `application/x-www-form-urlencoded` nor `multipart/form-data` (`unsupported_media_type`). Nothing is changed.",
        Some(examples::seed_media_type()),
    )
    .build();
    let seed_forbidden = error(
        "The runner token is bound to other machines, or a browser posted a form from another site (`forbidden`). Nothing is changed.",
        None,
    )
    .build();
    for (path, item) in document.paths.paths.iter_mut() {
        if let Some(operation) = item.post.as_mut() {
            operation.security = Some(vec![
                SecurityRequirement::new(SCHEME, Vec::<String>::new()),
                SecurityRequirement::default(),
            ]);
            let seed = path.starts_with("/tm_api/");
            for (code, response) in &responses {
                let response = match *code {
                    "415" if path == crate::junit::PATH => &not_xml,
                    "415" if seed => &seed_media,
                    "403" if seed => &seed_forbidden,
                    _ => response,
                };
                operation
                    .responses
                    .responses
                    .insert((*code).to_owned(), response.clone().into());
            }
        }
    }
}

/// The OpenAPI document of the JSON API, as [`api_router`](crate::api_router) serves it at
/// `/openapi.json`: the seed's `/tm_api/`, the versioned `/api/v1/` and `/openapi.json`
/// itself. For hosts that merge it into their own; [`router`](crate::router)'s document
/// also lists its `/docs/` page.
pub fn openapi() -> Document {
    API.clone()
}

/// `GET /openapi.json`, serving the document of `scope`.
pub(crate) fn routes<S>(scope: Scope) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new().route(
        "/openapi.json",
        get(move |prefix: MountPrefix| openapi_json(prefix, scope)),
    )
}

/// The OpenAPI document
///
/// This document, OpenAPI 3.1 as JSON. Mounted under a prefix, its `servers` names the prefix.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "documentation",
    responses(
        (status = 200, description = "The OpenAPI document.", content_type = "application/json", body = Object),
    )
)]
async fn openapi_json(MountPrefix(prefix): MountPrefix, scope: Scope) -> Response {
    let (document, json) = match scope {
        Scope::Api => (&*API, &*API_JSON),
        Scope::Full => (&*FULL, &*FULL_JSON),
    };
    let body = if prefix.is_empty() {
        json.clone()
    } else {
        let mut document = document.clone();
        document.servers = Some(vec![Server::new(prefix)]);
        to_json(&document)
    };
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn operations(document: &Document) -> usize {
        document
            .paths
            .paths
            .values()
            .map(|item| {
                [&item.get, &item.post, &item.put, &item.delete, &item.patch]
                    .iter()
                    .filter(|op| op.is_some())
                    .count()
            })
            .sum()
    }

    #[test]
    fn the_docs_page_shows_every_operation_of_the_whole_document() {
        assert_eq!(DOCS_VIEW.operations_shown(), operations(&FULL));
        assert!(DOCS_VIEW.schemas_shown() > 0);
    }

    #[test]
    fn only_the_whole_document_lists_the_docs_page() {
        assert!(!API.paths.paths.contains_key("/docs/"));
        assert!(FULL.paths.paths.contains_key("/docs/"));
        assert_eq!(operations(&FULL), operations(&API) + 1);
    }
}
