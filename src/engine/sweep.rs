//! Housekeeping around a run: refusing pipe's own folders when they are links, and after the
//! run removing the folders of instances no longer in the pipeline and checkpoint files no
//! current instance's record lists. (What killed runs left is swept when the project lock is
//! taken: `cache::tmp::sweep`.)

use crate::cache::RunRecord;
use crate::error::{PipeError, Result};
use crate::project::Project;

/// Refuses to run when one of pipe's own folders is a symlink (pipe never writes through a
/// link it did not create).
pub fn check_own_folders(proj: &Project) -> Result<()> {
    proj.cache
        .check_links()
        .map_err(|e| PipeError::config(e.to_string()))?;
    let root = &proj.pipeline.root;
    let dirs = proj.dirs();
    for d in [
        proj.cache.dir().to_path_buf(),
        dirs.results(),
        dirs.checkpoints(),
    ] {
        crate::cache::fsafe::check_dir(root, &d).map_err(|e| PipeError::config(e.to_string()))?;
    }
    Ok(())
}

/// Removes the results and checkpoint folders of instances no longer in the pipeline (a value
/// dropped from a matrix, a renamed stage), and says so.
pub(crate) fn removed_instances(proj: &Project) {
    let p = &proj.pipeline;
    let root = &p.root;
    let ids: std::collections::BTreeSet<&str> = p.nodes.iter().map(|n| n.id.as_str()).collect();
    let ckpts: std::collections::BTreeSet<&str> =
        p.nodes.iter().map(|n| n.ckpt_name.as_str()).collect();
    let dirs = proj.dirs();
    for (dir, keep) in [(dirs.results(), &ids), (dirs.checkpoints(), &ckpts)] {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let path = e.path();
            if path == dirs.logs() || keep.contains(name.as_str()) {
                continue;
            }
            if crate::cache::fsafe::remove(root, &path).is_ok() {
                eprintln!(
                    "removed {} (no longer in {})",
                    path.strip_prefix(root).unwrap_or(&path).display(),
                    p.file.display()
                );
            }
        }
    }
}

/// Removes checkpoint files that no current instance's record lists from folders whose every
/// instance completed (e.g. `epoch_4.*` after `epochs: 4` became 3), and says so.
pub(crate) fn stray_checkpoints(proj: &Project, records: &[Option<RunRecord>]) {
    let recs: Vec<Option<&RunRecord>> = records.iter().map(Option::as_ref).collect();
    let root = &proj.pipeline.root;
    for (i, stray) in crate::plan::check::stray_checkpoints(proj, &recs) {
        for path in stray {
            if crate::cache::fsafe::remove(root, &root.join(&path)).is_ok() {
                proj.stats.forget(&root.join(&path));
                eprintln!(
                    "removed {path} (not an output of any instance of `{}`)",
                    proj.pipeline.nodes[i].stage
                );
            }
        }
    }
}
