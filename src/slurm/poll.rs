//! One waiter's view of the jobs it waits for: a [`Poller`] watches its jobs through the
//! process's [`Monitor`] (one status query per poll for every job of every waiter) and reports
//! the changes it has not seen yet; [`wait_all`] waits until a set of jobs has ended.

use super::monitor::Monitor;
use super::retry;
use super::state::{JobRef, JobStatus};
use super::Result;
use std::collections::BTreeMap;
use std::time::Duration;

/// Polls a set of jobs through a monitor: the first poll of a new job waits at most the
/// shortest interval, later ones follow the monitor's growing interval.
#[derive(Debug)]
pub struct Poller {
    monitor: &'static Monitor,
    watched: Vec<JobRef>,
    last: BTreeMap<JobRef, JobStatus>,
}

impl Default for Poller {
    fn default() -> Self {
        Poller {
            monitor: Monitor::global(),
            watched: Vec::new(),
            last: BTreeMap::new(),
        }
    }
}

impl Poller {
    pub fn new() -> Self {
        Self::default()
    }

    /// A poller watching through `monitor` instead of the process's.
    pub fn on(monitor: &'static Monitor) -> Self {
        Poller {
            monitor,
            watched: Vec::new(),
            last: BTreeMap::new(),
        }
    }

    /// The current statuses of `ids` (watched from now on, until the poller is dropped); the
    /// jobs whose status changed since this poller last looked. A job the controller has not
    /// reported yet is not in the list.
    pub fn poll<I: Copy + Into<JobRef>>(&mut self, ids: &[I]) -> Result<Vec<JobStatus>> {
        let ids: Vec<JobRef> = ids.iter().map(|&i| i.into()).collect();
        let new: Vec<JobRef> = ids
            .iter()
            .copied()
            .filter(|i| !self.watched.contains(i))
            .collect();
        if !new.is_empty() {
            self.monitor.watch(&new);
            self.watched.extend(new);
        }
        let now = self.monitor.statuses(&ids)?;
        let mut changed = Vec::new();
        for (id, st) in now {
            if self.last.get(&id) != Some(&st) {
                changed.push(st.clone());
                self.last.insert(id, st);
            }
        }
        Ok(changed)
    }

    /// The last status seen of a job.
    pub fn status(&self, id: impl Into<JobRef>) -> Option<&JobStatus> {
        self.last.get(&id.into())
    }

    /// Sleeps until the monitor's next query is due (at least a short moment, at most its
    /// longest interval); returns early when pipe is interrupted.
    pub fn pause(&self) {
        let d = self
            .monitor
            .until_next()
            .clamp(Duration::from_millis(5), self.monitor.max_interval());
        retry::sleep(d, true);
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        self.monitor.unwatch(&self.watched);
    }
}

/// Waits until every job of `ids` is in a terminal state, calling `on_change` for each change
/// seen; their final statuses.
pub fn wait_all<I: Copy + Ord + Into<JobRef>>(
    ids: &[I],
    mut on_change: impl FnMut(&JobStatus),
) -> Result<BTreeMap<I, JobStatus>> {
    let mut p = Poller::new();
    loop {
        for st in p.poll(ids)? {
            on_change(&st);
        }
        if ids
            .iter()
            .all(|i| p.status(*i).is_some_and(|s| s.state.is_terminal()))
        {
            return Ok(ids
                .iter()
                .filter_map(|i| p.status(*i).map(|s| (*i, s.clone())))
                .collect());
        }
        if crate::interrupt::requested().is_some() {
            return Err(super::SlurmError::Interrupted {
                cmd: "waiting for Slurm jobs".into(),
            });
        }
        p.pause();
    }
}
