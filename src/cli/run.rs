//! `pipe run`: parses the flags, calls `engine::run` (or plans only, with `--dry-run`) between
//! the two calls that record the experiment the run is (`-n NAME`), and prints the summary: one
//! line (or `--json`), the report's path, what happened to the lock file, and the error the run
//! ends with.

use super::PipelineArgs;
use crate::engine::{self, RunOptions, RunSummary};
use crate::error::Result;
use std::path::PathBuf;

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
    /// Overlay these experiments' curves in the report (`--compare base,top3`): sets
    /// `compare` of every `report` stage, as `--set <report>.compare=[…]` would.
    #[arg(long, value_name = "NAME,…", value_delimiter = ',')]
    pub compare: Vec<String>,
}

pub fn run(mut args: RunArgs) -> Result<i32> {
    let (root, file) = args.pipeline.resolve()?;
    if let Some(n) = &args.name {
        crate::experiment::check_name(n)?;
    }
    if !args.compare.is_empty() {
        let sets = super::exp_record::compare_sets(&args.pipeline, &args.compare)?;
        args.pipeline.set.extend(sets);
    }
    let opts = RunOptions {
        overrides: args.pipeline.overrides(),
        mirrors: super::mirrors::from_cli(&args.mirror),
        jobs: args.jobs,
        only: args.only,
        force: args.force,
        keep_going: args.keep_going,
        frozen: args.frozen,
        wait: !args.no_wait,
        verify: args.verify,
        pull: args.pull,
        push: args.push,
        remote: args.remote,
        executor: args.executor,
        echo: true,
    };
    if args.dry_run {
        let (proj, plans) = engine::dry_run(&root, &file, &opts)?;
        print!("{}", super::status::render(&proj, &plans, false));
        return Ok(0);
    }
    // The experiment this run is: recorded as running before, completed after. A run the
    // engine refuses before any stage runs (a bad pipeline, lock file, `--only`, a planted
    // link in pipe's own folders) records nothing: its checks come first.
    let proj = crate::project::Project::load(&root, &file, &opts.overrides)?;
    engine::Selection::resolve(&proj, &opts.only, &opts.force)?;
    engine::check_own_folders(&proj)?;
    let pipeline = proj.pipeline;
    let exp = super::exp_record::start(
        &pipeline,
        &args.pipeline.set,
        args.pipeline.params.as_deref(),
        args.name,
    );
    let summary = match engine::run(&root, &file, &opts) {
        Ok(s) => s,
        Err(e) => {
            super::exp_record::abandon(&pipeline, exp, &e);
            return Err(e);
        }
    };
    let name = super::exp_record::finish(&pipeline, exp, &summary);
    print(&summary, name.as_deref(), args.json);
    summary.status()?;
    Ok(0)
}

/// The summary on stdout: `--json` (with the experiment's name as `experiment`), or the one
/// line and the report's path; a lock file left alone is said on stderr.
fn print(s: &RunSummary, experiment: Option<&str>, json: bool) {
    if json {
        let mut v = serde_json::to_value(s).expect("a summary serialises");
        if let (Some(m), Some(e)) = (v.as_object_mut(), experiment) {
            m.insert("experiment".into(), e.into());
        }
        println!(
            "{}",
            serde_json::to_string_pretty(&v).expect("a summary serialises")
        );
    } else {
        println!("{}", s.line());
        if let Some(r) = &s.report {
            println!("report: {}", r.display());
        }
    }
    if let Some(why) = s.lock.reason.as_ref().filter(|_| !s.lock.written) {
        eprintln!("{} not updated: {why}", s.lock.path.display());
    }
}
