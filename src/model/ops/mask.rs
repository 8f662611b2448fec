//! The dropout mask of the fused ops: a counter-based hash of (step seed, site, element index),
//! so any element's factor can be recomputed in the backward pass, on any thread, in any order.

use crate::seed::mix;
use rayon::prelude::*;

/// The dropout mask of one site (the embedding, or one residual branch) of one training step:
/// element `i` is dropped when a hash of `(seed, i)` falls below `p`, so any element's mask can
/// be recomputed in any order on any thread.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DropMask {
    pub p: f32,
    pub seed: u64,
}

impl DropMask {
    /// The factor element `i` is multiplied by: 0 or `1 / (1 − p)`.
    #[inline]
    pub fn factor(&self, i: usize) -> f32 {
        let u = (mix(self.seed, i as u64) >> 40) as f32 * (1.0 / (1u64 << 24) as f32);
        if u < self.p {
            0.0
        } else {
            1.0 / (1.0 - self.p)
        }
    }

    /// The mask of the first `n` elements.
    pub fn to_vec(&self, n: usize) -> Vec<f32> {
        (0..n).into_par_iter().map(|i| self.factor(i)).collect()
    }

    /// `x ⊙ mask` in place.
    pub fn apply(&self, x: &mut [f32]) {
        x.par_chunks_mut(1 << 12).enumerate().for_each(|(c, xs)| {
            for (i, v) in xs.iter_mut().enumerate() {
                *v *= self.factor(c * (1 << 12) + i);
            }
        });
    }
}
