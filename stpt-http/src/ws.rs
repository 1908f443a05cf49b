//! WebSockets, fed by the tracker's [`LiveBus`](stpt_core::LiveBus): stpt's own compact
//! protocol under `/ws/v1/`, and the seed's messages on the seed's paths.
//!
//! ## The seed's paths
//!
//! What the seed's pages and scripts listened to, message for message; nothing on connect.
//!
//! - `/ws/machine/status/` — `{"machine_id_status": {"id", "status"}}` on every machine status
//!   change.
//! - `/ws/machine/{id}/runs/` — `{"run_data": {"id", "status"}}` when a run of the machine is
//!   planned or changes status.
//! - `/ws/machine/{id}/last/` — `{"machine_data": …}`, the whole latest run exactly as
//!   `/tm_api/machine_last_data/{id}/` answers it. The seed sent it on every event; here a
//!   socket gets at most one per [`SEED_MACHINE_DATA_EVERY`], always the latest state, so a
//!   10,000-test run cannot flood it.
//!
//! ## stpt's protocol (`/ws/v1/`)
//!
//! Every socket follows one protocol: subscribe to the bus first, then read a snapshot from
//! the tracker, then forward deliveries. Changes carry absolute values, so an event that the
//! snapshot already contains is harmless when it arrives again. A subscriber that lags
//! behind the bus gets a fresh snapshot instead of the events it missed. One task per
//! socket; a slow browser only ever slows its own task, never a publisher.
//!
//! Messages (JSON text frames, one object with one key):
//!
//! - `/ws/v1/machine/status/` — `{"machine_id_status": {"id", "status", "name"}}` on every
//!   machine status change. With `?page=&page_size=`, the statuses of that page of machines
//!   are sent on connect and after a lag. With `?liveness=1` (stpt's own pages; the seed's
//!   clients never ask, so they get only the seed's messages), also
//!   `{"machine_liveness": {"id", "liveness", "last_seen"}}` and
//!   `{"machine_failures": {"id", "run_id", "failed"}}` (the latest run's failed and errored
//!   tests) on connect and on every change.
//! - `/ws/v1/machine/{id}/runs/` — `{"run_data": {"id", "status", "timestamp_start",
//!   "timestamp_stop", "failed"}}` when a run's status or failure count changes,
//!   and `{"run_created": {"id", "status", "timestamp", "scenarios", "tests"}}` for a new run.
//!   With `?page=&page_size=`, that page's statuses are sent on connect and after a lag; with
//!   `?liveness=1`, the machine's liveness changes as on the status socket.
//! - `/ws/v1/machine/{id}/last/` — `{"snapshot": {"now", "run"}}` on connect and after a lag
//!   (`run`: the latest run in full, or `null`), then `{"run_changed": RunChange}` per event
//!   (the tests that changed and the aggregates they moved: its size does not depend on the
//!   size of the run), and for a new plan `{"run_created": RunSummary}` followed by the new
//!   run's snapshot.
//! - `/ws/v1/run/{id}/` — the same for one run: its snapshot, its changes, and
//!   `{"run_created": RunSummary}` when a newer run of its machine supersedes it.
//!
//! With `?parts=1` (stpt's own pages), these two send a run's snapshot in parts, so a
//! 10,000-test run is not one large frame of names it already shows:
//! `{"snapshot": {"now", "run": {"summary", "machine_name", "master", "scenarios"}, "parts": n}}`
//! (scenarios without their tests), then `n` messages `{"snapshot_part": {"run_id",
//! "statuses": {"passed": [test ids], …}}}` of at most 2,000 tests each, before any change.
//!
//! On every `/ws/v1/` socket, `{"behind": true}` says the live feed is interrupted (with
//! several instances: their Redis went away) and changes may not arrive; `{"behind": false}`
//! follows once it is back, after the messages that catch the page up.

use axum::Router;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::Uri;
use axum::response::Response;
use axum::routing::{MethodRouter, get};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;
use stpt_core::{
    Delivery, Error, ItemRef, LiveEvent, Liveness, MachineId, MachineStatus, PageRequest,
    RunDetail, RunId, RunSummary, Status, TestId, Topic, Tracker,
};
use tokio_stream::StreamExt;

use crate::ApiError;
use crate::extract::{parse_id, parse_number};
use crate::humanize::display_time;

/// How often the server pings an idle socket, so proxies keep it and dead peers are found.
#[cfg(not(test))]
const PING_EVERY: Duration = Duration::from_secs(25);
#[cfg(test)]
const PING_EVERY: Duration = Duration::from_millis(200);
/// A peer that does not take a message within this time is disconnected.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// The least time between two `machine_data` messages on one seed last-run socket.
pub(crate) const SEED_MACHINE_DATA_EVERY: Duration = Duration::from_millis(250);
/// The largest message (and frame) a peer may send, in bytes. The server reads nothing
/// from peers but pongs and close frames, so a few KiB is plenty; the library's default
/// (64 MiB) would let each socket pin that much memory.
pub(crate) const MAX_INCOMING_MESSAGE: usize = 4 * 1024;

/// Each socket's read buffer, in bytes. The library's default (128 KiB, allocated up front)
/// made 2,000 open sockets take about 270 MiB; peers send only pongs and close frames.
const READ_BUFFER: usize = 4 * 1024;

/// The upgrade with stpt's limits: small incoming messages and frames, a small read buffer.
fn limited(upgrade: WebSocketUpgrade) -> WebSocketUpgrade {
    upgrade
        .max_message_size(MAX_INCOMING_MESSAGE)
        .max_frame_size(MAX_INCOMING_MESSAGE)
        .read_buffer_size(READ_BUFFER)
}

/// The socket routes, each with and without its trailing slash.
pub(crate) fn routes() -> Router<Tracker> {
    let mut router = Router::new();
    let sockets: [(&str, MethodRouter<Tracker>); 7] = [
        ("/ws/v1/machine/status", get(machine_status)),
        ("/ws/v1/machine/{id}/runs", get(machine_runs)),
        ("/ws/v1/machine/{id}/last", get(machine_last)),
        ("/ws/v1/run/{id}", get(run)),
        ("/ws/machine/status", get(seed_machine_status)),
        ("/ws/machine/{id}/runs", get(seed_machine_runs)),
        ("/ws/machine/{id}/last", get(seed_machine_last)),
    ];
    for (path, handler) in sockets {
        router = router
            .route(path, handler.clone())
            .route(&format!("{path}/"), handler);
    }
    router
}

async fn machine_status(
    State(tracker): State<Tracker>,
    uri: Uri,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let page = optional_page(&uri)?;
    let liveness = wants_liveness(&uri);
    Ok(limited(upgrade)
        .on_upgrade(move |socket| serve(socket, tracker, Follow::Machines { page, liveness })))
}

async fn machine_runs(
    State(tracker): State<Tracker>,
    Path(id): Path<String>,
    uri: Uri,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let machine = MachineId(parse_id("machine", &id)?);
    let page = optional_page(&uri)?;
    let liveness = wants_liveness(&uri);
    tracker.machine(machine).await?;
    Ok(limited(upgrade).on_upgrade(move |socket| {
        serve(
            socket,
            tracker,
            Follow::Runs {
                machine,
                page,
                liveness,
                sent: HashMap::new(),
            },
        )
    }))
}

async fn machine_last(
    State(tracker): State<Tracker>,
    Path(id): Path<String>,
    uri: Uri,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let machine = MachineId(parse_id("machine", &id)?);
    let snapshot = SnapshotForm::asked(&uri);
    tracker.machine(machine).await?;
    Ok(limited(upgrade)
        .on_upgrade(move |socket| serve(socket, tracker, Follow::Latest { machine, snapshot })))
}

async fn run(
    State(tracker): State<Tracker>,
    Path(id): Path<String>,
    uri: Uri,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let run = RunId(parse_id("run", &id)?);
    let snapshot = SnapshotForm::asked(&uri);
    let machine = tracker.item(ItemRef::MasterScenario(run)).await?.machine_id;
    Ok(limited(upgrade).on_upgrade(move |socket| {
        serve(
            socket,
            tracker,
            Follow::Run {
                machine,
                run,
                snapshot,
            },
        )
    }))
}

async fn seed_machine_status(
    State(tracker): State<Tracker>,
    upgrade: WebSocketUpgrade,
) -> Response {
    limited(upgrade).on_upgrade(move |socket| serve(socket, tracker, Follow::SeedMachines))
}

/// The seed took any machine id here, known yet or not; so does stpt.
async fn seed_machine_runs(
    State(tracker): State<Tracker>,
    Path(id): Path<String>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let machine = MachineId(parse_id("machine", &id)?);
    Ok(limited(upgrade).on_upgrade(move |socket| {
        serve(
            socket,
            tracker,
            Follow::SeedRuns {
                machine,
                sent: HashMap::new(),
            },
        )
    }))
}

async fn seed_machine_last(
    State(tracker): State<Tracker>,
    Path(id): Path<String>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let machine = MachineId(parse_id("machine", &id)?);
    Ok(limited(upgrade).on_upgrade(move |socket| {
        serve(
            socket,
            tracker,
            Follow::SeedLatest {
                machine,
                changed: false,
                last_sent: None,
            },
        )
    }))
}

/// `?liveness=1`: stpt's pages ask for liveness messages, which the seed's clients do not know.
/// How a run socket sends a run's state: whole, or as an outline and then its tests'
/// statuses in parts (`?parts=1`, what stpt's pages ask for).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SnapshotForm {
    Whole,
    InParts,
}

impl SnapshotForm {
    fn asked(uri: &Uri) -> Self {
        let in_parts = uri
            .query()
            .is_some_and(|query| query.split('&').any(|pair| pair == "parts=1"));
        if in_parts {
            SnapshotForm::InParts
        } else {
            SnapshotForm::Whole
        }
    }
}

fn wants_liveness(uri: &Uri) -> bool {
    uri.query()
        .is_some_and(|query| query.split('&').any(|pair| pair == "liveness=1"))
}

/// `?page=&page_size=` when either is given.
fn optional_page(uri: &Uri) -> Result<Option<PageRequest>, ApiError> {
    let query: HashMap<String, String> = Query::try_from_uri(uri)
        .map(|Query(query)| query)
        .map_err(|rejection| {
            ApiError::invalid("query", format!("unreadable query string: {rejection}"))
        })?;
    if !query.contains_key("page") && !query.contains_key("page_size") {
        return Ok(None);
    }
    let number = parse_number(&query, "page", 1)?;
    let size = parse_number(&query, "page_size", PageRequest::DEFAULT_SIZE)?;
    Ok(Some(PageRequest::new(number, size)?))
}

/// What one socket follows, with the little state it keeps.
#[derive(Debug)]
enum Follow {
    Machines {
        page: Option<PageRequest>,
        liveness: bool,
    },
    Runs {
        machine: MachineId,
        page: Option<PageRequest>,
        liveness: bool,
        /// The last status and failure count sent per run, so only real changes are sent.
        sent: HashMap<RunId, (Status, u32)>,
    },
    Latest {
        machine: MachineId,
        snapshot: SnapshotForm,
    },
    Run {
        machine: MachineId,
        run: RunId,
        snapshot: SnapshotForm,
    },
    /// The seed's status socket.
    SeedMachines,
    /// The seed's runs socket.
    SeedRuns {
        machine: MachineId,
        /// The last status sent per run, so only real status changes are sent.
        sent: HashMap<RunId, Status>,
    },
    /// The seed's last-run socket: changes are gathered and sent as one `machine_data`.
    SeedLatest {
        machine: MachineId,
        /// Whether something changed since the last `machine_data`.
        changed: bool,
        /// When the last `machine_data` went out.
        last_sent: Option<tokio::time::Instant>,
    },
}

/// The seed's messages, each under the key the seed used.
#[derive(Debug, Serialize)]
#[serde(rename_all = "snake_case")]
enum SeedOutgoing<'a> {
    MachineIdStatus {
        id: MachineId,
        status: MachineStatus,
    },
    RunData {
        id: RunId,
        status: Status,
    },
    MachineData(&'a crate::seed::views::MachineLastDataJson),
}

impl SeedOutgoing<'_> {
    fn text(&self) -> Result<Message, Error> {
        let text = serde_json::to_string(self).map_err(Error::backend)?;
        Ok(Message::Text(Utf8Bytes::from(text)))
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "snake_case")]
enum Outgoing<'a> {
    MachineIdStatus {
        id: MachineId,
        status: MachineStatus,
        name: &'a str,
    },
    /// A run's status, with its times and failures so a runs table can show them.
    RunData {
        id: RunId,
        status: Status,
        timestamp_start: Option<DateTime<Utc>>,
        timestamp_stop: Option<DateTime<Utc>>,
        failed: u32,
    },
    /// The failures of a machine's latest run, for a list of machines.
    MachineFailures {
        id: MachineId,
        run_id: RunId,
        failed: u32,
    },
    MachineLiveness {
        id: MachineId,
        liveness: Liveness,
        last_seen: Option<DateTime<Utc>>,
    },
    RunCreated(&'a RunSummary),
    /// The runs page's row for a new run, under the same key as for the last-run page.
    #[serde(rename = "run_created")]
    RunRowCreated {
        id: RunId,
        status: Status,
        timestamp: String,
        scenarios: u32,
        tests: u32,
    },
    RunChanged(&'a stpt_core::RunChange),
    Snapshot {
        now: DateTime<Utc>,
        run: Option<&'a RunDetail>,
    },
    /// A run's snapshot in parts: first the run without its tests, under the same key.
    #[serde(rename = "snapshot")]
    SnapshotOutline {
        now: DateTime<Utc>,
        run: RunOutline<'a>,
        /// How many `snapshot_part` messages follow.
        parts: usize,
    },
    /// Then its tests' statuses, by status.
    SnapshotPart {
        run_id: RunId,
        statuses: BTreeMap<Status, Vec<TestId>>,
    },
    /// `true` when the live feed is interrupted (the page is behind), `false` once the
    /// messages that caught it up are sent.
    Behind(bool),
}

impl Outgoing<'_> {
    fn text(&self) -> Result<Message, Error> {
        let text = serde_json::to_string(self).map_err(Error::backend)?;
        Ok(Message::Text(Utf8Bytes::from(text)))
    }
}

impl Follow {
    fn topic(&self) -> Topic {
        match self {
            Follow::Machines { .. } => Topic::Machines,
            Follow::Runs { machine, .. }
            | Follow::Latest { machine, .. }
            | Follow::Run { machine, .. } => Topic::Machine(*machine),
            Follow::SeedMachines => Topic::Machines,
            Follow::SeedRuns { machine, .. } | Follow::SeedLatest { machine, .. } => {
                Topic::Machine(*machine)
            }
        }
    }

    /// When the gathered changes of a seed last-run socket are due to go out, if any are.
    fn flush_due(&self) -> Option<tokio::time::Instant> {
        match self {
            Follow::SeedLatest {
                changed: true,
                last_sent,
                ..
            } => Some(last_sent.map_or_else(tokio::time::Instant::now, |sent| {
                sent + SEED_MACHINE_DATA_EVERY
            })),
            _ => None,
        }
    }

    /// The gathered changes as one message: the machine's latest state, read now.
    async fn flush(&mut self, tracker: &Tracker) -> Result<Vec<Message>, Error> {
        let Follow::SeedLatest {
            machine,
            changed,
            last_sent,
        } = self
        else {
            return Ok(Vec::new());
        };
        *changed = false;
        *last_sent = Some(tokio::time::Instant::now());
        let data = crate::seed::machine_last_data(tracker, *machine).await?;
        Ok(vec![SeedOutgoing::MachineData(&data).text()?])
    }

    /// Tells the peer that it is behind (the bus is interrupted) or caught up again; the
    /// seed's sockets have no such message.
    fn behind(&self, behind: bool) -> Result<Vec<Message>, Error> {
        match self {
            Follow::SeedMachines | Follow::SeedRuns { .. } | Follow::SeedLatest { .. } => {
                Ok(Vec::new())
            }
            _ => Ok(vec![Outgoing::Behind(behind).text()?]),
        }
    }

    /// The current state, read after subscribing.
    async fn snapshot(
        &mut self,
        tracker: &Tracker,
        is_catching_up: bool,
    ) -> Result<Vec<Message>, Error> {
        match self {
            Follow::Machines { page: None, .. }
            | Follow::Runs { page: None, .. }
            | Follow::SeedMachines
            | Follow::SeedRuns { .. } => Ok(Vec::new()),
            // The seed sent nothing on connect; after a lag the next `machine_data` catches up.
            Follow::SeedLatest { changed, .. } => {
                *changed |= is_catching_up;
                Ok(Vec::new())
            }
            Follow::Machines {
                page: Some(page),
                liveness: with_liveness,
            } => {
                let machines = match tracker.machines(*page).await {
                    Err(Error::NotFound { .. }) => return Ok(Vec::new()),
                    other => other?,
                };
                let mut messages = Vec::with_capacity(machines.items.len() * 2);
                for machine in &machines.items {
                    messages.push(
                        Outgoing::MachineIdStatus {
                            id: machine.id,
                            status: machine.status,
                            name: &machine.name,
                        }
                        .text()?,
                    );
                    if !*with_liveness {
                        continue;
                    }
                    if let Some(liveness) = machine.liveness {
                        messages.push(
                            Outgoing::MachineLiveness {
                                id: machine.id,
                                liveness,
                                last_seen: machine.last_seen,
                            }
                            .text()?,
                        );
                    }
                    // One indexed read a machine, on connect and after a lag only.
                    let latest = tracker.runs(machine.id, PageRequest::new(1, 1)?).await?;
                    if let Some(run) = latest.items.first() {
                        messages.push(
                            Outgoing::MachineFailures {
                                id: machine.id,
                                run_id: run.id,
                                failed: run.statistics.counts.failures(),
                            }
                            .text()?,
                        );
                    }
                }
                Ok(messages)
            }
            Follow::Runs {
                machine,
                page: Some(page),
                sent,
                ..
            } => {
                let runs = match tracker.runs(*machine, *page).await {
                    Err(Error::NotFound { .. }) => return Ok(Vec::new()),
                    other => other?,
                };
                runs.items
                    .iter()
                    .map(|run| {
                        let failed = run.statistics.counts.failures();
                        sent.insert(run.id, (run.status, failed));
                        Outgoing::RunData {
                            id: run.id,
                            status: run.status,
                            timestamp_start: run.timestamp_start,
                            timestamp_stop: run.timestamp_stop,
                            failed,
                        }
                        .text()
                    })
                    .collect()
            }
            Follow::Latest { machine, snapshot } => {
                let run = tracker.latest_run(*machine).await?;
                run_snapshot(tracker, run.as_ref(), *snapshot)
            }
            Follow::Run { run, snapshot, .. } => {
                let run = tracker.run(*run).await?;
                run_snapshot(tracker, Some(&run), *snapshot)
            }
        }
    }

    /// What to tell the peer about one event.
    async fn on_event(
        &mut self,
        tracker: &Tracker,
        event: &LiveEvent,
    ) -> Result<Vec<Message>, Error> {
        match (self, event) {
            (
                Follow::Machines { .. },
                LiveEvent::MachineStatus {
                    machine_id,
                    machine_name,
                    status,
                },
            ) => Ok(vec![
                Outgoing::MachineIdStatus {
                    id: *machine_id,
                    status: *status,
                    name: machine_name,
                }
                .text()?,
            ]),
            (
                Follow::Machines { liveness: true, .. },
                LiveEvent::MachineFailures {
                    machine_id,
                    run_id,
                    failed,
                },
            ) => Ok(vec![
                Outgoing::MachineFailures {
                    id: *machine_id,
                    run_id: *run_id,
                    failed: *failed,
                }
                .text()?,
            ]),
            (
                Follow::Machines { liveness: true, .. } | Follow::Runs { liveness: true, .. },
                LiveEvent::MachineLiveness {
                    machine_id,
                    liveness,
                    last_seen,
                },
            ) => Ok(vec![
                Outgoing::MachineLiveness {
                    id: *machine_id,
                    liveness: *liveness,
                    last_seen: *last_seen,
                }
                .text()?,
            ]),
            (
                Follow::SeedMachines,
                LiveEvent::MachineStatus {
                    machine_id, status, ..
                },
            ) => Ok(vec![
                SeedOutgoing::MachineIdStatus {
                    id: *machine_id,
                    status: *status,
                }
                .text()?,
            ]),
            (Follow::SeedRuns { sent, .. }, LiveEvent::RunChanged(change)) => {
                if sent.insert(change.run_id, change.status) == Some(change.status) {
                    return Ok(Vec::new());
                }
                Ok(vec![
                    SeedOutgoing::RunData {
                        id: change.run_id,
                        status: change.status,
                    }
                    .text()?,
                ])
            }
            (Follow::SeedRuns { sent, .. }, LiveEvent::RunCreated { run }) => {
                sent.insert(run.id, run.status);
                Ok(vec![
                    SeedOutgoing::RunData {
                        id: run.id,
                        status: run.status,
                    }
                    .text()?,
                ])
            }
            (
                Follow::SeedLatest { changed, .. },
                LiveEvent::RunChanged(_) | LiveEvent::RunCreated { .. },
            ) => {
                *changed = true;
                Ok(Vec::new())
            }
            (Follow::Runs { sent, .. }, LiveEvent::RunChanged(change)) => {
                let seen = (change.status, change.counts.failures());
                if sent.insert(change.run_id, seen) == Some(seen) {
                    return Ok(Vec::new());
                }
                Ok(vec![
                    Outgoing::RunData {
                        id: change.run_id,
                        status: change.status,
                        timestamp_start: change.timestamp_start,
                        timestamp_stop: change.timestamp_stop,
                        failed: seen.1,
                    }
                    .text()?,
                ])
            }
            (Follow::Runs { sent, .. }, LiveEvent::RunCreated { run }) => {
                let failed = run.statistics.counts.failures();
                sent.insert(run.id, (run.status, failed));
                Ok(vec![
                    Outgoing::RunData {
                        id: run.id,
                        status: run.status,
                        timestamp_start: run.timestamp_start,
                        timestamp_stop: run.timestamp_stop,
                        failed,
                    }
                    .text()?,
                    Outgoing::RunRowCreated {
                        id: run.id,
                        status: run.status,
                        timestamp: display_time(run.timestamp),
                        scenarios: run.statistics.scenarios,
                        tests: run.statistics.tests,
                    }
                    .text()?,
                ])
            }
            (Follow::Latest { .. }, LiveEvent::RunChanged(change)) => {
                Ok(vec![Outgoing::RunChanged(change).text()?])
            }
            (Follow::Run { run, .. }, LiveEvent::RunChanged(change)) if change.run_id == *run => {
                Ok(vec![Outgoing::RunChanged(change).text()?])
            }
            (Follow::Latest { snapshot, .. }, LiveEvent::RunCreated { run }) => {
                // The page needs the new run's items once; every later event is compact.
                let detail = tracker.run(run.id).await?;
                let mut messages = vec![Outgoing::RunCreated(run).text()?];
                messages.extend(run_snapshot(tracker, Some(&detail), *snapshot)?);
                Ok(messages)
            }
            (Follow::Run { run: followed, .. }, LiveEvent::RunCreated { run })
                if run.id != *followed =>
            {
                Ok(vec![Outgoing::RunCreated(run).text()?])
            }
            _ => Ok(Vec::new()),
        }
    }
}

/// A run's state as the socket's form asks: one `snapshot`, or an outline and its parts.
fn run_snapshot(
    tracker: &Tracker,
    run: Option<&RunDetail>,
    form: SnapshotForm,
) -> Result<Vec<Message>, Error> {
    let now = tracker.now();
    let Some(run) = run.filter(|_| form == SnapshotForm::InParts) else {
        return Ok(vec![Outgoing::Snapshot { now, run }.text()?]);
    };
    let tests: Vec<(TestId, Status)> = run
        .scenarios
        .iter()
        .flat_map(|scenario| scenario.tests.iter().map(|test| (test.id, test.status)))
        .collect();
    let chunks = tests.chunks(SNAPSHOT_PART_TESTS);
    let mut messages = Vec::with_capacity(chunks.len() + 1);
    messages.push(
        Outgoing::SnapshotOutline {
            now,
            run: RunOutline::of(run),
            parts: chunks.len(),
        }
        .text()?,
    );
    for chunk in chunks {
        let mut statuses: BTreeMap<Status, Vec<TestId>> = BTreeMap::new();
        for (id, status) in chunk {
            statuses.entry(*status).or_default().push(*id);
        }
        messages.push(
            Outgoing::SnapshotPart {
                run_id: run.summary.id,
                statuses,
            }
            .text()?,
        );
    }
    Ok(messages)
}

/// Tests per `snapshot_part` message: a 10,000-test run goes in five small frames.
const SNAPSHOT_PART_TESTS: usize = 2_000;

/// A run without its tests: the header and each scenario's aggregate.
#[derive(Debug, Serialize)]
struct RunOutline<'a> {
    summary: &'a RunSummary,
    machine_name: &'a str,
    master: &'a stpt_core::FileRef,
    scenarios: Vec<ScenarioOutline<'a>>,
}

#[derive(Debug, Serialize)]
struct ScenarioOutline<'a> {
    id: stpt_core::ScenarioId,
    file: &'a stpt_core::FileRef,
    status: Status,
    counts: &'a stpt_core::StatusCounts,
    timestamp_start: Option<DateTime<Utc>>,
    timestamp_stop: Option<DateTime<Utc>>,
}

impl<'a> RunOutline<'a> {
    fn of(run: &'a RunDetail) -> Self {
        RunOutline {
            summary: &run.summary,
            machine_name: &run.machine_name,
            master: &run.master,
            scenarios: run
                .scenarios
                .iter()
                .map(|scenario| ScenarioOutline {
                    id: scenario.id,
                    file: &scenario.file,
                    status: scenario.status,
                    counts: &scenario.counts,
                    timestamp_start: scenario.timestamp_start,
                    timestamp_stop: scenario.timestamp_stop,
                })
                .collect(),
        }
    }
}

/// Why a socket's task ended early.
#[derive(Debug)]
enum Stop {
    /// The peer went away or stopped reading.
    Peer,
    /// Reading the state failed; the peer is told and reconnects later.
    Failed(Error),
    /// The peer sent data, which these sockets never take.
    Abuse,
    /// The peer answered no ping within a ping interval.
    Unresponsive,
}

async fn send_all(socket: &mut WebSocket, messages: Vec<Message>) -> Result<(), Stop> {
    for message in messages {
        match tokio::time::timeout(SEND_TIMEOUT, socket.send(message)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => return Err(Stop::Peer),
        }
    }
    Ok(())
}

/// One socket's task: subscribe, snapshot, then forward until either side goes away.
async fn serve(mut socket: WebSocket, tracker: Tracker, mut follow: Follow) {
    let clients = metrics::gauge!("stpt_websocket_clients");
    clients.increment(1.0);
    let outcome = forward(&mut socket, &tracker, &mut follow).await;
    clients.decrement(1.0);
    let close = match outcome {
        Err(Stop::Failed(error)) => {
            tracing::warn!(%error, ?follow, "live socket closed after a failure");
            Some((1011, "server error; reconnect later"))
        }
        Err(Stop::Abuse) => Some((1008, "this socket takes no messages")),
        Err(Stop::Unresponsive) => Some((1001, "no answer to ping")),
        Ok(()) | Err(Stop::Peer) => None,
    };
    if let Some((code, reason)) = close {
        let close = Message::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        }));
        let _ = tokio::time::timeout(SEND_TIMEOUT, socket.send(close)).await;
    }
}

async fn forward(
    socket: &mut WebSocket,
    tracker: &Tracker,
    follow: &mut Follow,
) -> Result<(), Stop> {
    // Subscribe first, then read the snapshot: nothing committed in between is lost.
    let mut deliveries = tracker
        .bus()
        .subscribe(follow.topic())
        .await
        .map_err(Stop::Failed)?;
    let snapshot = follow
        .snapshot(tracker, false)
        .await
        .map_err(Stop::Failed)?;
    send_all(socket, snapshot).await?;
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
    // Whether the peer has said nothing (not even a pong) since the last ping: a peer that
    // has not answered one ping by the next is gone, and its socket is closed.
    let mut ping_unanswered = false;
    // Whether the bus said it was interrupted and no lag has caught the peer up since.
    let mut behind = false;
    loop {
        let flush_at = follow.flush_due();
        tokio::select! {
            () = sleep_until_due(flush_at), if flush_at.is_some() => {
                let messages = follow.flush(tracker).await.map_err(Stop::Failed)?;
                send_all(socket, messages).await?;
            }
            delivery = deliveries.next() => {
                let messages = match delivery {
                    // The bus went away: let the page reconnect to a new one.
                    None => return Ok(()),
                    Some(Delivery::Event(event)) => follow.on_event(tracker, &event).await,
                    Some(Delivery::Interrupted) => {
                        behind = true;
                        follow.behind(true)
                    }
                    Some(Delivery::Lagged { missed }) => {
                        tracing::debug!(missed, ?follow, "live socket lagged; sending a snapshot");
                        let caught_up = if std::mem::take(&mut behind) {
                            follow.behind(false).map_err(Stop::Failed)?
                        } else {
                            Vec::new()
                        };
                        follow.snapshot(tracker, true).await.map(|mut messages| {
                            messages.extend(caught_up);
                            messages
                        })
                    }
                };
                send_all(socket, messages.map_err(Stop::Failed)?).await?;
            }
            incoming = socket.recv() => match incoming {
                // An oversized message is an error here: the socket is dropped, and closed.
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return Ok(()),
                Some(Ok(Message::Pong(_) | Message::Ping(_))) => ping_unanswered = false,
                // Peers have nothing to say on these sockets.
                Some(Ok(Message::Text(_) | Message::Binary(_))) => return Err(Stop::Abuse),
            },
            _ = ping.tick() => {
                if ping_unanswered {
                    return Err(Stop::Unresponsive);
                }
                ping_unanswered = true;
                send_all(socket, vec![Message::Ping(Default::default())]).await?;
            }
        }
    }
}

/// Sleeps until `due`; never called without one (the `select!` branch is disabled then).
async fn sleep_until_due(due: Option<tokio::time::Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use futures_util::StreamExt;
    use std::sync::Arc;
    use tokio_tungstenite::tungstenite::Message as ClientMessage;

    /// A peer that answers no ping is closed by the next one (`PING_EVERY` is 200 ms in
    /// tests), instead of being kept for ever.
    #[tokio::test]
    async fn a_peer_that_answers_no_ping_is_closed() {
        let tracker = Tracker::new(
            Arc::new(stpt_store_memory::MemoryStore::new()),
            Arc::new(stpt_core::InProcessBus::new()),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, routes().with_state(tracker)).await });
        let (mut socket, _) =
            tokio_tungstenite::connect_async(format!("ws://{address}/ws/machine/status/"))
                .await
                .unwrap();
        // Not reading is not answering: pongs go out only as the client reads.
        tokio::time::sleep(PING_EVERY * 5).await;
        let closed = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match socket.next().await {
                    None | Some(Err(_)) | Some(Ok(ClientMessage::Close(_))) => return,
                    Some(Ok(_)) => {}
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "the silent peer is still connected");
    }
}
