//! The packers of [`super::pack`] with AVX-512 and the hardware bf16 conversion
//! (`vcvtne2ps2bf16`: 32 floats to 32 bf16 in one instruction, rounding as the scalar
//! [`super::pack::to_bf16`] does): two source rows interleave into a pair row with one word
//! permutation, and the layouts that read a transposed source go through a 16 × 16 transpose
//! of 32-bit pairs in registers.

use super::pack::{TILE, TILE_K, TILE_LEN};
use crate::simd::mat::MatRef;
use std::arch::x86_64::*;

/// `n` (≤ 16) contiguous floats from `p`, zero beyond (`p` is not read when `n` is 0).
///
/// # Safety
/// AVX-512F; `p` is valid for `n` floats.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn load(p: *const f32, n: usize) -> __m512 {
    // SAFETY: masked lanes are not read; the caller guarantees the first `n` floats.
    unsafe {
        if n >= 16 {
            _mm512_loadu_ps(p)
        } else if n == 0 {
            _mm512_setzero_ps()
        } else {
            _mm512_maskz_loadu_ps((1u16 << n) - 1, p)
        }
    }
}

/// 32 bf16 (as 16 pair words): `lo` converted into the low 16, `hi` into the high 16.
#[target_feature(enable = "avx512f,avx512bf16")]
#[inline]
fn convert(hi: __m512, lo: __m512) -> __m512i {
    let v = _mm512_cvtne2ps_pbh(hi, lo);
    // SAFETY: both are 64-byte vector types; every bit pattern is a valid `__m512i`.
    unsafe { std::mem::transmute::<__m512bh, __m512i>(v) }
}

/// Pair words `(row0[c], row1[c])` for the 16 lanes.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
#[inline]
fn interleave(row0: __m512, row1: __m512) -> __m512i {
    let idx = _mm512_set_epi16(
        31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6, 21, 5, 20, 4,
        19, 3, 18, 2, 17, 1, 16, 0,
    );
    _mm512_permutexvar_epi16(idx, convert(row1, row0))
}

/// Transposes 16 registers of 16 32-bit words (`r[i]` lane `j` → `r[j]` lane `i`).
#[target_feature(enable = "avx512f")]
#[inline]
fn transpose(r: &mut [__m512i; 16]) {
    let mut t = [_mm512_setzero_si512(); 16];
    for i in 0..8 {
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    // u[4i + q], 128-bit lane L: column 4L + q of rows 4i … 4i + 3.
    let mut u = [_mm512_setzero_si512(); 16];
    for i in 0..4 {
        u[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
        u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
    }
    for q in 0..4 {
        let v1 = _mm512_shuffle_i32x4::<0x88>(u[q], u[4 + q]);
        let v2 = _mm512_shuffle_i32x4::<0xDD>(u[q], u[4 + q]);
        let w1 = _mm512_shuffle_i32x4::<0x88>(u[8 + q], u[12 + q]);
        let w2 = _mm512_shuffle_i32x4::<0xDD>(u[8 + q], u[12 + q]);
        r[q] = _mm512_shuffle_i32x4::<0x88>(v1, w1);
        r[8 + q] = _mm512_shuffle_i32x4::<0xDD>(v1, w1);
        r[4 + q] = _mm512_shuffle_i32x4::<0x88>(v2, w2);
        r[12 + q] = _mm512_shuffle_i32x4::<0xDD>(v2, w2);
    }
}

/// Stores 16 pair words as tile row `row` of `tile`.
///
/// # Safety
/// AVX-512F; `tile` holds a whole tile.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn store_row(tile: &mut [u16], row: usize, v: __m512i) {
    assert!(tile.len() >= TILE_LEN && row < TILE);
    // SAFETY: row < 16 and the tile holds 16 rows of 32 u16 (checked).
    unsafe { _mm512_storeu_si512(tile.as_mut_ptr().add(row * TILE_K) as *mut _, v) }
}

/// Row tile `i` of A into `strip` (`ksteps` tiles), rows or columns of `a` contiguous.
///
/// # Safety
/// AVX-512F/BW and AVX512-BF16; `a` holds `[m × k]` (checked by the caller); `a.cs == 1` or
/// `a.rs == 1`.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
pub unsafe fn a_strip(a: MatRef, m: usize, k: usize, i: usize, strip: &mut [u16]) {
    let r0 = i * TILE;
    let rows = TILE.min(m.saturating_sub(r0));
    if rows == 0 {
        return;
    }
    let p = a.data.as_ptr();
    // SAFETY: every load reads elements (r, kk) with r < m, kk < k of the checked operand.
    unsafe {
        if a.cs == 1 {
            for r in 0..rows {
                let row = p.add((r0 + r) * a.rs);
                for (s, tile) in strip.chunks_exact_mut(TILE_LEN).enumerate() {
                    let k0 = s * TILE_K;
                    let lo = load(row.add(k0), (k - k0).min(16));
                    let hi = load(row.wrapping_add(k0 + 16), k.saturating_sub(k0 + 16).min(16));
                    store_row(tile, r, convert(hi, lo));
                }
            }
        } else {
            // Column kk of the strip is `rows` contiguous floats at p + kk·cs + r0.
            for (s, tile) in strip.chunks_exact_mut(TILE_LEN).enumerate() {
                let mut w = [_mm512_setzero_si512(); 16];
                for (q, wq) in w.iter_mut().enumerate() {
                    let kk = s * TILE_K + 2 * q;
                    let col = |kk: usize| {
                        if kk < k {
                            load(p.add(kk * a.cs + r0), rows)
                        } else {
                            _mm512_setzero_ps()
                        }
                    };
                    *wq = interleave(col(kk), col(kk + 1));
                }
                transpose(&mut w);
                for (r, &v) in w.iter().enumerate() {
                    store_row(tile, r, v);
                }
            }
        }
    }
}

/// Column tile `j` of B into `strip` (`ksteps` tiles), rows or columns of `b` contiguous.
///
/// # Safety
/// AVX-512F/BW and AVX512-BF16; `b` holds `[k × n]` (checked by the caller); `b.cs == 1` or
/// `b.rs == 1`.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
pub unsafe fn b_strip(b: MatRef, k: usize, n: usize, j: usize, strip: &mut [u16]) {
    let c0 = j * TILE;
    let cols = TILE.min(n.saturating_sub(c0));
    if cols == 0 {
        return;
    }
    let p = b.data.as_ptr();
    // SAFETY: every load reads elements (kk, c) with kk < k, c < n of the checked operand.
    unsafe {
        if b.cs == 1 {
            let row = |kk: usize| {
                if kk < k {
                    load(p.add(kk * b.rs + c0), cols)
                } else {
                    _mm512_setzero_ps()
                }
            };
            for (s, tile) in strip.chunks_exact_mut(TILE_LEN).enumerate() {
                for q in 0..TILE {
                    let kk = s * TILE_K + 2 * q;
                    store_row(tile, q, interleave(row(kk), row(kk + 1)));
                }
            }
        } else {
            // Column c is contiguous in `k`: 32 values convert straight into its 16 pairs.
            for (s, tile) in strip.chunks_exact_mut(TILE_LEN).enumerate() {
                let k0 = s * TILE_K;
                let mut w = [_mm512_setzero_si512(); 16];
                for (c, wc) in w.iter_mut().enumerate().take(cols) {
                    let col = p.add((c0 + c) * b.cs + k0);
                    let lo = load(col, (k - k0).min(16));
                    let hi = load(col.wrapping_add(16), k.saturating_sub(k0 + 16).min(16));
                    *wc = convert(hi, lo);
                }
                transpose(&mut w);
                for (q, &v) in w.iter().enumerate() {
                    store_row(tile, q, v);
                }
            }
        }
    }
}

/// Scales rows `x0` and `x1` (`n` floats each; `None`: a row of zeros) by `s0` and `s1`,
/// adds both into `sums` (`n` floats), and writes them as bf16 over `npad` (≥ `n`, a multiple
/// of 32) columns, zero beyond `n`: each row into its rows of the A tiles (`a[0]`, `a[1]`: the
/// row's start in `k` step 0; step `s` is `TILE_LEN · s` further) and the pair into one pair
/// row of the B tiles (`b`: its start in column tile 0; column tile `j` is `b_step · j`
/// further).
///
/// # Safety
/// AVX-512F/BW and AVX512-BF16; `a[r]` (when `Some`) valid for `npad / 32` tiles of A, `b`
/// for `npad / 16` tiles of B at stride `b_step`, 32 u16 each from the given start; no other
/// thread writes them.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn scale_pack_pair(
    (x0, x1): (Option<&[f32]>, Option<&[f32]>),
    (s0, s1): (f32, f32),
    n: usize,
    npad: usize,
    sums: &mut [f32],
    a: [Option<*mut u16>; 2],
    b: *mut u16,
    b_step: usize,
) {
    assert!(sums.len() >= n && npad >= n && npad.is_multiple_of(TILE_K));
    assert!(x0.is_none_or(|x| x.len() >= n) && x1.is_none_or(|x| x.len() >= n));
    let (v0, v1) = (_mm512_set1_ps(s0), _mm512_set1_ps(s1));
    let row = |x: Option<&[f32]>, j: usize, scale: __m512| match x {
        Some(x) if j < n => {
            // SAFETY: `x` holds `n` floats (asserted) and at most `n − j` are read from `j`.
            let v = unsafe { load(x.as_ptr().add(j), (n - j).min(16)) };
            _mm512_mul_ps(scale, v)
        }
        _ => _mm512_setzero_ps(),
    };
    for j in (0..npad).step_by(TILE_K) {
        let (p0, p1) = (row(x0, j, v0), row(x0, j + 16, v0));
        let (q0, q1) = (row(x1, j, v1), row(x1, j + 16, v1));
        for (h, (p, q)) in [(p0, q0), (p1, q1)].into_iter().enumerate() {
            let c = j + 16 * h;
            if c < n {
                let cnt = (n - c).min(16);
                let mask: __mmask16 = if cnt == 16 { 0xFFFF } else { (1u16 << cnt) - 1 };
                // SAFETY: columns c..c + cnt of `sums` exist (asserted n ≤ len).
                unsafe {
                    let sp = sums.as_mut_ptr().add(c);
                    let s = _mm512_maskz_loadu_ps(mask, sp);
                    _mm512_mask_storeu_ps(sp, mask, _mm512_add_ps(s, _mm512_add_ps(p, q)));
                }
            }
            // SAFETY: pair row of column tile c / 16, inside the caller's B tiles.
            unsafe { _mm512_storeu_si512(b.add((c / TILE) * b_step) as *mut _, interleave(p, q)) };
        }
        let s = j / TILE_K;
        for (at, (lo, hi)) in a.iter().zip([(p0, p1), (q0, q1)]) {
            if let Some(at) = at {
                // SAFETY: row of k step s, inside the caller's A tiles.
                unsafe { _mm512_storeu_si512(at.add(s * TILE_LEN) as *mut _, convert(hi, lo)) };
            }
        }
    }
}
