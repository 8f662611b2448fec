//! The AVX2 + FMA panel kernel of [`super::linear_packed`].

use super::{PackedLinear, GROUP, KC, PANEL, PREFETCH_L2};
use std::arch::x86_64::*;

/// Rows `r0..r0+R` of panel `pi` over `k` in `k0..k1`: 2·R accumulators of 8 output columns,
/// started from zero when `k0 == 0`, else from the partial sums in `part` (`[rows][PANEL]`,
/// rows counted from the start of the row group `g0`); left in `part` unless `k1` is the end,
/// then written to `y` with the bias. `PF`: ask for the weights `PREFETCH_L2` lines ahead
/// in the panel stream (into L2).
///
/// # Safety
/// The CPU supports AVX2 and FMA; `x` holds the group's rows (`in_dim` floats each) from
/// `r0`; `part` holds `GROUP · PANEL` floats; `y` points to `rows · out_dim` writable floats;
/// `r0 + R` rows and panel `pi` are in range.
#[target_feature(enable = "avx2,fma")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn panel_block<const R: usize, const PF: bool>(
    x: *const f32,
    p: &PackedLinear,
    y: *mut f32,
    part: &mut [f32; GROUP * PANEL],
    (g0, r0): (usize, usize),
    pi: usize,
    (k0, k1): (usize, usize),
) {
    // SAFETY: the caller upholds this function's `# Safety` contract, which every pointer
    // access and call below relies on.
    unsafe {
        let (n_in, n_out) = (p.in_dim, p.out_dim);
        let w = p.panels.as_ptr().add(pi * n_in * PANEL);
        let pp = part.as_mut_ptr().add((r0 - g0) * PANEL);
        let mut acc = [[_mm256_setzero_ps(); 2]; R];
        if k0 > 0 {
            for (i, a) in acc.iter_mut().enumerate() {
                a[0] = _mm256_loadu_ps(pp.add(i * PANEL));
                a[1] = _mm256_loadu_ps(pp.add(i * PANEL + 8));
            }
        }
        for k in k0..k1 {
            // With several rows the kernel would stall on the weights streaming in from memory
            // (measured: most samples on the first FMA after their loads). Prefetching far
            // ahead into L2 overlaps the stream with the FMAs; the K-blocking keeps the x rows
            // and the panel chunk in L1 meanwhile. One row is better left to the hardware
            // prefetcher (measured). Past the last panel this touches memory after the weights,
            // which a prefetch may do (it never faults).
            if PF {
                _mm_prefetch::<_MM_HINT_T1>(w.wrapping_add((k + PREFETCH_L2) * PANEL) as *const i8);
            }
            let w0 = _mm256_loadu_ps(w.add(k * PANEL));
            let w1 = _mm256_loadu_ps(w.add(k * PANEL + 8));
            for (i, a) in acc.iter_mut().enumerate() {
                let xb = _mm256_broadcast_ss(&*x.add((r0 + i) * n_in + k));
                a[0] = _mm256_fmadd_ps(xb, w0, a[0]);
                a[1] = _mm256_fmadd_ps(xb, w1, a[1]);
            }
        }
        if k1 < n_in {
            for (i, a) in acc.iter().enumerate() {
                _mm256_storeu_ps(pp.add(i * PANEL), a[0]);
                _mm256_storeu_ps(pp.add(i * PANEL + 8), a[1]);
            }
            return;
        }
        let c0 = pi * PANEL;
        let cols = PANEL.min(n_out - c0);
        let b0 = if cols == PANEL {
            _mm256_loadu_ps(p.bias.as_ptr().add(c0))
        } else {
            _mm256_setzero_ps()
        };
        let b1 = if cols == PANEL {
            _mm256_loadu_ps(p.bias.as_ptr().add(c0 + 8))
        } else {
            _mm256_setzero_ps()
        };
        for (i, a) in acc.iter().enumerate() {
            let dst = y.add((r0 + i) * n_out + c0);
            if cols == PANEL {
                _mm256_storeu_ps(dst, _mm256_add_ps(a[0], b0));
                _mm256_storeu_ps(dst.add(8), _mm256_add_ps(a[1], b1));
            } else {
                let mut tmp = [0.0f32; PANEL];
                _mm256_storeu_ps(tmp.as_mut_ptr(), a[0]);
                _mm256_storeu_ps(tmp.as_mut_ptr().add(8), a[1]);
                for (j, &v) in tmp[..cols].iter().enumerate() {
                    *dst.add(j) = v + p.bias[c0 + j];
                }
            }
        }
    }
}

/// Panels `p0..p1` of `y = x · Wᵀ + b` for `rows` rows.
///
/// Rows go in groups of up to [`GROUP`], each group in tiles of up to 6 rows × 16 columns
/// (12 accumulators). One row: a single pass per panel, no software prefetch. Several rows:
/// `k` in chunks of [`KC`], every tile of the group over one chunk before the next (the
/// group's x columns and the panel's chunk stay in L1; partial sums wait in a small buffer),
/// the first tile of each chunk prefetching the weight stream into L2.
///
/// # Safety
/// The CPU supports AVX2 and FMA; `x` holds `rows · in_dim` floats; `y` points to
/// `rows · out_dim` writable floats; `p0 <= p1 <=` the number of panels.
#[target_feature(enable = "avx2,fma")]
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
        let n_in = p.in_dim;
        let mut part = [0.0f32; GROUP * PANEL];
        if rows == 1 && n_in > 0 {
            // Its own loop: one row through the general loop nest below ran at 60% of this
            // speed (same inner loop; measured, cause not found).
            for pi in p0..p1 {
                panel_block::<1, false>(x, p, y, &mut part, (0, 0), pi, (0, n_in));
            }
            return;
        }
        for pi in p0..p1 {
            for g0 in (0..rows).step_by(GROUP) {
                let g1 = (g0 + GROUP).min(rows);
                for k0 in (0..n_in).step_by(KC) {
                    let k = (k0, (k0 + KC).min(n_in));
                    let mut r = g0;
                    while r < g1 {
                        let part = &mut part;
                        let n = (g1 - r).min(6);
                        let at = (g0, r);
                        match (n, rows > 1 && r == g0) {
                            (6, true) => panel_block::<6, true>(x, p, y, part, at, pi, k),
                            (6, false) => panel_block::<6, false>(x, p, y, part, at, pi, k),
                            (5, true) => panel_block::<5, true>(x, p, y, part, at, pi, k),
                            (5, false) => panel_block::<5, false>(x, p, y, part, at, pi, k),
                            (4, true) => panel_block::<4, true>(x, p, y, part, at, pi, k),
                            (4, false) => panel_block::<4, false>(x, p, y, part, at, pi, k),
                            (3, true) => panel_block::<3, true>(x, p, y, part, at, pi, k),
                            (3, false) => panel_block::<3, false>(x, p, y, part, at, pi, k),
                            (2, true) => panel_block::<2, true>(x, p, y, part, at, pi, k),
                            (2, false) => panel_block::<2, false>(x, p, y, part, at, pi, k),
                            (_, true) => panel_block::<1, true>(x, p, y, part, at, pi, k),
                            (_, false) => panel_block::<1, false>(x, p, y, part, at, pi, k),
                        }
                        r += n;
                    }
                }
                if n_in == 0 {
                    // No k at all: y = bias (a degenerate layer, kept correct).
                    for r in g0..g1 {
                        for j in pi * PANEL..((pi + 1) * PANEL).min(p.out_dim) {
                            *y.add(r * p.out_dim + j) = p.bias[j];
                        }
                    }
                }
            }
        }
    }
}
