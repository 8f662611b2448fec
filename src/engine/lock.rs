//! The lock file after a run: the pipeline's current instances only, a fresh entry for each
//! that completed and the previous entry for the others. A run with overrides (`--set`,
//! `--params`, `PIPE_<STAGE>__<KEY>`) never writes it: the committed lock always describes the
//! pipeline file as written (the run's results and records are kept all the same).

use super::summary::LockUpdate;
use crate::cache::lockfile::LockFile;
use crate::cache::RunRecord;
use crate::project::Project;

/// The lock file the run leaves: every current instance, with `records[i]` for those that
/// completed and the previous entry for the others.
pub(crate) fn assemble(proj: &Project, records: &[Option<RunRecord>]) -> LockFile {
    let p = &proj.pipeline;
    let mut lock = LockFile {
        pipeline: p.name.clone(),
        stages: Default::default(),
    };
    for (n, rec) in p.nodes.iter().zip(records) {
        let entry = match rec {
            Some(rec) => Some(proj.lock_entry(n, rec)),
            None => proj.lock.stages.get(&n.id).cloned(),
        };
        if let Some(e) = entry {
            lock.stages.insert(n.id.clone(), e);
        }
    }
    lock
}

/// Writes `lock` unless the run had `overrides`; what happened, for the summary.
pub(crate) fn update(proj: &Project, lock: &LockFile, overrides: &[String]) -> LockUpdate {
    let path = proj.pipeline.lock_path();
    let shown = path
        .strip_prefix(&proj.pipeline.root)
        .unwrap_or(&path)
        .to_path_buf();
    if !overrides.is_empty() {
        return LockUpdate {
            path: shown,
            written: false,
            reason: Some(format!(
                "this run has overrides ({}); the lock file describes {} as written",
                overrides.join(", "),
                proj.pipeline.file.display()
            )),
        };
    }
    match lock.write(&proj.pipeline.root, &path) {
        Ok(()) => LockUpdate {
            path: shown,
            written: true,
            reason: None,
        },
        Err(e) => {
            eprintln!("warning: cannot write {}: {e}", path.display());
            LockUpdate {
                path: shown,
                written: false,
                reason: Some(format!("cannot write it: {e}")),
            }
        }
    }
}
