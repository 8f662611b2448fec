//! The command lines of jobs: `pipe __instance …` for a job in the shared project folder, and
//! `pipe __instance --manifest KEY --remote URL` for a job that shares no folder with the
//! driver, both with the driver's mirror folders.

use crate::digest::Fingerprint;
use crate::instance::{Cause, Job};
use crate::project::Project;
use std::path::PathBuf;

/// What every job of a run is given besides its instance: the pipeline file (relative to the
/// project root) and the run's overrides.
#[derive(Debug, Clone, Default)]
pub struct RunArgs {
    pub pipeline: PathBuf,
    /// `--set` overrides.
    pub sets: Vec<String>,
    /// The `--params` file.
    pub params: Option<PathBuf>,
}

/// A command line running this `pipe` executable with `args`, then the driver's mirror folders
/// (`--mirror DIR`: paths on the node).
fn pipe_command(args: Vec<String>, mirrors: &[PathBuf]) -> Result<Vec<String>, Cause> {
    let exe = std::env::current_exe()
        .map_err(|e| Cause::Transfer(format!("cannot find the pipe executable to submit: {e}")))?;
    let mut c = vec![exe.display().to_string()];
    c.extend(args);
    for m in mirrors {
        c.push("--mirror".into());
        c.push(m.display().to_string());
    }
    Ok(c)
}

/// The `pipe __instance` command line of an instance in the shared project folder.
pub fn instance(
    proj: &Project,
    run: &RunArgs,
    job: &Job,
    fp: &Fingerprint,
) -> Result<Vec<String>, Cause> {
    let n = &proj.pipeline.nodes[job.index];
    let mut c = vec![
        "-C".into(),
        proj.pipeline.root.display().to_string(),
        "__instance".into(),
        run.pipeline.display().to_string(),
        "--id".into(),
        n.id.clone(),
        "--fingerprint".into(),
        fp.to_string(),
    ];
    for (u, r) in job.ups {
        c.push("--up".into());
        c.push(format!("{}={}", u.id, r.fingerprint));
    }
    for s in &run.sets {
        c.push("--set".into());
        c.push(s.clone());
    }
    if let Some(p) = &run.params {
        let p = std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
        c.push("--params".into());
        c.push(p.display().to_string());
    }
    if job.forced {
        c.push("--forced".into());
    }
    pipe_command(c, &proj.mirrors)
}

/// The command line of a job without a shared folder: `pipe __instance --manifest KEY
/// --remote URL`.
pub fn detached(key: &str, url: &str, mirrors: &[PathBuf]) -> Result<Vec<String>, Cause> {
    let args = ["__instance", "--manifest", key, "--remote", url];
    pipe_command(args.map(String::from).to_vec(), mirrors)
}
