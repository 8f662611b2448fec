//! Writes and deletes that never go through a symlink pipe did not create: every existing
//! component between the project root and the path is checked with `symlink_metadata`; a link
//! in the way is refused, and a link at the path itself is removed (the link, never its target).

use std::path::{Component, Path, PathBuf};

/// A path pipe refuses to write or delete through.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("refusing to write through the symbolic link {0}: pipe never follows links it did not create; remove the link")]
    Symlink(PathBuf),
    #[error("refusing to touch {0}: it is outside the project")]
    Outside(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl From<FsError> for std::io::Error {
    fn from(e: FsError) -> Self {
        match e {
            FsError::Io { source, .. } => source,
            e => std::io::Error::new(std::io::ErrorKind::PermissionDenied, e.to_string()),
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FsError + '_ {
    move |source| FsError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Checks that no existing component of `path` strictly below `root` (the last one included
/// when `include_last`) is a symlink, and that `path` is under `root` without `..`.
fn check(root: &Path, path: &Path, include_last: bool) -> Result<(), FsError> {
    let rel = path
        .strip_prefix(root)
        .map_err(|_| FsError::Outside(path.to_path_buf()))?;
    let comps: Vec<Component> = rel.components().collect();
    let mut cur = root.to_path_buf();
    for (k, c) in comps.iter().enumerate() {
        match c {
            Component::Normal(n) => cur.push(n),
            Component::CurDir => continue,
            _ => return Err(FsError::Outside(path.to_path_buf())),
        }
        if k + 1 == comps.len() && !include_last {
            break;
        }
        match std::fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => return Err(FsError::Symlink(cur)),
            Ok(_) => {}
            Err(_) => return Ok(()), // does not exist yet: nothing below it can be a link
        }
    }
    Ok(())
}

/// Refuses a folder (and every folder above it, below the root) that is a symlink.
pub fn check_dir(root: &Path, dir: &Path) -> Result<(), FsError> {
    check(root, dir, true)
}

/// Refuses a file path whose parent folders (below the root) include a symlink.
pub fn check_parent(root: &Path, path: &Path) -> Result<(), FsError> {
    check(root, path, false)
}

/// `create_dir_all` below `root` that refuses to go through a symlink.
pub fn create_dir_all(root: &Path, dir: &Path) -> Result<(), FsError> {
    check(root, dir, true)?;
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    check(root, dir, true)
}

/// Removes a file, a folder (recursively, links inside removed as links) or a link (the link
/// only) at `path`, refusing when a parent folder below `root` is a symlink. Missing is fine.
pub fn remove(root: &Path, path: &Path) -> Result<(), FsError> {
    check(root, path, false)?;
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_dir() => std::fs::remove_dir_all(path).map_err(io(path)),
        Ok(_) => std::fs::remove_file(path).map_err(io(path)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_refused_in_the_way_and_removed_at_the_end() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("proj");
        let outside = d.path().join("outside");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("keep.txt"), "x").unwrap();
        std::os::unix::fs::symlink(&outside, root.join("results")).unwrap();
        let target = root.join("results/ci/x.txt");
        assert!(matches!(
            check_parent(&root, &target),
            Err(FsError::Symlink(_))
        ));
        assert!(create_dir_all(&root, &root.join("results/ci")).is_err());
        // The link itself is removed, its target kept.
        remove(&root, &root.join("results")).unwrap();
        assert!(outside.join("keep.txt").exists());
        assert!(!root.join("results").exists());
        assert!(matches!(
            check_parent(&root, Path::new("/etc/passwd")),
            Err(FsError::Outside(_))
        ));
    }
}
