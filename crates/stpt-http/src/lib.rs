#![doc = include_str!("../README.md")]

mod assets;
mod error;
mod extract;
pub mod humanize;
mod openapi;
mod pages;
mod seed;
pub mod v1;
mod ws;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{StatusCode, Uri};
use std::collections::BTreeMap;
use std::sync::Arc;
use stpt_core::Tracker;

pub use error::ApiError;
pub use extract::{MountPrefix, Pagination, RunnerJson};
pub use openapi::openapi;
pub use pages::TemplateError;

/// Settings of the routers. Build with [`HttpConfig::default`] and the `with_*` methods.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    body_limit: usize,
    templates: BTreeMap<String, String>,
}

impl HttpConfig {
    /// The default largest request body: 8 MiB.
    pub const DEFAULT_BODY_LIMIT: usize = 8 * 1024 * 1024;

    /// The largest request body accepted, in bytes; larger bodies get `413`.
    pub fn with_body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// The largest request body accepted, in bytes.
    pub fn body_limit(&self) -> usize {
        self.body_limit
    }

    /// Replaces the built-in page template `name` (see [`HttpConfig::TEMPLATE_NAMES`]) with
    /// `source`, or adds a template the others may include or extend. Templates are tera
    /// templates with autoescaping on; runner text must never be marked `safe`.
    ///
    /// A set of templates that does not compile is logged and replaced by the built-in
    /// ones when the router is built; call [`HttpConfig::check_templates`] at start-up to
    /// fail early instead.
    pub fn with_template(mut self, name: impl Into<String>, source: impl Into<String>) -> Self {
        self.templates.insert(name.into(), source.into());
        self
    }

    /// The names of the built-in templates, which [`HttpConfig::with_template`] overrides.
    pub const TEMPLATE_NAMES: [&'static str; 9] = [
        "stpt/base.html",
        "stpt/pagination.html",
        "stpt/machines.html",
        "stpt/machine.html",
        "stpt/run.html",
        "stpt/item.html",
        "stpt/error.html",
        "stpt/macros.html",
        "stpt/docs.html",
    ];

    /// Whether the templates, overrides included, compile.
    pub fn check_templates(&self) -> Result<(), TemplateError> {
        pages::Templates::build(&self.templates).map(|_| ())
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            body_limit: Self::DEFAULT_BODY_LIMIT,
            templates: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct AppState {
    tracker: Tracker,
}

/// Every stpt route, with its state applied: mount it anywhere with `Router::merge` or
/// `Router::nest`. Adds no global layers (tracing, CORS, timeouts are the host's choice).
///
/// Besides the JSON API of [`api_router`]: the pages (`/`, `/machine/{id}`,
/// `/machine/{id}/last`, `/machine/run_data/{id}`, `/test/{id}`, `/scenario/{id}`,
/// `/master_scenario/{id}`), the API documentation page (`/docs/`, rendered from the OpenAPI
/// document), their assets under `/static/`, and the WebSockets
/// (`/ws/machine/status/`, `/ws/machine/{id}/runs/`, `/ws/machine/{id}/last/`, `/ws/run/{id}/`).
/// Unknown paths answer an HTML 404 page, or JSON under the API paths.
pub fn router<S>(tracker: Tracker, config: HttpConfig) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let templates = Arc::new(pages::Templates::build_or_builtin(&config.templates));
    let fallback_templates = Arc::clone(&templates);
    let fallback_tracker = tracker.clone();
    api_routes(&config)
        .with_state(AppState {
            tracker: tracker.clone(),
        })
        .merge(pages::routes().with_state(pages::PagesState::new(tracker.clone(), templates)))
        .merge(ws::routes().with_state(tracker))
        .merge(assets::routes())
        .fallback(move |MountPrefix(prefix): MountPrefix, uri: Uri| {
            let templates = Arc::clone(&fallback_templates);
            let tracker = fallback_tracker.clone();
            async move { pages::not_found_response(&templates, &tracker, &prefix, &uri) }
        })
}

/// The JSON API alone: the seed's `/tm_api/` paths, the versioned `/api/v1/`, and the OpenAPI
/// document describing them at `/openapi.json` (see [`openapi`]).
pub fn api_router<S>(tracker: Tracker, config: HttpConfig) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    api_routes(&config)
        .fallback(not_found)
        .with_state(AppState { tracker })
}

fn api_routes(config: &HttpConfig) -> Router<AppState> {
    seed::routes()
        .merge(v1::routes())
        .layer(DefaultBodyLimit::max(config.body_limit))
        .merge(openapi::routes())
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}
