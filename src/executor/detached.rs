//! The driver's side of jobs that share no folder with it (`executor.shared_fs: false`): before
//! submitting, the upstream records and objects are pushed and the project files the job reads
//! (the pipeline file, the `--params` file, project-local `stages/<kind>.yaml`, the stage's
//! `deps`) are uploaded as objects listed in a job manifest; after the job, its record and
//! objects are pulled into the local store and materialised as after a local run.

use super::command::RunArgs;
use crate::cache::RunRecord;
use crate::digest::{Blake3, Fingerprint};
use crate::instance::staging::Staging;
use crate::instance::{Cause, Completed, InstanceError, Job};
use crate::project::Project;
use crate::remote::manifest::{self, JobManifest, ManifestFile};
use crate::remote::Remote;
use std::path::{Path, PathBuf};

/// A path as the job sees it: relative to the project root, or an error naming it.
fn project_rel(root: &Path, p: &Path, what: &str) -> Result<String, Cause> {
    let rel = if p.is_absolute() {
        p.strip_prefix(root).map(Path::to_path_buf).map_err(|_| {
            Cause::Transfer(format!(
                "{what} {} is outside the project {}: jobs without a shared folder \
                 (`executor.shared_fs: false`) receive only project files",
                p.display(),
                root.display()
            ))
        })?
    } else {
        p.to_path_buf()
    };
    let s = rel.to_string_lossy().into_owned();
    if !manifest::is_plain_relative(&s) {
        return Err(Cause::Transfer(format!(
            "{what} `{s}` must be a plain path inside the project for a job without a shared folder"
        )));
    }
    Ok(s)
}

/// Uploads what the job of `job` needs and stores its manifest; the manifest key.
pub fn prepare(
    proj: &Project,
    run: &RunArgs,
    job: &Job,
    fp: &Fingerprint,
    remote: &Remote,
) -> Result<String, Cause> {
    let n = &proj.pipeline.nodes[job.index];
    let root = &proj.pipeline.root;
    // The upstream records (and their objects), objects first.
    let ups: Vec<Fingerprint> = job.ups.iter().map(|(_, r)| r.fingerprint).collect();
    let t = crate::remote::push(&proj.cache, &ups, remote)?;
    if !t.missing.is_empty() || !t.incomplete.is_empty() {
        return Err(Cause::Transfer(format!(
            "cannot push the upstream records {} to {}: not complete in the local store",
            t.missing
                .iter()
                .chain(&t.incomplete)
                .map(|f| f.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            remote.describe()
        )));
    }
    let mut files: Vec<ManifestFile> = Vec::new();
    let mut put = |src: &Path, rel: &str| -> Result<(), Cause> {
        if files.iter().any(|f| f.path == rel) {
            return Ok(());
        }
        files.push(manifest::put_file(remote, src, rel)?);
        Ok(())
    };
    let pipeline = project_rel(root, &run.pipeline, "the pipeline file")?;
    put(&root.join(&pipeline), &pipeline)?;
    for k in crate::stage::registry() {
        let rel = format!("stages/{}.yaml", k.info().name);
        if root.join(&rel).is_file() {
            put(&root.join(&rel), &rel)?;
        }
    }
    let params = match &run.params {
        Some(p) => {
            let full = if p.is_absolute() {
                p.clone()
            } else {
                root.join(p)
            };
            // A params file outside the project travels under a name of its own.
            let rel = project_rel(root, &full, "the --params file").unwrap_or_else(|_| {
                let name = full
                    .file_name()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "params.yaml".into());
                format!(".pipe-job/params/{name}")
            });
            put(&full, &rel)?;
            Some(rel)
        }
        None => None,
    };
    for dep in n.kind.external_inputs(&n.params) {
        let rel = project_rel(root, &dep, &format!("input of stage `{}`", n.id))?;
        let full = root.join(&rel);
        if full.is_dir() {
            let listed = crate::cache::walk(&full)
                .map_err(|e| Cause::Transfer(format!("{}: {e}", full.display())))?;
            for f in listed {
                let r = format!("{rel}/{f}");
                put(&full.join(&f), &r)?;
            }
        } else if full.is_file() {
            put(&full, &rel)?;
        }
        // Absent: an upstream's output, restored in the job from the upstream record.
    }
    let m = JobManifest {
        pipeline,
        id: n.id.clone(),
        fingerprint: *fp,
        ups: job
            .ups
            .iter()
            .map(|(u, r)| (u.id.clone(), r.fingerprint))
            .collect(),
        sets: run.sets.clone(),
        params,
        forced: job.forced,
        files,
    };
    Ok(manifest::put(remote, &m)?)
}

/// Pulls the record of `fp` (and its objects) from the remote, if it has one, and
/// materialises it: `None` when the remote has no complete record of `fp`.
pub fn restore(
    proj: &Project,
    job: &Job,
    staging: &Staging,
    remote: &Remote,
    fp: &Fingerprint,
) -> Result<Option<Completed>, InstanceError> {
    let t = crate::remote::pull(&proj.cache, &[*fp], remote).map_err(|e| job.error(proj, e))?;
    if !t.corrupt.is_empty() {
        eprintln!(
            "warning: corrupt on the remote, not used: {}",
            t.corrupt.join("; ")
        );
    }
    if proj.cache.record(fp).is_none() {
        return Ok(None);
    }
    crate::instance::run(proj, job, staging).map(Some)
}

/// After a job that completed: its record and objects pulled, its outputs materialised. After
/// a forced run the job's record replaces the local one.
pub fn collect(
    proj: &Project,
    job: &Job,
    staging: &Staging,
    remote: &Remote,
    fp: &Fingerprint,
) -> Result<Option<RunRecord>, InstanceError> {
    let remote_error = |e| job.error(proj, Cause::Remote(e));
    if job.forced {
        let Some((_, bytes)) =
            crate::remote::fetch_record(remote, &proj.cache, fp).map_err(remote_error)?
        else {
            return Ok(None);
        };
        let objs: Vec<Blake3> = crate::remote::record_objects(&bytes)
            .unwrap_or_default()
            .into_iter()
            .map(|(h, _)| h)
            .collect();
        let rep = crate::remote::fetch_objects(remote, &objs, &proj.cache).map_err(remote_error)?;
        if !rep.missing.is_empty() || !rep.corrupt.is_empty() {
            return Ok(None);
        }
        proj.cache.admit_record(fp, &bytes).map_err(|e| {
            let path = proj.cache.record_path(fp);
            job.error(
                proj,
                crate::instance::CommitError::Record(std::io::Error::other(format!(
                    "{}: {e}",
                    path.display()
                ))),
            )
        })?;
    }
    // Materialised from the record now in the store, never recomputed here.
    let unforced = Job {
        index: job.index,
        ups: job.ups,
        forced: false,
        echo: job.echo,
        threads: job.threads,
    };
    Ok(restore(proj, &unforced, staging, remote, fp)?.map(|c| c.record))
}

/// The log a failed job left on the remote, written to the stage's log path; its last line.
pub fn fetch_log(
    proj: &Project,
    job: &Job,
    remote: &Remote,
    fp: &Fingerprint,
    id: u64,
) -> Option<String> {
    let n = &proj.pipeline.nodes[job.index];
    let bytes = remote
        .get_bytes(&manifest::job_log_key(fp, &id.to_string()), 64 << 20)
        .ok()
        .flatten()?;
    let root = &proj.pipeline.root;
    let log: PathBuf = proj.log_path(n);
    let parent = log.parent().unwrap_or(root);
    if crate::cache::fsafe::create_dir_all(root, parent).is_ok() {
        let _ = crate::cache::fsafe::write_atomic(root, &log, &bytes);
    }
    String::from_utf8_lossy(&bytes)
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_string())
}
