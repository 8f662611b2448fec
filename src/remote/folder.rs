//! A remote that is a folder on a shared filesystem: every write goes to a new temp file in the
//! destination folder and is renamed into place, so readers never see half a file, and never
//! through a link planted inside the remote (`cache::fsafe` with the remote's folder as root).
//! Reads open regular files only, so a FIFO or a device in the remote cannot hang pipe.

use super::{RemoteError, Result};
use crate::cache::fsafe::{self, FsError};
use crate::cache::tmp;
use crate::digest::Blake3;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct FolderRemote {
    root: PathBuf,
}

fn fs_err(e: FsError) -> RemoteError {
    match e {
        FsError::Io { path, source } => RemoteError::io(path, source),
        e => RemoteError::Unsafe(e),
    }
}

impl FolderRemote {
    pub fn new(root: PathBuf) -> Self {
        FolderRemote { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    /// The path of `key` for reading: refused when a folder between the remote's root and it
    /// is a link (a link at the file itself is refused when it is opened).
    fn read_path(&self, key: &str) -> Result<PathBuf> {
        let p = self.path(key);
        fsafe::check_parent(&self.root, &p).map_err(fs_err)?;
        Ok(p)
    }

    /// Every regular file under `dir` with its size; a link at `dir` or above it is refused,
    /// links below it are not followed and not listed (a push replaces them with the file).
    pub fn list(&self, dir: &str) -> Result<BTreeMap<String, u64>> {
        let base = self.path(dir);
        fsafe::check_dir(&self.root, &base).map_err(fs_err)?;
        let files = crate::cache::walk(&base).map_err(|e| RemoteError::io(&base, e))?;
        let mut out = BTreeMap::new();
        for rel in files {
            // temp files of writes in progress
            if rel.contains(".tmp") {
                continue;
            }
            let p = base.join(&rel);
            if let Ok(m) = std::fs::symlink_metadata(&p) {
                if m.is_file() {
                    out.insert(format!("{dir}/{rel}"), m.len());
                }
            }
        }
        Ok(out)
    }

    /// Whether `key` is a regular file reached without a link.
    pub fn exists(&self, key: &str) -> bool {
        self.read_path(key)
            .is_ok_and(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file()))
    }

    /// The size of `key` when it is a regular file reached without a link; `None` when absent.
    pub fn size(&self, key: &str) -> Result<Option<u64>> {
        let p = self.read_path(key)?;
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.is_file() => Ok(Some(m.len())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(RemoteError::io(p, e)),
        }
    }

    /// The blake3 and length of `key`'s content, read in bounded memory; `None` when absent.
    pub fn hash(&self, key: &str) -> Result<Option<(Blake3, u64)>> {
        let p = self.read_path(key)?;
        let input = match fsafe::open_regular(&p) {
            Ok(f) => f,
            Err(FsError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Ok(None)
            }
            Err(FsError::NotFile(_)) => return Ok(None),
            Err(e) => return Err(fs_err(e)),
        };
        let mut n = 0u64;
        let h = crate::cache::hash::hash_reader(input, |chunk| {
            n += chunk.len() as u64;
            Ok(())
        })
        .map_err(|e| RemoteError::io(&p, e))?;
        Ok(Some((h, n)))
    }

    /// A file's bytes when it is a regular file of at most `limit` bytes.
    pub fn get_bytes(&self, key: &str, limit: u64) -> Result<Option<Vec<u8>>> {
        let p = self.read_path(key)?;
        match fsafe::read_regular(&p, limit) {
            Ok(b) => Ok(b),
            Err(FsError::TooLarge { limit, .. }) => Err(RemoteError::TooLarge {
                key: p.display().to_string(),
                limit,
            }),
            Err(FsError::NotFile(_)) => Err(RemoteError::NotFile {
                key: p.display().to_string(),
            }),
            Err(e) => Err(fs_err(e)),
        }
    }

    /// Writes through a new temp file beside the destination, then renames it into place;
    /// no link below the remote's folder is followed.
    fn write_with(
        &self,
        key: &str,
        fill: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
    ) -> Result<()> {
        let dest = self.path(key);
        let tmp = tmp::name_beside(&dest);
        let res = (|| {
            let mut f = fsafe::create_new(&self.root, &tmp)?;
            fill(&mut f).map_err(|source| FsError::Io {
                path: tmp.clone(),
                source,
            })?;
            f.sync_all().map_err(|source| FsError::Io {
                path: tmp.clone(),
                source,
            })?;
            fsafe::rename(&self.root, &tmp, &dest)
        })();
        if let Err(e) = res {
            let _ = std::fs::remove_file(&tmp);
            return Err(fs_err(e));
        }
        Ok(())
    }

    pub fn put_bytes(&self, key: &str, bytes: &[u8]) -> Result<()> {
        self.write_with(key, |f| f.write_all(bytes))
    }

    pub fn put_file(&self, key: &str, src: &Path, progress: &dyn Fn(u64)) -> Result<()> {
        let mut input = fsafe::open_regular(src).map_err(fs_err)?;
        self.write_with(key, |f| {
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = input.read(&mut buf)?;
                if n == 0 {
                    return Ok(());
                }
                f.write_all(&buf[..n])?;
                progress(n as u64);
            }
        })
    }

    pub fn download(
        &self,
        key: &str,
        dest: &Path,
        progress: &dyn Fn(u64),
    ) -> Result<Option<Blake3>> {
        let p = self.read_path(key)?;
        let input = match fsafe::open_regular(&p) {
            Ok(f) => f,
            Err(FsError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Ok(None)
            }
            Err(FsError::NotFile(_)) => {
                return Err(RemoteError::NotFile {
                    key: p.display().to_string(),
                })
            }
            Err(e) => return Err(fs_err(e)),
        };
        copy_hashing(input, dest, progress)
            .map(Some)
            .map_err(|e| RemoteError::io(dest, e))
    }
}

/// Copies a reader into the new file `dest` (never an existing file or link) in bounded
/// memory, returning the blake3 of the bytes.
pub(crate) fn copy_hashing(
    input: impl Read,
    dest: &Path,
    progress: &dyn Fn(u64),
) -> std::io::Result<Blake3> {
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dest)?;
    let h = crate::cache::hash::hash_reader(input, |chunk| {
        out.write_all(chunk)?;
        progress(chunk.len() as u64);
        Ok(())
    })?;
    out.sync_all()?;
    Ok(h)
}
