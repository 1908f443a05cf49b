//! The tracker's side of optimistic backends: a unit that answers `Error::Stale` (at commit,
//! or at confirm before a "matched nothing" answer) has the event applied again, a bounded
//! number of times, and nothing is applied twice.

#![allow(clippy::unwrap_used)] // Tests fail loudly by design.

use async_trait::async_trait;
use chrono::{TimeZone, Utc};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use stpt_core::wrap::{WrapStore, WrapStoreTx};
use stpt_core::{
    Changes, Committed, Error, InProcessBus, MachineName, NoMatch, Plan, PlannedScenario, Result,
    ScriptFile, Status, Store, StoreTx, TestStart, TestStop, Tracker,
};
use stpt_store_memory::MemoryStore;

/// A memory store whose units claim stale reads while `stale_commits` / `stale_confirms`
/// last, counting how often each was asked.
#[derive(Debug, Default)]
struct Flaky {
    inner: MemoryStore,
    stale_commits: AtomicU32,
    stale_confirms: AtomicU32,
    commits: Arc<AtomicU32>,
    confirms: Arc<AtomicU32>,
}

/// Takes one from `budget` if any is left.
fn take(budget: &AtomicU32) -> bool {
    budget
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
            left.checked_sub(1)
        })
        .is_ok()
}

fn stale() -> Error {
    Error::Stale {
        message: "test double".into(),
    }
}

#[async_trait]
impl WrapStore for Flaky {
    fn inner(&self) -> &dyn Store {
        &self.inner
    }
    async fn begin(&self, machine: &MachineName) -> Result<Box<dyn StoreTx>> {
        Ok(Box::new(FlakyTx {
            inner: self.inner.begin(machine).await?,
            stale_commit: take(&self.stale_commits),
            stale_confirm: take(&self.stale_confirms),
            commits: Arc::clone(&self.commits),
            confirms: Arc::clone(&self.confirms),
        }))
    }
}

struct FlakyTx {
    inner: Box<dyn StoreTx>,
    stale_commit: bool,
    stale_confirm: bool,
    commits: Arc<AtomicU32>,
    confirms: Arc<AtomicU32>,
}

#[async_trait]
impl WrapStoreTx for FlakyTx {
    fn inner(&self) -> &dyn StoreTx {
        &*self.inner
    }
    fn inner_mut(&mut self) -> &mut dyn StoreTx {
        &mut *self.inner
    }
    fn into_inner(self: Box<Self>) -> Box<dyn StoreTx> {
        self.inner
    }
    async fn confirm(&mut self) -> Result<()> {
        self.confirms.fetch_add(1, Ordering::SeqCst);
        if self.stale_confirm {
            return Err(stale());
        }
        self.inner.confirm().await
    }
    async fn commit(self: Box<Self>, changes: Changes) -> Result<Committed> {
        self.commits.fetch_add(1, Ordering::SeqCst);
        if self.stale_commit {
            // Dropping the inner unit writes nothing, as an optimistic backend must.
            return Err(stale());
        }
        self.inner.commit(changes).await
    }
}

fn file(path: &str, name: &str) -> ScriptFile {
    ScriptFile {
        file_path: path.into(),
        file_name: name.into(),
        script: None,
    }
}

fn plan() -> Plan {
    Plan {
        machine: MachineName::new("rig").unwrap(),
        timestamp: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap().into(),
        master: file("/m", "m.py"),
        scenarios: vec![PlannedScenario {
            file: file("/s", "s.py"),
            tests: vec![file("/t", "a.py"), file("/t", "b.py")],
        }],
    }
}

fn start(name: &str) -> TestStart {
    TestStart {
        machine: MachineName::new("rig").unwrap(),
        file_path: "/t".into(),
        file_name: name.into(),
        at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 1, 0).unwrap().into(),
    }
}

fn tracker() -> (Arc<Flaky>, Tracker) {
    let store = Arc::new(Flaky::default());
    let tracker = Tracker::new(store.clone(), Arc::new(InProcessBus::new()));
    (store, tracker)
}

#[tokio::test]
async fn a_stale_commit_is_applied_again_once() {
    let (store, tracker) = tracker();
    let planned = tracker.record_plan(plan()).await.unwrap();
    store.stale_commits.store(2, Ordering::SeqCst);
    store.commits.store(0, Ordering::SeqCst);
    let receipt = tracker.record_test_start(start("a.py")).await.unwrap();
    assert_eq!(store.commits.load(Ordering::SeqCst), 3);
    assert_eq!(receipt.test_id, planned.ids.test_ids[0][0]);
    let run = tracker.run(planned.ids.run_id).await.unwrap();
    let statuses: Vec<Status> = run.scenarios[0].tests.iter().map(|t| t.status).collect();
    assert_eq!(statuses, [Status::Running, Status::Waiting]);
    assert_eq!(run.summary.statistics.counts.get(Status::Running), 1);
}

#[tokio::test]
async fn stale_reads_that_never_end_give_up_with_nothing_written() {
    let (store, tracker) = tracker();
    let planned = tracker.record_plan(plan()).await.unwrap();
    store.stale_commits.store(u32::MAX, Ordering::SeqCst);
    store.commits.store(0, Ordering::SeqCst);
    let result = tracker.record_test_start(start("a.py")).await;
    assert!(matches!(result, Err(Error::Stale { .. })), "{result:?}");
    assert_eq!(store.commits.load(Ordering::SeqCst), 3);
    let run = tracker.run(planned.ids.run_id).await.unwrap();
    assert_eq!(run.summary.status, Status::Waiting);
    // A plan retries the same way.
    let result = tracker.record_plan(plan()).await;
    assert!(matches!(result, Err(Error::Stale { .. })), "{result:?}");
    assert_eq!(store.commits.load(Ordering::SeqCst), 6);
}

#[tokio::test]
async fn matched_nothing_is_checked_before_it_is_answered() {
    let (store, tracker) = tracker();
    tracker.record_plan(plan()).await.unwrap();
    let commits_before = store.commits.load(Ordering::SeqCst);
    store.stale_commits.store(1, Ordering::SeqCst);
    let stop = TestStop {
        machine: MachineName::new("rig").unwrap(),
        file_path: "/t".into(),
        file_name: "a.py".into(),
        status: Status::Passed,
        at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 2, 0).unwrap().into(),
    };
    let result = tracker.record_test_stop(stop).await;
    assert!(
        matches!(result, Err(Error::NoMatch(NoMatch::NoRunningTest { .. }))),
        "{result:?}"
    );
    // The machine was heard: its last-seen time is committed, which checks the reads as a
    // confirmation would. Stale once, applied again, committed on the fresh attempt.
    assert_eq!(store.commits.load(Ordering::SeqCst), commits_before + 2);
    assert_eq!(store.confirms.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn matched_nothing_on_an_unknown_machine_is_confirmed_before_it_is_answered() {
    let (store, tracker) = tracker();
    store.stale_confirms.store(1, Ordering::SeqCst);
    let result = tracker.record_test_start(start("a.py")).await;
    assert!(
        matches!(result, Err(Error::NoMatch(NoMatch::UnknownMachine { .. }))),
        "{result:?}"
    );
    // Asked once (stale: applied again), then once more on the fresh attempt.
    assert_eq!(store.confirms.load(Ordering::SeqCst), 2);
    assert_eq!(store.commits.load(Ordering::SeqCst), 0);
    // A successful event is never held up by a confirmation.
    tracker.record_plan(plan()).await.unwrap();
    tracker.record_test_start(start("a.py")).await.unwrap();
    assert_eq!(store.confirms.load(Ordering::SeqCst), 2);
}
