//! One status query for a set of jobs, however many: a single `squeue --jobs=…` (finished jobs
//! stay there for `MinJobAge`; state, reason, exit status and node in one call), then for the
//! jobs that have left it one `sacct`, or `sacct -c` (the jobcomp file) on a cluster without
//! accounting. Also: this user's unfinished jobs whose name starts with a prefix.

use super::command::{run, CallOpts};
use super::retry::{retrying, Patience};
use super::state::{parse_exit, parse_wait_status, JobState, JobStatus};
use super::{Result, SlurmError};
use std::collections::{BTreeMap, BTreeSet};

/// `squeue`'s fields, `|`-separated, unpadded; the name last (it may hold anything).
const FIELDS: &str = "JobID:|,State:|,Reason:|,exit_code:|,NodeList:|,Name:";

fn ids_arg(ids: &BTreeSet<u64>) -> String {
    ids.iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// One parsed `squeue` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line {
    pub status: JobStatus,
    pub name: String,
}

fn parse_line(l: &str) -> Option<Line> {
    let f: Vec<&str> = l.splitn(6, '|').collect();
    if f.len() < 6 {
        return None;
    }
    let id = f[0].trim().parse().ok()?;
    let state = JobState::parse(f[1]);
    let reason = match f[2].trim() {
        "None" | "(null)" => String::new(),
        r => r.to_string(),
    };
    let (exit_code, signal) = if state.is_terminal() {
        parse_wait_status(f[3])
    } else {
        (None, None)
    };
    let node = match f[4].trim() {
        "(null)" | "None assigned" => String::new(),
        n => n.to_string(),
    };
    Some(Line {
        status: JobStatus {
            id,
            state,
            reason,
            exit_code,
            signal,
            node,
        },
        name: f[5].trim().to_string(),
    })
}

/// One `squeue` call: the lines of `ids` (any state), or of all this user's unfinished jobs
/// when `ids` is None. A single id Slurm no longer knows is no line, not an error.
fn squeue(ids: Option<&BTreeSet<u64>>) -> Result<Vec<Line>> {
    let mut args = vec!["-h".to_string(), "--me".into()];
    if let Some(ids) = ids {
        args.extend([
            "-t".into(),
            "all".into(),
            format!("--jobs={}", ids_arg(ids)),
        ]);
    }
    args.extend(["-O".into(), FIELDS.into()]);
    match run("squeue", &args, None, CallOpts::read()) {
        Ok(out) => Ok(out.lines().filter_map(parse_line).collect()),
        Err(SlurmError::Command { stderr, .. }) if stderr.contains("Invalid job id") => Ok(vec![]),
        Err(e) => Err(e),
    }
}

/// States and exit codes from `sacct`, or `sacct -c` when accounting is disabled; jobs neither
/// knows are absent. Both read from a file or a database, not the controller: a failure is an
/// empty answer.
fn sacct(ids: &BTreeSet<u64>) -> BTreeMap<u64, JobStatus> {
    let args = |c: bool| {
        let mut a: Vec<String> = Vec::new();
        if c {
            a.push("-c".into());
        }
        a.extend(
            [
                "-n",
                "-P",
                "-X",
                "-o",
                "JobID,State,ExitCode,NodeList",
                "-j",
            ]
            .map(String::from),
        );
        a.push(ids_arg(ids));
        a
    };
    let out = run("sacct", &args(false), None, CallOpts::read())
        .or_else(|_| run("sacct", &args(true), None, CallOpts::read()));
    let mut m = BTreeMap::new();
    for l in out.unwrap_or_default().lines() {
        let f: Vec<&str> = l.split('|').collect();
        if f.len() < 3 {
            continue;
        }
        // `123` only: `123.batch` steps are not what was submitted
        let Ok(id) = f[0].trim().parse::<u64>() else {
            continue;
        };
        if !ids.contains(&id) {
            continue;
        }
        let (exit_code, signal) = parse_exit(f[2]);
        // the jobcomp file may hold a job twice (requeue): the last line wins
        m.insert(
            id,
            JobStatus {
                id,
                state: JobState::parse(f[1]),
                reason: String::new(),
                exit_code,
                signal,
                node: f.get(3).map(|n| n.trim().to_string()).unwrap_or_default(),
            },
        );
    }
    m
}

/// The current status of each of `ids` with one `squeue` call (and one `sacct` for the jobs it
/// no longer shows), without retrying. A job no source knows is `Other("UNKNOWN")`.
pub(crate) fn once(ids: &BTreeSet<u64>) -> Result<BTreeMap<u64, JobStatus>> {
    let mut out = BTreeMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    for l in squeue(Some(ids))? {
        if ids.contains(&l.status.id) {
            out.insert(l.status.id, l.status);
        }
    }
    let gone: BTreeSet<u64> = ids
        .iter()
        .copied()
        .filter(|i| !out.contains_key(i))
        .collect();
    if !gone.is_empty() {
        let mut acct = sacct(&gone);
        for id in gone {
            let st = acct.remove(&id).unwrap_or(JobStatus {
                id,
                state: JobState::Other("UNKNOWN".into()),
                reason: String::new(),
                exit_code: None,
                signal: None,
                node: String::new(),
            });
            out.insert(id, st);
        }
    }
    Ok(out)
}

/// The current status of each of `ids` (one query), retried while the controller cannot be
/// reached (see [`super::retry`]).
pub fn query(ids: &[u64]) -> Result<BTreeMap<u64, JobStatus>> {
    let set: BTreeSet<u64> = ids.iter().copied().collect();
    retrying("squeue", Patience::from_env(), true, || once(&set))
}

/// A job of this user found by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundJob {
    pub id: u64,
    pub name: String,
    pub state: JobState,
}

/// This user's jobs that are not finished and whose name starts with `prefix` (a driver
/// that restarts finds the jobs it submitted before instead of submitting them again); retried
/// while the controller cannot be reached.
pub fn find_jobs(prefix: &str) -> Result<Vec<FoundJob>> {
    let lines = retrying("squeue", Patience::from_env(), true, || squeue(None))?;
    Ok(lines
        .into_iter()
        .filter(|l| l.name.starts_with(prefix) && !l.status.state.is_terminal())
        .map(|l| FoundJob {
            id: l.status.id,
            name: l.name,
            state: l.status.state,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_squeue_lines() {
        let l = parse_line("17|FAILED|NonZeroExitCode|768|vm|pipe-a|b").unwrap();
        assert_eq!(l.status.state, JobState::Failed);
        assert_eq!((l.status.exit_code, l.status.signal), (Some(3), None));
        assert_eq!(l.status.reason, "NonZeroExitCode");
        assert_eq!(l.status.node, "vm");
        assert_eq!(l.name, "pipe-a|b");
        let l = parse_line("18|PENDING|None|0||x").unwrap();
        assert_eq!(l.status.state, JobState::Pending);
        assert_eq!((l.status.exit_code, l.status.reason.as_str()), (None, ""));
        assert!(parse_line("garbage").is_none());
    }
}
