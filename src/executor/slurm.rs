//! The Slurm executor: an instance that must compute becomes one batch job running
//! `pipe __instance` on the node, named `pipe-<project hash>-<fingerprint>` so that a later
//! driver finds it instead of submitting it again; the driver waits for it, cancels it on
//! Ctrl-C/SIGTERM, and reads the run record the job committed: in the shared project folder
//! (the default), or on the remote store when jobs share no folder with the driver
//! (`executor.shared_fs: false`, see `detached` and `scratch`).

use super::detached;
use crate::cache::RunRecord;
use crate::digest::Fingerprint;
use crate::instance::staging::Staging;
use crate::instance::{Job, Outcome};
use crate::project::Project;
use crate::slurm::{self, JobSpec, JobState};
use std::path::{Path, PathBuf};

/// Settings of a run on Slurm.
#[derive(Debug, Clone, Default)]
pub struct SlurmConfig {
    /// The pipeline file, relative to the project root.
    pub pipeline: PathBuf,
    /// The run's `--set` overrides and `--params` file, passed on to each job.
    pub sets: Vec<String>,
    pub params: Option<PathBuf>,
    pub partition: Option<String>,
    pub account: Option<String>,
    /// Further `sbatch` flags.
    pub extra: Vec<String>,
    /// The remote store URL when jobs share no folder with the driver (`shared_fs: false`).
    pub remote: Option<String>,
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

fn failed(log: &Path, msg: String) -> Outcome {
    Outcome::Failed {
        msg,
        log: log.to_path_buf(),
    }
}

/// A command line running this `pipe` executable with `args`, then the driver's mirror folders
/// (`--mirror DIR`: paths on the node): the jobs of both kinds are such commands.
pub(super) fn pipe_command(args: Vec<String>, mirrors: &[PathBuf]) -> Result<Vec<String>, String> {
    let exe = std::env::current_exe()
        .map_err(|e| format!("cannot find the pipe executable to submit: {e}"))?;
    let mut c = vec![exe.display().to_string()];
    c.extend(args);
    for m in mirrors {
        c.push("--mirror".into());
        c.push(m.display().to_string());
    }
    Ok(c)
}

/// The `pipe __instance` command line of an instance.
fn command(
    proj: &Project,
    cfg: &SlurmConfig,
    job: &Job,
    fp: &Fingerprint,
) -> Result<Vec<String>, String> {
    let n = &proj.pipeline.nodes[job.index];
    let mut c = vec![
        "-C".into(),
        proj.pipeline.root.display().to_string(),
        "__instance".into(),
        cfg.pipeline.display().to_string(),
        "--id".into(),
        n.id.clone(),
        "--fingerprint".into(),
        fp.to_string(),
    ];
    for (u, r) in job.ups {
        c.push("--up".into());
        c.push(format!("{}={}", u.id, r.fingerprint));
    }
    for s in &cfg.sets {
        c.push("--set".into());
        c.push(s.clone());
    }
    if let Some(p) = &cfg.params {
        let p = std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
        c.push("--params".into());
        c.push(p.display().to_string());
    }
    if job.forced {
        c.push("--forced".into());
    }
    pipe_command(c, &proj.mirrors)
}

/// Runs one instance on Slurm: an instance whose real fingerprint already has a record is
/// restored here; otherwise its job (an earlier driver's if it is still queued or running, else
/// a new one) is waited for and its record read.
pub fn run(
    proj: &Project,
    job: &Job,
    cfg: &SlurmConfig,
    staging: &Staging,
) -> Result<(Outcome, RunRecord), Outcome> {
    let n = &proj.pipeline.nodes[job.index];
    let root = &proj.pipeline.root;
    let rel = |p: &Path| p.strip_prefix(root).unwrap_or(p).to_path_buf();
    let log_rel = rel(&proj.log_path(n));
    let fp = crate::instance::fingerprint(proj, job)?;
    if !job.forced && proj.cache.record(&fp).is_some() {
        return crate::instance::run(proj, job, staging);
    }
    let remote = match &cfg.remote {
        Some(url) => Some(
            crate::remote::Remote::open(url, root).map_err(|e| failed(&log_rel, e.to_string()))?,
        ),
        None => None,
    };
    // Without a shared folder, a colleague's (or an earlier job's) record on the remote is
    // restored instead of submitted.
    if let (Some(r), false) = (&remote, job.forced) {
        if let Some(done) =
            detached::restore(proj, job, staging, r, &fp).map_err(|e| failed(&log_rel, e))?
        {
            return Ok(done);
        }
    }
    let name = job_name(root, &fp);
    let out = slurm_log(proj, job.index);
    let existing = slurm::find_jobs(&name)
        .map_err(|e| failed(&log_rel, e.to_string()))?
        .into_iter()
        .find(|j| j.name == name);
    let adopted = existing.is_some();
    let id = match existing {
        Some(j) => {
            eprintln!(
                "waiting     {} (Slurm job {} {}, submitted by an earlier run)",
                n.id, j.id, j.state
            );
            j.id
        }
        None => {
            let res = proj.pipeline.resources(n);
            let (command, log, workdir) = match (&remote, &cfg.remote) {
                (Some(r), Some(url)) => {
                    let key = detached::prepare(proj, cfg, job, &fp, r)
                        .map_err(|e| failed(&log_rel, e))?;
                    // No project folder on the node: the job's output is not kept there
                    // (a failed job leaves its log on the remote instead).
                    (
                        detached::command(&key, url, &proj.mirrors)
                            .map_err(|e| failed(&log_rel, e))?,
                        PathBuf::from("/dev/null"),
                        Some(std::env::temp_dir()),
                    )
                }
                _ => (
                    command(proj, cfg, job, &fp).map_err(|e| failed(&log_rel, e))?,
                    out.clone(),
                    Some(root.clone()),
                ),
            };
            let spec = JobSpec {
                name: name.clone(),
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
            let id = slurm::submit(&spec).map_err(|e| {
                failed(
                    &log_rel,
                    format!("cannot submit the Slurm job of `{}`: {e}", n.id),
                )
            })?;
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
            id
        }
    };
    let submitted = unix_now();
    let status = wait(id, &n.id).map_err(|e| failed(&log_rel, e))?;
    // An earlier run's job that ended without success (cancelled by that run's Ctrl-C while
    // still COMPLETING, failed, timed out) is not this run's failure: submit the instance again
    // (or wait for the job another driver has submitted since).
    if let Some(st) = status.as_ref().filter(|s| adopted && !s.state.is_success()) {
        if proj.cache.record(&fp).is_none() {
            eprintln!(
                "resubmit    {} (Slurm job {id} of an earlier run ended {})",
                n.id, st.state
            );
            return run(proj, job, cfg, staging);
        }
    }
    // PIPE_TRACE=1: when the job was submitted (or found) and when its end was noticed.
    if std::env::var_os("PIPE_TRACE").is_some() {
        eprintln!(
            "trace slurm {} job {id} submitted {submitted:.3} noticed {:.3}",
            n.id,
            unix_now()
        );
    }
    let Some(st) = status else {
        return Err(Outcome::Interrupted { log: log_rel });
    };
    if st.state.is_success() {
        if let Some(r) = &remote {
            return match detached::collect(proj, job, staging, r, &fp) {
                Ok(Some(rec)) => Ok((Outcome::Ran(rec.duration_s), rec)),
                Ok(None) => Err(failed(
                    &log_rel,
                    format!(
                        "Slurm job {id} COMPLETED but left no complete run record for fingerprint {fp} on {}",
                        r.describe()
                    ),
                )),
                Err(e) => Err(failed(&log_rel, e)),
            };
        }
        return match proj.cache.record(&fp) {
            Some(rec) => {
                let d = rec.duration_s;
                Ok((Outcome::Ran(d), rec))
            }
            None => Err(failed(
                &log_rel,
                format!(
                    "Slurm job {id} COMPLETED but left no run record for fingerprint {fp}; job output: {}",
                    rel(&out).display()
                ),
            )),
        };
    }
    let code = match (st.exit_code, st.signal) {
        (_, Some(s)) => format!(", signal {s}"),
        (Some(c), None) if c != 0 => format!(", exit code {c}"),
        _ => String::new(),
    };
    let reason = if st.reason.is_empty() {
        String::new()
    } else {
        format!(", {}", st.reason)
    };
    if let Some(r) = &remote {
        let last = match detached::fetch_log(proj, job, r, &fp, id) {
            Some(l) => format!(
                "; its log (from the remote): {} (last line: {l})",
                log_rel.display()
            ),
            None => format!("; it left no log on {}", r.describe()),
        };
        return Err(failed(
            &log_rel,
            format!("Slurm job {id} {}{code}{reason}{last}", st.state),
        ));
    }
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
    Err(failed(
        &log_rel,
        format!(
            "Slurm job {id} {}{code}{reason}; job output: {}{last}",
            st.state,
            rel(&out).display()
        ),
    ))
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
fn wait(id: u64, stage: &str) -> Result<Option<slurm::JobStatus>, String> {
    let mut p = slurm::Poller::new();
    loop {
        if crate::interrupt::requested().is_some() {
            let _ = slurm::cancel(&[id]);
            eprintln!("cancelled   {stage} (Slurm job {id}, scancel)");
            return Ok(None);
        }
        p.poll(&[id]).map_err(|e| e.to_string())?;
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
