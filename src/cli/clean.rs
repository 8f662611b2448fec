//! `pipe clean`: removes a pipeline's results and checkpoints, or with `--cache --unreferenced`
//! the store objects and run records that no `*.lock` file and no experiment references. Takes
//! the project lock.

use crate::cache::lockfile::LockFile;
use crate::cache::walk;
use crate::digest::{Blake3, Fingerprint};
use crate::error::{PipeError, Result};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct CleanArgs {
    /// The pipeline whose results/ and checkpoints/ folders go.
    pub pipeline: Option<PathBuf>,
    /// Clean the content store instead (with --unreferenced).
    #[arg(long)]
    pub cache: bool,
    /// With --cache: remove the objects and run records no lock file references.
    #[arg(long)]
    pub unreferenced: bool,
    /// List what would be removed and remove nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Exit at once when another `pipe` holds the project lock.
    #[arg(long)]
    pub no_wait: bool,
}

/// Every `*.lock` file of our format in the project (root and `pipelines/`, recursively). One
/// that cannot be read is an error: garbage collection never guesses what is referenced.
fn lock_files(root: &Path) -> Result<Vec<LockFile>> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            // Links are not followed (a link cycle or a link out of the project).
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                if !name.starts_with('.')
                    && name != "target"
                    && !crate::layout::OWN_DIRS.contains(&name.as_str())
                {
                    dirs.push(p);
                }
            } else if name.ends_with(".lock") && is_ours(&p) {
                let l = LockFile::read(&p).map_err(|e| {
                    PipeError::config(format!(
                        "{e}; `pipe clean --cache` refuses to run while a lock file is unreadable"
                    ))
                })?;
                out.push(l);
            }
        }
    }
    Ok(out)
}

/// Whether a `*.lock` file is one of pipe's: it names `"stages"` (even when a merge conflict
/// broke it) and lies beside its pipeline file or in `pipelines/`, or is a JSON object with
/// `pipeline` and `stages`. Other tools' lock files (Cargo, poetry, uv, yarn, npm) are not.
fn is_ours(p: &Path) -> bool {
    let Ok(Some(text)) = crate::cache::fsafe::read_regular(p, 256 << 20) else {
        return false;
    };
    if let Ok(serde_json::Value::Object(m)) = serde_json::from_slice(&text) {
        return m.contains_key("pipeline") && m.contains_key("stages");
    }
    let names_stages = text.windows(8).any(|w| w == b"\"stages\"");
    let in_pipelines = p
        .parent()
        .and_then(|d| d.file_name())
        .is_some_and(|d| d == crate::layout::PIPELINES);
    let beside_pipeline = ["yaml", "yml"]
        .iter()
        .any(|e| p.with_extension(e).is_file());
    names_stages && (in_pipelines || beside_pipeline)
}

/// The fingerprints of every instance of every experiment (`cache/experiments/<name>.json`):
/// an experiment's results are its records and objects, so they are referenced. An unreadable
/// experiment file is an error, and so is a running experiment (its instances are recorded
/// only when it ends): garbage collection never guesses what is referenced.
fn experiment_fingerprints(root: &Path) -> Result<BTreeSet<Fingerprint>> {
    let (all, bad) = crate::experiment::load_all(root);
    if let Some(e) = bad.first() {
        return Err(PipeError::config(format!(
            "{e}; `pipe clean --cache` refuses to run while an experiment record is unreadable"
        )));
    }
    let mut fps = BTreeSet::new();
    for e in &all {
        if crate::experiment::is_running(e) {
            return Err(PipeError::config(format!(
                "experiment `{}` is running (pid {}): its results are not recorded yet; run `pipe clean --cache --unreferenced` once it has ended",
                e.name,
                e.pid.map(|p| p.to_string()).unwrap_or_else(|| "?".into())
            )));
        }
        fps.extend(e.instances.iter().filter_map(|i| i.fingerprint));
    }
    Ok(fps)
}

/// The pipeline name of `pipe clean ARG`: ARG is a pipeline file (relative to the current
/// folder, then to the root, as for `pipe run`), or a pipeline name (the `name:` of
/// `pipelines/<ARG>.yaml`, or ARG itself).
fn pipeline_name(root: &Path, cwd: &Path, arg: &Path) -> Result<String> {
    let file = if cwd.join(arg).is_file() || root.join(arg).is_file() {
        Some(super::project::resolve_pipeline(root, cwd, Some(arg))?)
    } else {
        ["yaml", "yml"]
            .iter()
            .map(|e| Path::new(crate::layout::PIPELINES).join(format!("{}.{e}", arg.display())))
            .find(|p| root.join(p).is_file())
    };
    if let Some(f) = file {
        let ov = crate::config::Overrides::default();
        return Ok(crate::config::load(root, &f, &ov)?.name);
    }
    let name = arg.to_string_lossy().into_owned();
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        return Err(PipeError::config(format!(
            "pipe clean {name}: not a pipeline file or a pipeline name"
        )));
    }
    Ok(name)
}

pub fn run(args: CleanArgs) -> Result<i32> {
    // The project the current folder (after `-C`) belongs to, as for every other subcommand.
    let root = super::project::project_root()?;
    let cwd = std::env::current_dir().map_err(PipeError::current_dir)?;
    let cache = crate::project::open_cache(&root);
    if !args.cache && args.pipeline.is_none() {
        return Err(PipeError::config(
            "pipe clean: give a pipeline file, or --cache --unreferenced",
        ));
    }
    if args.cache && !args.unreferenced {
        return Err(PipeError::config(
            "pipe clean --cache: add --unreferenced (only unreferenced objects are removed)",
        ));
    }
    let _lock = crate::engine::lock_project(&cache, !args.no_wait)?;
    let mut doomed: Vec<PathBuf> = Vec::new();
    if let Some(arg) = &args.pipeline {
        let name = pipeline_name(&root, &cwd, arg)?;
        let dirs = crate::layout::Layout::new(&root).pipeline(&name);
        for dir in [dirs.results(), dirs.checkpoints()] {
            if std::fs::symlink_metadata(&dir).is_ok() {
                doomed.push(dir);
            }
        }
    }
    if args.cache {
        let locks = lock_files(&root)?;
        let mut fps = experiment_fingerprints(&root)?;
        let mut objs = BTreeSet::new();
        for l in &locks {
            for e in l.stages.values() {
                fps.insert(e.fingerprint);
                objs.extend(e.outputs.values().copied());
            }
        }
        // Each referenced record keeps its outputs, measurements and log.
        for fp in &fps {
            if let Some(rec) = cache.record(fp) {
                objs.extend(rec.outputs.iter().map(|o| o.blake3));
                objs.extend(rec.log);
            }
        }
        for f in walk(&cache.layout().runs()).unwrap_or_default() {
            let fp = f
                .strip_suffix(".json")
                .and_then(|f| Fingerprint::parse(f).ok());
            if !fp.is_some_and(|fp| fps.contains(&fp)) {
                doomed.push(cache.layout().runs().join(&f));
            }
        }
        for f in walk(&cache.layout().objects()).unwrap_or_default() {
            let h = Blake3::parse(&f.replace('/', "")).ok();
            if !h.is_some_and(|h| objs.contains(&h)) {
                doomed.push(cache.layout().objects().join(&f));
            }
        }
    }
    for d in &doomed {
        let rel = d.strip_prefix(&root).unwrap_or(d);
        if args.dry_run {
            println!("would remove {}", rel.display());
        } else {
            // A link is removed as a link, never its target; nothing through a link.
            crate::cache::fsafe::remove(&root, d)
                .map_err(|e| PipeError::io("cannot remove", rel, e.into()))?;
            println!("removed {}", rel.display());
        }
    }
    if doomed.is_empty() {
        println!("nothing to remove");
    }
    Ok(0)
}
