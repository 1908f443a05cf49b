//! Per-event cost through `Tracker` on the in-memory store, by run size.
//! Run with `cargo bench -p stpt-benches --bench events`.

use chrono::{TimeZone, Utc};
use std::sync::Arc;
use stpt_benches::plan;
use stpt_core::{InProcessBus, MachineName, Status, TestStart, TestStop, Tracker};
use stpt_store_memory::MemoryStore;
use tokio::runtime::Runtime;

fn main() {
    divan::main();
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
}

/// One test started and stopped, in the middle of a freshly planned run of `tests` tests.
#[divan::bench(args = [10, 1_000, 10_000], sample_count = 60, sample_size = 1)]
fn start_and_stop(bencher: divan::Bencher, tests: usize) {
    bencher
        .with_inputs(|| {
            let runtime = runtime();
            let tracker = Tracker::new(Arc::new(MemoryStore::new()), Arc::new(InProcessBus::new()));
            runtime
                .block_on(tracker.record_plan(plan("rig", tests)))
                .expect("plan stored");
            (runtime, tracker)
        })
        .bench_local_values(|(runtime, tracker)| {
            let name = format!("t{}.py", tests / 2);
            let machine = MachineName::new("rig").expect("valid name");
            let at = Utc
                .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
                .single()
                .expect("valid time");
            runtime.block_on(async {
                tracker
                    .record_test_start(TestStart {
                        machine: machine.clone(),
                        file_path: "/t".to_owned(),
                        file_name: name.clone(),
                        at: at.into(),
                    })
                    .await
                    .expect("start matched");
                tracker
                    .record_test_stop(TestStop {
                        machine,
                        file_path: "/t".to_owned(),
                        file_name: name,
                        status: Status::Passed,
                        at: at.into(),
                    })
                    .await
                    .expect("stop matched");
            });
            (runtime, tracker)
        });
}

/// Storing a plan of `tests` tests.
#[divan::bench(args = [10, 1_000, 10_000], sample_count = 30, sample_size = 1)]
fn record_plan(bencher: divan::Bencher, tests: usize) {
    bencher
        .with_inputs(|| {
            let tracker = Tracker::new(Arc::new(MemoryStore::new()), Arc::new(InProcessBus::new()));
            (runtime(), tracker, plan("rig", tests))
        })
        .bench_local_values(|(runtime, tracker, plan)| {
            runtime
                .block_on(tracker.record_plan(plan))
                .expect("plan stored");
            (runtime, tracker)
        });
}
