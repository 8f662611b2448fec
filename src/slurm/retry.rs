//! Patience with a busy or restarting controller: which failures are the passing kind (the
//! controller cannot be reached, times out, is busy or is starting up), and retrying a call with
//! a growing pause for a bounded time (`PIPE_SLURM_PATIENCE` seconds, default 300) before giving
//! up with an error that says how long it tried.

use super::{Result, SlurmError};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long the client keeps retrying by default.
pub const DEFAULT_PATIENCE: Duration = Duration::from_secs(300);
/// The variable that sets it (seconds; `0` retries never).
pub const PATIENCE_ENV: &str = "PIPE_SLURM_PATIENCE";

/// Shortest and longest pause between two attempts.
const FIRST_PAUSE: Duration = Duration::from_millis(500);
const MAX_PAUSE: Duration = Duration::from_secs(10);

/// How long to keep retrying a call that fails the passing way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Patience {
    pub total: Duration,
}

impl Default for Patience {
    fn default() -> Self {
        Patience {
            total: DEFAULT_PATIENCE,
        }
    }
}

impl Patience {
    /// `PIPE_SLURM_PATIENCE` (seconds, fractions allowed), read once; the default when unset.
    /// A value that is not a number is reported once and the default used.
    pub fn from_env() -> Patience {
        static P: OnceLock<Patience> = OnceLock::new();
        *P.get_or_init(|| match std::env::var(PATIENCE_ENV) {
            Err(_) => Patience::default(),
            Ok(v) => match v.trim().parse::<f64>() {
                Ok(s) if s.is_finite() && s >= 0.0 => Patience {
                    total: Duration::from_secs_f64(s.min(1e7)),
                },
                _ => {
                    eprintln!(
                        "warning: {PATIENCE_ENV}={v:?} is not a number of seconds; using {} s",
                        DEFAULT_PATIENCE.as_secs()
                    );
                    Patience::default()
                }
            },
        })
    }

    /// The pause after `failures` failed attempts: 0.5 s, doubling, at most 10 s.
    pub fn pause(failures: u32) -> Duration {
        FIRST_PAUSE
            .saturating_mul(1 << failures.saturating_sub(1).min(8))
            .min(MAX_PAUSE)
    }
}

/// True for the failures a busy, restarting or briefly unreachable controller gives, after
/// which the same call may well succeed.
pub fn transient(e: &SlurmError) -> bool {
    const PASSING: [&str; 14] = [
        "unable to contact slurm controller",
        "socket timed out",
        "zero bytes were transmitted",
        "resource temporarily unavailable",
        "temporarily unable",
        "connection refused",
        "connection reset",
        "communication connection failure",
        "transport endpoint is not connected",
        "slurm_receive_msg",
        "backup controller",
        "in standby mode",
        "try again",
        // munged restarting: the credential cannot be made or checked
        "munge",
    ];
    match e {
        SlurmError::Command { stderr, status, .. } => {
            let s = stderr.to_ascii_lowercase();
            PASSING.iter().any(|p| s.contains(p))
                // killed by a signal (no exit code): not the command's verdict
                || status.contains("signal")
        }
        SlurmError::TimedOut { .. } => true,
        SlurmError::Spawn { source, .. } => matches!(
            source.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
        ),
        _ => false,
    }
}

/// Calls `f` until it succeeds, fails in a way that is not [`transient`], or `patience` has
/// passed since the first failure; then the last error, as [`SlurmError::GaveUp`] when it was
/// the passing kind. `cmd` names the call in messages; one line on standard error says that
/// it is being retried. Pauses end early (with the error) when pipe is interrupted and
/// `abortable`.
pub(crate) fn retrying<T>(
    cmd: &str,
    patience: Patience,
    abortable: bool,
    mut f: impl FnMut() -> Result<T>,
) -> Result<T> {
    let mut since: Option<Instant> = None;
    let mut failures = 0u32;
    loop {
        let e = match f() {
            Ok(v) => {
                if since.is_some() {
                    eprintln!("slurm: `{cmd}` succeeded after {failures} failed attempts");
                }
                return Ok(v);
            }
            Err(e) if !transient(&e) => return Err(e),
            Err(e) => e,
        };
        failures += 1;
        let t0 = *since.get_or_insert_with(Instant::now);
        if t0.elapsed() >= patience.total {
            return Err(SlurmError::GaveUp {
                cmd: cmd.to_string(),
                waited_s: t0.elapsed().as_secs(),
                last: e.to_string(),
                jobs: Vec::new(),
            });
        }
        if failures == 1 {
            eprintln!(
                "slurm: `{cmd}` failed ({}); retrying for up to {} s",
                one_line(&e.to_string()),
                patience.total.as_secs()
            );
        }
        let pause = Patience::pause(failures).min(patience.total.saturating_sub(t0.elapsed()));
        if !sleep(pause, abortable) {
            return Err(SlurmError::Interrupted {
                cmd: cmd.to_string(),
            });
        }
    }
}

/// Sleeps for `d` in short steps; false when pipe was interrupted meanwhile and `abortable`.
pub(crate) fn sleep(d: Duration, abortable: bool) -> bool {
    let end = Instant::now() + d;
    loop {
        if abortable && crate::interrupt::requested().is_some() {
            return false;
        }
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}

/// The first line of a message, at most 200 characters.
pub(crate) fn one_line(s: &str) -> String {
    let l = s.lines().next().unwrap_or("");
    match l.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &l[..i]),
        None => l.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd_err(stderr: &str) -> SlurmError {
        SlurmError::Command {
            cmd: "squeue".into(),
            status: "exit status: 1".into(),
            stderr: stderr.into(),
        }
    }

    #[test]
    fn the_passing_failures_are_told_apart() {
        assert!(transient(&cmd_err(
            "slurm_load_jobs error: Unable to contact slurm controller (connect failure)"
        )));
        assert!(transient(&cmd_err(
            "sbatch: error: Batch job submission failed: Socket timed out on send/recv operation"
        )));
        assert!(transient(&cmd_err(
            "sbatch: error: Batch job submission failed: Resource temporarily unavailable"
        )));
        assert!(!transient(&cmd_err(
            "sbatch: error: Batch job submission failed: Invalid partition name specified"
        )));
        assert!(!transient(&cmd_err(
            "slurm_load_jobs error: Invalid job id specified"
        )));
        assert!(transient(&SlurmError::TimedOut {
            cmd: "squeue".into(),
            secs: 120
        }));
    }

    #[test]
    fn retries_then_succeeds_or_gives_up_or_stops_at_once() {
        let p = Patience {
            total: Duration::from_secs(5),
        };
        let mut n = 0;
        let v = retrying("squeue", p, false, || {
            n += 1;
            if n < 3 {
                Err(cmd_err("Unable to contact slurm controller"))
            } else {
                Ok(n)
            }
        })
        .unwrap();
        assert_eq!(v, 3);
        let mut n = 0;
        let e = retrying("sbatch", p, false, || -> Result<()> {
            n += 1;
            Err(cmd_err("Invalid partition name specified"))
        })
        .unwrap_err();
        assert_eq!(n, 1);
        assert!(matches!(e, SlurmError::Command { .. }), "{e}");
        let short = Patience {
            total: Duration::from_millis(300),
        };
        let t0 = Instant::now();
        let e = retrying("squeue", short, false, || -> Result<()> {
            Err(cmd_err(
                "Unable to contact slurm controller (connect failure)",
            ))
        })
        .unwrap_err();
        assert!(t0.elapsed() < Duration::from_secs(3));
        let msg = e.to_string();
        assert!(matches!(e, SlurmError::GaveUp { .. }), "{msg}");
        assert!(msg.contains("Unable to contact slurm controller"), "{msg}");
    }

    #[test]
    fn pauses_grow_and_are_bounded() {
        assert_eq!(Patience::pause(1), Duration::from_millis(500));
        assert_eq!(Patience::pause(2), Duration::from_secs(1));
        assert_eq!(Patience::pause(40), MAX_PAUSE);
    }
}
