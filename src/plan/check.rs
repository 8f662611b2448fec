//! Verifying a run's materialised outputs against its record: every file is compared through
//! the stat cache (a re-hash after any change), output folders must hold only the run's files,
//! and store objects are verified. A checkpoint folder, shared by a stage's instances (one per
//! epoch), must hold only files some current instance's record lists.

use super::Reason;
use crate::cache::store::ObjectState;
use crate::cache::{walk, Area, RunRecord};
use crate::config::Node;
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
pub(crate) fn declared_dirs(proj: &Project, n: &Node) -> Vec<String> {
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

/// Files in the checkpoint folders of the planned instances that no current instance's record
/// lists (e.g. `epoch_4.*` after `epochs: 4` became 3), by the index of the instance that
/// reports them: the last instance sharing the folder. Only folders whose every instance is
/// planned with a record are judged (`records[i]`); they are found with one pass over
/// `checkpoints/<pipeline>/`.
pub fn stray_checkpoints(
    proj: &Project,
    records: &[Option<&RunRecord>],
) -> Vec<(usize, Vec<String>)> {
    let p = &proj.pipeline;
    let dirs = proj.dirs();
    let base = dirs.checkpoints();
    let Ok(rd) = std::fs::read_dir(&base) else {
        return Vec::new();
    };
    let present: BTreeSet<String> = rd
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let mut groups: std::collections::HashMap<&str, Vec<usize>> = Default::default();
    for (i, n) in p.nodes.iter().enumerate() {
        if present.contains(&n.ckpt_name) {
            groups.entry(n.ckpt_name.as_str()).or_default().push(i);
        }
    }
    let mut out = Vec::new();
    for folder in &present {
        let group = groups
            .get(folder.as_str())
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let Some(&last) = group.last() else {
            continue; // a removed stage's folder: the end of the run removes it
        };
        let Some(recs) = group
            .iter()
            .map(|&i| records[i])
            .collect::<Option<Vec<_>>>()
        else {
            continue;
        };
        let listed: BTreeSet<&str> = recs
            .iter()
            .flat_map(|r| r.outputs.iter())
            .filter(|o| o.area == Area::Checkpoints)
            .map(|o| o.path.as_str())
            .collect();
        let stray: Vec<String> = walk(&base.join(folder))
            .unwrap_or_default()
            .into_iter()
            .filter(|f| !listed.contains(f.as_str()))
            .map(|f| dirs.output_rel(Area::Checkpoints, "", folder, &f))
            .collect();
        if !stray.is_empty() {
            out.push((last, stray));
        }
    }
    out
}
