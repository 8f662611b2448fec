//! pipe's errors: [`PipeError`] wraps the typed error of each layer, and this file is the one
//! place that maps every error to its exit code ([`PipeError::exit_code`]) and its message (the
//! `Display` of each variant).
//!
//! Exit codes: 0 success, 1 a stage failed or the work failed, 2 a usage or configuration error,
//! 130 / 143 interrupted by SIGINT / SIGTERM.

use crate::compare::CompareError;
pub use crate::config::ConfigError;
use crate::instance::InstanceError;
use crate::interrupt::Signal;
use crate::remote::RemoteError;
use crate::slurm::SlurmError;
use std::path::PathBuf;

/// What went wrong, with where and how to fix it in the message.
#[derive(Debug, thiserror::Error)]
pub enum PipeError {
    /// A bad pipeline file, parameter, override, project configuration or lock file: exit 2.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A bad command-line value: exit 2.
    #[error(transparent)]
    Usage(#[from] UsageError),
    /// One instance failed (`pipe __instance`): exit 1.
    #[error(transparent)]
    Instance(#[from] Box<InstanceError>),
    /// Stages of a `pipe run` failed, each already reported with its error on its own `FAILED`
    /// line: exit 1, the stages and their logs named once more, not their errors.
    #[error("{}", stages_failed(.0))]
    StagesFailed(Vec<(String, PathBuf)>),
    /// A run stopped by a signal: exit 130 (SIGINT) or 143 (SIGTERM); the stage it stopped, if
    /// one was running, and its log.
    #[error("{}", interrupted(*.signal, .stage))]
    Interrupted {
        signal: Signal,
        stage: Option<(String, PathBuf)>,
    },
    /// `run --frozen` found stages that would compute: exit 1.
    #[error(transparent)]
    Frozen(#[from] FrozenError),
    /// The project lock is held by another `pipe` (`--no-wait`) or cannot be taken: exit 1.
    #[error(transparent)]
    ProjectLock(#[from] ProjectLockError),
    /// A remote store: exit 2 for a bad URL or credentials, else 1.
    #[error(transparent)]
    Remote(#[from] RemoteError),
    /// Comparing runs or lock files: exit 2 for bad input, 1 for a failed read.
    #[error(transparent)]
    Compare(#[from] CompareError),
    /// An experiment (`pipe exp`, `pipe plots`): exit 2 for an unknown or bad name, else 1.
    #[error(transparent)]
    Experiment(#[from] crate::experiment::ExpError),
    /// A Slurm command: exit 1.
    #[error(transparent)]
    Slurm(#[from] SlurmError),
    /// `pipe reproduce`: the recomputation in the scratch copy failed: exit 1.
    #[error("reproduce: the recomputation of {} failed ({status}){hint}", pipeline.display())]
    Recompute {
        pipeline: PathBuf,
        status: String,
        hint: String,
    },
    /// A file, folder or system resource that cannot be read, written or set up: exit 1. `what`
    /// names the action and the path.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A failure of the model tools (`generate`, `score`, `bench`, `eval`) or of reading their
    /// input data: exit 1.
    #[error("{0:#}")]
    Tool(anyhow::Error),
}

impl PipeError {
    /// The exit code of this error (see the module docs).
    pub fn exit_code(&self) -> i32 {
        match self {
            PipeError::Config(_) | PipeError::Usage(_) => 2,
            PipeError::Interrupted { signal, .. } => crate::interrupt::exit_code(*signal),
            PipeError::Remote(e) => e.exit_code(),
            PipeError::Compare(e) => e.exit_code(),
            PipeError::Experiment(e) => e.exit_code(),
            PipeError::Instance(e) if e.is_config() => 2,
            PipeError::Instance(_)
            | PipeError::StagesFailed(_)
            | PipeError::Frozen(_)
            | PipeError::ProjectLock(_)
            | PipeError::Slurm(_)
            | PipeError::Recompute { .. }
            | PipeError::Io { .. }
            | PipeError::Tool(_) => 1,
        }
    }

    /// A configuration error with its message (which names the file, line, stage and key).
    pub fn config(message: impl Into<String>) -> Self {
        PipeError::Config(ConfigError::new(message))
    }

    /// A bad command-line value, with its message (which names the flag and the value).
    pub fn usage(message: impl Into<String>) -> Self {
        PipeError::Usage(UsageError::Invalid(message.into()))
    }

    /// The current folder cannot be read.
    pub fn current_dir(source: std::io::Error) -> Self {
        PipeError::Io {
            what: "cannot read the current folder".into(),
            source,
        }
    }

    /// A file or folder that cannot be read or written: `what` is the action ("cannot read"),
    /// `path` what it was done to.
    pub fn io(what: &str, path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        PipeError::Io {
            what: format!("{what} {}", path.as_ref().display()),
            source,
        }
    }
}

impl From<InstanceError> for PipeError {
    fn from(e: InstanceError) -> Self {
        PipeError::Instance(Box::new(e))
    }
}

impl From<anyhow::Error> for PipeError {
    fn from(e: anyhow::Error) -> Self {
        PipeError::Tool(e)
    }
}

/// A bad command-line value.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    /// `--only`/`--force` names no stage or instance of the pipeline.
    #[error("{flag} {name}: no stage or instance `{name}` in {}; {hint}", file.display())]
    UnknownStage {
        flag: &'static str,
        name: String,
        file: PathBuf,
        /// "did you mean …" or the list of stages.
        hint: String,
    },
    /// `-j 0`.
    #[error("-j 0: give at least one job")]
    NoJobs,
    /// Any other bad value: the message names the flag and the value.
    #[error("{0}")]
    Invalid(String),
}

/// `run --frozen` found instances that would compute.
#[derive(Debug, thiserror::Error)]
#[error(
    "--frozen: {} stage(s) would compute: {}; run `pipe run {}` and commit {}",
    stale.len(),
    stale.iter().map(|(id, why)| format!("{id} ({why})")).collect::<Vec<_>>().join(", "),
    pipeline.display(),
    lock.display()
)]
pub struct FrozenError {
    /// (instance id, why it would compute).
    pub stale: Vec<(String, String)>,
    pub pipeline: PathBuf,
    pub lock: PathBuf,
}

/// The project lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum ProjectLockError {
    #[error(
        "another `pipe` ({}) holds the project lock {}; wait for it or run without --no-wait",
        pid.map(|p| format!("pid {p}")).unwrap_or_else(|| "unknown pid".into()),
        path.display()
    )]
    Busy { pid: Option<u32>, path: PathBuf },
    #[error("cannot take the project lock in {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T> = std::result::Result<T, PipeError>;

/// `stage `a` failed (log: …)`, or `2 stages failed: a (log: …), b (log: …)`.
fn stages_failed(v: &[(String, PathBuf)]) -> String {
    let one = |(id, log): &(String, PathBuf)| format!("`{id}` (log: {})", log.display());
    match v {
        [(id, log)] => format!(
            "stage `{id}` failed (log: {}); its error is shown above",
            log.display()
        ),
        _ => format!(
            "{} stages failed: {}; their errors are shown above",
            v.len(),
            v.iter().map(one).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// `stage `a` was interrupted (log: …); stopped by SIGINT (Ctrl-C); rerun to continue`.
fn interrupted(signal: Signal, stage: &Option<(String, PathBuf)>) -> String {
    let what = match stage {
        Some((id, log)) => format!("stage `{id}` was interrupted (log: {})", log.display()),
        None => "the run was interrupted between stages".into(),
    };
    let ctrl_c = if signal == Signal::Int {
        " (Ctrl-C)"
    } else {
        ""
    };
    format!("{what}; stopped by {signal}{ctrl_c}; rerun to continue")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_error_has_its_exit_code() {
        assert_eq!(PipeError::config("bad").exit_code(), 2);
        assert_eq!(PipeError::Usage(UsageError::NoJobs).exit_code(), 2);
        let int = PipeError::Interrupted {
            signal: Signal::Int,
            stage: Some(("a".into(), "results/p/logs/a.log".into())),
        };
        assert_eq!(int.exit_code(), 130);
        assert_eq!(
            int.to_string(),
            "stage `a` was interrupted (log: results/p/logs/a.log); stopped by SIGINT (Ctrl-C); \
             rerun to continue"
        );
        let term = PipeError::Interrupted {
            signal: Signal::Term,
            stage: None,
        };
        assert_eq!(term.exit_code(), 143);
        assert!(term
            .to_string()
            .starts_with("the run was interrupted between stages"));
        let failed = PipeError::StagesFailed(vec![("a".into(), "l/a.log".into())]);
        assert_eq!(failed.exit_code(), 1);
        assert_eq!(
            failed.to_string(),
            "stage `a` failed (log: l/a.log); its error is shown above"
        );
        let frozen = PipeError::from(FrozenError {
            stale: vec![("b".into(), "param `x` 1 → 2".into())],
            pipeline: "pipelines/p.yaml".into(),
            lock: "pipelines/p.lock".into(),
        });
        assert_eq!(frozen.exit_code(), 1);
        assert_eq!(
            frozen.to_string(),
            "--frozen: 1 stage(s) would compute: b (param `x` 1 → 2); run `pipe run \
             pipelines/p.yaml` and commit pipelines/p.lock"
        );
    }
}
