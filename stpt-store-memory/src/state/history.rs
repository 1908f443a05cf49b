//! History reads over the in-memory tables: each walks one identity's tests or the runs list.

use stpt_core::history::{
    FlakyTest, HistoryQuery, MatrixEntry, RunListing, RunSearch, TestFlakiness, TestHistory,
    TestIdentity, TestKey, TestListing, TestResult, TextFilter,
};
use stpt_core::{Error, FileRef, ItemKind, MachineId, Page, PageRequest, Result, RunId, TestId};

use super::{RunRow, State};

impl State {
    /// The identity of a live test, if it is one.
    fn result_of(&self, id: TestId) -> Option<TestResult> {
        let (_, run, test) = self.test(id).ok()?;
        let machine = self.machine_row(run.machine_id).ok()?;
        Some(TestResult {
            test_id: id,
            run_id: run.id,
            machine_id: run.machine_id,
            machine_name: machine.name.clone(),
            status: test.status,
            timestamp_start: test.timestamp_start,
            timestamp_stop: test.timestamp_stop,
        })
    }

    pub(crate) fn test_history(&self, key: TestKey, query: HistoryQuery) -> Result<TestHistory> {
        let (identity, tests) = self
            .identities
            .get(&key)
            .filter(|(_, tests)| tests.iter().any(|id| self.test(*id).is_ok()))
            .ok_or_else(|| Error::not_found(ItemKind::TestIdentity, key.get()))?;
        let limit = query.effective_limit();
        let results = tests
            .iter()
            .rev()
            .filter(|id| query.before.is_none_or(|before| **id < before))
            .filter_map(|id| self.result_of(*id))
            .filter(|result| {
                query
                    .machine
                    .is_none_or(|machine| result.machine_id == machine)
            })
            .filter(|result| query.status.is_none_or(|status| result.status == status))
            .take(limit as usize + 1)
            .collect();
        Ok(TestHistory::from_rows(identity.clone(), results, limit))
    }

    pub(crate) fn previous_run(&self, id: RunId) -> Result<Option<RunId>> {
        let run = self.run_row(id)?;
        let machine = self.machine_row(run.machine_id)?;
        let master = run.master.file_ref();
        Ok(machine
            .runs
            .iter()
            .rev()
            .filter(|other| **other < id)
            .filter_map(|other| self.run_row(*other).ok())
            .find(|other| other.master.file_ref() == master)
            .map(|other| other.id))
    }

    /// The identity key of each test of `run`, in plan order.
    fn keyed_tests<'a>(&'a self, run: &'a RunRow) -> impl Iterator<Item = (TestId, TestKey)> + 'a {
        run.states.tests().iter().filter_map(|test| {
            let (row, _, _) = self.test(test.id).ok()?;
            Some((test.id, row.key))
        })
    }

    pub(crate) fn run_flakiness(&self, id: RunId, min_flips: u32) -> Result<Vec<TestFlakiness>> {
        let run = self.run_row(id)?;
        Ok(self
            .keyed_tests(run)
            .filter_map(|(test_id, key)| {
                let window = self.flaky.get(&(run.machine_id, key))?;
                (window.flips() >= min_flips).then(|| TestFlakiness {
                    test_id,
                    key,
                    window: window.clone(),
                })
            })
            .collect())
    }

    pub(crate) fn flaky_tests(&self, min_flips: u32, limit: u32) -> Vec<FlakyTest> {
        let mut found: Vec<FlakyTest> = self
            .flaky
            .iter()
            .filter(|(_, window)| window.flips() >= min_flips)
            .filter_map(|((machine_id, key), window)| {
                let machine = self.machine_row(*machine_id).ok()?;
                let (identity, _) = self.identities.get(key)?;
                Some(FlakyTest {
                    identity: identity.clone(),
                    key: *key,
                    machine_id: *machine_id,
                    machine_name: machine.name.clone(),
                    window: window.clone(),
                })
            })
            .collect();
        found.sort_by(|a, b| {
            b.window
                .flips()
                .cmp(&a.window.flips())
                .then_with(|| a.machine_name.cmp(&b.machine_name))
                .then(a.key.cmp(&b.key))
        });
        found.truncate(limit as usize);
        found
    }

    pub(crate) fn matrix_entries(
        &self,
        master: &FileRef,
        machines: &[MachineId],
    ) -> Vec<MatrixEntry> {
        let mut entries = Vec::new();
        for machine_id in self.machine_by_key.values() {
            if !machines.is_empty() && !machines.contains(machine_id) {
                continue;
            }
            let Ok(machine) = self.machine_row(*machine_id) else {
                continue;
            };
            let latest = machine
                .runs
                .iter()
                .rev()
                .filter_map(|id| self.run_row(*id).ok())
                .find(|run| run.master.file_ref() == *master);
            let Some(run) = latest else { continue };
            for (seq, (test_id, key)) in self.keyed_tests(run).enumerate() {
                let (Some((identity, _)), Ok((_, _, test))) =
                    (self.identities.get(&key), self.test(test_id))
                else {
                    continue;
                };
                entries.push(MatrixEntry {
                    machine_id: *machine_id,
                    machine_name: machine.name.clone(),
                    run_id: run.id,
                    test_id,
                    seq: i64::try_from(seq).unwrap_or(i64::MAX),
                    identity: identity.clone(),
                    status: test.status,
                    window: self
                        .flaky
                        .get(&(*machine_id, key))
                        .cloned()
                        .unwrap_or_default(),
                });
            }
        }
        entries
    }

    pub(crate) fn search_runs(&self, search: &RunSearch, page: PageRequest) -> Page<RunListing> {
        let found: Vec<RunListing> = self
            .runs
            .iter()
            .rev()
            .filter(|run| self.run_row(run.id).is_ok())
            .filter(|run| search.matches(&run.master.file_ref(), &self.run_summary(run)))
            .filter_map(|run| {
                Some(RunListing {
                    run: self.run_summary(run),
                    machine_name: self.machine_row(run.machine_id).ok()?.name.clone(),
                    master: run.master.file_ref(),
                })
            })
            .collect();
        paged(found, page)
    }

    pub(crate) fn search_tests(
        &self,
        text: Option<&TextFilter>,
        page: PageRequest,
    ) -> Page<TestListing> {
        let mut found: Vec<&TestIdentity> = self
            .identities
            .values()
            .filter(|(_, tests)| tests.iter().any(|id| self.test(*id).is_ok()))
            .map(|(identity, _)| identity)
            .filter(|identity| {
                text.is_none_or(|text| identity.search_text().contains(text.as_str()))
            })
            .collect();
        found.sort_by(|a, b| {
            (
                &a.test.file_name,
                &a.test.file_path,
                &a.scenario.file_name,
                &a.scenario.file_path,
            )
                .cmp(&(
                    &b.test.file_name,
                    &b.test.file_path,
                    &b.scenario.file_name,
                    &b.scenario.file_path,
                ))
        });
        let listings = found.into_iter().cloned().map(TestListing::new).collect();
        paged(listings, page)
    }
}

fn paged<T>(all: Vec<T>, page: PageRequest) -> Page<T> {
    let total = all.len() as u64;
    let items = all
        .into_iter()
        .skip(usize::try_from(page.offset()).unwrap_or(usize::MAX))
        .take(page.size() as usize)
        .collect();
    Page::new(items, page, total)
}
