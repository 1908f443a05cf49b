//! Embedding stpt in a host app: every router merged under a prefix into an app with its own
//! state and fallback, and the host's own identity deciding who is an admin. Through the
//! router (oneshot) and over a real socket (WebSockets).

#![allow(clippy::unwrap_used)] // Tests fail loudly by design.

mod support;

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use axum::routing::get;
use futures_util::StreamExt;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use stpt_core::accounts::Accounts;
use stpt_http::{HttpConfig, IdentityProvider, IngestAccess, ReadAccess, Viewer};
use stpt_store_memory::MemoryStore;
use tokio_tungstenite::tungstenite::Message;
use tower::ServiceExt;

/// Where the host mounts stpt.
const PREFIX: &str = "/lab/stpt";

/// The host's own state.
#[derive(Debug, Clone)]
struct Lab {
    name: &'static str,
}

async fn lab_home(State(lab): State<Lab>) -> String {
    format!("home of {}", lab.name)
}

async fn lab_fallback(State(lab): State<Lab>) -> (StatusCode, String) {
    (
        StatusCode::NOT_FOUND,
        format!("{} has no such page", lab.name),
    )
}

/// The host app: its own routes, state and fallback, and `stpt` nested at [`PREFIX`].
fn host(stpt: Router<Lab>) -> Router {
    Router::new()
        .route("/", get(lab_home))
        .nest(PREFIX, stpt)
        .fallback(lab_fallback)
        .with_state(Lab { name: "the lab" })
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
}

async fn send(app: &Router, request: Request<Body>) -> Answer {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

async fn get_as(app: &Router, uri: &str, headers: &[(&str, &str)]) -> Answer {
    let mut request = Request::get(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    send(app, request.body(Body::empty()).unwrap()).await
}

async fn post_json(app: &Router, uri: &str, body: &Value, headers: &[(&str, &str)]) -> Answer {
    let mut request = Request::post(uri).header(header::CONTENT_TYPE, "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    send(app, request.body(Body::from(body.to_string())).unwrap()).await
}

fn plan() -> Value {
    support::small_plan("rig-7", "2026-11-24 13:00:00")
}

#[tokio::test]
async fn every_router_merges_under_a_prefix_into_a_host_with_its_own_fallback() {
    let tracker = support::tracker();
    let config = HttpConfig::default()
        .with_accounts(Accounts::new(Arc::new(MemoryStore::new())))
        .with_ingest_access(IngestAccess::open());
    // The host merges the three routers itself; none may bring a fallback, or this panics.
    let stpt = Router::new()
        .merge(stpt_http::api_router(tracker.clone(), &config))
        .merge(stpt_http::pages_router(tracker.clone(), &config))
        .merge(stpt_http::sockets_router(tracker.clone(), &config));
    let app = host(stpt);

    // The host's own routes, with the host's state.
    let home = get_as(&app, "/", &[]).await;
    assert_eq!(
        (home.status, home.body.as_str()),
        (StatusCode::OK, "home of the lab")
    );

    // stpt's routes under the prefix.
    let created = post_json(&app, &format!("{PREFIX}/tm_api/dry_run/"), &plan(), &[]).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let machines = get_as(&app, &format!("{PREFIX}/api/v1/machines"), &[]).await;
    assert_eq!(machines.status, StatusCode::OK);
    assert_eq!(machines.json()["items"][0]["name"], "rig-7");
    let seed = get_as(&app, &format!("{PREFIX}/tm_api/machines/"), &[]).await;
    assert_eq!(
        seed.json()["results"][0]["absolute_url"],
        format!("{PREFIX}/machine/1")
    );
    let docs = get_as(&app, &format!("{PREFIX}/docs/"), &[]).await;
    assert_eq!(docs.status, StatusCode::OK);
    let document = get_as(&app, &format!("{PREFIX}/openapi.json"), &[]).await;
    assert_eq!(document.json()["servers"], json!([{"url": PREFIX}]));
    assert!(document.json()["paths"]["/api/v1/plans"].is_object());

    // Links in pages keep the prefix: to pages, assets, sockets and forms.
    let page = get_as(&app, &format!("{PREFIX}/machine/1"), &[]).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    for link in [
        format!(r#"data-prefix="{PREFIX}""#),
        // The home page: nested, `Router::nest` serves it at the prefix itself.
        format!(r#"href="{PREFIX}""#),
        format!(r#"href="{PREFIX}/machine/run_data/1""#),
        format!(r#"href="{PREFIX}/static/stpt.css?v="#),
        format!(r#"src="{PREFIX}/static/stpt.js?v="#),
        format!(r#"data-ws="{PREFIX}/ws/v1/machine/1/runs/"#),
        format!(r#"href="{PREFIX}/login/""#),
    ] {
        assert!(
            page.body.contains(&link),
            "{link} missing from {}",
            page.body
        );
    }
    assert!(!page.body.contains(r#"href="/machine"#), "{}", page.body);
    let run = get_as(&app, &format!("{PREFIX}/machine/1/last"), &[]).await;
    assert!(
        run.body.contains(&format!(r#"href="{PREFIX}/test/1""#)),
        "{}",
        run.body
    );
    assert!(run.body.contains(&format!(
        r#"data-ws="{PREFIX}/ws/v1/machine/1/last/?parts=1""#
    )));
    let css = get_as(&app, &format!("{PREFIX}/static/stpt.css"), &[]).await;
    assert_eq!(css.status, StatusCode::OK);

    // Everything no route matches is the host's, under the prefix too.
    for uri in [
        "/nowhere".to_owned(),
        format!("{PREFIX}/nowhere"),
        format!("{PREFIX}/api/v1/nowhere"),
        format!("{PREFIX}/tm_api/nowhere/"),
        format!("{PREFIX}/ws/nowhere/"),
    ] {
        let answer = get_as(&app, &uri, &[]).await;
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (StatusCode::NOT_FOUND, "the lab has no such page"),
            "{uri}"
        );
    }

    // A WebSocket upgrade under the prefix, over a real socket: a snapshot, then a change.
    let base = support::serve(app).await;
    let url = format!(
        "{}{PREFIX}/ws/v1/machine/1/last/",
        base.replace("http://", "ws://")
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let snapshot = next_text(&mut socket).await;
    assert_eq!(
        snapshot["snapshot"]["run"]["summary"]["id"], 1,
        "{snapshot}"
    );
    let (path, body) = support::start("rig-7", "/rig/lamp", "lamp_on.py", "2026-11-24 13:00:05");
    let (status, answer) = support::post(&base, &format!("{PREFIX}{path}"), &body).await;
    assert_eq!(status, 202, "{answer}");
    let change = next_text(&mut socket).await;
    assert_eq!(change["run_changed"]["run_id"], 1, "{change}");
    // ... and the page's own links work over the socket too.
    let page = reqwest::get(format!("{base}{PREFIX}")).await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.text()
            .await
            .unwrap()
            .contains(&format!(r#"href="{PREFIX}/machine/1""#))
    );
}

#[tokio::test]
async fn every_router_merges_at_the_root_of_a_host_that_already_has_a_fallback() {
    let tracker = support::tracker();
    let config = HttpConfig::default().with_ingest_access(IngestAccess::open());
    // `Router::merge` panics when both sides have a fallback: stpt's routers must have none.
    let app: Router = Router::new()
        .route("/lab", get(lab_home))
        .fallback(lab_fallback)
        .merge(stpt_http::api_router(tracker.clone(), &config))
        .merge(stpt_http::pages_router(tracker.clone(), &config))
        .merge(stpt_http::sockets_router(tracker.clone(), &config))
        .with_state(Lab { name: "the lab" });
    let created = post_json(&app, "/tm_api/dry_run/", &plan(), &[]).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(get_as(&app, "/lab", &[]).await.body, "home of the lab");
    let home = get_as(&app, "/", &[]).await;
    assert!(home.body.contains(r#"href="/machine/1""#), "{}", home.body);
    assert_eq!(
        get_as(&app, "/api/v1/machines/1", &[]).await.status,
        StatusCode::OK
    );
    for uri in ["/nowhere", "/api/v1/nowhere", "/machine/1/nowhere"] {
        let answer = get_as(&app, uri, &[]).await;
        assert_eq!(answer.body, "the lab has no such page", "{uri}");
    }
    // The same with the combined router.
    let app: Router = Router::new()
        .fallback(lab_fallback)
        .merge(stpt_http::router(tracker, &config))
        .with_state(Lab { name: "the lab" });
    assert_eq!(
        get_as(&app, "/nowhere", &[]).await.body,
        "the lab has no such page"
    );
    assert_eq!(get_as(&app, "/docs/", &[]).await.status, StatusCode::OK);
}

/// The next text message of a socket, as JSON.
async fn next_text(
    socket: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .expect("no message within 5 s")
            .expect("socket closed")
            .unwrap();
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

/// The host's identity: a sign-in proxy in front of the host sets `X-User`, and `X-Role:
/// admin` for its admins.
#[derive(Debug)]
struct ProxyHeaders;

#[async_trait]
impl IdentityProvider for ProxyHeaders {
    async fn identify(&self, request: &Parts) -> Option<Viewer> {
        let name = request.headers.get("x-user")?.to_str().ok()?;
        let admin = request
            .headers
            .get("x-role")
            .is_some_and(|role| role == "admin");
        Some(Viewer::new(name, admin))
    }
}

const ADA: [(&str, &str); 2] = [("x-user", "ada"), ("x-role", "admin")];
const BOB: [(&str, &str); 1] = [("x-user", "bob")];

/// The CSRF cookie a page set and the token its forms carry.
fn csrf(page: &Answer) -> (String, String) {
    let cookie = page
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|value| value.to_str().unwrap())
        .find(|value| value.starts_with("stpt_csrf="))
        .expect("a CSRF cookie")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let marker = "name=\"csrf_token\" value=\"";
    let start = page.body.find(marker).expect("a form") + marker.len();
    let end = page.body[start..].find('"').unwrap();
    (cookie, page.body[start..start + end].to_owned())
}

/// Posts the delete form of run 1 as `who`, with a valid CSRF token.
async fn delete_run(app: &Router, who: &[(&str, &str)], cookie: &str, token: &str) -> Answer {
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(format!("{PREFIX}/admin/runs/1/delete"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::COOKIE, cookie);
    for (name, value) in who {
        request = request.header(*name, *value);
    }
    send(
        app,
        request
            .body(Body::from(format!("csrf_token={token}")))
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn the_host_identity_decides_who_is_signed_in_and_who_is_an_admin() {
    let tracker = support::tracker();
    let config = HttpConfig::default()
        .with_identity(Arc::new(ProxyHeaders))
        .with_ingest_access(IngestAccess::open());
    let app = host(stpt_http::router(tracker, &config));
    let created = post_json(&app, &format!("{PREFIX}/tm_api/dry_run/"), &plan(), &[]).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let delete_form = format!(r#"action="{PREFIX}/admin/runs/1/delete""#);
    let run_page = format!("{PREFIX}/machine/run_data/1");

    // Anonymous is anonymous: no name, no delete button, and no stpt sign-in to offer.
    let anonymous = get_as(&app, &run_page, &[]).await;
    assert_eq!(anonymous.status, StatusCode::OK);
    for absent in [
        delete_form.as_str(),
        "class=\"who\"",
        "Sign in",
        "Sign out",
        "/admin/\"",
    ] {
        assert!(!anonymous.body.contains(absent), "anonymous sees {absent}");
    }
    // A signed-in viewer is named, but may not delete.
    let bob = get_as(&app, &run_page, &BOB).await;
    assert!(
        bob.body.contains(r#"<span class="who">bob</span>"#),
        "{}",
        bob.body
    );
    assert!(!bob.body.contains(&delete_form));
    // The host's admin gets the delete button, and still no stpt account links.
    let ada = get_as(&app, &run_page, &ADA).await;
    assert!(
        ada.body.contains(r#"<span class="who">ada</span>"#),
        "{}",
        ada.body
    );
    assert!(ada.body.contains(&delete_form), "{}", ada.body);
    for absent in ["Sign in", "Sign out", "/admin/\"", "/account/password/"] {
        assert!(!ada.body.contains(absent), "ada sees {absent}");
    }

    // stpt's sign-in and admin pages do not exist: those paths are the host's.
    for path in [
        "/login/",
        "/logout/",
        "/password_reset/",
        "/account/password/",
        "/admin/",
    ] {
        let answer = get_as(&app, &format!("{PREFIX}{path}"), &ADA).await;
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (StatusCode::NOT_FOUND, "the lab has no such page"),
            "{path}"
        );
    }

    // Only the host's admin may delete, whoever else holds a valid form.
    let (cookie, token) = csrf(&ada);
    for who in [&[][..], &BOB[..]] {
        let refused = delete_run(&app, who, &cookie, &token).await;
        assert_eq!(
            refused.status,
            StatusCode::FORBIDDEN,
            "{who:?}: {}",
            refused.body
        );
    }
    assert_eq!(
        get_as(&app, &format!("{PREFIX}/api/v1/runs/1"), &[])
            .await
            .status,
        StatusCode::OK
    );
    let deleted = delete_run(&app, &ADA, &cookie, &token).await;
    assert_eq!(deleted.status, StatusCode::SEE_OTHER, "{}", deleted.body);
    assert_eq!(
        get_as(&app, &format!("{PREFIX}/api/v1/runs/1"), &[])
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // Without stpt's accounts there are no runner tokens to check: one that is sent is
    // refused, even from an open network.
    let with_token = post_json(
        &app,
        &format!("{PREFIX}/tm_api/dry_run/"),
        &plan(),
        &[("authorization", "Bearer stpt_whatever")],
    )
    .await;
    assert_eq!(
        with_token.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        with_token.body
    );
}

#[tokio::test]
async fn reading_for_signed_in_users_follows_the_host_identity() {
    let config = HttpConfig::default()
        .with_identity(Arc::new(ProxyHeaders))
        .with_read_access(ReadAccess::SignedIn);
    let app = host(stpt_http::router(support::tracker(), &config));
    for path in ["", "/docs/"] {
        let uri = format!("{PREFIX}{path}");
        // No stpt sign-in page to send anonymous readers to: a 401 page.
        let anonymous = get_as(&app, &uri, &[]).await;
        assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED, "{uri}");
        assert!(
            anonymous.body.contains("Sign in to read"),
            "{}",
            anonymous.body
        );
        assert!(!anonymous.body.contains("/login/"), "{}", anonymous.body);
        assert_eq!(
            get_as(&app, &uri, &BOB).await.status,
            StatusCode::OK,
            "{uri}"
        );
    }
    for path in [
        "/api/v1/machines",
        "/tm_api/machines/",
        "/openapi.json",
        "/ws/machine/status/",
    ] {
        let uri = format!("{PREFIX}{path}");
        let anonymous = get_as(&app, &uri, &[]).await;
        assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED, "{uri}");
        assert_eq!(anonymous.json()["error"]["code"], "unauthorized", "{uri}");
        // (The socket path answers a plain GET, not an upgrade, with a 4xx that is not 401.)
        assert_ne!(
            get_as(&app, &uri, &BOB).await.status,
            StatusCode::UNAUTHORIZED,
            "{uri}"
        );
    }
}

#[tokio::test]
async fn a_host_identity_with_stpt_accounts_for_runner_tokens() {
    let accounts = Accounts::new(Arc::new(MemoryStore::new()));
    let token = accounts
        .create_runner_token("lab runners", &[])
        .await
        .unwrap()
        .secret;
    let config = HttpConfig::default()
        .with_identity(Arc::new(ProxyHeaders))
        .with_accounts(accounts);
    let app = host(stpt_http::router(support::tracker(), &config));
    let uri = format!("{PREFIX}/tm_api/dry_run/");
    assert_eq!(
        post_json(&app, &uri, &plan(), &[]).await.status,
        StatusCode::UNAUTHORIZED,
        "tokens only, by default"
    );
    let bearer = format!("Bearer {token}");
    let created = post_json(&app, &uri, &plan(), &[("authorization", bearer.as_str())]).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    // The host identifies people: stpt's sign-in pages are not served.
    let login = get_as(&app, &format!("{PREFIX}/login/"), &[]).await;
    assert_eq!(login.body, "the lab has no such page");
    let home = get_as(&app, PREFIX, &ADA).await;
    assert!(home.body.contains(r#"<span class="who">ada</span>"#));
}

#[tokio::test]
async fn stpt_not_found_is_there_for_hosts_that_want_it() {
    let tracker = support::tracker();
    let config = HttpConfig::default();
    let app: Router = Router::new().nest(
        PREFIX,
        stpt_http::router(tracker.clone(), &config)
            .fallback(stpt_http::not_found(tracker, &config)),
    );
    let page = get_as(&app, &format!("{PREFIX}/nowhere"), &[]).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(
        page.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        page.body.contains(&format!(r#"href="{PREFIX}""#)),
        "{}",
        page.body
    );
    for path in ["/api/v1/nowhere", "/tm_api/nowhere/", "/ws/nowhere/"] {
        let answer = get_as(&app, &format!("{PREFIX}{path}"), &[]).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(answer.json()["error"]["code"], "not_found", "{path}");
    }
}
