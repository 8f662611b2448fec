//! Running one instance inside a Slurm job (`pipe __instance`), wherever the project came from
//! (the shared folder, or a scratch folder rebuilt from a manifest): read the upstream records
//! the driver named, recompute the fingerprint and refuse to run when it differs from the one
//! submitted, then run and commit the instance as a local run would. The driver holds the
//! project lock, so the job does not take it.

use crate::cache::RunRecord;
use crate::digest::Fingerprint;
use crate::error::{PipeError, Result};
use crate::instance::staging::Staging;
use crate::instance::{Job, Outcome};
use crate::project::Project;
use std::collections::BTreeMap;

/// How a job's instance ended, when it did not fail.
pub enum JobEnd {
    /// Ran (or was already recorded): its record.
    Done(Box<RunRecord>),
    /// Stopped by a signal: the exit code to leave with.
    Interrupted(i32),
}

/// Runs instance `id` of a loaded project. `ups` maps each upstream id to the fingerprint of
/// the record the driver saw; `submitted` is the fingerprint the driver submitted. The signal
/// handlers must already be installed.
pub fn run_instance(
    proj: &Project,
    id: &str,
    submitted: &Fingerprint,
    ups: &BTreeMap<String, Fingerprint>,
    forced: bool,
) -> Result<JobEnd> {
    let file = proj.pipeline.file.display().to_string();
    let i = proj
        .pipeline
        .nodes
        .iter()
        .position(|n| n.id == id)
        .ok_or_else(|| PipeError::Config(format!("__instance: no instance `{id}` in {file}")))?;
    let n = &proj.pipeline.nodes[i];
    let info = n.kind.info();
    let mut recs = Vec::new();
    for u in proj.dag.fingerprint_upstream(i, info.reads_measurements) {
        let un = &proj.pipeline.nodes[u];
        let fp = ups.get(&un.id).ok_or_else(|| {
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
                proj.cache.dir().display()
            ))
        })?;
        recs.push((un.clone(), rec));
    }
    let threads = std::env::var("SLURM_CPUS_PER_TASK")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(1usize)
        .max(1);
    let job = Job {
        index: i,
        ups: &recs,
        forced,
        echo: false,
        threads: if info.heavy { threads } else { 1 },
    };
    let fp = crate::instance::fingerprint(proj, &job).map_err(|o| outcome_error(&n.id, o))?;
    if fp != *submitted {
        return Err(PipeError::Config(format!(
            "__instance {}: the fingerprint is {fp} here, not {submitted} as submitted (an input or \
             parameter of {file} changed since); refusing to run",
            n.id
        )));
    }
    let tag = std::env::var("SLURM_JOB_ID").unwrap_or_else(|_| std::process::id().to_string());
    // Not under cache/tmp: a restarted driver sweeps that folder while this job may still run.
    let staging = Staging::new(proj.cache.layout().jobs().join(tag));
    let r = crate::instance::run(proj, &job, &staging);
    proj.stats.save();
    let _ = std::fs::remove_dir_all(&staging.base);
    match r {
        Ok((o, rec)) => {
            eprintln!("{}: {o:?}, record {}", n.id, rec.fingerprint);
            Ok(JobEnd::Done(Box::new(rec)))
        }
        Err(Outcome::Interrupted { log }) => {
            eprintln!("{}: interrupted (log: {})", n.id, log.display());
            Ok(JobEnd::Interrupted(
                crate::interrupt::requested()
                    .map(crate::interrupt::exit_code)
                    .unwrap_or(1),
            ))
        }
        Err(o) => Err(outcome_error(&n.id, o)),
    }
}

/// An instance's failure as the error `pipe` exits with.
pub fn outcome_error(id: &str, o: Outcome) -> PipeError {
    match o {
        Outcome::Failed { msg, log } => PipeError::StageFailed {
            stage: id.to_string(),
            msg,
            log,
        },
        other => PipeError::Failed(format!("{id}: {other:?}")),
    }
}
