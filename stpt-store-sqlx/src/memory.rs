//! What a store remembers of a machine it writes to: the machine, the version of its row, and
//! its ongoing runs in full, each as a [`RunIndex`]. Both SQL backends answer a unit's reads
//! from here while the memory is known to be current (see the crate docs: *Design: ongoing runs in
//! memory, one writer, group commit*), so an event on a remembered machine reads nothing from the database.

use stpt_core::rules::{RunState, ScenarioState, TestState};
use stpt_core::{Changes, Committed, MachineRecord, RunId, RunIndex, ScenarioId, TestId};

/// A machine as last written by this instance (or read under its lock).
#[derive(Debug)]
pub(crate) struct MachineMemory {
    pub(crate) machine: MachineRecord,
    /// The machine row's version these records belong to.
    pub(crate) version: i64,
    /// Ongoing runs, newest first.
    runs: Vec<RunIndex>,
}

impl MachineMemory {
    pub(crate) fn new(machine: MachineRecord, version: i64, mut runs: Vec<RunIndex>) -> Self {
        runs.sort_by_key(|run| std::cmp::Reverse(run.state().id));
        MachineMemory {
            machine,
            version,
            runs,
        }
    }

    /// The ongoing runs' states, newest first.
    pub(crate) fn ongoing_runs(&self) -> Vec<RunState> {
        self.runs.iter().map(RunIndex::state).collect()
    }

    pub(crate) fn run(&self, id: RunId) -> Option<&RunIndex> {
        self.runs.iter().find(|run| run.state().id == id)
    }

    pub(crate) fn run_mut(&mut self, id: RunId) -> Option<&mut RunIndex> {
        self.runs.iter_mut().find(|run| run.state().id == id)
    }

    /// A scenario of any ongoing run.
    pub(crate) fn scenario(&self, id: ScenarioId) -> Option<ScenarioState> {
        self.runs.iter().find_map(|run| run.scenario(id))
    }

    /// A test of any ongoing run, with its run.
    #[cfg(feature = "sqlite")]
    pub(crate) fn locate(&self, id: TestId) -> Option<(RunId, TestState)> {
        self.runs
            .iter()
            .find_map(|run| run.test(id).map(|test| (run.state().id, test)))
    }

    /// A test of any ongoing run.
    pub(crate) fn test(&self, id: TestId) -> Option<TestState> {
        self.runs.iter().find_map(|run| run.test(id))
    }

    /// The memory after a commit: `memory` (or, for the plan that created the machine, a new
    /// one) with what the commit wrote; `None` when it no longer matches the database.
    pub(crate) fn after_commit(
        memory: Option<Self>,
        changes: Changes,
        committed: &Committed,
        version: i64,
    ) -> Option<Self> {
        let mut memory = memory.unwrap_or_else(|| {
            let name = changes
                .new_run
                .as_ref()
                .map_or_else(String::new, |run| run.plan.machine.as_str().to_owned());
            MachineMemory::new(
                MachineRecord {
                    id: committed.machine_id,
                    name,
                    latest_run: None,
                    clock_offset: None,
                    timezone: None,
                },
                version,
                Vec::new(),
            )
        });
        memory.apply(changes, committed, version).then_some(memory)
    }

    /// Records what a commit wrote, taking the plan of a new run. `false` when a changed
    /// record is not remembered: the memory no longer matches the database and must go.
    pub(crate) fn apply(&mut self, changes: Changes, committed: &Committed, version: i64) -> bool {
        if changes.clock_offset.is_some() {
            self.machine.clock_offset = changes.clock_offset;
        }
        for mut work in changes.runs {
            // Failure texts are read from the database: a run full of failures must not
            // hold up to 64 KiB per test in memory until it ends.
            for test in &mut work.tests {
                test.failure = None;
            }
            let Some(run) = self.run_mut(work.run.id) else {
                return false;
            };
            if run.apply(&work).is_err() {
                return false;
            }
        }
        self.runs
            .retain(|run| run.state().aggregate.status().is_ongoing());
        if let (Some(new_run), Some(ids)) = (&changes.new_run, &committed.new_run) {
            self.machine.latest_run = Some(ids.run_id);
            if new_run.aggregate.status().is_ongoing() {
                let Ok(run) = RunIndex::planned(new_run, ids) else {
                    return false;
                };
                self.runs.insert(0, run);
            }
        }
        self.version = version;
        true
    }
}
