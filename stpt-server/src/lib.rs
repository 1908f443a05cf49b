//! The pieces of the reference server, as a library so tests and the demo can build them:
//! settings, backend selection, the app, metrics, serving with graceful shutdown, and the
//! virtual test machine.

mod backends;
pub mod cli;
mod mail;
mod metrics;
mod serve;
mod settings;
pub mod virtual_machine;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use std::future::Future;
use stpt_core::accounts::Accounts;
use stpt_core::{PageRequest, Tracker};
use stpt_http::HttpConfig;
use tokio::net::TcpListener;

pub use backends::{DatabaseUrl, Stores, backup, open_bus, open_store};
pub use mail::SmtpMailer;
pub use metrics::{install_recorder, with_metrics};
pub use serve::{ServeLimits, serve_with_limits};
pub use settings::{Command, LogFormat, ReadAccessArg, Settings, TokenCommand, UserCommand};

/// The whole app: stpt's routers with stpt's own accounts, `/healthz` (the process answers),
/// `/readyz` (the database answers), and stpt's 404 answers for everything else (an HTML
/// page, JSON under the API paths).
pub fn app(tracker: Tracker, accounts: Accounts, config: HttpConfig) -> Router {
    let config = config.with_accounts(accounts);
    let ready = tracker.clone();
    let not_found = stpt_http::not_found(tracker.clone(), &config);
    Router::new()
        .merge(stpt_http::router(tracker, &config))
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let tracker = ready.clone();
                async move {
                    match tracker.store().machines(PageRequest::default()).await {
                        Ok(_) => (StatusCode::OK, "ready"),
                        Err(error) => {
                            tracing::warn!(%error, "not ready: the store does not answer");
                            (StatusCode::SERVICE_UNAVAILABLE, "database unreachable")
                        }
                    }
                }
            }),
        )
        .fallback(not_found)
}

/// Serves `app` on `listener` until `shutdown` resolves, within the default
/// [`ServeLimits`]; open requests then finish (within the grace period). Requests carry the
/// client's address (for tokenless ingestion from trusted networks and sign-in throttling).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with_limits(listener, app, shutdown, ServeLimits::default()).await
}
