//! The repository's own files for tests that run a shipped pipeline: a fresh copy of the tracked
//! files (as `.ci/run` makes one) and the development data mirror.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The download mirror: `PIPE_TEST_DATA`, else `../shared/data` beside the repository; `None`
/// (with a visible "skipped" line) when neither exists.
pub fn data_mirror() -> Option<PathBuf> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let d = std::env::var_os("PIPE_TEST_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join("../shared/data"));
    match std::fs::canonicalize(&d) {
        Ok(p) => Some(p),
        Err(_) => {
            eprintln!(
                "skipped: no data mirror at {} (set PIPE_TEST_DATA)",
                d.display()
            );
            None
        }
    }
}

/// A fresh copy of the repository's tracked files, in a temporary folder.
pub fn tracked_copy() -> tempfile::TempDir {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let o = Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(repo)
        .output()
        .unwrap();
    assert!(o.status.success(), "git ls-files failed");
    let dir = tempfile::tempdir().unwrap();
    for f in o.stdout.split(|&b| b == 0).filter(|f| !f.is_empty()) {
        let rel = Path::new(std::str::from_utf8(f).unwrap());
        let src = repo.join(rel);
        if !src.is_file() {
            continue; // deleted in the work tree
        }
        let dst = dir.path().join(rel);
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::copy(&src, &dst).unwrap();
    }
    dir
}
