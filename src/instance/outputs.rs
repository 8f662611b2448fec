//! Verifying and restoring a run's materialised outputs: every file is compared with the run
//! record through the stat cache (a re-hash after any change), output folders must hold only the
//! run's files, and store objects are verified; restoring repairs the store from intact working
//! files and places copies of verified objects, never recomputing.

use crate::cache::store::{ObjectState, PlaceError};
use crate::cache::{fsafe, walk, Area, RunRecord};
use crate::config::Node;
use crate::plan::Reason;
use crate::project::Project;
use std::collections::BTreeSet;

/// How one output stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tree {
    Intact,
    Missing,
    Differs,
}

/// The state of a record's outputs in the working tree and the store.
#[derive(Debug, Default)]
pub struct Check {
    /// Why the tree or the store does not match the record (empty: up to date).
    pub reasons: Vec<Reason>,
    /// Some output can be neither found intact in the tree nor restored from the store.
    pub unrestorable: bool,
}

/// Declared project output folders of an instance (as `/`-terminated prefixes).
fn declared_dirs(proj: &Project, n: &Node) -> Vec<String> {
    n.kind
        .declared_outputs(&n.params)
        .iter()
        .map(|d| d.to_string_lossy().trim_end_matches('/').to_string())
        .filter(|d| proj.pipeline.root.join(d).is_dir())
        .collect()
}

/// Compares a record with the tree and the store. With `rehash`, every file is re-read.
pub fn check(proj: &Project, n: &Node, rec: &RunRecord, rehash: bool) -> Check {
    let mut c = Check::default();
    let stats = &proj.stats;
    for o in &rec.outputs {
        let dest = proj.dest(n, o);
        let tree = match std::fs::symlink_metadata(&dest) {
            Err(_) => Tree::Missing,
            Ok(m) if !m.file_type().is_file() => Tree::Differs,
            Ok(m) if m.len() != o.size => Tree::Differs,
            Ok(_) => match stats.hash(&dest, rehash) {
                Ok(h) if h == o.blake3 => Tree::Intact,
                _ => Tree::Differs,
            },
        };
        let shown = proj.display(n, o);
        match tree {
            Tree::Intact => {}
            Tree::Missing => c.reasons.push(Reason::OutputMissing {
                path: shown.clone(),
            }),
            Tree::Differs => c.reasons.push(Reason::OutputDiffers {
                path: shown.clone(),
            }),
        }
        match proj.cache.object_state(&o.blake3, stats, rehash) {
            ObjectState::Ok => {}
            bad => {
                c.reasons.push(if bad == ObjectState::Missing {
                    Reason::StoredMissing { path: shown }
                } else {
                    Reason::StoredCorrupt { path: shown }
                });
                if tree != Tree::Intact {
                    c.unrestorable = true;
                }
            }
        }
    }
    // Output folders hold only the run's files.
    let listed: BTreeSet<&str> = rec
        .outputs
        .iter()
        .filter(|o| o.area == Area::Results)
        .map(|o| o.path.as_str())
        .collect();
    for f in walk(&proj.results_dir(n)).unwrap_or_default() {
        if !listed.contains(f.as_str()) {
            c.reasons.push(Reason::OutputExtra {
                path: proj
                    .dirs()
                    .output_rel(Area::Results, &n.id, &n.ckpt_name, &f),
            });
            break;
        }
    }
    let project: BTreeSet<&str> = rec
        .outputs
        .iter()
        .filter(|o| o.area == Area::Project)
        .map(|o| o.path.as_str())
        .collect();
    for d in declared_dirs(proj, n) {
        for f in walk(&proj.pipeline.root.join(&d)).unwrap_or_default() {
            let p = format!("{d}/{f}");
            if !project.contains(p.as_str()) {
                c.reasons.push(Reason::OutputExtra { path: p });
                break;
            }
        }
    }
    c
}

/// Why a record could not be restored.
#[derive(Debug)]
pub enum RestoreError {
    /// An output is neither intact in the tree nor in the store: recompute.
    Unrestorable(String),
    /// A write failed (the message names the path).
    Io(String),
}

/// Restores a record's outputs without recomputing: repairs corrupt or missing store objects
/// from intact working files, removes files the run did not produce from its output folders,
/// and places verified copies of everything else.
pub fn restore(proj: &Project, n: &Node, rec: &RunRecord) -> Result<(), RestoreError> {
    let root = &proj.pipeline.root;
    let stats = &proj.stats;
    let io = |what: &str, e: &dyn std::fmt::Display| RestoreError::Io(format!("{what}: {e}"));
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
    fsafe::check_dir(root, &rd).map_err(|e| io("results", &e))?;
    let listed: BTreeSet<String> = rec
        .outputs
        .iter()
        .filter(|o| o.area == Area::Results)
        .map(|o| o.path.clone())
        .collect();
    for f in walk(&rd).unwrap_or_default() {
        if !listed.contains(&f) {
            let p = rd.join(&f);
            fsafe::remove(root, &p).map_err(|e| io(&f, &e))?;
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
                fsafe::remove(root, &root.join(&rel)).map_err(|e| io(&rel, &e))?;
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
        fsafe::create_dir_all(root, parent).map_err(|e| io(&shown, &e))?;
        if let Ok(m) = std::fs::symlink_metadata(&dest) {
            if !m.is_file() {
                fsafe::remove(root, &dest).map_err(|e| io(&shown, &e))?;
            }
        }
        match proj.cache.materialise(&o.blake3, &dest, stats) {
            Ok(()) => {}
            Err(PlaceError::Bad(_)) => return Err(RestoreError::Unrestorable(shown)),
            Err(PlaceError::Io(e)) => return Err(io(&shown, &e)),
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
    let _ = crate::cache::write_atomic(&path, &text);
}
