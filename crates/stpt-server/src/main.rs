//! The stpt reference server: the runner API and read API on one port.

use clap::Parser;
use std::net::SocketAddr;
use std::sync::Arc;
use stpt_core::{InProcessBus, Tracker};
use stpt_http::HttpConfig;
use stpt_store_memory::MemoryStore;
use tracing_subscriber::EnvFilter;

/// stpt — System Test Progress Tracking server.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Options {
    /// Address and port to listen on.
    #[arg(long, env = "STPT_BIND", default_value = "127.0.0.1:8000")]
    bind: SocketAddr,

    /// Largest request body accepted, in bytes.
    #[arg(long, env = "STPT_BODY_LIMIT", default_value_t = HttpConfig::DEFAULT_BODY_LIMIT)]
    body_limit: usize,

    /// Log filter, e.g. `info` or `stpt_http=debug,info`.
    #[arg(long, env = "STPT_LOG", default_value = "info")]
    log: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let options = Options::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_new(&options.log)?)
        .init();

    // In-memory until the SQL store lands: history does not survive a restart yet.
    let tracker = Tracker::new(Arc::new(MemoryStore::new()), Arc::new(InProcessBus::new()));
    let app: axum::Router = stpt_http::router(
        tracker,
        HttpConfig::default().with_body_limit(options.body_limit),
    );

    let listener = tokio::net::TcpListener::bind(options.bind).await?;
    tracing::info!(address = %listener.local_addr()?, "stpt listening; runners post to /tm_api/");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM; in-flight requests then finish.
async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
}
