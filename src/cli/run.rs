//! `pipe run`: plan, take the project lock, execute what changed, update `<pipeline>.lock`
//! and print a summary.

use super::PipelineArgs;
use crate::cache::project_lock::{LockError, ProjectLock};
use crate::digest::Fingerprint;
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
    /// Re-hash every materialised output and store object first (ignoring the stat cache),
    /// then repair what is corrupt or changed.
    #[arg(long)]
    pub verify: bool,
    /// Print a JSON summary (what ran, was restored, failed; the report path) on stdout.
    #[arg(long)]
    pub json: bool,
    /// Before computing anything, restore from the remote store whatever it has: the runs the
    /// lock file names, then any other run whose fingerprint the plan needs.
    #[arg(long)]
    pub pull: bool,
    /// After the run, upload the runs of the lock file (objects first, records last).
    #[arg(long)]
    pub push: bool,
    /// The remote store for --pull/--push (`s3://bucket/prefix` or a folder); default
    /// `PIPE_REMOTE`, then the pipeline's `remote:`.
    #[arg(long, value_name = "URL")]
    pub remote: Option<String>,
    /// Where stages that must compute run: `local` (this machine) or `slurm` (one batch job
    /// each; the project folder must be shared with the nodes). Default: the pipeline's
    /// `executor: { kind: … }`, else local.
    #[arg(long, value_enum, value_name = "KIND")]
    pub executor: Option<crate::executor::ExecutorKind>,
    /// A mirror folder for downloads, prepended to PIPE_MIRROR (repeatable).
    #[arg(long, value_name = "DIR")]
    pub mirror: Vec<PathBuf>,
    /// Name the experiment this run records (default: a generated `exp-…`); see `pipe exp`.
    #[arg(short = 'n', long = "name", value_name = "NAME")]
    pub name: Option<String>,
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
    if let Some(n) = &args.name {
        crate::experiment::check_name(n)?;
    }
    let mut proj = args.pipeline.load()?;
    proj.mirrors = super::mirrors::from_cli(&args.mirror);
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

    let executor = crate::executor::select(
        args.executor,
        &proj.pipeline.root,
        &proj.pipeline.file,
        &args.pipeline.set,
        args.pipeline.params.as_deref(),
        args.remote.as_deref(),
    )?;
    let interrupted = |id: &str| crate::interrupt::was_interrupted(proj.cache.dir(), id);
    if args.dry_run {
        let plans = plan::plan(&proj, &selected, &force, args.verify, &interrupted);
        print!("{}", super::status::render(&proj, &plans, false));
        return Ok(0);
    }
    crate::interrupt::install()
        .map_err(|e| PipeError::Failed(format!("cannot install the signal handlers: {e}")))?;
    check_own_folders(&proj)?;

    // The project lock; then re-read the lock file (another run may have just finished).
    let _lock = match ProjectLock::acquire(proj.cache.dir(), !args.no_wait, |pid| {
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
            proj.cache.layout().lock().display()
        )))
        }
        Err(LockError::Io(e)) => {
            return Err(PipeError::Failed(format!(
                "cannot take the project lock in {}: {e}",
                proj.cache.dir().display()
            )))
        }
    };
    proj.reload_lock()?;
    sweep_leftovers(&proj);

    let remote = if args.pull || args.push {
        let url = crate::remote::select::remote_url(
            args.remote.as_deref(),
            &proj.pipeline.root,
            &proj.pipeline.file,
        )?;
        Some(crate::remote::Remote::open(&url, &proj.pipeline.root)?)
    } else {
        None
    };
    let interrupted = |id: &str| crate::interrupt::was_interrupted(proj.cache.dir(), id);
    let mut plans = plan::plan(&proj, &selected, &force, args.verify, &interrupted);
    if let (true, Some(r)) = (args.pull, &remote) {
        plans = pull_what_the_plan_needs(&proj, r, &selected, &force, args.verify)?;
    }
    if args.frozen {
        let stale: Vec<String> = proj
            .dag
            .order
            .iter()
            .filter_map(|&i| {
                plans[i]
                    .as_ref()
                    .filter(|pl| pl.state == State::Run)
                    .map(|pl| {
                        format!(
                            "{} ({})",
                            proj.pipeline.nodes[i].id,
                            crate::plan::reason::join(&pl.reasons)
                        )
                    })
            })
            .collect();
        if !stale.is_empty() {
            proj.stats.save();
            return Err(PipeError::Failed(format!(
                "--frozen: {} stage(s) would compute: {}; run `pipe run {}` and commit {}",
                stale.len(),
                stale.join(", "),
                proj.pipeline.file.display(),
                proj.pipeline
                    .lock_path()
                    .strip_prefix(&proj.pipeline.root)
                    .unwrap_or(&proj.pipeline.lock_path())
                    .display()
            )));
        }
    }

    let opts = RunOptions {
        jobs,
        keep_going: args.keep_going,
        force,
        selected,
        echo: true,
        executor,
    };
    let exp = super::exp_record::start(
        &proj,
        &args.pipeline.set,
        args.pipeline.params.as_deref(),
        args.name.clone(),
        &plans,
    );
    let (outcomes, records) = scheduler::execute(&proj, &plans, &opts);
    proj.stats.save();
    super::exp_record::finish(&proj, exp, &plans, &outcomes, &records);

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

    remove_dropped_instances(&proj);
    if let (true, Some(r)) = (args.push, &remote) {
        let fps = crate::remote::sync::lock_fingerprints(&lock);
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
    }

    let (mut ran, mut restored, mut fresh) = (0, 0, 0);
    let mut failures = Vec::new();
    let mut skipped = Vec::new();
    let mut stopped = None;
    let mut summary: Vec<serde_json::Value> = Vec::new();
    for (i, o) in outcomes.iter().enumerate() {
        let id = p.nodes[i].id.clone();
        let state = match o {
            Some(Outcome::Ran(_)) => {
                ran += 1;
                "ran"
            }
            Some(Outcome::Restored) => {
                restored += 1;
                "restored"
            }
            Some(Outcome::UpToDate) => {
                fresh += 1;
                "up-to-date"
            }
            Some(Outcome::Failed { msg, log }) => {
                failures.push((id.clone(), msg.clone(), log.clone()));
                "failed"
            }
            Some(Outcome::Interrupted { log }) => {
                stopped = Some((id.clone(), log.clone()));
                "interrupted"
            }
            Some(Outcome::Skipped(_)) => {
                skipped.push(id.clone());
                "skipped"
            }
            None => continue,
        };
        summary.push(serde_json::json!({"id": id, "state": state}));
    }
    let report = p
        .nodes
        .iter()
        .enumerate()
        .find(|(i, n)| n.kind_name == "report" && records[*i].is_some())
        .map(|(_, n)| proj.results_dir(n).join("index.html"));
    let line = format!(
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
    if args.json {
        let j = serde_json::json!({
            "pipeline": p.name,
            "ran": ran, "restored": restored, "up_to_date": fresh,
            "failed": failures.iter().map(|f| serde_json::json!({"id": f.0, "message": f.1, "log": f.2})).collect::<Vec<_>>(),
            "skipped": skipped,
            "stages": summary,
            "report": report.as_ref().map(|r| r.display().to_string()),
        });
        println!("{}", serde_json::to_string_pretty(&j).expect("serialises"));
    } else {
        println!("{line}");
        if let Some(r) = &report {
            println!("report: {}", r.display());
        }
    }
    if let Some(sig) = crate::interrupt::requested() {
        let what = stopped
            .map(|(id, log)| format!("stage `{id}` was interrupted (log: {})", log.display()))
            .unwrap_or_else(|| "the run was interrupted between stages".into());
        eprintln!(
            "{what}; stopped by {sig}{}; rerun to continue",
            if sig == crate::interrupt::Signal::Int {
                " (Ctrl-C)"
            } else {
                ""
            }
        );
        return Ok(crate::interrupt::exit_code(sig));
    }
    if !failures.is_empty() {
        // Each error was printed once, on its `FAILED` line; the last line names the stages.
        return Err(PipeError::StagesFailed(
            failures.into_iter().map(|(id, _, log)| (id, log)).collect(),
        ));
    }
    Ok(0)
}

/// `run --pull`: downloads the runs the lock file names, then, as long as the plan finds a
/// fingerprint to compute that the remote has, that run too (each download verified by blake3).
/// Returns the plan after pulling.
fn pull_what_the_plan_needs(
    proj: &plan::Project,
    remote: &crate::remote::Remote,
    selected: &[bool],
    force: &[bool],
    rehash: bool,
) -> Result<Vec<Option<plan::Planned>>> {
    let interrupted = |id: &str| crate::interrupt::was_interrupted(proj.cache.dir(), id);
    let fps = crate::remote::sync::lock_fingerprints(&proj.lock);
    let mut total = crate::remote::pull(&proj.cache, &fps, remote)?;
    let mut tried: std::collections::BTreeSet<Fingerprint> = fps.into_iter().collect();
    loop {
        let plans = plan::plan(proj, selected, force, rehash, &interrupted);
        let want: Vec<Fingerprint> = plans
            .iter()
            .enumerate()
            .filter(|(i, _)| !force[*i])
            .filter_map(|(_, pl)| pl.as_ref())
            .filter(|pl| pl.state == State::Run)
            .filter_map(|pl| pl.fingerprint)
            .filter(|fp| tried.insert(*fp))
            .collect();
        if want.is_empty() {
            eprintln!(
                "pulled {} runs and {} objects ({} bytes) from {}{}",
                total.records,
                total.objects,
                total.bytes,
                remote.describe(),
                if total.corrupt.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; corrupt on the remote, not used: {}",
                        total.corrupt.join(", ")
                    )
                }
            );
            return Ok(plans);
        }
        let t = crate::remote::pull(&proj.cache, &want, remote)?;
        let got = t.records;
        total.records += t.records;
        total.objects += t.objects;
        total.bytes += t.bytes;
        total.corrupt.extend(t.corrupt);
        if got == 0 {
            // Nothing new on the remote: what is left computes.
            tried.extend(want);
        }
    }
}

/// Refuses to run when one of pipe's own folders is a symlink (pipe never writes through a
/// link it did not create).
fn check_own_folders(proj: &plan::Project) -> Result<()> {
    let root = &proj.pipeline.root;
    let dirs = proj.dirs();
    for d in [
        proj.cache.dir().to_path_buf(),
        dirs.results(),
        dirs.checkpoints(),
    ] {
        crate::cache::fsafe::check_dir(root, &d).map_err(|e| PipeError::Config(e.to_string()))?;
    }
    Ok(())
}

/// Removes what killed runs left: staging folders and temporary files of dead processes.
fn sweep_leftovers(proj: &plan::Project) {
    // Every run removes its staging folder (`cache/tmp/<pid>`) when it ends, so `cache/tmp`
    // holds something only after a killed run: only then are the store's folders searched for
    // its temporary files (a no-op run reads no more folders than it must).
    let leftover = std::fs::read_dir(proj.cache.layout().tmp())
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    if !leftover {
        return;
    }
    let _ = std::fs::remove_dir_all(proj.cache.layout().tmp());
    let mut dirs = vec![
        proj.cache.dir().to_path_buf(),
        proj.cache.layout().runs(),
        proj.pipeline
            .lock_path()
            .parent()
            .map(|p| p.to_path_buf())
            .unwrap_or_default(),
    ];
    if let Ok(rd) = std::fs::read_dir(proj.cache.layout().objects()) {
        dirs.extend(rd.flatten().map(|e| e.path()));
    }
    for d in dirs {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if crate::cache::is_stale_tmp(&name) && e.file_type().is_ok_and(|t| t.is_file()) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// Removes the results and checkpoint folders of instances no longer in the pipeline (a value
/// dropped from a matrix, a renamed stage), and says so.
fn remove_dropped_instances(proj: &plan::Project) {
    let p = &proj.pipeline;
    let root = &p.root;
    let ids: std::collections::BTreeSet<&str> = p.nodes.iter().map(|n| n.id.as_str()).collect();
    let ckpts: std::collections::BTreeSet<&str> =
        p.nodes.iter().map(|n| n.ckpt_name.as_str()).collect();
    let dirs = proj.dirs();
    for (dir, keep) in [(dirs.results(), &ids), (dirs.checkpoints(), &ckpts)] {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if path == dirs.logs() || keep.contains(name.as_str()) {
                continue;
            }
            if crate::cache::fsafe::remove(root, &path).is_ok() {
                eprintln!(
                    "removed {} (no longer in {})",
                    path.strip_prefix(root).unwrap_or(&path).display(),
                    p.file.display()
                );
            }
        }
    }
}
