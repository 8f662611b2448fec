//! Attention of one query row over a window of keys, for every head (AVX2 + FMA when the CPU has
//! it, a portable loop otherwise); the probabilities are left in the caller's scratch, so
//! attention maps read them instead of recomputing.

use crate::simd::{dot, exp_fast, has_avx2_fma, simd_kernel, sum8};

/// Attention of one query row over `n_keys` keys, for every head: head `h` owns columns
/// `h·dk..(h+1)·dk`; its scores `q_h · k_h · scale` go through a softmax over the keys and
/// `out_h = Σ_n p_n · v_h(n)`. `key(n)` / `val(n)` return key / value row `n` (at least
/// `n_heads · dk` wide); `scores` is scratch of at least `n_heads · n_keys` floats, left holding
/// the probabilities (`[head][key]`). AVX2/FMA when the CPU has it.
#[allow(clippy::too_many_arguments)]
pub fn attend_row<'a>(
    q: &[f32],
    (n_heads, dk): (usize, usize),
    n_keys: usize,
    scale: f32,
    key: impl Fn(usize) -> &'a [f32],
    val: impl Fn(usize) -> &'a [f32],
    scores: &mut [f32],
    out: &mut [f32],
) {
    let width = n_heads * dk;
    assert!(q.len() >= width && out.len() >= width && scores.len() >= n_heads * n_keys);
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the CPU supports AVX2 and FMA; lengths checked above (rows from `key`/`val`
        // are checked inside).
        unsafe { avx2::attend_row(q, (n_heads, dk), n_keys, scale, key, val, scores, out) };
        return;
    }
    attend_row_portable(q, (n_heads, dk), n_keys, scale, key, val, scores, out)
}

/// Portable version of [`attend_row`].
#[allow(clippy::too_many_arguments)]
pub(super) fn attend_row_portable<'a>(
    q: &[f32],
    (n_heads, dk): (usize, usize),
    n_keys: usize,
    scale: f32,
    key: impl Fn(usize) -> &'a [f32],
    val: impl Fn(usize) -> &'a [f32],
    scores: &mut [f32],
    out: &mut [f32],
) {
    let width = n_heads * dk;
    for n in 0..n_keys {
        let kr = &key(n)[..width];
        for h in 0..n_heads {
            let o = h * dk;
            scores[h * n_keys + n] = dot(&q[o..o + dk], &kr[o..o + dk]) * scale;
        }
    }
    for h in 0..n_heads {
        softmax_in_place(&mut scores[h * n_keys..(h + 1) * n_keys]);
    }
    let out = &mut out[..width];
    out.fill(0.0);
    for n in 0..n_keys {
        let vr = &val(n)[..width];
        for h in 0..n_heads {
            let (o, p) = (h * dk, scores[h * n_keys + n]);
            for (x, y) in out[o..o + dk].iter_mut().zip(&vr[o..o + dk]) {
                *x += p * y;
            }
        }
    }
}

/// In-place softmax of one head's row of scores, on every CPU: the crate's one vector `exp`
/// ([`exp_fast`]) and one sum order, so AVX2 and baseline machines give the same bits.
pub(super) fn softmax_in_place(x: &mut [f32]) {
    let m = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let inv = 1.0 / exp_shifted(x, m);
    scale_in_place(x, inv);
}

simd_kernel! {
    /// `x[i] = exp(x[i] − m)` (a plain loop, vectorised 8 wide); returns their sum ([`sum8`]).
    fn exp_shifted(x: &mut [f32], m: f32) -> f32 {
        for v in x.iter_mut() {
            *v = exp_fast(*v - m);
        }
        sum8(x)
    }
}

simd_kernel! {
    /// `x[i] *= a`.
    fn scale_in_place(x: &mut [f32], a: f32) {
        for v in x.iter_mut() {
            *v *= a;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::super::vector::{hsum, tail_mask};
    use std::arch::x86_64::*;

    /// `a · b` over `len` floats, the last `len % 8` through `mask` (= `tail_mask(len % 8)`).
    ///
    /// # Safety
    /// The CPU supports AVX2 and FMA; `a` and `b` point to `len` readable floats.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn dot_masked(a: *const f32, b: *const f32, len: usize, mask: __m256i) -> f32 {
        // SAFETY: the caller upholds this function's `# Safety` contract, which every pointer
        // access and call below relies on.
        unsafe {
            let n8 = len / 8 * 8;
            let mut acc = _mm256_setzero_ps();
            let mut i = 0;
            while i < n8 {
                acc = _mm256_fmadd_ps(_mm256_loadu_ps(a.add(i)), _mm256_loadu_ps(b.add(i)), acc);
                i += 8;
            }
            if n8 < len {
                let x = _mm256_maskload_ps(a.add(n8), mask);
                acc = _mm256_fmadd_ps(x, _mm256_maskload_ps(b.add(n8), mask), acc);
            }
            hsum(acc)
        }
    }

    /// See [`super::attend_row`].
    ///
    /// # Safety
    /// The CPU supports AVX2 and FMA; `q` and `out` hold `n_heads · dk` floats, `scores`
    /// `n_heads · n_keys`.
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn attend_row<'a>(
        q: &[f32],
        (n_heads, dk): (usize, usize),
        n_keys: usize,
        scale: f32,
        key: impl Fn(usize) -> &'a [f32],
        val: impl Fn(usize) -> &'a [f32],
        scores: &mut [f32],
        out: &mut [f32],
    ) {
        // SAFETY: the caller upholds this function's `# Safety` contract, which every pointer
        // access and call below relies on.
        unsafe {
            let width = n_heads * dk;
            let (n8, mask) = (dk / 8 * 8, tail_mask(dk % 8));
            let qp = q.as_ptr();
            let sp = scores.as_mut_ptr();
            for n in 0..n_keys {
                let kr = key(n);
                assert!(kr.len() >= width);
                for h in 0..n_heads {
                    let o = h * dk;
                    *sp.add(h * n_keys + n) =
                        dot_masked(qp.add(o), kr.as_ptr().add(o), dk, mask) * scale;
                }
            }
            // Softmax per head, the same code on every CPU.
            for h in 0..n_heads {
                super::softmax_in_place(&mut scores[h * n_keys..(h + 1) * n_keys]);
            }
            // The slices above reborrowed `scores`: take the pointer afresh.
            let sp = scores.as_mut_ptr();
            out[..width].fill(0.0);
            let op = out.as_mut_ptr();
            for n in 0..n_keys {
                let vr = val(n);
                assert!(vr.len() >= width);
                let vp = vr.as_ptr();
                for h in 0..n_heads {
                    let o = h * dk;
                    let p = _mm256_set1_ps(*sp.add(h * n_keys + n));
                    let mut i = 0;
                    while i < n8 {
                        let d = op.add(o + i);
                        _mm256_storeu_ps(
                            d,
                            _mm256_fmadd_ps(p, _mm256_loadu_ps(vp.add(o + i)), _mm256_loadu_ps(d)),
                        );
                        i += 8;
                    }
                    if n8 < dk {
                        let d = op.add(o + n8);
                        let v = _mm256_maskload_ps(vp.add(o + n8), mask);
                        let acc = _mm256_fmadd_ps(p, v, _mm256_maskload_ps(d, mask));
                        _mm256_maskstore_ps(d, mask, acc);
                    }
                }
            }
        }
    }
}
