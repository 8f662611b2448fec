//! Job states for a set of jobs: `squeue` first (it shows finished jobs for `MinJobAge`), the
//! exit code from `scontrol`, and for jobs that have left `squeue`, `sacct` or, when
//! accounting is disabled (`sacct` exits 1 at once), `sacct -c` (the jobcomp file). Polled at
//! a short interval that grows while nothing changes, so a finished job is noticed within
//! about a second and an idle wait costs little.

use super::state::{parse_exit, JobState, JobStatus};
use super::{run, Result};
use std::collections::BTreeMap;
use std::time::Duration;

/// Shortest and longest pause between two polls.
const MIN_INTERVAL: Duration = Duration::from_millis(200);
const MAX_INTERVAL: Duration = Duration::from_millis(1000);

fn ids_arg(ids: &[u64]) -> String {
    ids.iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// `squeue` lines `id|state|reason|name` for this user's jobs, finished ones included.
fn squeue(all_states: bool) -> Result<Vec<(u64, JobState, String, String)>> {
    let mut args = vec!["-h".to_string(), "--me".into()];
    if all_states {
        args.extend(["-t".into(), "all".into()]);
    }
    args.extend(["-o".into(), "%i|%T|%r|%j".into()]);
    let out = run("squeue", &args, None)?;
    Ok(out
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(4, '|');
            let id = f.next()?.trim().parse().ok()?;
            let state = JobState::parse(f.next()?);
            let reason = f.next().unwrap_or("").trim().to_string();
            let name = f.next().unwrap_or("").trim().to_string();
            Some((id, state, reason, name))
        })
        .collect())
}

/// Exit code of a job still known to the controller (`scontrol -o show job`).
fn scontrol_exit(id: u64) -> (Option<i32>, Option<i32>) {
    let Ok(out) = run(
        "scontrol",
        &["-o".into(), "show".into(), "job".into(), id.to_string()],
        None,
    ) else {
        return (None, None);
    };
    out.split_whitespace()
        .find_map(|w| w.strip_prefix("ExitCode="))
        .map(parse_exit)
        .unwrap_or((None, None))
}

/// States and exit codes from `sacct`, or `sacct -c` when accounting is disabled.
fn sacct(ids: &[u64]) -> BTreeMap<u64, (JobState, Option<i32>, Option<i32>)> {
    let base = |c: bool| {
        let mut a: Vec<String> = Vec::new();
        if c {
            a.push("-c".into());
        }
        a.extend(["-n", "-P", "-X", "-o", "JobID,State,ExitCode", "-j"].map(String::from));
        a.push(ids_arg(ids));
        a
    };
    let out = run("sacct", &base(false), None).or_else(|_| run("sacct", &base(true), None));
    let mut m = BTreeMap::new();
    for l in out.unwrap_or_default().lines() {
        let f: Vec<&str> = l.split('|').collect();
        if f.len() < 3 {
            continue;
        }
        // `123` only: `123.batch` steps and array tasks are not what was submitted
        if let Ok(id) = f[0].trim().parse::<u64>() {
            let (code, sig) = parse_exit(f[2]);
            // the jobcomp file may hold a job twice (requeue): the last line wins
            m.insert(id, (JobState::parse(f[1]), code, sig));
        }
    }
    m
}

/// The current status of each of `ids`. A job no source knows is `Other("UNKNOWN")`.
pub fn query(ids: &[u64]) -> Result<BTreeMap<u64, JobStatus>> {
    let mut out = BTreeMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    let want: std::collections::BTreeSet<u64> = ids.iter().copied().collect();
    for (id, state, reason, _) in squeue(true)? {
        if !want.contains(&id) {
            continue;
        }
        let (exit_code, signal) = if state.is_terminal() {
            scontrol_exit(id)
        } else {
            (None, None)
        };
        let reason = if reason == "None" {
            String::new()
        } else {
            reason
        };
        out.insert(
            id,
            JobStatus {
                id,
                state,
                reason,
                exit_code,
                signal,
            },
        );
    }
    let gone: Vec<u64> = want
        .iter()
        .copied()
        .filter(|i| !out.contains_key(i))
        .collect();
    if !gone.is_empty() {
        let acct = sacct(&gone);
        for id in gone {
            let (state, exit_code, signal) =
                acct.get(&id)
                    .cloned()
                    .unwrap_or((JobState::Other("UNKNOWN".into()), None, None));
            out.insert(
                id,
                JobStatus {
                    id,
                    state,
                    reason: String::new(),
                    exit_code,
                    signal,
                },
            );
        }
    }
    Ok(out)
}

/// Polls a set of jobs at an adaptive interval: short after any change, growing while
/// nothing changes.
#[derive(Debug)]
pub struct Poller {
    interval: Duration,
    last: BTreeMap<u64, JobStatus>,
}

impl Default for Poller {
    fn default() -> Self {
        Poller {
            interval: MIN_INTERVAL,
            last: BTreeMap::new(),
        }
    }
}

impl Poller {
    pub fn new() -> Self {
        Self::default()
    }

    /// One query; returns the jobs whose status changed since the last poll.
    pub fn poll(&mut self, ids: &[u64]) -> Result<Vec<JobStatus>> {
        let now = query(ids)?;
        let mut changed = Vec::new();
        for (id, st) in now {
            if self.last.get(&id) != Some(&st) {
                changed.push(st.clone());
                self.last.insert(id, st);
            }
        }
        self.interval = if changed.is_empty() {
            (self.interval * 3 / 2).min(MAX_INTERVAL)
        } else {
            MIN_INTERVAL
        };
        Ok(changed)
    }

    /// The last status seen of a job.
    pub fn status(&self, id: u64) -> Option<&JobStatus> {
        self.last.get(&id)
    }

    /// Sleeps until the next poll is due.
    pub fn pause(&self) {
        std::thread::sleep(self.interval);
    }
}

/// Waits until every job of `ids` is in a terminal state, calling `on_change` for each change
/// seen; their final statuses.
pub fn wait_all(
    ids: &[u64],
    mut on_change: impl FnMut(&JobStatus),
) -> Result<BTreeMap<u64, JobStatus>> {
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
        p.pause();
    }
}

/// A job of this user found by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundJob {
    pub id: u64,
    pub name: String,
    pub state: JobState,
}

/// This user's jobs that are not finished and whose name starts with `prefix` (a driver
/// that restarts finds the jobs it submitted before instead of submitting them again).
pub fn find_jobs(prefix: &str) -> Result<Vec<FoundJob>> {
    Ok(squeue(false)?
        .into_iter()
        .filter(|(_, st, _, name)| name.starts_with(prefix) && !st.is_terminal())
        .map(|(id, state, _, name)| FoundJob { id, name, state })
        .collect())
}
