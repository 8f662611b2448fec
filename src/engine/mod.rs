//! The engine: one call runs a pipeline. [`run`] loads the project, takes the project lock,
//! plans (pulling from the remote first with `--pull`), runs the plan through the run loop
//! ([`drain`]) and its executors, writes the lock file (never with overrides), removes what the
//! pipeline no longer has, pushes with `--push`, and returns a [`RunSummary`]. The command line
//! only parses, calls and prints.

mod display;
mod drain;
mod lock;
mod pull;
mod select;
mod slot;
mod summary;
mod sweep;

pub use select::Selection;
pub use summary::{Failure, Interruption, LockUpdate, Outcome, RunSummary, StageSummary};
pub use sweep::check_own_folders;

use crate::cache::project_lock::{LockError, ProjectLock};
use crate::cache::Cache;
use crate::config::{ExecutorKind, Overrides};
use crate::error::{FrozenError, PipeError, ProjectLockError, Result, UsageError};
use crate::executor::{Choice, Local};
use crate::interrupt::Markers;
use crate::plan::{self, PlanInput, Planned, State};
use crate::project::Project;
use crate::remote::Remote;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// How to run a pipeline.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// `--set`, `--params` and the `PIPE_<STAGE>__<KEY>` environment.
    pub overrides: Overrides,
    /// Mirror folders for downloads (absolute).
    pub mirrors: Vec<PathBuf>,
    /// Instances at once (None: the number of cores).
    pub jobs: Option<usize>,
    /// `--only`: these stages or instances and what they need.
    pub only: Vec<String>,
    /// `--force`: run these even when up to date.
    pub force: Vec<String>,
    pub keep_going: bool,
    /// Fail if anything would compute.
    pub frozen: bool,
    /// Wait for the project lock (false: `--no-wait`).
    pub wait: bool,
    /// Re-hash every output and store object first, then repair.
    pub verify: bool,
    pub pull: bool,
    pub push: bool,
    /// `--remote`.
    pub remote: Option<String>,
    /// `--executor`.
    pub executor: Option<ExecutorKind>,
    /// Echo stage log lines to the terminal.
    pub echo: bool,
}

impl RunOptions {
    fn jobs(&self) -> Result<usize> {
        match self.jobs {
            Some(0) => Err(UsageError::NoJobs.into()),
            Some(j) => Ok(j),
            None => Ok(std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)),
        }
    }
}

/// Loads a project for a run: the pipeline with the run's overrides, and its mirrors.
fn load(root: &Path, file: &Path, opts: &RunOptions) -> Result<Project> {
    let mut proj = Project::load(root, file, &opts.overrides)?;
    proj.mirrors = opts.mirrors.clone();
    Ok(proj)
}

/// What `run --dry-run` shows: the project and the plan, nothing taken or written.
pub fn dry_run(
    root: &Path,
    file: &Path,
    opts: &RunOptions,
) -> Result<(Project, Vec<Option<Planned>>)> {
    let mut proj = load(root, file, opts)?;
    // An invalid record is reported, not quarantined: a dry run moves nothing.
    proj.cache.set_read_only();
    let sel = Selection::resolve(&proj, &opts.only, &opts.force)?;
    let markers = Markers::load(proj.cache.dir());
    let plans = plan::plan(&proj, &input(&sel, opts.verify, &markers));
    Ok((proj, plans))
}

fn input<'a>(sel: &'a Selection, rehash: bool, markers: &'a Markers) -> PlanInput<'a> {
    PlanInput {
        selected: &sel.selected,
        force: &sel.force,
        rehash,
        markers,
    }
}

/// Runs pipeline `file` of the project at `root`.
pub fn run(root: &Path, file: &Path, opts: &RunOptions) -> Result<RunSummary> {
    let t0 = Instant::now();
    let jobs = opts.jobs()?;
    let mut proj = load(root, file, opts)?;
    let sel = Selection::resolve(&proj, &opts.only, &opts.force)?;
    let compute = crate::executor::select(
        &proj,
        &Choice {
            cli: opts.executor,
            overrides: &opts.overrides,
            remote: opts.remote.as_deref(),
        },
    )?;
    crate::interrupt::install().map_err(|source| PipeError::Io {
        what: "cannot install the signal handlers".into(),
        source,
    })?;
    sweep::check_own_folders(&proj)?;
    // Taking the lock also sweeps what killed runs left (`cache::tmp::sweep`).
    let _lock = lock_project(&proj.cache, opts.wait)?;
    proj.reload_lock()?;
    let remote = if opts.pull || opts.push {
        let url = crate::remote::select::remote_url(
            opts.remote.as_deref(),
            proj.pipeline.settings.remote.as_deref(),
            &proj.pipeline.root.join(&proj.pipeline.file),
        )?;
        Some(Remote::open(&url, &proj.pipeline.root)?)
    } else {
        None
    };
    let markers = Markers::load(proj.cache.dir());
    let input = input(&sel, opts.verify, &markers);
    let plans = match (&remote, opts.pull) {
        (Some(r), true) => pull::pull_and_plan(&proj, r, &input)?,
        _ => plan::plan(&proj, &input),
    };
    if opts.frozen {
        frozen(&proj, &plans)?;
    }
    let loop_opts = drain::LoopOptions {
        jobs,
        keep_going: opts.keep_going,
        echo: opts.echo,
    };
    let drained = drain::drain(
        &proj,
        &plans,
        &sel,
        &markers,
        &loop_opts,
        [&Local, &*compute],
    );
    let overrides = opts.overrides.applied(&proj.pipeline.stages);
    let lock = lock::assemble(&proj, &drained.records);
    let lock_update = lock::update(&proj, &lock, &overrides);
    sweep::removed_instances(&proj);
    sweep::stray_checkpoints(&proj, &drained.records);
    proj.stats.save();
    if let (true, Some(r)) = (opts.push, &remote) {
        push(&proj, &lock, r)?;
    }
    Ok(summarise(&proj, drained, overrides, lock_update, t0))
}

/// Takes the project lock of `cache` (refusing links in its folders), waiting for it (saying so once) unless `wait` is
/// false: every command that writes the store holds it.
pub fn lock_project(cache: &Cache, wait: bool) -> Result<ProjectLock> {
    let dir = cache.dir();
    ProjectLock::acquire(cache, wait, |pid| {
        eprintln!(
            "waiting for the project lock held by {}",
            pid.map(|p| format!("pid {p}"))
                .unwrap_or_else(|| "another process".into())
        )
    })
    .map_err(|e| {
        PipeError::ProjectLock(match e {
            LockError::Busy(pid) => ProjectLockError::Busy {
                pid,
                path: crate::layout::CacheLayout::at(dir).lock(),
            },
            LockError::Io(source) => ProjectLockError::Io {
                path: dir.to_path_buf(),
                source,
            },
        })
    })
}

/// `--frozen`: an error naming every instance that would compute and why.
fn frozen(proj: &Project, plans: &[Option<Planned>]) -> Result<()> {
    let stale: Vec<(String, String)> = proj
        .dag
        .order
        .iter()
        .filter_map(|&i| {
            let pl = plans[i].as_ref().filter(|pl| pl.state == State::Run)?;
            Some((
                proj.pipeline.nodes[i].id.clone(),
                crate::plan::reason::join(&pl.reasons),
            ))
        })
        .collect();
    if stale.is_empty() {
        return Ok(());
    }
    proj.stats.save();
    let lock = proj.pipeline.lock_path();
    Err(FrozenError {
        stale,
        pipeline: proj.pipeline.file.clone(),
        lock: lock
            .strip_prefix(&proj.pipeline.root)
            .unwrap_or(&lock)
            .to_path_buf(),
    }
    .into())
}

/// `--push`: the runs of the lock file the run leaves (objects first, records last).
fn push(proj: &Project, lock: &crate::cache::lockfile::LockFile, r: &Remote) -> Result<()> {
    let fps = crate::remote::sync::lock_fingerprints(lock);
    let t = crate::remote::push(&proj.cache, &fps, r)?;
    eprintln!(
        "pushed {} runs and {} objects ({} bytes) to {}; {} runs and {} objects were there",
        t.records,
        t.objects,
        t.bytes,
        r.describe(),
        t.records_skipped,
        t.objects_skipped
    );
    Ok(())
}

/// The summary of a run from what the loop left.
fn summarise(
    proj: &Project,
    drained: drain::Drained,
    overrides: Vec<String>,
    lock: LockUpdate,
    t0: Instant,
) -> RunSummary {
    let p = &proj.pipeline;
    let mut stages = Vec::new();
    let mut stopped = None;
    for &i in &proj.dag.order {
        let Some(outcome) = drained.outcomes[i].clone() else {
            continue;
        };
        if let Outcome::Interrupted { log } = &outcome {
            stopped = Some((p.nodes[i].id.clone(), log.clone()));
        }
        stages.push(StageSummary {
            id: p.nodes[i].id.clone(),
            stage: p.nodes[i].stage.clone(),
            fingerprint: drained.records[i].as_ref().map(|r| r.fingerprint),
            outcome,
        });
    }
    let report = p
        .nodes
        .iter()
        .zip(&drained.records)
        .find(|(n, r)| n.kind_name == "report" && r.is_some())
        .map(|(n, _)| proj.results_dir(n).join("index.html"));
    let interrupted = crate::interrupt::requested().map(|sig| Interruption {
        signal: sig.name().to_string(),
        sig: Some(sig),
        stage: stopped.as_ref().map(|s| s.0.clone()),
        log: stopped.map(|s| s.1),
    });
    let mut s = RunSummary {
        pipeline: p.name.clone(),
        file: p.file.clone(),
        overrides,
        ran: 0,
        restored: 0,
        up_to_date: 0,
        failed: Vec::new(),
        skipped: Vec::new(),
        stages,
        report,
        lock,
        seconds: t0.elapsed().as_secs_f64(),
        interrupted,
    };
    s.tally();
    s
}

#[cfg(test)]
mod tests;
