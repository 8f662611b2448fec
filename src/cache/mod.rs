//! The cache: fingerprints and run records, content hashing with a stat cache, the
//! content-addressed object store, the project lock and `<pipeline>.lock` files.
//!
//! Where everything lies under `cache/` is `crate::layout::CacheLayout`: objects (read-only
//! blobs named by blake3), run records (one per fingerprint, written last by rename), staging,
//! quarantine (corrupt objects moved aside), the stat cache and the project lock.

pub mod fsafe;
pub mod hash;
pub mod lockfile;
pub mod project_lock;
pub mod record;
pub mod stat;
pub mod store;

pub use hash::hash_file;
pub use record::{manifest_hash, Area, FingerprintKey, Output, RunRecord};
pub use store::Cache;

use std::io::Write;
use std::path::Path;

/// Files under a folder, as sorted `/`-separated relative paths.
pub fn walk(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut out = Vec::new();
    fn rec(base: &Path, rel: &str, out: &mut Vec<String>) -> std::io::Result<()> {
        let dir = if rel.is_empty() {
            base.to_path_buf()
        } else {
            base.join(rel)
        };
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            let r = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let ft = e.file_type()?;
            if ft.is_dir() {
                rec(base, &r, out)?;
            } else if ft.is_file() || ft.is_symlink() {
                out.push(r);
            }
        }
        Ok(())
    }
    if dir.is_dir() {
        rec(dir, "", &mut out)?;
    }
    out.sort();
    Ok(out)
}

/// A temp-file suffix unique within the machine: pid plus a per-process counter.
pub(crate) fn tmp_suffix() -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("tmp{}-{n}", std::process::id())
}

/// Writes a file atomically: a temp file in the same folder, then rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p)?;
    }
    let tmp = tmp_beside(path);
    let r = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        std::fs::rename(&tmp, path)
    })();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

/// A temporary path in the same folder as `path` (so a rename is atomic), named
/// `.<name>.tmp<pid>-<n>` so that leftovers of a killed process can be recognised.
pub fn tmp_beside(path: &Path) -> std::path::PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}", tmp_suffix()))
}

/// Whether a file name is a temporary file of a process that is no longer alive.
pub fn is_stale_tmp(name: &str) -> bool {
    let Some(i) = name.rfind(".tmp") else {
        return false;
    };
    let Some((pid, n)) = name[i + 4..].split_once('-') else {
        return false;
    };
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    match pid.parse::<u32>() {
        Ok(p) => p != std::process::id() && !Path::new(&format!("/proc/{p}")).exists(),
        Err(_) => false,
    }
}
