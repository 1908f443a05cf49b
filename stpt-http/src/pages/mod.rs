//! Server-rendered pages: machines, a machine's runs, a run (live while ongoing), a machine's
//! live last run, and the details of a test, scenario or master scenario.

mod account;
mod admin;
mod docs;
mod insight;
mod templates;
mod views;
mod wall;

use axum::Router;
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use serde::Serialize;
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, LazyLock};
use stpt_core::accounts::Accounts;
use stpt_core::history::{FlakyPolicy, RunDiff};
use stpt_core::{ItemRef, MachineId, PageRequest, RunId, ScenarioId, TestId, Tracker};

use crate::ApiError;
use crate::assets::{self, AssetUrls};
use crate::extract::{MountPrefix, home_url, parse_id, parse_number};
use crate::security::{Caller, CookieRules, Csrf, RefusedPage, Security};
pub(crate) use docs::DocsView;
pub use templates::TemplateError;
pub(crate) use templates::Templates;
use views::{Crumb, ItemView, MachineLinks, Pager, RunRow, RunView, iso, run_url};

/// The cookie that remembers the chosen page size.
const PAGE_SIZE_COOKIE: &str = "stpt_page_size";

/// Sent with every page: only this server's scripts, styles and sockets.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'self'";

/// What the page handlers share.
#[derive(Debug, Clone)]
pub(crate) struct PagesState {
    tracker: Tracker,
    templates: Arc<Templates>,
    security: Arc<Security>,
    docs: &'static LazyLock<DocsView>,
}

impl PagesState {
    pub(crate) fn new(
        tracker: Tracker,
        templates: Arc<Templates>,
        security: Arc<Security>,
        docs: &'static LazyLock<DocsView>,
    ) -> Self {
        PagesState {
            tracker,
            templates,
            security,
            docs,
        }
    }

    /// The page that turns away an anonymous reader when reading needs sign-in and there is
    /// no stpt sign-in page to send them to (a host identity): `401`.
    pub(crate) fn refused_page(&self) -> RefusedPage {
        let templates = Arc::clone(&self.templates);
        let tracker = self.tracker.clone();
        Arc::new(move |prefix: &str| {
            render_error(
                &templates,
                prefix,
                &tracker,
                PageError {
                    status: StatusCode::UNAUTHORIZED,
                    message: "Sign in to read: this server's pages need a signed-in user."
                        .to_owned(),
                },
            )
        })
    }
}

/// The page routes, each with and without its trailing slash: the run pages, the docs page,
/// the admins' delete actions, and, with stpt's accounts signing people in, the sign-in,
/// password-reset and admin pages.
pub(crate) fn routes(sign_in: bool) -> Router<PagesState> {
    let mut router = Router::new().route("/", get(machines_page));
    let pages: [(&str, MethodRouter<PagesState>); 13] = [
        ("/wall", get(wall::wall_page)),
        ("/test/{id}/history", get(insight::test_history_redirect)),
        ("/tests/history/{key}", get(insight::history_page)),
        ("/search", get(insight::search_page)),
        ("/flaky", get(insight::flaky_page)),
        ("/matrix", get(insight::matrix_page)),
        ("/docs", get(docs_page)),
        ("/machine/{id}", get(machine_page)),
        ("/machine/{id}/last", get(last_run_page)),
        ("/machine/run_data/{id}", get(run_page)),
        ("/test/{id}", get(test_page)),
        ("/scenario/{id}", get(scenario_page)),
        ("/master_scenario/{id}", get(master_scenario_page)),
    ];
    for (path, handler) in pages {
        router = router
            .route(path, handler.clone())
            .route(&format!("{path}/"), handler);
    }
    router = router.merge(admin::actions());
    if sign_in {
        router = router.merge(account::routes()).merge(admin::routes());
    }
    router
}

/// A page that could not be shown.
#[derive(Debug)]
pub(crate) struct PageError {
    status: StatusCode,
    message: String,
}

impl PageError {
    fn not_found(message: impl Into<String>) -> Self {
        PageError {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }
}

impl From<ApiError> for PageError {
    fn from(error: ApiError) -> Self {
        PageError {
            status: error.status(),
            message: error.message().to_owned(),
        }
    }
}

impl From<stpt_core::Error> for PageError {
    fn from(error: stpt_core::Error) -> Self {
        ApiError::from(error).into()
    }
}

/// The layout's variables, shared by every template.
#[derive(Debug, Serialize)]
struct Layout<'a> {
    prefix: &'a str,
    /// The home page (the machines): `/`, or the prefix when nested.
    home: String,
    assets: AssetUrls,
    title: String,
    page_kind: &'static str,
    breadcrumbs: Vec<Crumb>,
    live: Option<Live>,
    now_iso: String,
    /// The sign-in / sign-out corner; `None` on error pages.
    account: Option<AccountNav>,
}

/// Who is signed in, for the layout's corner, and the CSRF token its sign-out form (and the
/// page's own forms) carry.
#[derive(Debug, Serialize)]
struct AccountNav {
    user: Option<UserNav>,
    csrf: Option<String>,
    /// Whether stpt's own sign-in, sign-out and admin pages exist (stpt's accounts sign
    /// people in); with a host identity they do not.
    sign_in: bool,
}

#[derive(Debug, Serialize)]
struct UserNav {
    username: String,
    admin: bool,
}

#[derive(Debug, Serialize)]
struct Live {
    ws: String,
}

#[derive(Debug, Serialize)]
struct Context<'a, T: Serialize> {
    #[serde(flatten)]
    layout: Layout<'a>,
    #[serde(flatten)]
    page: T,
}

/// Renders `view` in the layout.
fn render_view<T: Serialize>(
    templates: &Templates,
    prefix: &str,
    now_iso: String,
    account: AccountNav,
    view: View<T>,
) -> Result<String, PageError> {
    let context = Context {
        layout: Layout {
            prefix,
            home: home_url(prefix),
            assets: assets::urls(prefix),
            title: view.title,
            page_kind: view.kind,
            breadcrumbs: view.breadcrumbs,
            live: view.live.map(|ws| Live { ws }),
            now_iso,
            account: Some(account),
        },
        page: view.data,
    };
    templates.render(view.template, &context).map_err(|error| {
        tracing::error!(%error, template = view.template, "page failed to render");
        PageError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: "This page failed to render; the server log has details.".to_owned(),
        }
    })
}

/// A page request: the state, the prefix links start with, who asks, and the CSRF token.
#[derive(Debug)]
struct Cx {
    state: PagesState,
    prefix: String,
    caller: Caller,
    csrf: Csrf,
    headers: HeaderMap,
    client: Option<std::net::IpAddr>,
}

impl FromRequestParts<PagesState> for Cx {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &PagesState,
    ) -> Result<Self, Self::Rejection> {
        let MountPrefix(prefix) = MountPrefix::from_request_parts(parts, state).await?;
        let caller = Caller::from_request_parts(parts, state).await?;
        Ok(Cx {
            state: state.clone(),
            prefix,
            caller,
            csrf: Csrf::of(&parts.headers),
            headers: parts.headers.clone(),
            client: crate::security::client_address(parts),
        })
    }
}

/// A page to render: which template, its title and trail, and its own variables.
struct View<T> {
    template: &'static str,
    kind: &'static str,
    title: String,
    breadcrumbs: Vec<Crumb>,
    live: Option<String>,
    data: T,
}

impl Cx {
    fn tracker(&self) -> &Tracker {
        &self.state.tracker
    }

    /// stpt's accounts, which the sign-in and admin pages need (their routes exist only
    /// with them).
    fn accounts(&self) -> Result<&Accounts, PageError> {
        self.state
            .security
            .sign_in
            .as_ref()
            .ok_or_else(|| PageError::not_found("There is no page at this address."))
    }

    fn crumb_home(&self) -> Crumb {
        Crumb::link("Machines", home_url(&self.prefix))
    }

    fn render<T: Serialize>(&self, view: View<T>) -> Result<Response, PageError> {
        self.render_page(view, false)
    }

    /// Renders a page with forms of its own: the CSRF token is set even for anonymous users.
    fn render_form<T: Serialize>(&self, view: View<T>) -> Result<Response, PageError> {
        self.render_page(view, true)
    }

    fn cookie_rules(&self) -> CookieRules<'_> {
        self.state
            .security
            .cookie_rules(&self.prefix, &self.headers)
    }

    fn render_page<T: Serialize>(&self, view: View<T>, forms: bool) -> Result<Response, PageError> {
        let (account, with_csrf) = self.account_nav(forms);
        let html = render_view(
            &self.state.templates,
            &self.prefix,
            iso(Some(self.tracker().now())),
            account,
            view,
        )?;
        Ok(self.page_response(html, with_csrf))
    }

    /// [`Cx::render`] on a blocking thread, for pages whose size grows with a run: a
    /// 10,000-test page must not hold an async worker (and every request queued behind it).
    async fn render_large<T: Serialize + Send + 'static>(
        &self,
        view: View<T>,
    ) -> Result<Response, PageError> {
        let (account, with_csrf) = self.account_nav(false);
        let templates = Arc::clone(&self.state.templates);
        let prefix = self.prefix.clone();
        let now = iso(Some(self.tracker().now()));
        let html = tokio::task::spawn_blocking(move || {
            render_view(&templates, &prefix, now, account, view)
        })
        .await
        .map_err(|error| {
            tracing::error!(%error, "page rendering task failed");
            PageError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                message: "This page failed to render; the server log has details.".to_owned(),
            }
        })??;
        Ok(self.page_response(html, with_csrf))
    }

    /// The sign-in corner for this caller, and whether the page carries a CSRF token.
    fn account_nav(&self, forms: bool) -> (AccountNav, bool) {
        let user = self.caller.viewer().map(|viewer| UserNav {
            username: viewer.name.clone(),
            admin: viewer.is_admin,
        });
        let with_csrf = forms || user.is_some();
        let account = AccountNav {
            user,
            csrf: with_csrf.then(|| self.csrf.token().to_owned()),
            sign_in: self.state.security.sign_in.is_some(),
        };
        (account, with_csrf)
    }

    fn page_response(&self, html: String, with_csrf: bool) -> Response {
        let mut response = page_response(StatusCode::OK, html);
        if with_csrf {
            self.csrf.set_cookie(self.cookie_rules(), &mut response);
        }
        response
    }

    /// The error page, or plain text should the error template itself fail.
    fn error_page(&self, error: PageError) -> Response {
        render_error(&self.state.templates, &self.prefix, self.tracker(), error)
    }

    fn finish(&self, result: Result<Response, PageError>) -> Response {
        result.unwrap_or_else(|error| self.error_page(error))
    }
}

fn page_response(status: StatusCode, html: String) -> Response {
    let mut response = (status, Html(html)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Reset links carry their secret in the path: never leak it to another site.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

#[derive(Debug, Serialize)]
struct ErrorData {
    error: ErrorView,
}

#[derive(Debug, Serialize)]
struct ErrorView {
    status: u16,
    title: &'static str,
    message: String,
}

fn render_error(
    templates: &Templates,
    prefix: &str,
    tracker: &Tracker,
    error: PageError,
) -> Response {
    let title = match error.status {
        StatusCode::BAD_REQUEST => "Bad request",
        StatusCode::NOT_FOUND => "Not found",
        status if status.is_server_error() => "Server error",
        status => status.canonical_reason().unwrap_or("Error"),
    };
    let context = Context {
        layout: Layout {
            prefix,
            home: home_url(prefix),
            assets: assets::urls(prefix),
            title: title.to_owned(),
            page_kind: "error",
            breadcrumbs: vec![
                Crumb::link("Machines", home_url(prefix)),
                Crumb::here(title),
            ],
            live: None,
            now_iso: iso(Some(tracker.now())),
            account: None,
        },
        page: ErrorData {
            error: ErrorView {
                status: error.status.as_u16(),
                title,
                message: error.message.clone(),
            },
        },
    };
    let mut response = match templates.render("stpt/error.html", &context) {
        Ok(html) => page_response(error.status, html),
        Err(render_error) => {
            tracing::error!(error = %render_error, "error page failed to render");
            (
                error.status,
                format!("{} {title}: {}", error.status.as_u16(), error.message),
            )
                .into_response()
        }
    };
    if error.status == StatusCode::SERVICE_UNAVAILABLE {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from_static(crate::error::RETRY_AFTER),
        );
    }
    response
}

/// The answer for a path no route matched: an HTML page, or JSON under the API paths.
pub(crate) fn not_found_response(
    templates: &Templates,
    tracker: &Tracker,
    prefix: &str,
    uri: &Uri,
) -> Response {
    let path = uri.path();
    if ["/tm_api", "/api/", "/ws/"]
        .iter()
        .any(|api| path.starts_with(api))
    {
        return ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
            .into_response();
    }
    render_error(
        templates,
        prefix,
        tracker,
        PageError::not_found("There is no page at this address."),
    )
}

/// The page asked for and whether to remember its size.
struct PageChoice {
    request: PageRequest,
    remember: Option<u32>,
}

/// `?page=&page_size=`; without `page_size`, the size remembered in the cookie.
fn page_choice(uri: &Uri, headers: &HeaderMap) -> Result<PageChoice, PageError> {
    let query: HashMap<String, String> = Query::try_from_uri(uri)
        .map(|Query(query)| query)
        .map_err(|rejection| {
            PageError::from(ApiError::invalid(
                "query",
                format!("unreadable query string: {rejection}"),
            ))
        })?;
    let number = parse_number(&query, "page", 1)?;
    let asked = query
        .get("page_size")
        .is_some_and(|size| !size.trim().is_empty());
    let size = if asked {
        parse_number(&query, "page_size", PageRequest::DEFAULT_SIZE)?
    } else {
        remembered_page_size(headers).unwrap_or(PageRequest::DEFAULT_SIZE)
    };
    let request = PageRequest::new(number, size).map_err(PageError::from)?;
    Ok(PageChoice {
        request,
        remember: asked.then_some(size),
    })
}

fn remembered_page_size(headers: &HeaderMap) -> Option<u32> {
    crate::security::cookies::cookie(headers, PAGE_SIZE_COOKIE)
        .and_then(|value| value.parse::<u32>().ok())
        .filter(|size| (1..=PageRequest::MAX_SIZE).contains(size))
}

fn remember_page_size(mut response: Response, choice: &PageChoice, prefix: &str) -> Response {
    if let Some(size) = choice.remember {
        let path = if prefix.is_empty() { "/" } else { prefix };
        let cookie =
            format!("{PAGE_SIZE_COOKIE}={size}; Path={path}; Max-Age=31536000; SameSite=Lax");
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

#[derive(Debug, Serialize)]
struct MachinesData {
    machines: Vec<MachineLinks>,
    pager: Pager,
    /// The liveness shown alone (`?liveness=`), if any.
    showing: Option<&'static str>,
    /// `?sort=liveness`: offline first, then quiet, then online.
    by_liveness: bool,
}

/// The machines' links, each with its latest run's failures (one indexed read a machine).
async fn with_failures(
    cx: &Cx,
    machines: Vec<stpt_core::MachineSummary>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<MachineLinks>, PageError> {
    let mut links = Vec::with_capacity(machines.len());
    for machine in machines {
        let failed = match machine.latest_run {
            Some(_) => cx
                .tracker()
                .store()
                .runs(machine.id, stpt_core::PageRequest::new(1, 1)?)
                .await?
                .items
                .first()
                .map(|run| run.statistics.counts.failures()),
            None => None,
        };
        let mut link = MachineLinks::new(machine, &cx.prefix, now);
        link.failed = failed.filter(|failed| *failed > 0);
        links.push(link);
    }
    Ok(links)
}

async fn machines_page(cx: Cx, uri: Uri, headers: HeaderMap) -> Response {
    let result: Result<Response, PageError> = async {
        let choice = page_choice(&uri, &headers)?;
        let filter = crate::extract::liveness_filter(&uri)?;
        let query: HashMap<String, String> = Query::try_from_uri(&uri)
            .map(|Query(query)| query)
            .unwrap_or_default();
        let by_liveness = crate::extract::parse_sort(query.get("sort").map(String::as_str))?;
        let page = match filter {
            Some(liveness) => {
                cx.tracker()
                    .machines_by_liveness(liveness, choice.request)
                    .await?
            }
            None if by_liveness => {
                cx.tracker()
                    .machines_least_alive_first(choice.request)
                    .await?
            }
            None => cx.tracker().machines(choice.request).await?,
        };
        let now = cx.tracker().now();
        let showing = filter.map(stpt_core::Liveness::as_str);
        let mut kept = showing.map_or_else(String::new, |l| format!("&liveness={l}"));
        if by_liveness {
            kept.push_str("&sort=liveness");
        }
        let pager = Pager::keeping(&page, &kept);
        let ws = format!(
            "{}/ws/v1/machine/status/?page={}&page_size={}&liveness=1",
            cx.prefix,
            choice.request.number(),
            choice.request.size()
        );
        let response = cx.render(View {
            template: "stpt/machines.html",
            kind: "machines",
            title: "Machines".to_owned(),
            breadcrumbs: vec![Crumb::here("Machines")],
            live: Some(ws),
            data: MachinesData {
                machines: with_failures(&cx, page.items, now).await?,
                pager,
                showing,
                by_liveness,
            },
        })?;
        Ok(remember_page_size(response, &choice, &cx.prefix))
    }
    .await;
    cx.finish(result)
}

#[derive(Debug, Serialize)]
struct MachineData {
    machine: MachineLinks,
    /// The zone its naive runner timestamps are read in, when it is not UTC.
    timezone: Option<&'static str>,
    runs: Vec<RunRow>,
    pager: Pager,
}

async fn machine_page(cx: Cx, Path(id): Path<String>, uri: Uri, headers: HeaderMap) -> Response {
    let result: Result<Response, PageError> = async {
        let id = MachineId(parse_id("machine", &id)?);
        let choice = page_choice(&uri, &headers)?;
        let machine = cx.tracker().machine(id).await?;
        let page = cx.tracker().runs(id, choice.request).await?;
        let timezone = Some(
            machine
                .runner_timezone
                .unwrap_or(cx.tracker().runner_timezone()),
        )
        .filter(|zone| *zone != stpt_core::RunnerTimezone::UTC)
        .map(stpt_core::RunnerTimezone::name);
        let machine = MachineLinks::new(machine, &cx.prefix, cx.tracker().now());
        let ws = format!(
            "{}/ws/v1/machine/{id}/runs/?page={}&page_size={}&liveness=1",
            cx.prefix,
            choice.request.number(),
            choice.request.size()
        );
        let response = cx.render(View {
            template: "stpt/machine.html",
            kind: "machine",
            title: machine.name.clone(),
            breadcrumbs: vec![cx.crumb_home(), Crumb::here(machine.name.clone())],
            live: Some(ws),
            data: MachineData {
                pager: Pager::new(&page),
                runs: page
                    .items
                    .iter()
                    .map(|run| RunRow::new(run, &cx.prefix))
                    .collect(),
                machine,
                timezone,
            },
        })?;
        Ok(remember_page_size(response, &choice, &cx.prefix))
    }
    .await;
    cx.finish(result)
}

#[derive(Debug, Serialize)]
struct RunData {
    machine: MachineLinks,
    run: Option<RunView>,
}

/// What history says about `run` for its page: the comparison with the previous run, each
/// test's previous status and the flaky tests. A store without history reads gives none.
async fn run_insight(
    cx: &Cx,
    run: &stpt_core::RunDetail,
    query: &HashMap<String, String>,
) -> Result<views::RunInsight, PageError> {
    let flag = |name: &str| insight::flag(query, name);
    let mut found = views::RunInsight {
        hide_passed: flag("hide_passed"),
        failures_first: flag("failures_first"),
        only: query
            .get("status")
            .map(|status| status.trim())
            .filter(|status| !status.is_empty())
            .map(|status| {
                status
                    .parse::<stpt_core::Status>()
                    .map_err(|_| ApiError::invalid("status", format!("no status `{status}`")))
            })
            .transpose()?,
        text: stpt_core::history::TextFilter::new(
            query.get("q").map(String::as_str).unwrap_or_default(),
        )
        .map_err(ApiError::from)?,
        ..views::RunInsight::default()
    };
    let store = cx.tracker().store();
    match store.previous_run(run.summary.id).await {
        Ok(Some(previous)) => {
            let previous = store.run(previous).await?;
            let (diff, previous_statuses) = RunDiff::with_previous_statuses(&previous, run);
            found.previous = previous_statuses;
            found.diff = Some(diff);
        }
        Ok(None) => found.diff = Some(RunDiff::first(run.summary.id)),
        Err(stpt_core::Error::NotSupported { .. }) => {}
        Err(error) => return Err(error.into()),
    }
    match store
        .run_flakiness(run.summary.id, FlakyPolicy::default().min_flips)
        .await
    {
        Ok(flaky) => {
            found.flaky = flaky
                .into_iter()
                .map(|test| (test.test_id, test.window))
                .collect();
        }
        Err(stpt_core::Error::NotSupported { .. }) => {}
        Err(error) => return Err(error.into()),
    }
    Ok(found)
}

async fn last_run_page(
    cx: Cx,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let result: Result<Response, PageError> = async {
        let id = MachineId(parse_id("machine", &id)?);
        let machine = cx.tracker().machine(id).await?;
        let last_seen = machine.last_seen;
        let run = cx.tracker().latest_run(id).await?;
        let insight = match &run {
            Some(run) => Some(run_insight(&cx, run, &query).await?),
            None => None,
        };
        let now = cx.tracker().now();
        let machine = MachineLinks::new(machine, &cx.prefix, now);
        cx.render_large(View {
            template: "stpt/run.html",
            kind: "last",
            title: format!("{} · last run", machine.name),
            breadcrumbs: vec![
                cx.crumb_home(),
                Crumb::link(machine.name.clone(), machine.url.clone()),
                Crumb::here("Last run"),
            ],
            live: Some(format!("{}/ws/v1/machine/{id}/last/?parts=1", cx.prefix)),
            data: RunData {
                run: run.map(|run| {
                    let view = RunView::new(run, &cx.prefix, now).heard_at(last_seen);
                    match insight {
                        Some(insight) => view.with_insight(insight, &cx.prefix),
                        None => view,
                    }
                }),
                machine,
            },
        })
        .await
    }
    .await;
    cx.finish(result)
}

async fn run_page(
    cx: Cx,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let result: Result<Response, PageError> = async {
        let id = RunId(parse_id("run", &id)?);
        let run = cx.tracker().run(id).await?;
        let last_seen = match run.summary.went_silent_at {
            // Only a run closed as silent asks when its machine was heard since.
            Some(_) => {
                cx.tracker()
                    .machine(run.summary.machine_id)
                    .await?
                    .last_seen
            }
            None => None,
        };
        let mut machine = MachineLinks::of_run(&run, &cx.prefix);
        machine.backlog = cx
            .tracker()
            .backlog(run.summary.machine_id)
            .map(|backlog| views::describe_backlog(backlog, cx.tracker().now()));
        let insight = run_insight(&cx, &run, &query).await?;
        let live = run
            .summary
            .status
            .is_ongoing()
            .then(|| format!("{}/ws/v1/run/{id}/?parts=1", cx.prefix));
        cx.render_large(View {
            template: "stpt/run.html",
            kind: "run",
            title: format!("{} · run #{id}", machine.name),
            breadcrumbs: vec![
                cx.crumb_home(),
                Crumb::link(machine.name.clone(), machine.url.clone()),
                Crumb::here(format!("Run #{id}")),
            ],
            live,
            data: RunData {
                run: Some(
                    RunView::new(run, &cx.prefix, cx.tracker().now())
                        .heard_at(last_seen)
                        .with_insight(insight, &cx.prefix),
                ),
                machine,
            },
        })
        .await
    }
    .await;
    cx.finish(result)
}

#[derive(Debug, Serialize)]
struct ItemData {
    item: ItemView,
}

async fn item_page(cx: &Cx, item: Result<ItemRef, ApiError>) -> Response {
    let result: Result<Response, PageError> = async {
        let item = cx.tracker().item(item?).await?;
        let machine = cx.tracker().machine(item.machine_id).await?;
        let machine_url = views::machine_url(&cx.prefix, machine.id.get());
        let run_id = item.run_id;
        let label = item.file.file_name.clone();
        cx.render(View {
            template: "stpt/item.html",
            kind: "item",
            title: label.clone(),
            breadcrumbs: vec![
                cx.crumb_home(),
                Crumb::link(machine.name, machine_url),
                Crumb::link(format!("Run #{run_id}"), run_url(&cx.prefix, run_id.get())),
                Crumb::here(label),
            ],
            live: None,
            data: ItemData {
                item: ItemView::new(item, &cx.prefix),
            },
        })
    }
    .await;
    cx.finish(result)
}

async fn test_page(cx: Cx, Path(id): Path<String>) -> Response {
    item_page(
        &cx,
        parse_id("test", &id).map(|id| ItemRef::Test(TestId(id))),
    )
    .await
}

async fn scenario_page(cx: Cx, Path(id): Path<String>) -> Response {
    item_page(
        &cx,
        parse_id("scenario", &id).map(|id| ItemRef::Scenario(ScenarioId(id))),
    )
    .await
}

async fn master_scenario_page(cx: Cx, Path(id): Path<String>) -> Response {
    item_page(
        &cx,
        parse_id("master scenario", &id).map(|id| ItemRef::MasterScenario(RunId(id))),
    )
    .await
}

/// The OpenAPI description of the docs page.
#[derive(utoipa::OpenApi)]
#[openapi(paths(docs_page))]
pub(crate) struct DocsApi;

/// The API documentation page
///
/// This document as a page for people: every endpoint by tag with its parameters, request
/// body, responses and examples, then every schema. Served by stpt itself, no script needed.
/// Also served without the trailing slash.
#[utoipa::path(
    get,
    path = "/docs/",
    tag = "documentation",
    responses(
        (status = 200, description = "The documentation page.", content_type = "text/html", body = String),
    )
)]
async fn docs_page(cx: Cx) -> Response {
    let view: &'static DocsView = LazyLock::force(cx.state.docs);
    let result = cx.render(View {
        template: "stpt/docs.html",
        kind: "docs",
        title: "API documentation".to_owned(),
        breadcrumbs: vec![cx.crumb_home(), Crumb::here("API documentation")],
        live: None,
        data: DocsData { docs: view },
    });
    cx.finish(result)
}

#[derive(Debug, Serialize)]
struct DocsData {
    docs: &'static DocsView,
}
