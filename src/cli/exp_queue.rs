//! `pipe exp run`: the queue. `--queue -n NAME --set …` records an experiment to run later;
//! `--run-all [-j N]` runs the queued experiments (of one pipeline when one is named), N at a
//! time. Each runs in a scratch copy of the project (`cache/experiments/.run/<pid>-<name>/`:
//! the project's files, a store of its own) as its own `pipe run -n NAME --pull --push`, with
//! the project's store as its remote folder: what the project already has is restored, what
//! it computes is pushed back. So nothing of one experiment reaches another's results, and the
//! workspace (`results/`, `checkpoints/`, lock files) is left as it was. Each experiment is
//! recorded in the project as soon as its run ends, so stopping `--run-all` (Ctrl-C, SIGTERM,
//! even `kill -9`) loses no finished experiment; the unfinished stay queued, and their scratch
//! copies are removed (by the supervisor when `pipe` itself is killed).

use super::exp::overrides_text;
use crate::error::{PipeError, Result};
use crate::experiment::{self, ExpError, Experiment, Status};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

#[derive(clap::Args, Debug)]
pub struct QueueArgs {
    #[command(flatten)]
    pub pipeline: super::PipelineArgs,
    /// Add the experiment to the queue instead of running it.
    #[arg(long, requires = "name", conflicts_with = "run_all")]
    pub queue: bool,
    /// The queued experiment's name.
    #[arg(short = 'n', long = "name", value_name = "NAME")]
    pub name: Option<String>,
    /// Run every queued experiment (of the pipeline when one is named).
    #[arg(long)]
    pub run_all: bool,
    /// Experiments run at once, each in its own scratch copy (default 1); inside each, stages
    /// run in parallel as in `pipe run`.
    #[arg(short = 'j', long = "jobs", requires = "run_all")]
    pub jobs: Option<usize>,
    /// Where each experiment's stages run (`pipe run --executor`).
    #[arg(long, value_enum, value_name = "KIND", requires = "run_all")]
    pub executor: Option<crate::executor::ExecutorKind>,
}

pub fn run(a: QueueArgs) -> Result<i32> {
    if a.queue {
        return enqueue(&a);
    }
    if !a.run_all {
        return Err(PipeError::usage(
            "pipe exp run: give --queue -n NAME (with --set/--params) or --run-all",
        ));
    }
    run_all(&a)
}

/// `--queue`: the overrides checked against the pipeline now, recorded as a queued experiment.
fn enqueue(a: &QueueArgs) -> Result<i32> {
    let proj = a.pipeline.load()?;
    let name = a.name.clone().expect("clap requires --name with --queue");
    experiment::check_name(&name)?;
    let mut given = super::exp_record::given(
        &proj.pipeline,
        &a.pipeline.set,
        a.pipeline.params.as_deref(),
    );
    given.env.clear();
    let e = Experiment {
        name: name.clone(),
        pipeline: proj.pipeline.name.clone(),
        file: proj.pipeline.file.display().to_string(),
        created: experiment::now(),
        commit: None,
        dirty: false,
        status: Status::Queued,
        pid: None,
        overrides: experiment::overrides::resolve(&given, &proj.pipeline.stages),
        given,
        instances: Vec::new(),
        named: true,
    };
    experiment::save(&proj.pipeline.root, &e)?;
    println!("queued experiment {name}: {}", overrides_text(&e));
    Ok(0)
}

/// What every experiment of one `--run-all` shares.
struct Ctx {
    root: PathBuf,
    /// The project's store (`cache/`): the remote folder of every experiment's run.
    store: PathBuf,
    /// The project's git state when the run started (the scratch copies have no `.git`).
    git: (Option<String>, bool),
    mirrors: Vec<PathBuf>,
    executor: Option<crate::executor::ExecutorKind>,
    /// More than one experiment at a time: their output lines are prefixed with their names.
    prefix: bool,
}

/// How one queued experiment's run ended.
enum Ended {
    /// Recorded in the project with this status.
    Recorded(Status),
    /// Its run recorded nothing (it stopped before any stage could run): still queued.
    Unrecorded,
    /// Stopped by a signal: still queued.
    Stopped,
}

fn run_all(a: &QueueArgs) -> Result<i32> {
    let jobs = a.jobs.unwrap_or(1);
    if jobs == 0 {
        return Err(PipeError::usage(
            "pipe exp run --run-all -j 0: run at least 1",
        ));
    }
    let root = super::project::project_root()?;
    let only = match &a.pipeline.pipeline {
        Some(p) => Some(super::project::locate(Some(p))?.1.display().to_string()),
        None => None,
    };
    let run_dir = crate::layout::Layout::new(&root).cache().experiment_runs();
    // One `--run-all` at a time (a second one waits, then finds what is left in the queue).
    crate::cache::fsafe::create_dir_all(&root, &run_dir)
        .map_err(|e| PipeError::io("cannot create", &run_dir, e.into()))?;
    let _lock = crate::cache::project_lock::FileLock::acquire(&run_dir.join("lock"), true, |pid| {
        eprintln!(
            "waiting for the `pipe exp run --run-all` of {} to finish",
            pid.map(|p| format!("pid {p}"))
                .unwrap_or_else(|| "another process".into())
        )
    })
    .map_err(|e| match e {
        crate::cache::project_lock::LockError::Io(source) => {
            PipeError::io("cannot take the queue's lock in", &run_dir, source)
        }
        crate::cache::project_lock::LockError::Busy(_) => unreachable!("waited for"),
    })?;
    sweep_dead(&run_dir);
    let (all, _) = experiment::load_all(&root);
    let queued: Vec<Experiment> = all
        .into_iter()
        .filter(|e| e.status == Status::Queued && only.as_ref().is_none_or(|f| &e.file == f))
        .collect();
    if queued.is_empty() {
        println!("no queued experiments");
        return Ok(0);
    }
    crate::interrupt::install().map_err(|source| PipeError::Io {
        what: "cannot install the signal handlers".into(),
        source,
    })?;
    let ctx = Ctx {
        git: experiment::git::state(&root),
        store: crate::layout::Layout::new(&root)
            .cache()
            .dir()
            .to_path_buf(),
        root,
        mirrors: super::mirrors::from_cli(&[]),
        executor: a.executor,
        prefix: jobs > 1 && queued.len() > 1,
    };
    let next = AtomicUsize::new(0);
    let ended: Mutex<Vec<(String, Result<Ended>)>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..jobs.min(queued.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= queued.len() || crate::interrupt::requested().is_some() {
                    break;
                }
                let e = &queued[i];
                eprintln!(
                    "== experiment {} ({}/{}): {}",
                    e.name,
                    i + 1,
                    queued.len(),
                    overrides_text(e)
                );
                let r = run_one(&ctx, e);
                ended
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((e.name.clone(), r));
            });
        }
    });
    summarise(
        &queued,
        ended.into_inner().unwrap_or_else(|p| p.into_inner()),
    )
}

/// The outcome of `--run-all`: the experiments recorded, and an error naming those that failed
/// (or the exit code of the signal that stopped it).
fn summarise(queued: &[Experiment], ended: Vec<(String, Result<Ended>)>) -> Result<i32> {
    let mut failed = Vec::new();
    let mut done = 0;
    for (name, r) in ended {
        match r {
            Ok(Ended::Recorded(Status::Done)) => done += 1,
            Ok(Ended::Recorded(_)) => failed.push(name),
            Ok(Ended::Unrecorded) => failed.push(format!("{name} (still queued)")),
            Ok(Ended::Stopped) => {}
            Err(e) => {
                eprintln!("experiment {name}: {e}");
                failed.push(format!("{name} (still queued)"));
            }
        }
    }
    if let Some(sig) = crate::interrupt::requested() {
        eprintln!(
            "stopped by {sig}: {done} experiment(s) finished and recorded; the unfinished stay \
             queued (`pipe exp run --run-all` runs them)"
        );
        return Ok(crate::interrupt::exit_code(sig));
    }
    if failed.is_empty() {
        println!("{} experiment(s) run: see `pipe exp show`", queued.len());
        Ok(0)
    } else {
        Err(ExpError::RunsFailed(failed).into())
    }
}

/// Runs one queued experiment in a scratch copy and records it in the project.
fn run_one(ctx: &Ctx, e: &Experiment) -> Result<Ended> {
    let mut marked = e.clone();
    marked.pid = Some(std::process::id());
    experiment::save(&ctx.root, &marked)?;
    let scratch = experiment::scratch_dir(&ctx.store, std::process::id(), &e.name);
    let ended = run_in_scratch(ctx, e, &scratch);
    let _ = std::fs::remove_dir_all(&scratch);
    if !matches!(ended, Ok(Ended::Recorded(_))) {
        // Back in the queue as it was (a copy recorded since is kept).
        if experiment::load(&ctx.root, &e.name).is_ok_and(|x| x == marked) {
            experiment::save(&ctx.root, e)?;
        }
    }
    ended
}

fn run_in_scratch(ctx: &Ctx, e: &Experiment, scratch: &Path) -> Result<Ended> {
    let _ = std::fs::remove_dir_all(scratch);
    std::fs::create_dir_all(scratch)
        .map_err(|err| PipeError::io("cannot create the scratch folder", scratch, err))?;
    crate::compare::scratch::copy_project(&ctx.root, scratch).map_err(PipeError::Compare)?;
    // Without the committed lock file, `--pull` restores only what this experiment needs (with
    // it, every run the lock names first).
    let lock = crate::layout::Layout::new(scratch).lock_file(Path::new(&e.file));
    if lock.starts_with(scratch) {
        let _ = std::fs::remove_file(&lock);
    }
    let cmd = command(ctx, e, scratch)?;
    let piped = || {
        if ctx.prefix {
            Stdio::piped()
        } else {
            Stdio::inherit()
        }
    };
    let io = crate::interrupt::GroupIo {
        stdout: piped(),
        stderr: piped(),
        cleanup: Some(scratch.to_path_buf()),
    };
    let start = |source| PipeError::Io {
        what: format!("cannot start the run of experiment {}", e.name),
        source,
    };
    let mut group = crate::interrupt::spawn_group(&cmd, io).map_err(start)?;
    let tag = format!("[{}] ", e.name);
    let out = group
        .child_mut()
        .stdout
        .take()
        .map(|o| forward(o, &tag, false));
    let err = group
        .child_mut()
        .stderr
        .take()
        .map(|o| forward(o, &tag, true));
    let status = group.wait().map_err(start)?;
    for t in [out, err].into_iter().flatten() {
        let _ = t.join();
    }
    let child = experiment::load(scratch, &e.name).ok();
    match child {
        Some(c) if matches!(c.status, Status::Done | Status::Failed) => {
            record(ctx, e, c).map(Ended::Recorded)
        }
        _ if crate::interrupt::requested().is_some() => Ok(Ended::Stopped),
        _ => {
            eprintln!(
                "experiment {}: its run ({status}) recorded nothing; it stays queued",
                e.name
            );
            Ok(Ended::Unrecorded)
        }
    }
}

/// `pipe run FILE -n NAME --pull --push --remote <project store> …` in `scratch`: the queued
/// overrides (`--set`, the `--params` file's recorded text, the `PIPE_<STAGE>__<KEY>`
/// variables in place of the caller's), the mirrors made absolute, the executor.
fn command(ctx: &Ctx, e: &Experiment, scratch: &Path) -> Result<Command> {
    let exe = std::env::current_exe().map_err(|source| PipeError::Io {
        what: "cannot find the pipe executable".into(),
        source,
    })?;
    let mut cmd = Command::new(exe);
    cmd.current_dir(scratch)
        .args([
            "run", &e.file, "-n", &e.name, "--pull", "--push", "--remote",
        ])
        .arg(&ctx.store);
    for s in &e.given.set {
        cmd.arg("--set").arg(s);
    }
    if let Some((_, text)) = &e.given.params_file {
        let p = scratch.join(".pipe-queued-params.yaml");
        std::fs::write(&p, text).map_err(|err| PipeError::io("cannot write", &p, err))?;
        cmd.arg("--params").arg(&p);
    }
    if let Some(k) = ctx.executor {
        cmd.arg("--executor").arg(format!("{k:?}").to_lowercase());
    }
    cmd.env_remove(crate::download::MIRROR_ENV);
    for m in &ctx.mirrors {
        cmd.arg("--mirror").arg(m);
    }
    for (k, _) in std::env::vars() {
        if (k.starts_with("PIPE_") && k.contains("__")) || k == "PIPE_REMOTE" {
            cmd.env_remove(k);
        }
    }
    cmd.envs(e.given.env.iter());
    Ok(cmd)
}

/// Copies each line of a child's output to ours, prefixed with `tag`.
fn forward<R: std::io::Read + Send + 'static>(
    r: R,
    tag: &str,
    to_stderr: bool,
) -> std::thread::JoinHandle<()> {
    let tag = tag.to_string();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            let text = format!("{tag}{line}\n");
            let _ = if to_stderr {
                std::io::stderr().lock().write_all(text.as_bytes())
            } else {
                std::io::stdout().lock().write_all(text.as_bytes())
            };
        }
    })
}

/// The queued experiment as its run recorded it in the scratch copy: the instances, status
/// and time of the run, the project's git state; the overrides as queued.
fn record(ctx: &Ctx, queued: &Experiment, ran: Experiment) -> Result<Status> {
    let e = Experiment {
        created: ran.created,
        commit: ctx.git.0.clone(),
        dirty: ctx.git.1,
        status: ran.status,
        pid: None,
        instances: ran.instances,
        ..queued.clone()
    };
    experiment::save(&ctx.root, &e)?;
    eprintln!(
        "experiment {}: {} (recorded)",
        e.name,
        if e.status == Status::Done {
            "done"
        } else {
            "failed"
        }
    );
    Ok(e.status)
}

/// Removes the scratch copies of `--run-all` processes that are gone (their supervisors
/// remove them; this catches what a crash of the machine left).
fn sweep_dead(run_dir: &Path) {
    let Ok(rd) = std::fs::read_dir(run_dir) else {
        return;
    };
    for d in rd.flatten() {
        let name = d.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !experiment::alive(pid) && d.file_type().is_ok_and(|t| t.is_dir()) {
            let _ = std::fs::remove_dir_all(d.path());
        }
    }
}
