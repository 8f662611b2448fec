//! The bf16 product driver: `dst = alpha · A·B (+ dst) (+ bias)` over packed operands, in blocks
//! of 32 × 32 computed by the AMX or the AVX512-BF16 [`Kernel`], and the one-row product of a
//! decoding step. (The portable path rounds the operands to bf16 and runs the f32 kernels:
//! callers do that, see [`super::round_slice`].)
//!
//! Each element of C is accumulated over `k` in the same order whatever the partition (blocks
//! never split `k` between tasks; long `k` is cut into fixed blocks), so results do not depend
//! on the thread count. A whole block with `alpha = 1`, no bias and a row-major destination is
//! accumulated in the destination itself (the tiles load and store it directly); any other
//! block goes through a 32 × 32 buffer and a scalar epilogue. Operand order: the loop over
//! blocks keeps the smaller operand's panels in cache and streams the larger one once per `k`
//! block.

use super::pack::{to_bf16, PackedA, PackedB, TILE, TILE_K};
use super::{amx, avx512, Kernel};
use crate::simd::SharedMut;
use rayon::prelude::*;

/// `k` steps (of 32) up to which a product runs as one block of `k`.
const ONE_BLOCK_STEPS: usize = 128;
/// `k` steps per block beyond that (1024 values).
const K_BLOCK_STEPS: usize = 32;
/// Multiply-adds below which a product runs as one task.
const PAR_MIN: usize = 1 << 20;
/// Rows and columns of a block.
const BLOCK: usize = 2 * TILE;

/// Where a product goes: element `(i, j)` of the result is `data[i·ld + j]` (`data[j·ld + i]`
/// when `transposed`), set to `alpha · (A·B)[i][j]`, plus its previous value when
/// `accumulate`, plus `bias[j]` if given.
pub struct Dst<'a> {
    pub data: &'a mut [f32],
    pub ld: usize,
    pub transposed: bool,
    pub accumulate: bool,
    pub alpha: f32,
    pub bias: Option<&'a [f32]>,
}

impl<'a> Dst<'a> {
    /// A row-major `[m × ld]` destination overwritten with `A·B`.
    pub fn rows(data: &'a mut [f32], ld: usize) -> Self {
        Dst {
            data,
            ld,
            transposed: false,
            accumulate: false,
            alpha: 1.0,
            bias: None,
        }
    }
}

/// A 32 × 32 block of C, row-major, 64-byte aligned for the tile stores.
#[repr(C, align(64))]
struct Block([f32; BLOCK * BLOCK]);

/// The kernel calls of one thread (the AMX configuration lives as long as this).
enum Runner {
    Amx(amx::Tiles),
    Avx512,
}

impl Runner {
    /// # Safety
    /// `kernel` is AMX or AVX512-BF16 and can run on this CPU (see [`super::available`]).
    unsafe fn new(kernel: Kernel) -> Self {
        match kernel {
            // SAFETY: AMX is present and permitted (the caller's contract).
            Kernel::Amx => Runner::Amx(unsafe { amx::Tiles::new() }),
            _ => Runner::Avx512,
        }
    }

    /// Block `(ip, jp)` (row tiles `2ip, 2ip + 1`, column tiles `2jp, 2jp + 1`) over `k` steps
    /// `s0..s1` into `c` (row stride `ldc` floats), added to it when `load`; `one_row_tile`:
    /// only row tile `2ip` holds rows (and only its 16 rows of `c` are touched).
    ///
    /// # Safety
    /// The tiles exist (`s1 ≤ ksteps`, tile pairs in range); `c` is valid for the block's rows
    /// at stride `ldc`, 32 floats each.
    #[allow(clippy::too_many_arguments)]
    unsafe fn block(
        &self,
        a: &PackedA,
        b: &PackedB,
        (ip, jp): (usize, usize),
        (s0, s1): (usize, usize),
        one_row_tile: bool,
        (c, ldc): (*mut f32, usize),
        load: bool,
    ) {
        let bt = [b.tile(2 * jp, s0), b.tile(2 * jp + 1, s0)];
        let steps = s1 - s0;
        // SAFETY: tiles in range and `c` valid (the caller's contract); the runner's kernel
        // can run here (checked when it was made).
        unsafe {
            if one_row_tile {
                let at = a.tile(2 * ip, s0);
                match self {
                    Runner::Amx(t) => t.block_1x2(at, bt, steps, c, ldc, load),
                    Runner::Avx512 => avx512::block_1x2(at, bt, steps, c, ldc, load),
                }
            } else {
                let at = [a.tile(2 * ip, s0), a.tile(2 * ip + 1, s0)];
                match self {
                    Runner::Amx(t) => t.block_2x2(at, bt, steps, c, ldc, load),
                    Runner::Avx512 => avx512::block_2x2(at, bt, steps, c, ldc, load),
                }
            }
        }
    }
}

/// The output of one call, shared by its tasks (each writes its own rows or columns).
struct Out<'a> {
    ptr: SharedMut,
    ld: usize,
    m: usize,
    n: usize,
    transposed: bool,
    accumulate: bool,
    alpha: f32,
    bias: Option<&'a [f32]>,
}

impl Out<'_> {
    /// Where block `(ip, jp)` can be accumulated in the destination itself (whole block,
    /// row-major, `alpha = 1`, no bias): its first element.
    fn direct(&self, (ip, jp): (usize, usize)) -> Option<*mut f32> {
        let whole = BLOCK * (ip + 1) <= self.m && BLOCK * (jp + 1) <= self.n;
        (whole && !self.transposed && self.alpha == 1.0 && self.bias.is_none())
            // SAFETY: the block lies inside the bounds-checked destination.
            .then(|| unsafe { self.ptr.get().add(BLOCK * ip * self.ld + BLOCK * jp) })
    }

    /// Writes block `(ip, jp)` from `c` (row-major, 32 × 32).
    ///
    /// # Safety
    /// No other task writes these rows and columns; the destination was bounds-checked.
    unsafe fn store(&self, (ip, jp): (usize, usize), c: &[f32]) {
        let (r0, c0) = (BLOCK * ip, BLOCK * jp);
        let rows = BLOCK.min(self.m - r0);
        let cols = BLOCK.min(self.n - c0);
        let at = |i: usize, j: usize| {
            let (i, j) = (r0 + i, c0 + j);
            if self.transposed {
                j * self.ld + i
            } else {
                i * self.ld + j
            }
        };
        for i in 0..rows {
            for j in 0..cols {
                // SAFETY: (r0 + i, c0 + j) is inside the checked destination; this task owns
                // the block (the caller's contract).
                let d = unsafe { &mut *self.ptr.get().add(at(i, j)) };
                let prev = if self.accumulate { *d } else { 0.0 };
                *d = prev + self.alpha * c[i * BLOCK + j] + self.bias.map_or(0.0, |b| b[c0 + j]);
            }
        }
    }
}

/// `dst = alpha · A·B (+ dst) (+ bias)` (see [`Dst`]) with `kernel` (AMX or AVX512-BF16), in
/// parallel on the current rayon pool when `parallel` and the product is large.
///
/// # Panics
/// When the operands' `k` differ or `dst` is too small, or `kernel` cannot run here (or is
/// the portable one, which has no packed kernel).
pub fn gemm(kernel: Kernel, a: &PackedA, b: &PackedB, dst: Dst, parallel: bool) {
    assert!(
        kernel != Kernel::Portable && super::available(kernel),
        "bf16 kernel {kernel:?} unavailable"
    );
    assert_eq!(a.k, b.k, "inner dimensions");
    let (m, n) = (a.m, b.n);
    if m == 0 || n == 0 {
        return;
    }
    let (rows, cols) = if dst.transposed { (n, m) } else { (m, n) };
    assert!(
        dst.ld >= cols && dst.data.len() >= (rows - 1) * dst.ld + cols,
        "destination too small"
    );
    if let Some(bias) = dst.bias {
        assert!(bias.len() >= n, "bias too short");
    }
    let out = Out {
        ptr: SharedMut(dst.data.as_mut_ptr()),
        ld: dst.ld,
        m,
        n,
        transposed: dst.transposed,
        accumulate: dst.accumulate,
        alpha: dst.alpha,
        bias: dst.bias,
    };
    let (ip_n, jp_n) = (m.div_ceil(BLOCK), n.div_ceil(BLOCK));
    let along_m = ip_n >= jp_n;
    let units = if along_m { ip_n } else { jp_n };
    let parts = if parallel && m * n * a.k >= PAR_MIN {
        units.min(4 * rayon::current_num_threads()).max(1)
    } else {
        1
    };
    let per = units.div_ceil(parts);
    let run = |p: usize| {
        let r = p * per..((p + 1) * per).min(units);
        let (ips, jps) = if along_m { (r, 0..jp_n) } else { (0..ip_n, r) };
        // SAFETY: the kernel can run here (asserted); parts own disjoint rows (or columns).
        unsafe { run_part(kernel, a, b, &out, ips, jps) }
    };
    if parts == 1 {
        run(0);
    } else {
        (0..parts).into_par_iter().for_each(run);
    }
}

/// Blocks `ips × jps` of one task.
///
/// # Safety
/// `kernel` is AMX or AVX512-BF16 and can run here; no other task writes these blocks.
unsafe fn run_part(
    kernel: Kernel,
    a: &PackedA,
    b: &PackedB,
    out: &Out,
    ips: std::ops::Range<usize>,
    jps: std::ops::Range<usize>,
) {
    if ips.is_empty() || jps.is_empty() {
        return;
    }
    // SAFETY: the kernel can run here (the caller's contract).
    let runner = unsafe { Runner::new(kernel) };
    let ks = a.ksteps;
    let kblock = if ks <= ONE_BLOCK_STEPS {
        ks.max(1)
    } else {
        K_BLOCK_STEPS
    };
    let kblocks = ks.div_ceil(kblock).max(1);
    let (ni, nj) = (ips.len(), jps.len());
    // Partial sums between k blocks of the blocks that go through a buffer.
    let mut partial: Vec<Block> = Vec::new();
    if kblocks > 1 {
        partial.resize_with(ni * nj, || Block([0.0; BLOCK * BLOCK]));
    }
    let mut scratch = Block([0.0; BLOCK * BLOCK]);
    // Keep the smaller operand's panels in cache: stream the larger one in the outer loop.
    let a_outer = ni > nj;
    for kb in 0..kblocks {
        let (s0, s1) = (kb * kblock, ((kb + 1) * kblock).min(ks));
        let last = kb + 1 == kblocks;
        for outer in 0..if a_outer { ni } else { nj } {
            for inner in 0..if a_outer { nj } else { ni } {
                let (li, lj) = if a_outer {
                    (outer, inner)
                } else {
                    (inner, outer)
                };
                let at = (ips.start + li, jps.start + lj);
                let one = out.m - BLOCK * at.0 <= TILE;
                let steps = (s0, s1);
                if let Some(c) = out.direct(at) {
                    let load = out.accumulate || kb > 0;
                    // SAFETY: tiles in range; the whole block lies in the destination, owned
                    // by this task.
                    unsafe { runner.block(a, b, at, steps, one, (c, out.ld), load) };
                    continue;
                }
                let cb = if kblocks > 1 {
                    &mut partial[li * nj + lj].0
                } else {
                    &mut scratch.0
                };
                let c = (cb.as_mut_ptr(), BLOCK);
                // SAFETY: tiles in range; `cb` is a 32 × 32 block.
                unsafe { runner.block(a, b, at, steps, one, c, kb > 0) };
                if last {
                    // SAFETY: this task owns the block (the caller's contract).
                    unsafe { out.store(at, cb) };
                }
            }
        }
    }
}

/// `y = x · B + bias` for one row `x` (`b.k` values) with the AVX512-BF16 row kernel (AMX has
/// nothing to gain on one row); column tiles are split across the rayon pool when `parallel`.
///
/// # Panics
/// When the lengths do not match, or the CPU lacks AVX512-BF16.
pub fn gemv(x: &[f32], b: &PackedB, bias: &[f32], y: &mut [f32], parallel: bool) {
    assert!(
        super::available(Kernel::Avx512Bf16),
        "AVX512-BF16 unavailable"
    );
    assert!(x.len() >= b.k && y.len() >= b.n && bias.len() >= b.n);
    let pairs = pairs_of(&x[..b.k], b.ksteps);
    let yp = SharedMut(y.as_mut_ptr());
    let panels = |j0: usize, j1: usize| {
        // SAFETY: lengths checked above; the CPU has AVX512-BF16 (asserted); each call writes
        // only its own column tiles.
        unsafe { avx512::row_panels(&pairs, b, bias, yp.get(), j0, j1) }
    };
    let nt = b.n.div_ceil(TILE);
    if parallel && b.k * b.n >= 1 << 16 {
        let chunk = nt.div_ceil(4 * rayon::current_num_threads()).max(1);
        (0..nt.div_ceil(chunk))
            .into_par_iter()
            .for_each(|c| panels(c * chunk, ((c + 1) * chunk).min(nt)));
    } else {
        panels(0, nt);
    }
}

/// `x` as bf16 pairs (`ksteps · 16` 32-bit words, zero-padded): word `p` holds `x[2p]` in its
/// low half and `x[2p + 1]` in its high half.
fn pairs_of(x: &[f32], ksteps: usize) -> Vec<u32> {
    let mut out = vec![0u32; ksteps * TILE_K / 2];
    for (w, pair) in out.iter_mut().zip(x.chunks(2)) {
        let lo = to_bf16(pair[0]) as u32;
        let hi = pair.get(1).map_or(0, |&v| to_bf16(v) as u32);
        *w = lo | hi << 16;
    }
    out
}
