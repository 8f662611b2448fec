//! Process-wide allocator policy, set once at start-up by `main` (and by the examples and
//! benches that measure training): glibc keeps freed memory instead of returning it to the OS.
//!
//! A training step allocates and frees many activation buffers of a few MB, and without this
//! every step pays for the kernel zeroing fresh pages. Buffers up to 32 MB (glibc's largest
//! allowed mmap threshold) come from the heap, which is never trimmed below 1 GB; the one larger
//! buffer, the output layer's logits, is reused through the training ops' scratch pool.

/// Applies the policy (idempotent; a no-op outside Linux/glibc).
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            // SAFETY: mallopt only changes allocator thresholds; it is safe to call at any time
            // and from any thread.
            unsafe {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
                libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
            }
        });
    }
}
