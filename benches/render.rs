//! Server-side render time of a run page (`/machine/{id}/last`, through the router, body
//! collected) by run size. Run with `cargo bench -p stpt-benches --bench render`.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use std::sync::Arc;
use stpt_benches::plan;
use stpt_core::{InProcessBus, Tracker};
use stpt_store_memory::MemoryStore;
use tokio::runtime::Runtime;
use tower::ServiceExt;

fn main() {
    divan::main();
}

/// `GET /machine/1/last` of a machine whose run has `tests` tests.
#[divan::bench(args = [10, 1_000, 10_000], sample_count = 20, sample_size = 1)]
fn run_page(bencher: divan::Bencher, tests: usize) {
    let runtime: Runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let tracker = Tracker::new(Arc::new(MemoryStore::new()), Arc::new(InProcessBus::new()));
    runtime
        .block_on(tracker.record_plan(plan("rig", tests)))
        .expect("plan stored");
    let app: axum::Router = stpt_http::router(
        tracker,
        &stpt_http::HttpConfig::default().with_ingest_access(stpt_http::IngestAccess::open()),
    );
    bencher.bench_local(|| {
        runtime.block_on(async {
            let request = Request::get("/machine/1/last")
                .body(Body::empty())
                .expect("request");
            let response = app.clone().oneshot(request).await.expect("response");
            assert_eq!(response.status(), StatusCode::OK);
            let body = response
                .into_body()
                .collect()
                .await
                .expect("body")
                .to_bytes();
            divan::black_box(body.len())
        })
    });
}
