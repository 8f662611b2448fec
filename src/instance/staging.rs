//! Reusable staging folders (`cache/tmp/<pid>/<k>/{out,ckpt,meas}`), one per running job,
//! emptied after each stage: creating fresh folders per stage costs more than the stage's
//! bookkeeping. Created and emptied through `cache::fsafe`, never through a link.

use crate::cache::fsafe;
use std::path::PathBuf;

/// Reusable staging folders (`cache/tmp/<pid>/<k>/{out,ckpt,meas}`), one per running job,
/// emptied after each stage.
pub struct Staging {
    /// The project root (nothing is written through a link below it).
    root: PathBuf,
    pub base: PathBuf,
    free: std::sync::Mutex<Vec<PathBuf>>,
    next: std::sync::atomic::AtomicUsize,
}

impl Staging {
    /// Staging folders under `base`, a folder of the project at `root`.
    pub fn new(root: PathBuf, base: PathBuf) -> Self {
        Staging {
            root,
            base,
            free: std::sync::Mutex::new(Vec::new()),
            next: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// An empty slot with `out/`, `ckpt/` and `meas/`.
    pub fn take(&self) -> std::io::Result<PathBuf> {
        if let Some(p) = self.free.lock().ok().and_then(|mut f| f.pop()) {
            return Ok(p);
        }
        let k = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let slot = self.base.join(k.to_string());
        fsafe::remove(&self.root, &slot)?;
        for d in ["out", "ckpt", "meas"] {
            fsafe::create_dir_all(&self.root, &slot.join(d))?;
        }
        Ok(slot)
    }

    /// Empties a slot and returns it to the pool (or drops it when it cannot be emptied).
    pub fn give_back(&self, slot: PathBuf) {
        let mut ok = true;
        for d in ["out", "ckpt", "meas"] {
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

    /// Removes every slot (the run is over).
    pub fn remove(&self) {
        let _ = fsafe::remove(&self.root, &self.base);
    }
}
