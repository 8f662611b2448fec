//! Element-wise SIMD kernels of the training ops (each compiled for AVX2 + FMA behind a run-time
//! check and for baseline x86-64, see [`crate::simd::simd_kernel`]) and `axpy`; the vector-friendly
//! `exp` is [`crate::simd::exp_fast`].

use super::mask::DropMask;
use crate::model::config::LN_EPS;
pub use crate::simd::exp_fast;
use crate::simd::{dot, simd_kernel, sum8};

/// `y += alpha · x`.
#[inline]
pub(super) fn axpy(y: &mut [f32], alpha: f32, x: &[f32]) {
    for (a, b) in y.iter_mut().zip(x) {
        *a += alpha * b;
    }
}

simd_kernel! {
    /// `a += b`.
    pub(super) fn add_slice(a: &mut [f32], b: &[f32]) {
        for (x, y) in a.iter_mut().zip(b) {
            *x += y;
        }
    }
}

simd_kernel! {
    /// `o = x + y ⊙ mask` for elements `base …` of a residual add.
    pub(super) fn residual_chunk(o: &mut [f32], xs: &[f32], ys: &[f32], mask: Option<DropMask>, base: usize) {
        match mask {
            Some(m) => {
                for (i, (o, (x, y))) in o.iter_mut().zip(xs.iter().zip(ys)).enumerate() {
                    *o = x + y * m.factor(base + i);
                }
            }
            None => {
                for (o, (x, y)) in o.iter_mut().zip(xs.iter().zip(ys)) {
                    *o = x + y;
                }
            }
        }
    }
}

simd_kernel! {
    /// Rows `x` (`d` columns) to `x̂ = (x − mean) / std` and `1 / std` per row.
    pub(super) fn ln_normalize(xc: &[f32], hc: &mut [f32], rc: &mut [f32], d: usize) {
        for ((hr, rs), xr) in hc.chunks_mut(d).zip(rc.iter_mut()).zip(xc.chunks(d)) {
            let mean = sum8(xr) / d as f32;
            for (h, v) in hr.iter_mut().zip(xr) {
                *h = v - mean;
            }
            let var = dot(hr, hr) / d as f32;
            *rs = 1.0 / (var + LN_EPS).sqrt();
            for h in hr.iter_mut() {
                *h *= *rs;
            }
        }
    }
}

simd_kernel! {
    /// `y = x̂ ⊙ g + b` row by row.
    pub(super) fn ln_affine(yc: &mut [f32], hc: &[f32], g: &[f32], b: &[f32], d: usize) {
        for (yr, hr) in yc.chunks_mut(d).zip(hc.chunks(d)) {
            for j in 0..d {
                yr[j] = hr[j] * g[j] + b[j];
            }
        }
    }
}

simd_kernel! {
    /// `(Σ gy ⊙ x̂, Σ gy)` over the rows of a chunk.
    pub(super) fn ln_param_sums(gy: &[f32], xhat: &[f32], d: usize) -> (Vec<f32>, Vec<f32>) {
        let (mut sg, mut sb) = (vec![0.0f32; d], vec![0.0f32; d]);
        for (gr, xr) in gy.chunks(d).zip(xhat.chunks(d)) {
            for j in 0..d {
                sg[j] += gr[j] * xr[j];
                sb[j] += gr[j];
            }
        }
        (sg, sb)
    }
}

simd_kernel! {
    /// `dx += rstd · (ĝ − mean(ĝ) − x̂ · mean(ĝ ⊙ x̂))` with `ĝ = gy ⊙ g`, row by row.
    pub(super) fn ln_dx(dc: &mut [f32], gy: &[f32], xhat: &[f32], rstd: &[f32], g: &[f32], d: usize) {
        let mut gh = vec![0.0f32; d];
        for (((dr, gr), xr), &s) in dc.chunks_mut(d).zip(gy.chunks(d)).zip(xhat.chunks(d)).zip(rstd) {
            for j in 0..d {
                gh[j] = gr[j] * g[j];
            }
            let (m1, m2) = (sum8(&gh) / d as f32, dot(&gh, xr) / d as f32);
            for j in 0..d {
                dr[j] += s * (gh[j] - m1 - xr[j] * m2);
            }
        }
    }
}
