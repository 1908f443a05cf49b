//! History and insight across runs: a test's results over time, flaky tests, a run compared
//! with the one before it, the test × machine matrix, and search.
//!
//! A test's identity across runs is its scenario's file (path and name) with its own file
//! ([`TestIdentity`]): the same test file in two scenarios is two identities. Each identity has
//! a fixed-size [`TestKey`], 64 bits of SHA-256 over the four strings, which backends store
//! with every test so that a history read is an index lookup, never a scan of all runs. The
//! key is the same on every backend, so links to a test's history survive a move between them.
//!
//! The definitions live here as pure functions; a [`Store`] only reads rows:
//!
//! - [`FlakyWindow`]: a test's last [`FLAKY_WINDOW`] outcomes on one machine and how often
//!   they flip between pass and fail, kept incrementally as tests finish;
//! - [`RunDiff::between`]: what changed since the machine's previous run of the same master
//!   scenario;
//! - [`Matrix::assemble`]: the latest result of every test on every machine;
//! - [`HistoryStats::of`]: pass rate, failures and median duration over a list of results.

mod diff;
mod flaky;
mod matrix;
mod search;

pub use diff::{DURATION_CHANGES, DiffEntry, DurationChange, RunDiff};
pub use flaky::{FLAKY_WINDOW, FlakyPolicy, FlakyTest, FlakyWindow, Outcome, TestFlakiness};
pub use matrix::{Matrix, MatrixCell, MatrixColumn, MatrixEntry, MatrixRow, MatrixSort};
pub use search::{RunListing, RunSearch, TestListing, TextFilter};

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::{Error, FileRef, MachineId, Result, RunId, Status, Store, TestId};

/// A test's identity across runs: its scenario's file and its own.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TestIdentity {
    /// The scenario the test belongs to.
    pub scenario: FileRef,
    /// The test's own file.
    pub test: FileRef,
}

impl TestIdentity {
    /// The identity of test file `test` in scenario file `scenario`.
    pub fn new(scenario: FileRef, test: FileRef) -> Self {
        TestIdentity { scenario, test }
    }

    /// Its storage and link key.
    pub fn key(&self) -> TestKey {
        TestKey::of(&self.scenario, &self.test)
    }

    /// The identity's text as search matches it: both files' paths and names, lowercased.
    pub fn search_text(&self) -> String {
        format!(
            "{}/{} {}/{}",
            self.scenario.file_path,
            self.scenario.file_name,
            self.test.file_path,
            self.test.file_name
        )
        .to_lowercase()
    }
}

/// 64 bits of SHA-256 over a [`TestIdentity`]'s four strings: its fixed-size key.
///
/// Written as 16 hexadecimal digits in JSON and URLs (a JSON number would lose precision in
/// JavaScript).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TestKey(i64);

impl TestKey {
    /// The key of test file `test` in scenario file `scenario`, without building an identity.
    pub fn of(scenario: &FileRef, test: &FileRef) -> Self {
        let mut hasher = Sha256::new();
        for part in [
            &scenario.file_path,
            &scenario.file_name,
            &test.file_path,
            &test.file_name,
        ] {
            // Length-prefixed, so ("ab", "c") and ("a", "bc") differ.
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part.as_bytes());
        }
        let digest = hasher.finalize();
        let mut first = [0_u8; 8];
        first.copy_from_slice(&digest[..8]);
        TestKey(i64::from_le_bytes(first))
    }

    /// A key as a backend stores it (a signed 64-bit integer column).
    pub fn from_stored(value: i64) -> Self {
        TestKey(value)
    }

    /// The value a backend stores.
    pub fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for TestKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0 as u64)
    }
}

impl FromStr for TestKey {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        if text.len() != 16 {
            return Err(Error::invalid("key", "a test key is 16 hexadecimal digits"));
        }
        u64::from_str_radix(text, 16)
            .map(|value| TestKey(value as i64))
            .map_err(|_| Error::invalid("key", "a test key is 16 hexadecimal digits"))
    }
}

impl Serialize for TestKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TestKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for TestKey {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some("^[0-9a-f]{16}$"))
            .description(Some("A test identity's key: 16 hexadecimal digits"))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for TestKey {}

/// One result of a test identity: a row of its history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TestResult {
    /// The test in its run.
    pub test_id: TestId,
    /// Its run.
    pub run_id: RunId,
    /// The machine that ran it.
    pub machine_id: MachineId,
    /// That machine's name.
    pub machine_name: String,
    /// Its status (`waiting` or `running` while its run goes on).
    pub status: Status,
    /// When it started (runner clock).
    pub timestamp_start: Option<DateTime<Utc>>,
    /// When it stopped (runner clock).
    pub timestamp_stop: Option<DateTime<Utc>>,
}

impl TestResult {
    /// Stop minus start in milliseconds, once both are known.
    pub fn duration_ms(&self) -> Option<i64> {
        crate::duration(self.timestamp_start, self.timestamp_stop).map(|d| d.num_milliseconds())
    }
}

/// Which results of a test identity to read, newest run first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HistoryQuery {
    /// Only results from this machine.
    pub machine: Option<MachineId>,
    /// Only results with this status.
    pub status: Option<Status>,
    /// Only results older than this test (the `next_before` of the previous page).
    pub before: Option<TestId>,
    /// At most this many results ([`HistoryQuery::MAX_LIMIT`] at most; 0 reads the default).
    pub limit: u32,
}

impl HistoryQuery {
    /// Results per page when none is asked for: the strip of recent results on a test page.
    pub const DEFAULT_LIMIT: u32 = 50;
    /// The most results one read answers.
    pub const MAX_LIMIT: u32 = 500;

    /// The limit to apply: the asked one, the default for 0, never over the maximum.
    pub fn effective_limit(&self) -> u32 {
        match self.limit {
            0 => Self::DEFAULT_LIMIT,
            asked => asked.min(Self::MAX_LIMIT),
        }
    }
}

/// A page of a test identity's history: what [`crate::Store::test_history`] answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TestHistory {
    /// The identity.
    pub identity: TestIdentity,
    /// Its key.
    pub key: TestKey,
    /// Its results, newest run first.
    pub results: Vec<TestResult>,
    /// Where the next (older) page starts, if there is one.
    pub next_before: Option<TestId>,
}

impl TestHistory {
    /// A page from up to `limit + 1` results read newest first: the extra one, if present,
    /// only says that an older page exists.
    pub fn from_rows(
        identity: TestIdentity,
        mut results: Vec<TestResult>,
        limit: u32,
    ) -> TestHistory {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let next_before = if results.len() > limit {
            results.truncate(limit);
            results.last().map(|result| result.test_id)
        } else {
            None
        };
        TestHistory {
            key: identity.key(),
            identity,
            results,
            next_before,
        }
    }
}

/// Pass rate, failures and median duration over a list of results.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HistoryStats {
    /// Results with an outcome (pass or fail; see [`Outcome`]).
    pub outcomes: u32,
    /// Of those, passes.
    pub passes: u32,
    /// Of those, failures.
    pub failures: u32,
    /// Passes over outcomes, 0 to 1; `None` without outcomes.
    pub pass_rate: Option<f64>,
    /// The median duration of results with one, in milliseconds.
    pub median_ms: Option<i64>,
}

impl HistoryStats {
    /// The statistics of `results`.
    pub fn of(results: &[TestResult]) -> HistoryStats {
        let mut passes = 0_u32;
        let mut failures = 0_u32;
        for result in results {
            match Outcome::of(result.status) {
                Some(Outcome::Pass) => passes += 1,
                Some(Outcome::Fail) => failures += 1,
                None => {}
            }
        }
        let outcomes = passes + failures;
        let durations: Vec<i64> = results
            .iter()
            .filter(|result| Outcome::of(result.status).is_some())
            .filter_map(TestResult::duration_ms)
            .collect();
        HistoryStats {
            outcomes,
            passes,
            failures,
            pass_rate: (outcomes > 0).then(|| f64::from(passes) / f64::from(outcomes)),
            median_ms: median(durations),
        }
    }
}

/// Run `run` compared with its machine's previous run of the same master scenario
/// ([`crate::Store::previous_run`], [`RunDiff::between`]).
pub async fn run_diff(store: &dyn Store, run: RunId) -> Result<RunDiff> {
    let current = store.run(run).await?;
    match store.previous_run(run).await? {
        Some(previous) => Ok(RunDiff::between(&store.run(previous).await?, &current)),
        None => Ok(RunDiff::first(run)),
    }
}

/// The test × machine matrix of master scenario file `master` on `machines` (every machine
/// that ran it when empty), rows in `sort` order.
pub async fn matrix(
    store: &dyn Store,
    master: &FileRef,
    machines: &[MachineId],
    sort: MatrixSort,
) -> Result<Matrix> {
    let entries = store.matrix_entries(master, machines).await?;
    Ok(Matrix::assemble(master.clone(), entries, sort))
}

/// The lower middle of `values`, or `None` when empty.
pub(crate) fn median(mut values: Vec<i64>) -> Option<i64> {
    values.sort_unstable();
    let middle = values.len().checked_sub(1)? / 2;
    values.get(middle).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, name: &str) -> FileRef {
        FileRef {
            file_path: path.into(),
            file_name: name.into(),
        }
    }

    #[test]
    fn keys_depend_on_all_four_strings_and_their_boundaries() {
        let base = TestKey::of(&file("/s", "s.py"), &file("/t", "a.py"));
        assert_eq!(base, TestKey::of(&file("/s", "s.py"), &file("/t", "a.py")));
        assert_ne!(base, TestKey::of(&file("/s2", "s.py"), &file("/t", "a.py")));
        assert_ne!(base, TestKey::of(&file("/s", "s.py"), &file("/t", "b.py")));
        assert_ne!(
            TestKey::of(&file("ab", "c"), &file("", "")),
            TestKey::of(&file("a", "bc"), &file("", ""))
        );
    }

    #[test]
    fn keys_read_back_from_their_text() {
        let key = TestKey::of(&file("/s", "s.py"), &file("/t", "a.py"));
        let text = key.to_string();
        assert_eq!(text.len(), 16);
        assert_eq!(text.parse::<TestKey>().ok(), Some(key));
        assert!("xyz".parse::<TestKey>().is_err());
        assert!("000000000000000g".parse::<TestKey>().is_err());
        let json = serde_json::to_string(&key).unwrap_or_default();
        assert_eq!(json, format!("\"{text}\""));
    }

    #[test]
    fn a_page_of_history_says_where_the_next_starts() {
        let identity = TestIdentity::new(file("/s", "s.py"), file("/t", "a.py"));
        let result = |id: i64| TestResult {
            test_id: TestId(id),
            run_id: RunId(id),
            machine_id: MachineId(1),
            machine_name: "rig".into(),
            status: Status::Passed,
            timestamp_start: None,
            timestamp_stop: None,
        };
        let page =
            TestHistory::from_rows(identity.clone(), vec![result(9), result(8), result(7)], 2);
        assert_eq!(page.results.len(), 2);
        assert_eq!(page.next_before, Some(TestId(8)));
        let last = TestHistory::from_rows(identity, vec![result(9)], 2);
        assert_eq!(last.next_before, None);
    }
}
