//! Embedding stpt in an existing axum service that has its own routes and state: stpt's
//! routers are mounted under `/stpt`, next to the host's own pages.
//!
//! `cargo run -p stpt-examples --example embedding` serves on http://127.0.0.1:3000/
//! (`-- --smoke` binds a free port, calls itself once, prints what it saw and exits).

use axum::extract::State;
use axum::response::Html;
use axum::routing::get;
use axum::{Json, Router};
use std::sync::Arc;
use stpt_core::accounts::Accounts;
use stpt_core::{InProcessBus, Tracker};
use stpt_http::HttpConfig;
use stpt_store_memory::MemoryStore;

/// The host application's own state.
#[derive(Clone)]
struct LabState {
    lab_name: &'static str,
    benches: Arc<Vec<&'static str>>,
}

async fn home(State(lab): State<LabState>) -> Html<String> {
    Html(format!(
        "<h1>{}</h1><p><a href=\"/stpt\">Test progress</a> · <a href=\"/benches\">Benches</a></p>",
        lab.lab_name
    ))
}

async fn benches(State(lab): State<LabState>) -> Json<Vec<&'static str>> {
    Json(lab.benches.as_ref().clone())
}

/// The host's app with stpt under `/stpt`, and a runner token for the lab's runners.
async fn app() -> Result<(Router, String), stpt_core::Error> {
    let lab = LabState {
        lab_name: "Body electronics lab",
        benches: Arc::new(vec!["bench-a", "bench-b"]),
    };
    // One memory store keeps both the runs and the accounts.
    let store = Arc::new(MemoryStore::new());
    let tracker = Tracker::new(Arc::clone(&store) as _, Arc::new(InProcessBus::new()));
    let accounts = Accounts::new(store);
    // Runners must send a token (the default); a real service creates it once, e.g. with an
    // admin page, and hands it to its runners.
    let token = accounts.create_runner_token("lab runners", &[]).await?;
    let router = Router::new()
        .route("/", get(home))
        .route("/benches", get(benches))
        .with_state(lab)
        // stpt brings its own state; the host mounts it like any router.
        .nest(
            "/stpt",
            stpt_http::router(tracker, accounts, HttpConfig::default()),
        );
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
        println!("serving the lab app on {base}/ with stpt under {base}/stpt/");
        println!("runners post with `Authorization: Bearer {token}`");
        axum::serve(listener, app).await?;
        return Ok(());
    }
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let client = reqwest::Client::new();
    let plan = include_str!("../stpt-core/fixtures/plan-python-runner.json");
    let created = client
        .post(format!("{base}/stpt/tm_api/dry_run/"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(plan)
        .send()
        .await?;
    let machines: serde_json::Value = client
        .get(format!("{base}/stpt/tm_api/machines/"))
        .send()
        .await?
        .json()
        .await?;
    let page = client.get(format!("{base}/stpt")).send().await?;
    let own = client
        .get(format!("{base}/benches"))
        .send()
        .await?
        .text()
        .await?;
    println!("plan: {}", created.status());
    println!("first machine links to {}", machines["results"][0]["url"]);
    println!("stpt page: {}", page.status());
    println!("host route /benches: {own}");
    server.abort();
    let ok = created.status().as_u16() == 201
        && machines["results"][0]["url"] == "/stpt/machine/1"
        && page.status().is_success();
    if ok {
        Ok(())
    } else {
        Err("the embedded stpt did not answer as expected".into())
    }
}
