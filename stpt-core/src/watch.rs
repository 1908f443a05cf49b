//! The liveness watch: machines' liveness kept current on a timer, and the runs of machines
//! gone silent closed, so nothing waits for an event that may never come.

use std::collections::HashMap;
use std::sync::Arc;

use crate::live::{LiveEvent, Topic};
use crate::rules::{EventTime, RunWork};
use crate::store::Changes;
use crate::{
    Activity, Error, Liveness, MachineId, MachineName, MachineSummary, PageRequest, RemainingWork,
    Result, RunId, RunSummary, Tracker,
};

/// Machines read per page while watching.
const WATCH_PAGE: u32 = 100;

impl Tracker {
    /// A machine's liveness now, under this tracker's
    /// [`LivenessPolicy`](crate::LivenessPolicy). Reads the machine's latest run only when its
    /// silence is long enough for that run to matter.
    pub async fn liveness(&self, machine: &MachineSummary) -> Result<Liveness> {
        Ok(self.judge(machine).await?.0)
    }

    /// Machines whose liveness is `liveness`, ordered by name, paginated after filtering: what a
    /// wall screen asks for ("which rigs are offline?"). Reads every machine, so it costs a
    /// pass over the machines list (a lab has hundreds, not millions).
    pub async fn machines_by_liveness(
        &self,
        liveness: Liveness,
        page: PageRequest,
    ) -> Result<crate::Page<MachineSummary>> {
        let matching = self
            .every_machine_judged()
            .await?
            .into_iter()
            .filter(|machine| machine.liveness == Some(liveness))
            .collect();
        paged(matching, page)
    }

    /// Every machine, offline ones first, then quiet, then online, each group by name: what
    /// the machines list shows sorted by liveness. Reads every machine, as
    /// [`Tracker::machines_by_liveness`].
    pub async fn machines_least_alive_first(
        &self,
        page: PageRequest,
    ) -> Result<crate::Page<MachineSummary>> {
        let mut machines = self.every_machine_judged().await?;
        // Stable: the store's name order stays within each group.
        machines.sort_by_key(|machine| match machine.liveness {
            Some(Liveness::Offline) => 0,
            Some(Liveness::Quiet) => 1,
            Some(Liveness::Online) | None => 2,
        });
        paged(machines, page)
    }

    /// Every machine in the store's order, each with its liveness and backlog.
    async fn every_machine_judged(&self) -> Result<Vec<MachineSummary>> {
        let mut judged = Vec::new();
        let mut number = 1;
        loop {
            let machines = self
                .store()
                .machines(PageRequest::new(number, WATCH_PAGE)?)
                .await?;
            let more = machines.has_next();
            for mut machine in machines.items {
                machine.liveness = Some(self.liveness(&machine).await?);
                machine.backlog = self.backlog(machine.id);
                judged.push(machine);
            }
            if !more {
                break;
            }
            number += 1;
        }
        Ok(judged)
    }

    /// The liveness of `machine`, and its latest run if it is ongoing and was read.
    async fn judge(&self, machine: &MachineSummary) -> Result<(Liveness, Option<RunSummary>)> {
        let policy = self.liveness_policy().for_machine(&machine.timeouts);
        let now = self.now();
        let quick = Activity::of(machine.status, machine.last_seen, None);
        let quick_liveness = policy.judge(&quick, now);
        // The latest run can only raise the thresholds: online stays online.
        if quick_liveness == Liveness::Online || quick.running.is_none() {
            return Ok((quick_liveness, None));
        }
        let latest = self
            .store()
            .runs(machine.id, PageRequest::first(1)?)
            .await?
            .items
            .into_iter()
            .next()
            .filter(|run| Some(run.id) == machine.latest_run);
        let mut activity = Activity::of(machine.status, machine.last_seen, latest.as_ref());
        // The running test's own history, where the store keeps one, beats the run's pace.
        if let Some(run) = &latest {
            if let Some(usual) = self.running_test_usual(run.id).await? {
                activity.running = Some(Some(usual));
            }
        }
        Ok((policy.judge(&activity, now), latest))
    }

    /// How long run `run`'s running test usually takes, from its duration histories.
    async fn running_test_usual(&self, run: RunId) -> Result<Option<chrono::Duration>> {
        match self.store().remaining_work(run).await {
            Ok(remaining) => Ok(remaining
                .work
                .iter()
                .find(|work| work.running.is_some())
                .and_then(RemainingWork::usual)),
            Err(Error::NotSupported { .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Closes the ongoing run `judged` of `machine` `unknown`, as silent since the machine's
    /// last event, unless anything was applied to it since it was judged. Answers whether it
    /// closed it.
    async fn close_silent_run(
        &self,
        machine: &MachineSummary,
        judged: &RunSummary,
    ) -> Result<bool> {
        let Some(last_seen) = machine.last_seen else {
            return Ok(false);
        };
        let now = self.now();
        let mut tx = self
            .store()
            .begin(&MachineName::new(machine.name.as_str())?)
            .await?;
        let Some(record) = tx.machine().cloned().filter(|m| m.id == machine.id) else {
            return Ok(false);
        };
        let current = tx
            .ongoing_runs()
            .await?
            .into_iter()
            .find(|run| run.id == judged.id);
        // Any event applied since the judgement moved the run's counts or times.
        let Some(run) = current.filter(|run| {
            run.aggregate.counts == judged.statistics.counts
                && run.aggregate.timestamp_start == judged.timestamp_start
        }) else {
            return Ok(false);
        };
        let status_before = run.aggregate.status();
        let scenarios = tx.scenarios(run.id).await?;
        let mut work = RunWork::new(run, scenarios);
        let runner_now = record
            .clock_offset
            .map_or(now, |offset| now + offset.duration());
        work.close_silent(last_seen, EventTime::new(runner_now, now))?;
        let committed = tx
            .commit(Changes {
                // Closing is not hearing from the machine.
                seen_at: last_seen,
                clock_offset: None,
                runs: vec![work.clone()],
                new_run: None,
                record: None,
            })
            .await;
        match committed {
            Ok(_) => {}
            // Another writer moved first: judge again on the next tick.
            Err(Error::Stale { .. }) => return Ok(false),
            Err(error) => return Err(error),
        }
        tracing::warn!(
            machine = %machine.name,
            run = %work.run.id,
            %last_seen,
            "runner went silent: its ongoing run is closed unknown"
        );
        self.publish_run_change(machine.id, &work);
        let status = work.run.aggregate.status();
        if status != status_before && record.latest_run == Some(work.run.id) {
            self.publish_machine_status(machine.id, record.name, status);
        }
        Ok(true)
    }
}

/// Keeps machines' liveness current: on each [`LivenessWatch::tick`] it judges every
/// machine, publishes [`LiveEvent::MachineLiveness`] for each change, and closes the ongoing
/// run of every machine gone offline (its ongoing tests become `unknown`, the run records when
/// the runner went silent). A runner that comes back afterwards is answered as for any run
/// that is over ([rule 5](crate::rules#rule-5)): its late events match nothing and change
/// nothing.
///
/// One watch per server is enough; several (instances sharing a database) are harmless, as
/// a close applies only while nothing moved the run since it was judged.
#[derive(Debug, Default)]
pub struct LivenessWatch {
    known: HashMap<MachineId, Liveness>,
}

impl LivenessWatch {
    /// A watch that has published nothing yet.
    pub fn new() -> Self {
        LivenessWatch::default()
    }

    /// One pass over every machine; answers the runs it closed. Also adds the
    /// tests finished since the last pass to the histories ([`Tracker::flush_finished`]).
    pub async fn tick(&mut self, tracker: &Tracker) -> Result<Vec<RunId>> {
        if let Err(error) = tracker.flush_finished().await {
            tracing::warn!(%error, "finished tests not added to the histories yet; trying again next tick");
        }
        let mut closed = Vec::new();
        let mut number = 1;
        loop {
            let page = tracker
                .store()
                .machines(PageRequest::new(number, WATCH_PAGE)?)
                .await?;
            for machine in &page.items {
                if let Some(run) = self.watch_machine(tracker, machine).await? {
                    closed.push(run);
                }
            }
            if !page.has_next() {
                return Ok(closed);
            }
            number += 1;
        }
    }

    async fn watch_machine(
        &mut self,
        tracker: &Tracker,
        machine: &MachineSummary,
    ) -> Result<Option<RunId>> {
        let (liveness, latest) = tracker.judge(machine).await?;
        let mut closed = None;
        if liveness == Liveness::Offline {
            if let Some(run) = latest.filter(|run| run.status.is_ongoing()) {
                if tracker.close_silent_run(machine, &run).await? {
                    closed = Some(run.id);
                }
            }
        }
        if self.known.insert(machine.id, liveness) != Some(liveness) {
            let event = Arc::new(LiveEvent::MachineLiveness {
                machine_id: machine.id,
                liveness,
                last_seen: machine.last_seen,
            });
            tracker.bus().publish(Topic::Machines, Arc::clone(&event));
            tracker.bus().publish(Topic::Machine(machine.id), event);
        }
        Ok(closed)
    }

    /// Ticks every `interval` until the task is dropped; a failed pass is logged and the next
    /// one tries again. Spawn it beside the server.
    pub async fn run(mut self, tracker: Tracker, interval: std::time::Duration) {
        let mut timer = tokio::time::interval(interval);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            timer.tick().await;
            if let Err(error) = self.tick(&tracker).await {
                tracing::warn!(%error, "liveness watch pass failed; trying again next tick");
            }
        }
    }
}

/// Page `page` of `all`; past the last page is not found.
fn paged(all: Vec<MachineSummary>, page: PageRequest) -> Result<crate::Page<MachineSummary>> {
    let total = all.len() as u64;
    let items = all
        .into_iter()
        .skip(usize::try_from(page.offset()).unwrap_or(usize::MAX))
        .take(page.size() as usize)
        .collect();
    crate::Page::new(items, page, total).within_range()
}
