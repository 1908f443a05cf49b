//! Retention: finished runs beyond a lab's limits are deleted, a few at a time.

use chrono::Duration;
use serde::{Deserialize, Serialize};

use crate::{Error, PageRequest, Result, RunId, Tracker};

/// Which finished runs to keep. A run is deleted when it is finished and either older than
/// `keep_days` (by receipt) or beyond the newest `keep_runs_per_machine` of its machine; an
/// ongoing run is never deleted, and neither is a machine's latest run nor a run an admin
/// marked kept.
///
/// The server has one (`--keep-days`, `--keep-runs-per-machine`); an admin may give a machine
/// its own, which replaces the server's for that machine whole: an own policy with neither
/// limit keeps every run of the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RetentionPolicy {
    /// Runs received longer ago than this many days go; `null` keeps them whatever their age.
    pub keep_days: Option<u32>,
    /// Each machine keeps at most this many runs (its newest); `null` keeps them all.
    pub keep_runs_per_machine: Option<u32>,
}

impl RetentionPolicy {
    /// Whether the policy deletes anything at all.
    pub fn is_active(&self) -> bool {
        self.keep_days.is_some() || self.keep_runs_per_machine.is_some()
    }

    /// [`crate::Error::InvalidInput`] unless each limit set is at least 1 (`keep_days` at
    /// most 100 years): a limit of 0 would delete every finished run.
    pub fn check(&self) -> Result<()> {
        if self
            .keep_days
            .is_some_and(|days| days == 0 || days > 36_600)
        {
            return Err(Error::invalid("keep days", "must be between 1 and 36600"));
        }
        if self.keep_runs_per_machine == Some(0) {
            return Err(Error::invalid("keep runs", "must be at least 1"));
        }
        Ok(())
    }
}

/// Runs read per page while looking for what to delete.
const PRUNE_PAGE: u32 = 100;

impl Tracker {
    /// Deletes at most `batch` finished runs that their machine's policy no longer keeps
    /// (its own, else this tracker's [`Tracker::retention_policy`]), oldest first per
    /// machine, and answers them; runs marked kept stay. Call it again until it answers fewer
    /// than `batch`: each delete takes its machine's lock only for itself, so ingestion goes
    /// on in between. A store that cannot delete ([`Error::NotSupported`]) prunes nothing.
    pub async fn prune(&self, batch: usize) -> Result<Vec<RunId>> {
        let mut deleted = Vec::new();
        if batch == 0 {
            return Ok(deleted);
        }
        let now = self.now();
        let mut machines_page = 1;
        loop {
            let machines = self
                .store()
                .machines(PageRequest::new(machines_page, PRUNE_PAGE)?)
                .await?;
            for machine in &machines.items {
                let policy = machine.retention.unwrap_or(self.retention_policy());
                if !policy.is_active() {
                    continue;
                }
                let cutoff = policy
                    .keep_days
                    .map(|days| now - Duration::days(i64::from(days)));
                // Newest first; the first `keep_runs_per_machine` stay whatever their age.
                let mut seen: u64 = 0;
                let mut runs_page = 1;
                let mut doomed = Vec::new();
                loop {
                    let runs = self
                        .store()
                        .runs(machine.id, PageRequest::new(runs_page, PRUNE_PAGE)?)
                        .await?;
                    for run in &runs.items {
                        seen += 1;
                        let beyond_count = policy
                            .keep_runs_per_machine
                            .is_some_and(|keep| seen > u64::from(keep));
                        let too_old = cutoff.is_some_and(|cutoff| run.received_at < cutoff);
                        let removable = !run.status.is_ongoing()
                            && !run.kept
                            && Some(run.id) != machine.latest_run
                            && (beyond_count || too_old);
                        if removable {
                            doomed.push(run.id);
                        }
                    }
                    if !runs.has_next() {
                        break;
                    }
                    runs_page += 1;
                }
                // Oldest first, so an interrupted pass leaves the newest.
                for run in doomed.into_iter().rev() {
                    match self.prune_one(run).await {
                        Ok(true) => deleted.push(run),
                        // Kept, or deleted, meanwhile (an admin, another instance).
                        Ok(false) | Err(Error::NotFound { .. }) => {}
                        Err(Error::NotSupported { .. }) => return Ok(deleted),
                        Err(error) => return Err(error),
                    }
                    if deleted.len() >= batch {
                        return Ok(deleted);
                    }
                }
            }
            if !machines.has_next() {
                return Ok(deleted);
            }
            machines_page += 1;
        }
    }

    /// Deletes `run` if retention may still take it ([`Store::prune_run`]); a store without
    /// that check deletes it outright ([`Store::delete_run`]), as the pass just read it
    /// finished and not kept.
    async fn prune_one(&self, run: RunId) -> Result<bool> {
        match self.store().prune_run(run).await {
            Err(Error::NotSupported { .. }) => self.store().delete_run(run).await.map(|()| true),
            answered => answered,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_policy_keeps_everything() {
        assert!(!RetentionPolicy::default().is_active());
        let policy = RetentionPolicy {
            keep_days: Some(30),
            keep_runs_per_machine: None,
        };
        assert!(policy.is_active());
    }

    #[test]
    fn a_limit_of_zero_is_refused() {
        let no_days = RetentionPolicy {
            keep_days: Some(0),
            keep_runs_per_machine: None,
        };
        assert!(matches!(no_days.check(), Err(Error::InvalidInput { .. })));
        let no_runs = RetentionPolicy {
            keep_days: None,
            keep_runs_per_machine: Some(0),
        };
        assert!(matches!(no_runs.check(), Err(Error::InvalidInput { .. })));
        assert!(RetentionPolicy::default().check().is_ok());
    }
}
