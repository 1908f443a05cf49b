//! The typed client of `/api/v1`: one method per endpoint, one request per call, no retries
//! (retrying is the caller's choice; [`ClientError::is_retryable`] says when it is safe).

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use stpt_core::{
    EventId, EventReceipt, FailureDetails, ItemDetail, MachineId, MachineSummary, PageRequest,
    PlanPayload, RunDetail, RunEta, RunId, RunSummary, ScenarioId, Status, TestId,
};

/// How long one request may take by default, connecting included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The `Idempotency-Key` header of the single-event endpoints.
const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// Why a request did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server could not be reached, the connection broke, the request timed out, or the
    /// answer was not the JSON expected. Retrying later may succeed.
    #[error("cannot talk to the stpt server: {0}")]
    Transport(#[from] reqwest::Error),
    /// The server answered `429` or `5xx`: busy, restarting or failing. Retry after
    /// `retry_after` when the server said, else after a backoff.
    #[error("the stpt server is busy (HTTP {status}): {message}")]
    Busy {
        /// The HTTP status.
        status: u16,
        /// The server's `Retry-After`, if it sent one in seconds.
        retry_after: Option<Duration>,
        /// The error envelope's message, or the HTTP reason.
        message: String,
    },
    /// The server refused the request (a `4xx` other than `429`). Sending it again as it is
    /// will be refused again.
    #[error("the stpt server refused the request (HTTP {status}, {}): {}", .error.code, .error.message)]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The error envelope's `error` object.
        error: ServerError,
    },
    /// The request was not sent: the caller's input cannot be right (a bad base URL, a
    /// non-final status for a stop).
    #[error("invalid input: {0}")]
    InvalidInput(String),
}

impl ClientError {
    /// Whether sending the same request again later may succeed: the server was unreachable
    /// or busy. With the same idempotency key or event ids, a resend is applied once.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ClientError::Transport(_) | ClientError::Busy { .. })
    }

    /// How long the server asked to wait before retrying, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ClientError::Busy { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// The `error` object of the server's error envelope (`{"error": {...}}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerError {
    /// Stable, for programs: `invalid_input`, `no_match`, `idempotency_key_reused`, ...
    pub code: String,
    /// For people; wording may change.
    pub message: String,
    /// With `invalid_input`: where in the input, e.g. `events[2].status`.
    #[serde(default)]
    pub field: Option<String>,
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: ServerError,
}

/// The answer to a plan: every id later events may address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanCreated {
    /// The machine (created if its name was new).
    pub machine_id: MachineId,
    /// The new run.
    pub run_id: RunId,
    /// The plan's scenarios in plan order, each with its tests' ids in plan order.
    pub scenarios: Vec<PlannedScenarioIds>,
    /// Runs of the machine that were still ongoing and were abandoned by this plan.
    #[serde(default)]
    pub abandoned_runs: Vec<RunId>,
    /// `true` when the idempotency key was seen before: nothing was stored now and the ids
    /// are those of the first time.
    pub replayed: bool,
}

impl PlanCreated {
    /// The id of test `test` of scenario `scenario` (both from 0, in plan order).
    pub fn test_id(&self, scenario: usize, test: usize) -> Option<TestId> {
        self.scenarios.get(scenario)?.test_ids.get(test).copied()
    }

    /// Every test's id in plan order.
    pub fn test_ids(&self) -> impl Iterator<Item = TestId> + '_ {
        self.scenarios
            .iter()
            .flat_map(|s| s.test_ids.iter().copied())
    }
}

/// A planned scenario's id and its tests' ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedScenarioIds {
    /// The scenario.
    pub id: ScenarioId,
    /// Its tests, in plan order.
    pub test_ids: Vec<TestId>,
}

/// What a start or stop did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecorded {
    /// What the event did (the first time, when replayed).
    #[serde(flatten)]
    pub receipt: EventReceipt,
    /// `true` when the idempotency key was seen before and nothing was applied now.
    pub replayed: bool,
}

/// Whether a batch event starts or stops its test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The test started.
    TestStart,
    /// The test stopped with a final status.
    TestStop,
}

/// Which test a batch event is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TestRef {
    /// By the id the plan's answer gave: exactly this test.
    Id {
        /// The test.
        test_id: TestId,
    },
    /// As the seed protocol does: the first waiting (or running) test of this name in the
    /// machine's ongoing run.
    Named {
        /// The machine's name.
        machine_name: String,
        /// The test script's directory.
        file_path: String,
        /// The test script's file name.
        file_name: String,
    },
}

/// One event of a batch (`POST /api/v1/events`). Build it with [`BatchEvent::start`] or
/// [`BatchEvent::stop`], which make a start without a status and a stop with a final one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BatchEvent {
    event_id: EventId,
    #[serde(rename = "type")]
    kind: EventKind,
    #[serde(flatten)]
    test: TestRef,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<Status>,
    timestamp: DateTime<Utc>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    failure: Option<FailureDetails>,
}

impl BatchEvent {
    /// `test` started at `at`; `event_id` makes a resend harmless.
    pub fn start(event_id: EventId, test: TestRef, at: DateTime<Utc>) -> Self {
        BatchEvent {
            event_id,
            kind: EventKind::TestStart,
            test,
            status: None,
            timestamp: at,
            failure: None,
        }
    }

    /// `test` stopped at `at` with `status`, which must be final (not `waiting` or
    /// `running`).
    pub fn stop(
        event_id: EventId,
        test: TestRef,
        status: Status,
        at: DateTime<Utc>,
    ) -> Result<Self, ClientError> {
        check_final(status)?;
        Ok(BatchEvent {
            event_id,
            kind: EventKind::TestStop,
            test,
            status: Some(status),
            timestamp: at,
            failure: None,
        })
    }

    /// A stop that also says how the test ended: a short `message` (such as the failed
    /// assertion) and longer `details` (a traceback, a log tail), cut to the server's bounds
    /// with a visible marker ([`FailureDetails::fit`]). A start says nothing of the kind:
    /// [`ClientError::InvalidInput`].
    pub fn with_details(
        mut self,
        message: Option<&str>,
        details: Option<&str>,
    ) -> Result<Self, ClientError> {
        if self.kind == EventKind::TestStart && (message.is_some() || details.is_some()) {
            return Err(ClientError::InvalidInput(
                "a test start carries no message or details; give them to its stop".to_owned(),
            ));
        }
        self.failure = FailureDetails::fit(message, details);
        Ok(self)
    }

    /// The event's client id.
    pub fn event_id(&self) -> &EventId {
        &self.event_id
    }
}

/// What the server did with one event of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum BatchOutcome {
    /// The event was applied.
    Applied {
        /// What it did.
        receipt: EventReceipt,
    },
    /// The event's id was applied before; nothing was applied now.
    Replayed {
        /// What it did the first time.
        receipt: EventReceipt,
    },
    /// The event matched nothing, or its id was used before for another event; the events
    /// after it were still applied. Sending it again will not help.
    Rejected {
        /// Why.
        error: ServerError,
    },
}

#[derive(Deserialize)]
struct BatchResults {
    results: Vec<BatchOutcome>,
}

/// One page of a list, as `/api/v1` answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageOf<T> {
    /// This page's items.
    pub items: Vec<T>,
    /// This page, from 1.
    pub page: u32,
    /// Items per page.
    pub page_size: u32,
    /// Items on all pages.
    pub total: u64,
    /// Pages in all (at least 1).
    pub total_pages: u32,
}

/// The most events one batch may carry (the server refuses more).
pub const MAX_BATCH_EVENTS: usize = 1000;

fn check_final(status: Status) -> Result<(), ClientError> {
    if status.is_finished() {
        Ok(())
    } else {
        Err(ClientError::InvalidInput(format!(
            "a test stops with a final status, not `{status}`"
        )))
    }
}

/// A new random client event id (128 bits, hex), for an idempotency key or a batch event.
pub fn new_event_id() -> EventId {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // No system randomness: fall back to a generator seeded from the clock, still
        // unique enough per machine.
        let mut rng = fastrand::Rng::new();
        bytes.iter_mut().for_each(|byte| *byte = rng.u8(..));
    }
    let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    EventId::new(hex).unwrap_or_else(|_| unreachable!("32 hex digits are a valid event id"))
}

/// A client of one stpt server's `/api/v1`.
///
/// Cheap to clone (the connection pool is shared). Every write takes a client event id, so a
/// write that failed with a retryable error can be sent again as it is.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    /// A client of the server at `base_url` (e.g. `http://127.0.0.1:8000`), without a runner
    /// token, with [`DEFAULT_TIMEOUT`] per request.
    pub fn new(base_url: &str) -> Result<Self, ClientError> {
        let parsed = reqwest::Url::parse(base_url).map_err(|error| {
            ClientError::InvalidInput(format!("`{base_url}` is not a URL: {error}"))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(ClientError::InvalidInput(format!(
                "`{base_url}` is not an http(s) URL"
            )));
        }
        let http = reqwest::Client::builder()
            .timeout(DEFAULT_TIMEOUT)
            .user_agent(concat!("stpt-client/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Client {
            http,
            base: base_url.trim_end_matches('/').to_owned(),
            token: None,
        })
    }

    /// Sends `token` as `Authorization: Bearer` with every request (a runner token, from
    /// `stpt-server token create`).
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Uses `http` for the requests (its own timeouts, proxies, TLS).
    pub fn with_http_client(mut self, http: reqwest::Client) -> Self {
        self.http = http;
        self
    }

    /// The server's base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Stores a plan as a new run (`POST /api/v1/plans`). Sent again with the same `key`,
    /// it is stored once and answers the first time's ids with `replayed`.
    pub async fn plan(
        &self,
        plan: &PlanPayload,
        key: &EventId,
    ) -> Result<PlanCreated, ClientError> {
        self.plan_with_backlog(plan, key, None).await
    }

    /// [`Client::plan`], saying while replaying a spool how many events are still queued
    /// after it ([`stpt_core::BACKLOG_HEADER`]).
    pub(crate) async fn plan_with_backlog(
        &self,
        plan: &PlanPayload,
        key: &EventId,
        backlog: Option<u64>,
    ) -> Result<PlanCreated, ClientError> {
        self.post("/api/v1/plans", plan, Some(key), backlog).await
    }

    /// Starts the waiting test `test` at `at` (`POST /api/v1/tests/{id}/start`).
    pub async fn start_test(
        &self,
        test: TestId,
        at: DateTime<Utc>,
        key: &EventId,
    ) -> Result<EventRecorded, ClientError> {
        #[derive(Serialize)]
        struct Body {
            timestamp: DateTime<Utc>,
        }
        let path = format!("/api/v1/tests/{test}/start");
        self.post(&path, &Body { timestamp: at }, Some(key), None)
            .await
    }

    /// Stops the running test `test` at `at` with the final `status`
    /// (`POST /api/v1/tests/{id}/stop`); `cancelled` cancels the whole run.
    pub async fn stop_test(
        &self,
        test: TestId,
        status: Status,
        at: DateTime<Utc>,
        key: &EventId,
    ) -> Result<EventRecorded, ClientError> {
        self.stop_test_with_details(test, status, at, None, key)
            .await
    }

    /// [`Client::stop_test`], saying how the test ended: `failure`'s message and details,
    /// cut to the server's bounds with a visible marker ([`FailureDetails::fit`]).
    pub async fn stop_test_with_details(
        &self,
        test: TestId,
        status: Status,
        at: DateTime<Utc>,
        failure: Option<&FailureDetails>,
        key: &EventId,
    ) -> Result<EventRecorded, ClientError> {
        #[derive(Serialize)]
        struct Body {
            status: Status,
            timestamp: DateTime<Utc>,
            #[serde(flatten, skip_serializing_if = "Option::is_none")]
            failure: Option<FailureDetails>,
        }
        check_final(status)?;
        let path = format!("/api/v1/tests/{test}/stop");
        let body = Body {
            status,
            timestamp: at,
            failure: failure.and_then(|failure| {
                FailureDetails::fit(failure.message.as_deref(), failure.details.as_deref())
            }),
        };
        self.post(&path, &body, Some(key), None).await
    }

    /// Applies `events` in order (`POST /api/v1/events`, at most [`MAX_BATCH_EVENTS`]); one
    /// outcome per event, in the same order.
    pub async fn post_events(
        &self,
        events: &[BatchEvent],
    ) -> Result<Vec<BatchOutcome>, ClientError> {
        self.post_events_with_backlog(events, None).await
    }

    /// [`Client::post_events`], saying while replaying a spool how many events are still
    /// queued after these ([`stpt_core::BACKLOG_HEADER`]).
    pub(crate) async fn post_events_with_backlog(
        &self,
        events: &[BatchEvent],
        backlog: Option<u64>,
    ) -> Result<Vec<BatchOutcome>, ClientError> {
        #[derive(Serialize)]
        struct Body<'a> {
            events: &'a [BatchEvent],
        }
        if events.len() > MAX_BATCH_EVENTS {
            return Err(ClientError::InvalidInput(format!(
                "at most {MAX_BATCH_EVENTS} events per batch, got {}",
                events.len()
            )));
        }
        let answer: BatchResults = self
            .post("/api/v1/events", &Body { events }, None, backlog)
            .await?;
        Ok(answer.results)
    }

    /// A page of machines with their live status (`GET /api/v1/machines`).
    pub async fn machines(&self, page: PageRequest) -> Result<PageOf<MachineSummary>, ClientError> {
        self.get(&paged("/api/v1/machines", page)).await
    }

    /// One machine (`GET /api/v1/machines/{id}`).
    pub async fn machine(&self, machine: MachineId) -> Result<MachineSummary, ClientError> {
        self.get(&format!("/api/v1/machines/{machine}")).await
    }

    /// A page of a machine's runs, newest first (`GET /api/v1/machines/{id}/runs`).
    pub async fn machine_runs(
        &self,
        machine: MachineId,
        page: PageRequest,
    ) -> Result<PageOf<RunSummary>, ClientError> {
        self.get(&paged(&format!("/api/v1/machines/{machine}/runs"), page))
            .await
    }

    /// A run in full: header, counts, scenarios and tests (`GET /api/v1/runs/{id}`).
    pub async fn run(&self, run: RunId) -> Result<RunDetail, ClientError> {
        self.get(&format!("/api/v1/runs/{run}")).await
    }

    /// When a run is expected to end (`GET /api/v1/runs/{id}/eta`).
    pub async fn run_eta(&self, run: RunId) -> Result<RunEta, ClientError> {
        self.get(&format!("/api/v1/runs/{run}/eta")).await
    }

    /// One test with its script (`GET /api/v1/tests/{id}`).
    pub async fn test(&self, test: TestId) -> Result<ItemDetail, ClientError> {
        self.get(&format!("/api/v1/tests/{test}")).await
    }

    async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        key: Option<&EventId>,
        backlog: Option<u64>,
    ) -> Result<T, ClientError> {
        let mut request = self.http.post(format!("{}{path}", self.base)).json(body);
        if let Some(key) = key {
            request = request.header(IDEMPOTENCY_KEY, key.as_str());
        }
        if let Some(left) = backlog {
            request = request.header(stpt_core::BACKLOG_HEADER, left.to_string());
        }
        self.send(request).await
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    async fn send<T: DeserializeOwned>(
        &self,
        mut request: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await?;
        let status = response.status();
        if status.is_success() {
            return Ok(response.json().await?);
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        // An answer that is not the envelope (a proxy's page, a cut body) still says enough.
        let text = response.text().await.unwrap_or_default();
        let error = serde_json::from_str::<ErrorEnvelope>(&text)
            .map(|envelope| envelope.error)
            .unwrap_or_else(|_| ServerError {
                code: "http_error".to_owned(),
                message: status
                    .canonical_reason()
                    .unwrap_or("unexpected answer")
                    .to_owned(),
                field: None,
            });
        if status.as_u16() == 429 || status.is_server_error() {
            Err(ClientError::Busy {
                status: status.as_u16(),
                retry_after,
                message: error.message,
            })
        } else {
            Err(ClientError::Refused {
                status: status.as_u16(),
                error,
            })
        }
    }
}

fn paged(path: &str, page: PageRequest) -> String {
    format!("{path}?page={}&page_size={}", page.number(), page.size())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_are_unique_and_valid() {
        let first = new_event_id();
        let second = new_event_id();
        assert_ne!(first, second);
        assert_eq!(first.as_str().len(), 32);
    }

    #[test]
    fn a_stop_needs_a_final_status() {
        let test = TestRef::Id { test_id: TestId(1) };
        let refused = BatchEvent::stop(new_event_id(), test.clone(), Status::Running, Utc::now());
        assert!(matches!(refused, Err(ClientError::InvalidInput(_))));
        assert!(BatchEvent::stop(new_event_id(), test, Status::Passed, Utc::now()).is_ok());
    }

    #[test]
    fn stops_carry_failure_details_cut_to_the_bounds() {
        let test = TestRef::Id { test_id: TestId(7) };
        let at = Utc::now();
        let long = "x".repeat(stpt_core::MAX_FAILURE_DETAILS_BYTES * 2);
        let stop = BatchEvent::stop(
            EventId::new("e-3").unwrap(),
            test.clone(),
            Status::Failed,
            at,
        )
        .unwrap()
        .with_details(Some("assert 1 == 2"), Some(&long))
        .unwrap();
        let json = serde_json::to_value(&stop).unwrap();
        assert_eq!(json["message"], "assert 1 == 2");
        let details = json["details"].as_str().unwrap();
        assert!(details.len() <= stpt_core::MAX_FAILURE_DETAILS_BYTES);
        assert!(details.contains("cut by stpt"));
        let start = BatchEvent::start(EventId::new("e-4").unwrap(), test, at);
        assert!(start.clone().with_details(None, None).is_ok());
        assert!(matches!(
            start.with_details(Some("early"), None),
            Err(ClientError::InvalidInput(_))
        ));
    }

    #[test]
    fn batch_events_have_the_wire_shape() {
        let at = DateTime::parse_from_rfc3339("2026-11-24T13:02:04Z")
            .map(|at| at.with_timezone(&Utc))
            .unwrap();
        let event = BatchEvent::stop(
            EventId::new("e-1").unwrap(),
            TestRef::Id { test_id: TestId(7) },
            Status::Failed,
            at,
        )
        .unwrap();
        assert_eq!(
            serde_json::to_value(&event).unwrap(),
            serde_json::json!({"event_id": "e-1", "type": "test_stop", "test_id": 7,
                               "status": "failed", "timestamp": "2026-11-24T13:02:04Z"})
        );
        let named = BatchEvent::start(
            EventId::new("e-2").unwrap(),
            TestRef::Named {
                machine_name: "rig".into(),
                file_path: "/t".into(),
                file_name: "a.py".into(),
            },
            at,
        );
        let json = serde_json::to_value(&named).unwrap();
        assert_eq!(json["machine_name"], "rig");
        assert!(json.get("status").is_none());
    }

    #[test]
    fn base_urls_are_checked() {
        assert!(matches!(
            Client::new("not a url"),
            Err(ClientError::InvalidInput(_))
        ));
        assert!(matches!(
            Client::new("ftp://host"),
            Err(ClientError::InvalidInput(_))
        ));
        let client = Client::new("http://127.0.0.1:8000/").unwrap();
        assert_eq!(client.base_url(), "http://127.0.0.1:8000");
    }
}
