//! `pipe run`: plan, take the project lock, execute what changed, update `<pipeline>.lock`
//! and print a summary.

use super::PipelineArgs;
use crate::cache::project_lock::{LockError, ProjectLock};
use crate::error::{PipeError, Result};
use crate::plan::{self, State};
use crate::scheduler::{self, Outcome, RunOptions};
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    /// Stages run in parallel (default: the number of cores).
    #[arg(short = 'j', long = "jobs")]
    pub jobs: Option<usize>,
    /// Run only this stage (or instance id) and what it needs (repeatable).
    #[arg(long, value_name = "STAGE")]
    pub only: Vec<String>,
    /// Run this stage (or instance id) even when it is up to date (repeatable).
    #[arg(long, value_name = "STAGE")]
    pub force: Vec<String>,
    /// After a failure, keep running everything that does not depend on it.
    #[arg(long)]
    pub keep_going: bool,
    /// Print what would run and why, and run nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Fail (exit 1) if any stage would run: for CI.
    #[arg(long)]
    pub frozen: bool,
    /// Exit at once when another `pipe` holds the project lock, instead of waiting.
    #[arg(long)]
    pub no_wait: bool,
    /// A mirror folder for downloads, prepended to PIPE_MIRROR (repeatable).
    #[arg(long, value_name = "DIR")]
    pub mirror: Vec<PathBuf>,
}

/// Instances matching a stage name or an instance id.
fn matching(proj: &plan::Project, name: &str, flag: &str) -> Result<Vec<usize>> {
    let v: Vec<usize> = proj
        .pipeline
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| n.stage == name || n.id == name)
        .map(|(i, _)| i)
        .collect();
    if v.is_empty() {
        let names: Vec<String> = proj.pipeline.stages.clone();
        return Err(PipeError::Config(format!(
            "{flag} {name}: no stage or instance `{name}` in {}; {}",
            proj.pipeline.file.display(),
            crate::config::nearest(name, &names)
        )));
    }
    Ok(v)
}

pub fn run(args: RunArgs) -> Result<i32> {
    let t0 = Instant::now();
    if !args.mirror.is_empty() {
        let mut parts: Vec<String> = args
            .mirror
            .iter()
            .map(|m| std::fs::canonicalize(m).unwrap_or_else(|_| m.clone()))
            .map(|m| m.display().to_string())
            .collect();
        if let Ok(old) = std::env::var("PIPE_MIRROR") {
            if !old.is_empty() {
                parts.push(old);
            }
        }
        // Set before any thread starts.
        std::env::set_var("PIPE_MIRROR", parts.join(":"));
    }
    let mut proj = args.pipeline.load()?;
    let nn = proj.pipeline.nodes.len();
    let selected = if args.only.is_empty() {
        vec![true; nn]
    } else {
        let mut roots = Vec::new();
        for o in &args.only {
            roots.extend(matching(&proj, o, "--only")?);
        }
        proj.dag.with_ancestors(&roots)
    };
    let mut force = vec![false; nn];
    for f in &args.force {
        for i in matching(&proj, f, "--force")? {
            force[i] = true;
        }
    }
    let jobs = args.jobs.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    if jobs == 0 {
        return Err(PipeError::Config("-j 0: give at least one job".into()));
    }

    if args.dry_run {
        let plans = plan::plan(&proj, &selected, &force, false);
        print!("{}", super::status::render(&proj, &plans, false));
        return Ok(0);
    }

    // The project lock; then re-read the lock file (another run may have just finished).
    let _lock = match ProjectLock::acquire(&proj.cache.dir, !args.no_wait, |pid| {
        eprintln!(
            "waiting for the project lock held by {}",
            pid.map(|p| format!("pid {p}"))
                .unwrap_or_else(|| "another process".into())
        )
    }) {
        Ok(l) => l,
        Err(LockError::Busy(pid)) => {
            return Err(PipeError::Failed(format!(
            "another `pipe` ({}) holds the project lock {}; wait for it or run without --no-wait",
            pid.map(|p| format!("pid {p}"))
                .unwrap_or_else(|| "unknown pid".into()),
            proj.cache.dir.join("lock").display()
        )))
        }
        Err(LockError::Io(e)) => {
            return Err(PipeError::Failed(format!(
                "cannot take the project lock in {}: {e}",
                proj.cache.dir.display()
            )))
        }
    };
    proj.lock = crate::cache::lockfile::LockFile::read(&proj.pipeline.lock_path());
    // Leftovers of killed runs.
    let _ = std::fs::remove_dir_all(proj.cache.tmp_dir());

    let plans = plan::plan(&proj, &selected, &force, false);
    if args.frozen {
        let stale: Vec<String> = proj
            .dag
            .order
            .iter()
            .filter_map(|&i| {
                plans[i]
                    .as_ref()
                    .filter(|pl| pl.state == State::WillRun)
                    .map(|pl| format!("{} ({})", proj.pipeline.nodes[i].id, pl.reasons.join("; ")))
            })
            .collect();
        if !stale.is_empty() {
            proj.stats.save();
            return Err(PipeError::Failed(format!(
                "--frozen: {} stage(s) would run: {}; run `pipe run {}` and commit its lock file",
                stale.len(),
                stale.join(", "),
                proj.pipeline.file.display()
            )));
        }
    }

    let opts = RunOptions {
        jobs,
        keep_going: args.keep_going,
        force,
        selected,
        echo: true,
    };
    let (outcomes, records) = scheduler::execute(&proj, &plans, &opts);
    proj.stats.save();

    // The lock file: current stages only, fresh entries for what completed.
    let p = &proj.pipeline;
    let mut lock = crate::cache::lockfile::LockFile {
        pipeline: p.name.clone(),
        stages: Default::default(),
    };
    for (i, n) in p.nodes.iter().enumerate() {
        match &records[i] {
            Some(rec) => {
                lock.stages.insert(n.id.clone(), proj.lock_entry(n, rec));
            }
            None => {
                if let Some(e) = proj.lock.stages.get(&n.id) {
                    lock.stages.insert(n.id.clone(), e.clone());
                }
            }
        }
    }
    if let Err(e) = lock.write(&p.lock_path()) {
        eprintln!("warning: cannot write {}: {e}", p.lock_path().display());
    }

    let (mut ran, mut restored, mut fresh) = (0, 0, 0);
    let mut failures = Vec::new();
    let mut skipped = Vec::new();
    for (i, o) in outcomes.iter().enumerate() {
        match o {
            Some(Outcome::Ran(_)) => ran += 1,
            Some(Outcome::Restored) => restored += 1,
            Some(Outcome::UpToDate) => fresh += 1,
            Some(Outcome::Failed { msg, log }) => {
                failures.push((p.nodes[i].id.clone(), msg.clone(), log.clone()))
            }
            Some(Outcome::Skipped(_)) => skipped.push(p.nodes[i].id.clone()),
            None => {}
        }
    }
    println!(
        "{}: {ran} ran, {restored} restored, {fresh} up to date{}{} in {:.2}s",
        p.name,
        if failures.is_empty() {
            String::new()
        } else {
            format!(", {} failed", failures.len())
        },
        if skipped.is_empty() {
            String::new()
        } else {
            format!(", {} skipped ({})", skipped.len(), skipped.join(", "))
        },
        t0.elapsed().as_secs_f64()
    );
    for (i, n) in p.nodes.iter().enumerate() {
        if n.kind_name == "report" && records[i].is_some() {
            println!(
                "report: {}",
                proj.results_dir(n).join("index.html").display()
            );
        }
    }
    if let Some((id, msg, log)) = failures.into_iter().next() {
        return Err(PipeError::StageFailed {
            stage: id,
            msg,
            log,
        });
    }
    Ok(0)
}
