//! Inference kernels over plain row-major f32 slices: linear layers (a matrix-vector loop for one
//! row, `gemm` for several), LayerNorm, ReLU, and the sinusoidal position encoding.

use crate::model::{LayerNormWeights, LinearWeights};
use rayon::prelude::*;

/// LayerNorm epsilon (DESIGN.md section 5).
pub const LN_EPS: f32 = 1e-5;

/// Work (multiply-adds) below which a single row is computed on one thread.
const PAR_MATVEC_MIN: usize = 1 << 16;
/// Work below which `gemm` runs single-threaded.
const PAR_GEMM_MIN: usize = 1 << 18;

/// Dot product with eight independent accumulators (vectorises well).
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; 8];
    let chunks = n / 8;
    for c in 0..chunks {
        let x = &a[c * 8..c * 8 + 8];
        let y = &b[c * 8..c * 8 + 8];
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut s = (acc[0] + acc[4]) + (acc[1] + acc[5]) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for i in chunks * 8..n {
        s += a[i] * b[i];
    }
    s
}

/// `y[r] = x[r] · Wᵀ + b` for `rows` rows: `x` is `[rows, in]`, `y` is `[rows, out]`.
/// One row uses a matrix-vector loop (parallel over output rows when large and `threads > 1`);
/// several rows use `gemm`.
pub fn linear(x: &[f32], rows: usize, lin: &LinearWeights, y: &mut [f32], threads: usize) {
    let (n_in, n_out) = (lin.in_dim, lin.out_dim);
    debug_assert!(x.len() >= rows * n_in && y.len() >= rows * n_out);
    if rows == 0 {
        return;
    }
    if rows == 1 {
        let x = &x[..n_in];
        let y = &mut y[..n_out];
        let row = |(o, yo): (usize, &mut f32)| {
            *yo = dot(&lin.weight[o * n_in..(o + 1) * n_in], x) + lin.bias[o];
        };
        if threads > 1 && n_in * n_out >= PAR_MATVEC_MIN {
            let chunk = n_out.div_ceil(threads * 4).max(64);
            y.par_chunks_mut(chunk).enumerate().for_each(|(c, ys)| {
                ys.iter_mut()
                    .enumerate()
                    .for_each(|(i, yo)| row((c * chunk + i, yo)))
            });
        } else {
            y.iter_mut().enumerate().for_each(row);
        }
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

/// LayerNorm of each `dim`-wide row of `x` into `y`: `(x − mean) / sqrt(var + eps) · w + b`
/// with the biased variance.
pub fn layer_norm(x: &[f32], rows: usize, ln: &LayerNormWeights, y: &mut [f32]) {
    let dim = ln.weight.len();
    for r in 0..rows {
        let xr = &x[r * dim..(r + 1) * dim];
        let yr = &mut y[r * dim..(r + 1) * dim];
        let mean = xr.iter().sum::<f32>() / dim as f32;
        let var = xr.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / dim as f32;
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

/// Writes `h[r] = tok_emb[ids[r]] + PE[pos[r]]` for every row.
pub fn embed(tok_emb: &[f32], d_model: usize, ids: &[u32], pos: &[usize], h: &mut [f32]) {
    for (r, (&id, &p)) in ids.iter().zip(pos).enumerate() {
        let row = &mut h[r * d_model..(r + 1) * d_model];
        crate::model::config::position_encoding(p, row);
        let e = &tok_emb[id as usize * d_model..(id as usize + 1) * d_model];
        add_assign(row, e);
    }
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
    fn layer_norm_normalises() {
        let ln = LayerNormWeights::new(4);
        let mut y = vec![0.0; 4];
        layer_norm(&[1.0, 2.0, 3.0, 4.0], 1, &ln, &mut y);
        let mean: f32 = y.iter().sum::<f32>() / 4.0;
        let var: f32 = y.iter().map(|v| v * v).sum::<f32>() / 4.0;
        assert!(mean.abs() < 1e-6 && (var - 1.0).abs() < 1e-4);
    }
}
