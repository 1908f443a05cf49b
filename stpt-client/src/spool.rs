//! [`SpooledClient`]: records every event in the on-disk journal first, and sends the journal
//! in order from a background task, so the runner never waits for the server and no event is
//! lost while the server is away.

use chrono::{DateTime, Utc};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use stpt_core::{EventId, FailureDetails, PlanPayload, Status};
use tokio::sync::{Notify, watch};

use crate::client::{BatchEvent, BatchOutcome, Client, ClientError, MAX_BATCH_EVENTS, TestRef};
use crate::journal::{DEFAULT_MAX_BYTES, Entry, EntryKind, Journal, PlanIds, SpoolError};

/// Where the spool keeps its journal, how large it may grow, and how it retries.
#[derive(Debug, Clone)]
pub struct SpoolConfig {
    path: PathBuf,
    max_bytes: u64,
    batch_size: usize,
    backoff_base: Duration,
    backoff_cap: Duration,
}

impl SpoolConfig {
    /// A journal at `path` (one per runner), bounded at 64 MiB of unsent events, batches of
    /// 200 events, backoff from 0.5 s up to 30 s.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SpoolConfig {
            path: path.into(),
            max_bytes: DEFAULT_MAX_BYTES,
            batch_size: 200,
            backoff_base: Duration::from_millis(500),
            backoff_cap: Duration::from_secs(30),
        }
    }

    /// Bounds the unsent events at `max_bytes` of journal: past it, recording an event fails
    /// with [`SpoolError::Full`].
    pub fn max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// Sends at most `events` events per batch (1 to 1000).
    pub fn batch_size(mut self, events: usize) -> Self {
        self.batch_size = events.clamp(1, MAX_BATCH_EVENTS);
        self
    }

    /// Waits from about `base` after the first failure, doubling up to `cap`, with jitter.
    pub fn backoff(mut self, base: Duration, cap: Duration) -> Self {
        self.backoff_base = base;
        self.backoff_cap = cap.max(base);
        self
    }
}

/// A plan recorded in the spool: address its tests by scenario and test index (from 0, in
/// plan order). The ids the server gives them are resolved when the events are sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpooledPlan {
    id: EventId,
    tests_per_scenario: Vec<usize>,
}

impl SpooledPlan {
    /// The plan's client id (its `Idempotency-Key`).
    pub fn id(&self) -> &EventId {
        &self.id
    }
}

/// An event the server refused for good; it was dropped from the spool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The event's client id.
    pub event_id: String,
    /// Which event, for people.
    pub event: String,
    /// Why.
    pub reason: String,
}

/// Exponential backoff with jitter.
#[derive(Debug)]
struct Backoff {
    base: Duration,
    cap: Duration,
    failures: u32,
    rng: fastrand::Rng,
}

impl Backoff {
    fn next_delay(&mut self, at_least: Option<Duration>) -> Duration {
        let delay = self
            .base
            .saturating_mul(1 << self.failures.min(20))
            .min(self.cap);
        self.failures = (self.failures + 1).min(20);
        // Between half and all of it, so rigs that lost the server together do not come
        // back together.
        let delay = delay.mul_f64(0.5 + self.rng.f64() / 2.0);
        match at_least {
            Some(asked) => delay.max(asked.min(self.cap)),
            None => delay,
        }
    }

    fn reset(&mut self) {
        self.failures = 0;
    }
}

struct Shared {
    client: Client,
    journal: Mutex<Journal>,
    /// Woken when an event is recorded.
    recorded: Notify,
    /// The number of pending events, for [`SpooledClient::drain`].
    pending: watch::Sender<usize>,
    rejected: Mutex<Vec<Rejection>>,
    batch_size: usize,
    /// Set while sending what the journal kept during an outage (or from an earlier run),
    /// until it is empty: those requests say how much is left
    /// ([`stpt_core::BACKLOG_HEADER`]), so the server's pages show the replay.
    replaying: AtomicBool,
}

impl Shared {
    fn journal(&self) -> MutexGuard<'_, Journal> {
        // A panic elsewhere cannot leave the journal half-updated in memory: every change is
        // written to disk before the maps change.
        self.journal.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn publish(&self, journal: &Journal) {
        self.pending.send_replace(journal.len());
    }

    /// While replaying, the events still queued once `sending` more are sent; the replay
    /// ends with the request that leaves none.
    fn backlog_after(&self, sending: usize) -> Option<u64> {
        if !self.replaying.load(Ordering::Relaxed) {
            return None;
        }
        let left = self.journal().len().saturating_sub(sending);
        if left == 0 {
            self.replaying.store(false, Ordering::Relaxed);
        }
        Some(u64::try_from(left).unwrap_or(u64::MAX))
    }

    fn reject(&self, journal: &mut Journal, entry: &Entry, reason: String, plan: Option<PlanIds>) {
        tracing::error!(
            event = %entry.describe(),
            %reason,
            "the stpt server refused an event for good; dropping it from the spool"
        );
        if let Err(error) = journal.done(&entry.id, plan) {
            tracing::error!(%error, "cannot mark a refused event in the stpt spool");
        }
        self.rejected
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Rejection {
                event_id: entry.id.clone(),
                event: entry.describe(),
                reason,
            });
    }
}

/// What to send next.
enum Work {
    Plan(Box<Entry>),
    Batch(Vec<(Entry, BatchEvent)>),
}

/// A runner's client that never loses an event and never makes the runner wait.
///
/// [`plan`](Self::plan), [`start`](Self::start) and [`stop`](Self::stop) append the event to
/// the journal and fsync it (blocking briefly on the disk), then return; a background task
/// sends the journal in order, a plan by `POST /api/v1/plans`, test events in batches by
/// `POST /api/v1/events`, and forgets each event once the server acknowledged it. While the
/// server is unreachable or answers `429`/`5xx` the task backs off (exponentially, with
/// jitter, honouring `Retry-After`); an event the server refuses for good (another `4xx`, or
/// a batch outcome `rejected`) is logged, dropped and listed by
/// [`rejected`](Self::rejected).
///
/// Reopened on the same journal after the runner was killed, it sends what was left first.
/// Every event carries a client event id, so a resend of an event whose answer was lost is
/// applied once. Must be opened inside a Tokio runtime; dropping it stops the sending task,
/// and what was not sent stays in the journal.
pub struct SpooledClient {
    shared: Arc<Shared>,
    sender: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for SpooledClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpooledClient")
            .field("server", &self.shared.client.base_url())
            .field("pending", &self.pending())
            .finish_non_exhaustive()
    }
}

impl SpooledClient {
    /// Opens (or creates) the journal of `config` and starts sending it through `client`.
    pub fn open(client: Client, config: SpoolConfig) -> Result<Self, SpoolError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            SpoolError::InvalidInput(
                "open the spool inside a Tokio runtime: it sends from a task of its own".to_owned(),
            )
        })?;
        let journal = Journal::open(&config.path, config.max_bytes)?;
        if journal.len() > 0 {
            tracing::info!(
                pending = journal.len(),
                spool = %journal.path().display(),
                "unsent events from an earlier run are in the stpt spool; sending them first"
            );
        }
        let (pending, _) = watch::channel(journal.len());
        let replaying = AtomicBool::new(journal.len() > 0);
        let shared = Arc::new(Shared {
            client,
            journal: Mutex::new(journal),
            recorded: Notify::new(),
            pending,
            rejected: Mutex::new(Vec::new()),
            batch_size: config.batch_size,
            replaying,
        });
        let backoff = Backoff {
            base: config.backoff_base,
            cap: config.backoff_cap,
            failures: 0,
            rng: fastrand::Rng::new(),
        };
        let sender = runtime.spawn(send_forever(Arc::clone(&shared), backoff));
        Ok(SpooledClient { shared, sender })
    }

    /// Records a plan; its tests are then addressed through the returned [`SpooledPlan`].
    pub fn plan(&self, plan: PlanPayload) -> Result<SpooledPlan, SpoolError> {
        let spooled = SpooledPlan {
            id: crate::new_event_id(),
            tests_per_scenario: plan
                .master_scenario
                .scenarios
                .iter()
                .map(|scenario| scenario.tests.len())
                .collect(),
        };
        self.record(Entry {
            id: spooled.id.as_str().to_owned(),
            kind: EntryKind::Plan,
            body: Some(plan),
            timestamp: None,
            plan: None,
            scenario: None,
            test: None,
            status: None,
            message: None,
            details: None,
            named: None,
        })?;
        Ok(spooled)
    }

    /// Records that test `test` of scenario `scenario` of `plan` started now.
    pub fn start(
        &self,
        plan: &SpooledPlan,
        scenario: usize,
        test: usize,
    ) -> Result<EventId, SpoolError> {
        self.start_at(plan, scenario, test, Utc::now())
    }

    /// Records that test `test` of scenario `scenario` of `plan` started at `at`.
    pub fn start_at(
        &self,
        plan: &SpooledPlan,
        scenario: usize,
        test: usize,
        at: DateTime<Utc>,
    ) -> Result<EventId, SpoolError> {
        self.test_event(plan, (scenario, test), EntryKind::TestStart, None, None, at)
    }

    /// Records that test `test` of scenario `scenario` of `plan` stopped now with the final
    /// `status` (`cancelled` cancels the whole run).
    pub fn stop(
        &self,
        plan: &SpooledPlan,
        scenario: usize,
        test: usize,
        status: Status,
    ) -> Result<EventId, SpoolError> {
        self.stop_at(plan, scenario, test, status, Utc::now())
    }

    /// Records that test `test` of scenario `scenario` of `plan` stopped at `at` with the
    /// final `status`.
    pub fn stop_at(
        &self,
        plan: &SpooledPlan,
        scenario: usize,
        test: usize,
        status: Status,
        at: DateTime<Utc>,
    ) -> Result<EventId, SpoolError> {
        self.stop_with_details_at(plan, scenario, test, status, None, at)
    }

    /// Records that test `test` of scenario `scenario` of `plan` stopped at `at` with the
    /// final `status`, saying how it ended: `failure`'s message and details, cut to the
    /// server's bounds with a visible marker ([`FailureDetails::fit`]) before they are
    /// journaled.
    pub fn stop_with_details_at(
        &self,
        plan: &SpooledPlan,
        scenario: usize,
        test: usize,
        status: Status,
        failure: Option<&FailureDetails>,
        at: DateTime<Utc>,
    ) -> Result<EventId, SpoolError> {
        if !status.is_finished() {
            return Err(SpoolError::InvalidInput(format!(
                "a test stops with a final status, not `{status}`"
            )));
        }
        let failure = failure.and_then(|failure| {
            FailureDetails::fit(failure.message.as_deref(), failure.details.as_deref())
        });
        self.test_event(
            plan,
            (scenario, test),
            EntryKind::TestStop,
            Some(status),
            failure,
            at,
        )
    }

    fn test_event(
        &self,
        plan: &SpooledPlan,
        (scenario, test): (usize, usize),
        kind: EntryKind,
        status: Option<Status>,
        failure: Option<FailureDetails>,
        at: DateTime<Utc>,
    ) -> Result<EventId, SpoolError> {
        let tests = plan.tests_per_scenario.get(scenario).copied().unwrap_or(0);
        if test >= tests {
            return Err(SpoolError::InvalidInput(format!(
                "the plan has no test {test} in scenario {scenario} (it has {} scenarios, that one {tests} tests)",
                plan.tests_per_scenario.len()
            )));
        }
        let id = crate::new_event_id();
        self.record(Entry {
            id: id.as_str().to_owned(),
            kind,
            body: None,
            timestamp: Some(at),
            plan: Some(plan.id.as_str().to_owned()),
            scenario: Some(scenario),
            test: Some(test),
            status,
            message: failure.as_ref().and_then(|f| f.message.clone()),
            details: failure.and_then(|f| f.details),
            named: None,
        })?;
        Ok(id)
    }

    fn record(&self, entry: Entry) -> Result<(), SpoolError> {
        let mut journal = self.shared.journal();
        journal.append(entry)?;
        self.shared.publish(&journal);
        drop(journal);
        self.shared.recorded.notify_one();
        Ok(())
    }

    /// Events recorded and not yet acknowledged.
    pub fn pending(&self) -> usize {
        *self.shared.pending.borrow()
    }

    /// Bytes of journal the unsent events take (what the bound counts).
    pub fn pending_bytes(&self) -> u64 {
        self.shared.journal().pending_bytes()
    }

    /// The journal file.
    pub fn path(&self) -> PathBuf {
        self.shared.journal().path().to_owned()
    }

    /// Waits until every recorded event was acknowledged (`true`) or `timeout` passed
    /// (`false`).
    pub async fn drain(&self, timeout: Duration) -> bool {
        let mut pending = self.shared.pending.subscribe();
        tokio::time::timeout(timeout, pending.wait_for(|&left| left == 0))
            .await
            .is_ok_and(|waited| waited.is_ok())
    }

    /// Drains for up to `timeout`, then stops sending and compacts the journal. Returns
    /// `true` when everything was sent; what was not stays in the journal for the next run.
    pub async fn close(self, timeout: Duration) -> bool {
        let sent = self.drain(timeout).await;
        self.sender.abort();
        let mut journal = self.shared.journal();
        if journal.len() == 0 {
            // Leave a journal of a few lines, not the history.
            if let Err(error) = journal.compact() {
                tracing::warn!(%error, "cannot compact the stpt spool");
            }
        } else {
            tracing::warn!(
                pending = journal.len(),
                spool = %journal.path().display(),
                "events could not be sent yet; they stay in the stpt spool for the next run"
            );
        }
        sent
    }

    /// The events the server refused for good since this client was opened.
    pub fn rejected(&self) -> Vec<Rejection> {
        self.shared
            .rejected
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The journal at `path` without sending anything: how many events wait in it.
    pub fn pending_in(path: &Path) -> Result<usize, SpoolError> {
        Ok(Journal::open(path, u64::MAX)?.len())
    }
}

impl Drop for SpooledClient {
    fn drop(&mut self) {
        self.sender.abort();
    }
}

async fn send_forever(shared: Arc<Shared>, mut backoff: Backoff) {
    let mut failing = false;
    loop {
        let Some(work) = next_work(&shared) else {
            shared.recorded.notified().await;
            continue;
        };
        match send(&shared, work).await {
            Ok(()) => {
                if failing {
                    tracing::info!("the stpt server is back; sending the spool");
                }
                failing = false;
                backoff.reset();
            }
            Err(problem) => {
                shared.replaying.store(true, Ordering::Relaxed);
                if !failing {
                    tracing::warn!(%problem, "events are kept in the stpt spool and retried");
                }
                failing = true;
                tokio::time::sleep(backoff.next_delay(problem.retry_after())).await;
            }
        }
    }
}

/// The head of the journal: a plan, or a batch of the test events before the next plan
/// (their tests resolved to ids). Events that can never be sent are dropped on the way.
fn next_work(shared: &Shared) -> Option<Work> {
    let mut journal = shared.journal();
    let head = journal.entries().next()?.clone();
    if head.kind == EntryKind::Plan {
        return Some(Work::Plan(Box::new(head)));
    }
    let mut batch = Vec::new();
    let mut dropped = Vec::new();
    for entry in journal.entries() {
        if entry.kind == EntryKind::Plan || batch.len() >= shared.batch_size {
            break;
        }
        match resolve(&journal, entry) {
            Ok(event) => batch.push((entry.clone(), event)),
            Err(reason) => {
                dropped.push((entry.clone(), reason));
                if !batch.is_empty() {
                    break; // Send what is before it first, in order.
                }
            }
        }
    }
    for (entry, reason) in dropped {
        shared.reject(&mut journal, &entry, reason, None);
    }
    shared.publish(&journal);
    if batch.is_empty() {
        // Everything looked at was dropped: look again (the next call sees what follows).
        drop(journal);
        return next_work(shared);
    }
    Some(Work::Batch(batch))
}

/// The batch event of `entry`, or why it can never be sent.
fn resolve(journal: &Journal, entry: &Entry) -> Result<BatchEvent, String> {
    let event_id = stpt_core::EventId::new(entry.id.clone())
        .map_err(|error| format!("its event id is unusable: {error}"))?;
    let at = entry
        .timestamp
        .ok_or_else(|| "it has no timestamp".to_owned())?;
    let test = match (&entry.plan, &entry.named) {
        (Some(plan), named) => match (journal.plan_ids(plan), named) {
            (Some(PlanIds::Stored(ids)), _) => {
                let found = entry
                    .scenario
                    .zip(entry.test)
                    .and_then(|(scenario, test)| ids.get(scenario)?.get(test).copied());
                let Some(test_id) = found else {
                    return Err(format!(
                        "the plan has no test at scenario {}, test {}",
                        entry.scenario.unwrap_or_default(),
                        entry.test.unwrap_or_default()
                    ));
                };
                TestRef::Id { test_id }
            }
            (Some(PlanIds::Rejected), _) => return Err("its plan was refused".to_owned()),
            (None, None) => return Err("its plan is unknown to this spool".to_owned()),
            (None, Some(named)) => named_ref(named),
        },
        (None, Some(named)) => named_ref(named),
        (None, None) => return Err("it addresses no test".to_owned()),
    };
    match (entry.kind, entry.status) {
        (EntryKind::TestStart, _) => Ok(BatchEvent::start(event_id, test, at)),
        (EntryKind::TestStop, Some(status)) => BatchEvent::stop(event_id, test, status, at)
            .and_then(|event| {
                event.with_details(entry.message.as_deref(), entry.details.as_deref())
            })
            .map_err(|error| error.to_string()),
        (EntryKind::TestStop, None) => Err("a stop without a status".to_owned()),
        (EntryKind::Plan, _) => Err("a plan is not a test event".to_owned()),
    }
}

fn named_ref(named: &crate::journal::NamedTest) -> TestRef {
    TestRef::Named {
        machine_name: named.machine_name.clone(),
        file_path: named.file_path.clone(),
        file_name: named.file_name.clone(),
    }
}

/// Sends `work`; an error is a retryable one (the work stays pending).
async fn send(shared: &Shared, work: Work) -> Result<(), ClientError> {
    match work {
        Work::Plan(entry) => send_plan(shared, entry).await,
        Work::Batch(batch) => send_batch(shared, batch).await,
    }
}

async fn send_plan(shared: &Shared, entry: Box<Entry>) -> Result<(), ClientError> {
    let (Some(plan), Ok(key)) = (&entry.body, EventId::new(entry.id.clone())) else {
        let mut journal = shared.journal();
        let reason = "the spooled plan is unreadable".to_owned();
        shared.reject(&mut journal, &entry, reason, Some(PlanIds::Rejected));
        shared.publish(&journal);
        return Ok(());
    };
    let backlog = shared.backlog_after(1);
    let answer = shared.client.plan_with_backlog(plan, &key, backlog).await;
    let mut journal = shared.journal();
    match answer {
        Ok(created) => {
            let ids = created
                .scenarios
                .into_iter()
                .map(|scenario| scenario.test_ids)
                .collect();
            if let Err(error) = journal.done(&entry.id, Some(PlanIds::Stored(ids))) {
                tracing::error!(%error, "cannot mark a sent plan in the stpt spool");
            }
        }
        Err(error) if error.is_retryable() => return Err(error),
        Err(error) => {
            shared.reject(
                &mut journal,
                &entry,
                error.to_string(),
                Some(PlanIds::Rejected),
            );
        }
    }
    shared.publish(&journal);
    Ok(())
}

async fn send_batch(
    shared: &Shared,
    mut batch: Vec<(Entry, BatchEvent)>,
) -> Result<(), ClientError> {
    loop {
        let events: Vec<BatchEvent> = batch.iter().map(|(_, event)| event.clone()).collect();
        let backlog = shared.backlog_after(events.len());
        let answer = shared
            .client
            .post_events_with_backlog(&events, backlog)
            .await;
        let mut journal = shared.journal();
        match answer {
            Ok(outcomes) => {
                for ((entry, _), outcome) in batch.iter().zip(outcomes) {
                    if let BatchOutcome::Rejected { error } = outcome {
                        // Matched nothing: report it, never block the spool on it.
                        tracing::warn!(event = %entry.describe(), message = %error.message,
                            "an event matched nothing on the stpt server");
                        shared
                            .rejected
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push(Rejection {
                                event_id: entry.id.clone(),
                                event: entry.describe(),
                                reason: error.message,
                            });
                    }
                    if let Err(error) = journal.done(&entry.id, None) {
                        tracing::error!(%error, "cannot mark a sent event in the stpt spool");
                    }
                }
            }
            Err(error) if error.is_retryable() => return Err(error),
            Err(ClientError::Refused { status, error }) => {
                let bad = error
                    .field
                    .as_deref()
                    .and_then(|field| field.strip_prefix("events["))
                    .and_then(|rest| rest.split(']').next())
                    .and_then(|index| index.parse::<usize>().ok())
                    .filter(|&index| index < batch.len());
                let reason = format!("HTTP {status}, {}: {}", error.code, error.message);
                match bad {
                    Some(index) if status == 400 => {
                        shared.reject(&mut journal, &batch[index].0, reason, None);
                    }
                    _ if matches!(status, 400 | 413) && batch.len() > 1 => {
                        // Too large together, or refused without naming the event: one by
                        // one, so only the bad one is dropped.
                        batch.truncate(1);
                        drop(journal);
                        continue;
                    }
                    _ => {
                        // A refusal of the batch as a whole (401, 403, ...): it would be
                        // refused again.
                        for (entry, _) in &batch {
                            shared.reject(&mut journal, entry, reason.clone(), None);
                        }
                    }
                }
            }
            Err(error) => {
                for (entry, _) in &batch {
                    shared.reject(&mut journal, entry, error.to_string(), None);
                }
            }
        }
        shared.publish(&journal);
        return Ok(());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opening_outside_a_runtime_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let client = Client::new("http://127.0.0.1:8000").unwrap();
        let opened = SpooledClient::open(client, SpoolConfig::new(dir.path().join("j")));
        assert!(matches!(opened, Err(SpoolError::InvalidInput(_))));
    }

    #[test]
    fn backoff_grows_with_jitter_up_to_the_cap_and_honours_retry_after() {
        let mut backoff = Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
            failures: 0,
            rng: fastrand::Rng::with_seed(1),
        };
        let first = backoff.next_delay(None);
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
        for _ in 0..30 {
            assert!(backoff.next_delay(None) <= Duration::from_secs(1));
        }
        backoff.reset();
        let asked = backoff.next_delay(Some(Duration::from_millis(700)));
        assert!(asked >= Duration::from_millis(700));
        let capped = backoff.next_delay(Some(Duration::from_secs(3600)));
        assert!(capped <= Duration::from_secs(1));
    }
}
