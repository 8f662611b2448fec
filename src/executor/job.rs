//! Running one instance inside a Slurm job (`pipe __instance`), wherever the project came from
//! (the shared folder, or a scratch folder rebuilt from a manifest): read the upstream records
//! the driver named, recompute the fingerprint and refuse to run when it differs from the one
//! submitted, then run and commit the instance as a local run would. The driver holds the
//! project lock, so the job does not take it.

use crate::cache::RunRecord;
use crate::digest::Fingerprint;
use crate::error::{PipeError, Result};
use crate::instance::staging::Staging;
use crate::instance::{Cause, InstanceError, Job};
use crate::project::Project;
use std::collections::BTreeMap;
use std::path::PathBuf;

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
    let file = &proj.pipeline.file;
    let Some(i) = proj.index_of(id) else {
        return Err(InstanceError::from(crate::instance::Failure {
            stage: id.to_string(),
            log: PathBuf::new(),
            fingerprint: None,
            cause: Cause::NoSuchInstance {
                id: id.to_string(),
                file: file.clone(),
            },
        })
        .into());
    };
    let n = &proj.pipeline.nodes[i];
    let info = n.kind.info();
    let probe = Job {
        index: i,
        ups: &[],
        forced,
        echo: false,
        threads: 1,
    };
    let mut recs = Vec::new();
    for u in proj.dag.fingerprint_upstream(i, info.reads_measurements) {
        let un = &proj.pipeline.nodes[u];
        let fp = ups.get(&un.id);
        let rec = fp.and_then(|fp| proj.cache.record(fp)).ok_or_else(|| {
            probe.error(
                proj,
                Cause::NoUpstreamRecord {
                    upstream: un.id.clone(),
                    fingerprint: fp.copied(),
                    store: proj.cache.dir().to_path_buf(),
                },
            )
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
    let fp = crate::instance::fingerprint(proj, &job)?;
    if fp != *submitted {
        return Err(job
            .error(
                proj,
                Cause::FingerprintChanged {
                    here: Box::new(fp),
                    submitted: Box::new(*submitted),
                    file: file.clone(),
                },
            )
            .into());
    }
    let tag = std::env::var("SLURM_JOB_ID").unwrap_or_else(|_| std::process::id().to_string());
    // Not under cache/tmp: a restarted driver sweeps that folder while this job may still run.
    let staging = Staging::new(
        proj.pipeline.root.clone(),
        proj.cache.layout().jobs().join(tag),
    );
    let r = crate::instance::run(proj, &job, &staging);
    proj.stats.save();
    match r {
        Ok(c) => {
            eprintln!("{}: {:?}, record {}", n.id, c.done, c.record.fingerprint);
            Ok(JobEnd::Done(Box::new(c.record)))
        }
        Err(e) if e.is_interrupted() => {
            eprintln!("{}: interrupted (log: {})", n.id, e.log.display());
            Ok(JobEnd::Interrupted(
                crate::interrupt::requested()
                    .map(crate::interrupt::exit_code)
                    .unwrap_or(1),
            ))
        }
        Err(e) => Err(PipeError::from(e)),
    }
}
