//! Slurm job states as this client sees them, parsed from `squeue`'s `%T`, `sacct`'s `State`
//! and `scontrol`'s `JobState`, with the exit code where Slurm keeps one.

/// The state of one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    Pending,
    Configuring,
    Running,
    /// Finished, epilog still running.
    Completing,
    Suspended,
    Completed,
    Failed,
    Timeout,
    OutOfMemory,
    Cancelled,
    NodeFail,
    Preempted,
    BootFail,
    Deadline,
    /// Any other state, as Slurm spelled it.
    Other(String),
}

impl JobState {
    /// Parses `COMPLETED`, `CANCELLED by 0`, `OUT_OF_MEMORY`, `TIMEOUT`… (case-insensitive).
    pub fn parse(s: &str) -> JobState {
        let word = s
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        match word.trim_end_matches('+') {
            "PENDING" | "PD" | "REQUEUED" | "REQUEUE_HOLD" | "REQUEUE_FED" | "RESV_DEL_HOLD" => {
                JobState::Pending
            }
            "CONFIGURING" | "CF" => JobState::Configuring,
            "RUNNING" | "R" | "SIGNALING" | "STAGE_OUT" | "RESIZING" => JobState::Running,
            "COMPLETING" | "CG" => JobState::Completing,
            "SUSPENDED" | "S" | "STOPPED" => JobState::Suspended,
            "COMPLETED" | "CD" => JobState::Completed,
            "FAILED" | "F" => JobState::Failed,
            "TIMEOUT" | "TO" => JobState::Timeout,
            "OUT_OF_MEMORY" | "OOM" => JobState::OutOfMemory,
            "CANCELLED" | "CA" => JobState::Cancelled,
            "NODE_FAIL" | "NF" => JobState::NodeFail,
            "PREEMPTED" | "PR" => JobState::Preempted,
            "BOOT_FAIL" | "BF" => JobState::BootFail,
            "DEADLINE" | "DL" => JobState::Deadline,
            _ => JobState::Other(word),
        }
    }

    /// True once the job will not change state again.
    pub fn is_terminal(&self) -> bool {
        !matches!(
            self,
            JobState::Pending
                | JobState::Configuring
                | JobState::Running
                | JobState::Completing
                | JobState::Suspended
        )
    }

    /// True for a job that finished successfully.
    pub fn is_success(&self) -> bool {
        *self == JobState::Completed
    }

    /// Slurm's own spelling (`OUT_OF_MEMORY`), for messages.
    pub fn as_slurm(&self) -> &str {
        match self {
            JobState::Pending => "PENDING",
            JobState::Configuring => "CONFIGURING",
            JobState::Running => "RUNNING",
            JobState::Completing => "COMPLETING",
            JobState::Suspended => "SUSPENDED",
            JobState::Completed => "COMPLETED",
            JobState::Failed => "FAILED",
            JobState::Timeout => "TIMEOUT",
            JobState::OutOfMemory => "OUT_OF_MEMORY",
            JobState::Cancelled => "CANCELLED",
            JobState::NodeFail => "NODE_FAIL",
            JobState::Preempted => "PREEMPTED",
            JobState::BootFail => "BOOT_FAIL",
            JobState::Deadline => "DEADLINE",
            JobState::Other(s) => s,
        }
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_slurm())
    }
}

/// One job, or one element of a job array, as Slurm names it: `123` or `123_4`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JobRef {
    /// The job's id (for an array element: the array's id).
    pub job: u64,
    /// The element's index in its array.
    pub task: Option<u32>,
}

impl JobRef {
    /// Element `task` of array `job`.
    pub fn element(job: u64, task: u32) -> JobRef {
        JobRef {
            job,
            task: Some(task),
        }
    }

    /// Parses `123` or `123_4` (not a range such as `123_[0-3]`).
    pub fn parse(s: &str) -> Option<JobRef> {
        let s = s.trim();
        match s.split_once('_') {
            None => Some(JobRef::from(s.parse::<u64>().ok()?)),
            Some((j, t)) => Some(JobRef::element(j.parse().ok()?, t.parse().ok()?)),
        }
    }
}

impl From<u64> for JobRef {
    fn from(job: u64) -> JobRef {
        JobRef { job, task: None }
    }
}

impl std::fmt::Display for JobRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.task {
            Some(t) => write!(f, "{}_{t}", self.job),
            None => write!(f, "{}", self.job),
        }
    }
}

/// What is known of one job (or array element).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobStatus {
    /// The job's id; for an array element, the array's id (see `task`).
    pub id: u64,
    /// The element's index, for an array element.
    pub task: Option<u32>,
    /// The job id Slurm gave the element itself once it started (its own id for a plain job;
    /// `sacct -c` knows elements by it).
    pub raw: u64,
    pub state: JobState,
    /// squeue's reason (`Resources`, `DependencyNeverSatisfied`…); empty when not known.
    pub reason: String,
    /// The exit code of the batch script, where known (terminal states only).
    pub exit_code: Option<i32>,
    /// The signal that ended it, where known and non-zero.
    pub signal: Option<i32>,
    /// The node(s) it runs or ran on (Slurm's host list); empty while pending.
    pub node: String,
}

impl JobStatus {
    /// The job (or element) this is the status of.
    pub fn job_ref(&self) -> JobRef {
        JobRef {
            job: self.id,
            task: self.task,
        }
    }

    /// A status no source knows: `Other("UNKNOWN")`.
    pub fn unknown(r: JobRef) -> JobStatus {
        JobStatus {
            id: r.job,
            task: r.task,
            raw: r.job,
            state: JobState::Other("UNKNOWN".into()),
            reason: String::new(),
            exit_code: None,
            signal: None,
            node: String::new(),
        }
    }
}

/// Parses the raw wait status `squeue -O exit_code` prints (`768` is exit code 3, `9` is
/// signal 9): (exit code, signal), the signal only when non-zero.
pub fn parse_wait_status(s: &str) -> (Option<i32>, Option<i32>) {
    match s.trim().parse::<i32>() {
        Ok(w) if w & 0x7f != 0 => (Some(0), Some(w & 0x7f)),
        Ok(w) => (Some((w >> 8) & 0xff), None),
        Err(_) => (None, None),
    }
}

/// Parses Slurm's `ExitCode` form `code:signal`.
pub fn parse_exit(s: &str) -> (Option<i32>, Option<i32>) {
    let mut it = s.trim().split(':');
    let code = it.next().and_then(|c| c.parse().ok());
    let sig = it
        .next()
        .and_then(|c| c.parse().ok())
        .filter(|&n: &i32| n != 0);
    (code, sig)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_states_and_exit_codes() {
        assert_eq!(JobState::parse("CANCELLED by 0"), JobState::Cancelled);
        assert_eq!(JobState::parse("out_of_memory"), JobState::OutOfMemory);
        assert_eq!(JobState::parse("TIMEOUT"), JobState::Timeout);
        assert_eq!(JobState::parse("WEIRD"), JobState::Other("WEIRD".into()));
        assert!(JobState::Failed.is_terminal() && !JobState::Completing.is_terminal());
        assert_eq!(parse_exit("3:0"), (Some(3), None));
        assert_eq!(parse_exit("0:15"), (Some(0), Some(15)));
        assert_eq!(parse_wait_status("768"), (Some(3), None));
        assert_eq!(parse_wait_status("9"), (Some(0), Some(9)));
        assert_eq!(parse_wait_status("0"), (Some(0), None));
        assert_eq!(parse_wait_status("N/A"), (None, None));
        assert_eq!(JobRef::parse("12"), Some(JobRef::from(12)));
        assert_eq!(JobRef::parse("12_3"), Some(JobRef::element(12, 3)));
        assert_eq!(JobRef::parse("12_[0-3]"), None);
        assert_eq!(JobRef::element(12, 3).to_string(), "12_3");
    }
}
