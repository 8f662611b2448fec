//! The content-addressed store under `cache/`: objects named by their blake3, run records,
//! quarantine for corrupt objects, and materialising objects into the working tree as copies
//! (reflink where the filesystem supports it), never as links into the store unless the user
//! opts in with `PIPE_LINK=hardlink`.

use super::fsafe::{self, FsError};
use super::stat::StatCache;
use super::trust::{self, Owners, RecordError};
use super::{hash_file, tmp, RunRecord};
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

/// Why a record from elsewhere (a remote) was not admitted into the store.
#[derive(Debug, thiserror::Error)]
pub enum AdmitError {
    #[error("{0}")]
    Invalid(#[from] RecordError),
    #[error("{0}")]
    Io(#[from] FsError),
}

/// The `cache/` folder of a project.
#[derive(Clone)]
pub struct Cache {
    /// The project root (no write or delete goes above it or through a link below it).
    root: PathBuf,
    layout: CacheLayout,
    pub link: LinkMode,
    /// The `outs` each stage owns, for validating records (see [`trust`]).
    owners: Option<Arc<Owners>>,
    /// Objects and records already warned about in this process (one warning each).
    warned: Arc<Mutex<HashSet<String>>>,
    /// Move nothing (`status --verify`): an invalid record is only warned about.
    read_only: bool,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("dir", &self.layout.dir())
            .field("link", &self.link)
            .finish()
    }
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
            owners: None,
            warned: Arc::default(),
            read_only: false,
        }
    }

    /// From now on nothing is moved aside: an invalid record is warned about and ignored
    /// (for commands that report and change nothing).
    pub fn set_read_only(&mut self) {
        self.read_only = true;
    }

    /// Refuses a store whose folder, or one of its folders (`objects/`, `runs/`, `tmp/`,
    /// `quarantine/`, `downloads/`, `interrupted/`, `jobs/`, `experiments/`) or its lock file is
    /// a symbolic link: pipe never writes through a link it did not create. Cheap: a few
    /// `lstat`s, done before a run records anything.
    pub fn check_links(&self) -> Result<(), FsError> {
        fsafe::check_dir(&self.root, self.dir())?;
        let l = &self.layout;
        for d in [
            l.objects(),
            l.runs(),
            l.tmp(),
            l.quarantine(),
            l.downloads(),
            l.interrupted(),
            l.jobs(),
            l.experiments(),
            l.lock(),
        ] {
            if std::fs::symlink_metadata(&d).is_ok_and(|m| m.file_type().is_symlink()) {
                return Err(FsError::Symlink(d));
            }
        }
        Ok(())
    }

    /// Checks the project outputs of every record against the `outs` its stage declares
    /// (without it, project outputs need only obey the rules of `outs`).
    pub fn with_owners(mut self, owners: Arc<Owners>) -> Self {
        self.owners = Some(owners);
        self
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

    /// The path relative to the project root, for messages.
    fn rel<'a>(&self, p: &'a Path) -> &'a Path {
        p.strip_prefix(&self.root).unwrap_or(p)
    }

    /// Warns once per process about `key`.
    fn warn_once(&self, key: String, msg: impl FnOnce() -> String) {
        let first = self
            .warned
            .lock()
            .map(|mut w| w.insert(key))
            .unwrap_or(true);
        if first {
            eprintln!("warning: {}", msg());
        }
    }

    /// Validates record bytes filed under `fp` (see [`trust`]).
    pub fn validate(&self, fp: &Fingerprint, bytes: &[u8]) -> Result<RunRecord, RecordError> {
        trust::parse(bytes, fp, self.owners.as_deref())
    }

    /// The run record for a fingerprint and its file's bytes: `Ok(None)` when there is none,
    /// an error when the file is there but is not a valid record for `fp` (a link, a FIFO, too
    /// large, or failing [`trust`]).
    pub fn read_record(
        &self,
        fp: &Fingerprint,
    ) -> Result<Option<(RunRecord, Vec<u8>)>, RecordError> {
        let path = self.record_path(fp);
        if let Err(e) = fsafe::check_parent(&self.root, &path) {
            return Err(RecordError::Parse(e.to_string()));
        }
        match fsafe::read_regular(&path, trust::MAX_RECORD_BYTES) {
            Ok(None) => Ok(None),
            Ok(Some(bytes)) => self.validate(fp, &bytes).map(|r| Some((r, bytes))),
            Err(FsError::TooLarge { limit, .. }) => Err(RecordError::TooLarge { limit }),
            Err(FsError::Io { source, .. }) => Err(RecordError::Parse(source.to_string())),
            Err(e) => Err(RecordError::Parse(e.to_string())),
        }
    }

    /// The run record for a fingerprint, if there is a valid one. An invalid one is refused
    /// with one warning naming it and why, and moved to `cache/quarantine/`: its stage then
    /// runs again.
    pub fn record(&self, fp: &Fingerprint) -> Option<RunRecord> {
        self.checked_record(fp).map(|(r, _)| r)
    }

    /// The bytes of the valid run record of `fp` (as [`Cache::record`]).
    pub fn record_bytes(&self, fp: &Fingerprint) -> Option<Vec<u8>> {
        self.checked_record(fp).map(|(_, b)| b)
    }

    fn checked_record(&self, fp: &Fingerprint) -> Option<(RunRecord, Vec<u8>)> {
        match self.read_record(fp) {
            Ok(r) => r,
            Err(e) => {
                self.quarantine_record(fp, &e);
                None
            }
        }
    }

    /// Moves an invalid record aside, with one warning.
    fn quarantine_record(&self, fp: &Fingerprint, why: &RecordError) {
        let path = self.record_path(fp);
        if self.read_only {
            self.warn_once(format!("record {fp}"), || {
                format!(
                    "the run record {} is refused: {why}; its stage would run again",
                    self.rel(&path).display()
                )
            });
            return;
        }
        let dest = self.quarantine_dest(&format!("{fp}.json"));
        let moved = dest
            .as_ref()
            .map_err(|e| e.to_string())
            .and_then(|d| fsafe::rename(&self.root, &path, d).map_err(|e| e.to_string()));
        let what = match &moved {
            Ok(()) => format!(
                "moved it to {}",
                self.rel(dest.as_deref().unwrap_or(&path)).display()
            ),
            Err(e) => format!("could not move it aside ({e}); it is ignored"),
        };
        self.warn_once(format!("record {fp}"), || {
            format!(
                "the run record {} is refused: {why}; {what}, and its stage will run again",
                self.rel(&path).display()
            )
        });
    }

    /// A free name in `cache/quarantine/` for `name` (`name`, `name.1`, …), the folder created.
    fn quarantine_dest(&self, name: &str) -> Result<PathBuf, FsError> {
        let q = self.layout.quarantine();
        fsafe::create_dir_all(&self.root, &q)?;
        let mut dest = q.join(name);
        let mut k = 1;
        while std::fs::symlink_metadata(&dest).is_ok() {
            dest = q.join(format!("{name}.{k}"));
            k += 1;
        }
        Ok(dest)
    }

    /// Writes a record atomically (temp file + rename): the last step of a run.
    pub fn write_record(&self, rec: &RunRecord) -> std::io::Result<()> {
        let path = self.record_path(&rec.fingerprint);
        fsafe::write_atomic(&self.root, &path, &serde_json::to_vec_pretty(rec)?)?;
        Ok(())
    }

    /// Validates record bytes from elsewhere (a remote) filed under `fp` and, when valid,
    /// writes them into the store.
    pub fn admit_record(&self, fp: &Fingerprint, bytes: &[u8]) -> Result<RunRecord, AdmitError> {
        let rec = self.validate(fp, bytes)?;
        fsafe::write_atomic(&self.root, &self.record_path(fp), bytes)?;
        Ok(rec)
    }

    /// Checks an object: through the stat cache, or re-hashed with `rehash`.
    pub fn object_state(&self, hash: &Blake3, stats: &StatCache, rehash: bool) -> ObjectState {
        let obj = self.object_path(hash);
        if fsafe::check_parent(&self.root, &obj).is_err() {
            return ObjectState::Missing;
        }
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
    /// `what` (the output it belongs to) and what became of it.
    pub fn quarantine(&self, hash: &Blake3, what: &str, stats: &StatCache) {
        let obj = self.object_path(hash);
        stats.forget(&obj);
        let done = self.move_aside(&obj, hash.as_str());
        self.warn_once(format!("object {hash}"), || {
            format!(
                "the stored copy of {what} (object {}) is corrupt; {done}",
                hash.short()
            )
        });
    }

    /// Moves `path` to `cache/quarantine/<name>`, else removes it; what became of it, for the
    /// warning ("removed" only when it was there and is gone now).
    fn move_aside(&self, path: &Path, name: &str) -> String {
        let moved = self
            .quarantine_dest(name)
            .and_then(|dest| fsafe::rename(&self.root, path, &dest).map(|_| dest));
        let e = match moved {
            Ok(dest) => {
                return format!("moved it to {} and replacing it", self.rel(&dest).display())
            }
            Err(e) => e,
        };
        let there = || std::fs::symlink_metadata(path).is_ok();
        if !there() {
            return format!("it vanished while being moved aside ({e}); replacing it");
        }
        match fsafe::remove(&self.root, path) {
            Ok(()) if !there() => {
                format!("could not move it aside ({e}), removed it and replacing it")
            }
            Ok(()) => format!("could not move or remove it ({e}); it is ignored and replaced"),
            Err(e2) => format!(
                "could not move it aside ({e}) or remove it ({e2}); it is ignored and replaced"
            ),
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
        match self.object_state(hash, stats, false) {
            ObjectState::Ok => return Ok(()),
            ObjectState::Corrupt => self.quarantine(hash, what, stats),
            ObjectState::Missing => {}
        }
        let obj = self.object_path(hash);
        self.place(&obj, |tmp| {
            // With PIPE_LINK=hardlink the store shares the file: no second copy.
            match self.link {
                LinkMode::Hardlink if std::fs::hard_link(src, tmp).is_ok() => {}
                _ => clone_or_copy(src, tmp)?,
            }
            set_readonly(tmp)
        })?;
        stats.remember(&obj, hash);
        Ok(())
    }

    /// Like [`Cache::store`] for a verified temporary file of the store's own (a download in
    /// `cache/tmp/`): it is moved into place rather than copied.
    pub fn adopt(
        &self,
        file: &Path,
        hash: &Blake3,
        what: &str,
        stats: &StatCache,
    ) -> std::io::Result<()> {
        match self.object_state(hash, stats, false) {
            ObjectState::Ok => return Ok(()),
            ObjectState::Corrupt => self.quarantine(hash, what, stats),
            ObjectState::Missing => {}
        }
        let obj = self.object_path(hash);
        set_readonly(file)?;
        fsafe::create_dir_all(&self.root, obj.parent().unwrap_or(&self.root))?;
        fsafe::rename(&self.root, file, &obj)?;
        stats.remember(&obj, hash);
        Ok(())
    }

    /// Creates `dest` through a new temporary file beside it (`fill` writes it) and a rename,
    /// never through a link: the one way the store writes a file.
    fn place(
        &self,
        dest: &Path,
        fill: impl FnOnce(&Path) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        let parent = dest.parent().unwrap_or(&self.root);
        fsafe::create_dir_all(&self.root, parent)?;
        let tmp = tmp::beside(&self.root, dest);
        let r = fill(&tmp).and_then(|()| {
            if std::fs::symlink_metadata(dest).is_ok_and(|m| m.is_dir()) {
                fsafe::remove(&self.root, dest)?;
            }
            Ok(fsafe::rename(&self.root, &tmp, dest)?)
        });
        if r.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        r
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
        self.place(dest, |tmp| match self.link {
            LinkMode::Hardlink if std::fs::hard_link(&obj, tmp).is_ok() => Ok(()),
            _ => clone_or_copy(&obj, tmp),
        })?;
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

/// Makes a store file read-only.
fn set_readonly(path: &Path) -> std::io::Result<()> {
    let mut perm = std::fs::metadata(path)?.permissions();
    perm.set_readonly(true);
    std::fs::set_permissions(path, perm)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A store at a fresh root holding one object; the root, the store and the hash.
    fn one_object() -> (tempfile::TempDir, Cache, Blake3) {
        let d = tempfile::tempdir().unwrap();
        let cache = Cache::new(d.path());
        let h = Blake3::of(b"x");
        let obj = cache.object_path(&h);
        std::fs::create_dir_all(obj.parent().unwrap()).unwrap();
        std::fs::write(&obj, b"corrupted").unwrap();
        (d, cache, h)
    }

    #[test]
    fn quarantine_says_removed_only_when_it_removed() {
        // Moved aside.
        let (_d, cache, h) = one_object();
        let said = cache.move_aside(&cache.object_path(&h), h.as_str());
        assert!(said.starts_with("moved it to cache/quarantine/"), "{said}");
        assert!(!cache.object_path(&h).exists());

        // The quarantine folder cannot be made (a file is in the way): removed.
        let (_d, cache, h) = one_object();
        std::fs::write(cache.layout().quarantine(), b"in the way").unwrap();
        let said = cache.move_aside(&cache.object_path(&h), h.as_str());
        assert!(said.contains("removed it"), "{said}");
        assert!(std::fs::symlink_metadata(cache.object_path(&h)).is_err());

        // Neither moved nor removed (its folder is a link pipe refuses to go through): the
        // warning says so, and the file is where it was.
        let (d, cache, h) = one_object();
        let obj = cache.object_path(&h);
        let shard = obj.parent().unwrap().to_path_buf();
        let elsewhere = d.path().join("elsewhere");
        std::fs::rename(&shard, &elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &shard).unwrap();
        let said = cache.move_aside(&obj, h.as_str());
        assert!(!said.contains("removed it"), "{said}");
        assert!(said.contains("it is ignored"), "{said}");
        assert!(elsewhere.join(obj.file_name().unwrap()).exists());

        // Already gone.
        let (_d, cache, h) = one_object();
        std::fs::remove_file(cache.object_path(&h)).unwrap();
        let said = cache.move_aside(&cache.object_path(&h), h.as_str());
        assert!(!said.contains("removed it"), "{said}");
        assert!(said.contains("vanished"), "{said}");
    }
}
