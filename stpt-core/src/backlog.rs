//! Which machines are replaying a backlog: events their runner's spool kept while the server
//! was unreachable and is now sending. Held in the tracker's memory only, never stored: it
//! describes the last few seconds of one connection, and is forgotten as soon as the runner
//! says it is done or falls silent.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use crate::{MachineId, Tracker};

/// The header a runner's client sends with the requests that replay its spool: how many
/// events are still queued after the request's own.
pub const BACKLOG_HEADER: &str = "Stpt-Backlog";

/// How long a backlog is shown after the last request that reported one: a runner that went
/// silent mid-replay is not replaying any more.
pub const BACKLOG_SILENCE_SECONDS: i64 = 30;

/// A machine replaying a backlog, as its runner's last request said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Backlog {
    /// Events still queued on the runner after its last request.
    pub events_left: u64,
    /// When the replay began (server clock): the first request that reported a backlog.
    pub since: DateTime<Utc>,
    /// When the runner last reported it (server clock).
    pub reported_at: DateTime<Utc>,
}

/// Backlogs by machine.
#[derive(Debug, Default)]
pub(crate) struct Backlogs(Mutex<HashMap<MachineId, Backlog>>);

impl Backlogs {
    fn note(&self, machine: MachineId, events_left: Option<u64>, now: DateTime<Utc>) {
        let mut backlogs = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match events_left {
            Some(left) if left > 0 => {
                let since = backlogs
                    .get(&machine)
                    .filter(|kept| now - kept.reported_at <= silence())
                    .map_or(now, |kept| kept.since);
                backlogs.insert(
                    machine,
                    Backlog {
                        events_left: left,
                        since,
                        reported_at: now,
                    },
                );
            }
            _ => {
                backlogs.remove(&machine);
            }
        }
        // Forget the machines that fell silent, so the map holds only live replays.
        backlogs.retain(|_, kept| now - kept.reported_at <= silence());
    }

    fn get(&self, machine: MachineId, now: DateTime<Utc>) -> Option<Backlog> {
        let backlogs = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        backlogs
            .get(&machine)
            .filter(|kept| now - kept.reported_at <= silence())
            .copied()
    }
}

fn silence() -> Duration {
    Duration::seconds(BACKLOG_SILENCE_SECONDS)
}

impl Tracker {
    /// Notes what a request of `machine`'s runner said about its spool: `Some(n)` with `n`
    /// events still queued after it starts or continues a replay; `Some(0)` or `None` (a
    /// request without the [`BACKLOG_HEADER`]) ends it.
    pub fn note_backlog(&self, machine: MachineId, events_left: Option<u64>) {
        self.backlogs.note(machine, events_left, self.now());
    }

    /// The backlog `machine` is replaying, if its runner reported one within the last
    /// [`BACKLOG_SILENCE_SECONDS`].
    pub fn backlog(&self, machine: MachineId) -> Option<Backlog> {
        self.backlogs.get(machine, self.now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backlog_is_shown_until_it_ends_or_falls_silent() {
        let backlogs = Backlogs::default();
        let rig = MachineId(1);
        let start = Utc::now();
        let at = |seconds| start + Duration::seconds(seconds);
        backlogs.note(rig, Some(500), start);
        backlogs.note(rig, Some(300), at(5));
        let shown = backlogs.get(rig, at(5)).expect("a replay");
        assert_eq!((shown.events_left, shown.since), (300, start));
        backlogs.note(rig, Some(0), at(6));
        assert_eq!(backlogs.get(rig, at(6)), None, "done");
        backlogs.note(rig, Some(7), at(7));
        backlogs.note(rig, None, at(8));
        assert_eq!(
            backlogs.get(rig, at(8)),
            None,
            "a request without the header ends it"
        );
        backlogs.note(rig, Some(7), at(9));
        let silent = at(10 + BACKLOG_SILENCE_SECONDS);
        assert_eq!(backlogs.get(rig, silent), None, "silent");
        backlogs.note(rig, Some(6), silent);
        assert_eq!(
            backlogs.get(rig, silent).map(|b| b.since),
            Some(silent),
            "a new replay"
        );
        assert_eq!(backlogs.get(MachineId(2), silent), None);
    }
}
