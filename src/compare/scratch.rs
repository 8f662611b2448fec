//! A scratch copy of a project for recomputing it: every file except pipe's own folders
//! (`cache/`, `results/`, `checkpoints/`), `target/` and `.git/`, in a fresh temp folder.

use super::CompareError;
use std::path::Path;

/// Top-level entries never copied.
pub const SKIPPED: &[&str] = &[
    crate::layout::CACHE,
    crate::layout::RESULTS,
    crate::layout::CHECKPOINTS,
    "target",
    ".git",
];

/// Copies `root` into `dest` (an existing empty folder). Symlinks are copied as symlinks,
/// never followed. Returns the number of files copied.
pub fn copy_project(root: &Path, dest: &Path) -> Result<usize, CompareError> {
    fn rec(src: &Path, dst: &Path, top: bool, n: &mut usize) -> Result<(), CompareError> {
        let rd = std::fs::read_dir(src).map_err(|e| CompareError::io(src, e))?;
        for e in rd {
            let e = e.map_err(|e| CompareError::io(src, e))?;
            let name = e.file_name();
            if top && SKIPPED.iter().any(|s| name == *s) {
                continue;
            }
            let (from, to) = (e.path(), dst.join(&name));
            let ft = e.file_type().map_err(|e| CompareError::io(&from, e))?;
            if ft.is_symlink() {
                let target = std::fs::read_link(&from).map_err(|e| CompareError::io(&from, e))?;
                std::os::unix::fs::symlink(target, &to).map_err(|e| CompareError::io(&to, e))?;
            } else if ft.is_dir() {
                std::fs::create_dir(&to).map_err(|e| CompareError::io(&to, e))?;
                rec(&from, &to, false, n)?;
            } else if ft.is_file() {
                std::fs::copy(&from, &to).map_err(|e| CompareError::io(&from, e))?;
                *n += 1;
            }
        }
        Ok(())
    }
    let mut n = 0;
    rec(root, dest, true, &mut n)?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_pipe_folders() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        for f in [
            "a.txt",
            "sub/b.txt",
            "cache/x",
            "results/y",
            ".git/z",
            "sub/cache/k",
        ] {
            let p = src.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, f).unwrap();
        }
        std::os::unix::fs::symlink("a.txt", src.path().join("link")).unwrap();
        assert_eq!(copy_project(src.path(), dst.path()).unwrap(), 3);
        assert!(dst.path().join("sub/cache/k").exists());
        assert!(!dst.path().join("cache").exists());
        assert!(!dst.path().join(".git").exists());
        assert_eq!(
            std::fs::read_link(dst.path().join("link")).unwrap(),
            Path::new("a.txt")
        );
    }
}
