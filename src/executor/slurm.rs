//! The Slurm executor: an instance that must compute becomes one batch job running
//! `pipe __instance` on the node, named `pipe-<project hash>-<fingerprint>` so that a later
//! driver finds it instead of submitting it again; the driver waits for it, cancels it on
//! Ctrl-C/SIGTERM, and reads the run record the job committed: in the shared project folder
//! (the default), or on the remote store when jobs share no folder with the driver
//! (`executor.shared_fs: false`, see `detached` and `scratch`).

use super::command::{self, RunArgs};
use super::{detached, Attempt, Env, Executor, Finished, Task};
use crate::digest::Fingerprint;
use crate::instance::staging::Staging;
use crate::instance::{Cause, Completed, Done, Job};
use crate::project::Project;
use crate::remote::Remote;
use crate::slurm::{self, JobSpec, JobState, JobStatus};
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::thread::Scope;

/// Settings of a run on Slurm.
#[derive(Debug, Clone, Default)]
pub struct SlurmConfig {
    /// The pipeline file and the run's overrides, passed on to each job.
    pub run: RunArgs,
    pub partition: Option<String>,
    pub account: Option<String>,
    /// Further `sbatch` flags.
    pub extra: Vec<String>,
    /// The remote store URL when jobs share no folder with the driver (`shared_fs: false`).
    pub remote: Option<String>,
}

/// The Slurm executor.
pub struct Slurm(pub SlurmConfig);

impl Executor for Slurm {
    fn name(&self) -> &'static str {
        "slurm"
    }

    fn on_this_machine(&self) -> bool {
        false
    }

    fn start<'scope, 'env>(
        &'env self,
        scope: &'scope Scope<'scope, 'env>,
        env: &'env Env<'env>,
        tasks: Vec<Task<'env>>,
        done: &Sender<Finished>,
    ) {
        for task in tasks {
            let done = done.clone();
            scope.spawn(move || {
                let r = run(env.proj, &task.job(), &self.0, env.staging);
                task.finish(&done, r);
            });
        }
    }
}

/// The start of every job name of a project: `pipe-<8 hex>-`.
pub fn job_prefix(root: &Path) -> String {
    let h = blake3::hash(root.as_os_str().as_encoded_bytes()).to_hex();
    format!("pipe-{}-", &h[..8])
}

/// The job name of an instance fingerprint in a project: `pipe-<8 hex>-<fp[..16]>`.
pub fn job_name(root: &Path, fp: &Fingerprint) -> String {
    format!("{}{}", job_prefix(root), &fp.as_str()[..16])
}

/// The Slurm output file of an instance (beside its stage log).
pub fn slurm_log(proj: &Project, i: usize) -> PathBuf {
    let n = &proj.pipeline.nodes[i];
    proj.log_path(n)
        .with_file_name(format!("{}.slurm.log", n.id))
}

/// Runs one instance on Slurm: an instance whose real fingerprint already has a record is
/// restored here; otherwise its job (an earlier driver's if it is still queued or running, else
/// a new one) is waited for and its record read.
pub fn run(proj: &Project, job: &Job, cfg: &SlurmConfig, staging: &Staging) -> Attempt {
    let fp = crate::instance::fingerprint(proj, job)?;
    if !job.forced && proj.cache.record(&fp).is_some() {
        return crate::instance::run(proj, job, staging);
    }
    let remote = match &cfg.remote {
        Some(url) => Some(
            Remote::open(url, &proj.pipeline.root)
                .map_err(|e| job.error(proj, Cause::Remote(e)))?,
        ),
        None => None,
    };
    // Without a shared folder, a colleague's (or an earlier job's) record on the remote is
    // restored instead of submitted.
    if let (Some(r), false) = (&remote, job.forced) {
        if let Some(done) = detached::restore(proj, job, staging, r, &fp)? {
            return Ok(done);
        }
    }
    let (id, adopted) =
        submit_or_adopt(proj, job, cfg, remote.as_ref(), &fp).map_err(|c| job.error(proj, c))?;
    let submitted = unix_now();
    let status = wait(id, &proj.pipeline.nodes[job.index].id).map_err(|c| job.error(proj, c))?;
    // An earlier run's job that ended without success (cancelled by that run's Ctrl-C while
    // still COMPLETING, failed, timed out) is not this run's failure: submit the instance again
    // (or wait for the job another driver has submitted since).
    if let Some(st) = status.as_ref().filter(|s| adopted && !s.state.is_success()) {
        if proj.cache.record(&fp).is_none() {
            eprintln!(
                "resubmit    {} (Slurm job {id} of an earlier run ended {})",
                proj.pipeline.nodes[job.index].id, st.state
            );
            return run(proj, job, cfg, staging);
        }
    }
    // PIPE_TRACE=1: when the job was submitted (or found) and when its end was noticed.
    if std::env::var_os("PIPE_TRACE").is_some() {
        eprintln!(
            "trace slurm {} job {id} submitted {submitted:.3} noticed {:.3}",
            proj.pipeline.nodes[job.index].id,
            unix_now()
        );
    }
    let Some(st) = status else {
        let sig = crate::interrupt::requested().unwrap_or(crate::interrupt::Signal::Int);
        return Err(job.error(proj, Cause::Interrupted(sig)));
    };
    if st.state.is_success() {
        return collect(proj, job, staging, remote.as_ref(), &fp, id);
    }
    Err(job.error(proj, failure(proj, job, remote.as_ref(), &fp, id, &st)))
}

/// The job of `fp`: an earlier driver's that is still queued or running (adopted: true), or a
/// new submission.
fn submit_or_adopt(
    proj: &Project,
    job: &Job,
    cfg: &SlurmConfig,
    remote: Option<&Remote>,
    fp: &Fingerprint,
) -> Result<(u64, bool), Cause> {
    let n = &proj.pipeline.nodes[job.index];
    let name = job_name(&proj.pipeline.root, fp);
    let existing = slurm::find_jobs(&name)?
        .into_iter()
        .find(|j| j.name == name);
    if let Some(j) = existing {
        eprintln!(
            "waiting     {} (Slurm job {} {}, submitted by an earlier run)",
            n.id, j.id, j.state
        );
        return Ok((j.id, true));
    }
    let res = proj.pipeline.resources(n);
    let (command, log, workdir) = match (remote, &cfg.remote) {
        (Some(r), Some(url)) => {
            let key = detached::prepare(proj, &cfg.run, job, fp, r)?;
            // No project folder on the node: the job's output is not kept there (a failed job
            // leaves its log on the remote instead).
            (
                command::detached(&key, url, &proj.mirrors)?,
                PathBuf::from("/dev/null"),
                Some(std::env::temp_dir()),
            )
        }
        _ => (
            command::instance(proj, &cfg.run, job, fp)?,
            slurm_log(proj, job.index),
            Some(proj.pipeline.root.clone()),
        ),
    };
    let spec = JobSpec {
        name,
        cpus: res.cpus,
        mem_mb: res.mem_mb,
        time_min: res.time_min,
        partition: res.partition.clone().or_else(|| cfg.partition.clone()),
        account: cfg.account.clone(),
        gres: res.gpus.filter(|&g| g > 0).map(|g| format!("gpu:{g}")),
        after_ok: Vec::new(),
        extra: cfg.extra.clone(),
        log,
        workdir,
        command,
    };
    let id = slurm::submit(&spec)?;
    eprintln!(
        "submitted   {} as Slurm job {id} ({}{})",
        n.id,
        res.describe(),
        if remote.is_some() {
            ", no shared folder"
        } else {
            ""
        }
    );
    Ok((id, false))
}

/// After a job that COMPLETED: its record, pulled from the remote when it shares no folder.
fn collect(
    proj: &Project,
    job: &Job,
    staging: &Staging,
    remote: Option<&Remote>,
    fp: &Fingerprint,
    id: u64,
) -> Attempt {
    let ran = |record: crate::cache::RunRecord| Completed {
        done: Done::Ran(record.duration_s),
        record,
    };
    let no_record = |where_: String| {
        job.error(
            proj,
            Cause::NoRecord {
                job: id,
                fingerprint: *fp,
                where_,
            },
        )
    };
    if let Some(r) = remote {
        return match detached::collect(proj, job, staging, r, fp)? {
            Some(rec) => Ok(ran(rec)),
            None => Err(no_record(format!(" on {}", r.describe()))),
        };
    }
    match proj.cache.record(fp) {
        Some(rec) => Ok(ran(rec)),
        None => Err(no_record(format!(
            "; job output: {}",
            rel(proj, &slurm_log(proj, job.index)).display()
        ))),
    }
}

fn rel(proj: &Project, p: &Path) -> PathBuf {
    p.strip_prefix(&proj.pipeline.root)
        .unwrap_or(p)
        .to_path_buf()
}

/// Why a job that ended without success failed: its state, exit code or signal, Slurm's reason,
/// and where its output is (with its last line).
fn failure(
    proj: &Project,
    job: &Job,
    remote: Option<&Remote>,
    fp: &Fingerprint,
    id: u64,
    st: &JobStatus,
) -> Cause {
    let mut detail = match (st.exit_code, st.signal) {
        (_, Some(s)) => format!(", signal {s}"),
        (Some(c), None) if c != 0 => format!(", exit code {c}"),
        _ => String::new(),
    };
    if !st.reason.is_empty() {
        detail.push_str(&format!(", {}", st.reason));
    }
    if let Some(r) = remote {
        detail.push_str(&match detached::fetch_log(proj, job, r, fp, id) {
            Some(l) => format!(
                "; its log (from the remote): {} (last line: {l})",
                job.log_rel(proj).display()
            ),
            None => format!("; it left no log on {}", r.describe()),
        });
    } else {
        let out = slurm_log(proj, job.index);
        let last = std::fs::read_to_string(&out)
            .ok()
            .and_then(|t| {
                t.lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .map(String::from)
            })
            .map(|l| format!(" (last line: {})", l.trim()))
            .unwrap_or_default();
        detail.push_str(&format!(
            "; job output: {}{last}",
            rel(proj, &out).display()
        ));
    }
    Cause::JobFailed {
        job: id,
        state: st.state.to_string(),
        detail,
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Polls one job until it ends (its final status) or the driver is interrupted (the job is
/// cancelled, None). A job pending on a dependency that can never be satisfied is cancelled
/// and reported.
fn wait(id: u64, stage: &str) -> Result<Option<JobStatus>, Cause> {
    let mut p = slurm::Poller::new();
    loop {
        if crate::interrupt::requested().is_some() {
            let _ = slurm::cancel(&[id]);
            eprintln!("cancelled   {stage} (Slurm job {id}, scancel)");
            return Ok(None);
        }
        p.poll(&[id])?;
        if let Some(st) = p.status(id) {
            if st.state.is_terminal() {
                return Ok(Some(st.clone()));
            }
            if st.state == JobState::Pending && st.reason.starts_with("DependencyNeverSatisfied") {
                let _ = slurm::cancel(&[id]);
                let mut s = st.clone();
                s.state = JobState::Cancelled;
                return Ok(Some(s));
            }
        }
        p.pause();
    }
}
