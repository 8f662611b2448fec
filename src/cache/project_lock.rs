//! The project lock: an advisory `flock` on `cache/lock` holding the holder's pid. The OS drops
//! the lock when its holder dies (even by `kill -9`), so a stale lock is taken over without any
//! manual unlock step. Taking it sweeps what dead processes left (`super::tmp::sweep`); a holder
//! that ends normally closes its temp-file journal when it lets go.

use super::{fsafe, Cache};
use fs4::fs_std::FileExt;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// A held project lock; released on drop.
pub struct ProjectLock {
    file: File,
    root: PathBuf,
}

/// Why the lock could not be taken.
pub enum LockError {
    /// Held by another live process (its pid, when readable).
    Busy(Option<u32>),
    Io(std::io::Error),
}

impl ProjectLock {
    /// Takes the lock. With `wait`, blocks until it is free (calling `on_wait` once with the
    /// holder's pid first); otherwise returns `Busy`.
    pub fn acquire(
        cache: &Cache,
        wait: bool,
        on_wait: impl FnOnce(Option<u32>),
    ) -> Result<Self, LockError> {
        let root = cache.root();
        fsafe::create_dir_all(root, cache.dir()).map_err(|e| LockError::Io(e.into()))?;
        cache.check_links().map_err(|e| LockError::Io(e.into()))?;
        let path = cache.layout().lock();
        let file = lock_path(&path, wait, on_wait)?;
        super::tmp::sweep(root);
        Ok(ProjectLock {
            file,
            root: root.to_path_buf(),
        })
    }
}

/// Opens `path` without following a link at it, takes an exclusive `flock` on it (waiting when
/// `wait`, after calling `on_wait` with the holder's pid) and writes this process's pid in it.
fn lock_path(
    path: &Path,
    wait: bool,
    on_wait: impl FnOnce(Option<u32>),
) -> Result<File, LockError> {
    use std::os::unix::fs::OpenOptionsExt;
    // O_NOFOLLOW: a link planted at `cache/lock` is refused, never followed and truncated.
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                LockError::Io(std::io::Error::other(format!(
                    "{} is a symbolic link; pipe never writes through a link it did not create: remove it",
                    path.display()
                )))
            } else {
                LockError::Io(e)
            }
        })?;
    let got = FileExt::try_lock_exclusive(&file).map_err(LockError::Io)?;
    if !got {
        let holder = read_pid(&mut file);
        if !wait {
            return Err(LockError::Busy(holder));
        }
        on_wait(holder);
        FileExt::lock_exclusive(&file).map_err(LockError::Io)?;
    }
    file.set_len(0).map_err(LockError::Io)?;
    file.seek(SeekFrom::Start(0)).map_err(LockError::Io)?;
    write!(file, "{}", std::process::id()).map_err(LockError::Io)?;
    let _ = file.flush();
    Ok(file)
}

/// An advisory lock on a file of pipe's other than the project lock (e.g. the experiment
/// queue's): the same `flock` and pid, without the project lock's sweep. Released on drop.
pub struct FileLock {
    file: File,
}

impl FileLock {
    /// Takes the lock on `path` (its folder must exist); see [`ProjectLock::acquire`].
    pub fn acquire(
        path: &Path,
        wait: bool,
        on_wait: impl FnOnce(Option<u32>),
    ) -> Result<Self, LockError> {
        Ok(FileLock {
            file: lock_path(path, wait, on_wait)?,
        })
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
        let _ = FileExt::unlock(&self.file);
    }
}

fn read_pid(file: &mut File) -> Option<u32> {
    let mut s = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut s).ok()?;
    s.trim().parse().ok()
}

impl Drop for ProjectLock {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            super::tmp::finish(&self.root);
        }
        let _ = self.file.set_len(0);
        let _ = FileExt::unlock(&self.file);
    }
}
