//! Access control through the router: runner tokens on ingestion, sign-in and sessions,
//! CSRF, throttling, password reset, read access and the admin page.

#![allow(clippy::unwrap_used)] // Tests fail loudly by design.

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use chrono::{Duration, TimeZone, Utc};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use stpt_core::accounts::{Accounts, Role};
use stpt_core::{BoxError, InProcessBus, ManualClock, RunnerTimezone, Tracker};
use stpt_http::{HttpConfig, IngestAccess, Mail, Mailer, ReadAccess};
use stpt_store_memory::MemoryStore;
use tower::ServiceExt;

const PLAN: &str = include_str!("../../stpt-core/fixtures/plan-python-runner.json");
const EVENTS: &str = include_str!("../../stpt-core/fixtures/events-python-runner.json");

/// Keeps the emails the server sends.
#[derive(Debug, Default)]
struct Outbox(Mutex<Vec<Mail>>);

#[async_trait]
impl Mailer for Outbox {
    async fn send(&self, mail: Mail) -> Result<(), BoxError> {
        self.0.lock().unwrap().push(mail);
        Ok(())
    }
}

struct Lab {
    app: Router,
    accounts: Accounts,
    clock: Arc<ManualClock>,
    outbox: Arc<Outbox>,
}

impl Lab {
    /// The next email sent: reset emails leave after the answer, from a background task.
    async fn next_mail(&self) -> Mail {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            if let Some(mail) = self.outbox.0.lock().unwrap().pop() {
                return mail;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no email within 10 s"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}

fn lab(config: HttpConfig) -> Lab {
    lab_reading_naive_times_in(config, RunnerTimezone::UTC)
}

/// [`lab`] with the server's runner time zone (`--runner-timezone`) set to `zone`.
fn lab_reading_naive_times_in(config: HttpConfig, zone: RunnerTimezone) -> Lab {
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 24, 15, 30, 0).unwrap(),
    ));
    let tracker = Tracker::new(Arc::clone(&store) as _, Arc::new(InProcessBus::new()))
        .with_clock(Arc::clone(&clock) as _)
        .with_runner_timezone(zone);
    let accounts = Accounts::new(store).with_clock(Arc::clone(&clock) as _);
    let outbox = Arc::new(Outbox::default());
    let config = config
        .with_mailer(Arc::clone(&outbox) as _)
        .with_public_url("https://stpt.lab.example");
    let app = stpt_http::router(tracker, &config.with_accounts(accounts.clone()));
    Lab {
        app,
        accounts,
        clock,
        outbox,
    }
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
    }

    fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|value| value.to_str().unwrap().to_owned())
            .collect()
    }

    /// The CSRF token of the page's first form.
    fn csrf(&self) -> String {
        let marker = "name=\"csrf_token\" value=\"";
        let start = self.body.find(marker).expect("a form with a CSRF token") + marker.len();
        let end = self.body[start..].find('"').unwrap();
        self.body[start..start + end].to_owned()
    }
}

/// A client with a cookie jar and an address.
struct Client<'a> {
    app: &'a Router,
    cookies: BTreeMap<String, String>,
    address: Option<SocketAddr>,
}

impl<'a> Client<'a> {
    fn new(app: &'a Router) -> Self {
        Client {
            app,
            cookies: BTreeMap::new(),
            address: None,
        }
    }

    async fn send(
        &mut self,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: Body,
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect();
            request = request.header(header::COOKIE, jar.join("; "));
        }
        let mut request = request.body(body).unwrap();
        if let Some(address) = self.address {
            request.extensions_mut().insert(ConnectInfo(address));
        }
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let answer = Answer {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        };
        for cookie in answer.set_cookies() {
            let pair = cookie.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if cookie.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        answer
    }

    async fn get(&mut self, uri: &str) -> Answer {
        self.send(Method::GET, uri, &[], Body::empty()).await
    }

    async fn form(&mut self, uri: &str, fields: &[(&str, &str)]) -> Answer {
        let body = serde_urlencoded::to_string(fields).unwrap();
        self.send(
            Method::POST,
            uri,
            &[("content-type", "application/x-www-form-urlencoded")],
            Body::from(body),
        )
        .await
    }

    async fn post_json(&mut self, uri: &str, token: Option<&str>, body: &Value) -> Answer {
        let bearer = token.map(|token| format!("Bearer {token}"));
        let mut headers = vec![("content-type", "application/json")];
        if let Some(bearer) = &bearer {
            headers.push(("authorization", bearer.as_str()));
        }
        self.send(Method::POST, uri, &headers, Body::from(body.to_string()))
            .await
    }

    /// Signs in through the login form.
    async fn sign_in(&mut self, username: &str, password: &str) -> Answer {
        let page = self.get("/login/").await;
        let csrf = page.csrf();
        self.form(
            "/login/",
            &[
                ("username", username),
                ("password", password),
                ("csrf_token", &csrf),
                ("next", "/admin/"),
            ],
        )
        .await
    }
}

fn plan_for(machine: &str) -> Value {
    let mut plan: Value = serde_json::from_str(PLAN).unwrap();
    plan["machine_name"] = json!(machine);
    plan
}

#[tokio::test]
async fn ingestion_needs_a_valid_token_by_default() {
    let lab = lab(HttpConfig::default());
    let mut runner = Client::new(&lab.app);
    let plan = plan_for("rig-1");

    let refused = runner.post_json("/tm_api/dry_run/", None, &plan).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused.json()["error"]["code"], "unauthorized");
    assert_eq!(
        refused.headers[header::WWW_AUTHENTICATE],
        "Bearer realm=\"stpt\""
    );
    let v1 = runner.post_json("/api/v1/plans", None, &plan).await;
    assert_eq!(v1.status, StatusCode::UNAUTHORIZED);
    let forged = runner
        .post_json("/tm_api/dry_run/", Some("stpt_forged"), &plan)
        .await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);
    let basic = runner
        .send(
            Method::POST,
            "/tm_api/dry_run/",
            &[
                ("content-type", "application/json"),
                ("authorization", "Basic YTpi"),
            ],
            Body::from(plan.to_string()),
        )
        .await;
    assert_eq!(basic.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        runner.get("/tm_api/machines/").await.json()["count"],
        0,
        "nothing stored"
    );

    let issued = lab
        .accounts
        .create_runner_token("fleet", &[])
        .await
        .unwrap();
    let created = runner
        .post_json("/tm_api/dry_run/", Some(&issued.secret), &plan)
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);

    lab.accounts
        .revoke_runner_token(issued.token.id)
        .await
        .unwrap();
    let revoked = runner
        .post_json("/tm_api/dry_run/", Some(&issued.secret), &plan)
        .await;
    assert_eq!(revoked.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        runner.get("/tm_api/machines/").await.json()["results"][0]["get_last_master_scenario_status"],
        "waiting"
    );
}

#[tokio::test]
async fn a_token_bound_to_machines_posts_only_for_them() {
    let lab = lab(HttpConfig::default());
    let mut runner = Client::new(&lab.app);
    let bound = lab
        .accounts
        .create_runner_token("rig 1", &["RIG-1".to_owned()])
        .await
        .unwrap();
    let any = lab
        .accounts
        .create_runner_token("fleet", &[])
        .await
        .unwrap();

    let other = runner
        .post_json("/tm_api/dry_run/", Some(&bound.secret), &plan_for("rig-2"))
        .await;
    assert_eq!(other.status, StatusCode::FORBIDDEN);
    assert_eq!(other.json()["error"]["code"], "forbidden");
    let own = runner
        .post_json("/api/v1/plans", Some(&bound.secret), &plan_for("rig-1"))
        .await;
    assert_eq!(own.status, StatusCode::CREATED, "{}", own.body);
    let theirs = runner
        .post_json("/api/v1/plans", Some(&any.secret), &plan_for("rig-2"))
        .await;
    assert_eq!(theirs.status, StatusCode::CREATED);
    let their_test = theirs.json()["scenarios"][0]["test_ids"][0]
        .as_i64()
        .unwrap();
    let our_test = own.json()["scenarios"][0]["test_ids"][0].as_i64().unwrap();

    let start = json!({"timestamp": "2026-11-24T13:02:01Z"});
    let by_id = runner
        .post_json(
            &format!("/api/v1/tests/{their_test}/start"),
            Some(&bound.secret),
            &start,
        )
        .await;
    assert_eq!(by_id.status, StatusCode::FORBIDDEN);
    let mixed = json!({"events": [
        {"test_id": our_test, "type": "test_start", "timestamp": "2026-11-24T13:02:01Z"},
        {"test_id": their_test, "type": "test_start", "timestamp": "2026-11-24T13:02:01Z"},
    ]});
    let batch = runner
        .post_json("/api/v1/events", Some(&bound.secret), &mixed)
        .await;
    assert_eq!(batch.status, StatusCode::FORBIDDEN, "{}", batch.body);
    let ours = runner
        .post_json(
            &format!("/api/v1/tests/{our_test}/start"),
            Some(&bound.secret),
            &start,
        )
        .await;
    assert_eq!(ours.status, StatusCode::ACCEPTED, "{}", ours.body);
}

#[tokio::test]
async fn open_ingestion_takes_the_seed_runner_unchanged() {
    let lab = lab(HttpConfig::default().with_ingest_access(IngestAccess::open()));
    let mut runner = Client::new(&lab.app);
    let plan: Value = serde_json::from_str(PLAN).unwrap();
    assert_eq!(
        runner
            .post_json("/tm_api/dry_run/", None, &plan)
            .await
            .status,
        StatusCode::CREATED
    );
    let events: Vec<Value> = serde_json::from_str(EVENTS).unwrap();
    for event in &events {
        let answer = runner
            .post_json(event["endpoint"].as_str().unwrap(), None, &event["body"])
            .await;
        assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.body);
    }
    // A token that is sent is still checked.
    let forged = runner
        .post_json("/tm_api/dry_run/", Some("stpt_forged"), &plan)
        .await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn tokenless_ingestion_from_trusted_networks_only() {
    let lab = lab(HttpConfig::default().with_ingest_access(IngestAccess::loopback()));
    let mut local = Client::new(&lab.app);
    local.address = Some("127.0.0.1:50000".parse().unwrap());
    let mut remote = Client::new(&lab.app);
    remote.address = Some("10.1.2.3:50000".parse().unwrap());
    let mut unknown = Client::new(&lab.app);
    let plan = plan_for("rig-1");
    assert_eq!(
        local
            .post_json("/tm_api/dry_run/", None, &plan)
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(
        remote
            .post_json("/tm_api/dry_run/", None, &plan)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        unknown
            .post_json("/tm_api/dry_run/", None, &plan)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn sign_in_sign_out_and_wrong_passwords() {
    let lab = lab(HttpConfig::default());
    lab.accounts
        .create_user("ada", None, "correct horse", Role::Admin)
        .await
        .unwrap();
    let mut browser = Client::new(&lab.app);

    let page = browser.get("/login/").await;
    assert_eq!(page.status, StatusCode::OK);
    let csrf_cookie = page
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("stpt_csrf="))
        .unwrap();
    assert!(
        csrf_cookie.contains("HttpOnly") && csrf_cookie.contains("SameSite=Strict"),
        "{csrf_cookie}"
    );

    let wrong = browser.sign_in("ada", "wrong horse").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("Wrong username or password."));
    assert!(!browser.cookies.contains_key("stpt_session"));
    let unknown = browser.sign_in("nobody", "correct horse").await;
    assert!(unknown.body.contains("Wrong username or password."));

    let signed_in = browser.sign_in("ADA", "correct horse").await;
    assert_eq!(signed_in.status, StatusCode::SEE_OTHER);
    assert_eq!(signed_in.location(), "/admin/");
    let session = signed_in
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("stpt_session="))
        .unwrap();
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Lax"),
        "{session}"
    );
    assert!(
        !session.contains("Secure"),
        "plain HTTP without configuration"
    );
    let home = browser.get("/").await;
    assert!(home.body.contains("class=\"who\">ada<"), "{}", home.body);

    // Signing out needs the form's token; then the session is gone.
    let csrf = home.csrf();
    let forged = browser.form("/logout/", &[("csrf_token", "x")]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let out = browser.form("/logout/", &[("csrf_token", &csrf)]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(!browser.cookies.contains_key("stpt_session"));
    assert!(!browser.get("/").await.body.contains("class=\"who\""));
    // The old cookie no longer works either.
    let secret = session
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("stpt_session=")
        .to_owned();
    assert!(lab.accounts.session(&secret).await.unwrap().is_none());

    // An external `next` is not followed.
    let page = browser.get("/login/?next=//evil.example/").await;
    assert!(
        page.body.contains("name=\"next\" value=\"/\""),
        "{}",
        page.body
    );
}

#[tokio::test]
async fn forms_without_the_csrf_token_are_refused() {
    let lab = lab(HttpConfig::default());
    lab.accounts
        .create_user("ada", None, "correct horse", Role::Admin)
        .await
        .unwrap();
    let mut browser = Client::new(&lab.app);
    let no_token = browser
        .form(
            "/login/",
            &[("username", "ada"), ("password", "correct horse")],
        )
        .await;
    assert_eq!(no_token.status, StatusCode::FORBIDDEN);
    assert!(!browser.cookies.contains_key("stpt_session"));
    // A token without its cookie (another site posting) fails too.
    let token = browser.get("/login/").await.csrf();
    let mut other_site = Client::new(&lab.app);
    let cross = other_site
        .form(
            "/login/",
            &[
                ("username", "ada"),
                ("password", "correct horse"),
                ("csrf_token", &token),
            ],
        )
        .await;
    assert_eq!(cross.status, StatusCode::FORBIDDEN);
    // Admin forms as well.
    browser.sign_in("ada", "correct horse").await;
    let create = browser
        .form("/admin/tokens", &[("name", "sneaky"), ("machines", "")])
        .await;
    assert_eq!(create.status, StatusCode::FORBIDDEN);
    assert!(lab.accounts.runner_tokens().await.unwrap().is_empty());
}

#[tokio::test]
async fn sessions_expire() {
    let lab = lab(HttpConfig::default());
    lab.accounts
        .create_user("ada", None, "correct horse", Role::Admin)
        .await
        .unwrap();
    let mut browser = Client::new(&lab.app);
    browser.sign_in("ada", "correct horse").await;
    assert_eq!(browser.get("/admin/").await.status, StatusCode::OK);
    lab.clock
        .advance(lab.accounts.session_ttl() - Duration::seconds(1));
    assert_eq!(browser.get("/admin/").await.status, StatusCode::OK);
    lab.clock.advance(Duration::seconds(2));
    let expired = browser.get("/admin/").await;
    assert_eq!(expired.status, StatusCode::SEE_OTHER);
    assert_eq!(expired.location(), "/login/?next=%2Fadmin%2F");
}

#[tokio::test]
async fn repeated_wrong_passwords_are_throttled() {
    let lab = lab(HttpConfig::default());
    lab.accounts
        .create_user("ada", None, "correct horse", Role::Admin)
        .await
        .unwrap();
    let mut attacker = Client::new(&lab.app);
    attacker.address = Some("10.9.9.9:40000".parse().unwrap());
    for _ in 0..5 {
        assert_eq!(
            attacker.sign_in("ada", "guess").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let throttled = attacker.sign_in("ada", "correct horse").await;
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(throttled.body.contains("Too many failed attempts"));
    // Someone else, elsewhere, signs in as usual.
    let mut colleague = Client::new(&lab.app);
    colleague.address = Some("10.1.1.1:40000".parse().unwrap());
    assert_eq!(
        colleague.sign_in("ada", "correct horse").await.status,
        StatusCode::SEE_OTHER
    );
}

/// A signed-in user changes their own password with the current one and the new one twice;
/// their other sessions end and this browser stays signed in.
#[tokio::test]
async fn signed_in_users_change_their_own_password() {
    let lab = lab(HttpConfig::default());
    lab.accounts
        .create_user("ada", None, "correct horse", Role::Viewer)
        .await
        .unwrap();
    let mut anonymous = Client::new(&lab.app);
    let refused = anonymous.get("/account/password/").await;
    assert_eq!(refused.status, StatusCode::SEE_OTHER);
    assert_eq!(refused.location(), "/login/?next=%2Faccount%2Fpassword%2F");
    let refused = anonymous
        .form(
            "/account/password/",
            &[
                ("current_password", "correct horse"),
                ("password", "battery staple"),
                ("password_again", "battery staple"),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::SEE_OTHER);
    assert!(refused.location().starts_with("/login/"));

    let mut browser = Client::new(&lab.app);
    browser.sign_in("ada", "correct horse").await;
    let mut elsewhere = Client::new(&lab.app);
    elsewhere.sign_in("ada", "correct horse").await;
    let home = browser.get("/").await;
    assert!(
        home.body.contains("href=\"/account/password/\""),
        "linked beside the name: {}",
        home.body
    );
    let page = browser.get("/account/password/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("name=\"current_password\""));
    let csrf = page.csrf();
    let change = |current: &'static str, new: &'static str, again: &'static str| {
        [
            ("current_password", current),
            ("password", new),
            ("password_again", again),
        ]
    };
    let unchanged = |lab: &Lab| {
        let accounts = lab.accounts.clone();
        async move {
            assert!(
                accounts
                    .sign_in("ada", "correct horse")
                    .await
                    .unwrap()
                    .is_some(),
                "the password is unchanged"
            );
        }
    };

    let no_csrf = browser
        .form(
            "/account/password/",
            &change("correct horse", "battery staple", "battery staple"),
        )
        .await;
    assert_eq!(no_csrf.status, StatusCode::FORBIDDEN);
    unchanged(&lab).await;
    let mut fields = change("correct horse", "battery staple", "battery stapler").to_vec();
    fields.push(("csrf_token", &csrf));
    let differ = browser.form("/account/password/", &fields).await;
    assert_eq!(differ.status, StatusCode::BAD_REQUEST);
    assert!(differ.body.contains("The two new passwords differ."));
    let mut fields = change("wrong horse", "battery staple", "battery staple").to_vec();
    fields.push(("csrf_token", &csrf));
    let wrong = browser.form("/account/password/", &fields).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("The current password is wrong."));
    let mut fields = change("correct horse", "short", "short").to_vec();
    fields.push(("csrf_token", &csrf));
    let short = browser.form("/account/password/", &fields).await;
    assert_eq!(short.status, StatusCode::BAD_REQUEST);
    assert!(
        short.body.contains("at least 8 characters"),
        "{}",
        short.body
    );
    unchanged(&lab).await;
    assert!(browser.get("/").await.body.contains("class=\"who\">ada<"));

    let old_session = browser.cookies["stpt_session"].clone();
    let mut fields = change("correct horse", "battery staple", "battery staple").to_vec();
    fields.push(("csrf_token", &csrf));
    let changed = browser.form("/account/password/", &fields).await;
    assert_eq!(changed.status, StatusCode::SEE_OTHER, "{}", changed.body);
    assert_eq!(changed.location(), "/account/password/?done=1");
    assert_ne!(
        browser.cookies["stpt_session"], old_session,
        "a new session"
    );
    let done = browser.get(changed.location()).await;
    assert!(
        done.body.contains("id=\"password-changed\""),
        "{}",
        done.body
    );
    assert!(
        done.body.contains("class=\"who\">ada<"),
        "this browser stays signed in"
    );
    assert!(
        !elsewhere.get("/").await.body.contains("class=\"who\""),
        "the other browser is signed out"
    );
    assert!(lab.accounts.session(&old_session).await.unwrap().is_none());
    assert!(
        lab.accounts
            .sign_in("ada", "correct horse")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        lab.accounts
            .sign_in("ada", "battery staple")
            .await
            .unwrap()
            .is_some()
    );
}

/// Someone at a signed-in browser cannot guess its user's password through the change form.
#[tokio::test]
async fn wrong_current_passwords_are_throttled() {
    let lab = lab(HttpConfig::default());
    lab.accounts
        .create_user("ada", None, "correct horse", Role::Viewer)
        .await
        .unwrap();
    let mut browser = Client::new(&lab.app);
    browser.sign_in("ada", "correct horse").await;
    let csrf = browser.get("/account/password/").await.csrf();
    let attempt = |current: &'static str| {
        [
            ("current_password", current),
            ("password", "battery staple"),
            ("password_again", "battery staple"),
        ]
    };
    for guess in 0..5 {
        let mut fields = attempt("guess").to_vec();
        fields.push(("csrf_token", &csrf));
        let answer = browser.form("/account/password/", &fields).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "guess {guess}");
    }
    let mut fields = attempt("correct horse").to_vec();
    fields.push(("csrf_token", &csrf));
    let throttled = browser.form("/account/password/", &fields).await;
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        throttled.body.contains("Try again in 15 minutes"),
        "{}",
        throttled.body
    );
    assert!(
        lab.accounts
            .sign_in("ada", "correct horse")
            .await
            .unwrap()
            .is_some(),
        "unchanged"
    );
}

/// From the admin page, an admin sets or clears a user's email and resets their password:
/// directly, or by emailing a link of the reset flow. Only admins may.
#[tokio::test]
async fn admins_set_emails_and_reset_passwords() {
    let lab = lab(HttpConfig::default());
    lab.accounts
        .create_user("ada", None, "correct horse", Role::Admin)
        .await
        .unwrap();
    let bob = lab
        .accounts
        .create_user("bob", None, "bob's password", Role::Viewer)
        .await
        .unwrap();
    let mut admin = Client::new(&lab.app);
    admin.sign_in("ada", "correct horse").await;
    let page = admin.get("/admin/").await;
    let csrf = page.csrf();
    for form in ["email", "password"] {
        let action = format!("action=\"/admin/users/{}/{form}\"", bob.id);
        assert!(page.body.contains(&action), "{action}: {}", page.body);
    }
    let email = format!("/admin/users/{}/email", bob.id);
    let password = format!("/admin/users/{}/password", bob.id);
    let reset_link = format!("/admin/users/{}/reset-link", bob.id);
    let bobs_email = || async { lab.accounts.user(bob.id).await.unwrap().unwrap().email };

    // The email: set, refused when malformed, cleared.
    let no_address = admin.form(&reset_link, &[("csrf_token", &csrf)]).await;
    assert_eq!(no_address.status, StatusCode::BAD_REQUEST);
    let set = admin
        .form(
            &email,
            &[("email", " bob@lab.example "), ("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(set.status, StatusCode::SEE_OTHER, "{}", set.body);
    assert_eq!(set.location(), "/admin/?done=email-changed#users");
    assert_eq!(bobs_email().await.as_deref(), Some("bob@lab.example"));
    assert!(
        admin
            .get("/admin/")
            .await
            .body
            .contains("value=\"bob@lab.example\"")
    );
    let bad = admin
        .form(
            &email,
            &[("email", "bob at the lab"), ("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(
        bad.body.contains("The email is not an email address."),
        "{}",
        bad.body
    );
    assert_eq!(bobs_email().await.as_deref(), Some("bob@lab.example"));
    let cleared = admin
        .form(&email, &[("email", ""), ("csrf_token", &csrf)])
        .await;
    assert_eq!(cleared.status, StatusCode::SEE_OTHER);
    assert_eq!(bobs_email().await, None);
    admin
        .form(
            &email,
            &[("email", "bob@lab.example"), ("csrf_token", &csrf)],
        )
        .await;

    // A password set directly: bob is signed out, the old one stops working.
    let mut bobs_browser = Client::new(&lab.app);
    bobs_browser.sign_in("bob", "bob's password").await;
    assert!(
        bobs_browser
            .get("/")
            .await
            .body
            .contains("class=\"who\">bob<")
    );
    let short = admin
        .form(&password, &[("password", "short"), ("csrf_token", &csrf)])
        .await;
    assert_eq!(short.status, StatusCode::BAD_REQUEST);
    let no_csrf = admin.form(&password, &[("password", "set by ada")]).await;
    assert_eq!(no_csrf.status, StatusCode::FORBIDDEN);
    let reset = admin
        .form(
            &password,
            &[("password", "set by ada"), ("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(reset.status, StatusCode::SEE_OTHER, "{}", reset.body);
    assert_eq!(reset.location(), "/admin/?done=password-set#users");
    assert!(!bobs_browser.get("/").await.body.contains("class=\"who\""));
    assert!(
        lab.accounts
            .sign_in("bob", "bob's password")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        lab.accounts
            .sign_in("bob", "set by ada")
            .await
            .unwrap()
            .is_some()
    );

    // A reset link, mailed as the reset flow mails it.
    let sent = admin.form(&reset_link, &[("csrf_token", &csrf)]).await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.body);
    assert_eq!(sent.location(), "/admin/?done=reset-link-sent#users");
    let mail = lab.next_mail().await;
    assert_eq!(mail.to, "bob@lab.example");
    assert!(
        mail.body.contains("An admin of stpt asked"),
        "{}",
        mail.body
    );
    let link = mail
        .body
        .lines()
        .find(|line| line.starts_with("https://stpt.lab.example/reset/"))
        .unwrap()
        .trim_start_matches("https://stpt.lab.example")
        .to_owned();
    let form = bobs_browser.get(&link).await;
    assert_eq!(form.status, StatusCode::OK);
    let chosen = bobs_browser
        .form(
            &link,
            &[
                ("password", "chosen by bob"),
                ("password_again", "chosen by bob"),
                ("csrf_token", &form.csrf()),
            ],
        )
        .await;
    assert_eq!(chosen.location(), "/reset/done/");
    assert!(
        lab.accounts
            .sign_in("bob", "chosen by bob")
            .await
            .unwrap()
            .is_some()
    );

    // Only admins: a viewer is refused, and changes nothing.
    bobs_browser.sign_in("bob", "chosen by bob").await;
    let bobs_csrf = bobs_browser.get("/").await.csrf();
    let ada = lab.accounts.user_by_name("ada").await.unwrap().unwrap();
    for (path, fields) in [
        ("email", vec![("email", "bob@evil.example")]),
        ("password", vec![("password", "taken over")]),
        ("reset-link", vec![]),
    ] {
        let mut fields = fields;
        fields.push(("csrf_token", &bobs_csrf));
        let refused = bobs_browser
            .form(&format!("/admin/users/{}/{path}", ada.id), &fields)
            .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{path}");
    }
    assert_eq!(
        lab.accounts.user(ada.id).await.unwrap().unwrap().email,
        None
    );
    assert!(
        lab.accounts
            .sign_in("ada", "correct horse")
            .await
            .unwrap()
            .is_some()
    );
    assert!(lab.outbox.0.lock().unwrap().is_empty(), "no email sent");
}

async fn request_reset(browser: &mut Client<'_>, login: &str) -> Answer {
    let csrf = browser.get("/password_reset/").await.csrf();
    browser
        .form(
            "/password_reset/",
            &[("login", login), ("csrf_token", &csrf)],
        )
        .await
}

/// The seed's reset paths answer: the request form (which posts), the "sent" and "complete"
/// pages, and a seed-emailed link shows the invalid-link page offering a new one.
#[tokio::test]
async fn the_seeds_reset_paths_work() {
    let lab = lab(HttpConfig::default());
    let mut browser = Client::new(&lab.app);
    let form = browser.get("/password-reset/").await;
    assert_eq!(form.status, StatusCode::OK);
    let csrf = form.csrf();
    let sent = browser
        .form(
            "/password-reset/",
            &[("login", "nobody@lab.example"), ("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER);
    for path in ["/password-reset/done/", "/password-reset-complete/"] {
        assert_eq!(browser.get(path).await.status, StatusCode::OK, "{path}");
    }
    let seed_link = browser
        .get("/password-reset-confirm/MQ/5a1-0123456789abcdef/")
        .await;
    assert_eq!(seed_link.status, StatusCode::NOT_FOUND);
    assert!(
        seed_link.body.contains("/password_reset/"),
        "offers a new link"
    );
}

#[tokio::test]
async fn password_reset_by_single_use_expiring_link() {
    let lab = lab(HttpConfig::default());
    lab.accounts
        .create_user(
            "ada",
            Some("ada@lab.example"),
            "correct horse",
            Role::Viewer,
        )
        .await
        .unwrap();
    let mut browser = Client::new(&lab.app);
    let unknown = request_reset(&mut browser, "nobody@lab.example").await;
    assert_eq!(
        unknown.location(),
        "/password_reset/done/",
        "same answer for unknown users"
    );
    let sent = request_reset(&mut browser, "ADA@lab.example").await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER);
    assert_eq!(sent.location(), "/password_reset/done/");
    assert!(
        browser
            .get("/password_reset/done/")
            .await
            .body
            .contains("reset-sent")
    );
    let mail = lab.next_mail().await;
    assert_eq!(mail.to, "ada@lab.example");
    assert!(
        lab.outbox.0.lock().unwrap().is_empty(),
        "one email: none for the unknown login"
    );
    let link = mail
        .body
        .lines()
        .find(|line| line.starts_with("https://stpt.lab.example/reset/"))
        .unwrap()
        .trim_start_matches("https://stpt.lab.example")
        .to_owned();

    let form = browser.get(&link).await;
    assert_eq!(form.status, StatusCode::OK);
    let csrf = form.csrf();
    let differ = browser
        .form(
            &link,
            &[
                ("password", "battery staple"),
                ("password_again", "battery stapler"),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(differ.status, StatusCode::BAD_REQUEST);
    let no_csrf = browser
        .form(
            &link,
            &[
                ("password", "battery staple"),
                ("password_again", "battery staple"),
            ],
        )
        .await;
    assert_eq!(no_csrf.status, StatusCode::FORBIDDEN);
    let done = browser
        .form(
            &link,
            &[
                ("password", "battery staple"),
                ("password_again", "battery staple"),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    assert_eq!(done.location(), "/reset/done/");
    assert!(
        browser
            .get("/reset/done/")
            .await
            .body
            .contains("reset-done")
    );

    // Used once: the link is dead, the new password works, the old one does not.
    let again = browser
        .form(
            &link,
            &[
                ("password", "third password"),
                ("password_again", "third password"),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert!(browser.get(&link).await.body.contains("reset-invalid"));
    assert!(
        lab.accounts
            .sign_in("ada", "battery staple")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        lab.accounts
            .sign_in("ada", "correct horse")
            .await
            .unwrap()
            .is_none()
    );

    // An unused link stops working after an hour.
    request_reset(&mut browser, "ada").await;
    let mail = lab.next_mail().await;
    let link = mail
        .body
        .lines()
        .find(|line| line.starts_with("https://"))
        .unwrap()
        .trim_start_matches("https://stpt.lab.example")
        .to_owned();
    lab.clock
        .advance(Accounts::DEFAULT_RESET_TTL + Duration::seconds(1));
    assert_eq!(browser.get(&link).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn reading_can_require_sign_in() {
    let lab = lab(HttpConfig::default().with_read_access(ReadAccess::SignedIn));
    lab.accounts
        .create_user("val", None, "viewer password", Role::Viewer)
        .await
        .unwrap();
    let issued = lab
        .accounts
        .create_runner_token("fleet", &[])
        .await
        .unwrap();
    let mut anonymous = Client::new(&lab.app);

    let page = anonymous.get("/machine/1/last?x=1").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(
        page.location(),
        "/login/?next=%2Fmachine%2F1%2Flast%3Fx%3D1"
    );
    for api in [
        "/tm_api/machines/",
        "/api/v1/machines",
        "/ws/machine/status/",
        "/openapi.json",
    ] {
        let answer = anonymous.get(api).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{api}");
    }
    assert_eq!(anonymous.get("/login/").await.status, StatusCode::OK);
    assert_eq!(
        anonymous.get("/password_reset/").await.status,
        StatusCode::OK
    );
    // Runners still post with their token.
    let created = anonymous
        .post_json("/tm_api/dry_run/", Some(&issued.secret), &plan_for("rig-1"))
        .await;
    assert_eq!(created.status, StatusCode::CREATED);

    let mut viewer = Client::new(&lab.app);
    let signed_in = viewer.sign_in("val", "viewer password").await;
    assert_eq!(signed_in.status, StatusCode::SEE_OTHER);
    assert_eq!(viewer.get("/").await.status, StatusCode::OK);
    assert_eq!(viewer.get("/tm_api/machines/").await.json()["count"], 1);
    // A viewer is not an admin.
    assert_eq!(viewer.get("/admin/").await.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn admins_create_and_revoke_runner_tokens_and_users() {
    let lab = lab(HttpConfig::default());
    lab.accounts
        .create_user("ada", None, "correct horse", Role::Admin)
        .await
        .unwrap();
    let mut anonymous = Client::new(&lab.app);
    assert_eq!(
        anonymous.get("/admin/").await.location(),
        "/login/?next=%2Fadmin%2F"
    );
    let mut admin = Client::new(&lab.app);
    admin.sign_in("ada", "correct horse").await;
    let page = admin.get("/admin/").await;
    assert_eq!(page.status, StatusCode::OK);
    let csrf = page.csrf();

    let created = admin
        .form(
            "/admin/tokens",
            &[
                ("name", "rig 1 runner"),
                ("machines", "rig-1\r\n\r\n"),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    let marker = "id=\"token-secret\" class=\"secret\">";
    let start = created.body.find(marker).unwrap() + marker.len();
    let secret = created.body[start..start + created.body[start..].find('<').unwrap()].to_owned();
    assert!(secret.starts_with("stpt_"));
    let mut runner = Client::new(&lab.app);
    assert_eq!(
        runner
            .post_json("/tm_api/dry_run/", Some(&secret), &plan_for("rig-1"))
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(
        runner
            .post_json("/tm_api/dry_run/", Some(&secret), &plan_for("rig-2"))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let listed = admin.get("/admin/").await;
    assert!(listed.body.contains("rig 1 runner") && !listed.body.contains(&secret));

    let id = lab.accounts.runner_tokens().await.unwrap()[0].id;
    let revoked = admin
        .form(
            &format!("/admin/tokens/{id}/revoke"),
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(revoked.location(), "/admin/?done=token-revoked");
    assert_eq!(
        runner
            .post_json("/tm_api/dry_run/", Some(&secret), &plan_for("rig-1"))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );

    let user = admin
        .form(
            "/admin/users",
            &[
                ("username", "val"),
                ("email", ""),
                ("password", "viewer password"),
                ("role", "viewer"),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(user.location(), "/admin/?done=user-created");
    let short = admin
        .form(
            "/admin/users",
            &[
                ("username", "bob"),
                ("password", "short"),
                ("role", "viewer"),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(short.status, StatusCode::BAD_REQUEST);
    assert!(
        short.body.contains("at least 8 characters"),
        "{}",
        short.body
    );
    let me = lab.accounts.user_by_name("ada").await.unwrap().unwrap();
    let last_admin = admin
        .form(
            &format!("/admin/users/{}/delete", me.id),
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(last_admin.status, StatusCode::CONFLICT);
    assert_eq!(lab.accounts.users().await.unwrap().len(), 2);
}

#[tokio::test]
async fn cookies_are_secure_when_configured_or_behind_https() {
    let lab_secure = lab(HttpConfig::default().with_secure_cookies(true));
    let mut browser = Client::new(&lab_secure.app);
    let page = browser.get("/login/").await;
    assert!(page.set_cookies().iter().all(|c| c.contains("; Secure")));

    let lab_plain = lab(HttpConfig::default());
    let mut proxied = Client::new(&lab_plain.app);
    let page = proxied
        .send(
            Method::GET,
            "/login/",
            &[("x-forwarded-proto", "https")],
            Body::empty(),
        )
        .await;
    assert!(page.set_cookies().iter().all(|c| c.contains("; Secure")));
}

#[tokio::test]
async fn only_admins_delete_runs_and_machines() {
    let lab = lab(HttpConfig::default().with_ingest_access(IngestAccess::open()));
    lab.accounts
        .create_user("ada", None, "correct horse", Role::Admin)
        .await
        .unwrap();
    lab.accounts
        .create_user("val", None, "viewer password", Role::Viewer)
        .await
        .unwrap();
    let mut runner = Client::new(&lab.app);
    for machine in ["rig-1", "rig-1", "rig-2"] {
        let created = runner
            .post_json("/tm_api/dry_run/", None, &plan_for(machine))
            .await;
        assert_eq!(created.status, StatusCode::CREATED);
    }

    let mut viewer = Client::new(&lab.app);
    viewer.sign_in("val", "viewer password").await;
    let page = viewer.get("/machine/1").await;
    assert!(
        !page.body.contains("/admin/machines/1/delete"),
        "no button for viewers"
    );
    let refused = viewer
        .form("/admin/runs/2/delete", &[("csrf_token", &page.csrf())])
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let mut anonymous = Client::new(&lab.app);
    let sent_away = anonymous.form("/admin/machines/1/delete", &[]).await;
    assert_eq!(sent_away.status, StatusCode::SEE_OTHER);
    assert_eq!(runner.get("/api/v1/runs/2").await.status, StatusCode::OK);

    let mut admin = Client::new(&lab.app);
    admin.sign_in("ada", "correct horse").await;
    let page = admin.get("/machine/run_data/2").await;
    assert!(page.body.contains("/admin/runs/2/delete"), "{}", page.body);
    let csrf = page.csrf();
    assert_eq!(
        admin.form("/admin/runs/2/delete", &[]).await.status,
        StatusCode::FORBIDDEN,
        "no CSRF token"
    );
    let deleted = admin
        .form("/admin/runs/2/delete", &[("csrf_token", &csrf)])
        .await;
    assert_eq!(deleted.status, StatusCode::SEE_OTHER);
    assert_eq!(deleted.location(), "/machine/1");
    assert_eq!(
        runner.get("/api/v1/runs/2").await.status,
        StatusCode::NOT_FOUND
    );
    let machine = runner.get("/api/v1/machines/1").await.json();
    assert_eq!(machine["latest_run"], 1);

    let page = admin.get("/machine/2").await;
    assert!(page.body.contains("/admin/machines/2/delete"));
    let deleted = admin
        .form("/admin/machines/2/delete", &[("csrf_token", &csrf)])
        .await;
    assert_eq!(deleted.location(), "/");
    assert_eq!(
        runner.get("/api/v1/machines/2").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(runner.get("/tm_api/machines/").await.json()["count"], 1);
}

/// Collects what the server logs, for the tests that read it.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuffer {
    /// What the server logs from now on (with the other tests of this binary's logs: a
    /// process-wide subscriber, as callsites cache a per-thread one's interest unreliably).
    fn capture() -> Self {
        static GLOBAL: std::sync::OnceLock<LogBuffer> = std::sync::OnceLock::new();
        GLOBAL
            .get_or_init(|| {
                let buffer = LogBuffer::default();
                let writer = buffer.clone();
                let subscriber = tracing_subscriber::fmt()
                    .with_writer(move || writer.clone())
                    .with_ansi(false)
                    .with_max_level(tracing::Level::INFO)
                    .finish();
                tracing::subscriber::set_global_default(subscriber).unwrap();
                buffer
            })
            .clone()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Issue #19, defects 1 and 11: a sign-in's username is kept (throttle key, page, log)
/// only up to a bound, and logged escaped, so no one can forge log lines or pin memory.
#[tokio::test]
async fn usernames_are_kept_and_logged_bounded_and_escaped() {
    let lab = lab(HttpConfig::default());
    let logs = LogBuffer::capture();
    let mut attacker = Client::new(&lab.app);
    attacker.address = Some("10.9.9.9:40000".parse().unwrap());
    let forged = format!(
        "ada\n2026-11-24T15:30:00.000000Z  INFO stpt_http: signed in username=root\u{1b}[2J{}",
        "x".repeat(40_000)
    );
    let answer = attacker.sign_in(&forged, "guess guess").await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(
        answer.body.len() < 20_000,
        "the page echoes a bounded username: {} bytes",
        answer.body.len()
    );
    let logged = logs.text();
    assert!(logged.contains("failed sign-in"), "{logged}");
    assert!(!logged.contains('\u{1b}'), "{logged}");
    assert!(
        !logged.contains("\n2026-11-24T15:30:00.000000Z  INFO stpt_http: signed in"),
        "a forged line: {logged}"
    );
    assert!(
        logged.lines().all(|line| line.len() < 1_000),
        "bounded lines: {logged}"
    );

    // A form far larger than any sign-in is refused before it is read.
    let huge = "x".repeat(1_500_000);
    let refused = attacker
        .form("/login/", &[("username", &huge), ("password", "guess")])
        .await;
    assert_eq!(refused.status, StatusCode::PAYLOAD_TOO_LARGE);
}

/// Issue #19, defect 2: failures that cost nothing (passwords too long to be anyone's,
/// refused without hashing) are not counted, so they cannot fill the throttle's table.
#[tokio::test]
async fn overlong_passwords_are_refused_without_being_counted() {
    let lab = lab(HttpConfig::default());
    lab.accounts
        .create_user("ada", None, "correct horse", Role::Admin)
        .await
        .unwrap();
    let mut browser = Client::new(&lab.app);
    browser.address = Some("10.9.9.9:40000".parse().unwrap());
    let overlong = "p".repeat(stpt_core::accounts::MAX_PASSWORD_BYTES + 1);
    for _ in 0..10 {
        let answer = browser.sign_in("ada", &overlong).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        assert!(answer.body.contains("Wrong username or password."));
    }
    assert_eq!(
        browser.sign_in("ada", "correct horse").await.status,
        StatusCode::SEE_OTHER
    );
}

/// Issue #19, defects 3 and 4: only a path on this server is followed after sign-in;
/// tabs, newlines, backslashes and other control characters (which browsers drop or read
/// as `/`) never lead elsewhere, nor fail the request.
#[tokio::test]
async fn next_after_sign_in_stays_on_this_server() {
    let lab = lab(HttpConfig::default());
    lab.accounts
        .create_user("ada", None, "correct horse", Role::Admin)
        .await
        .unwrap();
    let hostile = [
        "/%09/evil.example/",
        "/%0A/evil.example/",
        "/%0D/evil.example/",
        "/%5Cevil.example/",
        "/%5C%5Cevil.example/",
        "%5C%5Cevil.example/",
        "/%09%5Cevil.example/",
        "%2F%2Fevil.example/",
        "/%0B",
        "/%00",
        "/%7F",
        "/%0D%0ASet-Cookie:%20x=1",
        "/%E2%80%AEelpmaxe.live",
        "https://evil.example/",
        "/%20/evil.example/",
    ];
    for next in hostile {
        let mut browser = Client::new(&lab.app);
        let page = browser.get(&format!("/login/?next={next}")).await;
        assert_eq!(page.status, StatusCode::OK, "{next}");
        assert!(
            page.body.contains("name=\"next\" value=\"/\""),
            "{next}: {}",
            page.body
        );
        let csrf = page.csrf();
        let decoded: String =
            serde_urlencoded::from_str::<Vec<(String, String)>>(&format!("next={next}"))
                .unwrap()
                .remove(0)
                .1;
        let signed_in = browser
            .form(
                "/login/",
                &[
                    ("username", "ada"),
                    ("password", "correct horse"),
                    ("csrf_token", &csrf),
                    ("next", &decoded),
                ],
            )
            .await;
        assert_eq!(signed_in.status, StatusCode::SEE_OTHER, "{next}");
        assert_eq!(signed_in.location(), "/", "{next}");
        // Already signed in: the login page sends the browser on at once.
        let again = browser.get(&format!("/login/?next={next}")).await;
        assert_eq!(again.status, StatusCode::SEE_OTHER, "{next}");
        assert_eq!(again.location(), "/", "{next}");
    }
    let mut browser = Client::new(&lab.app);
    let page = browser.get("/login/?next=%2Fmachine%2F3%3Fpage%3D2").await;
    assert!(
        page.body
            .contains("name=\"next\" value=\"/machine/3?page=2\""),
        "{}",
        page.body
    );
}

fn big_name(chars: usize) -> String {
    "n".repeat(chars)
}

/// Issue #19, defect 9: an event of a batch is checked exactly as a single event: lengths,
/// NUL characters and the machine name, with the field named within the batch.
#[tokio::test]
async fn batch_events_are_validated_as_single_events() {
    let lab = lab(HttpConfig::default().with_ingest_access(IngestAccess::open()));
    let mut runner = Client::new(&lab.app);
    let created = runner
        .post_json("/api/v1/plans", None, &plan_for("rig-1"))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let event = |machine: &str, path: &str, name: &str| {
        json!({"events": [
            {"type": "test_start", "machine_name": "rig-1", "file_path": "/t", "file_name": "t.py", "timestamp": "2026-11-24T13:02:01Z"},
            {"type": "test_start", "machine_name": machine, "file_path": path, "file_name": name, "timestamp": "2026-11-24T13:02:01Z"},
        ]})
    };
    let long_path = big_name(stpt_core::MAX_PATH_CHARS + 1);
    let long_name = big_name(stpt_core::MAX_NAME_CHARS + 1);
    for (body, field) in [
        (event("rig-1", &long_path, "t.py"), "events[1].file_path"),
        (event("rig-1", "/t", &long_name), "events[1].file_name"),
        (event("rig-1", "/t\0x", "t.py"), "events[1].file_path"),
        (event("rig-1", "/t", "t\0.py"), "events[1].file_name"),
        (
            event("rig-\u{200B}1", "/t", "t.py"),
            "events[1].machine_name",
        ),
        (event(&long_name, "/t", "t.py"), "events[1].machine_name"),
    ] {
        let answer = runner.post_json("/api/v1/events", None, &body).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{field}: {}",
            answer.body
        );
        assert_eq!(answer.json()["error"]["field"], field, "{}", answer.body);
    }
    let machines = runner.get("/api/v1/machines").await.json();
    assert_eq!(
        machines["items"][0]["status"], "waiting",
        "nothing was applied"
    );
}

/// Machine names that would look like another machine's are refused with a clear `400`
/// on every ingestion path, never silently changed.
#[tokio::test]
async fn look_alike_machine_names_are_refused() {
    let lab = lab(HttpConfig::default().with_ingest_access(IngestAccess::open()));
    let mut runner = Client::new(&lab.app);
    for name in [
        " rig-1",
        "rig-1\u{200B}",
        "rig\u{202E}1-",
        "rig-1\n",
        "Ju\u{0308}rgen",
    ] {
        for path in ["/tm_api/dry_run/", "/api/v1/plans"] {
            let answer = runner.post_json(path, None, &plan_for(name)).await;
            assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{name:?} {path}");
            assert_eq!(
                answer.json()["error"]["field"],
                "machine_name",
                "{}",
                answer.body
            );
        }
        let start = json!({"machine_name": name, "file_path": "/t", "file_name": "t.py"});
        let answer = runner.post_json("/tm_api/test_start/", None, &start).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{name:?}");
    }
    assert_eq!(runner.get("/api/v1/machines").await.json()["total"], 0);
}

/// A mailer that never finishes sending, like an SMTP server that does not answer.
#[derive(Debug, Default)]
struct StuckMailer;

#[async_trait]
impl Mailer for StuckMailer {
    async fn send(&self, _mail: Mail) -> Result<(), BoxError> {
        std::future::pending().await
    }
}

/// Issue #19, defect 10: a reset request is answered before the store write and the mail,
/// so how long it takes does not tell whether an account matched.
#[tokio::test]
async fn reset_requests_are_answered_before_the_mail_is_sent() {
    let store = Arc::new(MemoryStore::new());
    let tracker = Tracker::new(Arc::clone(&store) as _, Arc::new(InProcessBus::new()));
    let accounts = Accounts::new(store);
    accounts
        .create_user(
            "ada",
            Some("ada@lab.example"),
            "correct horse",
            Role::Viewer,
        )
        .await
        .unwrap();
    let config = HttpConfig::default()
        .with_mailer(Arc::new(StuckMailer))
        .with_public_url("https://stpt.lab.example")
        .with_accounts(accounts);
    let app = stpt_http::router(tracker, &config);
    let mut browser = Client::new(&app);
    let answer = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        request_reset(&mut browser, "ada"),
    )
    .await
    .expect("answered although the mail is not sent yet");
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    assert_eq!(answer.location(), "/password_reset/done/");
}

/// Issue #19, defect 12, and the headers of JSON answers: every error under `/api/` and
/// `/tm_api/` is the JSON envelope, `405`s and path rejections included, and JSON is
/// `nosniff` and `no-store`.
#[tokio::test]
async fn api_errors_are_always_json() {
    let lab = lab(HttpConfig::default().with_ingest_access(IngestAccess::open()));
    let mut client = Client::new(&lab.app);
    let cases = [
        (
            Method::DELETE,
            "/api/v1/runs/1",
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (Method::GET, "/api/v1/plans", StatusCode::METHOD_NOT_ALLOWED),
        (
            Method::GET,
            "/tm_api/dry_run/",
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            Method::PUT,
            "/tm_api/machines/",
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (Method::GET, "/api/v1/runs/%FF", StatusCode::BAD_REQUEST),
        (Method::GET, "/tm_api/test/%FF%FE/", StatusCode::BAD_REQUEST),
        (Method::GET, "/api/v1/runs/abc", StatusCode::BAD_REQUEST),
    ];
    for (method, path, status) in cases {
        let answer = client.send(method.clone(), path, &[], Body::empty()).await;
        assert_eq!(answer.status, status, "{method} {path}: {}", answer.body);
        assert_eq!(
            answer.headers[header::CONTENT_TYPE],
            "application/json",
            "{method} {path}"
        );
        let code = answer.json()["error"]["code"].clone();
        assert!(code.is_string(), "{method} {path}: {}", answer.body);
        assert_eq!(answer.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(answer.headers[header::CACHE_CONTROL], "no-store");
        if status == StatusCode::METHOD_NOT_ALLOWED {
            assert_eq!(code, "method_not_allowed");
            assert!(
                answer.headers.contains_key(header::ALLOW),
                "{method} {path}"
            );
        }
    }
    let ok = client.get("/api/v1/machines").await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(ok.headers[header::CACHE_CONTROL], "no-store");
    // The seed's own answers keep their shape.
    assert!(client.get("/tm_api/machines/").await.json()["count"].is_number());
}

/// Issue #19, defect 6 (the library's part): a body declared larger than the limit is
/// refused at once, before it arrives.
#[tokio::test]
async fn an_oversized_content_length_is_refused_before_the_body_arrives() {
    let lab = lab(HttpConfig::default()
        .with_ingest_access(IngestAccess::open())
        .with_body_limit(1024));
    for path in ["/tm_api/dry_run/", "/api/v1/events", "/login/"] {
        let never_sent = Body::from_stream(futures_util::stream::pending::<
            Result<axum::body::Bytes, std::io::Error>,
        >());
        let request = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CONTENT_LENGTH, "104857600")
            .body(never_sent)
            .unwrap();
        let response = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            lab.app.clone().oneshot(request),
        )
        .await
        .expect("refused without waiting for the body")
        .unwrap();
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE, "{path}");
    }
}

/// Form posts and socket upgrades from another site are refused; programs that send no
/// browser headers, and this server's own pages, pass.
#[tokio::test]
async fn cross_site_form_posts_and_socket_upgrades_are_refused() {
    let lab = lab(HttpConfig::default());
    lab.accounts
        .create_user("ada", None, "correct horse", Role::Admin)
        .await
        .unwrap();
    let mut browser = Client::new(&lab.app);
    let csrf = browser.get("/login/").await.csrf();
    let fields = serde_urlencoded::to_string([
        ("username", "ada"),
        ("password", "correct horse"),
        ("csrf_token", csrf.as_str()),
    ])
    .unwrap();
    let form = [
        ("content-type", "application/x-www-form-urlencoded"),
        ("host", "stpt.lab.example"),
    ];
    for hostile in [
        [("origin", "https://evil.example")],
        [("origin", "null")],
        [("sec-fetch-site", "cross-site")],
    ] {
        let headers: Vec<(&str, &str)> = form.iter().chain(hostile.iter()).copied().collect();
        let answer = browser
            .send(
                Method::POST,
                "/login/",
                &headers,
                Body::from(fields.clone()),
            )
            .await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{hostile:?}");
        assert!(!browser.cookies.contains_key("stpt_session"));
    }
    let upgrade = [
        ("connection", "upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("host", "stpt.lab.example"),
        ("origin", "https://evil.example"),
    ];
    let socket = browser
        .send(Method::GET, "/ws/machine/status/", &upgrade, Body::empty())
        .await;
    assert_eq!(socket.status, StatusCode::FORBIDDEN);
    assert_eq!(socket.json()["error"]["code"], "forbidden");

    let own: Vec<(&str, &str)> = form
        .iter()
        .copied()
        .chain([
            ("origin", "http://stpt.lab.example"),
            ("sec-fetch-site", "same-origin"),
        ])
        .collect();
    let answer = browser
        .send(Method::POST, "/login/", &own, Body::from(fields.clone()))
        .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
}

/// Naive runner timestamps are read in the server's zone, then in the zone an admin gives the
/// machine on the admin page (CSRF-checked); timestamps with an offset keep it.
#[tokio::test]
async fn naive_runner_times_are_read_in_the_servers_then_the_machines_zone() {
    let lab = lab_reading_naive_times_in(
        HttpConfig::default().with_ingest_access(IngestAccess::open()),
        "Europe/Warsaw".parse().unwrap(),
    );
    let mut runner = Client::new(&lab.app);
    let plan = json!({"machine_name": "rig-tz", "timestamp": "2026-11-24 14:00:00.123456",
        "master_scenario": {"file_path": "/m", "file_name": "master.py", "script": null,
            "scenarios": [{"file_path": "/s", "file_name": "s.py", "script": null,
                "tests": [{"file_path": "/t", "file_name": "a.py", "script": null},
                          {"file_path": "/t", "file_name": "b.py", "script": null}]}]}});
    let created = runner.post_json("/api/v1/plans", None, &plan).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let run_id = created.json()["run_id"].as_i64().unwrap();
    let machine_id = created.json()["machine_id"].as_i64().unwrap();
    let event = |file: &str, key: &str, time: &str| {
        let mut body = json!({"machine_name": "rig-tz", "file_path": "/t", "file_name": file});
        body[key] = json!(time);
        if key == "timestamp_stop" {
            body["status"] = json!("passed");
        }
        body
    };
    // Warsaw in November is UTC+1.
    for (endpoint, body) in [
        (
            "/tm_api/test_start/",
            event("a.py", "timestamp_start", "2026-11-24 14:00:01"),
        ),
        (
            "/tm_api/test_stop/",
            event("a.py", "timestamp_stop", "2026-11-24T13:00:02Z"),
        ),
    ] {
        let answer = runner.post_json(endpoint, None, &body).await;
        assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.body);
    }

    lab.accounts
        .create_user("ada", None, "correct horse", Role::Admin)
        .await
        .unwrap();
    let mut admin = Client::new(&lab.app);
    admin.sign_in("ada", "correct horse").await;
    let page = admin.get("/admin/").await;
    assert!(page.body.contains("rig-tz"), "{}", page.body);
    let csrf = page.csrf();
    let uri = format!("/admin/machines/{machine_id}/timezone");
    let unknown = admin
        .form(&uri, &[("timezone", "Asia/Tokio"), ("csrf_token", &csrf)])
        .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert!(unknown.body.contains("IANA"), "{}", unknown.body);
    let forged = admin
        .form(&uri, &[("timezone", "Asia/Tokyo"), ("csrf_token", "x")])
        .await;
    assert_ne!(forged.status, StatusCode::SEE_OTHER);
    let set = admin
        .form(&uri, &[("timezone", "Asia/Tokyo"), ("csrf_token", &csrf)])
        .await;
    assert_eq!(set.status, StatusCode::SEE_OTHER, "{}", set.body);
    let machines = runner.get("/api/v1/machines").await.json();
    assert_eq!(
        machines["items"][0]["runner_timezone"], "Asia/Tokyo",
        "{machines}"
    );
    let machine_page = runner.get(&format!("/machine/{machine_id}")).await;
    assert!(
        machine_page.body.contains("Asia/Tokyo"),
        "{}",
        machine_page.body
    );

    // Tokyo is UTC+9: the next naive event is read there.
    let answer = runner
        .post_json(
            "/tm_api/test_start/",
            None,
            &event("b.py", "timestamp_start", "2026-11-24 22:00:03"),
        )
        .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.body);
    let run = runner.get(&format!("/api/v1/runs/{run_id}")).await.json();
    assert_eq!(
        run["summary"]["timestamp"], "2026-11-24T13:00:00.123456Z",
        "{run}"
    );
    let tests = &run["scenarios"][0]["tests"];
    assert_eq!(tests[0]["timestamp_start"], "2026-11-24T13:00:01Z", "{run}");
    assert_eq!(tests[0]["timestamp_stop"], "2026-11-24T13:00:02Z", "{run}");
    assert_eq!(tests[1]["timestamp_start"], "2026-11-24T13:00:03Z", "{run}");
}

/// An admin gives a machine its own liveness thresholds and retention policy on the admin
/// page (the server's shown beside), and keeps a run from its page; each form is CSRF-checked,
/// a bad value is refused with its reason and changes nothing, and the API shows the result.
#[tokio::test]
async fn admins_set_machine_thresholds_retention_and_kept_runs() {
    let lab = lab(HttpConfig::default().with_ingest_access(IngestAccess::open()));
    let mut runner = Client::new(&lab.app);
    let plan = json!({"machine_name": "rig-7", "timestamp": "2026-11-24 15:00:00",
        "master_scenario": {"file_path": "/m", "file_name": "master.py", "script": null,
            "scenarios": [{"file_path": "/s", "file_name": "s.py", "script": null,
                "tests": [{"file_path": "/t", "file_name": "a.py", "script": null}]}]}});
    let created = runner.post_json("/api/v1/plans", None, &plan).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let run_id = created.json()["run_id"].as_i64().unwrap();
    let machine_id = created.json()["machine_id"].as_i64().unwrap();
    let machine = runner
        .get(&format!("/api/v1/machines/{machine_id}"))
        .await
        .json();
    assert_eq!(
        machine["timeouts"],
        json!({"quiet_after_secs": null, "offline_after_secs": null}),
        "{machine}"
    );
    assert_eq!(machine["retention"], Value::Null, "{machine}");

    lab.accounts
        .create_user("ada", None, "correct horse", Role::Admin)
        .await
        .unwrap();
    let mut admin = Client::new(&lab.app);
    admin.sign_in("ada", "correct horse").await;
    let page = admin.get("/admin/").await;
    assert!(page.body.contains("2m (server)"), "{}", page.body);
    assert!(page.body.contains("10m (server)"), "{}", page.body);
    assert!(
        page.body.contains("server&#x27;s (every run)")
            || page.body.contains("server's (every run)"),
        "{}",
        page.body
    );
    let csrf = page.csrf();

    let timeouts = format!("/admin/machines/{machine_id}/timeouts");
    for (quiet, offline, reason) in [
        ("soon", "", "duration"),
        ("0s", "", "1 second"),
        ("20m", "5m", "longer than the offline"),
    ] {
        let refused = admin
            .form(
                &timeouts,
                &[
                    ("quiet_after", quiet),
                    ("offline_after", offline),
                    ("csrf_token", &csrf),
                ],
            )
            .await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{quiet} {offline}");
        assert!(refused.body.contains(reason), "{}", refused.body);
    }
    let forged = admin
        .form(&timeouts, &[("offline_after", "1m"), ("csrf_token", "x")])
        .await;
    assert_ne!(forged.status, StatusCode::SEE_OTHER);
    let set = admin
        .form(
            &timeouts,
            &[
                ("quiet_after", ""),
                ("offline_after", "1h 30m"),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(set.status, StatusCode::SEE_OTHER, "{}", set.body);

    let retention = format!("/admin/machines/{machine_id}/retention");
    let refused = admin
        .form(
            &retention,
            &[("policy", "own"), ("keep_days", "0"), ("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    let refused = admin
        .form(
            &retention,
            &[
                ("policy", "own"),
                ("keep_runs", "many"),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(refused.body.contains("whole number"), "{}", refused.body);
    let set = admin
        .form(
            &retention,
            &[
                ("policy", "own"),
                ("keep_days", ""),
                ("keep_runs", "500"),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(set.status, StatusCode::SEE_OTHER, "{}", set.body);
    let machine = runner
        .get(&format!("/api/v1/machines/{machine_id}"))
        .await
        .json();
    assert_eq!(
        machine["timeouts"],
        json!({"quiet_after_secs": null, "offline_after_secs": 5400}),
        "{machine}"
    );
    assert_eq!(
        machine["retention"],
        json!({"keep_days": null, "keep_runs_per_machine": 500}),
        "{machine}"
    );
    let page = admin.get("/admin/").await;
    assert!(page.body.contains("value=\"1h 30m\""), "{}", page.body);
    assert!(page.body.contains("value=\"500\""), "{}", page.body);

    // Keeping a run, from its page.
    let run_page = admin.get(&format!("/machine/run_data/{run_id}")).await;
    assert!(run_page.body.contains("Keep this run"), "{}", run_page.body);
    let keep = format!("/admin/runs/{run_id}/keep");
    let refused = admin
        .form(&keep, &[("kept", "maybe"), ("csrf_token", &csrf)])
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    let kept = admin
        .form(&keep, &[("kept", "true"), ("csrf_token", &csrf)])
        .await;
    assert_eq!(kept.status, StatusCode::SEE_OTHER, "{}", kept.body);
    assert_eq!(kept.location(), format!("/machine/run_data/{run_id}"));
    let run = runner.get(&format!("/api/v1/runs/{run_id}")).await.json();
    assert_eq!(run["summary"]["kept"], true, "{run}");
    let run_page = admin.get(&format!("/machine/run_data/{run_id}")).await;
    assert!(run_page.body.contains("Stop keeping"), "{}", run_page.body);
    // Someone not signed in is sent to sign in, and nothing changes.
    let anonymous = runner
        .form(&keep, &[("kept", "false"), ("csrf_token", &csrf)])
        .await;
    assert!(
        anonymous.location().contains("/login/"),
        "{}",
        anonymous.location()
    );
    let run = runner.get(&format!("/api/v1/runs/{run_id}")).await.json();
    assert_eq!(run["summary"]["kept"], true, "{run}");

    // Back to the server's.
    let cleared = admin
        .form(
            &timeouts,
            &[
                ("quiet_after", ""),
                ("offline_after", ""),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(cleared.status, StatusCode::SEE_OTHER);
    let cleared = admin
        .form(&retention, &[("policy", "server"), ("csrf_token", &csrf)])
        .await;
    assert_eq!(cleared.status, StatusCode::SEE_OTHER);
    let machine = runner
        .get(&format!("/api/v1/machines/{machine_id}"))
        .await
        .json();
    assert_eq!(
        machine["timeouts"]["offline_after_secs"],
        Value::Null,
        "{machine}"
    );
    assert_eq!(machine["retention"], Value::Null, "{machine}");
}
