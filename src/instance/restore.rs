//! Restoring a run's materialised outputs without recomputing: the store is repaired from
//! intact working files, output folders are emptied of files the run did not produce, and
//! copies of verified objects are placed (what needs it was found by `plan::check`); the run's
//! stored log is put back with a line saying so.

use super::RestoreError;
use crate::cache::store::{ObjectState, PlaceError};
use crate::cache::{fsafe, walk, Area, RunRecord};
use crate::config::Node;
use crate::plan::check::declared_dirs;
use crate::project::Project;
use std::collections::BTreeSet;

/// Restores a record's outputs without recomputing: repairs corrupt or missing store objects
/// from intact working files, removes files the run did not produce from its output folders,
/// and places verified copies of everything else.
pub fn restore(proj: &Project, n: &Node, rec: &RunRecord) -> Result<(), RestoreError> {
    let root = &proj.pipeline.root;
    let stats = &proj.stats;
    let io = |path: &str, e: std::io::Error| RestoreError::Io {
        path: path.to_string(),
        source: e,
    };
    // 1. The store: every object intact, repaired from the tree where needed.
    for o in &rec.outputs {
        let shown = proj.display(n, o);
        match proj.cache.object_state(&o.blake3, stats, false) {
            ObjectState::Ok => {}
            state => {
                if state == ObjectState::Corrupt {
                    proj.cache.quarantine(&o.blake3, &shown, stats);
                }
                let dest = proj.dest(n, o);
                let repaired = fsafe::check_parent(root, &dest).is_ok()
                    && proj
                        .cache
                        .repair_from(&dest, &o.blake3, &shown, stats)
                        .unwrap_or(false);
                if !repaired {
                    return Err(RestoreError::Unrestorable(shown));
                }
            }
        }
    }
    // 2. Output folders: remove what the run did not produce.
    let rd = proj.results_dir(n);
    fsafe::check_dir(root, &rd).map_err(|e| {
        io(
            &format!("results/{}/{}", proj.pipeline.name, n.id),
            e.into(),
        )
    })?;
    let listed: BTreeSet<String> = rec
        .outputs
        .iter()
        .filter(|o| o.area == Area::Results)
        .map(|o| o.path.clone())
        .collect();
    for f in walk(&rd).unwrap_or_default() {
        if !listed.contains(&f) {
            let p = rd.join(&f);
            fsafe::remove(root, &p).map_err(|e| io(&f, e.into()))?;
            stats.forget(&p);
        }
    }
    let project: BTreeSet<String> = rec
        .outputs
        .iter()
        .filter(|o| o.area == Area::Project)
        .map(|o| o.path.clone())
        .collect();
    for d in declared_dirs(proj, n) {
        for f in walk(&root.join(&d)).unwrap_or_default() {
            let rel = format!("{d}/{f}");
            if !project.contains(&rel) {
                fsafe::remove(root, &root.join(&rel)).map_err(|e| io(&rel, e.into()))?;
            }
        }
    }
    // 3. Place every output that is not intact.
    for o in &rec.outputs {
        let dest = proj.dest(n, o);
        let shown = proj.display(n, o);
        if stats.known(&dest) == Some(o.blake3)
            || (std::fs::symlink_metadata(&dest).is_ok_and(|m| m.is_file() && m.len() == o.size)
                && stats.hash(&dest, false).ok() == Some(o.blake3))
        {
            continue;
        }
        let parent = dest.parent().unwrap_or(root);
        fsafe::create_dir_all(root, parent).map_err(|e| io(&shown, e.into()))?;
        if let Ok(m) = std::fs::symlink_metadata(&dest) {
            if !m.is_file() {
                fsafe::remove(root, &dest).map_err(|e| io(&shown, e.into()))?;
            }
        }
        match proj.cache.materialise(&o.blake3, &dest, stats) {
            Ok(()) => {}
            Err(PlaceError::Bad(_)) => return Err(RestoreError::Unrestorable(shown)),
            Err(PlaceError::Io(e)) => return Err(io(&shown, e)),
        }
    }
    Ok(())
}

/// Places a record's stored log at the stage's log path, with one line saying it was restored
/// and when the run it belongs to happened. Best effort: a log never blocks a restore.
pub fn restore_log(proj: &Project, n: &Node, rec: &RunRecord) {
    let path = proj.log_path(n);
    let root = &proj.pipeline.root;
    let Some(parent) = path.parent() else { return };
    if fsafe::create_dir_all(root, parent).is_err() || fsafe::remove(root, &path).is_err() {
        return;
    }
    let mut text = rec
        .log
        .as_ref()
        .and_then(|h| std::fs::read(proj.cache.object_path(h)).ok())
        .unwrap_or_default();
    let when = rec.ran_at.as_deref().unwrap_or("an earlier run");
    text.extend_from_slice(
        format!(
            "restored from the store at {}; this output was computed at {when}\n",
            humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        )
        .as_bytes(),
    );
    let _ = fsafe::write_atomic(root, &path, &text);
}
