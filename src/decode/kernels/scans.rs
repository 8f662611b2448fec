//! Scans over a row of logits for a search step: log-sum-exp (exact in f64, or with the crate's
//! vector `exp`) and the first entry above a threshold (top-k selection).

use crate::simd::{exp_fast, has_avx2_fma, simd_kernel, sum8};

/// Numerically stable `log(sum(exp(x)))`.
pub fn log_sum_exp(x: &[f32]) -> f64 {
    let m = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if m == f32::NEG_INFINITY {
        return f64::NEG_INFINITY;
    }
    let s: f64 = x.iter().map(|&v| ((v - m) as f64).exp()).sum();
    m as f64 + s.ln()
}

/// `log(sum(exp(x)))` as [`log_sum_exp`], with `exp` evaluated in f32 by the crate's one
/// vector `exp` ([`exp_fast`], relative error about 2e-7 per term; vectorised with AVX2 when
/// the CPU has it), eight-lane f32 sums over blocks of 64 entries folded into f64. Entries
/// below `max − 87` (about 1e-38 of the largest term), `-inf` included, add at most 1.7e-38
/// each. For the many rows of a search step, where the libm `exp` of every logit dominates.
pub fn log_sum_exp_fast(x: &[f32]) -> f64 {
    let m = max_of(x);
    if m == f32::NEG_INFINITY || m.is_nan() {
        return log_sum_exp(x);
    }
    m as f64 + sum_exp_shifted(x, m).ln()
}

simd_kernel! {
    /// The largest entry of `x` (NaN entries ignored; `-inf` for an empty row).
    fn max_of(x: &[f32]) -> f32 {
        let mut lanes = [f32::NEG_INFINITY; 8];
        let mut it = x.chunks_exact(8);
        for c in &mut it {
            for (l, &v) in lanes.iter_mut().zip(c) {
                *l = l.max(v);
            }
        }
        it.remainder().iter().chain(&lanes).copied().fold(f32::NEG_INFINITY, f32::max)
    }
}

simd_kernel! {
    /// `Σ exp(x[i] − m)` for `m` the row's maximum: each block of 64 entries mapped through
    /// [`exp_fast`] into a buffer (a plain loop, vectorised 8 wide), summed in eight lanes
    /// ([`sum8`], each term ≤ 1) and folded into f64.
    fn sum_exp_shifted(x: &[f32], m: f32) -> f64 {
        let mut buf = [0.0f32; 64];
        let mut total = 0.0f64;
        for block in x.chunks(64) {
            let b = &mut buf[..block.len()];
            for (o, &v) in b.iter_mut().zip(block) {
                *o = exp_fast(v - m);
            }
            total += sum8(b) as f64;
        }
        total
    }
}

/// The index of the first entry of `x` at or after `start` that is greater than `thr` (never
/// a NaN), or `x.len()` if none is. A vectorised scan for top-k selection, where most entries
/// are rejected.
pub fn first_above(x: &[f32], start: usize, thr: f32) -> usize {
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the CPU supports AVX2 and FMA.
        return unsafe { avx2::first_above(x, start, thr) };
    }
    (start..x.len()).find(|&i| x[i] > thr).unwrap_or(x.len())
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// See [`super::first_above`].
    ///
    /// # Safety
    /// The CPU supports AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn first_above(x: &[f32], start: usize, thr: f32) -> usize {
        // SAFETY: the caller upholds this function's `# Safety` contract, which every pointer
        // access and call below relies on.
        unsafe {
            let n = x.len();
            let p = x.as_ptr();
            let tv = _mm256_set1_ps(thr);
            let mut i = start;
            while i + 8 <= n {
                let gt = _mm256_cmp_ps::<_CMP_GT_OQ>(_mm256_loadu_ps(p.add(i)), tv);
                let mask = _mm256_movemask_ps(gt);
                if mask != 0 {
                    return i + mask.trailing_zeros() as usize;
                }
                i += 8;
            }
            (i..n).find(|&j| x[j] > thr).unwrap_or(n)
        }
    }
}
