//! Row-wise and element-wise decode kernels: LayerNorm, ReLU, residual add, and the token +
//! position embedding.

use crate::model::config::LN_EPS;
use crate::model::LayerNormWeights;
use crate::simd::sum_lanes;

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
