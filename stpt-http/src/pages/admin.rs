//! The admin page (users and runner tokens, with stpt's accounts), and the admins' actions
//! on machines and runs (with any identity).

use axum::Form;
use axum::Router;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use stpt_core::accounts::{Role, RunnerToken, RunnerTokenId, UserId};
use stpt_core::{
    MachineId, MachineSummary, MachineTimeouts, PageRequest, RetentionPolicy, RunId,
    RunnerTimezone, Tracker,
};

use super::account::{CsrfForm, ResetAsker, check_csrf, mail_reset_link, with_status};
use super::views::{Crumb, iso};
use super::{Cx, PageError, PagesState, View};
use crate::extract::parse_id;
use crate::security::text::loggable;
use crate::security::{Viewer, see_other};

/// The admin page with its user and runner-token forms: only with stpt's accounts.
pub(super) fn routes() -> Router<PagesState> {
    Router::new()
        .route("/admin", get(admin_page))
        .route("/admin/", get(admin_page))
        .route("/admin/users", post(create_user))
        .route("/admin/users/{id}/role", post(set_role))
        .route("/admin/users/{id}/delete", post(delete_user))
        .route("/admin/users/{id}/email", post(set_email))
        .route("/admin/users/{id}/password", post(set_password))
        .route("/admin/users/{id}/reset-link", post(send_reset_link))
        .route("/admin/tokens", post(create_token))
        .route("/admin/tokens/{id}/revoke", post(revoke_token))
}

/// The *Delete* buttons of machine and run pages: with any identity.
pub(super) fn actions() -> Router<PagesState> {
    Router::new()
        .route("/admin/machines/{id}/delete", post(delete_machine))
        .route("/admin/runs/{id}/delete", post(delete_run))
        .route("/admin/machines/{id}/timezone", post(set_machine_timezone))
        .route("/admin/machines/{id}/timeouts", post(set_machine_timeouts))
        .route(
            "/admin/machines/{id}/retention",
            post(set_machine_retention),
        )
        .route("/admin/runs/{id}/keep", post(set_run_kept))
}

/// Why a request may not do an admin's thing: not signed in (sent to stpt's sign-in page,
/// when there is one) or not an admin (403).
enum Refused {
    /// The sign-in address to send the client to.
    SignIn(String),
    Page(PageError),
}

impl Cx {
    fn require_admin(&self) -> Result<&Viewer, Refused> {
        let not_admin = || {
            Refused::Page(PageError {
                status: StatusCode::FORBIDDEN,
                message: "Only admins may do this.".to_owned(),
            })
        };
        match self.caller.viewer() {
            Some(viewer) if viewer.is_admin => Ok(viewer),
            Some(_) => Err(not_admin()),
            None if self.state.security.sign_in.is_none() => Err(not_admin()),
            None => Err(Refused::SignIn(self.sign_in_url("/admin/"))),
        }
    }

    fn refuse(&self, refused: Refused) -> Response {
        match refused {
            Refused::SignIn(to) => see_other(&to),
            Refused::Page(error) => self.error_page(error),
        }
    }
}

#[derive(Debug, Serialize)]
struct UserRow {
    id: i64,
    username: String,
    email: Option<String>,
    role: &'static str,
    created: String,
    is_you: bool,
}

#[derive(Debug, Serialize)]
struct TokenRow {
    id: i64,
    name: String,
    machines: Vec<String>,
    created: String,
    revoked: Option<String>,
}

impl From<RunnerToken> for TokenRow {
    fn from(token: RunnerToken) -> Self {
        TokenRow {
            id: token.id.get(),
            name: token.name,
            machines: token.machines,
            created: iso(Some(token.created_at)),
            revoked: token.revoked_at.map(|at| iso(Some(at))),
        }
    }
}

/// A machine with what an admin may set on it: each its own, if one was set.
#[derive(Debug, Serialize)]
struct MachineSettingsRow {
    id: i64,
    name: String,
    /// The zone its runner's naive timestamps are read in.
    timezone: Option<&'static str>,
    /// Its quiet and offline thresholds, as durations (`90s`, `10m`).
    quiet_after: Option<String>,
    offline_after: Option<String>,
    /// Whether it has a retention policy of its own, and that policy's limits.
    own_retention: bool,
    keep_days: Option<u32>,
    keep_runs: Option<u32>,
}

impl From<MachineSummary> for MachineSettingsRow {
    fn from(machine: MachineSummary) -> Self {
        let own = machine.retention.unwrap_or_default();
        MachineSettingsRow {
            id: machine.id.get(),
            timezone: machine.runner_timezone.map(RunnerTimezone::name),
            quiet_after: machine.timeouts.quiet_after_secs.map(seconds_text),
            offline_after: machine.timeouts.offline_after_secs.map(seconds_text),
            own_retention: machine.retention.is_some(),
            keep_days: own.keep_days,
            keep_runs: own.keep_runs_per_machine,
            name: machine.name,
        }
    }
}

/// The server's settings that machines without their own follow.
#[derive(Debug, Serialize)]
struct ServerDefaults {
    /// The zone for naive runner timestamps (`--runner-timezone`).
    timezone: &'static str,
    /// `--quiet-after` and `--offline-after`, as durations.
    quiet_after: String,
    offline_after: String,
    /// `--keep-days` and `--keep-runs-per-machine` in words.
    retention: String,
}

impl ServerDefaults {
    fn of(tracker: &Tracker) -> Self {
        let liveness = tracker.liveness_policy();
        let retention = tracker.retention_policy();
        let as_text = |duration: chrono::Duration| {
            humantime::format_duration(duration.to_std().unwrap_or_default()).to_string()
        };
        ServerDefaults {
            timezone: tracker.runner_timezone().name(),
            quiet_after: as_text(liveness.quiet_after),
            offline_after: as_text(liveness.offline_after),
            retention: retention_text(&retention),
        }
    }
}

/// A retention policy in words: "30 days, 100 runs", "every run".
fn retention_text(policy: &RetentionPolicy) -> String {
    let limits: Vec<String> = [
        policy.keep_days.map(|days| format!("{days} days")),
        policy
            .keep_runs_per_machine
            .map(|runs| format!("{runs} runs")),
    ]
    .into_iter()
    .flatten()
    .collect();
    if limits.is_empty() {
        "every run".to_owned()
    } else {
        limits.join(", ")
    }
}

/// Whole seconds as a duration an admin reads and types back: `90` is `1m 30s`.
fn seconds_text(seconds: u32) -> String {
    humantime::format_duration(std::time::Duration::from_secs(u64::from(seconds))).to_string()
}

#[derive(Debug, Serialize)]
struct AdminData {
    users: Vec<UserRow>,
    tokens: Vec<TokenRow>,
    machines: Vec<MachineSettingsRow>,
    /// What machines without settings of their own follow.
    server: ServerDefaults,
    notice: Option<&'static str>,
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct DoneQuery {
    done: Option<String>,
}

/// Notices after a successful form, from a fixed set (never echoing request text).
fn notice(done: Option<&str>) -> Option<&'static str> {
    match done? {
        "user-created" => Some("User created."),
        "role-changed" => Some("Role changed."),
        "user-deleted" => Some("User deleted."),
        "email-changed" => Some("Email changed."),
        "password-set" => Some("Password set; the user is signed out everywhere."),
        "reset-link-sent" => Some(
            "Password-reset link sent to the user's email address; it works once, for an hour.",
        ),
        "token-revoked" => Some("Runner token revoked; runners using it are refused from now on."),
        "timezone-changed" => {
            Some("Time zone changed; the machine's next naive timestamps are read in it.")
        }
        "timeouts-changed" => {
            Some("Liveness thresholds changed; the machine is judged by them from the next check.")
        }
        "retention-changed" => Some("Retention changed; the next pruning pass follows it."),
        _ => None,
    }
}

async fn render_admin(
    cx: &Cx,
    me: &Viewer,
    notice: Option<&'static str>,
    error: Option<String>,
    status: StatusCode,
) -> Result<Response, PageError> {
    let accounts = cx.accounts()?;
    let users = accounts
        .users()
        .await?
        .into_iter()
        .map(|user| UserRow {
            id: user.id.get(),
            // With stpt's accounts, the viewer's name is the username, and usernames are
            // unique.
            is_you: user.username == me.name,
            username: user.username,
            email: user.email,
            role: user.role.as_str(),
            created: iso(Some(user.created_at)),
        })
        .collect();
    let tokens = accounts
        .runner_tokens()
        .await?
        .into_iter()
        .map(TokenRow::from)
        .collect();
    let mut machines = Vec::new();
    let mut page = PageRequest::new(1, PageRequest::MAX_SIZE)?;
    loop {
        let listed = cx.tracker().store().machines(page).await?;
        let more = listed.has_next();
        machines.extend(listed.items.into_iter().map(MachineSettingsRow::from));
        if !more {
            break;
        }
        page = PageRequest::new(page.number() + 1, PageRequest::MAX_SIZE)?;
    }
    let view = View {
        template: "stpt/admin.html",
        kind: "admin",
        title: "Admin".to_owned(),
        breadcrumbs: vec![cx.crumb_home(), Crumb::here("Admin")],
        live: None,
        data: AdminData {
            users,
            tokens,
            machines,
            server: ServerDefaults::of(cx.tracker()),
            notice,
            error,
        },
    };
    with_status(cx.render_form(view), status)
}

async fn admin_page(cx: Cx, Query(query): Query<DoneQuery>) -> Response {
    let me = match cx.require_admin() {
        Ok(me) => me.clone(),
        Err(refused) => return cx.refuse(refused),
    };
    let result = render_admin(
        &cx,
        &me,
        notice(query.done.as_deref()),
        None,
        StatusCode::OK,
    )
    .await;
    cx.finish(result)
}

/// Runs an admin form: checks the admin and the CSRF token, then `action`; a failure the
/// admin can fix re-renders the page with the message.
async fn admin_form<F, Fut>(cx: &Cx, csrf_token: &str, action: F) -> Response
where
    F: FnOnce(Viewer) -> Fut,
    Fut: std::future::Future<Output = Result<Response, stpt_core::Error>>,
{
    let me = match cx.require_admin() {
        Ok(me) => me.clone(),
        Err(refused) => return cx.refuse(refused),
    };
    if let Err(error) = check_csrf(&cx.headers, csrf_token) {
        return cx.error_page(error);
    }
    let result = match action(me.clone()).await {
        Ok(response) => Ok(response),
        Err(error) => {
            let status = match &error {
                stpt_core::Error::InvalidInput { .. } => Some(StatusCode::BAD_REQUEST),
                stpt_core::Error::Conflict { .. } => Some(StatusCode::CONFLICT),
                stpt_core::Error::NotFound { .. } => Some(StatusCode::NOT_FOUND),
                stpt_core::Error::Busy { .. }
                | stpt_core::Error::Stale { .. }
                | stpt_core::Error::Unavailable { .. } => Some(StatusCode::SERVICE_UNAVAILABLE),
                _ => None,
            };
            match status {
                // The admin page lists users and tokens: only with stpt's accounts.
                Some(status) if cx.state.security.sign_in.is_some() => {
                    render_admin(cx, &me, None, Some(describe(&error)), status).await
                }
                _ => Err(error.into()),
            }
        }
    };
    cx.finish(result)
}

fn describe(error: &stpt_core::Error) -> String {
    match error {
        stpt_core::Error::InvalidInput { field, problem } => format!("The {field} {problem}."),
        stpt_core::Error::Conflict { message } => format!("Not done: {message}."),
        stpt_core::Error::Busy { .. } | stpt_core::Error::Stale { .. } => {
            "Not done: another change got in the way. Nothing was changed; try again.".to_owned()
        }
        stpt_core::Error::Unavailable { .. } => {
            "Not done: the database is unavailable; try again later.".to_owned()
        }
        other => format!("Not done: {other}."),
    }
}

#[derive(Debug, Deserialize)]
struct CreateUserForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    csrf_token: String,
}

fn parse_role(role: &str) -> Result<Role, stpt_core::Error> {
    Role::parse(role).ok_or_else(|| stpt_core::Error::invalid("role", "must be admin or viewer"))
}

async fn create_user(cx: Cx, Form(form): Form<CreateUserForm>) -> Response {
    let done = format!("{}/admin/?done=user-created", cx.prefix);
    let accounts = match cx.accounts() {
        Ok(accounts) => accounts.clone(),
        Err(error) => return cx.error_page(error),
    };
    let csrf = form.csrf_token.clone();
    admin_form(&cx, &csrf, |me| async move {
        let role = parse_role(&form.role)?;
        let email = Some(form.email.as_str()).filter(|email| !email.trim().is_empty());
        let user = accounts.create_user(&form.username, email, &form.password, role)
            .await?;
        tracing::info!(admin = %loggable(&me.name), username = %loggable(&user.username), role = %user.role, "user created");
        Ok(see_other(&done))
    })
    .await
}

#[derive(Debug, Deserialize)]
struct RoleForm {
    #[serde(default)]
    role: String,
    #[serde(default)]
    csrf_token: String,
}

fn user_id(text: &str) -> Result<UserId, stpt_core::Error> {
    parse_id("user", text)
        .map(UserId)
        .map_err(|_| stpt_core::Error::invalid("user", "id is not a number"))
}

async fn set_role(cx: Cx, Path(id): Path<String>, Form(form): Form<RoleForm>) -> Response {
    let done = format!("{}/admin/?done=role-changed", cx.prefix);
    let accounts = match cx.accounts() {
        Ok(accounts) => accounts.clone(),
        Err(error) => return cx.error_page(error),
    };
    let csrf = form.csrf_token.clone();
    admin_form(&cx, &csrf, |me| async move {
        let user = accounts.set_role(user_id(&id)?, parse_role(&form.role)?)
            .await?;
        tracing::info!(admin = %loggable(&me.name), username = %loggable(&user.username), role = %user.role, "role changed");
        Ok(see_other(&done))
    })
    .await
}

async fn delete_user(cx: Cx, Path(id): Path<String>, Form(form): Form<CsrfForm>) -> Response {
    let done = format!("{}/admin/?done=user-deleted", cx.prefix);
    let accounts = match cx.accounts() {
        Ok(accounts) => accounts.clone(),
        Err(error) => return cx.error_page(error),
    };
    let csrf = form.csrf_token.clone();
    admin_form(&cx, &csrf, |me| async move {
        let id = user_id(&id)?;
        accounts.delete_user(id).await?;
        tracing::info!(admin = %loggable(&me.name), user = %id, "user deleted");
        Ok(see_other(&done))
    })
    .await
}

#[derive(Debug, Deserialize)]
struct EmailForm {
    /// Blank: the user has no email address.
    #[serde(default)]
    email: String,
    #[serde(default)]
    csrf_token: String,
}

async fn set_email(cx: Cx, Path(id): Path<String>, Form(form): Form<EmailForm>) -> Response {
    let done = format!("{}/admin/?done=email-changed#users", cx.prefix);
    let accounts = match cx.accounts() {
        Ok(accounts) => accounts.clone(),
        Err(error) => return cx.error_page(error),
    };
    let csrf = form.csrf_token.clone();
    admin_form(&cx, &csrf, |me| async move {
        let user = accounts.set_email(user_id(&id)?, Some(&form.email)).await?;
        tracing::info!(admin = %loggable(&me.name), username = %loggable(&user.username), has_email = user.email.is_some(), "email changed");
        Ok(see_other(&done))
    })
    .await
}

#[derive(Debug, Deserialize)]
struct PasswordForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf_token: String,
}

/// Sets a user's password directly (to tell them by other means); they are signed out
/// everywhere.
async fn set_password(cx: Cx, Path(id): Path<String>, Form(form): Form<PasswordForm>) -> Response {
    let done = format!("{}/admin/?done=password-set#users", cx.prefix);
    let accounts = match cx.accounts() {
        Ok(accounts) => accounts.clone(),
        Err(error) => return cx.error_page(error),
    };
    let csrf = form.csrf_token.clone();
    admin_form(&cx, &csrf, |me| async move {
        let id = user_id(&id)?;
        accounts.set_password(id, &form.password).await?;
        tracing::info!(admin = %loggable(&me.name), user = %id, "password set by an admin; the user's sessions ended");
        Ok(see_other(&done))
    })
    .await
}

/// Emails a user a link to choose a new password, as the reset flow does.
async fn send_reset_link(cx: Cx, Path(id): Path<String>, Form(form): Form<CsrfForm>) -> Response {
    let done = format!("{}/admin/?done=reset-link-sent#users", cx.prefix);
    let accounts = match cx.accounts() {
        Ok(accounts) => accounts.clone(),
        Err(error) => return cx.error_page(error),
    };
    let mailer = std::sync::Arc::clone(&cx.state.security.mailer);
    let base = cx.public_base();
    let cx_ref = &cx;
    admin_form(&cx, &form.csrf_token, |me| async move {
        let grant = accounts.grant_password_reset(user_id(&id)?).await?;
        let username = grant.user.username.clone();
        if let Err(error) = mail_reset_link(&*mailer, &base, grant, ResetAsker::Admin).await {
            tracing::error!(%error, username = %loggable(&username), "sending a password-reset email failed");
            let message = "The reset link could not be sent: the mail server refused it or \
                           could not be reached. The server log says why.";
            return render_admin(cx_ref, &me, None, Some(message.to_owned()), StatusCode::BAD_GATEWAY)
                .await
                .map_err(|error| stpt_core::Error::backend(error.message));
        }
        tracing::info!(admin = %loggable(&me.name), username = %loggable(&username), "password-reset link sent by an admin");
        Ok(see_other(&done))
    })
    .await
}

#[derive(Debug, Deserialize)]
struct CreateTokenForm {
    #[serde(default)]
    name: String,
    /// Machine names, one per line; empty: any machine.
    #[serde(default)]
    machines: String,
    #[serde(default)]
    csrf_token: String,
}

#[derive(Debug, Serialize)]
struct TokenCreatedData {
    token: TokenRow,
    secret: String,
}

async fn create_token(cx: Cx, Form(form): Form<CreateTokenForm>) -> Response {
    let accounts = match cx.accounts() {
        Ok(accounts) => accounts.clone(),
        Err(error) => return cx.error_page(error),
    };
    let csrf = form.csrf_token.clone();
    let cx_ref = &cx;
    admin_form(&cx, &csrf, |me| async move {
        let cx = cx_ref;
        let machines: Vec<String> = form
            .machines
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .map(str::to_owned)
            .collect();
        let issued = accounts.create_runner_token(form.name.trim(), &machines)
            .await?;
        tracing::info!(admin = %loggable(&me.name), token = %loggable(&issued.token.name), id = %issued.token.id, "runner token created");
        // Shown once, on this page (not behind a redirect): only its hash is stored.
        let view = View {
            template: "stpt/token_created.html",
            kind: "token-created",
            title: "Runner token created".to_owned(),
            breadcrumbs: vec![
                cx.crumb_home(),
                Crumb::link("Admin", format!("{}/admin/", cx.prefix)),
                Crumb::here("Runner token created"),
            ],
            live: None,
            data: TokenCreatedData {
                token: issued.token.into(),
                secret: issued.secret,
            },
        };
        cx.render_form(view).map_err(|error| {
            stpt_core::Error::backend(error.message)
        })
    })
    .await
}

async fn revoke_token(cx: Cx, Path(id): Path<String>, Form(form): Form<CsrfForm>) -> Response {
    let done = format!("{}/admin/?done=token-revoked", cx.prefix);
    let accounts = match cx.accounts() {
        Ok(accounts) => accounts.clone(),
        Err(error) => return cx.error_page(error),
    };
    let csrf = form.csrf_token.clone();
    admin_form(&cx, &csrf, |me| async move {
        let id = parse_id("runner token", &id)
            .map(RunnerTokenId)
            .map_err(|_| stpt_core::Error::invalid("runner token", "id is not a number"))?;
        let token = accounts.revoke_runner_token(id).await?;
        tracing::info!(admin = %loggable(&me.name), token = %loggable(&token.name), id = %token.id, "runner token revoked");
        Ok(see_other(&done))
    })
    .await
}

async fn delete_machine(cx: Cx, Path(id): Path<String>, Form(form): Form<CsrfForm>) -> Response {
    let tracker = cx.tracker().clone();
    let home = crate::extract::home_url(&cx.prefix);
    admin_form(&cx, &form.csrf_token, |me| async move {
        let id = parse_id("machine", &id)
            .map(MachineId)
            .map_err(|_| stpt_core::Error::invalid("machine", "id is not a number"))?;
        tracker.delete_machine(id).await?;
        tracing::info!(admin = %loggable(&me.name), machine = %id, "machine deleted");
        Ok(see_other(&home))
    })
    .await
}

async fn delete_run(cx: Cx, Path(id): Path<String>, Form(form): Form<CsrfForm>) -> Response {
    let tracker = cx.tracker().clone();
    let prefix = cx.prefix.clone();
    admin_form(&cx, &form.csrf_token, |me| async move {
        let id = parse_id("run", &id)
            .map(RunId)
            .map_err(|_| stpt_core::Error::invalid("run", "id is not a number"))?;
        let machine = tracker.run(id).await?.summary.machine_id;
        tracker.delete_run(id).await?;
        tracing::info!(admin = %loggable(&me.name), run = %id, "run deleted");
        Ok(see_other(&format!("{prefix}/machine/{machine}")))
    })
    .await
}

#[derive(Debug, Deserialize)]
struct TimezoneForm {
    /// An IANA name; empty: the server's default.
    #[serde(default)]
    timezone: String,
    #[serde(default)]
    csrf_token: String,
}

async fn set_machine_timezone(
    cx: Cx,
    Path(id): Path<String>,
    Form(form): Form<TimezoneForm>,
) -> Response {
    let tracker = cx.tracker().clone();
    let prefix = cx.prefix.clone();
    let with_accounts = cx.state.security.sign_in.is_some();
    admin_form(&cx, &form.csrf_token, |me| async move {
        let id = parse_id("machine", &id)
            .map(MachineId)
            .map_err(|_| stpt_core::Error::invalid("machine", "id is not a number"))?;
        let timezone = match form.timezone.trim() {
            "" => None,
            name => Some(name.parse::<RunnerTimezone>()?),
        };
        tracker.set_machine_timezone(id, timezone).await?;
        tracing::info!(admin = %loggable(&me.name), machine = %id, timezone = timezone.map_or("default", RunnerTimezone::name), "machine time zone set");
        Ok(see_other(&if with_accounts {
            format!("{prefix}/admin/?done=timezone-changed#machines")
        } else {
            format!("{prefix}/machine/{id}")
        }))
    })
    .await
}

/// Where an admin's machine setting sends them: the admin page's machines with stpt's
/// accounts (it lists them), else the machine's page.
fn after_machine_setting(prefix: &str, with_accounts: bool, done: &str, id: MachineId) -> String {
    if with_accounts {
        format!("{prefix}/admin/?done={done}#machines")
    } else {
        format!("{prefix}/machine/{id}")
    }
}

fn machine_id(text: &str) -> Result<MachineId, stpt_core::Error> {
    parse_id("machine", text)
        .map(MachineId)
        .map_err(|_| stpt_core::Error::invalid("machine", "id is not a number"))
}

#[derive(Debug, Deserialize)]
struct TimeoutsForm {
    /// A duration (`90s`, `5m`, `1h 30m`); empty: the server's.
    #[serde(default)]
    quiet_after: String,
    #[serde(default)]
    offline_after: String,
    #[serde(default)]
    csrf_token: String,
}

/// A threshold typed by an admin, in whole seconds; empty: none.
fn parse_threshold(field: &'static str, text: &str) -> Result<Option<u32>, stpt_core::Error> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let invalid = || {
        stpt_core::Error::invalid(
            field,
            "must be a duration such as 90s, 5m or 1h 30m, from 1 second to 30 days",
        )
    };
    let duration = humantime::parse_duration(text).map_err(|_| invalid())?;
    let seconds = u32::try_from(duration.as_secs()).map_err(|_| invalid())?;
    Ok(Some(seconds))
}

async fn set_machine_timeouts(
    cx: Cx,
    Path(id): Path<String>,
    Form(form): Form<TimeoutsForm>,
) -> Response {
    let tracker = cx.tracker().clone();
    let prefix = cx.prefix.clone();
    let with_accounts = cx.state.security.sign_in.is_some();
    admin_form(&cx, &form.csrf_token, |me| async move {
        let id = machine_id(&id)?;
        let timeouts = MachineTimeouts {
            quiet_after_secs: parse_threshold("quiet threshold", &form.quiet_after)?,
            offline_after_secs: parse_threshold("offline threshold", &form.offline_after)?,
        };
        tracker.set_machine_timeouts(id, timeouts).await?;
        tracing::info!(admin = %loggable(&me.name), machine = %id, quiet_after_secs = ?timeouts.quiet_after_secs, offline_after_secs = ?timeouts.offline_after_secs, "machine liveness thresholds set");
        Ok(see_other(&after_machine_setting(&prefix, with_accounts, "timeouts-changed", id)))
    })
    .await
}

#[derive(Debug, Deserialize)]
struct RetentionForm {
    /// `own` for a policy of the machine's own; anything else: the server's.
    #[serde(default)]
    policy: String,
    /// Limits of the own policy; empty: no such limit.
    #[serde(default)]
    keep_days: String,
    #[serde(default)]
    keep_runs: String,
    #[serde(default)]
    csrf_token: String,
}

/// A retention limit typed by an admin; empty: none.
fn parse_limit(field: &'static str, text: &str) -> Result<Option<u32>, stpt_core::Error> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| {
        stpt_core::Error::invalid(field, "must be a whole number, or empty for no limit")
    })
}

async fn set_machine_retention(
    cx: Cx,
    Path(id): Path<String>,
    Form(form): Form<RetentionForm>,
) -> Response {
    let tracker = cx.tracker().clone();
    let prefix = cx.prefix.clone();
    let with_accounts = cx.state.security.sign_in.is_some();
    admin_form(&cx, &form.csrf_token, |me| async move {
        let id = machine_id(&id)?;
        let retention = match form.policy.as_str() {
            "own" => Some(RetentionPolicy {
                keep_days: parse_limit("keep days", &form.keep_days)?,
                keep_runs_per_machine: parse_limit("keep runs", &form.keep_runs)?,
            }),
            "server" => None,
            _ => return Err(stpt_core::Error::invalid("policy", "must be server or own")),
        };
        tracker.set_machine_retention(id, retention).await?;
        tracing::info!(admin = %loggable(&me.name), machine = %id, ?retention, "machine retention set");
        Ok(see_other(&after_machine_setting(&prefix, with_accounts, "retention-changed", id)))
    })
    .await
}

#[derive(Debug, Deserialize)]
struct KeepForm {
    /// `true` to keep the run, `false` to stop keeping it.
    #[serde(default)]
    kept: String,
    #[serde(default)]
    csrf_token: String,
}

async fn set_run_kept(cx: Cx, Path(id): Path<String>, Form(form): Form<KeepForm>) -> Response {
    let tracker = cx.tracker().clone();
    let prefix = cx.prefix.clone();
    admin_form(&cx, &form.csrf_token, |me| async move {
        let id = parse_id("run", &id)
            .map(RunId)
            .map_err(|_| stpt_core::Error::invalid("run", "id is not a number"))?;
        let kept = match form.kept.as_str() {
            "true" => true,
            "false" => false,
            _ => return Err(stpt_core::Error::invalid("kept", "must be true or false")),
        };
        tracker.set_run_kept(id, kept).await?;
        tracing::info!(admin = %loggable(&me.name), run = %id, kept, "run kept flag set");
        Ok(see_other(&format!("{prefix}/machine/run_data/{id}")))
    })
    .await
}
