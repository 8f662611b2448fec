//! Running one Slurm command (`sbatch`, `squeue`, `sacct`, `scancel`, `scontrol`): in a process
//! group of its own, with a time limit, optionally stopped when pipe is interrupted; its
//! standard output on success, a typed error naming the command otherwise.

use super::{Result, SlurmError};
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long one call may take before it is stopped and counted as a failure a busy controller
/// gives (Slurm's own clients give up on an unreachable controller after about 10 s).
pub const CALL_LIMIT: Duration = Duration::from_secs(120);

/// How a call runs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CallOpts {
    /// Stopped (and failed) after this long.
    pub limit: Duration,
    /// Stopped at once when pipe is asked to stop (a read whose answer nobody will wait for);
    /// a submission or a cancellation always runs to its end.
    pub abortable: bool,
}

impl CallOpts {
    /// A query: stopped when pipe is interrupted.
    pub fn read() -> Self {
        CallOpts {
            limit: CALL_LIMIT,
            abortable: true,
        }
    }

    /// A change on the controller (`sbatch`, `scancel`): never stopped half-way.
    pub fn write() -> Self {
        CallOpts {
            limit: CALL_LIMIT,
            abortable: false,
        }
    }
}

/// The command line as shown in messages.
pub(crate) fn shown(cmd: &str, args: &[String]) -> String {
    if args.is_empty() {
        cmd.to_string()
    } else {
        format!("{cmd} {}", args.join(" "))
    }
}

/// Runs a Slurm command with its arguments (and optional standard input); its stdout on success.
pub(crate) fn run(
    cmd: &str,
    args: &[String],
    stdin: Option<&str>,
    opts: CallOpts,
) -> Result<String> {
    let spawn_err = |source| SlurmError::Spawn {
        cmd: cmd.into(),
        source,
    };
    let mut c = Command::new(cmd);
    // Its own process group: a terminal's Ctrl-C reaches the driver, which cancels its jobs,
    // and not an `sbatch` half-way through a submission or the `squeue` of a poll.
    c.process_group(0)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().map_err(spawn_err)?;
    let pid = child.id() as i32;
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    if let (Some(text), Some(mut w)) = (stdin, child.stdin.take()) {
        // A command that exits before reading its input is reported by its status below.
        let _ = w.write_all(text.as_bytes());
    }
    let t0 = Instant::now();
    let mut nap = Duration::from_millis(1);
    let status = loop {
        if let Some(s) = child.try_wait().map_err(spawn_err)? {
            break s;
        }
        let stop = if t0.elapsed() > opts.limit {
            Some(SlurmError::TimedOut {
                cmd: shown(cmd, args),
                secs: opts.limit.as_secs(),
            })
        } else if opts.abortable && crate::interrupt::requested().is_some() {
            Some(SlurmError::Interrupted {
                cmd: shown(cmd, args),
            })
        } else {
            None
        };
        if let Some(e) = stop {
            // SAFETY: killpg with the id of the group this call created (process_group(0)
            // makes the child its leader) and a valid signal number.
            unsafe { libc::killpg(pid, libc::SIGKILL) };
            let _ = child.wait();
            return Err(e);
        }
        std::thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(20));
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    if !status.success() {
        return Err(SlurmError::Command {
            cmd: shown(cmd, args),
            status: status.to_string(),
            stderr: String::from_utf8_lossy(&stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_failure_and_time_limit() {
        let o = run(
            "sh",
            &["-c".into(), "cat; echo out".into()],
            Some("in\n"),
            CallOpts::read(),
        )
        .unwrap();
        assert_eq!(o, "in\nout\n");
        let e = run(
            "sh",
            &["-c".into(), "echo boom >&2; exit 3".into()],
            None,
            CallOpts::read(),
        )
        .unwrap_err();
        assert!(
            matches!(&e, SlurmError::Command { stderr, .. } if stderr == "boom"),
            "{e}"
        );
        let t0 = Instant::now();
        let slow = CallOpts {
            limit: Duration::from_millis(200),
            abortable: false,
        };
        // the grandchild dies with the group: the call does not wait for its stdout
        let e = run(
            "sh",
            &["-c".into(), "sleep 30 & sleep 30".into()],
            None,
            slow,
        )
        .unwrap_err();
        assert!(matches!(e, SlurmError::TimedOut { .. }), "{e}");
        assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
        let e = run("no-such-slurm-command", &[], None, CallOpts::read()).unwrap_err();
        assert!(matches!(e, SlurmError::Spawn { .. }), "{e}");
    }
}
