//! A small client for Slurm over its real commands (`sbatch`, `squeue`, `sacct`, `scancel`,
//! `scontrol`) that expects trouble: every call is retried with a growing pause while the
//! controller is busy, restarting or unreachable, for a bounded time (`PIPE_SLURM_PATIENCE`,
//! default 300 s; [`retry`]); a submission whose reply was lost is found again, not repeated
//! ([`job`]); and however many jobs a process waits for, each poll is one status query for all
//! of them at an interval growing from 0.2 s to 5 s ([`monitor`], [`poll`], [`query`]). Works on
//! clusters without accounting (`sacct` fails there; the `jobcomp/filetxt` file read by
//! `sacct -c` is the fallback). Which cluster is reached is Slurm's business: the commands
//! inherit the environment (`SLURM_CONF`).

pub mod command;
pub mod job;
pub mod monitor;
pub mod poll;
pub mod query;
pub mod retry;
pub mod state;

pub use job::{cancel, submit, submit_array, ArraySpec, JobSpec, Task};
pub use monitor::Monitor;
pub use poll::{wait_all, Poller};
pub use query::{find_jobs, query, FoundJob};
pub use retry::Patience;
pub use state::{JobRef, JobState, JobStatus};

/// A failure to talk to Slurm.
#[derive(Debug, thiserror::Error)]
pub enum SlurmError {
    /// The command is not installed or cannot be started.
    #[error("cannot run `{cmd}`: {source} (is Slurm installed? scripts/slurm_up.sh starts a local cluster)")]
    Spawn {
        cmd: String,
        #[source]
        source: std::io::Error,
    },
    /// The command ran and failed.
    #[error("`{cmd}` failed ({status}): {stderr}")]
    Command {
        cmd: String,
        status: String,
        stderr: String,
    },
    /// The command's output is not what this client expects.
    #[error("`{cmd}` printed something unexpected: {output}")]
    Parse { cmd: String, output: String },
    /// The command ran longer than a call may ([`command::CALL_LIMIT`]) and was stopped.
    #[error("`{cmd}` did not finish within {secs} s and was stopped")]
    TimedOut { cmd: String, secs: u64 },
    /// Pipe was interrupted while waiting for the command (a query, never a submission).
    #[error("`{cmd}` stopped: pipe was interrupted")]
    Interrupted { cmd: String },
    /// The controller could not be reached for longer than the patience.
    #[error(
        "gave up on Slurm after {waited_s} s (PIPE_SLURM_PATIENCE): `{cmd}` kept failing; last: {last}{}",
        jobs_out_there(jobs)
    )]
    GaveUp {
        cmd: String,
        waited_s: u64,
        last: String,
        /// Jobs that may still be queued or running.
        jobs: Vec<JobRef>,
    },
}

/// "; Slurm jobs 1, 2 may still be queued or running (…)" for a give-up message.
fn jobs_out_there(jobs: &[JobRef]) -> String {
    if jobs.is_empty() {
        return String::new();
    }
    let ids: Vec<String> = jobs.iter().map(|i| i.to_string()).collect();
    format!(
        "; Slurm job{} {} may still be queued or running (see `squeue --jobs={}`, stop with `scancel {}`)",
        if jobs.len() == 1 { "" } else { "s" },
        ids.join(", "),
        ids.join(","),
        ids.join(" ")
    )
}

impl SlurmError {
    /// The same error naming `jobs` as still out there (a give-up), or as it is.
    pub fn with_jobs(self, jobs: &[JobRef]) -> SlurmError {
        match self {
            SlurmError::GaveUp {
                cmd,
                waited_s,
                last,
                jobs: mut j,
            } => {
                j.extend_from_slice(jobs);
                j.sort_unstable();
                j.dedup();
                SlurmError::GaveUp {
                    cmd,
                    waited_s,
                    last,
                    jobs: j,
                }
            }
            other => other,
        }
    }
}

pub type Result<T> = std::result::Result<T, SlurmError>;
