//! Server-side render time of a run page (`/machine/{id}/last`, through the router, body
//! collected) by run size. Run with `cargo bench -p stpt-benches --bench render`.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::Utc;
use http_body_util::BodyExt;
use std::sync::Arc;
use stpt_core::{InProcessBus, MachineName, Plan, PlannedScenario, ScriptFile, Tracker};
use stpt_store_memory::MemoryStore;
use tokio::runtime::Runtime;
use tower::ServiceExt;

fn main() {
    divan::main();
}

fn file(name: String) -> ScriptFile {
    ScriptFile {
        file_path: "/rig/tests".to_owned(),
        file_name: name,
        script: Some("run()\n".to_owned()),
    }
}

fn plan(tests: usize) -> Plan {
    Plan {
        machine: MachineName::new("rig").expect("valid name"),
        timestamp: Utc::now(),
        master: file("master.py".to_owned()),
        scenarios: (0..tests.div_ceil(100))
            .map(|s| PlannedScenario {
                file: file(format!("scenario_{s:03}.py")),
                tests: (s * 100..tests.min((s + 1) * 100))
                    .map(|t| file(format!("test_{t:05}_<check>.py")))
                    .collect(),
            })
            .collect(),
    }
}

/// `GET /machine/1/last` of a machine whose run has `tests` tests.
#[divan::bench(args = [10, 1_000, 10_000], sample_count = 20, sample_size = 1)]
fn run_page(bencher: divan::Bencher, tests: usize) {
    let runtime: Runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let tracker = Tracker::new(Arc::new(MemoryStore::new()), Arc::new(InProcessBus::new()));
    runtime
        .block_on(tracker.record_plan(plan(tests)))
        .expect("plan stored");
    let app: axum::Router = stpt_http::router(tracker, stpt_http::HttpConfig::default());
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
