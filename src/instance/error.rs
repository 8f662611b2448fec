//! Why an instance did not complete: [`InstanceError`] names the instance, its log and the
//! typed [`Cause`] (its [`Failure`], boxed so that results stay small); the engine prints it
//! once on the instance's `FAILED` line.

use crate::cache::fsafe::FsError;
use crate::digest::Fingerprint;
use crate::interrupt::Signal;
use crate::remote::RemoteError;
use crate::slurm::SlurmError;
use std::path::PathBuf;

/// One instance's failure (see [`Failure`], which it dereferences to).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct InstanceError(Box<Failure>);

impl std::ops::Deref for InstanceError {
    type Target = Failure;

    fn deref(&self) -> &Failure {
        &self.0
    }
}

impl From<Failure> for InstanceError {
    fn from(f: Failure) -> Self {
        InstanceError(Box::new(f))
    }
}

/// Which instance failed, where its log is, and why.
#[derive(Debug, thiserror::Error)]
#[error("stage `{stage}`: {cause} (log: {})", log.display())]
pub struct Failure {
    /// The instance id.
    pub stage: String,
    /// Its log, relative to the project root.
    pub log: PathBuf,
    /// The fingerprint it was computing, once known.
    pub fingerprint: Option<Fingerprint>,
    #[source]
    pub cause: Cause,
}

impl InstanceError {
    /// The failure, owned.
    pub fn into_failure(self) -> Failure {
        *self.0
    }

    /// The same failure, with the fingerprint it was computing.
    pub fn with_fingerprint(mut self, fp: Fingerprint) -> Self {
        self.0.fingerprint = Some(fp);
        self
    }
}

impl Failure {
    /// True when the instance was stopped by a signal rather than failing.
    pub fn is_interrupted(&self) -> bool {
        matches!(self.cause, Cause::Interrupted(_))
    }

    /// True for a configuration error (a job's instance or records do not match the project):
    /// exit code 2.
    pub fn is_config(&self) -> bool {
        matches!(
            self.cause,
            Cause::NoSuchInstance { .. }
                | Cause::NoUpstreamRecord { .. }
                | Cause::FingerprintChanged { .. }
        )
    }
}

/// Why an instance did not complete.
#[derive(Debug, thiserror::Error)]
pub enum Cause {
    /// An upstream output the instance reads was changed and cannot be restored.
    #[error(
        "upstream `{upstream}`: {path} was changed and its stored copy is corrupt; run `pipe run \
         --force {upstream}`"
    )]
    UpstreamUnrestorable { upstream: String, path: String },
    /// Restoring an upstream output the instance reads failed.
    #[error("upstream `{upstream}`: {source}")]
    UpstreamRestore {
        upstream: String,
        #[source]
        source: RestoreError,
    },
    /// Declared inputs (`deps`) that exist nowhere.
    #[error(
        "input {} does not exist; create it or produce it in an upstream stage",
        .0.join(", ")
    )]
    InputMissing(Vec<String>),
    #[error("cannot create a staging folder: {0}")]
    Staging(#[source] std::io::Error),
    /// A declared output that could not be cleared before the run.
    #[error("cannot clear output {}: {source}", path.display())]
    ClearOutput {
        path: PathBuf,
        #[source]
        source: FsError,
    },
    #[error("cannot create the log file: {0}")]
    Log(#[source] std::io::Error),
    /// The stage kind's own error.
    #[error("{0:#}")]
    Stage(anyhow::Error),
    #[error("panicked: {0}")]
    Panicked(String),
    /// Stopped by Ctrl-C or SIGTERM (not a failure of the stage).
    #[error("stopped by {0}")]
    Interrupted(Signal),
    /// Storing the outputs or writing the run record failed.
    #[error(transparent)]
    Commit(#[from] CommitError),
    /// Placing the outputs of a recorded run failed.
    #[error(transparent)]
    Restore(#[from] RestoreError),
    /// A remote store the job's inputs or outputs go through.
    #[error(transparent)]
    Remote(#[from] RemoteError),
    /// A Slurm command (submitting, polling) failed.
    #[error(transparent)]
    Slurm(#[from] SlurmError),
    /// The Slurm job ended without success.
    #[error("Slurm job {job} {state}{detail}")]
    JobFailed {
        job: u64,
        /// Slurm's spelling: FAILED, TIMEOUT, OUT_OF_MEMORY, CANCELLED, NODE_FAIL…
        state: String,
        /// Exit code or signal, Slurm's reason, and where the job's output is.
        detail: String,
    },
    /// The job completed but its run record is nowhere to be found.
    #[error(
        "Slurm job {job} COMPLETED but left no run record for fingerprint {fingerprint}{where_}"
    )]
    NoRecord {
        job: u64,
        fingerprint: Fingerprint,
        /// `; job output: …` or ` on <remote>`.
        where_: String,
    },
    /// A job without a shared folder cannot move an input or an output through the remote
    /// store (or find the pipe executable to submit).
    #[error("{0}")]
    Transfer(String),
    /// `pipe __instance`: the pipeline has no such instance.
    #[error("no instance `{id}` in {}", file.display())]
    NoSuchInstance { id: String, file: PathBuf },
    /// `pipe __instance`: an upstream record the driver named (`--up`) is missing.
    #[error(
        "upstream `{upstream}` has no run record {} in {}",
        fingerprint.map(|f| f.to_string()).unwrap_or_else(|| "(no --up given)".into()),
        store.display()
    )]
    NoUpstreamRecord {
        upstream: String,
        fingerprint: Option<Fingerprint>,
        store: PathBuf,
    },
    /// `pipe __instance`: the fingerprint differs from the one submitted.
    #[error(
        "the fingerprint is {here} here, not {submitted} as submitted (an input or parameter of \
         {} changed since); refusing to run",
        file.display()
    )]
    FingerprintChanged {
        here: Box<Fingerprint>,
        submitted: Box<Fingerprint>,
        file: PathBuf,
    },
}

/// Why a record's outputs could not be placed.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// An output is neither intact in the tree nor in the store: recompute.
    #[error("{0}: neither the working copy nor the stored copy is intact")]
    Unrestorable(String),
    /// A write or delete failed.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Why a finished run could not be committed.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error("cannot read the staged outputs: {0}")]
    ReadStaged(#[source] std::io::Error),
    #[error("the stage wrote `{0}` both as an output and as a measurement")]
    OutputAndMeasurement(String),
    #[error("declared output `{0}` is a symbolic link; outputs must be files or folders")]
    DeclaredLink(String),
    #[error("declared output `{0}` was not created by the stage")]
    DeclaredMissing(String),
    #[error(transparent)]
    Confined(#[from] FsError),
    #[error("cannot store {path}: {source}")]
    Store {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot place {path}: {source}")]
    Place {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the run record: {0}")]
    Record(#[source] std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_error_names_the_stage_the_cause_and_the_log() {
        let e = InstanceError::from(Failure {
            stage: "b".into(),
            log: "results/p/logs/b.log".into(),
            fingerprint: None,
            cause: Cause::InputMissing(vec!["data/x.txt".into()]),
        });
        assert_eq!(
            e.to_string(),
            "stage `b`: input data/x.txt does not exist; create it or produce it in an upstream \
             stage (log: results/p/logs/b.log)"
        );
        assert!(!e.is_interrupted() && !e.is_config());
        let i = InstanceError::from(Failure {
            cause: Cause::Interrupted(Signal::Term),
            ..e.into_failure()
        });
        assert!(i.is_interrupted());
        assert_eq!(i.cause.to_string(), "stopped by SIGTERM");
    }
}
