//! Units of work take turns per machine: one machine's open unit never holds up another's,
//! and deleting a machine or a run waits for the open unit on it.

use chrono::Utc;
use std::sync::Arc;
use std::time::Duration;
use stpt_core::{
    Changes, InProcessBus, MachineName, PageRequest, Plan, PlannedScenario, ScriptFile, Store,
    Tracker,
};
use stpt_store_memory::MemoryStore;

fn file(name: &str) -> ScriptFile {
    ScriptFile {
        file_path: "/t".to_owned(),
        file_name: name.to_owned(),
        script: None,
    }
}

fn plan(machine: &str) -> Plan {
    Plan {
        machine: MachineName::new(machine).expect("valid machine name"),
        timestamp: Utc::now().into(),
        master: file("master.py"),
        scenarios: vec![PlannedScenario {
            file: file("s.py"),
            tests: vec![file("t.py")],
        }],
    }
}

fn nothing_changed() -> Changes {
    Changes {
        seen_at: Utc::now(),
        clock_offset: None,
        runs: Vec::new(),
        new_run: None,
        record: None,
    }
}

fn name(name: &str) -> MachineName {
    MachineName::new(name).expect("valid machine name")
}

/// Long enough for a task that is free to finish on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(10);

/// Long enough for a task that is free to go ahead to have started.
const A_MOMENT: Duration = Duration::from_millis(200);

fn store_and_tracker() -> (Arc<MemoryStore>, Tracker) {
    let store = Arc::new(MemoryStore::new());
    let tracker = Tracker::new(store.clone(), Arc::new(InProcessBus::new()));
    (store, tracker)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_unit_holds_up_no_other_machine() {
    let (store, tracker) = store_and_tracker();
    tracker.record_plan(plan("rig-a")).await.expect("plan");
    let open = store.begin(&name("rig-a")).await.expect("unit opened");

    let planned = tokio::time::timeout(PATIENCE, tracker.record_plan(plan("rig-b"))).await;
    let receipt = planned
        .expect("a plan on rig-b went through while rig-a's unit was open")
        .expect("plan stored");
    let run = tokio::time::timeout(PATIENCE, tracker.run(receipt.ids.run_id))
        .await
        .expect("reads go on too")
        .expect("run found");
    assert_eq!(run.machine_name, "rig-b");
    drop(open);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn units_on_one_machine_take_turns() {
    let (store, tracker) = store_and_tracker();
    tracker.record_plan(plan("rig-a")).await.expect("plan");
    let open = store.begin(&name("rig-a")).await.expect("unit opened");

    let second = tokio::spawn({
        let store = store.clone();
        async move { store.begin(&name("RIG-A")).await.map(drop) }
    });
    tokio::time::sleep(A_MOMENT).await;
    assert!(
        !second.is_finished(),
        "a second unit opened beside the first"
    );
    open.commit(nothing_changed())
        .await
        .expect("unit committed");
    tokio::time::timeout(PATIENCE, second)
        .await
        .expect("the second unit opened once the first committed")
        .expect("task")
        .expect("unit opened");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_machines_units_take_turns_and_find_it_made() {
    let (store, tracker) = store_and_tracker();
    let open = store.begin(&name("rig-a")).await.expect("unit opened");
    assert!(open.machine().is_none());

    let planning = tokio::spawn({
        let tracker = tracker.clone();
        async move { tracker.record_plan(plan("rig-a")).await }
    });
    tokio::time::sleep(A_MOMENT).await;
    assert!(
        !planning.is_finished(),
        "a second unit on a new machine went ahead"
    );
    drop(open);
    let receipt = tokio::time::timeout(PATIENCE, planning)
        .await
        .expect("the plan went ahead once the first unit was dropped")
        .expect("task")
        .expect("plan stored");

    // The next unit on the name finds the machine the plan made.
    let next = store.begin(&name("rig-a")).await.expect("unit opened");
    assert_eq!(next.machine().map(|m| m.id), Some(receipt.machine_id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_machine_or_a_run_waits_for_its_open_unit() {
    let (store, tracker) = store_and_tracker();
    let first = tracker.record_plan(plan("rig-a")).await.expect("plan");
    let second = tracker.record_plan(plan("rig-a")).await.expect("plan");
    let open = store.begin(&name("RIG-A")).await.expect("unit opened");
    assert_eq!(open.machine().map(|m| m.id), Some(first.machine_id));

    let deleting_run = tokio::spawn({
        let store = store.clone();
        async move { store.delete_run(first.ids.run_id).await }
    });
    let deleting_machine = tokio::spawn({
        let store = store.clone();
        async move { store.delete_machine(first.machine_id).await }
    });
    tokio::time::sleep(A_MOMENT).await;
    assert!(
        !deleting_run.is_finished(),
        "a run went while its machine's unit was open"
    );
    assert!(
        !deleting_machine.is_finished(),
        "a machine went while its unit was open"
    );
    assert!(store.run(second.ids.run_id).await.is_ok());

    open.commit(nothing_changed())
        .await
        .expect("unit committed");
    for deleting in [deleting_run, deleting_machine] {
        let deleted = tokio::time::timeout(PATIENCE, deleting)
            .await
            .expect("the delete went ahead once the unit committed")
            .expect("delete task");
        // The run's delete may come second and find its run gone with the machine.
        if let Err(error) = deleted {
            assert!(error.to_string().contains("not found"), "{error}");
        }
    }
    assert!(store.machine(first.machine_id).await.is_err());

    // The name is free: the next plan makes a new machine.
    let again = tracker.record_plan(plan("rig-a")).await.expect("plan");
    assert_ne!(again.machine_id, first.machine_id);
    let machines = store
        .machines(PageRequest::default())
        .await
        .expect("machines listed");
    assert_eq!(machines.items.len(), 1);
}
