//! Inference kernels over plain row-major f32 slices: linear layers (a matrix-vector loop for one
//! row, a packed-panel AVX2 kernel for the few rows of a decoding step, with an AVX-512 variant
//! for 2+ rows where the CPU has it (`PIPE_NO_AVX512=1` turns it off), `gemm` for many), one
//! query row's multi-head attention, LayerNorm, ReLU, the token + position embedding, and the
//! log-sum-exp / top-k scans of a search step (vectorised `exp`).

use crate::model::{LayerNormWeights, LinearWeights};
pub use crate::simd::dot;
use crate::simd::{has_avx2_fma, has_avx512, SharedMut};
use rayon::prelude::*;

/// LayerNorm epsilon (DESIGN.md section 5).
pub const LN_EPS: f32 = 1e-5;

/// Work (multiply-adds) below which a single row is computed on one thread.
const PAR_MATVEC_MIN: usize = 1 << 16;
/// Work below which `gemm` runs single-threaded.
const PAR_GEMM_MIN: usize = 1 << 18;

/// Row counts up to this use the small-batch kernel (weights streamed once, every row of `x`
/// reused from L1); more rows use `gemm`.
const SMALL_ROWS: usize = 32;

/// `y[r] = x[r] · Wᵀ + b` for `rows` rows: `x` is `[rows, in]`, `y` is `[rows, out]`.
/// Up to [`SMALL_ROWS`] rows use a matrix-vector style kernel (AVX2/FMA when the CPU has it,
/// output rows split across the rayon pool when large and `threads > 1`); more rows use `gemm`.
pub fn linear(x: &[f32], rows: usize, lin: &LinearWeights, y: &mut [f32], threads: usize) {
    let (n_in, n_out) = (lin.in_dim, lin.out_dim);
    assert!(x.len() >= rows * n_in && y.len() >= rows * n_out);
    assert!(lin.weight.len() >= n_in * n_out && lin.bias.len() >= n_out);
    if rows == 0 {
        return;
    }
    if rows <= SMALL_ROWS {
        small_linear(x, rows, lin, y, threads);
        return;
    }
    let y = &mut y[..rows * n_out];
    for r in 0..rows {
        y[r * n_out..(r + 1) * n_out].copy_from_slice(&lin.bias);
    }
    let par = if threads > 1 && rows * n_in * n_out >= PAR_GEMM_MIN {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: dst is [rows, n_out] row-major (col stride 1, row stride n_out); lhs is x
    // [rows, n_in] row-major; rhs is Wᵀ [n_in, n_out] read from W [n_out, n_in] (col stride
    // n_in, row stride 1). All slices are at least that long (checked above).
    unsafe {
        gemm::gemm(
            rows,
            n_out,
            n_in,
            y.as_mut_ptr(),
            1,
            n_out as isize,
            true,
            x.as_ptr(),
            1,
            n_in as isize,
            lin.weight.as_ptr(),
            n_in as isize,
            1,
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            par,
        );
    }
}

/// `linear` for few rows: output columns in chunks across the pool; each chunk streams its
/// weight rows once and applies each to every row of `x`.
fn small_linear(x: &[f32], rows: usize, lin: &LinearWeights, y: &mut [f32], threads: usize) {
    let n_out = lin.out_dim;
    let yp = SharedMut(y.as_mut_ptr());
    let avx = has_avx2_fma();
    let cols = |o0: usize, o1: usize| {
        // SAFETY: lengths were checked by `linear`; this call writes only columns o0..o1
        // of rows 0..rows of y, disjoint from every other call.
        unsafe {
            #[cfg(target_arch = "x86_64")]
            if avx {
                return avx::linear_cols(x, rows, lin, yp.get(), o0, o1);
            }
            let _ = avx;
            scalar_linear_cols(x, rows, lin, yp.get(), o0, o1)
        }
    };
    let parallel = threads > 1 && rows * lin.in_dim * n_out >= PAR_MATVEC_MIN;
    let chunk = n_out.div_ceil(threads * 4).max(16).next_multiple_of(4);
    for_chunks(n_out, chunk, parallel, cols);
}

/// Calls `f(start, end)` over `0..n` cut into pieces of `chunk`, spread across the rayon pool
/// when `parallel`, else once over the whole range.
fn for_chunks(n: usize, chunk: usize, parallel: bool, f: impl Fn(usize, usize) + Sync) {
    if parallel {
        (0..n.div_ceil(chunk))
            .into_par_iter()
            .for_each(|c| f(c * chunk, ((c + 1) * chunk).min(n)));
    } else {
        f(0, n);
    }
}

/// Portable version of [`avx::linear_cols`].
///
/// # Safety
/// `y` must point to `rows · lin.out_dim` writable floats; `o0 <= o1 <= lin.out_dim`.
unsafe fn scalar_linear_cols(
    x: &[f32],
    rows: usize,
    lin: &LinearWeights,
    y: *mut f32,
    o0: usize,
    o1: usize,
) {
    let (n_in, n_out) = (lin.in_dim, lin.out_dim);
    for o in o0..o1 {
        let w = &lin.weight[o * n_in..(o + 1) * n_in];
        for r in 0..rows {
            *y.add(r * n_out + o) = dot(w, &x[r * n_in..(r + 1) * n_in]) + lin.bias[o];
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx {
    use super::{PackedLinear, GROUP, KC, PANEL, PREFETCH_L2};
    use crate::model::LinearWeights;
    use std::arch::x86_64::*;

    const MV_O: usize = 1;
    const BATCH_O: usize = 2;

    /// Horizontal sum of eight lanes.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        _mm_cvtss_f32(s)
    }

    /// Rows `r0..r0+R` × columns `o..o+O` of `y`: R·O accumulators of 8 lanes over `k`.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn block<const R: usize, const O: usize>(
        x: *const f32,
        lin: &LinearWeights,
        y: *mut f32,
        r0: usize,
        o: usize,
    ) {
        let (n_in, n_out) = (lin.in_dim, lin.out_dim);
        let w = lin.weight.as_ptr();
        let mut acc = [[_mm256_setzero_ps(); O]; R];
        let k8 = n_in / 8 * 8;
        let mut k = 0;
        while k < k8 {
            let mut wv = [_mm256_setzero_ps(); O];
            for (j, v) in wv.iter_mut().enumerate() {
                *v = _mm256_loadu_ps(w.add((o + j) * n_in + k));
            }
            for (i, a) in acc.iter_mut().enumerate() {
                let xv = _mm256_loadu_ps(x.add((r0 + i) * n_in + k));
                for j in 0..O {
                    a[j] = _mm256_fmadd_ps(xv, wv[j], a[j]);
                }
            }
            k += 8;
        }
        for (i, a) in acc.iter().enumerate() {
            for (j, &v) in a.iter().enumerate() {
                let mut s = hsum(v);
                for kk in k8..n_in {
                    s += *x.add((r0 + i) * n_in + kk) * *w.add((o + j) * n_in + kk);
                }
                *y.add((r0 + i) * n_out + o + j) = s + lin.bias[o + j];
            }
        }
    }

    /// All rows for columns `o..o+O`: the O weight rows stay in L1 across row tiles.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn column_group<const O: usize>(
        x: *const f32,
        rows: usize,
        lin: &LinearWeights,
        y: *mut f32,
        o: usize,
    ) {
        let mut r = 0;
        while r + 6 <= rows {
            block::<6, O>(x, lin, y, r, o);
            r += 6;
        }
        match rows - r {
            5 => block::<5, O>(x, lin, y, r, o),
            4 => block::<4, O>(x, lin, y, r, o),
            3 => block::<3, O>(x, lin, y, r, o),
            2 => block::<2, O>(x, lin, y, r, o),
            1 => block::<1, O>(x, lin, y, r, o),
            _ => {}
        }
    }

    /// Rows `r0..r0+R` of panel `pi` over `k` in `k0..k1`: 2·R accumulators of 8 output columns,
    /// started from zero when `k0 == 0`, else from the partial sums in `part` (`[rows][PANEL]`,
    /// rows counted from the start of the row group `g0`); left in `part` unless `k1` is the end,
    /// then written to `y` with the bias. `PF`: ask for the weights `PREFETCH_L2` lines ahead
    /// in the panel stream (into L2).
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

    /// `exp` of eight lanes (Cephes' `expf` reduction and polynomial); lanes below −87 (where
    /// f32 `exp` underflows to subnormals) give 0.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn exp8(x: __m256) -> __m256 {
        let tiny = _mm256_cmp_ps::<_CMP_GE_OQ>(x, _mm256_set1_ps(-87.0));
        let x = _mm256_min_ps(
            _mm256_max_ps(x, _mm256_set1_ps(-87.0)),
            _mm256_set1_ps(88.0),
        );
        let fx = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm256_mul_ps(x, _mm256_set1_ps(std::f32::consts::LOG2_E)),
        );
        let r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693_359_4), x);
        let r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.121_944_4e-4), r);
        let mut y = _mm256_set1_ps(1.987_569_1e-4);
        for c in [1.398_2e-3, 8.333_452e-3, 4.166_579_6e-2, 0.166_666_65, 0.5] {
            y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(c));
        }
        let r2 = _mm256_mul_ps(r, r);
        let y = _mm256_fmadd_ps(y, r2, _mm256_add_ps(r, _mm256_set1_ps(1.0)));
        let n = _mm256_cvtps_epi32(fx);
        let pow2n = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(
            n,
            _mm256_set1_epi32(127),
        )));
        _mm256_and_ps(_mm256_mul_ps(y, pow2n), tiny)
    }

    /// See [`super::log_sum_exp_fast`].
    ///
    /// # Safety
    /// The CPU supports AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn log_sum_exp(x: &[f32]) -> f64 {
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

    /// See [`super::first_above`].
    ///
    /// # Safety
    /// The CPU supports AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn first_above(x: &[f32], start: usize, thr: f32) -> usize {
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

    /// Lane mask selecting the first `n` (< 8) lanes.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn tail_mask(n: usize) -> __m256i {
        let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), lanes)
    }

    /// `a · b` over `len` floats, the last `len % 8` through `mask` (= `tail_mask(len % 8)`).
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn dot_masked(a: *const f32, b: *const f32, len: usize, mask: __m256i) -> f32 {
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
        // Softmax per head: vectorised max, exp and sum; the tail padded with -inf.
        let nk8 = n_keys / 8 * 8;
        let kmask = tail_mask(n_keys % 8);
        let ninf = _mm256_set1_ps(f32::NEG_INFINITY);
        for h in 0..n_heads {
            let row = sp.add(h * n_keys);
            let load = |i: usize| {
                if i < nk8 {
                    _mm256_loadu_ps(row.add(i))
                } else {
                    _mm256_blendv_ps(
                        ninf,
                        _mm256_maskload_ps(row.add(i), kmask),
                        _mm256_castsi256_ps(kmask),
                    )
                }
            };
            let mut mv = ninf;
            for i in (0..n_keys).step_by(8) {
                mv = _mm256_max_ps(mv, load(i));
            }
            let mut lanes = [0.0f32; 8];
            _mm256_storeu_ps(lanes.as_mut_ptr(), mv);
            let m = _mm256_set1_ps(lanes.iter().copied().fold(f32::NEG_INFINITY, f32::max));
            let mut sum = _mm256_setzero_ps();
            for i in (0..n_keys).step_by(8) {
                let e = exp8(_mm256_sub_ps(load(i), m));
                sum = _mm256_add_ps(sum, e);
                if i < nk8 {
                    _mm256_storeu_ps(row.add(i), e);
                } else {
                    _mm256_maskstore_ps(row.add(i), kmask, e);
                }
            }
            let inv = _mm256_set1_ps(1.0 / hsum(sum));
            for i in (0..n_keys).step_by(8) {
                if i < nk8 {
                    _mm256_storeu_ps(row.add(i), _mm256_mul_ps(_mm256_loadu_ps(row.add(i)), inv));
                } else {
                    let v = _mm256_maskload_ps(row.add(i), kmask);
                    _mm256_maskstore_ps(row.add(i), kmask, _mm256_mul_ps(v, inv));
                }
            }
        }
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

    /// Columns `o0..o1` of `y = x · Wᵀ + b` for `rows` rows.
    ///
    /// # Safety
    /// The CPU supports AVX2 and FMA; `x` holds `rows · in_dim` floats; `y` points to
    /// `rows · out_dim` writable floats; `o0 <= o1 <= out_dim`.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn linear_cols(
        x: &[f32],
        rows: usize,
        lin: &LinearWeights,
        y: *mut f32,
        o0: usize,
        o1: usize,
    ) {
        let x = x.as_ptr();
        let mut o = o0;
        if rows == 1 {
            while o + MV_O <= o1 {
                block::<1, MV_O>(x, lin, y, 0, o);
                o += MV_O;
            }
        } else {
            while o + BATCH_O <= o1 {
                column_group::<BATCH_O>(x, rows, lin, y, o);
                o += BATCH_O;
            }
        }
        while o < o1 {
            column_group::<1>(x, rows, lin, y, o);
            o += 1;
        }
    }
}

/// Output columns per panel of a [`PackedLinear`] (two AVX registers).
pub const PANEL: usize = 16;
/// Rows the packed kernel keeps in flight over one `k` chunk (two tiles of 6).
const GROUP: usize = 12;
/// `k` values per chunk of the packed kernel with several rows: 12 rows of x (4.8 KB) and the
/// panel's chunk (6.4 KB) stay in L1.
const KC: usize = 100;
/// Software prefetch distance of the packed kernel with several rows, in 64-byte panel lines
/// (one `k` of a panel each): about one panel of the seed model ahead. Measured on the output
/// layer at 10 rows, one thread, cold caches: 1.7 ms with 16 lines into L1 (the previous
/// kernel), 1.0 ms with 150–600 lines into L2.
const PREFETCH_L2: usize = 300;

/// A linear layer's weights repacked once for decoding: panels of [`PANEL`] output columns,
/// each stored k-major (`[in_dim][PANEL]`, the last panel zero-padded), so the kernel streams
/// the weights contiguously and keeps [`PANEL`] outputs per row in registers (no horizontal
/// sums, no per-call packing as `gemm` does).
#[derive(Debug, Clone)]
pub struct PackedLinear {
    pub in_dim: usize,
    pub out_dim: usize,
    panels: Vec<f32>,
    bias: Vec<f32>,
}

impl PackedLinear {
    pub fn new(lin: &LinearWeights) -> Self {
        let (n_in, n_out) = (lin.in_dim, lin.out_dim);
        let n_panels = n_out.div_ceil(PANEL);
        let mut panels = vec![0.0f32; n_panels * n_in * PANEL];
        for o in 0..n_out {
            let (p, j) = (o / PANEL, o % PANEL);
            let base = p * n_in * PANEL + j;
            for (k, &w) in lin.weight[o * n_in..(o + 1) * n_in].iter().enumerate() {
                panels[base + k * PANEL] = w;
            }
        }
        PackedLinear {
            in_dim: n_in,
            out_dim: n_out,
            panels,
            bias: lin.bias.clone(),
        }
    }

    fn n_panels(&self) -> usize {
        self.out_dim.div_ceil(PANEL)
    }
}

/// `y[r] = x[r] · Wᵀ + b` for `rows` rows over packed weights (any row count; meant for the
/// few rows of a decoding step). Panels are split across the rayon pool when the work is large
/// and `threads > 1`; AVX2/FMA when the CPU has it, a portable loop otherwise.
pub fn linear_packed(x: &[f32], rows: usize, p: &PackedLinear, y: &mut [f32], threads: usize) {
    let (n_in, n_out) = (p.in_dim, p.out_dim);
    assert!(x.len() >= rows * n_in && y.len() >= rows * n_out);
    if rows == 0 {
        return;
    }
    let yp = SharedMut(y.as_mut_ptr());
    let avx = has_avx2_fma();
    let avx512 = rows > 1 && has_avx512();
    let panels = |p0: usize, p1: usize| {
        // SAFETY: lengths checked above; this call writes only the columns of panels p0..p1,
        // disjoint from every other call.
        unsafe {
            #[cfg(target_arch = "x86_64")]
            if avx512 {
                return avx512::packed_panels(x, rows, p, yp.get(), p0, p1);
            }
            #[cfg(target_arch = "x86_64")]
            if avx {
                return avx::packed_panels(x, rows, p, yp.get(), p0, p1);
            }
            let _ = avx;
            scalar_packed_panels(x, rows, p, yp.get(), p0, p1)
        }
    };
    let np = p.n_panels();
    let parallel = threads > 1 && rows * n_in * n_out >= PAR_MATVEC_MIN;
    // Several rows make a panel heavy enough for finer tasks: a layer of 19 panels in 10 tasks
    // of 2 splits 10 / 9 across two threads, where 7 tasks of 3 split 12 / 9.
    let per_thread = if rows > 1 { 8 } else { 4 };
    for_chunks(
        np,
        np.div_ceil(threads * per_thread).max(1),
        parallel,
        panels,
    );
}

/// AVX-512 version of the several-row panel kernel: one 16-lane register per panel row, so a
/// tile holds up to 12 rows and each chunk of weights is read once for a whole beam.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{PackedLinear, KC, PANEL, PREFETCH_L2};
    use std::arch::x86_64::*;

    /// Rows `r0..r0 + R` of panel `pi` over the whole input, with the bias, into `y`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn tile<const R: usize>(
        x: *const f32,
        p: &PackedLinear,
        y: *mut f32,
        r0: usize,
        pi: usize,
    ) {
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

/// Portable version of [`avx::packed_panels`].
///
/// # Safety
/// `y` must point to `rows · p.out_dim` writable floats; `p0 <= p1 <= n_panels`.
unsafe fn scalar_packed_panels(
    x: &[f32],
    rows: usize,
    p: &PackedLinear,
    y: *mut f32,
    p0: usize,
    p1: usize,
) {
    let (n_in, n_out) = (p.in_dim, p.out_dim);
    for pi in p0..p1 {
        let panel = &p.panels[pi * n_in * PANEL..(pi + 1) * n_in * PANEL];
        let cols = PANEL.min(n_out - pi * PANEL);
        for r in 0..rows {
            let mut acc = [0.0f32; PANEL];
            for (k, &xv) in x[r * n_in..(r + 1) * n_in].iter().enumerate() {
                for (a, &w) in acc.iter_mut().zip(&panel[k * PANEL..(k + 1) * PANEL]) {
                    *a += xv * w;
                }
            }
            for (j, &a) in acc[..cols].iter().enumerate() {
                *y.add(r * n_out + pi * PANEL + j) = a + p.bias[pi * PANEL + j];
            }
        }
    }
}

/// `Σ f(x_i)` with eight independent partial sums (vectorises; a single running sum is one
/// long chain of dependent adds).
#[inline]
fn sum_lanes(x: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0.0f32; 8];
    let mut chunks = x.chunks_exact(8);
    for c in &mut chunks {
        for l in 0..8 {
            acc[l] += f(c[l]);
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for &v in chunks.remainder() {
        s += f(v);
    }
    s
}

/// LayerNorm of each `dim`-wide row of `x` into `y`: `(x − mean) / sqrt(var + eps) · w + b`
/// with the biased variance.
pub fn layer_norm(x: &[f32], rows: usize, ln: &LayerNormWeights, y: &mut [f32]) {
    let dim = ln.weight.len();
    for r in 0..rows {
        let xr = &x[r * dim..(r + 1) * dim];
        let yr = &mut y[r * dim..(r + 1) * dim];
        let mean = sum_lanes(xr, |v| v) / dim as f32;
        let var = sum_lanes(xr, |v| (v - mean) * (v - mean)) / dim as f32;
        let inv = 1.0 / (var + LN_EPS).sqrt();
        for i in 0..dim {
            yr[i] = (xr[i] - mean) * inv * ln.weight[i] + ln.bias[i];
        }
    }
}

/// In-place ReLU.
pub fn relu(x: &mut [f32]) {
    for v in x {
        if *v < 0.0 {
            *v = 0.0;
        }
    }
}

/// `a += b` element-wise.
pub fn add_assign(a: &mut [f32], b: &[f32]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x += *y;
    }
}

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
        return unsafe { avx::log_sum_exp(x) };
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
        return unsafe { avx::first_above(x, start, thr) };
    }
    (start..x.len()).find(|&i| x[i] > thr).unwrap_or(x.len())
}

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
        unsafe { avx::attend_row(q, (n_heads, dk), n_keys, scale, key, val, scores, out) };
        return;
    }
    attend_row_portable(q, (n_heads, dk), n_keys, scale, key, val, scores, out)
}

/// Portable version of [`attend_row`].
#[allow(clippy::too_many_arguments)]
fn attend_row_portable<'a>(
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

/// In-place softmax of a short row (portable).
fn softmax_in_place(x: &mut [f32]) {
    let m = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f32;
    for v in x.iter_mut() {
        *v = (*v - m).exp();
        sum += *v;
    }
    for v in x.iter_mut() {
        *v /= sum;
    }
}

/// Writes `h[r] = tok_emb[ids[r]] + PE[pos[r]]` for every row.
/// The encoding (sines and cosines) is computed once per run of equal positions (the
/// sequences of a decoding step share theirs) and copied for the rest of the run.
pub fn embed(tok_emb: &[f32], d_model: usize, ids: &[u32], pos: &[usize], h: &mut [f32]) {
    let n = ids.len().min(pos.len());
    for r in 0..n {
        let (before, row) = h[..(r + 1) * d_model].split_at_mut(r * d_model);
        if r > 0 && pos[r] == pos[r - 1] {
            row.copy_from_slice(&before[(r - 1) * d_model..]);
        } else {
            crate::model::config::position_encoding(pos[r], row);
        }
    }
    for (r, &id) in ids[..n].iter().enumerate() {
        let e = &tok_emb[id as usize * d_model..(id as usize + 1) * d_model];
        add_assign(&mut h[r * d_model..(r + 1) * d_model], e);
    }
}

#[cfg(test)]
fn rayon_pool<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    super::with_threads(threads, f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_one_row_and_gemm_agree_with_naive() {
        let lin = LinearWeights {
            weight: (0..35).map(|i| (i as f32 * 0.37).sin()).collect(),
            bias: (0..5).map(|i| i as f32 * 0.1).collect(),
            out_dim: 5,
            in_dim: 7,
        };
        let x: Vec<f32> = (0..21).map(|i| (i as f32 * 0.11).cos()).collect();
        let mut y = vec![0.0; 15];
        linear(&x, 3, &lin, &mut y, 1);
        for r in 0..3 {
            let mut y1 = vec![0.0; 5];
            linear(&x[r * 7..], 1, &lin, &mut y1, 2);
            for o in 0..5 {
                let want: f32 = (0..7)
                    .map(|i| x[r * 7 + i] * lin.weight[o * 7 + i])
                    .sum::<f32>()
                    + lin.bias[o];
                assert!((y[r * 5 + o] - want).abs() < 1e-5);
                assert!((y1[o] - want).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn small_rows_kernel_matches_naive_for_every_tile_shape() {
        // in_dim 75 leaves a tail after the 8-lane loop; out_dim 1001 is odd and not a multiple
        // of the chunking; rows 1..=9 cover every tile remainder; both thread counts.
        let (n_in, n_out) = (75, 1001);
        let lin = LinearWeights {
            weight: (0..n_in * n_out).map(|i| (i as f32 * 0.37).sin()).collect(),
            bias: (0..n_out).map(|i| i as f32 * 0.1).collect(),
            out_dim: n_out,
            in_dim: n_in,
        };
        for rows in 1..=9 {
            let x: Vec<f32> = (0..rows * n_in).map(|i| (i as f32 * 0.11).cos()).collect();
            for threads in [1, 2] {
                let mut y = vec![f32::NAN; rows * n_out];
                super::rayon_pool(threads, || linear(&x, rows, &lin, &mut y, threads));
                for r in 0..rows {
                    for o in 0..n_out {
                        let want: f32 = (0..n_in)
                            .map(|i| x[r * n_in + i] * lin.weight[o * n_in + i])
                            .sum::<f32>()
                            + lin.bias[o];
                        assert!((y[r * n_out + o] - want).abs() < 1e-4, "{rows} {r} {o}");
                    }
                }
            }
        }
    }

    #[test]
    fn packed_kernel_matches_naive() {
        // out_dim 1001 leaves a partial last panel; rows 1..=26 cover every row tile and
        // group remainder (AVX2: groups of 12, tiles of 6; AVX-512: tiles of 12); in_dim 75 is
        // one k chunk, 237 is two whole chunks and a partial one; 8 and 3 are tiny.
        for (n_in, n_out) in [(75, 1001), (237, 1001), (8, 17), (3, 5)] {
            packed_case(n_in, n_out, 1..=26);
        }
    }

    fn packed_case(n_in: usize, n_out: usize, row_counts: std::ops::RangeInclusive<usize>) {
        let lin = LinearWeights {
            weight: (0..n_in * n_out).map(|i| (i as f32 * 0.37).sin()).collect(),
            bias: (0..n_out).map(|i| i as f32 * 0.1).collect(),
            out_dim: n_out,
            in_dim: n_in,
        };
        let p = PackedLinear::new(&lin);
        for rows in row_counts {
            let x: Vec<f32> = (0..rows * n_in).map(|i| (i as f32 * 0.11).cos()).collect();
            for threads in [1, 2] {
                let mut y = vec![f32::NAN; rows * n_out];
                super::rayon_pool(threads, || linear_packed(&x, rows, &p, &mut y, threads));
                let mut ys = vec![f32::NAN; rows * n_out];
                // SAFETY: ys holds rows · n_out floats; all panels.
                unsafe { scalar_packed_panels(&x, rows, &p, ys.as_mut_ptr(), 0, p.n_panels()) };
                // Both SIMD kernels directly, whichever `linear_packed` picked on this CPU.
                let mut simd: Vec<Vec<f32>> = Vec::new();
                #[cfg(target_arch = "x86_64")]
                {
                    if has_avx2_fma() {
                        let mut v = vec![f32::NAN; rows * n_out];
                        // SAFETY: AVX2/FMA present; v holds rows · n_out floats; all panels.
                        unsafe {
                            avx::packed_panels(&x, rows, &p, v.as_mut_ptr(), 0, p.n_panels())
                        };
                        simd.push(v);
                    }
                    if rows > 1 && std::arch::is_x86_feature_detected!("avx512f") {
                        let mut v = vec![f32::NAN; rows * n_out];
                        // SAFETY: AVX-512F present; v holds rows · n_out floats; all panels.
                        unsafe {
                            avx512::packed_panels(&x, rows, &p, v.as_mut_ptr(), 0, p.n_panels())
                        };
                        simd.push(v);
                    }
                }
                for r in 0..rows {
                    for o in 0..n_out {
                        let want: f32 = (0..n_in)
                            .map(|i| x[r * n_in + i] * lin.weight[o * n_in + i])
                            .sum::<f32>()
                            + lin.bias[o];
                        let tol = 1e-5 * (n_in as f32).max(10.0);
                        let at = format!("in {n_in} rows {rows} row {r} col {o}");
                        assert!((y[r * n_out + o] - want).abs() < tol, "{at}");
                        assert!((ys[r * n_out + o] - want).abs() < tol, "{at}");
                        for v in &simd {
                            assert!((v[r * n_out + o] - want).abs() < tol, "{at}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn fast_log_sum_exp_matches_f64() {
        for n in [1usize, 7, 8, 9, 63, 64, 65, 1000, 15487] {
            let x: Vec<f32> = (0..n).map(|i| (i as f32 * 0.731).sin() * 12.0).collect();
            let want = log_sum_exp(&x);
            let got = log_sum_exp_fast(&x);
            assert!(
                (got - want).abs() < 1e-6 * want.abs().max(1.0),
                "{n}: {got} {want}"
            );
            // Masked entries, a far-below entry (underflows to zero), a large spread.
            let mut y = x.clone();
            y[0] = f32::NEG_INFINITY;
            if n > 2 {
                y[n / 2] = -1e4;
                y[n - 1] = 50.0;
            }
            let (want, got) = (log_sum_exp(&y), log_sum_exp_fast(&y));
            let close = got == want || (got - want).abs() < 1e-6 * want.abs().max(1.0);
            assert!(close, "{n}: {got} {want}");
        }
        // Exponents over the whole reduction range, against libm exp.
        let x: Vec<f32> = (0..2000).map(|i| -86.0 + i as f32 * 0.043).collect();
        for w in x.windows(1).step_by(37) {
            let got = log_sum_exp_fast(&[w[0], 0.0]);
            let want = log_sum_exp(&[w[0], 0.0]);
            assert!((got - want).abs() < 1e-6, "{}: {got} {want}", w[0]);
        }
        assert_eq!(log_sum_exp_fast(&[f32::NEG_INFINITY; 9]), f64::NEG_INFINITY);
        assert_eq!(log_sum_exp_fast(&[]), f64::NEG_INFINITY);
    }

    #[test]
    fn first_above_matches_a_linear_scan() {
        let x: Vec<f32> = (0..203)
            .map(|i| match i % 17 {
                3 => f32::NAN,
                5 => f32::NEG_INFINITY,
                _ => (i as f32 * 0.37).sin(),
            })
            .collect();
        for thr in [f32::NEG_INFINITY, -0.5, 0.0, 0.9, 0.999, 2.0] {
            for start in [0, 1, 7, 8, 9, 100, 195, 202, 203] {
                let want = (start..x.len()).find(|&i| x[i] > thr).unwrap_or(x.len());
                assert_eq!(first_above(&x, start, thr), want, "{thr} {start}");
            }
        }
    }

    #[test]
    fn attention_row_matches_naive() {
        // Head widths with and without an 8-lane tail, key counts across the tail lengths.
        for (n_heads, dk) in [(8, 38), (2, 8), (3, 5), (1, 17)] {
            let width = n_heads * dk;
            for n_keys in [1, 2, 7, 8, 9, 15, 16, 17, 64] {
                let f = |i: usize, s: f32| (i as f32 * s).sin();
                let q: Vec<f32> = (0..width).map(|i| f(i, 0.31)).collect();
                let keys: Vec<f32> = (0..n_keys * width).map(|i| f(i, 0.17) * 2.0).collect();
                let vals: Vec<f32> = (0..n_keys * width).map(|i| f(i, 0.23)).collect();
                let key = |n: usize| &keys[n * width..(n + 1) * width];
                let val = |n: usize| &vals[n * width..(n + 1) * width];
                let scale = 1.0 / (dk as f32).sqrt();
                let mut want = vec![0.0f64; width];
                for h in 0..n_heads {
                    let o = h * dk;
                    let sc: Vec<f64> = (0..n_keys)
                        .map(|n| {
                            (0..dk)
                                .map(|d| q[o + d] as f64 * key(n)[o + d] as f64)
                                .sum::<f64>()
                                * scale as f64
                        })
                        .collect();
                    let m = sc.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let z: f64 = sc.iter().map(|s| (s - m).exp()).sum();
                    for (n, s) in sc.iter().enumerate() {
                        for d in 0..dk {
                            want[o + d] += (s - m).exp() / z * val(n)[o + d] as f64;
                        }
                    }
                }
                let mut scores = vec![f32::NAN; n_heads * n_keys + 3];
                let mut out = vec![f32::NAN; width];
                attend_row(
                    &q,
                    (n_heads, dk),
                    n_keys,
                    scale,
                    key,
                    val,
                    &mut scores,
                    &mut out,
                );
                let mut out2 = vec![f32::NAN; width];
                let mut sc2 = vec![f32::NAN; n_heads * n_keys];
                attend_row_portable(
                    &q,
                    (n_heads, dk),
                    n_keys,
                    scale,
                    key,
                    val,
                    &mut sc2,
                    &mut out2,
                );
                for d in 0..width {
                    let at = format!("heads {n_heads} dk {dk} keys {n_keys} col {d}");
                    assert!((out[d] as f64 - want[d]).abs() < 1e-5, "{at}");
                    assert!((out2[d] as f64 - want[d]).abs() < 1e-5, "{at}");
                }
                // Probabilities per head sum to one; the scratch past them is untouched.
                for h in 0..n_heads {
                    let s: f32 = scores[h * n_keys..(h + 1) * n_keys].iter().sum();
                    assert!((s - 1.0).abs() < 1e-5);
                }
                assert!(scores[n_heads * n_keys..].iter().all(|v| v.is_nan()));
            }
        }
    }

    #[test]
    fn embed_shares_position_encodings_exactly() {
        let (d, v) = (10, 7);
        let tok: Vec<f32> = (0..d * v).map(|i| (i as f32 * 0.7).cos()).collect();
        let ids = [3u32, 1, 4, 1, 5];
        let pos = [9usize, 9, 9, 2, 2];
        let mut h = vec![0.0; 5 * d];
        embed(&tok, d, &ids, &pos, &mut h);
        for r in 0..5 {
            let mut want = vec![0.0; d];
            crate::model::config::position_encoding(pos[r], &mut want);
            for j in 0..d {
                want[j] += tok[ids[r] as usize * d + j];
            }
            assert_eq!(&h[r * d..(r + 1) * d], &want[..], "row {r}");
        }
    }

    #[test]
    fn layer_norm_normalises() {
        let ln = LayerNormWeights::new(4);
        let mut y = vec![0.0; 4];
        layer_norm(&[1.0, 2.0, 3.0, 4.0], 1, &ln, &mut y);
        let mean: f32 = y.iter().sum::<f32>() / 4.0;
        let var: f32 = y.iter().map(|v| v * v).sum::<f32>() / 4.0;
        assert!(mean.abs() < 1e-6 && (var - 1.0).abs() < 1e-4);
        // Rows wider than the eight partial sums, with a remainder, against f64.
        let dim = 301;
        let ln = LayerNormWeights {
            weight: (0..dim)
                .map(|i| 1.0 + (i as f32 * 0.3).sin() * 0.5)
                .collect(),
            bias: (0..dim).map(|i| (i as f32 * 0.7).cos() * 0.1).collect(),
        };
        let x: Vec<f32> = (0..2 * dim)
            .map(|i| 3.0 + (i as f32 * 0.13).sin())
            .collect();
        let mut y = vec![0.0; 2 * dim];
        layer_norm(&x, 2, &ln, &mut y);
        for r in 0..2 {
            let xr: Vec<f64> = x[r * dim..(r + 1) * dim]
                .iter()
                .map(|&v| v as f64)
                .collect();
            let m = xr.iter().sum::<f64>() / dim as f64;
            let v = xr.iter().map(|a| (a - m) * (a - m)).sum::<f64>() / dim as f64;
            for i in 0..dim {
                let want = (xr[i] - m) / (v + LN_EPS as f64).sqrt() * ln.weight[i] as f64
                    + ln.bias[i] as f64;
                assert!((y[r * dim + i] as f64 - want).abs() < 1e-4, "{r} {i}");
            }
        }
    }
}
