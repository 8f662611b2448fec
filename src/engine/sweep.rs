//! Housekeeping around a run: refusing pipe's own folders when they are links, removing what
//! killed runs left (staging folders, temporary files of dead processes), and after the run the
//! folders of instances no longer in the pipeline and checkpoint files no current instance's
//! record lists.

use crate::cache::RunRecord;
use crate::error::{PipeError, Result};
use crate::project::Project;

/// Refuses to run when one of pipe's own folders is a symlink (pipe never writes through a
/// link it did not create).
pub(crate) fn check_own_folders(proj: &Project) -> Result<()> {
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

/// Removes what killed runs left: staging folders and temporary files of dead processes.
pub(crate) fn leftovers(proj: &Project) {
    // Every run removes its staging folder (`cache/tmp/<pid>`) when it ends, so `cache/tmp`
    // holds something only after a killed run: only then are the store's folders searched for
    // its temporary files (a no-op run reads no more folders than it must).
    let leftover = std::fs::read_dir(proj.cache.layout().tmp())
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    if !leftover {
        return;
    }
    let _ = std::fs::remove_dir_all(proj.cache.layout().tmp());
    let mut dirs = vec![
        proj.cache.dir().to_path_buf(),
        proj.cache.layout().runs(),
        proj.pipeline
            .lock_path()
            .parent()
            .map(|p| p.to_path_buf())
            .unwrap_or_default(),
    ];
    if let Ok(rd) = std::fs::read_dir(proj.cache.layout().objects()) {
        dirs.extend(rd.flatten().map(|e| e.path()));
    }
    for d in dirs {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if crate::cache::is_stale_tmp(&name) && e.file_type().is_ok_and(|t| t.is_file()) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
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
