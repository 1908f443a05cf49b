//! Signing in and out, changing one's own password, and resetting a forgotten one by an
//! emailed link.

use axum::Form;
use axum::Router;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use stpt_core::accounts::{MAX_PASSWORD_BYTES, MAX_USERNAME_CHARS, username_key};

use super::views::Crumb;
use super::{Cx, PageError, PagesState, View};
use crate::extract::home_url;
use crate::security::cookies::SESSION_COOKIE;
use crate::security::text::{clip, loggable};
use crate::security::{Csrf, Mail, safe_next, see_other};

pub(super) fn routes() -> Router<PagesState> {
    let mut router = Router::new();
    let pages = [
        ("/login", get(login_page).post(login)),
        ("/logout", get(logout_page).post(logout)),
        (
            "/password_reset",
            get(reset_request_page).post(reset_request),
        ),
        ("/password_reset/done", get(reset_sent_page)),
        ("/reset/done", get(reset_done_page)),
        ("/reset/{secret}", get(reset_page).post(reset)),
        // The seed's paths, for bookmarks and links made against it.
        (
            "/password-reset",
            get(reset_request_page).post(reset_request),
        ),
        ("/password-reset/done", get(reset_sent_page)),
        (
            "/password-reset-confirm/{uidb64}/{token}",
            get(seed_reset_link),
        ),
        ("/password-reset-complete", get(reset_done_page)),
        (
            "/account/password",
            get(password_change_page).post(change_password),
        ),
    ];
    for (path, handler) in pages {
        router = router
            .route(path, handler.clone())
            .route(&format!("{path}/"), handler);
    }
    router
}

/// The answer when a form's CSRF token does not match its cookie.
pub(super) fn csrf_failed() -> PageError {
    PageError {
        status: StatusCode::FORBIDDEN,
        message:
            "This form has expired or was sent from another site. Reload the page and try again."
                .to_owned(),
    }
}

/// Checks a posted form's CSRF token.
pub(super) fn check_csrf(headers: &HeaderMap, submitted: &str) -> Result<(), PageError> {
    if Csrf::verify(headers, submitted) {
        Ok(())
    } else {
        Err(csrf_failed())
    }
}

/// A rendered page answered with `status` instead of 200.
pub(super) fn with_status(
    response: Result<Response, PageError>,
    status: StatusCode,
) -> Result<Response, PageError> {
    response.map(|mut response| {
        *response.status_mut() = status;
        response
    })
}

#[derive(Debug, Deserialize)]
struct NextQuery {
    next: Option<String>,
}

#[derive(Debug, Serialize)]
struct LoginData {
    next: String,
    username: String,
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf_token: String,
    next: Option<String>,
}

impl Cx {
    fn login_view(&self, data: LoginData) -> View<LoginData> {
        View {
            template: "stpt/login.html",
            kind: "login",
            title: "Sign in".to_owned(),
            breadcrumbs: vec![self.crumb_home(), Crumb::here("Sign in")],
            live: None,
            data,
        }
    }
}

async fn login_page(cx: Cx, Query(query): Query<NextQuery>) -> Response {
    let next = safe_next(query.next.as_deref(), &cx.prefix);
    if cx.caller.viewer().is_some() {
        return see_other(&next);
    }
    let view = cx.login_view(LoginData {
        next,
        username: String::new(),
        error: None,
    });
    cx.finish(cx.render_form(view))
}

async fn login(cx: Cx, Form(form): Form<LoginForm>) -> Response {
    let result = async {
        check_csrf(&cx.headers, &form.csrf_token)?;
        let next = safe_next(form.next.as_deref(), &cx.prefix);
        let security = &cx.state.security;
        let client = cx
            .client
            .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
        // No stored username is longer, so a longer one is kept (key, page, log) only cut.
        let username = clip(&form.username, MAX_USERNAME_CHARS + 1);
        let key = format!("{client}|{}", username_key(username));
        let wrong = |status| {
            let view = cx.login_view(LoginData {
                next: next.clone(),
                username: username.to_owned(),
                error: Some("Wrong username or password.".to_owned()),
            });
            with_status(cx.render_form(view), status)
        };
        // It cannot be right and costs no hashing: counting it would let anyone fill the
        // throttle's table for free.
        if form.password.len() > MAX_PASSWORD_BYTES {
            return wrong(StatusCode::UNAUTHORIZED);
        }
        if let Some(wait) = security.throttle.retry_after(&key) {
            let minutes = wait.as_secs().div_ceil(60).max(1);
            let view = cx.login_view(LoginData {
                next: next.clone(),
                username: username.to_owned(),
                error: Some(format!(
                    "Too many failed attempts. Try again in {minutes} minute{}.",
                    if minutes == 1 { "" } else { "s" }
                )),
            });
            return with_status(cx.render_form(view), StatusCode::TOO_MANY_REQUESTS);
        }
        let accounts = cx.accounts()?;
        let Some(signed_in) = accounts.sign_in(username, &form.password).await? else {
            security.throttle.failed(&key);
            tracing::info!(username = %loggable(username), client = %client, "failed sign-in");
            return wrong(StatusCode::UNAUTHORIZED);
        };
        security.throttle.succeeded(&key);
        tracing::info!(username = %loggable(&signed_in.user.username), "signed in");
        let mut response = see_other(&next);
        let max_age = accounts.session_ttl().num_seconds();
        if let Some(cookie) =
            cx.cookie_rules()
                .set(SESSION_COOKIE, &signed_in.secret, "Lax", max_age)
        {
            response.headers_mut().append(header::SET_COOKIE, cookie);
        }
        Ok(response)
    }
    .await;
    cx.finish(result)
}

#[derive(Debug, Serialize)]
struct Empty {}

async fn logout_page(cx: Cx) -> Response {
    if cx.caller.viewer().is_none() {
        return see_other(&home_url(&cx.prefix));
    }
    let view = View {
        template: "stpt/logout.html",
        kind: "logout",
        title: "Sign out".to_owned(),
        breadcrumbs: vec![cx.crumb_home(), Crumb::here("Sign out")],
        live: None,
        data: Empty {},
    };
    cx.finish(cx.render_form(view))
}

/// A form that carries only its CSRF token (sign-out, revoke, delete).
#[derive(Debug, Deserialize)]
pub(super) struct CsrfForm {
    #[serde(default)]
    pub(super) csrf_token: String,
}

async fn logout(cx: Cx, Form(form): Form<CsrfForm>) -> Response {
    let result = async {
        check_csrf(&cx.headers, &form.csrf_token)?;
        if let Some(secret) = crate::security::cookies::cookie(&cx.headers, SESSION_COOKIE) {
            cx.accounts()?.sign_out(secret).await?;
        }
        let mut response = see_other(&home_url(&cx.prefix));
        if let Some(cookie) = cx.cookie_rules().set(SESSION_COOKIE, "", "Lax", 0) {
            response.headers_mut().append(header::SET_COOKIE, cookie);
        }
        Ok(response)
    }
    .await;
    cx.finish(result)
}

/// Which step of the reset flow a page shows.
#[derive(Debug, Serialize)]
#[serde(rename_all = "snake_case")]
enum ResetStep {
    Request,
    Sent,
    Choose,
    Invalid,
    Done,
}

#[derive(Debug, Serialize)]
struct ResetData {
    step: ResetStep,
    error: Option<String>,
    username: Option<String>,
}

impl Cx {
    fn reset_view(
        &self,
        step: ResetStep,
        error: Option<String>,
        username: Option<String>,
    ) -> View<ResetData> {
        View {
            template: "stpt/password_reset.html",
            kind: "password-reset",
            title: "Reset password".to_owned(),
            breadcrumbs: vec![self.crumb_home(), Crumb::here("Reset password")],
            live: None,
            data: ResetData {
                step,
                error,
                username,
            },
        }
    }

    /// The sign-in page, coming back to `path` (under the prefix) after.
    pub(super) fn sign_in_url(&self, path: &str) -> String {
        let next = format!("{}{path}", self.prefix);
        let query = serde_urlencoded::to_string([("next", next.as_str())]).unwrap_or_default();
        format!("{}/login/?{query}", self.prefix)
    }

    /// Where links in emails point: the configured public address, else this request's host.
    pub(super) fn public_base(&self) -> String {
        if let Some(url) = &self.state.security.public_url {
            return url.clone();
        }
        let host = self
            .headers
            .get(header::HOST)
            .and_then(|host| host.to_str().ok())
            .unwrap_or("localhost");
        let scheme = if self.cookie_rules().secure {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{host}{}", self.prefix)
    }
}

async fn reset_request_page(cx: Cx) -> Response {
    let view = cx.reset_view(ResetStep::Request, None, None);
    cx.finish(cx.render_form(view))
}

#[derive(Debug, Deserialize)]
struct ResetRequestForm {
    #[serde(default)]
    login: String,
    #[serde(default)]
    csrf_token: String,
}

/// The longest login (username or email) a reset request looks up, in characters.
const MAX_RESET_LOGIN_CHARS: usize = 254;

async fn reset_request(cx: Cx, Form(form): Form<ResetRequestForm>) -> Response {
    let result = async {
        check_csrf(&cx.headers, &form.csrf_token)?;
        let security = &cx.state.security;
        // Bounds how many emails one client can make the server send.
        let client = cx
            .client
            .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
        let key = format!("reset|{client}");
        if security.throttle.retry_after(&key).is_none() {
            security.throttle.failed(&key);
            let accounts = cx.accounts()?.clone();
            let mailer = std::sync::Arc::clone(&security.mailer);
            let base = cx.public_base();
            let login = clip(&form.login, MAX_RESET_LOGIN_CHARS).to_owned();
            // The store write and the mail happen after the answer: how long the answer
            // takes must not tell whether an account matched.
            tokio::spawn(send_reset_links(accounts, mailer, base, login));
        }
        // The same answer whether or not an account matched: no one learns who has one.
        Ok(see_other(&format!("{}/password_reset/done/", cx.prefix)))
    }
    .await;
    cx.finish(result)
}

/// Opens a reset grant for each account `login` names and mails its link.
async fn send_reset_links(
    accounts: stpt_core::accounts::Accounts,
    mailer: std::sync::Arc<dyn crate::Mailer>,
    base: String,
    login: String,
) {
    let grants = match accounts.request_password_reset(&login).await {
        Ok(grants) => grants,
        Err(error) => {
            tracing::error!(%error, "opening a password reset failed");
            return;
        }
    };
    for grant in grants {
        let username = grant.user.username.clone();
        if let Err(error) = mail_reset_link(&*mailer, &base, grant, ResetAsker::User).await {
            tracing::error!(%error, username = %loggable(&username), "sending a password-reset email failed");
        }
    }
}

/// Who asked for a reset link, as its email says.
#[derive(Debug, Clone, Copy)]
pub(super) enum ResetAsker {
    /// Someone who knows the username or the address (hopefully its owner).
    User,
    /// An admin, from the admin page.
    Admin,
}

/// Mails `grant`'s link to its user's address (a grant for a user without one sends
/// nothing).
pub(super) async fn mail_reset_link(
    mailer: &dyn crate::Mailer,
    base: &str,
    grant: stpt_core::accounts::ResetGrant,
    asker: ResetAsker,
) -> Result<(), stpt_core::BoxError> {
    let Some(to) = grant.user.email.clone() else {
        return Ok(());
    };
    let who = match asker {
        ResetAsker::User => "Someone (hopefully you) asked",
        ResetAsker::Admin => "An admin of stpt asked",
    };
    let body = format!(
        "{who} to reset the password of the stpt account `{}`.\n\n\
         Open this link to choose a new password. It works once, until {} UTC:\n\n\
         {base}/reset/{}/\n\n\
         If you did not expect this, ignore this email: your password stays as it is.\n",
        grant.user.username,
        grant.expires_at.format("%Y-%m-%d %H:%M"),
        grant.secret,
    );
    let mail = Mail {
        to,
        subject: "Reset your stpt password".to_owned(),
        body,
    };
    mailer.send(mail).await
}

async fn reset_sent_page(cx: Cx) -> Response {
    let view = cx.reset_view(ResetStep::Sent, None, None);
    cx.finish(cx.render(view))
}

async fn reset_done_page(cx: Cx) -> Response {
    let view = cx.reset_view(ResetStep::Done, None, None);
    cx.finish(cx.render(view))
}

async fn reset_page(cx: Cx, Path(secret): Path<String>) -> Response {
    let result = async {
        let user = cx.accounts()?.reset_user(&secret).await?;
        match user {
            Some(user) => {
                cx.render_form(cx.reset_view(ResetStep::Choose, None, Some(user.username)))
            }
            None => with_status(
                cx.render(cx.reset_view(ResetStep::Invalid, None, None)),
                StatusCode::NOT_FOUND,
            ),
        }
    }
    .await;
    cx.finish(result)
}

/// A reset link the seed emailed: its tokens mean nothing here, so the answer is the page of
/// an invalid link, which offers a new one.
async fn seed_reset_link(cx: Cx) -> Response {
    let view = cx.reset_view(ResetStep::Invalid, None, None);
    cx.finish(with_status(cx.render(view), StatusCode::NOT_FOUND))
}

#[derive(Debug, Deserialize)]
struct ResetForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    password_again: String,
    #[serde(default)]
    csrf_token: String,
}

async fn reset(cx: Cx, Path(secret): Path<String>, Form(form): Form<ResetForm>) -> Response {
    let result = async {
        check_csrf(&cx.headers, &form.csrf_token)?;
        let accounts = cx.accounts()?;
        let again = |error: String, username: Option<String>| {
            with_status(
                cx.render_form(cx.reset_view(ResetStep::Choose, Some(error), username)),
                StatusCode::BAD_REQUEST,
            )
        };
        if form.password != form.password_again {
            let username = accounts
                .reset_user(&secret)
                .await?
                .map(|user| user.username);
            if username.is_none() {
                return with_status(
                    cx.render(cx.reset_view(ResetStep::Invalid, None, None)),
                    StatusCode::NOT_FOUND,
                );
            }
            return again("The two passwords differ.".to_owned(), username);
        }
        match accounts.reset_password(&secret, &form.password).await {
            Ok(Some(user)) => {
                tracing::info!(username = %loggable(&user.username), "password reset by emailed link");
                Ok(see_other(&format!("{}/reset/done/", cx.prefix)))
            }
            Ok(None) => with_status(
                cx.render(cx.reset_view(ResetStep::Invalid, None, None)),
                StatusCode::NOT_FOUND,
            ),
            Err(stpt_core::Error::InvalidInput { problem, .. }) => {
                let username = accounts
                    .reset_user(&secret)
                    .await?
                    .map(|user| user.username);
                again(format!("The password {problem}."), username)
            }
            Err(error) => Err(error.into()),
        }
    }
    .await;
    cx.finish(result)
}

#[derive(Debug, Serialize)]
struct PasswordChangeData {
    /// For password managers: whose password this is.
    username: String,
    done: bool,
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct DoneFlag {
    done: Option<String>,
}

impl Cx {
    fn password_change_view(
        &self,
        username: String,
        done: bool,
        error: Option<String>,
    ) -> View<PasswordChangeData> {
        View {
            template: "stpt/password_change.html",
            kind: "password-change",
            title: "Change password".to_owned(),
            breadcrumbs: vec![self.crumb_home(), Crumb::here("Change password")],
            live: None,
            data: PasswordChangeData {
                username,
                done,
                error,
            },
        }
    }

    /// The signed-in user, or the answer sending an anonymous visitor to sign in first (and
    /// back here after).
    async fn signed_in_user(&self) -> Result<stpt_core::accounts::User, Response> {
        let to_sign_in = || see_other(&self.sign_in_url("/account/password/"));
        let Some(secret) = crate::security::cookies::cookie(&self.headers, SESSION_COOKIE) else {
            return Err(to_sign_in());
        };
        let accounts = self.accounts().map_err(|error| self.error_page(error))?;
        match accounts.session(secret).await {
            Ok(Some(session)) => Ok(session.user),
            Ok(None) => Err(to_sign_in()),
            Err(error) => Err(self.error_page(error.into())),
        }
    }
}

async fn password_change_page(cx: Cx, Query(query): Query<DoneFlag>) -> Response {
    let user = match cx.signed_in_user().await {
        Ok(user) => user,
        Err(answer) => return answer,
    };
    let view = cx.password_change_view(user.username, query.done.is_some(), None);
    cx.finish(cx.render_form(view))
}

#[derive(Debug, Deserialize)]
struct PasswordChangeForm {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    password_again: String,
    #[serde(default)]
    csrf_token: String,
}

/// A signed-in user changes their own password: the current one, then the new one twice.
/// Wrong current passwords count against the user as failed sign-ins do (someone at an
/// unlocked browser must not guess it); on success every other session of theirs ends and
/// this browser gets a new one.
async fn change_password(cx: Cx, Form(form): Form<PasswordChangeForm>) -> Response {
    let user = match cx.signed_in_user().await {
        Ok(user) => user,
        Err(answer) => return answer,
    };
    let result = async {
        check_csrf(&cx.headers, &form.csrf_token)?;
        let again = |error: String, status| {
            let view = cx.password_change_view(user.username.clone(), false, Some(error));
            with_status(cx.render_form(view), status)
        };
        if form.password != form.password_again {
            return again(
                "The two new passwords differ.".to_owned(),
                StatusCode::BAD_REQUEST,
            );
        }
        let security = &cx.state.security;
        let key = format!("password|{}", user.id);
        if let Some(wait) = security.throttle.retry_after(&key) {
            let minutes = wait.as_secs().div_ceil(60).max(1);
            return again(
                format!(
                    "Too many wrong current passwords. Try again in {minutes} minute{}.",
                    if minutes == 1 { "" } else { "s" }
                ),
                StatusCode::TOO_MANY_REQUESTS,
            );
        }
        let accounts = cx.accounts()?;
        match accounts
            .change_password(user.id, &form.current_password, &form.password)
            .await
        {
            Ok(Some(signed_in)) => {
                security.throttle.succeeded(&key);
                tracing::info!(username = %loggable(&user.username), "password changed by its user; other sessions ended");
                let mut response = see_other(&format!("{}/account/password/?done=1", cx.prefix));
                let max_age = accounts.session_ttl().num_seconds();
                if let Some(cookie) =
                    cx.cookie_rules()
                        .set(SESSION_COOKIE, &signed_in.secret, "Lax", max_age)
                {
                    response.headers_mut().append(header::SET_COOKIE, cookie);
                }
                Ok(response)
            }
            Ok(None) => {
                security.throttle.failed(&key);
                tracing::info!(username = %loggable(&user.username), "wrong current password on a password change");
                again(
                    "The current password is wrong.".to_owned(),
                    StatusCode::UNAUTHORIZED,
                )
            }
            Err(stpt_core::Error::InvalidInput { problem, .. }) => again(
                format!("The new password {problem}."),
                StatusCode::BAD_REQUEST,
            ),
            Err(error) => Err(error.into()),
        }
    }
    .await;
    cx.finish(result)
}
