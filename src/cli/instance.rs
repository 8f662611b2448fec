//! `pipe __instance` (hidden): runs one instance inside a Slurm job. The driver holds the
//! project lock, so this does not take it; it reads the upstream records the driver names
//! (`--up ID=FP`), recomputes the instance's fingerprint and refuses to run (exit 2) when it
//! differs from the one submitted, then runs and commits the instance as a local run would.

use super::PipelineArgs;
use crate::error::{PipeError, Result};
use crate::instance::staging::Staging;
use crate::instance::{Job, Outcome};

#[derive(clap::Args)]
pub struct InstanceArgs {
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    /// The instance id.
    #[arg(long)]
    pub id: String,
    /// The fingerprint the driver submitted.
    #[arg(long)]
    pub fingerprint: String,
    /// The record of an upstream the fingerprint reads: `ID=FINGERPRINT` (repeatable).
    #[arg(long = "up", value_name = "ID=FP")]
    pub up: Vec<String>,
    /// Run even if a record of the fingerprint exists (`pipe run --force`).
    #[arg(long)]
    pub forced: bool,
    /// A mirror folder for downloads (repeatable; the driver's, absolute).
    #[arg(long, value_name = "DIR")]
    pub mirror: Vec<std::path::PathBuf>,
}

pub fn run(args: InstanceArgs) -> Result<i32> {
    let mut proj = args.pipeline.load()?;
    proj.mirrors = super::mirrors::from_cli(&args.mirror);
    let file = proj.pipeline.file.display().to_string();
    let i = proj
        .pipeline
        .nodes
        .iter()
        .position(|n| n.id == args.id)
        .ok_or_else(|| {
            PipeError::Config(format!("__instance: no instance `{}` in {file}", args.id))
        })?;
    let n = &proj.pipeline.nodes[i];
    let info = n.kind.info();
    let given: std::collections::BTreeMap<&str, &str> =
        args.up.iter().filter_map(|s| s.rsplit_once('=')).collect();
    let mut ups = Vec::new();
    for u in proj.dag.fingerprint_upstream(i, info.reads_measurements) {
        let un = &proj.pipeline.nodes[u];
        let fp = given.get(un.id.as_str()).ok_or_else(|| {
            PipeError::Config(format!(
                "__instance {}: no --up record for upstream `{}` ({file})",
                n.id, un.id
            ))
        })?;
        let rec = proj.cache.record(fp).ok_or_else(|| {
            PipeError::Config(format!(
                "__instance {}: upstream `{}` has no run record {fp} in {}",
                n.id,
                un.id,
                proj.cache.dir.display()
            ))
        })?;
        ups.push((un.clone(), rec));
    }
    crate::interrupt::install()
        .map_err(|e| PipeError::Failed(format!("cannot install the signal handlers: {e}")))?;
    let threads = std::env::var("SLURM_CPUS_PER_TASK")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(1usize)
        .max(1);
    let job = Job {
        index: i,
        ups: &ups,
        forced: args.forced,
        echo: false,
        threads: if info.heavy { threads } else { 1 },
    };
    let fp = crate::instance::fingerprint(&proj, &job).map_err(|o| outcome_error(&n.id, o))?;
    if fp != args.fingerprint {
        return Err(PipeError::Config(format!(
            "__instance {}: the fingerprint is {fp} here, not {} as submitted (an input or \
             parameter of {file} changed since); refusing to run",
            n.id, args.fingerprint
        )));
    }
    let tag = std::env::var("SLURM_JOB_ID").unwrap_or_else(|_| std::process::id().to_string());
    // Not under cache/tmp: a restarted driver sweeps that folder while this job may still run.
    let staging = Staging::new(proj.cache.dir.join("jobs").join(tag));
    let r = crate::instance::run(&proj, &job, &staging);
    proj.stats.save();
    let _ = std::fs::remove_dir_all(&staging.base);
    match r {
        Ok((o, rec)) => {
            eprintln!("{}: {o:?}, record {}", n.id, rec.fingerprint);
            Ok(0)
        }
        Err(Outcome::Interrupted { log }) => {
            eprintln!("{}: interrupted (log: {})", n.id, log.display());
            Ok(crate::interrupt::requested()
                .map(crate::interrupt::exit_code)
                .unwrap_or(1))
        }
        Err(o) => Err(outcome_error(&n.id, o)),
    }
}

fn outcome_error(id: &str, o: Outcome) -> PipeError {
    match o {
        Outcome::Failed { msg, log } => PipeError::StageFailed {
            stage: id.to_string(),
            msg,
            log,
        },
        other => PipeError::Failed(format!("{id}: {other:?}")),
    }
}
