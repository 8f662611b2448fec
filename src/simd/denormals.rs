//! Denormal floats on the compute threads: flush-to-zero (a result too small for a normal float
//! becomes ±0) and denormals-are-zero (a denormal operand is read as ±0), set in MXCSR on every
//! thread of a compute pool ([`compute_pool`], [`with_compute_pool`]) before it runs any work.
//!
//! A CPU handles denormal operands and results through slow microcode assists (tens to hundreds
//! of cycles each), so a diverging run whose activations or moments drift towards zero slows
//! down by an order of magnitude instead of failing. On normal inputs the flags change nothing:
//! a result is flushed only where it would have been denormal (tested bit for bit on a training
//! run). `PIPE_NO_FTZ=1` leaves the flags alone (for comparisons).
//!
//! Rust's documentation of `_mm_setcsr` calls any change of these flags undefined behaviour,
//! because the compiler assumes the default floating-point environment when it folds constants.
//! Here the flags are set once per thread, in the pool's start handler, before that thread runs
//! any of the crate's float code, and never restored to a different value on it; the only
//! values a compile-time fold could get differently are denormal ones, which the run-time code
//! then treats as zero either way. The thread pools are dropped with their threads.

/// MXCSR bit 15: flush-to-zero.
#[cfg(target_arch = "x86_64")]
const FTZ: u32 = 1 << 15;
/// MXCSR bit 6: denormals-are-zero.
#[cfg(target_arch = "x86_64")]
const DAZ: u32 = 1 << 6;

/// Whether compute threads flush denormals (`PIPE_NO_FTZ` unset; checked once).
pub fn enabled() -> bool {
    use std::sync::OnceLock;
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("PIPE_NO_FTZ").is_none())
}

/// Sets flush-to-zero and denormals-are-zero on the calling thread (x86-64; a no-op elsewhere).
/// Meant for a thread that is about to start compute work (a pool's start handler).
pub fn flush_on_this_thread() {
    #[cfg(target_arch = "x86_64")]
    {
        let mut csr: u32 = 0;
        // SAFETY: `stmxcsr` stores the 32-bit MXCSR into `csr`, a valid, writable u32, and
        // `ldmxcsr` reloads it with two more bits set; neither touches the stack or flags.
        // Setting FTZ/DAZ is the documented purpose of this function (module doc: why it is
        // done once, at the start of a compute thread).
        unsafe {
            std::arch::asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack, preserves_flags));
            csr |= FTZ | DAZ;
            std::arch::asm!("ldmxcsr [{}]", in(reg) &csr, options(nostack, preserves_flags));
        }
    }
}

/// Whether the calling thread flushes denormals (both flags set).
pub fn flushing_on_this_thread() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        let mut csr: u32 = 0;
        // SAFETY: `stmxcsr` only stores MXCSR into `csr`, a valid, writable u32.
        unsafe {
            std::arch::asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack, preserves_flags));
        }
        csr & (FTZ | DAZ) == FTZ | DAZ
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// A rayon pool of `threads` threads (at least 1) whose threads flush denormals (unless
/// `PIPE_NO_FTZ` is set).
pub fn compute_pool(threads: usize) -> Result<rayon::ThreadPool, rayon::ThreadPoolBuildError> {
    let flush = enabled();
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .start_handler(move |_| {
            if flush {
                flush_on_this_thread()
            }
        })
        .build()
}

/// Runs `f` on a fresh [`compute_pool`] of `threads` threads (on the current thread if the
/// pool cannot be built).
pub fn with_compute_pool<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    match compute_pool(threads) {
        Ok(pool) => pool.install(f),
        Err(_) => f(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hint::black_box;

    #[test]
    fn pool_threads_flush_and_others_do_not() {
        let tiny = black_box(f32::MIN_POSITIVE);
        if enabled() && cfg!(target_arch = "x86_64") {
            let (flag, half) = with_compute_pool(2, || {
                (flushing_on_this_thread(), black_box(tiny) * black_box(0.5))
            });
            assert!(flag, "the pool thread flushes");
            assert_eq!(half, 0.0, "a denormal result is flushed");
            // Every worker, not only the one running the closure.
            let flags = with_compute_pool(2, || rayon::broadcast(|_| flushing_on_this_thread()));
            assert_eq!(flags, vec![true, true]);
        }
        // A plain thread keeps IEEE behaviour.
        let plain = std::thread::spawn(move || black_box(tiny) * black_box(0.5))
            .join()
            .unwrap();
        assert!(plain > 0.0 && plain < f32::MIN_POSITIVE);
    }
}
