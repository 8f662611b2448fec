//! A small client for Slurm over its real commands (`sbatch`, `squeue`, `sacct`, `scancel`,
//! `scontrol`): submit a job, poll the states of a set of jobs at a short adaptive interval,
//! cancel, and find this project's jobs by name prefix. Works on clusters without accounting
//! (`sacct` fails there; the `jobcomp/filetxt` file read by `sacct -c` is the fallback).

pub mod job;
pub mod poll;
pub mod state;

pub use job::{cancel, submit, JobSpec};
pub use poll::{find_jobs, query, wait_all, FoundJob, Poller};
pub use state::{JobState, JobStatus};

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
}

pub type Result<T> = std::result::Result<T, SlurmError>;

/// Runs a Slurm command with its arguments (and optional standard input); its stdout on success.
pub(crate) fn run(cmd: &str, args: &[String], stdin: Option<&str>) -> Result<String> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let shown = || format!("{cmd} {}", args.join(" "));
    use std::os::unix::process::CommandExt;
    let mut c = Command::new(cmd);
    // Its own process group: a terminal's Ctrl-C reaches the driver, which cancels its jobs,
    // and not an `sbatch` half-way through a submission or the `squeue` of a poll.
    c.process_group(0);
    c.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().map_err(|source| SlurmError::Spawn {
        cmd: cmd.into(),
        source,
    })?;
    if let (Some(text), Some(mut w)) = (stdin, child.stdin.take()) {
        w.write_all(text.as_bytes())
            .map_err(|source| SlurmError::Spawn {
                cmd: cmd.into(),
                source,
            })?;
    }
    let out = child
        .wait_with_output()
        .map_err(|source| SlurmError::Spawn {
            cmd: cmd.into(),
            source,
        })?;
    if !out.status.success() {
        return Err(SlurmError::Command {
            cmd: shown(),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
