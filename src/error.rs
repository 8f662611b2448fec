//! Typed errors of the command line, each mapped to an exit code.

use std::path::PathBuf;

/// What went wrong, with where and how to fix it in the message.
#[derive(Debug, thiserror::Error)]
pub enum PipeError {
    /// Bad pipeline file, parameter or command-line value: exit code 2.
    #[error("{0}")]
    Config(String),
    /// A stage failed: exit code 1.
    #[error("stage `{stage}` failed: {msg} (log: {})", log.display())]
    StageFailed {
        stage: String,
        msg: String,
        log: PathBuf,
    },
    /// Stages of a `pipe run` failed, each already reported with its error on its own
    /// `FAILED` line: exit code 1, the stages and their logs named once more, not their errors.
    #[error("{}", stages_failed(.0))]
    StagesFailed(Vec<(String, PathBuf)>),
    /// Any other failure while doing the work (I/O, bad input data): exit code 1.
    #[error("{0}")]
    Failed(String),
}

impl PipeError {
    pub fn exit_code(&self) -> i32 {
        match self {
            PipeError::Config(_) => 2,
            PipeError::StageFailed { .. } | PipeError::StagesFailed(_) | PipeError::Failed(_) => 1,
        }
    }
}

impl From<anyhow::Error> for PipeError {
    fn from(e: anyhow::Error) -> Self {
        PipeError::Failed(format!("{e:#}"))
    }
}

impl From<std::io::Error> for PipeError {
    fn from(e: std::io::Error) -> Self {
        PipeError::Failed(e.to_string())
    }
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
