//! The stat cache: a file's content hash remembered with its size, mtime, ctime and inode, so an
//! unchanged file is never re-read and any change (an edit, a replacement, even one that keeps
//! the size) means a re-hash. Entries recorded within two seconds of the file's last change are
//! "racy" (a later edit could keep every stat field) and are re-hashed once more.

use super::{fsafe, hash_file, walk};
use crate::digest::Blake3;
use crate::layout::Layout;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A change closer than this to the moment an entry was recorded is not trusted.
const RACY_NS: i64 = 2_000_000_000;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Entry {
    size: u64,
    mtime_ns: i64,
    #[serde(default)]
    ctime_ns: i64,
    ino: u64,
    hash: Blake3,
    /// When the entry was recorded (wall clock, ns).
    #[serde(default)]
    at_ns: i64,
}

/// The stat fields an entry is matched on.
struct Stat {
    size: u64,
    mtime_ns: i64,
    ctime_ns: i64,
    ino: u64,
    is_file: bool,
}

fn stat(path: &Path) -> std::io::Result<Stat> {
    let md = std::fs::symlink_metadata(path)?;
    Ok(Stat {
        size: md.len(),
        mtime_ns: md.mtime() * 1_000_000_000 + md.mtime_nsec(),
        ctime_ns: md.ctime() * 1_000_000_000 + md.ctime_nsec(),
        ino: md.ino(),
        is_file: md.file_type().is_file(),
    })
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// The largest `cache/stat.json` read (about a million files); a larger one starts empty.
const MAX_BYTES: u64 = 1 << 30;

/// The stat cache, loaded from and saved to `cache/stat.json`.
pub struct StatCache {
    /// The project root (the file is written below it, never through a link).
    root: PathBuf,
    path: PathBuf,
    /// The entries, and whether any changed since loading.
    map: Mutex<(HashMap<String, Entry>, bool)>,
}

impl StatCache {
    /// Loads the stat cache of the project at `root` (`cache/stat.json`); an unreadable file
    /// (a link, a FIFO, too large, or holding anything but checked hashes) starts it empty.
    pub fn load(root: &Path) -> Self {
        let path = Layout::new(root).cache().stat();
        let map = fsafe::read_regular(&path, MAX_BYTES)
            .ok()
            .flatten()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        StatCache {
            root: root.to_path_buf(),
            path,
            map: Mutex::new((map, false)),
        }
    }

    /// A stat cache that starts empty and is never saved (for one-off store writes).
    pub fn detached() -> Self {
        StatCache {
            root: PathBuf::new(),
            path: PathBuf::new(),
            map: Mutex::new((HashMap::new(), false)),
        }
    }

    /// Saves when an entry changed since loading or the last save (atomic rename, never
    /// through a link; best effort: the cache only saves work).
    pub fn save(&self) {
        let Ok(mut m) = self.map.lock() else { return };
        if m.1 && !self.path.as_os_str().is_empty() {
            if let Ok(b) = serde_json::to_vec(&m.0) {
                if fsafe::write_atomic(&self.root, &self.path, &b).is_ok() {
                    m.1 = false;
                }
            }
        }
    }

    /// Whether an entry changed since loading or the last save.
    pub fn changed(&self) -> bool {
        self.map.lock().map(|m| m.1).unwrap_or(false)
    }

    fn key(path: &Path) -> String {
        path.to_string_lossy().into_owned()
    }

    /// The remembered hash of a regular file, when its stat still matches a trusted entry.
    pub fn known(&self, path: &Path) -> Option<Blake3> {
        let st = stat(path).ok()?;
        let m = self.map.lock().ok()?;
        let e = m.0.get(&Self::key(path))?;
        let same = st.is_file
            && e.size == st.size
            && e.mtime_ns == st.mtime_ns
            && e.ctime_ns == st.ctime_ns
            && e.ino == st.ino;
        let settled = e.at_ns - st.mtime_ns.max(st.ctime_ns) > RACY_NS;
        (same && settled).then_some(e.hash)
    }

    /// Remembers `hash` for the file now at `path` (one the caller just wrote or hashed).
    /// An entry that already says the same and is settled is left alone, so that a run that
    /// changed nothing does not rewrite `stat.json`.
    pub fn remember(&self, path: &Path, hash: &Blake3) {
        let Ok(st) = stat(path) else { return };
        let Ok(mut m) = self.map.lock() else { return };
        let key = Self::key(path);
        if let Some(e) = m.0.get(&key) {
            let same = e.size == st.size
                && e.mtime_ns == st.mtime_ns
                && e.ctime_ns == st.ctime_ns
                && e.ino == st.ino
                && e.hash == *hash;
            if same && e.at_ns - st.mtime_ns.max(st.ctime_ns) > RACY_NS {
                return;
            }
        }
        m.0.insert(
            key,
            Entry {
                size: st.size,
                mtime_ns: st.mtime_ns,
                ctime_ns: st.ctime_ns,
                ino: st.ino,
                hash: *hash,
                at_ns: now_ns(),
            },
        );
        m.1 = true;
    }

    /// Forgets a path (it was removed or replaced by something not hashed).
    pub fn forget(&self, path: &Path) {
        if let Ok(mut m) = self.map.lock() {
            if m.0.remove(&Self::key(path)).is_some() {
                m.1 = true;
            }
        }
    }

    /// Hash of one regular file: from the cache when its stat matches, else re-read. With
    /// `rehash`, always re-read. Symlinks and folders are errors (`InvalidData`).
    pub fn hash(&self, path: &Path, rehash: bool) -> std::io::Result<Blake3> {
        if !rehash {
            if let Some(h) = self.known(path) {
                return Ok(h);
            }
        }
        let st = stat(path)?;
        if !st.is_file {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "not a regular file",
            ));
        }
        let h = hash_file(path)?;
        self.remember(path, &h);
        Ok(h)
    }

    /// Hash of one file, from the cache when its stat matches.
    pub fn file_hash(&self, path: &Path) -> std::io::Result<Blake3> {
        self.hash(path, false)
    }

    /// Hash of a file or a folder (the folder's sorted relative paths with their file hashes);
    /// None when it does not exist.
    pub fn input_hash(&self, path: &Path) -> Option<String> {
        let md = std::fs::metadata(path).ok()?;
        if md.is_dir() {
            let files = walk(path).ok()?;
            let mut list = Vec::with_capacity(files.len());
            for f in files {
                let p = path.join(&f);
                let h = match self.known(&p) {
                    Some(h) => h,
                    None => {
                        let h = hash_file(&p).ok()?;
                        self.remember(&p, &h);
                        h
                    }
                };
                list.push((f.clone(), h.to_string()));
            }
            let bytes = serde_json::to_vec(&list).ok()?;
            Some(format!("dir:{}", blake3::hash(&bytes).to_hex()))
        } else {
            match self.known(path) {
                Some(h) => Some(h.to_string()),
                None => {
                    let h = hash_file(path).ok()?;
                    self.remember(path, &h);
                    Some(h.to_string())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edit_that_keeps_the_size_is_seen() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("x");
        std::fs::write(&f, "AAAA").unwrap();
        let s = StatCache::load(d.path());
        let a = s.hash(&f, false).unwrap();
        std::fs::write(&f, "BBBB").unwrap();
        let b = s.hash(&f, false).unwrap();
        assert_ne!(a, b);
        assert_eq!(b, hash_file(&f).unwrap());
    }
}
