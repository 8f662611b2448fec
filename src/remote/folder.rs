//! A remote that is a folder on a shared filesystem: every write goes to a temp file in the
//! destination folder and is renamed into place, so readers never see half a file.

use super::{tmp_suffix, RemoteError, Result};
use crate::digest::Blake3;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct FolderRemote {
    root: PathBuf,
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

    pub fn list(&self, dir: &str) -> Result<BTreeMap<String, u64>> {
        let base = self.path(dir);
        let files = crate::cache::walk(&base).map_err(|e| RemoteError::io(&base, e))?;
        let mut out = BTreeMap::new();
        for rel in files {
            // temp files of writes in progress
            if rel.contains(".tmp") {
                continue;
            }
            let p = base.join(&rel);
            let n = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
            out.insert(format!("{dir}/{rel}"), n);
        }
        Ok(out)
    }

    pub fn exists(&self, key: &str) -> bool {
        self.path(key).is_file()
    }

    pub fn get_bytes(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let p = self.path(key);
        match std::fs::read(&p) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(RemoteError::io(p, e)),
        }
    }

    /// Writes through a temp file beside the destination, then renames it into place.
    fn write_with(
        &self,
        key: &str,
        fill: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
    ) -> Result<()> {
        let dest = self.path(key);
        let dir = dest.parent().unwrap_or(&self.root).to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|e| RemoteError::io(&dir, e))?;
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!("{name}.{}", tmp_suffix()));
        let res = (|| {
            let mut f = std::fs::File::create(&tmp)?;
            fill(&mut f)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &dest)
        })();
        if let Err(e) = res {
            let _ = std::fs::remove_file(&tmp);
            return Err(RemoteError::io(dest, e));
        }
        Ok(())
    }

    pub fn put_bytes(&self, key: &str, bytes: &[u8]) -> Result<()> {
        self.write_with(key, |f| f.write_all(bytes))
    }

    pub fn put_file(&self, key: &str, src: &Path, progress: &dyn Fn(u64)) -> Result<()> {
        let mut input = std::fs::File::open(src).map_err(|e| RemoteError::io(src, e))?;
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
        let p = self.path(key);
        let input = match std::fs::File::open(&p) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(RemoteError::io(p, e)),
        };
        copy_hashing(input, dest, progress)
            .map(Some)
            .map_err(|e| RemoteError::io(dest, e))
    }
}

/// Copies a reader into the new file `dest` in bounded memory, returning the blake3 of the
/// bytes.
pub(crate) fn copy_hashing(
    input: impl Read,
    dest: &Path,
    progress: &dyn Fn(u64),
) -> std::io::Result<Blake3> {
    let mut out = std::fs::File::create(dest)?;
    let h = crate::cache::hash::hash_reader(input, |chunk| {
        out.write_all(chunk)?;
        progress(chunk.len() as u64);
        Ok(())
    })?;
    out.sync_all()?;
    Ok(h)
}
