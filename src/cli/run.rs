//! `pipe run`: parses the flags, calls `engine::run` (or plans only, with `--dry-run`) and
//! prints the summary: one line (or `--json`), the report's path, what happened to the lock
//! file, and the error the run ends with.

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
}

pub fn run(args: RunArgs) -> Result<i32> {
    let (root, file) = args.pipeline.resolve()?;
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
    let summary = engine::run(&root, &file, &opts)?;
    print(&summary, args.json);
    summary.status()?;
    Ok(0)
}

/// The summary on stdout: `--json`, or the one line and the report's path; a lock file left
/// alone is said on stderr.
fn print(s: &RunSummary, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(s).expect("a summary serialises")
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
