//! Embedding stpt in an existing axum service that has its own routes, state, fallback and
//! sign-in: stpt's routers are mounted under `/stpt`, next to the host's own pages, and the
//! host tells stpt who the user is.
//!
//! `cargo run -p stpt-examples --example embedding` serves on http://127.0.0.1:3000/
//! (`-- --smoke` binds a free port, calls itself, prints what it saw and exits).

use async_trait::async_trait;
use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use std::sync::Arc;
use stpt_core::accounts::Accounts;
use stpt_core::{InProcessBus, Tracker};
use stpt_http::{HttpConfig, IdentityProvider, Viewer};
use stpt_store_memory::MemoryStore;

/// Where the host mounts stpt.
const PREFIX: &str = "/stpt";

/// The host application's own state.
#[derive(Clone)]
struct LabState {
    lab_name: &'static str,
    benches: Arc<Vec<&'static str>>,
}

async fn home(State(lab): State<LabState>) -> Html<String> {
    Html(format!(
        "<h1>{}</h1><p><a href=\"{PREFIX}\">Test progress</a> · <a href=\"/benches\">Benches</a></p>",
        lab.lab_name
    ))
}

async fn benches(State(lab): State<LabState>) -> Json<Vec<&'static str>> {
    Json(lab.benches.as_ref().clone())
}

/// The host's own answer for every unknown path, stpt's included.
async fn lab_not_found(State(lab): State<LabState>) -> (StatusCode, Html<String>) {
    (
        StatusCode::NOT_FOUND,
        Html(format!("<h1>{}: no such page</h1>", lab.lab_name)),
    )
}

/// The host's sign-in, reduced to its smallest: a cookie naming the user. (A real service
/// checks a session here; this stand-in trusts whatever the cookie says.)
const LAB_USER_COOKIE: &str = "lab_user";

async fn sign_in(Path(name): Path<String>) -> Response {
    let cookie = format!("{LAB_USER_COOKIE}={name}; Path=/; HttpOnly; SameSite=Lax");
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, cookie),
            (header::LOCATION, PREFIX.to_owned()),
        ],
    )
        .into_response()
}

/// How stpt learns who the lab's user is: from the lab's own sign-in cookie, with the lab's
/// list of admins.
#[derive(Debug)]
struct LabIdentity {
    admins: Vec<String>,
}

#[async_trait]
impl IdentityProvider for LabIdentity {
    async fn identify(&self, request: &Parts) -> Option<Viewer> {
        let name = request
            .headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(key, _)| *key == LAB_USER_COOKIE)
            .map(|(_, value)| value.trim())
            .filter(|value| !value.is_empty())?;
        Some(Viewer::new(
            name,
            self.admins.iter().any(|admin| admin == name),
        ))
    }
}

/// The host's app with stpt under [`PREFIX`], and a runner token for the lab's runners.
async fn app() -> Result<(Router, String), stpt_core::Error> {
    let lab = LabState {
        lab_name: "Body electronics lab",
        benches: Arc::new(vec!["bench-a", "bench-b"]),
    };
    // One memory store keeps both the runs and stpt's runner tokens.
    let store = Arc::new(MemoryStore::new());
    let tracker = Tracker::new(Arc::clone(&store) as _, Arc::new(InProcessBus::new()));
    let accounts = Accounts::new(store);
    // Runners must send a token (the default); a real service creates it once and hands it
    // to its runners.
    let token = accounts.create_runner_token("lab runners", &[]).await?;
    // People are the lab's: its identity decides who is signed in and who is an admin, and
    // stpt serves no sign-in page of its own. stpt's accounts only check runner tokens.
    let config = HttpConfig::default()
        .with_identity(Arc::new(LabIdentity {
            admins: vec!["ada".to_owned()],
        }))
        .with_accounts(accounts);
    // stpt's routers bring their own state and no fallback; the host mounts them like any
    // router (or all at once with `stpt_http::router`).
    let stpt = Router::new()
        .merge(stpt_http::api_router(tracker.clone(), &config))
        .merge(stpt_http::pages_router(tracker.clone(), &config))
        .merge(stpt_http::sockets_router(tracker, &config));
    let router = Router::new()
        .route("/", get(home))
        .route("/benches", get(benches))
        .route("/sign-in/{name}", get(sign_in))
        .nest(PREFIX, stpt)
        .fallback(lab_not_found)
        .with_state(lab);
    Ok((router, token.secret))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let smoke = std::env::args().any(|arg| arg == "--smoke");
    let address = if smoke {
        "127.0.0.1:0"
    } else {
        "127.0.0.1:3000"
    };
    let listener = tokio::net::TcpListener::bind(address).await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (app, token) = app().await?;
    if !smoke {
        println!("serving the lab app on {base}/ with stpt under {base}{PREFIX}");
        println!(
            "sign in as the lab's admin at {base}/sign-in/ada, as a viewer at {base}/sign-in/bob"
        );
        println!("runners post with `Authorization: Bearer {token}`");
        axum::serve(listener, app).await?;
        return Ok(());
    }
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let outcome = smoke_test(&base, &token).await;
    server.abort();
    outcome
}

/// Calls the running app once the way a runner, a visitor and the lab's admin would.
async fn smoke_test(base: &str, token: &str) -> Result<(), Box<dyn std::error::Error>> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let plan = include_str!("../stpt-core/fixtures/plan-python-runner.json");
    let created = client
        .post(format!("{base}{PREFIX}/tm_api/dry_run/"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(plan)
        .send()
        .await?;
    let machines: serde_json::Value = client
        .get(format!("{base}{PREFIX}/tm_api/machines/"))
        .send()
        .await?
        .json()
        .await?;
    let page = client.get(format!("{base}{PREFIX}")).send().await?;
    let own = client
        .get(format!("{base}/benches"))
        .send()
        .await?
        .text()
        .await?;
    let unknown = client.get(format!("{base}{PREFIX}/nowhere")).send().await?;
    let unknown_status = unknown.status();
    let unknown_body = unknown.text().await?;
    let login = client.get(format!("{base}{PREFIX}/login/")).send().await?;
    let run_page = |user: Option<&str>| {
        let mut request = client.get(format!("{base}{PREFIX}/machine/run_data/1"));
        if let Some(user) = user {
            request = request.header(header::COOKIE, format!("{LAB_USER_COOKIE}={user}"));
        }
        async move { request.send().await?.text().await }
    };
    let delete_button = format!("action=\"{PREFIX}/admin/runs/1/delete\"");
    let admin_sees_delete = run_page(Some("ada")).await?.contains(&delete_button);
    let viewer_sees_delete = run_page(Some("bob")).await?.contains(&delete_button);
    let anonymous_sees_delete = run_page(None).await?.contains(&delete_button);

    println!("plan: {}", created.status());
    println!(
        "first machine links to {}",
        machines["results"][0]["absolute_url"]
    );
    println!("stpt page: {}", page.status());
    println!("host route /benches: {own}");
    println!("unknown path under {PREFIX}: {unknown_status} {unknown_body}");
    println!(
        "stpt's own sign-in page: {} (the lab signs people in)",
        login.status()
    );
    println!(
        "delete button: lab admin {admin_sees_delete}, lab viewer {viewer_sees_delete}, anonymous {anonymous_sees_delete}"
    );
    let ok = created.status().as_u16() == 201
        && machines["results"][0]["absolute_url"] == format!("{PREFIX}/machine/1")
        && page.status().is_success()
        && unknown_status.as_u16() == 404
        && unknown_body.contains("no such page")
        && login.status().as_u16() == 404
        && admin_sees_delete
        && !viewer_sees_delete
        && !anonymous_sees_delete;
    if ok {
        Ok(())
    } else {
        Err("the embedded stpt did not answer as expected".into())
    }
}
