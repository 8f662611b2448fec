//! The one way pipe writes, renames, deletes and reads its own files: never through a symbolic
//! link it did not create. Every existing component between a root (the project, or a folder
//! remote) and the path is checked with `symlink_metadata`; a link in the way is refused, a link
//! at the path itself is replaced or removed (the link, never its target), new files are
//! created with `O_EXCL`, and reads of pipe's own files refuse links, FIFOs and devices and stop
//! at a size limit, so a planted file can neither redirect a write nor hang a read.

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

/// A path pipe refuses to write or delete through.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("refusing to write through the symbolic link {0}: pipe never follows links it did not create; remove the link")]
    Symlink(PathBuf),
    #[error("refusing to touch {0}: it is outside the project")]
    Outside(PathBuf),
    #[error(
        "refusing to read {0}: it is not a regular file (a link, a folder, a FIFO or a device)"
    )]
    NotFile(PathBuf),
    #[error("refusing to read {path}: it is over {limit} bytes")]
    TooLarge { path: PathBuf, limit: u64 },
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

/// Creates the parent folders of `path` (refusing links), then the new file `path` itself
/// (`O_EXCL`: an existing file or link there is an error, never opened).
pub fn create_new(root: &Path, path: &Path) -> Result<std::fs::File, FsError> {
    if let Some(parent) = path.parent() {
        create_dir_all(root, parent)?;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(io(path))
}

/// Renames `from` to `to` (both below `root`, no link among their parent folders; a link at
/// `to` is replaced, not followed).
pub fn rename(root: &Path, from: &Path, to: &Path) -> Result<(), FsError> {
    check(root, from, false)?;
    check(root, to, false)?;
    std::fs::rename(from, to).map_err(io(to))
}

/// Removes a file, a folder (recursively, links inside removed as links) or a link (the link
/// only) at `path`, refusing when a parent folder below `root` is a symlink. Missing is fine.
pub fn remove(root: &Path, path: &Path) -> Result<(), FsError> {
    check(root, path, false)?;
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path).map_err(io(path)),
        Ok(_) => std::fs::remove_file(path).map_err(io(path)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(path)(e)),
    }
}

/// Writes a file atomically below `root`: a new temporary file beside it (recorded for the
/// sweep after a kill, see [`super::tmp`]), then a rename over `path`.
pub fn write_atomic(root: &Path, path: &Path, bytes: &[u8]) -> Result<(), FsError> {
    let tmp = super::tmp::beside(root, path);
    let r = create_new(root, &tmp).and_then(|mut f| {
        f.write_all(bytes).map_err(io(&tmp))?;
        rename(root, &tmp, path)
    });
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

/// Opens a regular file for reading without following a link at it and without blocking on a
/// FIFO; anything else is [`FsError::NotFile`].
pub fn open_regular(path: &Path) -> Result<std::fs::File, FsError> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => FsError::NotFile(path.to_path_buf()),
            _ => io(path)(e),
        })?;
    let md = f.metadata().map_err(io(path))?;
    if !md.is_file() {
        return Err(FsError::NotFile(path.to_path_buf()));
    }
    Ok(f)
}

/// The bytes of a regular file of at most `limit` bytes; `Ok(None)` when it does not exist.
pub fn read_regular(path: &Path, limit: u64) -> Result<Option<Vec<u8>>, FsError> {
    let f = match open_regular(path) {
        Ok(f) => f,
        Err(FsError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    f.take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(io(path))?;
    if out.len() as u64 > limit {
        return Err(FsError::TooLarge {
            path: path.to_path_buf(),
            limit,
        });
    }
    Ok(Some(out))
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
        assert!(write_atomic(&root, &target, b"y").is_err());
        assert!(create_new(&root, &target).is_err());
        // The link itself is removed, its target kept.
        remove(&root, &root.join("results")).unwrap();
        assert!(outside.join("keep.txt").exists());
        assert!(!root.join("results").exists());
        assert!(matches!(
            check_parent(&root, Path::new("/etc/passwd")),
            Err(FsError::Outside(_))
        ));
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 1);
    }

    #[test]
    fn a_link_at_the_path_is_replaced_never_written_through() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("proj");
        std::fs::create_dir_all(&root).unwrap();
        let victim = d.path().join("victim.txt");
        std::fs::write(&victim, "keep").unwrap();
        let at = root.join("stat.json");
        std::os::unix::fs::symlink(&victim, &at).unwrap();
        assert!(create_new(&root, &at).is_err());
        assert!(matches!(read_regular(&at, 10), Err(FsError::NotFile(_))));
        write_atomic(&root, &at, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        assert_eq!(std::fs::read_to_string(&at).unwrap(), "new");
        assert!(!std::fs::symlink_metadata(&at).unwrap().is_symlink());
    }

    #[test]
    fn reads_refuse_fifos_devices_and_oversized_files() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: `c` is a valid NUL-terminated path for the whole call.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(matches!(read_regular(&fifo, 10), Err(FsError::NotFile(_))));
        assert!(matches!(
            read_regular(Path::new("/dev/zero"), 10),
            Err(FsError::NotFile(_))
        ));
        let big = d.path().join("big");
        std::fs::write(&big, [0u8; 11]).unwrap();
        assert!(matches!(
            read_regular(&big, 10),
            Err(FsError::TooLarge { .. })
        ));
        assert_eq!(read_regular(&big, 11).unwrap().unwrap().len(), 11);
        assert!(read_regular(&d.path().join("none"), 1).unwrap().is_none());
    }
}
