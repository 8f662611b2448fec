//! The content-addressed store under `cache/`: objects named by their blake3, run records,
//! quarantine for corrupt objects, and materialising objects into the working tree as copies
//! (reflink where the filesystem supports it), never as links into the store unless the user
//! opts in with `PIPE_LINK=hardlink`.

use super::stat::StatCache;
use super::{hash_file, tmp_beside, RunRecord};
use crate::digest::{Blake3, Fingerprint};
use crate::layout::{CacheLayout, Layout};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// How outputs are placed in the working tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkMode {
    /// A reflink where the filesystem supports it, else a copy (the default): an edit under
    /// `results/` can never change the store.
    Copy,
    /// Hard links into the store (`PIPE_LINK=hardlink`): no extra disk space, but an edit in
    /// place changes the stored object too (pipe then finds it corrupt and quarantines it).
    Hardlink,
}

/// The state of one store object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectState {
    Ok,
    Missing,
    Corrupt,
}

/// Why an object could not be placed.
#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    #[error("the stored object is {}", if *.0 == ObjectState::Missing { "missing" } else { "corrupt" })]
    Bad(ObjectState),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The `cache/` folder of a project.
#[derive(Debug, Clone)]
pub struct Cache {
    /// The project root (no write or delete goes above it or through a link below it).
    root: PathBuf,
    layout: CacheLayout,
    pub link: LinkMode,
    /// Objects already warned about in this process (one warning each).
    warned: Arc<Mutex<HashSet<Blake3>>>,
}

impl Cache {
    pub fn new(root: &Path) -> Self {
        let link = match std::env::var("PIPE_LINK").as_deref() {
            Ok("hardlink") => LinkMode::Hardlink,
            _ => LinkMode::Copy,
        };
        Cache {
            root: root.to_path_buf(),
            layout: Layout::new(root).cache().clone(),
            link,
            warned: Arc::default(),
        }
    }

    /// The project root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `cache/`.
    pub fn dir(&self) -> &Path {
        self.layout.dir()
    }

    /// The names of everything under `cache/`.
    pub fn layout(&self) -> &CacheLayout {
        &self.layout
    }

    pub fn object_path(&self, hash: &Blake3) -> PathBuf {
        self.layout.object(hash)
    }

    pub fn record_path(&self, fp: &Fingerprint) -> PathBuf {
        self.layout.record(fp)
    }

    /// The run record for a fingerprint, if there is a readable one.
    pub fn record(&self, fp: &Fingerprint) -> Option<RunRecord> {
        let bytes = std::fs::read(self.record_path(fp)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Writes a record atomically (temp file + rename): the last step of a run.
    pub fn write_record(&self, rec: &RunRecord) -> std::io::Result<()> {
        let path = self.record_path(&rec.fingerprint);
        super::write_atomic(&path, &serde_json::to_vec_pretty(rec)?)
    }

    /// Checks an object: through the stat cache, or re-hashed with `rehash`.
    pub fn object_state(&self, hash: &Blake3, stats: &StatCache, rehash: bool) -> ObjectState {
        let obj = self.object_path(hash);
        match std::fs::symlink_metadata(&obj) {
            Err(_) => return ObjectState::Missing,
            Ok(m) if !m.file_type().is_file() => return ObjectState::Corrupt,
            Ok(_) => {}
        }
        match stats.hash(&obj, rehash) {
            Ok(h) if h == *hash => ObjectState::Ok,
            Ok(_) => ObjectState::Corrupt,
            Err(_) => ObjectState::Corrupt,
        }
    }

    /// Moves a corrupt object (file or folder) to `cache/quarantine/`, with one warning naming
    /// `what` (the output it belongs to) and where it went.
    pub fn quarantine(&self, hash: &Blake3, what: &str, stats: &StatCache) {
        let obj = self.object_path(hash);
        stats.forget(&obj);
        let q = self.layout.quarantine();
        let _ = std::fs::create_dir_all(&q);
        let mut dest = q.join(hash.as_str());
        let mut k = 1;
        while std::fs::symlink_metadata(&dest).is_ok() {
            dest = q.join(format!("{hash}.{k}"));
            k += 1;
        }
        let moved = std::fs::rename(&obj, &dest).is_ok();
        if !moved {
            let _ = super::fsafe::remove(&self.root, &obj);
        }
        let first = self
            .warned
            .lock()
            .map(|mut w| w.insert(*hash))
            .unwrap_or(true);
        if first {
            let rel = dest.strip_prefix(&self.root).unwrap_or(&dest);
            eprintln!(
                "warning: the stored copy of {what} (object {}) is corrupt; {}",
                hash.short(),
                if moved {
                    format!("moved it to {} and replacing it", rel.display())
                } else {
                    "removed it and replacing it".to_string()
                }
            );
        }
    }

    /// Puts the file `src` (whose content hash is `hash`) into the store as a copy, so that
    /// `src` can stay where it is. An existing object is verified first; a corrupt one is
    /// quarantined and replaced.
    pub fn store(
        &self,
        src: &Path,
        hash: &Blake3,
        what: &str,
        stats: &StatCache,
    ) -> std::io::Result<()> {
        let obj = self.object_path(hash);
        match self.object_state(hash, stats, false) {
            ObjectState::Ok => return Ok(()),
            ObjectState::Corrupt => self.quarantine(hash, what, stats),
            ObjectState::Missing => {}
        }
        std::fs::create_dir_all(obj.parent().expect("object has a parent"))?;
        let tmp = tmp_beside(&obj);
        let r = (|| {
            clone_or_copy(src, &tmp)?;
            let mut perm = std::fs::metadata(&tmp)?.permissions();
            perm.set_readonly(true);
            std::fs::set_permissions(&tmp, perm)?;
            std::fs::rename(&tmp, &obj)
        })();
        if r.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        r?;
        stats.remember(&obj, hash);
        Ok(())
    }

    /// Places object `hash` at `dest` (a copy or reflink; a hard link with `PIPE_LINK=hardlink`),
    /// replacing what is there. The object is verified first (through the stat cache).
    pub fn materialise(
        &self,
        hash: &Blake3,
        dest: &Path,
        stats: &StatCache,
    ) -> Result<(), PlaceError> {
        let state = self.object_state(hash, stats, false);
        if state != ObjectState::Ok {
            return Err(PlaceError::Bad(state));
        }
        let obj = self.object_path(hash);
        if let Some(p) = dest.parent() {
            std::fs::create_dir_all(p)?;
        }
        let tmp = tmp_beside(dest);
        let r = (|| {
            match self.link {
                LinkMode::Hardlink => {
                    if std::fs::hard_link(&obj, &tmp).is_err() {
                        clone_or_copy(&obj, &tmp)?;
                    }
                }
                LinkMode::Copy => clone_or_copy(&obj, &tmp)?,
            }
            if let Ok(m) = std::fs::symlink_metadata(dest) {
                if m.is_dir() {
                    std::fs::remove_dir_all(dest)?;
                }
            }
            std::fs::rename(&tmp, dest)
        })();
        if r.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        r?;
        stats.remember(dest, hash);
        Ok(())
    }

    /// Re-stores an object from a working-tree file that still has its content (repairs a
    /// corrupt or missing object without recomputing). False when the file does not match.
    pub fn repair_from(
        &self,
        file: &Path,
        hash: &Blake3,
        what: &str,
        stats: &StatCache,
    ) -> std::io::Result<bool> {
        match stats.hash(file, false) {
            Ok(h) if h == *hash => {}
            _ => return Ok(false),
        }
        if self.object_state(hash, stats, true) == ObjectState::Corrupt {
            self.quarantine(hash, what, stats);
        }
        self.store(file, hash, what, stats)?;
        Ok(hash_file(&self.object_path(hash))? == *hash)
    }
}

/// A reflink (`FICLONE`) where the filesystem supports it, else a plain copy. `dst` must not
/// exist.
fn clone_or_copy(src: &Path, dst: &Path) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let from = std::fs::File::open(src)?;
    let to = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dst)?;
    const FICLONE: libc::c_ulong = 0x4004_9409;
    // SAFETY: both descriptors are open files owned by this function for the whole call;
    // FICLONE reads no memory of ours and fails cleanly where unsupported.
    let cloned = unsafe { libc::ioctl(to.as_raw_fd(), FICLONE as _, from.as_raw_fd()) } == 0;
    if !cloned {
        let mut from = from;
        let mut to = to;
        std::io::copy(&mut from, &mut to)?;
    }
    Ok(())
}
