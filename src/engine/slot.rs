//! The compute slot: heavy kinds (training, tokenizing, decoding) that run on this machine take
//! it, so two of them never share the cores; light stages run beside them. Taking it gives a
//! guard that frees it when dropped, however the instance ends.

use std::sync::atomic::{AtomicBool, Ordering};

/// The one compute slot of a run.
#[derive(Default)]
pub(crate) struct ComputeSlot {
    busy: AtomicBool,
}

/// Holds the compute slot; frees it when dropped.
pub(crate) struct SlotGuard<'a> {
    slot: &'a ComputeSlot,
}

impl ComputeSlot {
    /// The slot, if it is free.
    pub fn try_take(&self) -> Option<SlotGuard<'_>> {
        self.busy
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| SlotGuard { slot: self })
    }
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        self.slot.busy.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time_and_freed_on_drop() {
        let slot = ComputeSlot::default();
        let g = slot.try_take().expect("free at first");
        assert!(slot.try_take().is_none());
        drop(g);
        assert!(slot.try_take().is_some());
    }
}
