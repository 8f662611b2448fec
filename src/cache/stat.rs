//! Content hashes of external inputs (files or folders) with a stat cache keyed by
//! path + size + mtime + inode, so unchanged files are never re-read and touching a file
//! without changing it costs one re-hash and reruns nothing.

use super::{hash_file, walk};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Entry {
    size: u64,
    mtime_ns: i64,
    ino: u64,
    hash: String,
}

/// The stat cache, loaded from and saved to `cache/stat.json`.
pub struct StatCache {
    path: PathBuf,
    map: Mutex<(HashMap<String, Entry>, bool)>,
}

impl StatCache {
    pub fn load(cache_dir: &Path) -> Self {
        let path = cache_dir.join("stat.json");
        let map = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        StatCache {
            path,
            map: Mutex::new((map, false)),
        }
    }

    /// Saves when something changed (atomic rename; best effort).
    pub fn save(&self) {
        let Ok(m) = self.map.lock() else { return };
        if m.1 {
            if let Ok(b) = serde_json::to_vec(&m.0) {
                let _ = super::write_atomic(&self.path, &b);
            }
        }
    }

    /// Hash of one file, from the cache when its stat matches.
    pub fn file_hash(&self, path: &Path) -> std::io::Result<String> {
        let md = std::fs::metadata(path)?;
        let key = path.to_string_lossy().into_owned();
        let mtime_ns = md.mtime() * 1_000_000_000 + md.mtime_nsec();
        if let Ok(m) = self.map.lock() {
            if let Some(e) = m.0.get(&key) {
                if e.size == md.len() && e.mtime_ns == mtime_ns && e.ino == md.ino() {
                    return Ok(e.hash.clone());
                }
            }
        }
        let hash = hash_file(path)?;
        if let Ok(mut m) = self.map.lock() {
            m.0.insert(
                key,
                Entry {
                    size: md.len(),
                    mtime_ns,
                    ino: md.ino(),
                    hash: hash.clone(),
                },
            );
            m.1 = true;
        }
        Ok(hash)
    }

    /// Hash of a file or a folder (the folder's sorted relative paths with their file hashes);
    /// None when it does not exist.
    pub fn input_hash(&self, path: &Path) -> Option<String> {
        let md = std::fs::metadata(path).ok()?;
        if md.is_dir() {
            let files = walk(path).ok()?;
            let mut list = Vec::with_capacity(files.len());
            for f in files {
                list.push((f.clone(), self.file_hash(&path.join(&f)).ok()?));
            }
            let bytes = serde_json::to_vec(&list).ok()?;
            Some(format!("dir:{}", blake3::hash(&bytes).to_hex()))
        } else {
            self.file_hash(path).ok()
        }
    }
}
