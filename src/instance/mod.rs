//! Executing one instance whose upstreams have completed: verify the upstream outputs it will
//! read, compute its fingerprint from their real hashes (early cutoff), then either nothing (up
//! to date), a restore from the store, or a run in staging folders → store → tree → run record
//! (last, by rename).

pub mod commit;
pub mod outputs;
pub mod paths;
pub mod staging;

use crate::cache::{fsafe, RunRecord};
use crate::config::Node;
use crate::progress::Reporter;
use crate::project::Project;
use crate::stage::{StageCtx, Upstream};
use staging::Staging;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What happened to one instance.
#[derive(Debug, Clone)]
pub enum Outcome {
    UpToDate,
    Restored,
    Ran(f64),
    Failed {
        msg: String,
        log: PathBuf,
    },
    /// Stopped by Ctrl-C or SIGTERM.
    Interrupted {
        log: PathBuf,
    },
    /// Not run because an upstream failed (its id).
    Skipped(String),
}

fn failed(log: &Path, msg: impl Into<String>) -> Outcome {
    Outcome::Failed {
        msg: msg.into(),
        log: log.to_path_buf(),
    }
}

/// Everything `run` needs besides the project.
pub struct Job<'a> {
    pub index: usize,
    /// The records that enter the fingerprint: direct upstreams, or every ancestor for kinds
    /// that read measurements.
    pub ups: &'a [(Node, RunRecord)],
    pub forced: bool,
    pub echo: bool,
    pub threads: usize,
}

/// Makes sure the outputs of an upstream record are in place before a stage reads them
/// (cheap: the stat cache answers for unchanged files); restores them otherwise.
fn ensure_upstream(proj: &Project, u: &Node, rec: &RunRecord) -> Result<(), String> {
    let c = outputs::check(proj, u, rec, false);
    if c.reasons.is_empty() {
        return Ok(());
    }
    outputs::restore(proj, u, rec).map_err(|e| match e {
        outputs::RestoreError::Unrestorable(p) => format!(
            "upstream `{}`: {p} was changed and its stored copy is corrupt; run `pipe run --force {}`",
            u.id, u.id
        ),
        outputs::RestoreError::Io(m) => format!("upstream `{}`: {m}", u.id),
    })
}

/// Verifies (restoring if needed) the upstream outputs the instance reads and computes its
/// fingerprint key from their records.
fn prepare(
    proj: &Project,
    job: &Job,
    log_rel: &Path,
) -> Result<crate::cache::FingerprintKey, Outcome> {
    let n = &proj.pipeline.nodes[job.index];
    for (u, r) in job.ups {
        if n.needs.contains(&u.id) {
            ensure_upstream(proj, u, r).map_err(|e| failed(log_rel, e))?;
        }
    }
    let upstream_hashes: Vec<(String, crate::digest::Blake3)> = job
        .ups
        .iter()
        .map(|(u, r)| (u.id.clone(), r.outputs_hash))
        .collect();
    let up_recs: Vec<&RunRecord> = job.ups.iter().map(|(_, r)| r).collect();
    let (key, missing) = proj.key(n, upstream_hashes, &up_recs);
    if !missing.is_empty() {
        return Err(failed(
            log_rel,
            format!(
                "input {} does not exist; create it or produce it in an upstream stage",
                missing.join(", ")
            ),
        ));
    }
    Ok(key)
}

/// The fingerprint an instance has now (its upstreams' outputs verified and restored first):
/// what a Slurm job is submitted for.
pub fn fingerprint(proj: &Project, job: &Job) -> Result<crate::digest::Fingerprint, Outcome> {
    let n = &proj.pipeline.nodes[job.index];
    let log = proj.log_path(n);
    let log_rel = log
        .strip_prefix(&proj.pipeline.root)
        .unwrap_or(&log)
        .to_path_buf();
    Ok(prepare(proj, job, &log_rel)?.fingerprint())
}

/// Runs (or restores) one instance.
pub fn run(proj: &Project, job: &Job, staging: &Staging) -> Result<(Outcome, RunRecord), Outcome> {
    let tstart = Instant::now();
    let n = &proj.pipeline.nodes[job.index];
    let root = &proj.pipeline.root;
    let log = proj.log_path(n);
    // Messages name the log relative to the project root.
    let log_rel = log.strip_prefix(root).unwrap_or(&log).to_path_buf();
    let key = prepare(proj, job, &log_rel)?;
    let fp = key.fingerprint();
    // Early cutoff: a record for the real fingerprint is restored, never recomputed.
    if !job.forced {
        if let Some(rec) = proj.cache.record(&fp) {
            let c = outputs::check(proj, n, &rec, false);
            if c.reasons.is_empty() {
                return Ok((Outcome::UpToDate, rec));
            }
            match outputs::restore(proj, n, &rec) {
                Ok(()) => {
                    outputs::restore_log(proj, n, &rec);
                    return Ok((Outcome::Restored, rec));
                }
                Err(outputs::RestoreError::Unrestorable(_)) => {} // recompute below
                Err(outputs::RestoreError::Io(e)) => return Err(failed(&log_rel, e)),
            }
        }
    }

    // Run in staging folders.
    let stage_dir = staging
        .take()
        .map_err(|e| failed(&log_rel, format!("cannot create a staging folder: {e}")))?;
    let out_dir = stage_dir.join("out");
    let ckpt_dir = stage_dir.join("ckpt");
    let meas_dir = stage_dir.join("meas");
    let declared = n.kind.declared_outputs(&n.params);
    for d in &declared {
        if let Err(e) = fsafe::remove(root, &root.join(d)) {
            staging.give_back(stage_dir);
            return Err(failed(
                &log_rel,
                format!("cannot clear output {}: {e}", d.display()),
            ));
        }
    }
    let log_parent = log.parent().unwrap_or(root);
    if let Err(e) = fsafe::create_dir_all(root, log_parent).and_then(|_| fsafe::remove(root, &log))
    {
        staging.give_back(stage_dir);
        return Err(failed(&log_rel, format!("cannot create the log file: {e}")));
    }
    let reporter = match Reporter::new(&n.id, Some(&log), job.echo) {
        Ok(r) => r,
        Err(e) => {
            staging.give_back(stage_dir);
            return Err(failed(&log_rel, format!("cannot create the log file: {e}")));
        }
    };
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
    // `ups` holds every ancestor for kinds that read measurements; the direct ones in `needs` order.
    let upstream: Vec<Upstream> = n
        .needs
        .iter()
        .filter_map(|id| job.ups.iter().find(|(u, _)| &u.id == id))
        .map(to_upstream)
        .collect();
    let ancestors: Vec<Upstream> = if n.kind.info().reads_measurements {
        job.ups.iter().map(to_upstream).collect()
    } else {
        Vec::new()
    };
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
        out_dir: out_dir.clone(),
        ckpt_dir: ckpt_dir.clone(),
        meas_dir: meas_dir.clone(),
        root: root.clone(),
        cache_dir: proj.cache.dir().to_path_buf(),
        threads: job.threads,
        mirrors: proj.mirrors.clone(),
        reporter: reporter.clone(),
    };
    let t0 = Instant::now();
    let guard = crate::interrupt::running_stage(proj.cache.dir(), &n.id);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| n.kind.run(&ctx)));
    let duration = t0.elapsed().as_secs_f64();
    drop(guard);
    let r = match r {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into());
            Err(anyhow::anyhow!("panicked: {msg}"))
        }
    };
    if let Err(e) = r {
        staging.give_back(stage_dir);
        if let Some(sig) = crate::interrupt::requested() {
            reporter.log(format!("stopped by {sig}"));
            let _ = crate::interrupt::mark(proj.cache.dir(), &n.id, sig);
            return Err(Outcome::Interrupted { log: log_rel });
        }
        // On the terminal the scheduler's `FAILED` line says it: the log alone gets it here.
        reporter.log_file_only(format!("error: {e:#}"));
        return Err(failed(&log_rel, format!("{e:#}")));
    }
    let tc = Instant::now();
    let dirs = commit::Staged {
        out: &out_dir,
        ckpt: &ckpt_dir,
        meas: &meas_dir,
        declared: &declared,
        log: &log,
    };
    reporter.log(format!("done in {duration:.2}s"));
    let result = commit::commit(proj, n, key, &fp, &dirs, duration);
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
    staging.give_back(stage_dir);
    match result {
        Ok(rec) => {
            let _ = crate::interrupt::clear(proj.cache.dir(), &n.id);
            Ok((Outcome::Ran(duration), rec))
        }
        Err(e) => {
            reporter.log_file_only(format!("error: {e}"));
            Err(failed(&log_rel, e))
        }
    }
}
