//! The service that applies runner events: reads what an event touches, applies the rules,
//! commits, then tells live subscribers what changed.

use chrono::{DateTime, Utc};
use serde::Serialize;
use std::fmt::Debug;
use std::sync::Arc;

use crate::live::{LiveBus, LiveEvent, RunChange, Topic};
use crate::rules::{RunState, RunWork};
use crate::store::{Changes, MachineRecord, NewRun, PlannedIds, Store, StoreTx};
use crate::{
    Error, ItemDetail, ItemKind, ItemRef, MachineId, MachineStatus, MachineSummary, NoMatch, Page,
    PageRequest, Plan, Result, RunDetail, RunId, RunSummary, Statistics, Status, TestId, TestStart,
    TestStop,
};

/// Where the tracker takes the server's time from.
pub trait Clock: Send + Sync + Debug + 'static {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Applies runner events to a [`Store`] with SPEC's rules and publishes what changed on a
/// [`LiveBus`]. Cheap to clone; share one per process.
#[derive(Debug, Clone)]
pub struct Tracker {
    store: Arc<dyn Store>,
    bus: Arc<dyn LiveBus>,
    clock: Arc<dyn Clock>,
}

/// What storing a plan did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanReceipt {
    /// The machine (created if new).
    pub machine_id: MachineId,
    /// The new run's ids.
    pub ids: PlannedIds,
    /// Runs of the machine that were still ongoing and were abandoned (rule 1).
    pub abandoned: Vec<RunId>,
}

/// What applying a test event did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventReceipt {
    /// The machine.
    pub machine_id: MachineId,
    /// The run.
    pub run_id: RunId,
    /// The test the event matched.
    pub test_id: TestId,
    /// The test's new status.
    pub status: Status,
    /// The run's new status.
    pub run_status: Status,
}

impl Tracker {
    /// A tracker on the system clock.
    pub fn new(store: Arc<dyn Store>, bus: Arc<dyn LiveBus>) -> Self {
        Tracker {
            store,
            bus,
            clock: Arc::new(SystemClock),
        }
    }

    /// The same tracker reading time from `clock`.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The server's current time, from this tracker's clock (for "started 5 minutes ago").
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The store behind this tracker.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The bus this tracker publishes on.
    pub fn bus(&self) -> &Arc<dyn LiveBus> {
        &self.bus
    }

    /// Rule 1: stores `plan` as the machine's new latest run, every item `waiting`, after
    /// abandoning the machine's ongoing runs (their ongoing tests become `unknown` at the
    /// plan's timestamp).
    #[tracing::instrument(skip_all, fields(machine = %plan.machine, tests = plan.test_count()))]
    pub async fn record_plan(&self, plan: Plan) -> Result<PlanReceipt> {
        let now = self.clock.now();
        let mut tx = self.store.begin(&plan.machine).await?;
        let machine_name = tx
            .machine()
            .map_or_else(|| plan.machine.as_str().to_owned(), |m| m.name.clone());
        let mut abandoned = Vec::new();
        if tx.machine().is_some() {
            for run in tx.ongoing_runs().await? {
                let scenarios = tx.scenarios(run.id).await?;
                let mut work = RunWork::new(run, scenarios);
                work.close_ongoing(Status::Unknown, plan.timestamp)?;
                abandoned.push(work);
            }
        }
        let new_run = NewRun::from_plan(plan, now);
        let summary_parts = (
            new_run.plan.timestamp,
            new_run.aggregate,
            u32::try_from(new_run.scenario_aggregates.len()).unwrap_or(u32::MAX),
        );
        let committed = tx
            .commit(Changes {
                seen_at: now,
                runs: abandoned.clone(),
                new_run: Some(new_run),
            })
            .await?;
        let ids = committed
            .new_run
            .ok_or_else(|| Error::backend("store committed a plan without returning its ids"))?;
        let machine_id = committed.machine_id;
        for work in &abandoned {
            self.publish_run_change(machine_id, work);
        }
        let (timestamp, aggregate, scenario_count) = summary_parts;
        let run = RunSummary {
            id: ids.run_id,
            machine_id,
            timestamp,
            received_at: now,
            status: aggregate.status(),
            statistics: Statistics::new(aggregate.counts, scenario_count),
            timestamp_start: None,
            timestamp_stop: None,
        };
        self.publish_machine_status(machine_id, machine_name, run.status);
        self.bus.publish(
            Topic::Machine(machine_id),
            Arc::new(LiveEvent::RunCreated { run }),
        );
        Ok(PlanReceipt {
            machine_id,
            ids,
            abandoned: abandoned.iter().map(|work| work.run.id).collect(),
        })
    }

    /// Rule 2: the first `waiting` test of that path and name in the machine's ongoing run,
    /// in plan order, starts; any other running test of the run becomes `unknown`.
    #[tracing::instrument(skip_all, fields(machine = %event.machine, test = %event.file_name))]
    pub async fn record_test_start(&self, event: TestStart) -> Result<EventReceipt> {
        let now = self.clock.now();
        let mut tx = self.store.begin(&event.machine).await?;
        let (machine, run) = ongoing_run(tx.as_mut(), event.machine.as_str()).await?;
        let no_waiting_test = || {
            Error::NoMatch(NoMatch::NoWaitingTest {
                file_path: event.file_path.clone(),
                file_name: event.file_name.clone(),
            })
        };
        let target = tx
            .first_waiting_test(run.id, &event.file_path, &event.file_name)
            .await?
            .ok_or_else(no_waiting_test)?;
        let running = tx.running_test(run.id).await?;
        let mut scenarios = vec![tx.scenario(target.scenario_id).await?];
        if let Some(running) = &running {
            if running.scenario_id != target.scenario_id {
                scenarios.push(tx.scenario(running.scenario_id).await?);
            }
        }
        let test_id = target.id;
        let status_before = run.aggregate.status();
        let mut work = RunWork::new(run, scenarios);
        work.start_test(target, running, event.at)?;
        self.commit_event(tx, machine, status_before, work, test_id, now)
            .await
    }

    /// Rules 3 and 8: the matching running test takes the final status; `cancelled` cancels
    /// every ongoing test of the run.
    #[tracing::instrument(skip_all, fields(machine = %event.machine, test = %event.file_name, status = %event.status))]
    pub async fn record_test_stop(&self, event: TestStop) -> Result<EventReceipt> {
        if event.status.is_ongoing() {
            return Err(Error::invalid(
                "status",
                format!("`{}` is not a final status", event.status),
            ));
        }
        let now = self.clock.now();
        let mut tx = self.store.begin(&event.machine).await?;
        let (machine, run) = ongoing_run(tx.as_mut(), event.machine.as_str()).await?;
        let running = tx
            .running_test(run.id)
            .await?
            .filter(|t| t.file_path == event.file_path && t.file_name == event.file_name)
            .ok_or_else(|| {
                Error::NoMatch(NoMatch::NoRunningTest {
                    file_path: event.file_path.clone(),
                    file_name: event.file_name.clone(),
                })
            })?;
        let scenarios = if event.status == Status::Cancelled {
            tx.scenarios(run.id).await?
        } else {
            vec![tx.scenario(running.scenario_id).await?]
        };
        let test_id = running.id;
        let status_before = run.aggregate.status();
        let mut work = RunWork::new(run, scenarios);
        work.stop_test(running, event.status, event.at)?;
        self.commit_event(tx, machine, status_before, work, test_id, now)
            .await
    }

    async fn commit_event(
        &self,
        tx: Box<dyn StoreTx>,
        machine: MachineRecord,
        status_before: Status,
        work: RunWork,
        test_id: TestId,
        now: DateTime<Utc>,
    ) -> Result<EventReceipt> {
        let committed = tx
            .commit(Changes {
                seen_at: now,
                runs: vec![work.clone()],
                new_run: None,
            })
            .await?;
        let run_status = work.run.aggregate.status();
        self.publish_run_change(committed.machine_id, &work);
        if status_before != run_status && machine.latest_run == Some(work.run.id) {
            self.publish_machine_status(machine.id, machine.name, run_status);
        }
        let status = work
            .tests
            .iter()
            .find(|t| t.id == test_id)
            .map_or(run_status, |t| t.status);
        Ok(EventReceipt {
            machine_id: machine.id,
            run_id: work.run.id,
            test_id,
            status,
            run_status,
        })
    }

    fn publish_run_change(&self, machine_id: MachineId, work: &RunWork) {
        let change = RunChange::from_work(machine_id, work);
        self.bus.publish(
            Topic::Machine(machine_id),
            Arc::new(LiveEvent::RunChanged(change)),
        );
    }

    fn publish_machine_status(&self, machine_id: MachineId, machine_name: String, status: Status) {
        self.bus.publish(
            Topic::Machines,
            Arc::new(LiveEvent::MachineStatus {
                machine_id,
                machine_name,
                status: MachineStatus::Run(status),
            }),
        );
    }

    /// Machines ordered by name; [`Error::NotFound`] for a page past the last.
    pub async fn machines(&self, page: PageRequest) -> Result<Page<MachineSummary>> {
        within_range(self.store.machines(page).await?)
    }

    /// One machine.
    pub async fn machine(&self, id: MachineId) -> Result<MachineSummary> {
        self.store.machine(id).await
    }

    /// A machine's runs, newest first; [`Error::NotFound`] for a page past the last.
    pub async fn runs(&self, machine: MachineId, page: PageRequest) -> Result<Page<RunSummary>> {
        within_range(self.store.runs(machine, page).await?)
    }

    /// One run in full.
    pub async fn run(&self, id: RunId) -> Result<RunDetail> {
        self.store.run(id).await
    }

    /// A machine's latest run in full (rule 6: the plan it posted last), or `None`.
    pub async fn latest_run(&self, machine: MachineId) -> Result<Option<RunDetail>> {
        match self.store.machine(machine).await?.latest_run {
            Some(run) => Ok(Some(self.store.run(run).await?)),
            None => Ok(None),
        }
    }

    /// One item with its script.
    pub async fn item(&self, item: ItemRef) -> Result<ItemDetail> {
        self.store.item(item).await
    }
}

async fn ongoing_run(
    tx: &mut dyn StoreTx,
    machine_name: &str,
) -> Result<(MachineRecord, RunState)> {
    let machine = tx.machine().cloned().ok_or_else(|| {
        Error::NoMatch(NoMatch::UnknownMachine {
            machine_name: machine_name.to_owned(),
        })
    })?;
    let run = tx.ongoing_runs().await?.into_iter().next().ok_or_else(|| {
        Error::NoMatch(NoMatch::NoOngoingRun {
            machine_name: machine.name.clone(),
        })
    })?;
    Ok((machine, run))
}

fn within_range<T>(page: Page<T>) -> Result<Page<T>> {
    if page.is_past_end() {
        return Err(Error::not_found(
            ItemKind::Page,
            i64::from(page.request.number()),
        ));
    }
    Ok(page)
}
