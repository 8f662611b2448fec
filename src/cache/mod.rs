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
pub mod tmp;
pub mod trust;

pub use hash::hash_file;
pub use record::{manifest_hash, Area, FingerprintKey, Output, RunRecord};
pub use store::Cache;

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
