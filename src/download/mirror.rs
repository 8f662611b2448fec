//! Mirror folders: a file with a known blake3 found on disk, so no network is needed.

use crate::cache::{hash_file, walk};
use std::path::{Path, PathBuf};

/// The environment variable naming mirror folders (colon-separated); only the CLI reads it.
pub const MIRROR_ENV: &str = "PIPE_MIRROR";

/// Mirror folders from a colon-separated list (empty entries skipped).
pub fn mirror_dirs(var: &str) -> Vec<PathBuf> {
    var.split(':')
        .filter(|s| !s.trim().is_empty())
        .map(PathBuf::from)
        .collect()
}

/// A file under one of `mirrors` (searched recursively) whose blake3 is `blake3`. Candidates are
/// hashed in this order: files called `name`, then files of `size` bytes (or, when the size is
/// unknown, every other file).
pub fn find_in_mirrors(
    mirrors: &[PathBuf],
    name: &str,
    size: Option<u64>,
    blake3: &str,
) -> Option<PathBuf> {
    let mut files: Vec<(PathBuf, u64)> = Vec::new();
    for m in mirrors {
        let paths: Vec<PathBuf> = if m.is_file() {
            vec![m.clone()]
        } else {
            // An unreadable mirror folder holds nothing usable.
            walk(m)
                .unwrap_or_default()
                .iter()
                .map(|r| m.join(r))
                .collect()
        };
        // Regular files and symlinks to files.
        files.extend(paths.into_iter().filter_map(|p| {
            let meta = std::fs::metadata(&p).ok().filter(|x| x.is_file())?;
            Some((p, meta.len()))
        }));
    }
    let named = |p: &Path| p.file_name().is_some_and(|n| n == name);
    let by_name = files.iter().filter(|(p, _)| named(p));
    let rest = files.iter().filter(|(p, len)| {
        !named(p)
            && match size {
                Some(s) => *len == s,
                None => true,
            }
    });
    let want = blake3.to_ascii_lowercase();
    by_name
        .chain(rest)
        .filter(|(_, len)| size.is_none_or(|s| *len == s))
        .find(|(p, _)| hash_file(p).is_ok_and(|h| h == want))
        .map(|(p, _)| p.clone())
}
