//! The on-disk journal of events the server has not acknowledged yet.
//!
//! JSON lines, one record a line, the same format as the Python runner's spool:
//!
//! * `{"add": ENTRY}`: an event to send; `ENTRY.id` is its client event id.
//! * `{"done": ID}`: the event `ID` was acknowledged (or refused for good).
//! * `{"done": ID, "test_ids": [[...], ...]}`: the plan `ID` was stored, with its tests' ids
//!   per scenario, for the events that address its tests by plan-local index.
//! * `{"done": ID, "rejected": true}`: the plan `ID` was refused; its events are dropped.
//!
//! An `add` is fsynced before it counts as recorded. A process killed mid-write leaves a
//! torn last line: it is ignored and cut off on reopening. A `done` is not fsynced: losing
//! one only resends an event, and the server applies each client event id once.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use stpt_core::{PlanPayload, Status, TestId};

/// Default bound of the unsent events, in bytes of journal (64 MiB).
pub const DEFAULT_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// Plans whose test ids are kept by compaction even when no pending event needs them: the
/// runner may still be recording events for the latest ones.
const KEEP_RECENT_PLANS: usize = 4;

/// Why the spool cannot record an event.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// Reading or writing the journal failed.
    #[error("the stpt spool {path} cannot be used: {source}")]
    Io {
        /// The journal file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// Recording the event would take the unsent events past the spool's bound. The event is
    /// not recorded.
    #[error(
        "the stpt spool {path} is full: {pending_bytes} bytes of unsent events, and the bound \
         is {max_bytes}. The server has not acknowledged events for a while: bring it back, \
         or raise the bound; this event is not recorded"
    )]
    Full {
        /// The journal file.
        path: PathBuf,
        /// Bytes of journal the unsent events take.
        pending_bytes: u64,
        /// The bound.
        max_bytes: u64,
    },
    /// The event cannot be right: a test index outside the plan, a non-final stop status, a
    /// bound of zero.
    #[error("invalid input: {0}")]
    InvalidInput(String),
}

/// What a journal entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum EntryKind {
    Plan,
    TestStart,
    TestStop,
}

/// A test addressed as the seed protocol does (written by the Python runner for tests
/// without a plan).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct NamedTest {
    pub(crate) machine_name: String,
    pub(crate) file_path: String,
    pub(crate) file_name: String,
}

/// One pending event. Flat, with optional fields, to read the Python runner's journals too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Entry {
    /// The client event id: the plan's `Idempotency-Key`, an event's `event_id`.
    pub(crate) id: String,
    pub(crate) kind: EntryKind,
    /// With a plan: what to post.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) body: Option<PlanPayload>,
    /// With a test event: when it happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) timestamp: Option<DateTime<Utc>>,
    /// With a test event: the id of the plan entry, and the test's place in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) plan: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) scenario: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) test: Option<usize>,
    /// With a stop: the final status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) status: Option<Status>,
    /// With a stop: its failure message and details, already cut to the server's bounds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) details: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) named: Option<NamedTest>,
}

impl Entry {
    /// For logs: which event this is.
    pub(crate) fn describe(&self) -> String {
        match (self.kind, &self.body, &self.named) {
            (EntryKind::Plan, Some(plan), _) => {
                format!("plan of {}", plan.master_scenario.file_name)
            }
            (_, _, Some(named)) => {
                format!("{:?} of {}/{}", self.kind, named.file_path, named.file_name)
            }
            _ => format!(
                "{:?} of test {}.{}",
                self.kind,
                self.scenario.unwrap_or_default(),
                self.test.unwrap_or_default()
            ),
        }
    }
}

/// One line of the journal.
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum Record {
    Add {
        add: Box<Entry>,
    },
    Done {
        done: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        test_ids: Option<Vec<Vec<TestId>>>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        rejected: bool,
    },
}

/// An `add` line, written from a borrowed entry.
#[derive(Serialize)]
struct AddRecord<'a> {
    add: &'a Entry,
}

/// How a plan ended, as far as its events are concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PlanIds {
    /// Stored: its tests' ids per scenario.
    Stored(Vec<Vec<TestId>>),
    /// Refused: its events are dropped.
    Rejected,
}

/// An append-only journal of pending events, compacted as they are acknowledged.
#[derive(Debug)]
pub(crate) struct Journal {
    path: PathBuf,
    file: File,
    max_bytes: u64,
    /// Pending entries by the order they were appended, with the size of their line.
    pending: BTreeMap<u64, (Entry, u64)>,
    order_of: HashMap<String, u64>,
    next_order: u64,
    pending_bytes: u64,
    plans: HashMap<String, PlanIds>,
    /// Plan ids, oldest first.
    plan_order: Vec<String>,
    file_len: u64,
}

impl Journal {
    /// Opens (or creates) the journal at `path`, cutting off a torn last line.
    pub(crate) fn open(path: &Path, max_bytes: u64) -> Result<Journal, SpoolError> {
        if max_bytes == 0 {
            return Err(SpoolError::InvalidInput(
                "the spool's size bound must be positive".to_owned(),
            ));
        }
        let io = |source| SpoolError::Io {
            path: path.to_owned(),
            source,
        };
        if let Some(directory) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(directory).map_err(io)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(io)?;
        let mut data = Vec::new();
        file.read_to_end(&mut data).map_err(io)?;
        let complete = data
            .iter()
            .rposition(|&byte| byte == b'\n')
            .map_or(0, |at| at + 1);
        if complete < data.len() {
            tracing::warn!(
                spool = %path.display(),
                bytes = data.len() - complete,
                "ignoring a torn last record of the stpt spool (the runner was stopped while writing it)"
            );
            file.set_len(complete as u64).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        let mut journal = Journal {
            path: path.to_owned(),
            file,
            max_bytes,
            pending: BTreeMap::new(),
            order_of: HashMap::new(),
            next_order: 0,
            pending_bytes: 0,
            plans: HashMap::new(),
            plan_order: Vec::new(),
            file_len: complete as u64,
        };
        for (number, line) in data[..complete].split(|&byte| byte == b'\n').enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<Record>(line) {
                Ok(record) => journal.replay(record, line.len() as u64 + 1),
                Err(error) => tracing::warn!(
                    spool = %path.display(),
                    line = number + 1,
                    %error,
                    "skipping an unreadable line of the stpt spool"
                ),
            }
        }
        journal.file.seek(SeekFrom::End(0)).map_err(io)?;
        Ok(journal)
    }

    fn replay(&mut self, record: Record, size: u64) {
        match record {
            Record::Add { add } => {
                if !self.order_of.contains_key(&add.id) {
                    self.remember(*add, size);
                }
            }
            Record::Done {
                done,
                test_ids,
                rejected,
            } => {
                self.forget(&done);
                self.note_plan(done, test_ids, rejected);
            }
        }
    }

    /// The journal file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The pending entries, oldest first.
    pub(crate) fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.pending.values().map(|(entry, _)| entry)
    }

    /// How many entries are pending.
    pub(crate) fn len(&self) -> usize {
        self.pending.len()
    }

    /// Bytes of journal the pending entries take: what the bound counts.
    pub(crate) fn pending_bytes(&self) -> u64 {
        self.pending_bytes
    }

    /// What became of the plan entry `plan`; `None` when the journal knows nothing of it.
    pub(crate) fn plan_ids(&self, plan: &str) -> Option<&PlanIds> {
        self.plans.get(plan)
    }

    /// Writes `entry` (with a unique id) and fsyncs; then it is pending.
    pub(crate) fn append(&mut self, entry: Entry) -> Result<(), SpoolError> {
        let line = line(&AddRecord { add: &entry })?;
        if self.pending_bytes + line.len() as u64 > self.max_bytes {
            return Err(SpoolError::Full {
                path: self.path.clone(),
                pending_bytes: self.pending_bytes,
                max_bytes: self.max_bytes,
            });
        }
        self.write(&line, true)?;
        self.remember(entry, line.len() as u64);
        Ok(())
    }

    /// Forgets `id`: acknowledged, or refused for good. For a plan, `plan` tells its test
    /// ids (or that it was refused) so its events can be resolved or dropped.
    pub(crate) fn done(&mut self, id: &str, plan: Option<PlanIds>) -> Result<(), SpoolError> {
        let (test_ids, rejected) = match &plan {
            None => (None, false),
            Some(PlanIds::Stored(ids)) => (Some(ids.clone()), false),
            Some(PlanIds::Rejected) => (None, true),
        };
        let record = Record::Done {
            done: id.to_owned(),
            test_ids,
            rejected,
        };
        self.write(&line(&record)?, false)?;
        if let Record::Done {
            done,
            test_ids,
            rejected,
        } = record
        {
            self.forget(&done);
            self.note_plan(done, test_ids, rejected);
        }
        if self.file_len > (64 * 1024).max(2 * self.pending_bytes + 16 * 1024) {
            self.compact()?;
        }
        Ok(())
    }

    /// Rewrites the journal with only what is still needed, atomically: a crash leaves the
    /// old journal or the new one, never a mix.
    pub(crate) fn compact(&mut self) -> Result<(), SpoolError> {
        let io = |source| SpoolError::Io {
            path: self.path.clone(),
            source,
        };
        let mut needed: HashSet<String> = self
            .plan_order
            .iter()
            .rev()
            .take(KEEP_RECENT_PLANS)
            .cloned()
            .collect();
        needed.extend(self.entries().filter_map(|entry| entry.plan.clone()));
        self.plan_order.retain(|plan| needed.contains(plan));
        self.plans.retain(|plan, _| needed.contains(plan));
        let mut text = Vec::new();
        for plan in &self.plan_order {
            let record = match &self.plans[plan] {
                PlanIds::Stored(ids) => Record::Done {
                    done: plan.clone(),
                    test_ids: Some(ids.clone()),
                    rejected: false,
                },
                PlanIds::Rejected => Record::Done {
                    done: plan.clone(),
                    test_ids: None,
                    rejected: true,
                },
            };
            text.extend(line(&record)?);
        }
        for entry in self.entries() {
            text.extend(line(&AddRecord { add: entry })?);
        }
        let mut temporary_name = self.path.clone().into_os_string();
        temporary_name.push(".compacting");
        let temporary = PathBuf::from(temporary_name);
        let mut out = File::create(&temporary).map_err(io)?;
        out.write_all(&text).map_err(io)?;
        out.sync_all().map_err(io)?;
        drop(out);
        std::fs::rename(&temporary, &self.path).map_err(io)?;
        if let Some(directory) = self.path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            // The rename is durable only once the directory is; not possible everywhere.
            if let Ok(directory) = File::open(directory) {
                let _ = directory.sync_all();
            }
        }
        self.file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&self.path)
            .map_err(io)?;
        self.file_len = text.len() as u64;
        // The lines were rewritten: their sizes stay the same, the pending bytes too.
        Ok(())
    }

    fn write(&mut self, line: &[u8], sync: bool) -> Result<(), SpoolError> {
        let io = |source| SpoolError::Io {
            path: self.path.clone(),
            source,
        };
        self.file.write_all(line).map_err(io)?;
        if sync {
            self.file.sync_data().map_err(io)?;
        }
        self.file_len += line.len() as u64;
        Ok(())
    }

    fn remember(&mut self, entry: Entry, size: u64) {
        let order = self.next_order;
        self.next_order += 1;
        self.order_of.insert(entry.id.clone(), order);
        self.pending.insert(order, (entry, size));
        self.pending_bytes += size;
    }

    fn forget(&mut self, id: &str) {
        if let Some(order) = self.order_of.remove(id) {
            if let Some((_, size)) = self.pending.remove(&order) {
                self.pending_bytes -= size;
            }
        }
    }

    fn note_plan(&mut self, plan: String, test_ids: Option<Vec<Vec<TestId>>>, rejected: bool) {
        let ids = match (test_ids, rejected) {
            (_, true) => PlanIds::Rejected,
            (Some(ids), false) => PlanIds::Stored(ids),
            (None, false) => return,
        };
        if !self.plans.contains_key(&plan) {
            self.plan_order.push(plan.clone());
        }
        self.plans.insert(plan, ids);
    }
}

fn line(record: &impl Serialize) -> Result<Vec<u8>, SpoolError> {
    let mut line = serde_json::to_vec(record).map_err(|error| {
        SpoolError::InvalidInput(format!("the event cannot be written as JSON: {error}"))
    })?;
    line.push(b'\n');
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn event(id: &str, test: usize) -> Entry {
        Entry {
            id: id.to_owned(),
            kind: EntryKind::TestStart,
            body: None,
            timestamp: Some(Utc::now()),
            plan: Some("plan-1".to_owned()),
            scenario: Some(0),
            test: Some(test),
            status: None,
            message: None,
            details: None,
            named: None,
        }
    }

    fn ids(journal: &Journal) -> Vec<String> {
        journal.entries().map(|entry| entry.id.clone()).collect()
    }

    #[test]
    fn entries_keep_their_order_across_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool.journal");
        let mut journal = Journal::open(&path, DEFAULT_MAX_BYTES).unwrap();
        for n in 0..10 {
            journal.append(event(&format!("e{n}"), n)).unwrap();
        }
        journal.done("e3", None).unwrap();
        journal.done("e0", None).unwrap();
        drop(journal);
        let journal = Journal::open(&path, DEFAULT_MAX_BYTES).unwrap();
        assert_eq!(
            ids(&journal),
            ["e1", "e2", "e4", "e5", "e6", "e7", "e8", "e9"]
        );
        assert_eq!(journal.entries().nth(1).unwrap().test, Some(2));
    }

    #[test]
    fn a_torn_last_line_is_ignored_and_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool.journal");
        let mut journal = Journal::open(&path, DEFAULT_MAX_BYTES).unwrap();
        journal.append(event("e0", 0)).unwrap();
        journal.append(event("e1", 1)).unwrap();
        drop(journal);
        // A runner killed mid-write: half a record, no newline.
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(br#"{"add":{"id":"e2","kind":"test_st"#)
            .unwrap();
        drop(file);
        let mut journal = Journal::open(&path, DEFAULT_MAX_BYTES).unwrap();
        assert_eq!(ids(&journal), ["e0", "e1"]);
        journal.append(event("e3", 3)).unwrap();
        drop(journal);
        let journal = Journal::open(&path, DEFAULT_MAX_BYTES).unwrap();
        assert_eq!(
            ids(&journal),
            ["e0", "e1", "e3"],
            "appends after the cut read back"
        );
    }

    #[test]
    fn an_unreadable_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool.journal");
        let mut journal = Journal::open(&path, DEFAULT_MAX_BYTES).unwrap();
        journal.append(event("e0", 0)).unwrap();
        drop(journal);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"not json\n").unwrap();
        drop(file);
        let mut journal = Journal::open(&path, DEFAULT_MAX_BYTES).unwrap();
        journal.append(event("e1", 1)).unwrap();
        assert_eq!(ids(&journal), ["e0", "e1"]);
    }

    #[test]
    fn the_bound_refuses_events_with_a_clear_error_until_some_are_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool.journal");
        let size = line(&AddRecord {
            add: &event("e0", 0),
        })
        .unwrap()
        .len() as u64;
        let mut journal = Journal::open(&path, 3 * size + size / 2).unwrap();
        for n in 0..3 {
            journal.append(event(&format!("e{n}"), n)).unwrap();
        }
        let full = journal.append(event("e3", 3)).unwrap_err();
        assert!(matches!(full, SpoolError::Full { .. }));
        assert!(full.to_string().contains("is full"), "{full}");
        assert_eq!(journal.len(), 3, "the refused event is not recorded");
        journal.done("e0", None).unwrap();
        journal.append(event("e3", 3)).unwrap();
        assert_eq!(ids(&journal), ["e1", "e2", "e3"]);
        assert!(matches!(
            Journal::open(&path, 0),
            Err(SpoolError::InvalidInput(_))
        ));
    }

    #[test]
    fn compaction_keeps_pending_entries_and_needed_plans() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool.journal");
        let mut journal = Journal::open(&path, DEFAULT_MAX_BYTES).unwrap();
        journal
            .done(
                "plan-1",
                Some(PlanIds::Stored(vec![vec![TestId(5), TestId(6)]])),
            )
            .unwrap();
        // Enough acknowledged events to trigger compaction on its own.
        for n in 0..600 {
            journal.append(event(&format!("e{n}"), n)).unwrap();
            if n % 7 != 0 {
                journal.done(&format!("e{n}"), None).unwrap();
            }
        }
        let before = ids(&journal);
        let size = std::fs::metadata(&path).unwrap().len();
        assert!(size < 256 * 1024, "compacted: {size} bytes");
        drop(journal);
        let journal = Journal::open(&path, DEFAULT_MAX_BYTES).unwrap();
        assert_eq!(ids(&journal), before);
        assert_eq!(
            journal.plan_ids("plan-1"),
            Some(&PlanIds::Stored(vec![vec![TestId(5), TestId(6)]]))
        );
    }

    #[test]
    fn reads_a_python_runner_journal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool.journal");
        std::fs::write(
            &path,
            concat!(
                r#"{"add":{"body":{"machine_name":"bench-1","master_scenario":{"file_name":"m.py","file_path":"/rig","scenarios":[],"script":null},"timestamp":"2026-12-02T07:09:27.123456+00:00"},"id":"p1","kind":"plan"}}"#,
                "\n",
                r#"{"done":"p1","test_ids":[[1,2]]}"#,
                "\n",
                r#"{"add":{"id":"a1","kind":"test_stop","plan":"p1","scenario":0,"status":"passed","test":1,"timestamp":"2026-12-02T07:09:28+00:00"}}"#,
                "\n"
            ),
        )
        .unwrap();
        let journal = Journal::open(&path, DEFAULT_MAX_BYTES).unwrap();
        assert_eq!(ids(&journal), ["a1"]);
        assert_eq!(
            journal.plan_ids("p1"),
            Some(&PlanIds::Stored(vec![vec![TestId(1), TestId(2)]]))
        );
    }
}
