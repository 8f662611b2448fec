//! `pipe push PIPELINE`: uploads the run records and store objects that the pipeline's lock
//! file references (and the logs the records name) to the remote store, objects first;
//! replaces remote objects of the wrong size (with `--verify`, of the wrong content).

use crate::error::{PipeError, Result};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct PushArgs {
    /// The pipeline: a file, its name (`ci`) or its lock file; default as for `pipe run`.
    pub pipeline: Option<PathBuf>,
    /// The remote: `s3://bucket/prefix` or a folder. Default: `PIPE_REMOTE`, else the
    /// pipeline's top-level `remote:`.
    #[arg(long, value_name = "URL")]
    pub remote: Option<String>,
    /// Also re-hash every object the remote already has (reading it through) and validate
    /// every record it has; a wrong one is replaced. Without it, objects are checked by size.
    #[arg(long)]
    pub verify: bool,
}

pub fn run(a: PushArgs) -> Result<i32> {
    let (root, pipeline) = super::project::locate(a.pipeline.as_deref())?;
    let remote = super::project::open_remote(&root, &pipeline, a.remote.as_deref())?;
    let lock_path = crate::layout::Layout::new(&root).lock_file(&pipeline);
    let lock = crate::cache::lockfile::LockFile::read(&lock_path).map_err(PipeError::config)?;
    let fps = crate::remote::sync::lock_fingerprints(&lock);
    if fps.is_empty() {
        return Err(PipeError::config(format!(
            "{}: no lock file entries to push; run `pipe run {}` first",
            lock_path.display(),
            pipeline.display()
        )));
    }
    let cache = crate::project::open_cache(&root);
    let t = crate::remote::push::push_with(&cache, &fps, &remote, a.verify)?;
    println!(
        "pushed {} records and {} objects ({}) to {}; {} records and {} objects already there{}",
        t.records,
        t.objects,
        crate::bytes::human(t.bytes),
        remote.describe(),
        t.records_skipped,
        t.objects_skipped,
        if a.verify {
            format!(" ({} re-hashed)", t.verified)
        } else {
            String::new()
        }
    );
    for r in &t.repaired {
        eprintln!("replaced on the remote: {r}");
    }
    for fp in &t.missing {
        eprintln!("warning: no local run record for {fp} (not pushed)");
    }
    for fp in &t.incomplete {
        eprintln!("warning: run record {fp} not pushed: some of its objects are missing locally");
    }
    Ok(0)
}
