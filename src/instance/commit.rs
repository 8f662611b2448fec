//! Committing a finished run: hash every staged output, copy it into the store (verifying and
//! replacing a corrupt existing object), move the staged files into the working tree, store the
//! log, and write the run record last, by rename — a kill at any point leaves no record, so the
//! stage simply reruns.

use super::CommitError;
use crate::cache::{
    fsafe, hash_file, manifest_hash, walk, Area, FingerprintKey, Output, RunRecord,
};
use crate::config::Node;
use crate::digest::Fingerprint;
use crate::project::Project;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The staging folders of one run and the project files it declared.
pub struct Staged<'a> {
    pub out: &'a Path,
    pub ckpt: &'a Path,
    pub meas: &'a Path,
    pub declared: &'a [PathBuf],
    pub log: &'a Path,
}

/// One file to commit.
struct File {
    area: Area,
    rel: String,
    src: PathBuf,
    /// Moved from staging into the tree (false: a project file already in place).
    staged: bool,
    measure: bool,
}

fn collect(proj: &Project, dirs: &Staged) -> Result<Vec<File>, CommitError> {
    let io = CommitError::ReadStaged;
    let mut files = Vec::new();
    let results = walk(dirs.out).map_err(io)?;
    for f in &results {
        files.push(File {
            area: Area::Results,
            rel: f.clone(),
            src: dirs.out.join(f),
            staged: true,
            measure: false,
        });
    }
    for f in walk(dirs.meas).map_err(io)? {
        if results.binary_search(&f).is_ok() {
            return Err(CommitError::OutputAndMeasurement(f));
        }
        files.push(File {
            area: Area::Results,
            src: dirs.meas.join(&f),
            rel: f,
            staged: true,
            measure: true,
        });
    }
    for f in walk(dirs.ckpt).map_err(io)? {
        files.push(File {
            area: Area::Checkpoints,
            src: dirs.ckpt.join(&f),
            rel: f,
            staged: true,
            measure: false,
        });
    }
    let root = &proj.pipeline.root;
    for d in dirs.declared {
        let full = root.join(d);
        let ds = d.to_string_lossy().trim_end_matches('/').to_string();
        fsafe::check_parent(root, &full)?;
        match std::fs::symlink_metadata(&full) {
            Ok(m) if m.is_dir() => {
                for f in walk(&full).map_err(io)? {
                    files.push(File {
                        area: Area::Project,
                        rel: format!("{ds}/{f}"),
                        src: full.join(&f),
                        staged: false,
                        measure: false,
                    });
                }
            }
            Ok(m) if m.is_file() => files.push(File {
                area: Area::Project,
                rel: ds,
                src: full,
                staged: false,
                measure: false,
            }),
            Ok(_) => return Err(CommitError::DeclaredLink(ds)),
            Err(_) => return Err(CommitError::DeclaredMissing(ds)),
        }
    }
    Ok(files)
}

/// The current time as RFC 3339 (UTC, seconds).
fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// Hashes and stores every output, places it in the tree, stores the log and writes the run
/// record (last, by rename).
pub fn commit(
    proj: &Project,
    n: &Node,
    key: FingerprintKey,
    fp: &Fingerprint,
    dirs: &Staged,
    duration: f64,
) -> Result<RunRecord, CommitError> {
    let root = &proj.pipeline.root;
    let stats = &proj.stats;
    let metrics: BTreeMap<String, Value> = std::fs::read(dirs.out.join("metrics.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| v.as_object().cloned())
        .map(|m| m.into_iter().collect())
        .unwrap_or_default();
    let files = collect(proj, dirs)?;
    let mut outputs = Vec::with_capacity(files.len());
    let mut hashes = Vec::with_capacity(files.len());
    for f in &files {
        let io = |source| CommitError::Store {
            path: f.rel.clone(),
            source,
        };
        let size = std::fs::metadata(&f.src).map_err(io)?.len();
        let h = hash_file(&f.src).map_err(io)?;
        let o = Output {
            area: f.area,
            path: f.rel.clone(),
            blake3: h,
            size,
            measure: f.measure,
        };
        proj.cache
            .store(&f.src, &h, &proj.display(n, &o), stats)
            .map_err(io)?;
        hashes.push(h);
        outputs.push(o);
    }
    // Into the tree: the results folder is replaced wholesale; checkpoints file by file.
    let rd = proj.results_dir(n);
    fsafe::remove(root, &rd)?;
    for (f, (o, h)) in files.iter().zip(outputs.iter().zip(&hashes)) {
        if !f.staged {
            stats.remember(&f.src, h);
            continue;
        }
        let dest = proj.dest(n, o);
        let shown = proj.display(n, o);
        let parent = dest.parent().unwrap_or(root);
        fsafe::create_dir_all(root, parent)?;
        fsafe::remove(root, &dest)?;
        place(&f.src, &dest, &proj.cache.object_path(h)).map_err(|source| CommitError::Place {
            path: shown,
            source,
        })?;
        stats.remember(&dest, h);
    }
    outputs.sort_by(|a, b| (a.area, &a.path).cmp(&(b.area, &b.path)));
    // The log, as it stands now, is kept with the run (it holds timings: no hash sees it).
    let log = match hash_file(dirs.log) {
        Ok(h) => proj
            .cache
            .store(dirs.log, &h, "the log", stats)
            .ok()
            .map(|_| h),
        Err(_) => None,
    };
    let rec = RunRecord {
        fingerprint: *fp,
        key,
        outputs_hash: manifest_hash(&outputs),
        outputs,
        duration_s: duration,
        metrics,
        log,
        ran_at: Some(now()),
    };
    proj.cache.write_record(&rec).map_err(CommitError::Record)?;
    Ok(rec)
}

/// Moves a staged file into the tree (a copy across filesystems) with the mode a restored copy
/// gets (`0666` less the umask), whatever mode the stage created it with. A file that is the
/// store's object itself (`PIPE_LINK=hardlink`) keeps the object's read-only mode, as a
/// restored hard link does.
fn place(src: &Path, dest: &Path, object: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    if std::fs::rename(src, dest).is_err() {
        std::fs::copy(src, dest)?;
    }
    let (d, o) = (std::fs::metadata(dest)?, std::fs::metadata(object));
    if o.is_ok_and(|o| (o.dev(), o.ino()) == (d.dev(), d.ino())) {
        return Ok(());
    }
    std::fs::set_permissions(dest, std::fs::Permissions::from_mode(0o666 & !umask()))
}

/// The process's file-creation mask, from `/proc/self/status` (`umask(2)` can only read it by
/// changing it, which would race with other threads creating files); 022 when unknown.
fn umask() -> u32 {
    static MASK: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *MASK.get_or_init(|| {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Umask:"))
                    .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
            })
            .unwrap_or(0o022)
    })
}
