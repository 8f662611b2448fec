//! Reusable staging folders (`cache/tmp/<pid>/<k>/{out,ckpt,meas}`), one per running job,
//! emptied after each stage: creating fresh folders per stage costs more than the stage's
//! bookkeeping.

use std::path::PathBuf;

/// Reusable staging folders (`cache/tmp/<pid>/<k>/{out,ckpt}`), one per running job, emptied
/// after each stage: creating fresh folders per stage costs more than the stage's bookkeeping.
pub struct Staging {
    pub base: PathBuf,
    free: std::sync::Mutex<Vec<PathBuf>>,
    next: std::sync::atomic::AtomicUsize,
}

impl Staging {
    pub fn new(base: PathBuf) -> Self {
        Staging {
            base,
            free: std::sync::Mutex::new(Vec::new()),
            next: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// An empty slot with `out/` and `ckpt/`.
    pub fn take(&self) -> std::io::Result<PathBuf> {
        if let Some(p) = self.free.lock().ok().and_then(|mut f| f.pop()) {
            return Ok(p);
        }
        let k = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let slot = self.base.join(k.to_string());
        let _ = std::fs::remove_dir_all(&slot);
        std::fs::create_dir_all(slot.join("out"))?;
        std::fs::create_dir_all(slot.join("ckpt"))?;
        std::fs::create_dir_all(slot.join("meas"))?;
        Ok(slot)
    }

    /// Empties a slot and returns it to the pool (or drops it when it cannot be emptied).
    pub fn give_back(&self, slot: PathBuf) {
        let mut ok = true;
        for d in ["out", "ckpt", "meas"] {
            match std::fs::read_dir(slot.join(d)) {
                Ok(rd) => {
                    for e in rd.flatten() {
                        let p = e.path();
                        let r = match e.file_type() {
                            Ok(t) if t.is_dir() => std::fs::remove_dir_all(&p),
                            _ => std::fs::remove_file(&p),
                        };
                        ok &= r.is_ok();
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
        let _ = std::fs::remove_dir_all(&slot);
    }
}
