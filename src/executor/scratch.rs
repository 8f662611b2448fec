//! The job's side of a run that shares no folder with the driver (`executor.shared_fs: false`):
//! a private scratch folder (`$TMPDIR/pipe-job-XXXXXX`, created by the job and removed when it
//! ends, failed or not), the manifest's project files and the upstream records and objects
//! downloaded into it (each verified by blake3), the instance run there as in a project, then
//! its objects pushed and its run record last. A failed job leaves its log on the remote.

use super::job::{run_instance, JobEnd};
use crate::config::Overrides;
use crate::digest::Fingerprint;
use crate::error::{PipeError, Result};
use crate::project::Project;
use crate::remote::manifest::{self, JobManifest};
use crate::remote::Remote;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Runs the job of manifest `key` from remote `url`; the exit code.
pub fn run(key: &str, url: &str, mirrors: Vec<PathBuf>) -> Result<i32> {
    // Dropped (removed) on every return below; the job's own signal handling lets a
    // cancelled or timed-out job get here too.
    let scratch = tempfile::Builder::new()
        .prefix("pipe-job-")
        .tempdir()
        .map_err(|e| PipeError::io("cannot create a scratch folder in", std::env::temp_dir(), e))?;
    let root = std::fs::canonicalize(scratch.path())
        .map_err(|e| PipeError::io("cannot read", scratch.path(), e))?;
    eprintln!("scratch folder {}", root.display());
    let remote = Remote::open(url, &root)?;
    let m = manifest::get(&remote, key)?;
    let r = run_in(&root, &remote, &m, mirrors);
    if let Err(e) = &r {
        leave_log(&root, &remote, &m, &e.to_string());
    }
    drop(scratch);
    r
}

fn run_in(root: &Path, remote: &Remote, m: &JobManifest, mirrors: Vec<PathBuf>) -> Result<i32> {
    manifest::materialise(remote, m, root)?;
    let cache = crate::project::open_cache(root);
    let fps: Vec<Fingerprint> = m.ups.iter().map(|(_, fp)| *fp).collect();
    let t = crate::remote::pull(&cache, &fps, remote)?;
    let lacking: Vec<String> = t
        .missing
        .iter()
        .chain(&t.incomplete)
        .map(|f| f.to_string())
        .collect();
    if !lacking.is_empty() {
        return Err(transfer(
            m,
            format!(
                "the remote {} lacks the upstream run record(s) {} (or their objects){}",
                remote.describe(),
                lacking.join(", "),
                if t.corrupt.is_empty() {
                    String::new()
                } else {
                    format!("; corrupt: {}", t.corrupt.join("; "))
                }
            ),
        ));
    }
    let ov = Overrides::with_env(m.sets.clone(), m.params.as_ref().map(PathBuf::from));
    let mut proj = Project::load(root, Path::new(&m.pipeline), &ov)?;
    proj.mirrors = mirrors;
    let ups: BTreeMap<String, Fingerprint> = m.ups.iter().cloned().collect();
    match run_instance(&proj, &m.id, &m.fingerprint, &ups, m.forced)? {
        JobEnd::Done(rec) => {
            // Objects first, the record last: a driver never sees a record pointing at nothing.
            let t =
                crate::remote::push(&proj.cache, std::slice::from_ref(&rec.fingerprint), remote)?;
            if !t.missing.is_empty() || !t.incomplete.is_empty() {
                return Err(transfer(
                    m,
                    format!(
                        "cannot push run record {}: its objects are not all in the job's store",
                        rec.fingerprint
                    ),
                ));
            }
            if m.forced && t.records_skipped > 0 {
                // A forced run's record replaces the one the remote had (its objects are there).
                let bytes = proj.cache.record_bytes(&rec.fingerprint).ok_or_else(|| {
                    transfer(
                        m,
                        format!(
                            "run record {} is missing or invalid in the job's store",
                            rec.fingerprint
                        ),
                    )
                })?;
                remote.put_bytes(&crate::remote::record_key(&rec.fingerprint), &bytes)?;
            }
            eprintln!(
                "{}: pushed record {} and {} objects to {}",
                m.id,
                rec.fingerprint,
                t.objects,
                remote.describe()
            );
            Ok(0)
        }
        JobEnd::Interrupted(code) => Ok(code),
    }
}

/// A job's instance whose input or output cannot go through the remote.
fn transfer(m: &JobManifest, msg: String) -> PipeError {
    PipeError::from(crate::instance::InstanceError::from(
        crate::instance::Failure {
            stage: m.id.clone(),
            log: PathBuf::new(),
            fingerprint: Some(m.fingerprint),
            cause: crate::instance::Cause::Transfer(msg),
        },
    ))
}

/// Leaves the stage log (and the error) on the remote for the driver, best effort.
fn leave_log(root: &Path, remote: &Remote, m: &JobManifest, err: &str) {
    let name = crate::config::load(
        root,
        Path::new(&m.pipeline),
        &Overrides::with_env(m.sets.clone(), m.params.as_ref().map(PathBuf::from)),
    )
    .map(|p| p.name)
    .ok();
    let mut text = name
        .and_then(|p| {
            std::fs::read_to_string(crate::layout::Layout::new(root).pipeline(&p).log(&m.id)).ok()
        })
        .unwrap_or_default();
    text.push_str(&format!("error: {err}\n"));
    let job = std::env::var("SLURM_JOB_ID").unwrap_or_else(|_| "0".into());
    let _ = remote.put_bytes(
        &manifest::job_log_key(&m.fingerprint, &job),
        text.as_bytes(),
    );
}
