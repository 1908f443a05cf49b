//! Replays what a Python runner posts (a plan, then a start and a stop per test) through a
//! `Tracker` on the in-memory store, and prints the run as the live page would show it.
//!
//! `cargo run -p stpt-examples --example replay_runner`

use std::sync::Arc;
use stpt_core::{InProcessBus, PlanPayload, TestStartPayload, TestStopPayload, Tracker};
use stpt_store_memory::MemoryStore;

const PLAN: &str = include_str!("../stpt-core/fixtures/plan-python-runner.json");
const EVENTS: &str = include_str!("../stpt-core/fixtures/events-python-runner.json");

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tracker = Tracker::new(Arc::new(MemoryStore::new()), Arc::new(InProcessBus::new()));
    let plan: PlanPayload = serde_json::from_str(PLAN)?;
    let receipt = tracker.record_plan(plan.validate()?).await?;

    let events: Vec<serde_json::Value> = serde_json::from_str(EVENTS)?;
    for event in events {
        let body = event["body"].clone();
        match event["endpoint"].as_str() {
            Some("/tm_api/test_start/") => {
                let start: TestStartPayload = serde_json::from_value(body)?;
                tracker.record_test_start(start.validate()?).await?;
            }
            Some("/tm_api/test_stop/") => {
                let stop: TestStopPayload = serde_json::from_value(body)?;
                tracker.record_test_stop(stop.validate()?).await?;
            }
            other => return Err(format!("unknown endpoint {other:?}").into()),
        }
    }

    let run = tracker.run(receipt.ids.run_id).await?;
    println!(
        "{} — run {}: {} ({} tests in {} scenarios)",
        run.machine_name,
        run.summary.id,
        run.summary.status,
        run.summary.statistics.tests,
        run.summary.statistics.scenarios
    );
    for scenario in &run.scenarios {
        println!("  {:<9} {}", scenario.status, scenario.file.file_name);
        for test in &scenario.tests {
            println!("    {:<9} {}", test.status, test.file.file_name);
        }
    }
    Ok(())
}
