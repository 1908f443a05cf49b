#![doc = include_str!("../README.md")]

mod assets;
mod error;
mod extract;
mod humanize;
mod insight;
mod junit;
mod openapi;
mod pages;
mod schemas;
mod security;
mod seed;
mod v1;
mod ws;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Request};
use axum::handler::Handler;
use axum::response::Response;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use stpt_core::Tracker;
use stpt_core::accounts::Accounts;

use error::ApiError;
use extract::MountPrefix;
use security::Gate;

pub use openapi::openapi;
pub use pages::TemplateError;
pub use security::{IdentityProvider, IngestAccess, LogMailer, Mail, Mailer, ReadAccess, Viewer};

/// Settings of the routers. Build with [`HttpConfig::default`] and the `with_*` methods;
/// give every router of one app the same settings.
///
/// # Who is who
///
/// | configured | people are identified by | sign-in, password reset, `/admin/` | runner tokens checked against |
/// | --- | --- | --- | --- |
/// | [`with_accounts`](Self::with_accounts) | stpt's session cookie | served | those accounts |
/// | [`with_identity`](Self::with_identity) | the host's provider | not served | — (tokens are refused) |
/// | both | the host's provider | not served | the accounts |
/// | neither | — (everyone is anonymous) | not served | — (tokens are refused) |
///
/// Admins, whoever identifies them, may delete runs and machines from their pages. Runners
/// without a token are accepted only from the networks [`with_ingest_access`](Self::with_ingest_access)
/// opens (none by default), whatever the row.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    accounts: Option<Accounts>,
    identity: Option<Arc<dyn IdentityProvider>>,
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

    /// Uses stpt's own accounts (users, sessions, runner tokens; see
    /// [`Accounts`]): people sign in at `/login/`, change their password at
    /// `/account/password/` and reset a forgotten one at `/password_reset/`, admins manage
    /// users (their role, email and password) and runner tokens at `/admin/`, and runners'
    /// bearer tokens are checked against them. With [`HttpConfig::with_identity`] as well,
    /// the host identifies people instead and the accounts only check runner tokens.
    pub fn with_accounts(mut self, accounts: Accounts) -> Self {
        self.accounts = Some(accounts);
        self
    }

    /// Lets the host say who people are and whether they are admins (see
    /// [`IdentityProvider`]), for a host with its own sign-in. stpt then serves no sign-in,
    /// password-reset or admin page, and its *Delete* buttons follow the host's admins.
    /// Runners are not people: their tokens are checked only against
    /// [`HttpConfig::with_accounts`], if given; without it, runners post only from the
    /// networks [`HttpConfig::with_ingest_access`] opens, and a token that is sent is
    /// refused (`401`).
    pub fn with_identity(mut self, identity: Arc<dyn IdentityProvider>) -> Self {
        self.identity = Some(identity);
        self
    }

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
    pub const TEMPLATE_NAMES: [&'static str; 21] = [
        "stpt/wall.html",
        "stpt/wall_grid.html",
        "stpt/base.html",
        "stpt/history.html",
        "stpt/search.html",
        "stpt/flaky.html",
        "stpt/matrix.html",
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
        "stpt/password_change.html",
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
            accounts: None,
            identity: None,
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

/// Every stpt route: [`api_router`], [`pages_router`] and [`sockets_router`] together, with
/// their state applied and one set of access rules. Mount it anywhere with `Router::merge`
/// or `Router::nest`; links in its pages keep the prefix it is nested under.
///
/// It adds no global layer (tracing, CORS, timeouts are the host's) and no fallback, so it
/// merges into a host app that has its own; [`not_found`] is stpt's, for hosts that want
/// it. Its `/openapi.json` lists the JSON API and the `/docs/` page.
///
/// Who people are and who may post is set in [`HttpConfig`] (see its table). For
/// [`IngestAccess::open_from`], serve with
/// `into_make_service_with_connect_info::<SocketAddr>()` so the client's address is known.
pub fn router<S>(tracker: Tracker, config: &HttpConfig) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let security = Arc::new(security::Security::new(config));
    api(&tracker, config, &security, openapi::Scope::Full)
        .merge(pages(&tracker, config, &security))
        .merge(sockets(tracker, &security))
}

/// The JSON API: the seed's `/tm_api/` paths, the versioned `/api/v1/`, and the OpenAPI
/// document describing them at `/openapi.json` (see [`openapi`]), with its state applied
/// and no fallback. With [`ReadAccess::SignedIn`], reads need whatever signs people in:
/// the host's identity, or the session cookie of stpt's sign-in pages (in
/// [`pages_router`]).
pub fn api_router<S>(tracker: Tracker, config: &HttpConfig) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let security = Arc::new(security::Security::new(config));
    api(&tracker, config, &security, openapi::Scope::Api)
}

/// The pages, with their state applied and no fallback: machines (`/`), a machine's runs
/// (`/machine/{id}`), its live last run (`/machine/{id}/last`), a run
/// (`/machine/run_data/{id}`), an item's script (`/test/{id}`, `/scenario/{id}`,
/// `/master_scenario/{id}`), the API documentation (`/docs/`, describing
/// [`api_router`]'s routes), the admins' *Delete* actions (`/admin/machines/{id}/delete`,
/// `/admin/runs/{id}/delete`), and their assets under `/static/`. With stpt's accounts
/// signing people in ([`HttpConfig::with_accounts`] without a host identity), also sign-in,
/// password change and reset (`/login/`, `/logout/`, `/account/password/`,
/// `/password_reset/`, `/reset/{link}/`) and the admin page (`/admin/`).
///
/// Live pages connect to [`sockets_router`]'s paths under the same prefix.
pub fn pages_router<S>(tracker: Tracker, config: &HttpConfig) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let security = Arc::new(security::Security::new(config));
    pages(&tracker, config, &security)
}

/// The WebSockets, with their state applied and no fallback: the ones the live pages follow,
/// in stpt's compact protocol (`/ws/v1/machine/status/`, `/ws/v1/machine/{id}/runs/`,
/// `/ws/v1/machine/{id}/last/`, `/ws/v1/run/{id}/`), and the seed's paths speaking the seed's
/// messages (`/ws/machine/status/`, `/ws/machine/{id}/runs/`, `/ws/machine/{id}/last/`).
/// With [`ReadAccess::SignedIn`], anonymous upgrades get `401`.
pub fn sockets_router<S>(tracker: Tracker, config: &HttpConfig) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let security = Arc::new(security::Security::new(config));
    sockets(tracker, &security)
}

fn api<S>(
    tracker: &Tracker,
    config: &HttpConfig,
    security: &Arc<security::Security>,
    scope: openapi::Scope,
) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    if security.runner_tokens.is_none() && !security.ingest.allows_tokenless() {
        tracing::warn!(
            "no runner can post: there are no accounts to check runner tokens and no network is open to tokenless runners"
        );
    }
    seed::routes()
        .merge(v1::routes())
        .merge(junit::routes())
        .merge(insight::routes())
        .route_layer(DefaultBodyLimit::max(config.body_limit))
        .route_layer(axum::middleware::from_fn_with_state(
            config.body_limit,
            extract::refuse_oversized,
        ))
        .merge(openapi::routes(scope))
        .with_state(AppState {
            tracker: tracker.clone(),
            security: Arc::clone(security),
        })
        .route_layer(axum::middleware::from_fn_with_state(
            Gate::json(Arc::clone(security)),
            security::identify,
        ))
        .route_layer(axum::middleware::map_response(error::json_answers))
        // Outermost, so that every error of the seed's runner paths gets its `detail`.
        .route_layer(axum::middleware::from_fn(seed::runner_errors_with_detail))
        .layer(compression())
}

/// gzip or brotli, as the client accepts: a big run's page or JSON shrinks about twentyfold.
fn compression() -> tower_http::compression::CompressionLayer {
    tower_http::compression::CompressionLayer::new()
}

fn pages<S>(tracker: &Tracker, config: &HttpConfig, security: &Arc<security::Security>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let templates = Arc::new(pages::Templates::build_or_builtin(&config.templates));
    let state = pages::PagesState::new(
        tracker.clone(),
        templates,
        Arc::clone(security),
        &openapi::DOCS_VIEW,
    );
    let gate = Gate::pages(Arc::clone(security), state.refused_page());
    pages::routes(security.sign_in.is_some())
        .with_state(state)
        .route_layer(axum::middleware::from_fn_with_state(
            gate,
            security::identify,
        ))
        .route_layer(DefaultBodyLimit::max(PAGE_FORM_LIMIT))
        .route_layer(axum::middleware::from_fn_with_state(
            PAGE_FORM_LIMIT,
            extract::refuse_oversized,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            security::OriginGate::pages(Arc::clone(security)),
            security::same_origin,
        ))
        // Assets are public and the same for everyone: no need to ask who is asking.
        .merge(assets::routes())
        .layer(compression())
}

fn sockets<S>(tracker: Tracker, security: &Arc<security::Security>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    ws::routes()
        .with_state(tracker)
        .route_layer(axum::middleware::from_fn_with_state(
            Gate::json(Arc::clone(security)),
            security::identify,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            security::OriginGate::sockets(Arc::clone(security)),
            security::same_origin,
        ))
        .route_layer(axum::middleware::map_response(error::json_answers))
}

/// The largest form a page accepts, in bytes: sign-in, reset and admin forms are small.
const PAGE_FORM_LIMIT: usize = 64 * 1024;

/// stpt's answer for a path no route matches, for hosts that want it: the HTML 404 page
/// (in the configured templates), or a JSON `404 not_found` under the API paths (`/tm_api`,
/// `/api/`, `/ws/`). The routers set no fallback; install this one with
/// `Router::fallback`:
///
/// ```
/// # use std::sync::Arc;
/// # let tracker = stpt_core::Tracker::new(
/// #     Arc::new(stpt_store_memory::MemoryStore::new()),
/// #     Arc::new(stpt_core::InProcessBus::new()),
/// # );
/// let config = stpt_http::HttpConfig::default();
/// let app: axum::Router = stpt_http::router(tracker.clone(), &config)
///     .fallback(stpt_http::not_found(tracker, &config));
/// # let _ = app;
/// ```
///
/// Paths are read relative to where the fallback is installed: nested with stpt's routers,
/// its links keep the prefix.
pub fn not_found(tracker: Tracker, config: &HttpConfig) -> NotFound {
    NotFound {
        templates: Arc::new(pages::Templates::build_or_builtin(&config.templates)),
        tracker,
    }
}

/// The handler [`not_found`] returns: use it with `Router::fallback`.
#[derive(Debug, Clone)]
pub struct NotFound {
    templates: Arc<pages::Templates>,
    tracker: Tracker,
}

impl<S> Handler<(), S> for NotFound {
    type Future = Pin<Box<dyn Future<Output = Response> + Send>>;

    fn call(self, request: Request, _state: S) -> Self::Future {
        Box::pin(async move {
            let (mut parts, _body) = request.into_parts();
            let Ok(MountPrefix(prefix)) = MountPrefix::from_request_parts(&mut parts, &()).await;
            pages::not_found_response(&self.templates, &self.tracker, &prefix, &parts.uri)
        })
    }
}
