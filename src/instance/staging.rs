//! Reusable staging folders (`cache/tmp/<pid>/<k>/{out,ckpt,meas}`), one per running instance:
//! a [`Slot`] is taken for a run and given back, emptied, when it is dropped (creating fresh
//! folders per stage costs more than the stage's bookkeeping). Created, emptied and removed
//! through `cache::fsafe`, never through a link.

use crate::cache::fsafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// The pool of staging slots of one process.
pub struct Staging {
    /// The project root (nothing is written through a link below it).
    root: PathBuf,
    base: PathBuf,
    free: Mutex<Vec<PathBuf>>,
    next: AtomicUsize,
}

/// A staging slot in use; emptied and returned to the pool when dropped.
pub struct Slot<'a> {
    pool: &'a Staging,
    dir: Option<PathBuf>,
}

const PARTS: [&str; 3] = ["out", "ckpt", "meas"];

impl Staging {
    /// Staging folders under `base`, a folder of the project at `root`.
    pub fn new(root: PathBuf, base: PathBuf) -> Self {
        Staging {
            root,
            base,
            free: Mutex::new(Vec::new()),
            next: AtomicUsize::new(0),
        }
    }

    /// The folder holding every slot.
    pub fn base(&self) -> &Path {
        &self.base
    }

    /// An empty slot with `out/`, `ckpt/` and `meas/`.
    pub fn take(&self) -> std::io::Result<Slot<'_>> {
        if let Some(p) = self.free.lock().ok().and_then(|mut f| f.pop()) {
            return Ok(Slot {
                pool: self,
                dir: Some(p),
            });
        }
        let k = self.next.fetch_add(1, Ordering::Relaxed);
        let slot = self.base.join(k.to_string());
        fsafe::remove(&self.root, &slot)?;
        for part in PARTS {
            fsafe::create_dir_all(&self.root, &slot.join(part))?;
        }
        Ok(Slot {
            pool: self,
            dir: Some(slot),
        })
    }

    /// Empties a slot and returns it to the pool (or removes it when it cannot be emptied).
    fn give_back(&self, slot: PathBuf) {
        let mut ok = true;
        for d in PARTS {
            match std::fs::read_dir(slot.join(d)) {
                Ok(rd) => {
                    for e in rd.flatten() {
                        ok &= fsafe::remove(&self.root, &e.path()).is_ok();
                    }
                }
                Err(_) => ok = false,
            }
        }
        if ok {
            if let Ok(mut f) = self.free.lock() {
                f.push(slot);
                return;
            }
        }
        let _ = fsafe::remove(&self.root, &slot);
    }
}

impl Drop for Staging {
    /// The whole pool goes when the run ends.
    fn drop(&mut self) {
        let _ = fsafe::remove(&self.root, &self.base);
    }
}

impl Slot<'_> {
    fn dir(&self) -> &Path {
        self.dir.as_deref().expect("present until dropped")
    }

    /// Becomes `results/<pipeline>/<id>/`.
    pub fn out(&self) -> PathBuf {
        self.dir().join("out")
    }

    /// Added to `checkpoints/<pipeline>/<stage>/`.
    pub fn ckpt(&self) -> PathBuf {
        self.dir().join("ckpt")
    }

    /// Measurements, restored beside the outputs.
    pub fn meas(&self) -> PathBuf {
        self.dir().join("meas")
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if let Some(d) = self.dir.take() {
            self.pool.give_back(d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_emptied_reused_and_removed_with_the_pool() {
        let d = tempfile::tempdir().unwrap();
        let base = d.path().join("tmp/1");
        let pool = Staging::new(d.path().to_path_buf(), base.clone());
        let first = {
            let a = pool.take().unwrap();
            std::fs::write(a.out().join("x"), "x").unwrap();
            std::fs::create_dir_all(a.ckpt().join("sub")).unwrap();
            a.out()
        };
        let b = pool.take().unwrap();
        assert_eq!(b.out(), first, "the slot was not reused");
        assert_eq!(std::fs::read_dir(b.out()).unwrap().count(), 0);
        assert_eq!(std::fs::read_dir(b.ckpt()).unwrap().count(), 0);
        let c = pool.take().unwrap();
        assert_ne!(c.out(), b.out());
        drop((b, c));
        drop(pool);
        assert!(!base.exists());
    }
}
