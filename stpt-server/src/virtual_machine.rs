//! A virtual test machine: posts a plan (master scenario → scenarios → tests, with script
//! text), then runs it with a start and a stop per test, random durations and random final
//! statuses, against any stpt server — as a real runner on a rig does. In the v1 protocol it
//! speaks through `stpt-client`, as a Rust runner would.

use chrono::Utc;
use serde_json::{Value, json};
use std::time::Duration;
use stpt_client::{ClientError, EventId, PlanPayload, TestId};
use stpt_core::Status;

/// Which API the virtual machine speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    /// The seed's `/tm_api/` (tests addressed by path and name, naive timestamps).
    Seed,
    /// `/api/v1/` (tests addressed by id, idempotent retries).
    V1,
}

/// What a virtual machine runs and how fast.
#[derive(Debug, Clone)]
pub struct VirtualMachineConfig {
    /// The server's base URL, e.g. `http://127.0.0.1:8000`.
    pub server: String,
    /// The machine's name.
    pub name: String,
    /// Scenarios per plan.
    pub scenarios: usize,
    /// Tests per scenario.
    pub tests_per_scenario: usize,
    /// Mean test duration; each test takes between none and twice this.
    pub mean_test_duration: Duration,
    /// The API to speak.
    pub protocol: Protocol,
    /// Seed of the random choices, for repeatable runs.
    pub seed: u64,
    /// The runner token sent as `Authorization: Bearer`, if the server wants one.
    pub token: Option<String>,
}

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunReport {
    /// The run's id on the server.
    pub run_id: i64,
    /// Events the server applied.
    pub events: usize,
    /// The final status of every test, in plan order (those a cancel stopped included).
    pub statuses: Vec<Status>,
}

/// Why a virtual run stopped early.
#[derive(Debug)]
pub struct VirtualMachineError(String);

impl std::fmt::Display for VirtualMachineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for VirtualMachineError {}

fn fail(message: impl Into<String>) -> VirtualMachineError {
    VirtualMachineError(message.into())
}

/// One virtual rig.
#[derive(Debug)]
pub struct VirtualMachine {
    config: VirtualMachineConfig,
    /// For the seed protocol.
    client: reqwest::Client,
    /// For the v1 protocol; an unusable server URL is reported when the machine runs.
    api: Result<stpt_client::Client, String>,
    rng: fastrand::Rng,
}

/// A planned test as the machine knows it.
struct PlannedTest {
    file_path: String,
    file_name: String,
    id: Option<TestId>,
}

impl VirtualMachine {
    /// A machine with its own HTTP client.
    pub fn new(config: VirtualMachineConfig) -> Self {
        let rng = fastrand::Rng::with_seed(config.seed);
        let api = stpt_client::Client::new(&config.server)
            .map(|api| match &config.token {
                Some(token) => api.with_token(token.clone()),
                None => api,
            })
            .map_err(|error| error.to_string());
        VirtualMachine {
            config,
            client: reqwest::Client::new(),
            api,
            rng,
        }
    }

    /// Python's `str(datetime.now())`, as the seed's runner sends it.
    fn now() -> String {
        Utc::now().format("%Y-%m-%d %H:%M:%S%.6f").to_string()
    }

    fn plan(&mut self) -> (Value, Vec<PlannedTest>) {
        let mut tests = Vec::new();
        let scenarios: Vec<Value> = (1..=self.config.scenarios)
            .map(|s| {
                let feature = FEATURES[self.rng.usize(..FEATURES.len())];
                let path = format!("/rig/test_cases/{s:02}_feature_{feature}");
                let scenario_tests: Vec<Value> = (1..=self.config.tests_per_scenario)
                    .map(|t| {
                        let name = format!("{s:02}_{t:02}_test_{feature}.py");
                        tests.push(PlannedTest {
                            file_path: path.clone(),
                            file_name: name.clone(),
                            id: None,
                        });
                        json!({"file_path": path, "file_name": name, "script": test_script(feature, t)})
                    })
                    .collect();
                json!({
                    "file_path": "/rig/test_cases/scenarios",
                    "file_name": format!("scenario_{s:02}_feature_{feature}.py"),
                    "script": "from run import run_test_case\n",
                    "tests": scenario_tests,
                })
            })
            .collect();
        let plan = json!({
            "machine_name": self.config.name,
            "timestamp": Self::now(),
            "master_scenario": {
                "file_path": "/rig/test_cases/scenarios",
                "file_name": "scenario_master.py",
                "script": "from run import SCENARIOS_DIR, run_test_scenario\n",
                "scenarios": scenarios,
            }
        });
        (plan, tests)
    }

    fn random_status(&mut self) -> Status {
        match self.rng.u32(..1000) {
            0..=699 => Status::Passed,
            700..=799 => Status::Warning,
            800..=889 => Status::Failed,
            890..=949 => Status::Error,
            950..=997 => Status::Unknown,
            _ => Status::Cancelled,
        }
    }

    /// A client event id from the machine's seeded generator, so runs repeat.
    fn key(&mut self) -> Result<EventId, VirtualMachineError> {
        EventId::new(format!(
            "{:016x}{:016x}",
            self.rng.u64(..),
            self.rng.u64(..)
        ))
        .map_err(|error| fail(error.to_string()))
    }

    fn api(&self) -> Result<&stpt_client::Client, VirtualMachineError> {
        self.api
            .as_ref()
            .map_err(|error| fail(format!("server {}: {error}", self.config.server)))
    }

    /// Runs `request` up to 3 times while it fails in a way worth retrying: each try sends
    /// the same idempotency key, so the server applies it once.
    async fn with_retries<T, F>(
        what: &str,
        mut request: impl FnMut() -> F,
    ) -> Result<T, VirtualMachineError>
    where
        F: std::future::Future<Output = Result<T, ClientError>>,
    {
        let mut attempts_left = 3;
        loop {
            attempts_left -= 1;
            match request().await {
                Ok(answer) => return Ok(answer),
                Err(error) if error.is_retryable() && attempts_left > 0 => {
                    let pause = error.retry_after().unwrap_or(Duration::from_millis(200));
                    tokio::time::sleep(pause.min(Duration::from_secs(5))).await;
                }
                Err(error) => return Err(fail(format!("{what}: {error}"))),
            }
        }
    }

    /// Posts to the seed protocol's `path`.
    async fn post(&self, path: &str, body: &Value) -> Result<Value, VirtualMachineError> {
        let url = format!("{}{path}", self.config.server.trim_end_matches('/'));
        let mut request = self.client.post(&url).json(body);
        if let Some(token) = &self.config.token {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .await
            .map_err(|error| fail(format!("{path}: {error}")))?;
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            Ok(answer)
        } else {
            Err(fail(format!("{path} answered {status}: {answer}")))
        }
    }

    /// Posts a plan and runs every test of it once.
    pub async fn run_once(&mut self) -> Result<RunReport, VirtualMachineError> {
        let (plan, mut tests) = self.plan();
        let run_id = match self.config.protocol {
            Protocol::V1 => {
                let plan: PlanPayload = serde_json::from_value(plan)
                    .map_err(|error| fail(format!("the plan is malformed: {error}")))?;
                let key = self.key()?;
                let api = self.api()?;
                let created = Self::with_retries("/api/v1/plans", || api.plan(&plan, &key)).await?;
                for (test, id) in tests.iter_mut().zip(created.test_ids()) {
                    test.id = Some(id);
                }
                created.run_id.get()
            }
            Protocol::Seed => {
                // The seed's answer echoes the plan without ids: read them as a seed client would.
                self.post("/tm_api/dry_run/", &plan).await?;
                self.seed_latest_run_id().await?
            }
        };
        let mut report = RunReport {
            run_id,
            ..RunReport::default()
        };
        let mut cancelled = false;
        for test in &tests {
            if cancelled {
                report.statuses.push(Status::Cancelled);
                continue;
            }
            self.event(test, None).await?;
            let mean = self.config.mean_test_duration.as_secs_f64();
            tokio::time::sleep(Duration::from_secs_f64(mean * 2.0 * self.rng.f64())).await;
            let status = self.random_status();
            self.event(test, Some(status)).await?;
            report.events += 2;
            report.statuses.push(status);
            cancelled = status == Status::Cancelled;
        }
        Ok(report)
    }

    /// This machine's latest run, found through the seed's read API: its machine in the
    /// machines list, then its last data.
    async fn seed_latest_run_id(&self) -> Result<i64, VirtualMachineError> {
        let name = self.config.name.to_lowercase();
        let mut page = 1;
        loop {
            let machines = self
                .get(&format!("/tm_api/machines/?page_size=100&page={page}"))
                .await?;
            let found = machines["results"].as_array().and_then(|results| {
                results.iter().find_map(|machine| {
                    let spelled = machine["machine_name"].as_str()?;
                    (spelled.to_lowercase() == name).then(|| machine["pk"].as_i64())?
                })
            });
            if let Some(machine) = found {
                let last = self
                    .get(&format!("/tm_api/machine_last_data/{machine}/"))
                    .await?;
                return last["last_master_scenario"]["dryrundata"]
                    .as_i64()
                    .ok_or_else(|| fail("the machine's last data has no run"));
            }
            if machines["has_next"] != Value::Bool(true) {
                return Err(fail("the machine is not in the machines list"));
            }
            page += 1;
        }
    }

    async fn get(&self, path: &str) -> Result<Value, VirtualMachineError> {
        let url = format!("{}{path}", self.config.server.trim_end_matches('/'));
        let mut request = self.client.get(&url);
        if let Some(token) = &self.config.token {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .await
            .map_err(|error| fail(format!("{path}: {error}")))?;
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            Ok(answer)
        } else {
            Err(fail(format!("{path} answered {status}: {answer}")))
        }
    }

    /// A start (`status` None) or a stop.
    async fn event(
        &mut self,
        test: &PlannedTest,
        status: Option<Status>,
    ) -> Result<(), VirtualMachineError> {
        match (self.config.protocol, test.id) {
            (Protocol::V1, Some(id)) => {
                let key = self.key()?;
                let api = self.api()?;
                let at = Utc::now();
                match status {
                    None => {
                        let what = format!("start of test {id}");
                        Self::with_retries(&what, || api.start_test(id, at, &key)).await?;
                    }
                    Some(status) => {
                        let what = format!("stop of test {id}");
                        Self::with_retries(&what, || api.stop_test(id, status, at, &key)).await?;
                    }
                }
            }
            _ => {
                let (path, body) = match status {
                    None => (
                        "/tm_api/test_start/",
                        json!({"machine_name": self.config.name, "file_path": test.file_path,
                               "file_name": test.file_name, "timestamp_start": Self::now()}),
                    ),
                    Some(status) => (
                        "/tm_api/test_stop/",
                        json!({"machine_name": self.config.name, "file_path": test.file_path,
                               "file_name": test.file_name, "status": status,
                               "timestamp_stop": Self::now()}),
                    ),
                };
                self.post(path, &body).await?;
            }
        }
        Ok(())
    }

    /// Runs plan after plan until `runs` are done (`None`: forever), pausing briefly between
    /// them; errors are logged and the machine goes on with a new plan.
    pub async fn run_forever(mut self, runs: Option<usize>) {
        let mut done = 0;
        while runs.is_none_or(|runs| done < runs) {
            match self.run_once().await {
                Ok(report) => {
                    tracing::info!(machine = %self.config.name, run = report.run_id, events = report.events, "virtual run finished");
                }
                Err(error) => {
                    tracing::warn!(machine = %self.config.name, %error, "virtual run failed");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
            done += 1;
            tokio::time::sleep(self.config.mean_test_duration).await;
        }
    }
}

const FEATURES: [&str; 8] = [
    "lamp", "door", "trunk", "wiper", "horn", "mirror", "seat", "radio",
];

fn test_script(feature: &str, number: usize) -> String {
    format!(
        "from time import sleep\nfrom rig import {feature}\n\n\
         def test_{feature}_{number}():\n    {feature}.power_on()\n    sleep({number})\n    \
         assert {feature}.state() == 'ok'\n\nRUN_DATA.last_status = 'passed'\n"
    )
}
