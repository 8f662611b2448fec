//! The AVX-512F panel kernel of [`super::linear_packed`] for 2+ rows: one 16-lane register per
//! panel row, so a tile holds up to 12 rows and each chunk of weights is read once for a whole
//! beam.

use super::{PackedLinear, KC, PANEL, PREFETCH_L2};
use std::arch::x86_64::*;

/// Rows `r0..r0 + R` of panel `pi` over the whole input, with the bias, into `y`.
///
/// # Safety
/// The CPU supports AVX-512F; `x` points to rows `r0..r0 + R` (`in_dim` floats each), `y` to
/// `(r0 + R) · out_dim` writable floats; panel `pi` exists.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn tile<const R: usize>(x: *const f32, p: &PackedLinear, y: *mut f32, r0: usize, pi: usize) {
    // SAFETY: the caller upholds this function's `# Safety` contract, which every pointer
    // access and call below relies on.
    unsafe {
        let (n_in, n_out) = (p.in_dim, p.out_dim);
        let w = p.panels.as_ptr().add(pi * n_in * PANEL);
        let mut acc = [_mm512_setzero_ps(); R];
        for k0 in (0..n_in).step_by(KC) {
            for k in k0..(k0 + KC).min(n_in) {
                _mm_prefetch::<_MM_HINT_T1>(w.wrapping_add((k + PREFETCH_L2) * PANEL) as *const i8);
                let wk = _mm512_loadu_ps(w.add(k * PANEL));
                for (i, a) in acc.iter_mut().enumerate() {
                    let xb = _mm512_set1_ps(*x.add((r0 + i) * n_in + k));
                    *a = _mm512_fmadd_ps(xb, wk, *a);
                }
            }
        }
        let c0 = pi * PANEL;
        let cols = PANEL.min(n_out - c0);
        let mask: __mmask16 = if cols == PANEL {
            0xFFFF
        } else {
            (1u16 << cols) - 1
        };
        let b = _mm512_maskz_loadu_ps(mask, p.bias.as_ptr().add(c0));
        for (i, a) in acc.iter().enumerate() {
            _mm512_mask_storeu_ps(y.add((r0 + i) * n_out + c0), mask, _mm512_add_ps(*a, b));
        }
    }
}

/// Panels `p0..p1` of `y = x · Wᵀ + b` for `rows` (≥ 2) rows, in tiles of up to 12 rows.
///
/// # Safety
/// The CPU supports AVX-512F; `x` holds `rows · in_dim` floats; `y` points to
/// `rows · out_dim` writable floats; `p0 <= p1 <=` the number of panels.
#[target_feature(enable = "avx512f")]
pub unsafe fn packed_panels(
    x: &[f32],
    rows: usize,
    p: &PackedLinear,
    y: *mut f32,
    p0: usize,
    p1: usize,
) {
    // SAFETY: the caller upholds this function's `# Safety` contract, which every pointer
    // access and call below relies on.
    unsafe {
        let x = x.as_ptr();
        for pi in p0..p1 {
            let mut r = 0;
            while r < rows {
                let n = (rows - r).min(12);
                match n {
                    12 => tile::<12>(x, p, y, r, pi),
                    11 => tile::<11>(x, p, y, r, pi),
                    10 => tile::<10>(x, p, y, r, pi),
                    9 => tile::<9>(x, p, y, r, pi),
                    8 => tile::<8>(x, p, y, r, pi),
                    7 => tile::<7>(x, p, y, r, pi),
                    6 => tile::<6>(x, p, y, r, pi),
                    5 => tile::<5>(x, p, y, r, pi),
                    4 => tile::<4>(x, p, y, r, pi),
                    3 => tile::<3>(x, p, y, r, pi),
                    2 => tile::<2>(x, p, y, r, pi),
                    _ => tile::<1>(x, p, y, r, pi),
                }
                r += n;
            }
        }
    }
}
