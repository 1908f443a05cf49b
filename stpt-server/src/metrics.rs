//! Prometheus metrics at `/metrics`: what the libraries count (events by kind and outcome,
//! WebSocket clients, live-bus drops and reconnects) plus HTTP latency measured here.

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};
use std::time::{Duration, Instant};

const HTTP_LATENCY: &str = "stpt_http_request_duration_seconds";

/// Installs the process-wide Prometheus recorder and keeps its histograms maintained.
/// Call once, inside the tokio runtime.
pub fn install_recorder() -> Result<PrometheusHandle, BuildError> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(HTTP_LATENCY.to_owned()),
            &[
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
            ],
        )?
        .install_recorder()?;
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(Duration::from_secs(5));
        loop {
            ticks.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

/// `app` with `/metrics` and a latency histogram of every request, labelled by method, route
/// pattern (never the raw path, so ids don't explode the label set) and status.
pub fn with_metrics(app: Router, handle: PrometheusHandle) -> Router {
    app.route("/metrics", get(move || async move { handle.render() }))
        .layer(middleware::from_fn(record_latency))
}

async fn record_latency(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let response = next.run(request).await;
    metrics::histogram!(
        HTTP_LATENCY,
        "method" => method,
        "route" => route,
        "status" => response.status().as_u16().to_string(),
    )
    .record(started.elapsed().as_secs_f64());
    response
}
