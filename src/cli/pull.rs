//! `pipe pull PIPELINE`: downloads from the remote store the run records and objects of the
//! pipeline's lock file that are missing locally, each record validated and each object
//! verified by blake3 before it enters the store. Takes the project lock, as `run` does.

use crate::error::{PipeError, Result};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct PullArgs {
    /// The pipeline: a file, its name (`ci`) or its lock file; default as for `pipe run`.
    pub pipeline: Option<PathBuf>,
    /// The remote: `s3://bucket/prefix` or a folder. Default: `PIPE_REMOTE`, else the
    /// pipeline's top-level `remote:`.
    #[arg(long, value_name = "URL")]
    pub remote: Option<String>,
    /// Exit at once when another `pipe` holds the project lock.
    #[arg(long)]
    pub no_wait: bool,
}

pub fn run(a: PullArgs) -> Result<i32> {
    let (root, pipeline) = super::project::locate(a.pipeline.as_deref())?;
    let settings = crate::config::settings::read(&root, &pipeline)?;
    let url = crate::remote::select::remote_url(
        a.remote.as_deref(),
        settings.remote.as_deref(),
        &root.join(&pipeline),
    )?;
    let remote = crate::remote::Remote::open(&url, &root)?;
    // The project lock first: a run may be writing the lock file and the store.
    let cache = crate::project::open_cache(&root);
    let _lock = crate::engine::lock_project(&cache, !a.no_wait)?;
    let lock_path = crate::layout::Layout::new(&root).lock_file(&pipeline);
    let lock = crate::cache::lockfile::LockFile::read(&lock_path).map_err(PipeError::config)?;
    let fps = crate::remote::sync::lock_fingerprints(&lock);
    if fps.is_empty() {
        return Err(PipeError::config(format!(
            "{}: no lock file entries to pull (the lock file names the runs to fetch)",
            lock_path.display()
        )));
    }
    let t = crate::remote::pull(&cache, &fps, &remote)?;
    println!(
        "pulled {} records and {} objects ({}) from {}; {} records and {} objects already here; {} runs not on the remote",
        t.records,
        t.objects,
        crate::bytes::human(t.bytes),
        remote.describe(),
        t.records_skipped,
        t.objects_skipped,
        t.missing.len()
    );
    for c in &t.corrupt {
        eprintln!("warning: {c} (not used)");
    }
    for fp in &t.incomplete {
        eprintln!("warning: run record {fp} not pulled: some of its objects are missing or corrupt on the remote");
    }
    Ok(if t.corrupt.is_empty() && t.incomplete.is_empty() {
        0
    } else {
        1
    })
}
