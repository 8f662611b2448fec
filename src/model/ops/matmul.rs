//! Matrix products for training: [`matmul`] through `gemm`, cut into parts by shape only (never
//! by the thread count, so results are byte-identical with 1 or 2 threads); [`matmul_in`], the
//! same product in a chosen precision (bf16: the packed AMX / AVX512-BF16 kernels of
//! [`crate::simd::bf16`], or bf16-rounded operands through `gemm` on other CPUs); and column
//! sums.

use crate::simd::bf16::{self, Kernel, Products};
pub use crate::simd::mat::MatRef;
use crate::simd::{simd_kernel, SharedMut};
use rayon::prelude::*;

/// Columns per work item of column sums.
const COL_CHUNK: usize = 128;

/// Multiply-adds below which a matrix product runs as one `gemm` call; up to
/// [`SPLIT_WIDE`] it runs as 2 parts (each part repacks the shared operand, so small products
/// are not cut finer), above it as 8.
const SPLIT_MIN: usize = 1 << 20;
const SPLIT_WIDE: usize = 1 << 30;

/// `dst [m × n] (row-major) = (accumulate ? dst : 0) + alpha · a·b` with `a` `[m × k]` and `b`
/// `[k × n]`. Large products are cut along their longer side into 2 or 8 parts whose sizes
/// depend only on the shape (never on the thread count, so results are reproducible), and the
/// parts run on the current rayon pool.
pub fn matmul(
    dst: &mut [f32],
    (m, n, k): (usize, usize, usize),
    a: MatRef,
    b: MatRef,
    accumulate: bool,
    alpha: f32,
) {
    assert!(dst.len() >= m * n, "destination too small");
    a.check(m, k);
    b.check(k, n);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(0.0);
        }
        return;
    }
    let along_m = m >= n;
    let len = if along_m { m } else { n };
    let work = m * n * k;
    let n_parts = if work < SPLIT_MIN {
        1
    } else if work < SPLIT_WIDE {
        2
    } else {
        8
    };
    let part = len.div_ceil(n_parts).next_multiple_of(8).min(len);
    let parts = len.div_ceil(part);
    let d = SharedMut(dst.as_mut_ptr());
    let run = |i: usize| {
        let s = i * part;
        let e = (s + part).min(len);
        // Part `i` is rows `s..e` of `dst` and `a` (cut along m) or columns `s..e` of `dst` and
        // `b` (cut along n).
        let (rows, cols, d_off, a_off, b_off) = if along_m {
            (e - s, n, s * n, s * a.rs, 0)
        } else {
            (m, e - s, s, 0, s * b.cs)
        };
        // SAFETY: operands were bounds-checked above; every part writes a region of `dst`
        // disjoint from every other part's.
        unsafe {
            gemm::gemm(
                rows,
                cols,
                k,
                d.get().add(d_off),
                1,
                n as isize,
                accumulate,
                a.data.as_ptr().add(a_off),
                a.cs as isize,
                a.rs as isize,
                b.data.as_ptr().add(b_off),
                b.cs as isize,
                b.rs as isize,
                1.0,
                alpha,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
    };
    if parts == 1 {
        run(0);
    } else {
        (0..parts).into_par_iter().for_each(run);
    }
}

/// [`matmul`] run as `products` says: bf16 rounds the operands to bf16 (as the packed kernels
/// read them) and accumulates in f32; the result is the same up to the order of additions with
/// every kernel, and byte-identical with 1 or 2 threads with any one.
pub fn matmul_in(
    products: Products,
    dst: &mut [f32],
    (m, n, k): (usize, usize, usize),
    a: MatRef,
    b: MatRef,
    accumulate: bool,
    alpha: f32,
) {
    let kernel = match products {
        Products::Bf16(kernel) if m > 0 && n > 0 && k > 0 => kernel,
        _ => return matmul(dst, (m, n, k), a, b, accumulate, alpha),
    };
    match kernel {
        Kernel::Portable => {
            let (mut ar, mut br) = (a.data.to_vec(), b.data.to_vec());
            bf16::round_slice(&mut ar);
            bf16::round_slice(&mut br);
            let a = MatRef { data: &ar, ..a };
            let b = MatRef { data: &br, ..b };
            matmul(dst, (m, n, k), a, b, accumulate, alpha)
        }
        #[cfg(target_arch = "x86_64")]
        kernel => {
            let (pa, pb) = (bf16::PackedA::new(a, m, k), bf16::PackedB::new(b, k, n));
            let out = bf16::Dst {
                data: dst,
                ld: n,
                transposed: false,
                accumulate,
                alpha,
                bias: None,
            };
            bf16::gemm(kernel, &pa, &pb, out, true)
        }
        #[cfg(not(target_arch = "x86_64"))]
        _ => unreachable!("only x86-64 has bf16 kernels"),
    }
}

/// `acc[j] += alpha · Σ_r x[r, j]` for row-major `x` with `cols` columns; rows summed in order.
pub fn add_col_sums(acc: &mut [f32], x: &[f32], cols: usize, alpha: f32) {
    acc[..cols]
        .par_chunks_mut(COL_CHUNK)
        .enumerate()
        .for_each(|(c, out)| col_sums_chunk(out, x, cols, c * COL_CHUNK, alpha));
}

simd_kernel! {
    /// `out[j] += alpha · Σ_r x[r, c0 + j]`, rows in order.
    fn col_sums_chunk(out: &mut [f32], x: &[f32], cols: usize, c0: usize, alpha: f32) {
        let rows = x.len() / cols.max(1);
        let mut s = vec![0.0f32; out.len()];
        for r in 0..rows {
            let row = &x[r * cols + c0..r * cols + c0 + out.len()];
            for (a, v) in s.iter_mut().zip(row) {
                *a += v;
            }
        }
        for (o, v) in out.iter_mut().zip(s) {
            *o += alpha * v;
        }
    }
}
