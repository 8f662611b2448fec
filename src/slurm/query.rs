//! One status query for a set of jobs and array elements, however many: a single
//! `squeue -r --jobs=…` (finished jobs stay there for `MinJobAge`; state, reason, exit status and
//! node in one call, one line per array element), then for the jobs that have left it one
//! `sacct`, or `sacct -c` (the jobcomp file, which knows array elements by their own job ids) on
//! a cluster without accounting. Also: this user's unfinished jobs whose name starts with a prefix.

use super::command::{run, CallOpts};
use super::retry::{retrying, Patience};
use super::state::{parse_exit, parse_wait_status, JobRef, JobState, JobStatus};
use super::{Result, SlurmError};
use std::collections::{BTreeMap, BTreeSet};

/// `squeue`'s fields, `|`-separated, unpadded; the name last (it may hold anything).
const FIELDS: &str =
    "JobID:|,ArrayJobID:|,ArrayTaskID:|,State:|,Reason:|,exit_code:|,NodeList:|,Name:";

fn ids_arg<T: std::fmt::Display>(ids: impl IntoIterator<Item = T>) -> String {
    ids.into_iter()
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
    let f: Vec<&str> = l.splitn(8, '|').collect();
    if f.len() < 8 {
        return None;
    }
    let raw: u64 = f[0].trim().parse().ok()?;
    let id = f[1].trim().parse().unwrap_or(raw);
    let task = f[2].trim().parse().ok();
    let state = JobState::parse(f[3]);
    let reason = match f[4].trim() {
        "None" | "(null)" => String::new(),
        r => r.to_string(),
    };
    let (exit_code, signal) = if state.is_terminal() {
        parse_wait_status(f[5])
    } else {
        (None, None)
    };
    let node = match f[6].trim() {
        "(null)" | "None assigned" => String::new(),
        n => n.to_string(),
    };
    Some(Line {
        status: JobStatus {
            id,
            task,
            raw,
            state,
            reason,
            exit_code,
            signal,
            node,
        },
        name: f[7].trim().to_string(),
    })
}

/// One `squeue` call: the lines (one per array element) of the jobs `ids` (any state), or of
/// all this user's unfinished jobs when `ids` is None. A single id Slurm no longer knows is no
/// line, not an error.
fn squeue(ids: Option<&BTreeSet<u64>>) -> Result<Vec<Line>> {
    let mut args = vec!["-h".to_string(), "--me".into(), "-r".into()];
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

/// States and exit codes from `sacct`, or `sacct -c` when accounting is disabled, of `ids` (job
/// ids, array ids, array elements' own ids); each line as the job or element it names (`123`,
/// `123_4`). Both read from a file or a database, not the controller: a failure is an empty
/// answer.
fn sacct(ids: &BTreeSet<u64>) -> Vec<(JobRef, JobStatus)> {
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
    let mut v = Vec::new();
    for l in out.unwrap_or_default().lines() {
        let f: Vec<&str> = l.split('|').collect();
        if f.len() < 3 {
            continue;
        }
        // `123` or `123_4` only: `123.batch` steps are not what was submitted
        let Some(r) = JobRef::parse(f[0]) else {
            continue;
        };
        let (exit_code, signal) = parse_exit(f[2]);
        v.push((
            r,
            JobStatus {
                id: r.job,
                task: r.task,
                raw: r.job,
                state: JobState::parse(f[1]),
                reason: String::new(),
                exit_code,
                signal,
                node: f.get(3).map(|n| n.trim().to_string()).unwrap_or_default(),
            },
        ));
    }
    v
}

/// The current status of each of `jobs` (each with the element's own job id when known) with
/// one `squeue` call, and one `sacct` for the jobs it no longer shows, without retrying. A job
/// no source knows is `Other("UNKNOWN")`.
pub(crate) fn once(jobs: &BTreeMap<JobRef, Option<u64>>) -> Result<BTreeMap<JobRef, JobStatus>> {
    let mut out = BTreeMap::new();
    if jobs.is_empty() {
        return Ok(out);
    }
    let ids: BTreeSet<u64> = jobs.keys().map(|r| r.job).collect();
    for l in squeue(Some(&ids))? {
        let r = l.status.job_ref();
        if jobs.contains_key(&r) {
            out.insert(r, l.status);
        }
    }
    let gone: Vec<(JobRef, Option<u64>)> = jobs
        .iter()
        .filter(|(r, _)| !out.contains_key(*r))
        .map(|(r, raw)| (*r, *raw))
        .collect();
    if gone.is_empty() {
        return Ok(out);
    }
    let mut ask: BTreeSet<u64> = gone.iter().map(|(r, _)| r.job).collect();
    ask.extend(gone.iter().filter_map(|(_, raw)| *raw));
    // the jobcomp file may hold a job twice (requeue): the last line wins
    let mut by_ref = BTreeMap::new();
    let mut by_raw = BTreeMap::new();
    for (r, st) in sacct(&ask) {
        by_raw.insert(r.job, st.clone());
        by_ref.insert(r, st);
    }
    for (r, raw) in gone {
        let found = by_ref
            .get(&r)
            .or_else(|| raw.and_then(|x| by_raw.get(&x)))
            .or_else(|| by_raw.get(&r.job).filter(|_| r.task.is_none()));
        let st = match found {
            Some(s) => JobStatus {
                id: r.job,
                task: r.task,
                raw: raw.unwrap_or(s.raw),
                ..s.clone()
            },
            None => JobStatus::unknown(r),
        };
        out.insert(r, st);
    }
    Ok(out)
}

/// The current status of each of `ids` (jobs or array elements; one query), retried while the
/// controller cannot be reached (see [`super::retry`]).
pub fn query<I: Copy + Ord + Into<JobRef>>(ids: &[I]) -> Result<BTreeMap<I, JobStatus>> {
    let set: BTreeMap<JobRef, Option<u64>> = ids.iter().map(|&i| (i.into(), None)).collect();
    let m = retrying("squeue", Patience::from_env(), true, || once(&set))?;
    Ok(ids
        .iter()
        .filter_map(|&i| m.get(&i.into()).map(|s| (i, s.clone())))
        .collect())
}

/// A job (or array element) of this user found by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundJob {
    /// The job's id; the array's id for an element.
    pub id: u64,
    /// The element's index, for an array element.
    pub task: Option<u32>,
    pub name: String,
    pub state: JobState,
}

impl FoundJob {
    pub fn job_ref(&self) -> JobRef {
        JobRef {
            job: self.id,
            task: self.task,
        }
    }
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
            task: l.status.task,
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
        let l = parse_line("17|17|N/A|FAILED|NonZeroExitCode|768|vm|pipe-a|b").unwrap();
        assert_eq!(l.status.job_ref(), JobRef::from(17));
        assert_eq!(l.status.state, JobState::Failed);
        assert_eq!((l.status.exit_code, l.status.signal), (Some(3), None));
        assert_eq!(l.status.reason, "NonZeroExitCode");
        assert_eq!(l.status.node, "vm");
        assert_eq!(l.name, "pipe-a|b");
        let l = parse_line("21|18|2|RUNNING|None|0|vm|x").unwrap();
        assert_eq!(l.status.job_ref(), JobRef::element(18, 2));
        assert_eq!(l.status.raw, 21);
        let l = parse_line("18|18|3|PENDING|None|0||x").unwrap();
        assert_eq!(l.status.job_ref(), JobRef::element(18, 3));
        assert_eq!(l.status.state, JobState::Pending);
        assert_eq!((l.status.exit_code, l.status.reason.as_str()), (None, ""));
        assert!(parse_line("garbage").is_none());
    }
}
