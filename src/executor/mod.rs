//! Where instances run. The engine hands every instance it starts to an [`Executor`]: [`Local`]
//! runs it in this process (restores, up-to-date checks and computations), [`slurm::Slurm`]
//! makes each instance that must compute one batch job. An executor takes several ready
//! instances at once ([`Executor::start`]), reports each one's end once ([`Finished`], per
//! instance and attempt), and tells the engine whether a failed attempt is worth another
//! ([`Executor::retry`]).

pub(crate) mod command;
pub(crate) mod detached;
pub(crate) mod job;
mod local;
pub(crate) mod scratch;
pub mod slurm;

pub use crate::config::ExecutorKind;
pub use local::Local;

use crate::cache::RunRecord;
use crate::config::{Node, Overrides};
use crate::error::{PipeError, Result};
use crate::instance::staging::Staging;
use crate::instance::{Completed, InstanceError, Job};
use crate::project::Project;
use std::sync::mpsc::Sender;
use std::thread::Scope;

/// One instance handed to an executor: its index, the upstream records its fingerprint reads,
/// and what the engine holds for it while it runs (the compute slot of a heavy kind).
pub struct Task<'a> {
    pub index: usize,
    /// Attempt number, from 1.
    pub attempt: u32,
    pub ups: Vec<(Node, RunRecord)>,
    pub forced: bool,
    pub echo: bool,
    pub threads: usize,
    /// Released (dropped) when the task ends, before its [`Finished`] is sent.
    pub hold: Option<Box<dyn Send + 'a>>,
}

impl Task<'_> {
    /// The instance as `instance::run` takes it.
    pub fn job(&self) -> Job<'_> {
        Job {
            index: self.index,
            ups: &self.ups,
            forced: self.forced,
            echo: self.echo,
            threads: self.threads,
        }
    }

    /// Ends the task: releases what it held and reports `result` once.
    pub fn finish(mut self, done: &Sender<Finished>, result: Attempt) {
        self.hold.take();
        let _ = done.send(Finished {
            index: self.index,
            attempt: self.attempt,
            result,
        });
    }
}

/// What one attempt of an instance came to.
pub type Attempt = std::result::Result<Completed, InstanceError>;

/// The end of one attempt of one instance.
pub struct Finished {
    pub index: usize,
    pub attempt: u32,
    pub result: Attempt,
}

/// What every task of a run shares.
pub struct Env<'a> {
    pub proj: &'a Project,
    pub staging: &'a Staging,
}

/// Where instances run.
pub trait Executor: Sync {
    /// `local` or `slurm`, for messages.
    fn name(&self) -> &'static str;

    /// True when instances it runs compute on this machine (heavy kinds then take the engine's
    /// compute slot and every core).
    fn on_this_machine(&self) -> bool;

    /// How many more instances it takes now, given how many of its tasks are running (the
    /// engine's `-j` bounds them all besides).
    fn capacity(&self, _running: usize) -> usize {
        usize::MAX
    }

    /// Starts `tasks` on threads of `scope`; each reports its end once on `done`
    /// ([`Task::finish`]).
    fn start<'scope, 'env>(
        &'env self,
        scope: &'scope Scope<'scope, 'env>,
        env: &'env Env<'env>,
        tasks: Vec<Task<'env>>,
        done: &Sender<Finished>,
    );

    /// Whether the engine gives a failed attempt another try (never, unless an executor says
    /// so; an interrupted one never).
    fn retry(&self, _error: &InstanceError, _attempt: u32) -> bool {
        false
    }
}

/// What the executor of a run is chosen from: `--executor`, the run's overrides (passed on to
/// each job) and `--remote` (jobs without a shared folder need a remote).
pub struct Choice<'a> {
    pub cli: Option<ExecutorKind>,
    pub overrides: &'a Overrides,
    pub remote: Option<&'a str>,
}

/// The executor for instances that must compute: `--executor` wins over the pipeline's
/// `executor:` block; the block's settings apply to Slurm either way.
pub fn select(proj: &Project, choice: &Choice) -> Result<Box<dyn Executor>> {
    let settings = &proj.pipeline.settings;
    let kind = choice
        .cli
        .or(settings.executor.kind)
        .unwrap_or(ExecutorKind::Local);
    if kind == ExecutorKind::Local {
        return Ok(Box::new(Local));
    }
    let file = proj.pipeline.root.join(&proj.pipeline.file);
    let remote = if settings.executor.shared_fs == Some(false) {
        let url =
            crate::remote::select::remote_url(choice.remote, settings.remote.as_deref(), &file)
                .map_err(|e| {
                    PipeError::config(format!(
                "{}: `executor.shared_fs: false` sends every job's inputs and outputs through a \
                 remote store, but {e}",
                file.display()
            ))
                })?;
        // Open it once here: a bad URL is a configuration error before anything is submitted;
        // a folder remote is passed to the jobs as an absolute path.
        let r = crate::remote::Remote::open(&url, &proj.pipeline.root)?;
        Some(match &r {
            crate::remote::Remote::Folder(f) => f.root().display().to_string(),
            crate::remote::Remote::S3(_) => url,
        })
    } else {
        None
    };
    Ok(Box::new(slurm::Slurm(slurm::SlurmConfig {
        run: command::RunArgs {
            pipeline: proj.pipeline.file.clone(),
            sets: choice.overrides.sets.clone(),
            params: choice.overrides.params_file.clone(),
        },
        partition: settings.executor.partition.clone(),
        account: settings.executor.account.clone(),
        extra: settings.executor.extra.clone(),
        remote,
    })))
}
