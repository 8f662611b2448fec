//! Executing one instance whose upstreams have completed: verify the upstream outputs it will
//! read, compute its fingerprint from their real hashes (early cutoff), then either nothing (up
//! to date), a restore from the store, or a run in staging folders → store → tree → run record
//! (last, by rename).

pub(crate) mod commit;
mod error;
pub(crate) mod restore;
pub(crate) mod staging;

pub use error::{Cause, CommitError, Failure, InstanceError, RestoreError};

use crate::cache::{fsafe, FingerprintKey, RunRecord};
use crate::config::Node;
use crate::digest::Fingerprint;
use crate::progress::Reporter;
use crate::project::Project;
use crate::stage::{StageCtx, Upstream};
use staging::{Slot, Staging};
use std::path::PathBuf;
use std::time::Instant;

/// How an instance completed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Done {
    /// Its outputs were in place: nothing to do.
    UpToDate,
    /// Its outputs were placed from the store; nothing was recomputed.
    Restored,
    /// It computed, taking this many seconds.
    Ran(f64),
}

/// A completed instance: how, and its run record.
#[derive(Debug, Clone)]
pub struct Completed {
    pub done: Done,
    pub record: RunRecord,
}

/// Everything `run` needs besides the project.
pub struct Job<'a> {
    pub index: usize,
    /// The records that enter the fingerprint: direct upstreams, or every ancestor for kinds
    /// that read measurements, in the DAG's canonical order (sorted by id).
    pub ups: &'a [(Node, RunRecord)],
    pub forced: bool,
    pub echo: bool,
    pub threads: usize,
}

impl Job<'_> {
    /// The instance's log, relative to the project root (what messages name).
    pub fn log_rel(&self, proj: &Project) -> PathBuf {
        let log = proj.log_path(&proj.pipeline.nodes[self.index]);
        log.strip_prefix(&proj.pipeline.root)
            .map(|p| p.to_path_buf())
            .unwrap_or(log)
    }

    /// An error of this instance.
    pub fn error(&self, proj: &Project, cause: impl Into<Cause>) -> InstanceError {
        InstanceError::from(Failure {
            stage: proj.pipeline.nodes[self.index].id.clone(),
            log: self.log_rel(proj),
            fingerprint: None,
            cause: cause.into(),
        })
    }
}

/// Makes sure the outputs of an upstream record are in place before a stage reads them
/// (cheap: the stat cache answers for unchanged files); restores them otherwise.
fn ensure_upstream(proj: &Project, u: &Node, rec: &RunRecord) -> Result<(), Cause> {
    if crate::plan::check::check(proj, u, rec, false)
        .reasons
        .is_empty()
    {
        return Ok(());
    }
    restore::restore(proj, u, rec).map_err(|e| match e {
        RestoreError::Unrestorable(path) => Cause::UpstreamUnrestorable {
            upstream: u.id.clone(),
            path,
        },
        source => Cause::UpstreamRestore {
            upstream: u.id.clone(),
            source,
        },
    })
}

/// Verifies (restoring if needed) the upstream outputs the instance reads and computes its
/// fingerprint key from their records.
fn prepare(proj: &Project, job: &Job) -> Result<FingerprintKey, InstanceError> {
    let n = &proj.pipeline.nodes[job.index];
    for (u, r) in job.ups {
        if n.needs.contains(&u.id) {
            ensure_upstream(proj, u, r).map_err(|c| job.error(proj, c))?;
        }
    }
    let upstream_hashes: Vec<(String, crate::digest::Blake3)> = job
        .ups
        .iter()
        .map(|(u, r)| (u.id.clone(), proj.seen_hash(u, r)))
        .collect();
    let up_recs: Vec<&RunRecord> = job.ups.iter().map(|(_, r)| r).collect();
    let (key, missing) = proj.key(n, upstream_hashes, &up_recs);
    if !missing.is_empty() {
        return Err(job.error(proj, Cause::InputMissing(missing)));
    }
    Ok(key)
}

/// The fingerprint an instance has now (its upstreams' outputs verified and restored first):
/// what a Slurm job is submitted for.
pub fn fingerprint(proj: &Project, job: &Job) -> Result<Fingerprint, InstanceError> {
    Ok(prepare(proj, job)?.fingerprint())
}

/// Runs (or restores) one instance.
pub fn run(proj: &Project, job: &Job, staging: &Staging) -> Result<Completed, InstanceError> {
    let tstart = Instant::now();
    let key = prepare(proj, job)?;
    let fp = key.fingerprint();
    // Early cutoff: a record for the real fingerprint is restored, never recomputed.
    if !job.forced {
        if let Some(done) = recorded(proj, job, &fp)? {
            return Ok(done);
        }
    }
    let slot = staging
        .take()
        .map_err(|e| job.error(proj, Cause::Staging(e)))?;
    compute(proj, job, key, &fp, &slot, tstart).map_err(|c| job.error(proj, c).with_fingerprint(fp))
}

/// The record of `fp`, if there is one, its outputs checked and restored where needed (None:
/// there is no record, or its outputs cannot be restored and it must recompute).
fn recorded(
    proj: &Project,
    job: &Job,
    fp: &Fingerprint,
) -> Result<Option<Completed>, InstanceError> {
    let n = &proj.pipeline.nodes[job.index];
    let Some(record) = proj.cache.record(fp) else {
        return Ok(None);
    };
    if crate::plan::check::check(proj, n, &record, false)
        .reasons
        .is_empty()
    {
        return Ok(Some(Completed {
            done: Done::UpToDate,
            record,
        }));
    }
    match restore::restore(proj, n, &record) {
        Ok(()) => {
            restore::restore_log(proj, n, &record);
            Ok(Some(Completed {
                done: Done::Restored,
                record,
            }))
        }
        Err(RestoreError::Unrestorable(_)) => Ok(None), // recompute
        Err(e) => Err(job.error(proj, e)),
    }
}

/// Clears the declared outputs and the log, then creates the log's reporter.
fn fresh_log(proj: &Project, job: &Job, declared: &[PathBuf]) -> Result<Reporter, Cause> {
    let n = &proj.pipeline.nodes[job.index];
    let root = &proj.pipeline.root;
    for d in declared {
        fsafe::remove(root, &root.join(d)).map_err(|source| Cause::ClearOutput {
            path: d.clone(),
            source,
        })?;
    }
    let log = proj.log_path(n);
    let log_parent = log.parent().unwrap_or(root);
    fsafe::create_dir_all(root, log_parent)
        .and_then(|_| fsafe::remove(root, &log))
        .map_err(|e| Cause::Log(e.into()))?;
    Reporter::new(&n.id, Some(&log), job.echo).map_err(Cause::Log)
}

/// What the stage sees of its upstreams: the direct ones (those in `needs`) and, for kinds
/// that read measurements, every ancestor; both in the DAG's canonical order.
fn upstreams(proj: &Project, job: &Job) -> (Vec<Upstream>, Vec<Upstream>) {
    let n = &proj.pipeline.nodes[job.index];
    let to_upstream = |(u, r): &(Node, RunRecord)| Upstream {
        id: u.id.clone(),
        stage: u.stage.clone(),
        kind: u.kind_name.clone(),
        results: proj.results_dir(u),
        checkpoints: proj.ckpt_dir(u),
        params: u.params.clone(),
        fingerprint: r.fingerprint.to_string(),
        duration_s: Some(r.duration_s),
    };
    let direct = job
        .ups
        .iter()
        .filter(|(u, _)| n.needs.contains(&u.id))
        .map(to_upstream)
        .collect();
    let ancestors = if n.kind.info().reads_measurements {
        job.ups.iter().map(to_upstream).collect()
    } else {
        Vec::new()
    };
    (direct, ancestors)
}

/// Runs the stage kind in staging folders and commits its outputs.
fn compute(
    proj: &Project,
    job: &Job,
    key: FingerprintKey,
    fp: &Fingerprint,
    slot: &Slot,
    tstart: Instant,
) -> Result<Completed, Cause> {
    let n = &proj.pipeline.nodes[job.index];
    let root = &proj.pipeline.root;
    let declared = n.kind.declared_outputs(&n.params);
    let reporter = fresh_log(proj, job, &declared)?;
    let (upstream, ancestors) = upstreams(proj, job);
    let ctx = StageCtx {
        pipeline: proj.pipeline.name.clone(),
        id: n.id.clone(),
        stage: n.stage.clone(),
        kind: n.kind_name.clone(),
        pipeline_seed: proj.pipeline.seed,
        params: n.params.clone(),
        upstream,
        ancestors,
        fingerprint: fp.to_string(),
        out_dir: slot.out(),
        ckpt_dir: slot.ckpt(),
        meas_dir: slot.meas(),
        root: root.clone(),
        cache_dir: proj.cache.dir().to_path_buf(),
        threads: job.threads,
        mirrors: proj.mirrors.clone(),
        reporter: reporter.clone(),
    };
    let t0 = Instant::now();
    let r = run_kind(proj, n, fp, &ctx);
    let duration = t0.elapsed().as_secs_f64();
    if let Err(cause) = r {
        if let Cause::Interrupted(sig) = cause {
            reporter.log(format!("stopped by {sig}"));
        } else {
            // On the terminal the engine's `FAILED` line says it: the log alone gets it here.
            reporter.log_file_only(format!("error: {cause}"));
        }
        return Err(cause);
    }
    let tc = Instant::now();
    let dirs = commit::Staged {
        out: &ctx.out_dir,
        ckpt: &ctx.ckpt_dir,
        meas: &ctx.meas_dir,
        declared: &declared,
        log: &proj.log_path(n),
    };
    reporter.log(format!("done in {duration:.2}s"));
    let result = commit::commit(proj, n, key, fp, &dirs, duration);
    // PIPE_TRACE=1: the engine's own time per executed stage (for benches/engine.sh work).
    if std::env::var_os("PIPE_TRACE").is_some() {
        eprintln!(
            "trace {} setup {:.2}ms run {:.2}ms commit {:.2}ms",
            n.id,
            (t0 - tstart).as_secs_f64() * 1e3,
            duration * 1e3,
            tc.elapsed().as_secs_f64() * 1e3
        );
    }
    match result {
        Ok(record) => Ok(Completed {
            done: Done::Ran(duration),
            record,
        }),
        Err(e) => {
            reporter.log_file_only(format!("error: {e}"));
            Err(Cause::Commit(e))
        }
    }
}

/// Calls the stage kind (registered as running, so a signal can stop it), turning a panic or a
/// signal into its cause.
fn run_kind(proj: &Project, n: &Node, fp: &Fingerprint, ctx: &StageCtx) -> Result<(), Cause> {
    let guard = crate::interrupt::running_stage(proj.cache.dir(), &n.id, fp);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| n.kind.run(ctx)));
    drop(guard);
    match r {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) | Err(_) if crate::interrupt::requested().is_some() => Err(Cause::Interrupted(
            crate::interrupt::requested().expect("checked"),
        )),
        Ok(Err(e)) => Err(Cause::Stage(e)),
        Err(p) => Err(Cause::Panicked(
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into()),
        )),
    }
}
