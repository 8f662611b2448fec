//! `pipe reproduce`: recompute every stage of a pipeline in a scratch copy of the project (an
//! empty store, so nothing is restored), then compare the result with the committed lock file
//! stage by stage. Exit 1 when a stage outside the measurement kinds differs.

use crate::cache::Cache;
use crate::compare::lock::{self, LockFile};
use crate::compare::scratch::copy_project;
use crate::compare::verdict::{judge, StageReport, Verdict};
use crate::digest::Blake3;
use crate::error::{PipeError, Result};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[derive(clap::Args, Debug)]
pub struct ReproduceArgs {
    /// The pipeline: a file, its name (`ci`) or its lock file; default as for `pipe run`.
    pub pipeline: Option<PathBuf>,
    /// Keep the scratch copy (its path is printed) instead of deleting it.
    #[arg(long)]
    pub keep: bool,
    /// Stages run in parallel in the scratch copy (passed to `pipe run -j`).
    #[arg(short = 'j', long = "jobs")]
    pub jobs: Option<usize>,
}

/// The content of an object if it is present and intact.
fn object(cache: &Cache, hash: &Blake3) -> Option<Vec<u8>> {
    let bytes = std::fs::read(cache.object_path(hash)).ok()?;
    (Blake3::of(&bytes) == *hash).then_some(bytes)
}

pub fn run(a: ReproduceArgs) -> Result<i32> {
    let (root, pfile) = super::project::locate(a.pipeline.as_deref())?;
    let rel = |p: PathBuf| p.strip_prefix(&root).map(Path::to_path_buf).unwrap_or(p);
    let lock_path = rel(crate::layout::Layout::new(&root).lock_file(&pfile));
    if pfile.is_absolute() || !root.join(&pfile).is_file() {
        return Err(PipeError::config(format!(
            "{}: no such pipeline file inside the project {}",
            pfile.display(),
            root.display()
        )));
    }
    let committed = lock::read(&lock_path, &pfile)?;
    crate::interrupt::install().map_err(|source| PipeError::Io {
        what: "cannot install the signal handlers".into(),
        source,
    })?;
    sweep_dead_scratch();
    let scratch = tempfile::Builder::new()
        .prefix(&format!("{SCRATCH}{}-", std::process::id()))
        .tempdir()
        .map_err(|e| PipeError::io("cannot create a scratch folder in", std::env::temp_dir(), e))?;
    let dir = scratch.path().to_path_buf();
    let n = copy_project(&root, &dir)?;
    let _ = std::fs::remove_file(dir.join(&lock_path));
    eprintln!(
        "reproduce: recomputing {} in {} ({n} project files copied, empty store)",
        pfile.display(),
        dir.display()
    );
    let status = recompute(&dir, &pfile, a.jobs, !a.keep)?;
    let keep = |scratch: tempfile::TempDir| {
        if a.keep {
            let p = kept(scratch.keep());
            eprintln!("reproduce: scratch copy kept in {}", p.display());
        }
    };
    if let Some(signal) = crate::interrupt::requested() {
        keep(scratch);
        return Err(PipeError::Interrupted {
            signal,
            stage: None,
        });
    }
    if !status.success() {
        let hint = if a.keep {
            String::new()
        } else {
            " (rerun with --keep to inspect its logs)".to_string()
        };
        keep(scratch);
        return Err(PipeError::Recompute {
            pipeline: pfile,
            status: status.to_string(),
            hint,
        });
    }
    let fresh: LockFile = lock::read(&dir.join(&lock_path), &pfile)?;
    let (old_cache, new_cache) = (Cache::new(&root), Cache::new(&dir));
    let old_objects = |_: &str, h: &Blake3| object(&old_cache, h);
    let new_objects = |p: &str, h: &Blake3| {
        object(&new_cache, h).or_else(|| {
            let b = std::fs::read(dir.join(p)).ok()?;
            (Blake3::of(&b) == *h).then_some(b)
        })
    };
    let ids: BTreeSet<&String> = committed.stages.keys().chain(fresh.stages.keys()).collect();
    let width = ids.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut reports: Vec<StageReport> = Vec::new();
    let mut o = std::io::stdout().lock();
    for id in ids {
        let r = judge(
            id,
            committed.stages.get(id),
            fresh.stages.get(id),
            &old_objects,
            &new_objects,
        );
        let _ = writeln!(o, "{}", r.line(width));
        let _ = o.flush();
        reports.push(r);
    }
    let count = |f: &dyn Fn(&StageReport) -> bool| reports.iter().filter(|r| f(r)).count();
    let identical = count(&|r| matches!(r.verdict, Verdict::Identical | Verdict::SameOutputs));
    let within = count(&|r| !r.measurement() && matches!(r.verdict, Verdict::Within(_)));
    let meas = count(&|r| {
        r.measurement() && !matches!(r.verdict, Verdict::Identical | Verdict::SameOutputs)
    });
    let failed: Vec<&str> = reports
        .iter()
        .filter(|r| r.fails())
        .map(|r| r.id.as_str())
        .collect();
    let _ = writeln!(
        o,
        "{}: {identical} identical, {within} equal within tolerance, {meas} measurement stage(s) differ (not a failure), {} different",
        committed.pipeline,
        failed.len()
    );
    let _ = o.flush();
    drop(o);
    keep(scratch);
    if failed.is_empty() {
        return Ok(0);
    }
    eprintln!(
        "error: {} does not reproduce: {} differ{} from the committed {}",
        pfile.display(),
        failed.join(", "),
        if failed.len() == 1 { "s" } else { "" },
        lock_path.display()
    );
    Ok(1)
}

/// The name prefix of scratch copies: `pipe-reproduce-<pid>-…`.
const SCRATCH: &str = "pipe-reproduce-";

/// Recomputes `pfile` in the scratch copy `dir` with `pipe run`, under a supervisor: if this
/// `pipe reproduce` dies (even by `kill -9`), the scratch run is killed and `dir` removed.
/// Ctrl-C or SIGTERM stops the scratch run (its status is returned; the caller checks the
/// signal).
fn recompute(
    dir: &Path,
    pfile: &Path,
    jobs: Option<usize>,
    cleanup: bool,
) -> Result<std::process::ExitStatus> {
    let exe = std::env::current_exe().map_err(|source| PipeError::Io {
        what: "cannot find the pipe executable".into(),
        source,
    })?;
    let mut cmd = Command::new(exe);
    cmd.arg("run").arg(pfile).current_dir(dir);
    if let Some(j) = jobs {
        cmd.arg("-j").arg(j.to_string());
    }
    // The mirror folders, absolute (the scratch run has another cwd), on its command line.
    cmd.env_remove(crate::download::MIRROR_ENV);
    for m in super::mirrors::from_cli(&[]) {
        cmd.arg("--mirror").arg(m);
    }
    // The scratch run's own output goes to stderr; stdout carries the verdicts.
    let io = crate::interrupt::GroupIo {
        stdout: Stdio::from(std::io::stderr()),
        stderr: Stdio::inherit(),
        cleanup: cleanup.then(|| dir.to_path_buf()),
    };
    let start = |source| PipeError::Io {
        what: "cannot start the scratch run".into(),
        source,
    };
    crate::interrupt::spawn_group(&cmd, io)
        .map_err(start)?
        .wait()
        .map_err(start)
}

/// A kept scratch copy under a name no later `pipe reproduce` sweeps
/// (`pipe-reproduce-kept-…`).
fn kept(p: PathBuf) -> PathBuf {
    let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
    let suffix = name
        .as_deref()
        .and_then(|n| n.rsplit('-').next())
        .unwrap_or("x");
    let to = p.with_file_name(format!("{SCRATCH}kept-{suffix}"));
    match std::fs::rename(&p, &to) {
        Ok(()) => to,
        Err(_) => p,
    }
}

/// Removes the scratch copies of `pipe reproduce` runs that are no longer alive (left by one
/// killed before its supervisor could remove them).
fn sweep_dead_scratch() {
    let Ok(rd) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(SCRATCH)
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let dead = pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists();
        if dead && e.file_type().is_ok_and(|t| t.is_dir()) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}
