//! Scans over a row of logits for a search step: log-sum-exp (exact in f64, or with the vector
//! `exp`) and the first entry above a threshold (top-k selection).

use crate::simd::has_avx2_fma;

/// Numerically stable `log(sum(exp(x)))`.
pub fn log_sum_exp(x: &[f32]) -> f64 {
    let m = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if m == f32::NEG_INFINITY {
        return f64::NEG_INFINITY;
    }
    let s: f64 = x.iter().map(|&v| ((v - m) as f64).exp()).sum();
    m as f64 + s.ln()
}

/// `log(sum(exp(x)))` as [`log_sum_exp`], with `exp` evaluated in f32 by a vectorised
/// polynomial (AVX2/FMA when the CPU has it; relative error about 2e-7 per term, the sum kept in
/// f64). Entries below `max − 87` (about 1e-38 of the largest term), `-inf` included, count as
/// zero. For the many rows of a search step, where the libm `exp` of every logit dominates.
pub fn log_sum_exp_fast(x: &[f32]) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the CPU supports AVX2 and FMA.
        return unsafe { avx2::log_sum_exp(x) };
    }
    log_sum_exp(x)
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
    use super::super::vector::exp8;
    use std::arch::x86_64::*;

    /// See [`super::log_sum_exp_fast`].
    ///
    /// # Safety
    /// The CPU supports AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn log_sum_exp(x: &[f32]) -> f64 {
        // SAFETY: the caller upholds this function's `# Safety` contract, which every pointer
        // access and call below relies on.
        unsafe {
            let n = x.len();
            let n8 = n / 8 * 8;
            let p = x.as_ptr();
            let mut mv = _mm256_set1_ps(f32::NEG_INFINITY);
            for i in (0..n8).step_by(8) {
                mv = _mm256_max_ps(mv, _mm256_loadu_ps(p.add(i)));
            }
            let mut lanes = [0.0f32; 8];
            _mm256_storeu_ps(lanes.as_mut_ptr(), mv);
            let m = lanes
                .iter()
                .chain(&x[n8..])
                .copied()
                .fold(f32::NEG_INFINITY, f32::max);
            if m == f32::NEG_INFINITY || m.is_nan() {
                return super::log_sum_exp(x);
            }
            let mb = _mm256_set1_ps(m);
            // f32 partial sums over blocks of 64 entries (at most 64 terms ≤ 1 each), folded into
            // f64 lanes.
            let mut total = _mm256_setzero_pd();
            let mut i = 0;
            while i < n8 {
                let end = (i + 64).min(n8);
                let mut acc = _mm256_setzero_ps();
                while i < end {
                    acc = _mm256_add_ps(acc, exp8(_mm256_sub_ps(_mm256_loadu_ps(p.add(i)), mb)));
                    i += 8;
                }
                total = _mm256_add_pd(total, _mm256_cvtps_pd(_mm256_castps256_ps128(acc)));
                total = _mm256_add_pd(total, _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(acc)));
            }
            let mut t = [0.0f64; 4];
            _mm256_storeu_pd(t.as_mut_ptr(), total);
            let mut s = (t[0] + t[1]) + (t[2] + t[3]);
            if n8 < n {
                let mut tail = [f32::NEG_INFINITY; 8];
                tail[..n - n8].copy_from_slice(&x[n8..]);
                let e = exp8(_mm256_sub_ps(_mm256_loadu_ps(tail.as_ptr()), mb));
                _mm256_storeu_ps(lanes.as_mut_ptr(), e);
                s += lanes.iter().map(|&v| v as f64).sum::<f64>();
            }
            m as f64 + s.ln()
        }
    }

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
