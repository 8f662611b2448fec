//! Ctrl-C and SIGTERM: a handler installed once records the signal; running stages see it and
//! stop, the engine marks the interrupted instance (`cache/interrupted/<id>`) so that `pipe
//! status` says "interrupted", and pipe exits 130 (SIGINT) or 143 (SIGTERM).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};

static SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    SIGNAL.store(sig, Ordering::SeqCst);
}

/// Installs the SIGINT/SIGTERM handlers (idempotent).
pub fn install() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores into an atomic, which is async-signal-safe.
        unsafe {
            libc::signal(sig, on_signal as *const () as libc::sighandler_t);
        }
    }
}

/// The signal received, if any.
pub fn requested() -> Option<i32> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// The exit code for a signal: 128 + its number (130 for SIGINT, 143 for SIGTERM).
pub fn exit_code(sig: i32) -> i32 {
    128 + sig
}

fn marker(cache_dir: &Path, id: &str) -> PathBuf {
    let safe: String = id
        .chars()
        .map(|c| if c == '/' || c.is_control() { '_' } else { c })
        .collect();
    cache_dir.join("interrupted").join(safe)
}

/// Records that a run of `id` was interrupted.
pub fn mark(cache_dir: &Path, id: &str) {
    let _ = crate::cache::write_atomic(&marker(cache_dir, id), b"");
}

/// Whether a run of `id` was interrupted and has not completed since.
pub fn was_interrupted(cache_dir: &Path, id: &str) -> bool {
    marker(cache_dir, id).exists()
}

/// Forgets an interruption (the instance has completed).
pub fn clear(cache_dir: &Path, id: &str) {
    let _ = std::fs::remove_file(marker(cache_dir, id));
}
