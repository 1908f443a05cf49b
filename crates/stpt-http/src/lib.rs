#![doc = include_str!("../README.md")]

mod assets;
mod error;
mod extract;
pub mod humanize;
mod openapi;
mod pages;
mod security;
mod seed;
pub mod v1;
mod ws;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{StatusCode, Uri};
use std::collections::BTreeMap;
use std::sync::Arc;
use stpt_core::Tracker;
use stpt_core::accounts::Accounts;

pub use error::ApiError;
pub use extract::{MountPrefix, Pagination, RunnerJson};
pub use openapi::openapi;
pub use pages::TemplateError;
pub use security::{IngestAccess, LogMailer, Mail, Mailer, ReadAccess};

/// Settings of the routers. Build with [`HttpConfig::default`] and the `with_*` methods.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    body_limit: usize,
    templates: BTreeMap<String, String>,
    read_access: ReadAccess,
    ingest_access: IngestAccess,
    secure_cookies: bool,
    mailer: Arc<dyn Mailer>,
    public_url: Option<String>,
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

    /// Who may read pages, the read API and sockets (default: [`ReadAccess::Open`]).
    pub fn with_read_access(mut self, access: ReadAccess) -> Self {
        self.read_access = access;
        self
    }

    /// Who may post runner events (default: [`IngestAccess::tokens_only`]).
    pub fn with_ingest_access(mut self, access: IngestAccess) -> Self {
        self.ingest_access = access;
        self
    }

    /// Who may post runner events.
    pub fn ingest_access(&self) -> &IngestAccess {
        &self.ingest_access
    }

    /// Marks session and CSRF cookies `Secure` (sent over HTTPS only). Also done per request
    /// when a proxy sends `X-Forwarded-Proto: https`.
    pub fn with_secure_cookies(mut self, secure: bool) -> Self {
        self.secure_cookies = secure;
        self
    }

    /// Sends password-reset emails through `mailer` (default: [`LogMailer`], which logs
    /// them).
    pub fn with_mailer(mut self, mailer: Arc<dyn Mailer>) -> Self {
        self.mailer = mailer;
        self
    }

    /// The address users reach this server at, e.g. `https://stpt.lab.example` (with the
    /// mount prefix, if any), used for links in emails. Without it, links are built from the
    /// request's `Host` header, which a client controls: set this whenever emails leave the
    /// server.
    pub fn with_public_url(mut self, url: impl Into<String>) -> Self {
        self.public_url = Some(url.into().trim_end_matches('/').to_owned());
        self
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
    pub const TEMPLATE_NAMES: [&'static str; 14] = [
        "stpt/base.html",
        "stpt/pagination.html",
        "stpt/machines.html",
        "stpt/machine.html",
        "stpt/run.html",
        "stpt/item.html",
        "stpt/error.html",
        "stpt/macros.html",
        "stpt/docs.html",
        "stpt/login.html",
        "stpt/logout.html",
        "stpt/password_reset.html",
        "stpt/admin.html",
        "stpt/token_created.html",
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
            read_access: ReadAccess::default(),
            ingest_access: IngestAccess::default(),
            secure_cookies: false,
            mailer: Arc::new(LogMailer),
            public_url: None,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct AppState {
    tracker: Tracker,
    security: Arc<security::Security>,
}

/// Every stpt route, with its state applied: mount it anywhere with `Router::merge` or
/// `Router::nest`. Adds no global layers (tracing, CORS, timeouts are the host's choice).
///
/// Besides the JSON API of [`api_router`]: the pages (`/`, `/machine/{id}`,
/// `/machine/{id}/last`, `/machine/run_data/{id}`, `/test/{id}`, `/scenario/{id}`,
/// `/master_scenario/{id}`), the API documentation page (`/docs/`, rendered from the OpenAPI
/// document), sign-in and password reset (`/login/`, `/logout/`, `/password_reset/`,
/// `/reset/{link}/`), the admin page (`/admin/`), their assets under `/static/`, and the
/// WebSockets (`/ws/machine/status/`, `/ws/machine/{id}/runs/`, `/ws/machine/{id}/last/`,
/// `/ws/run/{id}/`). Unknown paths answer an HTML 404 page, or JSON under the API paths.
///
/// `accounts` signs users in and checks runner tokens; [`HttpConfig`] says who may read and
/// who may post. Runner events need a token unless [`HttpConfig::with_ingest_access`] says
/// otherwise. For [`IngestAccess::open_from`], serve with
/// `into_make_service_with_connect_info::<SocketAddr>()` so the client's address is known.
pub fn router<S>(tracker: Tracker, accounts: Accounts, config: HttpConfig) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let security = Arc::new(security::Security::new(accounts, &config));
    let templates = Arc::new(pages::Templates::build_or_builtin(&config.templates));
    let fallback_templates = Arc::clone(&templates);
    let fallback_tracker = tracker.clone();
    api_routes(&config)
        .with_state(AppState {
            tracker: tracker.clone(),
            security: Arc::clone(&security),
        })
        .merge(pages::routes().with_state(pages::PagesState::new(
            tracker.clone(),
            templates,
            Arc::clone(&security),
        )))
        .merge(ws::routes().with_state(tracker))
        .merge(assets::routes())
        .fallback(move |MountPrefix(prefix): MountPrefix, uri: Uri| {
            let templates = Arc::clone(&fallback_templates);
            let tracker = fallback_tracker.clone();
            async move { pages::not_found_response(&templates, &tracker, &prefix, &uri) }
        })
        .layer(axum::middleware::from_fn_with_state(
            security,
            security::identify,
        ))
}

/// The JSON API alone: the seed's `/tm_api/` paths, the versioned `/api/v1/`, and the OpenAPI
/// document describing them at `/openapi.json` (see [`openapi`]). Access as in [`router`];
/// with [`ReadAccess::SignedIn`], reads need the session cookie of a user signed in through
/// [`router`]'s pages.
pub fn api_router<S>(tracker: Tracker, accounts: Accounts, config: HttpConfig) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let security = Arc::new(security::Security::new(accounts, &config));
    api_routes(&config)
        .fallback(not_found)
        .with_state(AppState {
            tracker,
            security: Arc::clone(&security),
        })
        .layer(axum::middleware::from_fn_with_state(
            security,
            security::identify,
        ))
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
