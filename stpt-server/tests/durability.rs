//! Durability, proven. The real binary, on SQLite and on PostgreSQL, takes events from several
//! runners at once and is killed with SIGKILL mid-stream, a few times. Restarted on the same
//! database, it holds every request it answered with a 2xx; nothing is half-stored (every run
//! has its whole plan, and its counts and statuses agree with its tests); of the one request
//! per runner that was in flight when it died, all or nothing is stored. Retried with its
//! `Idempotency-Key`, that request then applies exactly once.
//!
//! Each runner is a machine of its own. It posts a v1 plan, then starts and stops its tests
//! one after another, and in turn finishes the run, abandons it with the next plan, or
//! cancels it. It keeps a model of what its acknowledged requests must have stored, and
//! after each restart carries on from where that model says it is.
//!
//! PostgreSQL comes from `STPT_TEST_POSTGRES_URL` (a fresh database per test); unset, that
//! test skips, and fails when `STPT_TEST_INTEGRATION=1`.

#![allow(clippy::unwrap_used)] // Tests fail loudly by design.

mod support;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use stpt_core::{RunDetail, RunSummary, Status, StatusCounts};
use support::Server;

/// Concurrent runners, one machine each.
const RUNNERS: usize = 6;
/// Requests acknowledged (all runners together) before each kill.
const KILL_AFTER: usize = 200;
/// Kills and restarts per test.
const CYCLES: usize = 3;
/// How long the runners may take to get to a kill.
const RUN_FOR_AT_MOST: Duration = Duration::from_secs(15);
/// Tests in each scenario of every plan; one scenario is empty.
const PLAN_SHAPE: [usize; 3] = [3, 0, 4];
/// The statuses runners stop tests with, in turn (cancelling is separate).
const FINALS: [Status; 7] = [
    Status::Passed,
    Status::Passed,
    Status::Failed,
    Status::Warning,
    Status::Error,
    Status::Unknown,
    Status::Passed,
];
/// How long one request may take.
const PATIENCE: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_events_survive_sigkill_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("stpt.sqlite3").display());
    crash_and_check("sqlite", &url).await;
}

/// Needs `STPT_TEST_POSTGRES_URL`; skipped without it, unless `STPT_TEST_INTEGRATION=1`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_events_survive_sigkill_on_postgres() {
    let Some(postgres) = stpt_testkit::postgres_url() else {
        return;
    };
    let database = stpt_testkit::TempDatabase::create(&postgres).await;
    crash_and_check("postgres", &database.url()).await;
}

async fn crash_and_check(store: &str, url: &str) {
    let began = Instant::now();
    let mut server = Server::start(url).await;
    let mut runners: Vec<Runner> = (0..RUNNERS).map(Runner::new).collect();
    let mut report = Vec::new();
    for cycle in 1..=CYCLES {
        let logs = server.drain_logs();
        let shared = Arc::new(Shared {
            client: client(),
            base: server.base.clone(),
            acked: AtomicUsize::new(0),
            killed: AtomicBool::new(false),
        });
        let handles: Vec<_> = runners
            .into_iter()
            .map(|runner| tokio::spawn(run_runner(runner, Arc::clone(&shared))))
            .collect();
        let started = Instant::now();
        // A runner only ends on a failed request: before the kill, that is a panic to report.
        while shared.acked.load(Ordering::SeqCst) < KILL_AFTER
            && !handles.iter().any(tokio::task::JoinHandle::is_finished)
        {
            assert!(
                started.elapsed() < RUN_FOR_AT_MOST,
                "{store}, cycle {cycle}: only {} requests acknowledged in {RUN_FOR_AT_MOST:?}",
                shared.acked.load(Ordering::SeqCst)
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        shared.killed.store(true, Ordering::SeqCst);
        server.kill().await;
        let ran_for = started.elapsed();
        runners = Vec::new();
        for handle in handles {
            match handle.await {
                Ok(runner) => runners.push(runner),
                Err(error) => std::panic::resume_unwind(error.into_panic()),
            }
        }
        let logs = logs.await.unwrap();
        if !logs.is_empty() {
            eprintln!("{store}, cycle {cycle}: server log before the kill:\n{logs}");
        }
        server = Server::start(url).await;
        let applied = check_after_crash(store, cycle, &server.base, &mut runners).await;
        report.push(format!(
            "cycle {cycle}: {} acknowledged, SIGKILL after {ran_for:.2?}, {applied} of {RUNNERS} \
             in flight applied",
            shared.acked.load(Ordering::SeqCst)
        ));
    }
    server.stop().await;
    let busy: usize = runners.iter().map(|runner| runner.busy).sum();
    let runs: usize = runners.iter().map(|runner| runner.model.runs.len()).sum();
    println!(
        "{store}: {RUNNERS} runners, {}; {runs} runs checked, {busy} busy answers retried; \
         {:.2?} in all",
        report.join("; "),
        began.elapsed()
    );
}

/// After a crash and a restart: every runner's stored runs are what its acknowledged requests
/// stored, with or without the one in flight; retried, that one is then stored exactly once.
/// Returns how many of the requests in flight had been stored.
async fn check_after_crash(store: &str, cycle: usize, base: &str, runners: &mut [Runner]) -> usize {
    let client = client();
    let mut stored = stored_runs(&client, base).await;
    let mut applied_in_flight = 0;
    for runner in runners.iter_mut() {
        let machine = &runner.machine;
        let InFlight { op, key, outcome } = runner.in_flight.take().unwrap();
        let mut with_in_flight = runner.model.clone();
        with_in_flight.apply(&op, None);
        let observed = stored.remove(machine).unwrap_or_default();
        let applied = match (
            difference(&runner.model, &observed),
            difference(&with_in_flight, &observed),
        ) {
            (None, _) => false,
            (_, None) => true,
            (Some(without), Some(with)) => panic!(
                "{store}, cycle {cycle}: {machine}'s stored runs match neither its acknowledged \
                 requests ({without}) nor those and the one in flight, {op:?} ({with}); \
                 stored: {observed:#?}"
            ),
        };
        assert!(
            applied || !matches!(outcome, Outcome::AckedUnread),
            "{store}, cycle {cycle}: {machine}: {op:?} was answered 2xx but is not stored"
        );
        applied_in_flight += usize::from(applied);

        let sent = send(&client, base, machine, &key, &op, &mut runner.busy).await;
        let Sent::Answered(status, answer) = sent else {
            panic!("{store}, cycle {cycle}: {machine}: retry of {op:?}: {sent:?}");
        };
        let expected = if applied {
            (200, json!(true))
        } else {
            (op.created(), json!(false))
        };
        assert_eq!(
            (status, answer["replayed"].clone()),
            expected,
            "{store}, cycle {cycle}: {machine}: retry of {op:?} (in flight: {outcome}): {answer}"
        );
        runner.model.apply(&op, Some(&answer));
    }
    assert!(
        stored.is_empty(),
        "{store}, cycle {cycle}: machines no runner posted for: {stored:#?}"
    );

    let mut stored = stored_runs(&client, base).await;
    for runner in runners.iter() {
        let observed = stored.remove(&runner.machine).unwrap_or_default();
        if let Some(difference) = difference(&runner.model, &observed) {
            panic!(
                "{store}, cycle {cycle}: {} after the retry: {difference}; stored: {observed:#?}",
                runner.machine
            );
        }
    }
    applied_in_flight
}

// --- runners -------------------------------------------------------------------------------

/// What the runners share during one cycle.
struct Shared {
    client: reqwest::Client,
    base: String,
    /// Requests acknowledged so far.
    acked: AtomicUsize,
    /// Set just before the SIGKILL: from then on, requests may fail.
    killed: AtomicBool,
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(PATIENCE)
        .build()
        .unwrap()
}

/// A runner's request.
#[derive(Debug, Clone)]
enum Op {
    Plan {
        time: i64,
    },
    Start {
        test: i64,
        time: i64,
    },
    Stop {
        test: i64,
        status: Status,
        time: i64,
    },
}

impl Op {
    fn request(&self, machine: &str) -> (String, Value) {
        match self {
            Op::Plan { time } => ("/api/v1/plans".to_owned(), plan(machine, *time)),
            Op::Start { test, time } => (
                format!("/api/v1/tests/{test}/start"),
                json!({"timestamp": runner_time(*time)}),
            ),
            Op::Stop { test, status, time } => (
                format!("/api/v1/tests/{test}/stop"),
                json!({"status": status, "timestamp": runner_time(*time)}),
            ),
        }
    }

    /// The answer to the first, applied post.
    fn created(&self) -> u16 {
        match self {
            Op::Plan { .. } => 201,
            Op::Start { .. } | Op::Stop { .. } => 202,
        }
    }
}

/// How an interrupted request ended.
#[derive(Debug)]
enum Outcome {
    /// A 2xx whose answer was cut off: stored, but its ids are unknown.
    AckedUnread,
    /// No answer (the connection failed, for this reason): stored or not.
    InDoubt(String),
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::AckedUnread => f.write_str("answered 2xx, answer cut off"),
            Outcome::InDoubt(reason) => write!(f, "no answer: {reason}"),
        }
    }
}

/// The request a kill interrupted.
#[derive(Debug)]
struct InFlight {
    op: Op,
    /// Its `Idempotency-Key`, for the retry.
    key: String,
    outcome: Outcome,
}

/// A runner: one machine, what its acknowledged requests stored, and where it is.
#[derive(Debug)]
struct Runner {
    n: usize,
    machine: String,
    /// What its acknowledged (and retried) requests stored.
    model: MachineModel,
    /// Requests sent: makes each request's `Idempotency-Key`, unique per machine.
    sent: usize,
    /// Its clock: each request one second after the one before.
    time: i64,
    /// The request the last kill interrupted.
    in_flight: Option<InFlight>,
    /// `503 busy` answers, retried.
    busy: usize,
}

#[derive(Debug)]
enum Sent {
    Answered(u16, Value),
    /// A status whose body was cut off.
    Cut(u16),
    Failed(reqwest::Error),
}

/// Posts `op` with `key`, again while the answer is `503 busy` (nothing was stored).
async fn send(
    client: &reqwest::Client,
    base: &str,
    machine: &str,
    key: &str,
    op: &Op,
    busy: &mut usize,
) -> Sent {
    let (path, body) = op.request(machine);
    loop {
        let posted = client
            .post(format!("{base}{path}"))
            .header("idempotency-key", key)
            .json(&body)
            .send()
            .await;
        match posted {
            Err(error) => return Sent::Failed(error),
            Ok(response) if response.status() == 503 => {
                *busy += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok(response) => {
                let status = response.status().as_u16();
                return match response.json::<Value>().await {
                    Ok(answer) => Sent::Answered(status, answer),
                    Err(_) => Sent::Cut(status),
                };
            }
        }
    }
}

impl Runner {
    fn new(n: usize) -> Runner {
        Runner {
            n,
            machine: format!("rig-{n}"),
            model: MachineModel::default(),
            sent: 0,
            time: 0,
            in_flight: None,
            busy: 0,
        }
    }

    /// The next request, from where its runs are: a plan, then each test started and stopped
    /// in turn. In turn, a run is finished, abandoned by the next plan after its third start,
    /// or cancelled at its fifth stop.
    fn next_op(&mut self) -> Op {
        self.time += 1;
        let time = self.time;
        let Some(run) = self.model.runs.last() else {
            return Op::Plan { time };
        };
        let r = self.model.runs.len() - 1;
        let ending = (self.n + r) % 3;
        let tests: Vec<&TestModel> = run.scenarios.iter().flat_map(|s| &s.tests).collect();
        if let Some(t) = tests.iter().position(|t| t.status == Status::Running) {
            if ending == 1 && t == 2 {
                return Op::Plan { time };
            }
            let status = if ending == 2 && t == 4 {
                Status::Cancelled
            } else {
                FINALS[(self.n + r + t) % FINALS.len()]
            };
            let test = tests[t].id.unwrap();
            return Op::Stop { test, status, time };
        }
        match tests.iter().find(|t| t.status == Status::Waiting) {
            Some(test) => Op::Start {
                test: test.id.unwrap(),
                time,
            },
            None => Op::Plan { time },
        }
    }

    /// Posts `op`: its answer if it was acknowledged and read, else what happened.
    async fn post(&mut self, shared: &Shared, op: &Op) -> Result<Value, InFlight> {
        let key = format!("{}/{}", self.machine, self.sent);
        self.sent += 1;
        let sent = send(
            &shared.client,
            &shared.base,
            &self.machine,
            &key,
            op,
            &mut self.busy,
        )
        .await;
        let killed = shared.killed.load(Ordering::SeqCst);
        let outcome = match sent {
            Sent::Answered(status, answer) => {
                assert_eq!(status, op.created(), "{} {op:?}: {answer}", self.machine);
                shared.acked.fetch_add(1, Ordering::SeqCst);
                return Ok(answer);
            }
            Sent::Cut(status) if killed && (200..300).contains(&status) => Outcome::AckedUnread,
            Sent::Failed(error) if killed => Outcome::InDoubt(error.to_string()),
            other => panic!("{} {op:?} before the kill: {other:?}", self.machine),
        };
        Err(InFlight {
            op: op.clone(),
            key,
            outcome,
        })
    }
}

/// Posts until a request fails (the server was killed).
async fn run_runner(mut runner: Runner, shared: Arc<Shared>) -> Runner {
    loop {
        let op = runner.next_op();
        match runner.post(&shared, &op).await {
            Ok(answer) => runner.model.apply(&op, Some(&answer)),
            Err(in_flight) => {
                runner.in_flight = Some(in_flight);
                return runner;
            }
        }
    }
}

/// A runner's time: whole seconds after a fixed origin, so every store keeps it exactly.
fn at(seconds: i64) -> DateTime<Utc> {
    NaiveDate::from_ymd_opt(2026, 11, 24)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        + TimeDelta::seconds(seconds)
}

/// [`at`] as a runner sends it: naive, as Python prints it.
fn runner_time(seconds: i64) -> String {
    at(seconds).format("%Y-%m-%d %H:%M:%S").to_string()
}

fn scenario_name(s: usize) -> String {
    format!("s{s}.py")
}

fn test_name(t: usize) -> String {
    format!("t{t}.py")
}

fn plan(machine: &str, time: i64) -> Value {
    let scenarios: Vec<Value> = PLAN_SHAPE
        .iter()
        .enumerate()
        .map(|(s, &tests)| {
            let tests: Vec<Value> = (0..tests)
                .map(|t| json!({"file_path": "/rig/tests", "file_name": test_name(t), "script": "assert True\n"}))
                .collect();
            json!({"file_path": "/rig", "file_name": scenario_name(s), "script": "", "tests": tests})
        })
        .collect();
    json!({
        "machine_name": machine,
        "timestamp": runner_time(time),
        "master_scenario": {"file_path": "/rig", "file_name": "master.py", "script": "", "scenarios": scenarios}
    })
}

// --- what must be stored ---------------------------------------------------------------------

/// A start or stop time, or none.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Times {
    start: Option<i64>,
    stop: Option<i64>,
}

#[derive(Debug, Clone)]
struct TestModel {
    id: Option<i64>,
    status: Status,
    times: Times,
}

#[derive(Debug, Clone)]
struct ScenarioModel {
    times: Times,
    tests: Vec<TestModel>,
}

impl ScenarioModel {
    fn ongoing(&self) -> bool {
        self.tests.iter().any(|test| test.status.is_ongoing())
    }
}

#[derive(Debug, Clone)]
struct RunModel {
    /// Unknown for a plan whose answer was lost.
    id: Option<i64>,
    times: Times,
    scenarios: Vec<ScenarioModel>,
}

impl RunModel {
    fn planned(answer: Option<&Value>) -> RunModel {
        let scenarios = PLAN_SHAPE
            .iter()
            .enumerate()
            .map(|(s, &tests)| ScenarioModel {
                times: Times::default(),
                tests: (0..tests)
                    .map(|t| TestModel {
                        id: answer.map(|a| a["scenarios"][s]["test_ids"][t].as_i64().unwrap()),
                        status: Status::Waiting,
                        times: Times::default(),
                    })
                    .collect(),
            })
            .collect();
        RunModel {
            id: answer.map(|answer| answer["run_id"].as_i64().unwrap()),
            times: Times::default(),
            scenarios,
        }
    }

    fn ongoing(&self) -> bool {
        self.scenarios.iter().any(ScenarioModel::ongoing)
    }

    fn tests_mut(&mut self) -> impl Iterator<Item = &mut TestModel> {
        self.scenarios
            .iter_mut()
            .flat_map(|scenario| scenario.tests.iter_mut())
    }

    /// Applies `change` at `time`, then rule 4: a scenario or run takes the start of its first
    /// test to start and, once it becomes finished, this time as its stop.
    fn event(&mut self, time: i64, change: impl FnOnce(&mut RunModel)) {
        let run_was_ongoing = self.ongoing();
        let scenarios_ongoing: Vec<bool> =
            self.scenarios.iter().map(ScenarioModel::ongoing).collect();
        change(self);
        for (scenario, was_ongoing) in self.scenarios.iter_mut().zip(scenarios_ongoing) {
            if scenario.times.start.is_none() {
                scenario.times.start = scenario.tests.iter().filter_map(|t| t.times.start).min();
            }
            if was_ongoing && !scenario.ongoing() {
                scenario.times.stop = Some(time);
            }
        }
        if self.times.start.is_none() {
            self.times.start = self.scenarios.iter().filter_map(|s| s.times.start).min();
        }
        if run_was_ongoing && !self.ongoing() {
            self.times.stop = Some(time);
        }
    }

    /// Rules 1 and 3: every ongoing test takes `status`; running ones stop at `time`.
    fn close(&mut self, status: Status, time: i64) {
        for test in self.tests_mut() {
            if test.status == Status::Running {
                test.times.stop = Some(time);
            }
            if test.status.is_ongoing() {
                test.status = status;
            }
        }
    }

    fn test_mut(&mut self, id: i64) -> &mut TestModel {
        self.tests_mut().find(|test| test.id == Some(id)).unwrap()
    }
}

/// A machine's runs, oldest first, after some of its runner's requests were applied.
#[derive(Debug, Clone, Default)]
struct MachineModel {
    runs: Vec<RunModel>,
}

impl MachineModel {
    /// Applies `op`, with its answer when it is known.
    fn apply(&mut self, op: &Op, answer: Option<&Value>) {
        match *op {
            Op::Plan { time } => {
                if let Some(last) = self.runs.last_mut() {
                    last.event(time, |run| run.close(Status::Unknown, time));
                }
                self.runs.push(RunModel::planned(answer));
            }
            Op::Start { test, time } => {
                let run = self.runs.last_mut().unwrap();
                run.event(time, |run| {
                    for other in run.tests_mut() {
                        if other.status == Status::Running {
                            other.status = Status::Unknown;
                            other.times.stop = Some(time);
                        }
                    }
                    let test = run.test_mut(test);
                    assert_eq!(test.status, Status::Waiting);
                    test.status = Status::Running;
                    test.times.start = Some(time);
                });
            }
            Op::Stop { test, status, time } => {
                let run = self.runs.last_mut().unwrap();
                run.event(time, |run| {
                    let test = run.test_mut(test);
                    assert_eq!(test.status, Status::Running);
                    test.status = status;
                    test.times.stop = Some(time);
                    if status == Status::Cancelled {
                        run.close(Status::Cancelled, time);
                    }
                });
            }
        }
    }
}

/// Stored start and stop times.
type StoredTimes = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

fn expected_times(times: Times) -> StoredTimes {
    (times.start.map(at), times.stop.map(at))
}

/// Whether a run's or scenario's start and stop are set: they are the server's receipt times
/// (rule 4), which the model does not know, unlike the runner's times a test keeps.
fn server_times_set(times: Times) -> (bool, bool) {
    (times.start.is_some(), times.stop.is_some())
}

fn are_set((start, stop): StoredTimes) -> (bool, bool) {
    (start.is_some(), stop.is_some())
}

/// How the stored runs differ from the model, or `None` when they match.
fn difference(model: &MachineModel, stored: &[RunDetail]) -> Option<String> {
    if model.runs.len() != stored.len() {
        return Some(format!(
            "{} runs stored, {} expected",
            stored.len(),
            model.runs.len()
        ));
    }
    for (want, got) in model.runs.iter().zip(stored) {
        let run = got.summary.id.get();
        if want.id.is_some_and(|id| id != run) {
            return Some(format!("run {run} stored where run {want:?} was expected"));
        }
        if server_times_set(want.times)
            != are_set((got.summary.timestamp_start, got.summary.timestamp_stop))
        {
            return Some(format!(
                "run {run}: times {:?}, expected {:?}",
                got.summary, want.times
            ));
        }
        for (s, (want, got)) in want.scenarios.iter().zip(&got.scenarios).enumerate() {
            if server_times_set(want.times) != are_set((got.timestamp_start, got.timestamp_stop)) {
                return Some(format!(
                    "run {run}, scenario {s}: times {got:?}, expected {:?}",
                    want.times
                ));
            }
            for (want, got) in want.tests.iter().zip(&got.tests) {
                let matches = want.id.is_none_or(|id| id == got.id.get())
                    && want.status == got.status
                    && expected_times(want.times) == (got.timestamp_start, got.timestamp_stop);
                if !matches {
                    return Some(format!("run {run}: test {got:?}, expected {want:?}"));
                }
            }
        }
    }
    None
}

/// What must hold of any stored run, whatever was applied: its whole plan, and counts and
/// statuses that agree with its tests.
fn assert_whole(machine: &str, run: &RunDetail) {
    let id = run.summary.id;
    assert_eq!(run.machine_name, machine, "run {id}");
    let shape: Vec<usize> = run.scenarios.iter().map(|s| s.tests.len()).collect();
    assert_eq!(shape, PLAN_SHAPE, "run {id} is not the whole plan");
    let mut all = StatusCounts::new();
    for (s, scenario) in run.scenarios.iter().enumerate() {
        assert_eq!(scenario.file.file_name, scenario_name(s), "run {id}");
        for (t, test) in scenario.tests.iter().enumerate() {
            assert_eq!(test.file.file_name, test_name(t), "run {id}");
        }
        let counts: StatusCounts = scenario.tests.iter().map(|test| test.status).collect();
        assert_eq!(
            scenario.counts, counts,
            "run {id}, scenario {}",
            scenario.id
        );
        assert_eq!(
            scenario.status,
            counts.status(),
            "run {id}, scenario {}",
            scenario.id
        );
        all = all.plus(&counts);
    }
    let statistics = run.summary.statistics;
    assert_eq!(statistics.counts, all, "run {id}");
    assert_eq!(statistics.tests, all.total(), "run {id}");
    assert_eq!(
        usize::try_from(statistics.scenarios).unwrap(),
        PLAN_SHAPE.len(),
        "run {id}"
    );
    assert_eq!(run.summary.status, all.status(), "run {id}");
}

async fn get(client: &reqwest::Client, url: String) -> Value {
    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200, "{url}");
    response.json().await.unwrap()
}

/// Every item of a paginated v1 list.
async fn all_pages(client: &reqwest::Client, url: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut page = 1;
    loop {
        let answer = get(client, format!("{url}?page={page}&page_size=100")).await;
        items.extend(answer["items"].as_array().unwrap().iter().cloned());
        if page >= answer["total_pages"].as_u64().unwrap() {
            return items;
        }
        page += 1;
    }
}

/// Every machine's runs, oldest first, by machine name, each checked whole; and each
/// machine's summary checked against its latest run.
async fn stored_runs(client: &reqwest::Client, base: &str) -> BTreeMap<String, Vec<RunDetail>> {
    let mut stored = BTreeMap::new();
    for machine in all_pages(client, &format!("{base}/api/v1/machines")).await {
        let name = machine["name"].as_str().unwrap().to_owned();
        let listed = all_pages(
            client,
            &format!("{base}/api/v1/machines/{}/runs", machine["id"]),
        )
        .await;
        let mut runs = Vec::new();
        for summary in listed.into_iter().rev() {
            let summary: RunSummary = serde_json::from_value(summary).unwrap();
            let run: RunDetail = serde_json::from_value(
                get(client, format!("{base}/api/v1/runs/{}", summary.id)).await,
            )
            .unwrap();
            assert_eq!(
                run.summary, summary,
                "{name}: the listed run differs from the run"
            );
            assert_whole(&name, &run);
            runs.push(run);
        }
        let latest = runs
            .last()
            .unwrap_or_else(|| panic!("{name} is stored without a run"));
        assert_eq!(machine["latest_run"], json!(latest.summary.id), "{name}");
        assert_eq!(machine["status"], json!(latest.summary.status), "{name}");
        stored.insert(name, runs);
    }
    stored
}
