//! History and insight reads on a seeded history: a test's history page, a run diff, the
//! test × machine matrix and search, through the `Store` trait (the server's time for those
//! pages minus rendering), on SQLite and PostgreSQL.
//!
//! The history is written by a bulk loader (direct SQL: multi-row INSERTs in one transaction
//! on SQLite, `COPY … FROM STDIN` on PostgreSQL), not through the Tracker: M machines
//! (`rig-000`, …), each with R finished runs of master `/m/nightly.py` (10 scenarios × 20
//! tests, ~3% failed, a few identities flaky on purpose), and the first 30 machines with one
//! run of the 500-test master `/m/matrix.py`; test identities, flaky windows and the
//! machines' latest runs as the store keeps them.
//!
//! `cargo bench -p stpt-benches --bench history` (20 machines × 50 runs);
//! `STPT_BENCH_HISTORY_FULL=1` for 200 machines × 500 runs (20 million test results);
//! `STPT_BENCH_HISTORY_SCALE=M,R` for M machines × R runs. PostgreSQL too when
//! `STPT_BENCH_POSTGRES_URL` is set (e.g. `postgres://postgres@127.0.0.1:5432/postgres`; a
//! scratch database is created and dropped). The SQLite file is deleted at the end (both are
//! kept, and named on stderr, with `STPT_BENCH_HISTORY_KEEP=1`).

use chrono::{DateTime, Duration as Span, TimeZone, Utc};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::{Duration, Instant};
use stpt_core::history::{
    self, FlakyWindow, HistoryQuery, MatrixSort, RunSearch, TestIdentity, TestKey, TextFilter,
};
use stpt_core::{FileRef, MachineId, PageRequest, RunId, Status, Store, machine_key};
use stpt_store_sqlx::sqlx::postgres::PgConnection;
use stpt_store_sqlx::sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteSynchronous};
use stpt_store_sqlx::sqlx::{self, Connection, Executor, QueryBuilder, Sqlite};
use stpt_store_sqlx::{PgStore, SqliteStore};

/// Scenarios per nightly run, tests per scenario.
const SCENARIOS: usize = 10;
const TESTS_PER_SCENARIO: usize = 20;
/// The matrix master: scenarios × tests per scenario (500 tests), on this many machines.
const MATRIX_SCENARIOS: usize = 10;
const MATRIX_TESTS_PER_SCENARIO: usize = 50;
const MATRIX_MACHINES: usize = 30;
/// Failed results per thousand (besides the flaky identities).
const FAILED_PER_MILLE: u64 = 30;
/// Every `FLAKY_EVERY`-th identity of the nightly master alternates between pass and fail.
const FLAKY_EVERY: usize = 40;
/// Outcomes in a flaky window (as `FlakyWindow` keeps).
const WINDOW: usize = 20;
/// Timed reads per figure, after `WARMUP` untimed ones.
const READS: usize = 30;
const WARMUP: usize = 3;
/// SQLite's limit on bound parameters per statement.
const SQLITE_BINDS: usize = 32_766;
/// Rows buffered per table before a flush.
const FLUSH_ROWS: usize = 50_000;

/// The seeded history's size.
#[derive(Debug, Clone, Copy)]
struct Scale {
    machines: usize,
    runs: usize,
}

impl Scale {
    fn from_env() -> Scale {
        if let Ok(text) = std::env::var("STPT_BENCH_HISTORY_SCALE") {
            let mut parts = text.split(',').map(|part| {
                part.trim()
                    .parse::<usize>()
                    .expect("STPT_BENCH_HISTORY_SCALE is MACHINES,RUNS")
            });
            let machines = parts.next().expect("machines");
            let runs = parts.next().expect("runs");
            assert!(machines > 0 && runs > 0, "at least one machine and one run");
            return Scale { machines, runs };
        }
        if std::env::var("STPT_BENCH_HISTORY_FULL").is_ok_and(|v| v == "1") {
            Scale {
                machines: 200,
                runs: 500,
            }
        } else {
            Scale {
                machines: 20,
                runs: 50,
            }
        }
    }

    fn matrix_machines(self) -> usize {
        self.machines.min(MATRIX_MACHINES)
    }

    fn nightly_tests(self) -> usize {
        self.machines * self.runs * SCENARIOS * TESTS_PER_SCENARIO
    }

    /// Run ids: the matrix runs first (1…), then the nightly runs round by round.
    fn nightly_run_id(self, round: usize, machine: usize) -> i64 {
        (self.matrix_machines() + round * self.machines + machine + 1) as i64
    }
}

/// A value of a row to load.
#[derive(Debug, Clone)]
enum V {
    I(i64),
    S(Arc<str>),
    T(DateTime<Utc>),
    Null,
}

/// Rows of one table waiting to be written.
#[derive(Debug)]
struct Table {
    name: &'static str,
    columns: &'static [&'static str],
    rows: Vec<Vec<V>>,
}

impl Table {
    fn new(name: &'static str, columns: &'static [&'static str]) -> Table {
        Table {
            name,
            columns,
            rows: Vec::new(),
        }
    }
}

const MACHINE_COLS: &[&str] = &["id", "name", "name_key", "latest_run_id", "last_seen"];
const COUNT_COLS: [&str; 8] = [
    "n_waiting",
    "n_running",
    "n_passed",
    "n_warning",
    "n_failed",
    "n_error",
    "n_unknown",
    "n_cancelled",
];
const RUN_COLS: &[&str] = &[
    "id",
    "machine_id",
    "planned_at",
    "received_at",
    "file_path",
    "file_name",
    "script_id",
    "status",
    "scenario_count",
    COUNT_COLS[0],
    COUNT_COLS[1],
    COUNT_COLS[2],
    COUNT_COLS[3],
    COUNT_COLS[4],
    COUNT_COLS[5],
    COUNT_COLS[6],
    COUNT_COLS[7],
    "timestamp_start",
    "timestamp_stop",
];
const SCENARIO_COLS: &[&str] = &[
    "id",
    "run_id",
    "seq",
    "file_path",
    "file_name",
    "script_id",
    "status",
    COUNT_COLS[0],
    COUNT_COLS[1],
    COUNT_COLS[2],
    COUNT_COLS[3],
    COUNT_COLS[4],
    COUNT_COLS[5],
    COUNT_COLS[6],
    COUNT_COLS[7],
    "timestamp_start",
    "timestamp_stop",
];
const TEST_COLS: &[&str] = &[
    "id",
    "run_id",
    "scenario_id",
    "seq",
    "file_path",
    "file_name",
    "file_key",
    "script_id",
    "status",
    "timestamp_start",
    "timestamp_stop",
    "identity_key",
    "machine_id",
];
const IDENTITY_COLS: &[&str] = &[
    "identity_key",
    "scenario_path",
    "scenario_name",
    "file_path",
    "file_name",
    "search_text",
];
const FLAKY_COLS: &[&str] = &[
    "machine_id",
    "identity_key",
    "outcomes",
    "flips",
    "failures",
];

/// Where the loader writes: a SQLite connection in a transaction, or a PostgreSQL connection
/// (one `COPY` per flush).
enum Sink<'c> {
    Sqlite(&'c mut SqliteConnection),
    Pg(&'c mut PgConnection),
}

impl Sink<'_> {
    async fn write(&mut self, table: &mut Table) {
        if table.rows.is_empty() {
            return;
        }
        match self {
            Sink::Sqlite(conn) => {
                let per_statement = SQLITE_BINDS / table.columns.len();
                for chunk in table.rows.chunks(per_statement) {
                    let mut builder = QueryBuilder::<Sqlite>::new(format!(
                        "INSERT INTO stpt_{} ({}) ",
                        table.name,
                        table.columns.join(", ")
                    ));
                    builder.push_values(chunk, |mut row, values| {
                        for value in values {
                            match value {
                                V::I(i) => row.push_bind(*i),
                                V::S(s) => row.push_bind(s.to_string()),
                                V::T(t) => {
                                    row.push_bind(t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
                                }
                                V::Null => row.push_bind(None::<i64>),
                            };
                        }
                    });
                    builder
                        .build()
                        .persistent(true)
                        .execute(&mut **conn)
                        .await
                        .expect("sqlite insert");
                }
            }
            Sink::Pg(conn) => {
                use std::fmt::Write;
                let mut text = String::with_capacity(table.rows.len() * 160);
                for values in &table.rows {
                    for (i, value) in values.iter().enumerate() {
                        if i > 0 {
                            text.push('\t');
                        }
                        // Generated text: no tab, newline or backslash to escape.
                        let _ = match value {
                            V::I(n) => write!(text, "{n}"),
                            V::S(s) => write!(text, "{s}"),
                            V::T(t) => write!(text, "{}", t.format("%Y-%m-%d %H:%M:%S%.6f+00")),
                            V::Null => write!(text, "\\N"),
                        };
                    }
                    text.push('\n');
                }
                let mut copy = conn
                    .copy_in_raw(&format!(
                        "COPY stpt.{} ({}) FROM STDIN",
                        table.name,
                        table.columns.join(", ")
                    ))
                    .await
                    .expect("copy starts");
                copy.send(text.as_bytes()).await.expect("copy data");
                copy.finish().await.expect("copy ends");
            }
        }
        table.rows.clear();
    }

    async fn flush_if_full(&mut self, table: &mut Table) {
        if table.rows.len() >= FLUSH_ROWS {
            self.write(table).await;
        }
    }
}

/// 64 bits of SHA-256 of a file's path and name, as the store keys tests (`file_key`).
fn file_key(file_path: &str, file_name: &str) -> i64 {
    let mut hasher = Sha256::new();
    hasher.update((file_path.len() as u64).to_le_bytes());
    hasher.update(file_path.as_bytes());
    hasher.update(file_name.as_bytes());
    let digest = hasher.finalize();
    let mut first = [0_u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_le_bytes(first)
}

/// A well-mixed hash of `x` (splitmix64).
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn file(path: &str, name: &str) -> FileRef {
    FileRef {
        file_path: path.to_owned(),
        file_name: name.to_owned(),
    }
}

/// One test of a master's plan, with what every row of it repeats.
struct PlanTest {
    scenario: usize,
    path: Arc<str>,
    name: Arc<str>,
    file_key: i64,
    identity: TestIdentity,
    key: TestKey,
    flaky: bool,
}

/// A master scenario's plan: its file, its scenarios' files and its tests.
struct MasterPlan {
    master: FileRef,
    scenarios: Vec<(Arc<str>, Arc<str>)>,
    tests: Vec<PlanTest>,
}

impl MasterPlan {
    /// Master `/m/{name}.py` of scenarios `/s/{scenario}-{s}.py`, each of tests
    /// `/t/{scenario}-{s}/test-{t}.py`; some identities flaky when `flaky`.
    fn new(
        name: &str,
        scenario: &str,
        scenarios: usize,
        per_scenario: usize,
        flaky: bool,
    ) -> MasterPlan {
        let scenario_name = |s: usize| format!("{scenario}-{s}.py");
        let mut tests = Vec::new();
        for s in 0..scenarios {
            let scenario = file("/s", &scenario_name(s));
            let path = format!("/t/{}", scenario_name(s).trim_end_matches(".py"));
            for t in 0..per_scenario {
                let test = file(&path, &format!("test-{t}.py"));
                let identity = TestIdentity::new(scenario.clone(), test.clone());
                let index = tests.len();
                tests.push(PlanTest {
                    scenario: s,
                    file_key: file_key(&test.file_path, &test.file_name),
                    path: test.file_path.into(),
                    name: test.file_name.into(),
                    key: identity.key(),
                    identity,
                    flaky: flaky && index % FLAKY_EVERY == FLAKY_EVERY / 3,
                });
            }
        }
        MasterPlan {
            master: file("/m", name),
            scenarios: (0..scenarios)
                .map(|s| ("/s".into(), scenario_name(s).into()))
                .collect(),
            tests,
        }
    }

    /// Whether test `index` fails in round `round` on machine `machine`.
    fn fails(&self, machine: usize, round: usize, index: usize) -> bool {
        if self.tests[index].flaky {
            (round + machine) % 2 == 0
        } else {
            let h = mix(((machine as u64) << 40) ^ ((round as u64) << 16) ^ index as u64);
            h % 1000 < FAILED_PER_MILLE
        }
    }
}

/// Ids handed out as rows are generated.
struct Ids {
    scenario: i64,
    test: i64,
}

/// The row counts by status: the run's and its scenarios' aggregates.
fn counts(passed: i64, failed: i64) -> [V; 8] {
    [
        V::I(0),
        V::I(0),
        V::I(passed),
        V::I(0),
        V::I(failed),
        V::I(0),
        V::I(0),
        V::I(0),
    ]
}

fn status_of(failed: bool) -> V {
    V::S(if failed { "failed" } else { "passed" }.into())
}

/// The start of the history: the first nightly round's day.
fn epoch() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, 1, 22, 0, 0)
        .single()
        .expect("valid date")
}

/// Generates one finished run of `plan` on `machine` (0-based) in `round`, starting at
/// `start`, into the tables; answers its stop time.
#[allow(clippy::too_many_arguments)]
fn generate_run(
    plan: &MasterPlan,
    run_id: i64,
    machine: usize,
    round: usize,
    start: DateTime<Utc>,
    ids: &mut Ids,
    runs: &mut Table,
    scenarios: &mut Table,
    tests: &mut Table,
) -> DateTime<Utc> {
    let mut at = start + Span::seconds(1);
    let mut run_failed = 0_i64;
    let mut seq = 0_i64;
    for (s, (scenario_path, scenario_name)) in plan.scenarios.iter().enumerate() {
        ids.scenario += 1;
        let scenario_id = ids.scenario;
        let scenario_start = at;
        let mut failed = 0_i64;
        let mut passed = 0_i64;
        for (index, test) in plan.tests.iter().enumerate() {
            if test.scenario != s {
                continue;
            }
            let fails = plan.fails(machine, round, index);
            let h = mix(((machine as u64) << 32) ^ ((round as u64) << 12) ^ index as u64 ^ 7);
            let millis = 2_000 + (index as i64 % 17) * 900 + (h % 3_000) as i64;
            let stop = at + Span::milliseconds(millis);
            ids.test += 1;
            tests.rows.push(vec![
                V::I(ids.test),
                V::I(run_id),
                V::I(scenario_id),
                V::I(seq),
                V::S(test.path.clone()),
                V::S(test.name.clone()),
                V::I(test.file_key),
                V::Null,
                status_of(fails),
                V::T(at),
                V::T(stop),
                V::I(test.key.get()),
                V::I(machine as i64 + 1),
            ]);
            seq += 1;
            at = stop + Span::milliseconds(150);
            if fails {
                failed += 1;
            } else {
                passed += 1;
            }
        }
        run_failed += failed;
        let mut row = vec![
            V::I(scenario_id),
            V::I(run_id),
            V::I(s as i64),
            V::S(scenario_path.clone()),
            V::S(scenario_name.clone()),
            V::Null,
            status_of(failed > 0),
        ];
        row.extend(counts(passed, failed));
        row.extend([V::T(scenario_start), V::T(at)]);
        scenarios.rows.push(row);
        at += Span::milliseconds(200);
    }
    let total = plan.tests.len() as i64;
    let mut row = vec![
        V::I(run_id),
        V::I(machine as i64 + 1),
        V::T(start - Span::seconds(2)),
        V::T(start - Span::milliseconds(1_500)),
        V::S(plan.master.file_path.as_str().into()),
        V::S(plan.master.file_name.as_str().into()),
        V::Null,
        status_of(run_failed > 0),
        V::I(plan.scenarios.len() as i64),
    ];
    row.extend(counts(total - run_failed, run_failed));
    row.extend([V::T(start), V::T(at)]);
    runs.rows.push(row);
    at
}

/// What the bench reads afterwards.
struct Loaded {
    nightly: MasterPlan,
    matrix: MasterPlan,
    /// Each machine's latest run (a nightly run).
    latest: Vec<RunId>,
    rows: u64,
}

/// Writes the whole history through `sink`.
async fn load(sink: &mut Sink<'_>, scale: Scale) -> Loaded {
    let nightly = MasterPlan::new(
        "nightly.py",
        "scenario",
        SCENARIOS,
        TESTS_PER_SCENARIO,
        true,
    );
    let matrix = MasterPlan::new(
        "matrix.py",
        "matrix",
        MATRIX_SCENARIOS,
        MATRIX_TESTS_PER_SCENARIO,
        false,
    );
    let mut runs = Table::new("runs", RUN_COLS);
    let mut scenarios = Table::new("scenarios", SCENARIO_COLS);
    let mut tests = Table::new("tests", TEST_COLS);
    let mut ids = Ids {
        scenario: 0,
        test: 0,
    };
    // The matrix runs, the day before the first nightly round.
    for machine in 0..scale.matrix_machines() {
        let start = epoch() - Span::days(1) + Span::seconds(60 * machine as i64);
        generate_run(
            &matrix,
            machine as i64 + 1,
            machine,
            0,
            start,
            &mut ids,
            &mut runs,
            &mut scenarios,
            &mut tests,
        );
    }
    let mut last_seen = vec![epoch(); scale.machines];
    for round in 0..scale.runs {
        for (machine, seen) in last_seen.iter_mut().enumerate() {
            let start = epoch() + Span::days(round as i64) + Span::seconds(60 * machine as i64);
            *seen = generate_run(
                &nightly,
                scale.nightly_run_id(round, machine),
                machine,
                round,
                start,
                &mut ids,
                &mut runs,
                &mut scenarios,
                &mut tests,
            );
        }
        sink.flush_if_full(&mut runs).await;
        sink.flush_if_full(&mut scenarios).await;
        sink.flush_if_full(&mut tests).await;
    }
    sink.write(&mut runs).await;
    sink.write(&mut scenarios).await;
    sink.write(&mut tests).await;

    let mut machines = Table::new("machines", MACHINE_COLS);
    let mut latest = Vec::with_capacity(scale.machines);
    for (machine, seen) in last_seen.iter().enumerate() {
        let name = format!("rig-{machine:03}");
        let run = scale.nightly_run_id(scale.runs - 1, machine);
        latest.push(RunId(run));
        machines.rows.push(vec![
            V::I(machine as i64 + 1),
            V::S(name.as_str().into()),
            V::S(machine_key(&name).into()),
            V::I(run),
            V::T(*seen),
        ]);
    }
    sink.write(&mut machines).await;

    let mut identities = Table::new("test_identities", IDENTITY_COLS);
    for test in nightly.tests.iter().chain(&matrix.tests) {
        let identity = &test.identity;
        identities.rows.push(vec![
            V::I(test.key.get()),
            V::S(identity.scenario.file_path.as_str().into()),
            V::S(identity.scenario.file_name.as_str().into()),
            V::S(identity.test.file_path.as_str().into()),
            V::S(identity.test.file_name.as_str().into()),
            V::S(identity.search_text().into()),
        ]);
    }
    sink.write(&mut identities).await;

    // Each (machine, identity)'s window of its last results, oldest first.
    let mut flaky = Table::new("flaky", FLAKY_COLS);
    let window_row = |machine: usize, key: TestKey, window: &FlakyWindow| {
        vec![
            V::I(machine as i64 + 1),
            V::I(key.get()),
            V::S(window.to_text().into()),
            V::I(i64::from(window.flips())),
            V::I(i64::from(window.failures())),
        ]
    };
    let outcome = |failed: bool| {
        if failed {
            Status::Failed
        } else {
            Status::Passed
        }
    };
    for machine in 0..scale.machines {
        for (index, test) in nightly.tests.iter().enumerate() {
            let mut window = FlakyWindow::default();
            for round in scale.runs.saturating_sub(WINDOW)..scale.runs {
                window.push_status(outcome(nightly.fails(machine, round, index)));
            }
            flaky.rows.push(window_row(machine, test.key, &window));
        }
        if machine < scale.matrix_machines() {
            for (index, test) in matrix.tests.iter().enumerate() {
                let mut window = FlakyWindow::default();
                window.push_status(outcome(matrix.fails(machine, 0, index)));
                flaky.rows.push(window_row(machine, test.key, &window));
            }
        }
        sink.flush_if_full(&mut flaky).await;
    }
    sink.write(&mut flaky).await;
    Loaded {
        nightly,
        matrix,
        latest,
        rows: u64::try_from(ids.test).unwrap_or_default(),
    }
}

/// Median and 95th percentile of some reads, and the size of the last answer.
struct Figures {
    median: Duration,
    p95: Duration,
    size: usize,
}

impl Figures {
    fn of(mut times: Vec<Duration>, size: usize) -> Figures {
        times.sort_unstable();
        Figures {
            median: times[times.len() / 2],
            p95: times[(times.len() * 95 / 100).min(times.len() - 1)],
            size,
        }
    }
}

/// Times `$body` (an expression answering a size) `READS` times after `WARMUP` untimed runs,
/// `$i` counting all of them.
macro_rules! timed {
    ($i:ident => $body:expr) => {{
        let mut times = Vec::with_capacity(READS);
        let mut size = 0_usize;
        for $i in 0..WARMUP + READS {
            let started = Instant::now();
            size = $body;
            if $i >= WARMUP {
                times.push(started.elapsed());
            }
        }
        Figures::of(times, size)
    }};
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// Reads through `store` and prints a row per read.
async fn measure(backend: &str, store: &dyn Store, scale: Scale, loaded: &Loaded) {
    let pick = |i: usize, salt: u64, n: usize| (mix(salt ^ i as u64) % n as u64) as usize;
    let identity = |i: usize| loaded.nightly.tests[pick(i, 1, loaded.nightly.tests.len())].key;
    let machine = |i: usize| MachineId(pick(i, 2, scale.machines) as i64 + 1);
    let nightly = TextFilter::new("nightly")
        .expect("valid filter")
        .expect("non-empty filter");
    let names = TextFilter::new("scenario-3/test-1")
        .expect("valid filter")
        .expect("non-empty filter");
    let page = PageRequest::first(50).expect("valid page");
    let mut rows: Vec<(&str, u64, Figures)> = Vec::new();

    rows.push((
        "test_history (limit 50)",
        50,
        timed!(i => store
            .test_history(identity(i), HistoryQuery::default())
            .await
            .expect("history")
            .results
            .len()),
    ));
    rows.push((
        "test_history, one machine",
        50,
        timed!(i => store
            .test_history(
                identity(i),
                HistoryQuery {
                    machine: Some(machine(i)),
                    ..HistoryQuery::default()
                },
            )
            .await
            .expect("history on a machine")
            .results
            .len()),
    ));
    rows.push((
        "run_diff (latest run)",
        100,
        timed!(i => {
            let diff = history::run_diff(store, loaded.latest[pick(i, 3, scale.machines)])
                .await
                .expect("run diff");
            assert!(diff.previous_run_id.is_some() || scale.runs == 1, "a previous run");
            diff.new_failures.len() + diff.fixed.len() + diff.still_failing.len()
        }),
    ));
    let matrix_figures = timed!(i => {
        let matrix = history::matrix(store, &loaded.matrix.master, &[], MatrixSort::Plan)
            .await
            .expect("matrix");
        matrix.rows.len() * matrix.columns.len()
    });
    assert_eq!(
        matrix_figures.size,
        loaded.matrix.tests.len() * scale.matrix_machines(),
        "a full matrix"
    );
    let matrix_read = format!(
        "matrix {} × {} (cells)",
        loaded.matrix.tests.len(),
        scale.matrix_machines()
    );
    rows.push((&matrix_read, 200, matrix_figures));
    rows.push((
        "search_tests \"scenario-3/test-1\"",
        100,
        timed!(i => store
            .search_tests(Some(&names), page)
            .await
            .expect("test search")
            .items
            .len()),
    ));
    rows.push((
        "search_runs \"nightly\" + machine",
        100,
        timed!(i => store
            .search_runs(
                &RunSearch {
                    text: Some(nightly.clone()),
                    machine: Some(machine(i)),
                    ..RunSearch::default()
                },
                page,
            )
            .await
            .expect("run search")
            .items
            .len()),
    ));
    rows.push((
        "flaky_tests (≥ 4 flips, 50)",
        0,
        timed!(i => store.flaky_tests(4, 50).await.expect("flaky tests").len()),
    ));
    for (read, target, figures) in rows {
        let verdict = match target {
            0 => "–".to_owned(),
            t if figures.p95 <= Duration::from_millis(t) => format!("≤ {t} ms: met"),
            t if figures.median <= Duration::from_millis(t) => format!("≤ {t} ms: p95 over"),
            t => format!("≤ {t} ms: MISSED"),
        };
        println!(
            "| {backend} | {read} | {} | {} | {} | {verdict} |",
            ms(figures.median),
            ms(figures.p95),
            figures.size,
        );
    }
}

async fn sqlite(scale: Scale) {
    let dir = std::env::temp_dir().join(format!("stpt-bench-history-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("history.sqlite3");
    {
        let store = SqliteStore::open(&path).await.expect("sqlite opens");
        store.migrate().await.expect("migrations");
        store.pool().close().await;
    }
    let started = Instant::now();
    let loaded = {
        // A connection of the loader's own: no syncs, a large cache. The file stays in WAL
        // mode (leaving it needs every other connection gone, which a store's pool does not
        // promise the moment it is closed).
        let mut conn = SqliteConnection::connect_with(
            &SqliteConnectOptions::new()
                .filename(&path)
                .synchronous(SqliteSynchronous::Off)
                .foreign_keys(false)
                .busy_timeout(Duration::from_secs(60))
                .pragma("cache_size", "-1000000"),
        )
        .await
        .expect("loader connects");
        conn.execute("BEGIN").await.expect("begin");
        let loaded = load(&mut Sink::Sqlite(&mut conn), scale).await;
        conn.execute("COMMIT").await.expect("commit");
        conn.execute("ANALYZE").await.expect("analyze");
        conn.close().await.expect("loader closes");
        loaded
    };
    let load_time = started.elapsed();
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "sqlite: {} test rows loaded in {:.1} s ({:.1} GB)",
        loaded.rows,
        load_time.as_secs_f64(),
        size as f64 / 1e9
    );
    {
        let store = SqliteStore::open(&path).await.expect("sqlite reopens");
        measure(
            &format!(
                "sqlite (load {:.0} s, {:.1} GB)",
                load_time.as_secs_f64(),
                size as f64 / 1e9
            ),
            &store,
            scale,
            &loaded,
        )
        .await;
        store.pool().close().await;
    }
    if keep() {
        eprintln!("kept {}", path.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Whether to keep the loaded databases (`STPT_BENCH_HISTORY_KEEP=1`), to look at plans.
fn keep() -> bool {
    std::env::var("STPT_BENCH_HISTORY_KEEP").is_ok_and(|v| v == "1")
}

async fn postgres(url: &str, scale: Scale) {
    let database = format!("stpt_bench_history_{}", std::process::id());
    let mut admin = PgConnection::connect(url)
        .await
        .expect("postgres reachable");
    admin
        .execute(format!("CREATE DATABASE {database}").as_str())
        .await
        .expect("scratch database");
    let base = url.rsplit_once('/').map_or(url, |(base, _)| base);
    {
        let store = PgStore::connect(&format!("{base}/{database}"))
            .await
            .expect("connects");
        store.migrate().await.expect("migrations");
        let started = Instant::now();
        let loaded = {
            let mut conn = store.pool().acquire().await.expect("loader connection");
            // The loader writes ids of its own, and skips the foreign-key triggers (every
            // reference is generated consistent).
            for table in ["machines", "runs", "scenarios", "tests"] {
                conn.execute(
                    format!("ALTER TABLE stpt.{table} ALTER COLUMN id SET GENERATED BY DEFAULT")
                        .as_str(),
                )
                .await
                .expect("identity by default");
            }
            conn.execute("SET session_replication_role = replica; SET synchronous_commit = off")
                .await
                .expect("loader settings");
            let loaded = load(&mut Sink::Pg(&mut conn), scale).await;
            conn.execute("SET session_replication_role = origin")
                .await
                .expect("triggers back");
            for table in ["machines", "runs", "scenarios", "tests"] {
                conn.execute(
                    format!(
                        "ALTER TABLE stpt.{table} ALTER COLUMN id SET GENERATED ALWAYS; \
                         SELECT setval(pg_get_serial_sequence('stpt.{table}', 'id'), \
                         (SELECT max(id) FROM stpt.{table}))"
                    )
                    .as_str(),
                )
                .await
                .expect("identity always");
            }
            conn.execute("ANALYZE").await.expect("analyze");
            loaded
        };
        let load_time = started.elapsed();
        let size: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
            .fetch_one(store.pool())
            .await
            .expect("database size");
        eprintln!(
            "postgres: {} test rows loaded in {:.1} s ({:.1} GB)",
            loaded.rows,
            load_time.as_secs_f64(),
            size as f64 / 1e9
        );
        measure(
            &format!(
                "postgres (load {:.0} s, {:.1} GB)",
                load_time.as_secs_f64(),
                size as f64 / 1e9
            ),
            &store,
            scale,
            &loaded,
        )
        .await;
        store.pool().close().await;
    }
    if keep() {
        eprintln!("kept database {database}");
    } else {
        let _ = admin
            .execute(format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)").as_str())
            .await;
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let scale = Scale::from_env();
    println!(
        "History reads on {} machines × {} runs × {} tests ({} test results) + a {}-test \
         matrix master on {} machines; {READS} reads each (after {WARMUP})\n",
        scale.machines,
        scale.runs,
        SCENARIOS * TESTS_PER_SCENARIO,
        scale.nightly_tests(),
        MATRIX_SCENARIOS * MATRIX_TESTS_PER_SCENARIO,
        scale.matrix_machines(),
    );
    println!("| store | read | median | p95 | answer size | target (p95) |");
    println!("| --- | --- | --- | --- | --- | --- |");
    sqlite(scale).await;
    match std::env::var("STPT_BENCH_POSTGRES_URL") {
        Ok(url) => postgres(&url, scale).await,
        Err(_) => println!("\n(postgres skipped: STPT_BENCH_POSTGRES_URL is unset)"),
    }
}
