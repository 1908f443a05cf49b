#![doc = include_str!("../README.md")]

mod error;
mod extract;
pub mod humanize;
mod seed;
pub mod v1;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use stpt_core::Tracker;

pub use error::ApiError;
pub use extract::{MountPrefix, Pagination, RunnerJson};

/// Settings of the routers. Build with [`HttpConfig::default`] and the `with_*` methods.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    body_limit: usize,
}

impl HttpConfig {
    /// The default largest request body: 8 MiB.
    pub const DEFAULT_BODY_LIMIT: usize = 8 * 1024 * 1024;

    /// The largest request body accepted, in bytes; larger bodies get `413`.
    pub fn with_body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// The largest request body accepted, in bytes.
    pub fn body_limit(&self) -> usize {
        self.body_limit
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            body_limit: Self::DEFAULT_BODY_LIMIT,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct AppState {
    tracker: Tracker,
}

/// Every stpt route, with its state applied: mount it anywhere with `Router::merge` or
/// `Router::nest`. Adds no global layers (tracing, CORS, timeouts are the host's choice).
pub fn router<S>(tracker: Tracker, config: HttpConfig) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    api_router(tracker, config)
}

/// The JSON API alone: the seed's `/tm_api/` paths and the versioned `/api/v1/`.
pub fn api_router<S>(tracker: Tracker, config: HttpConfig) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    seed::routes()
        .merge(v1::routes())
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(config.body_limit))
        .with_state(AppState { tracker })
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}
