//! Linear layers for decoding: a layer's weights repacked once into panels ([`PackedLinear`])
//! for the few rows of a decoding step (AVX2 / AVX-512 kernels picked at run time, a portable
//! loop otherwise), and `gemm` over the plain weights for many rows (long prefills, scoring).

use crate::model::LinearWeights;
use crate::simd::{has_avx2_fma, has_avx512, SharedMut};
use rayon::prelude::*;

#[cfg(target_arch = "x86_64")]
#[path = "linear_avx2.rs"]
pub(super) mod avx2;
#[cfg(target_arch = "x86_64")]
#[path = "linear_avx512.rs"]
pub(super) mod avx512;

/// Work (multiply-adds) below which a single row is computed on one thread.
const PAR_MATVEC_MIN: usize = 1 << 16;

/// Work below which `gemm` runs single-threaded.
const PAR_GEMM_MIN: usize = 1 << 18;

/// `y[r] = x[r] · Wᵀ + b` for `rows` rows through `gemm` over the plain weights: `x` is
/// `[rows, in]`, `y` is `[rows, out]` (for many rows; few rows go through [`linear_packed`]).
pub fn linear(x: &[f32], rows: usize, lin: &LinearWeights, y: &mut [f32], threads: usize) {
    let (n_in, n_out) = (lin.in_dim, lin.out_dim);
    assert!(x.len() >= rows * n_in && y.len() >= rows * n_out);
    assert!(lin.weight.len() >= n_in * n_out && lin.bias.len() >= n_out);
    if rows == 0 {
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

    /// Floats held (panels and bias), for memory estimates.
    pub fn floats(&self) -> usize {
        self.panels.len() + self.bias.len()
    }

    pub(super) fn n_panels(&self) -> usize {
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
                return avx2::packed_panels(x, rows, p, yp.get(), p0, p1);
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

/// Portable version of [`avx2::packed_panels`].
///
/// # Safety
/// `y` must point to `rows · p.out_dim` writable floats; `p0 <= p1 <= n_panels`.
pub(super) unsafe fn scalar_packed_panels(
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
}
