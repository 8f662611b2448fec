//! The AVX512-BF16 kernels over the packed layout: `vdpbf16ps` adds, per f32 lane, the products
//! of one pair of bf16 values, so a broadcast pair of an A row times one 64-byte row of a B
//! tile accumulates 16 columns over 2 `k`. Blocks of 8 rows × 32 columns keep 16 accumulators
//! in registers; one row (a decoding step) streams each B panel through four independent
//! accumulators.

use super::pack::{PackedB, TILE, TILE_K, TILE_LEN};
use std::arch::x86_64::*;

/// A register of 32 bf16 values from 16 32-bit pairs.
#[inline(always)]
fn bh(v: __m512i) -> __m512bh {
    // SAFETY: both are 64-byte vector types; every bit pattern is a valid `__m512bh`.
    unsafe { std::mem::transmute::<__m512i, __m512bh>(v) }
}

/// Rows `r0..r0 + 8` of one A tile against B tiles `b[0]`, `b[1]`: row `r` of C at
/// `c + r·ldc` (32 floats).
///
/// # Safety
/// The CPU has AVX-512F and AVX512-BF16; the pointers are valid as for the AMX block kernel.
#[target_feature(enable = "avx512f,avx512bf16")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn rows8(
    a: *const u16,
    r0: usize,
    b: [*const u16; 2],
    steps: usize,
    c: *mut f32,
    ldc: usize,
    load: bool,
) {
    // SAFETY: the caller upholds this function's `# Safety` contract, which every pointer
    // access below relies on (rows r0..r0+8 of a 16-row tile, 16 pair rows of a B tile).
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); 2]; 8];
        if load {
            for (r, a) in acc.iter_mut().enumerate() {
                for (jb, v) in a.iter_mut().enumerate() {
                    *v = _mm512_loadu_ps(c.add((r0 + r) * ldc + jb * TILE));
                }
            }
        }
        for s in 0..steps {
            let (at, b0, b1) = (
                a.add(s * TILE_LEN) as *const i32,
                b[0].add(s * TILE_LEN),
                b[1].add(s * TILE_LEN),
            );
            for p in 0..TILE {
                let w0 = bh(_mm512_loadu_si512(b0.add(p * TILE_K) as *const _));
                let w1 = bh(_mm512_loadu_si512(b1.add(p * TILE_K) as *const _));
                for (r, a) in acc.iter_mut().enumerate() {
                    let x = bh(_mm512_set1_epi32(*at.add((r0 + r) * TILE + p)));
                    a[0] = _mm512_dpbf16_ps(a[0], x, w0);
                    a[1] = _mm512_dpbf16_ps(a[1], x, w1);
                }
            }
        }
        for (r, a) in acc.iter().enumerate() {
            for (jb, v) in a.iter().enumerate() {
                _mm512_storeu_ps(c.add((r0 + r) * ldc + jb * TILE), *v);
            }
        }
    }
}

/// The AVX512-BF16 counterpart of the AMX `block_2x2`: same operands, same C layout.
///
/// # Safety
/// The CPU has AVX-512F and AVX512-BF16; the pointers are valid as for the AMX kernel.
#[target_feature(enable = "avx512f,avx512bf16")]
pub unsafe fn block_2x2(
    a: [*const u16; 2],
    b: [*const u16; 2],
    steps: usize,
    c: *mut f32,
    ldc: usize,
    load: bool,
) {
    // SAFETY: forwarded contract; C rows of row tile `ia` start at `c + 16·ia·ldc`.
    unsafe {
        for (ia, &at) in a.iter().enumerate() {
            let ct = c.add(TILE * ia * ldc);
            rows8(at, 0, b, steps, ct, ldc, load);
            rows8(at, 8, b, steps, ct, ldc, load);
        }
    }
}

/// The AVX512-BF16 counterpart of the AMX `block_1x2`.
///
/// # Safety
/// As [`block_2x2`], with one A tile and `c` valid for 16 rows.
#[target_feature(enable = "avx512f,avx512bf16")]
pub unsafe fn block_1x2(
    a: *const u16,
    b: [*const u16; 2],
    steps: usize,
    c: *mut f32,
    ldc: usize,
    load: bool,
) {
    // SAFETY: forwarded contract.
    unsafe {
        rows8(a, 0, b, steps, c, ldc, load);
        rows8(a, 8, b, steps, c, ldc, load);
    }
}

/// `y[16j + c] = bias + Σ_k x[k] · B[k][16j + c]` for the column tiles `j0..j1` of one row;
/// `x` holds the row as bf16 pairs (`ksteps · 16` words, zero-padded).
///
/// # Safety
/// The CPU has AVX-512F and AVX512-BF16; `x` holds `b.ksteps · 16` words; `y` points to
/// `b.n` writable floats; `bias` holds `b.n` floats; `j1 ≤ b.nt`.
#[target_feature(enable = "avx512f,avx512bf16")]
pub unsafe fn row_panels(x: &[u32], b: &PackedB, bias: &[f32], y: *mut f32, j0: usize, j1: usize) {
    // SAFETY: the caller upholds this function's `# Safety` contract, which every pointer
    // access below relies on.
    unsafe {
        for j in j0..j1 {
            let c0 = j * TILE;
            if c0 >= b.n {
                break;
            }
            let mut acc = [_mm512_setzero_ps(); 4];
            let panel = b.tile(j, 0);
            for s in 0..b.ksteps {
                let t = panel.add(s * TILE_LEN);
                let xs = x.as_ptr().add(s * TILE) as *const i32;
                for p in (0..TILE).step_by(4) {
                    for (q, a) in acc.iter_mut().enumerate() {
                        let w = bh(_mm512_loadu_si512(t.add((p + q) * TILE_K) as *const _));
                        let xv = bh(_mm512_set1_epi32(*xs.add(p + q)));
                        *a = _mm512_dpbf16_ps(*a, xv, w);
                    }
                }
            }
            let sum = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
            let cols = TILE.min(b.n - c0);
            let mask: __mmask16 = if cols == TILE {
                0xFFFF
            } else {
                (1u16 << cols) - 1
            };
            let bv = _mm512_maskz_loadu_ps(mask, bias.as_ptr().add(c0));
            _mm512_mask_storeu_ps(y.add(c0), mask, _mm512_add_ps(sum, bv));
        }
    }
}
