//! Custom storage backends: `TableStore` (in this package's library) is a complete backend
//! written from scratch on `stpt_core::RunIndex`, and `LoggingStore` audits every unit of work
//! of any other store. Here the logging decorator wraps the table store and serves a runner's
//! story; `tests/conformance.rs` runs the whole shared conformance suite against both.
//!
//! `cargo run -p stpt-examples --example custom_backend`

use std::sync::Arc;
use stpt_core::{InProcessBus, PlanPayload, Store, TestStartPayload, TestStopPayload, Tracker};
use stpt_examples::{LoggingStore, TableStore};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let store = Arc::new(LoggingStore::new(Arc::new(TableStore::new())));
    let tracker = Tracker::new(
        Arc::clone(&store) as Arc<dyn Store>,
        Arc::new(InProcessBus::new()),
    );

    let plan: PlanPayload = serde_json::from_str(include_str!(
        "../stpt-core/fixtures/plan-python-runner.json"
    ))?;
    let receipt = tracker.record_plan(plan.validate()?).await?;
    let start: TestStartPayload = serde_json::from_value(serde_json::json!({
        "machine_name": "machine #1", "file_path": "/rig/test_cases/01_feature_lamp",
        "file_name": "01_01_test_lamp.py", "timestamp_start": "2026-11-24 13:02:01"}))?;
    tracker.record_test_start(start.validate()?).await?;
    let stop: TestStopPayload = serde_json::from_value(serde_json::json!({
        "machine_name": "machine #1", "file_path": "/rig/test_cases/01_feature_lamp",
        "file_name": "01_01_test_lamp.py", "status": "passed",
        "timestamp_stop": "2026-11-24 13:02:09"}))?;
    tracker.record_test_stop(stop.validate()?).await?;

    let run = tracker.run(receipt.ids.run_id).await?;
    println!(
        "run {} is {}; {} units of work audited",
        run.summary.id,
        run.summary.status,
        store.commits()
    );
    Ok(())
}
