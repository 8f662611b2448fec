//! Causal multi-head attention on the tape: per batch element and head, the scores accumulated
//! over a transposed key block, softmax with the vector `exp`, and the backward pass from the
//! saved probabilities.

use super::kernels::{axpy, exp_fast};
use super::tape::{finish, take_grad, Act};
use crate::simd::{dot, simd_kernel, sum8};
use dfdx::prelude::*;
use rayon::prelude::*;
use std::sync::Arc;

/// Head `hh`'s `[t, dk]` block of the rows `rows` (`[t, da]`) into `out`, rows padded to `dp`
/// (a multiple of 8, so the vector loops have no scalar tail; padding stays zero).
fn gather_head(
    rows: &[f32],
    (t, da, dk, dp): (usize, usize, usize, usize),
    hh: usize,
    out: &mut [f32],
) {
    for i in 0..t {
        out[i * dp..i * dp + dk].copy_from_slice(&rows[i * da + hh * dk..i * da + (hh + 1) * dk]);
    }
}

/// Adds a padded `[t, dp]` head block back into head `hh`'s columns of `rows`.
fn scatter_head(
    rows: &mut [f32],
    (t, da, dk, dp): (usize, usize, usize, usize),
    hh: usize,
    blk: &[f32],
) {
    for i in 0..t {
        let r = &mut rows[i * da + hh * dk..i * da + (hh + 1) * dk];
        for (a, v) in r.iter_mut().zip(&blk[i * dp..i * dp + dk]) {
            *a += v;
        }
    }
}

/// Causal multi-head attention `softmax(q kᵀ / √dk + mask) v` with heads concatenated:
/// `q`, `k`, `v` and the result are `[b·t, h·dk]`; head `j` uses columns `j·dk … (j+1)·dk`.
/// Each query attends to positions up to its own (the loop stops at the causal bound).
pub fn attention<Tp: Tape<f32, Cpu>>(
    q: Act<Tp>,
    k: Act<Tp>,
    v: Act<Tp>,
    (b, t, h): (usize, usize, usize),
) -> Act<Tp> {
    let (q, qd, tq) = q.split();
    let (k, kd, tk) = k.split();
    let (v, vd, tv) = v.split();
    let tape = tq.merge(tk).merge(tv);
    let (n, da) = *q.shape();
    assert_eq!(n, b * t, "attention rows");
    assert_eq!(da % h, 0, "attention width divisible by heads");
    let dk = da / h;
    let scale = 1.0 / (dk as f32).sqrt();
    let dp = dk.next_multiple_of(8);
    let dims = (t, da, dk, dp);
    let mut out = vec![0.0f32; n * da];
    // Attention weights [b, h, t, t] (zero above the diagonal), kept for the backward pass.
    let mut probs = vec![0.0f32; b * h * t * t];
    out.par_chunks_mut(t * da)
        .zip(probs.par_chunks_mut(h * t * t))
        .enumerate()
        .for_each(|(bi, (ob, pb))| {
            let rows = bi * t * da..(bi + 1) * t * da;
            attn_fwd_batch(
                (&qd[rows.clone()], &kd[rows.clone()], &vd[rows]),
                ob,
                pb,
                dims,
                h,
                scale,
            )
        });
    let dev = q.device().clone();
    finish(&dev, Arc::new(out), (n, da), tape, move |grads, go| {
        let mut dq = take_grad(grads, &q)?;
        let mut dk_ = take_grad(grads, &k)?;
        let mut dv = take_grad(grads, &v)?;
        dq.par_chunks_mut(t * da)
            .zip(dk_.par_chunks_mut(t * da))
            .zip(dv.par_chunks_mut(t * da))
            .enumerate()
            .for_each(|(bi, ((dqb, dkb), dvb))| {
                let rows = bi * t * da..(bi + 1) * t * da;
                let ins = (&qd[rows.clone()], &kd[rows.clone()], &vd[rows.clone()]);
                let pb = &probs[bi * h * t * t..(bi + 1) * h * t * t];
                attn_bwd_batch(ins, &go[rows], pb, (dqb, dkb, dvb), dims, h, scale)
            });
        **grads.get_or_alloc_mut(&q)? = dq;
        **grads.get_or_alloc_mut(&k)? = dk_;
        **grads.get_or_alloc_mut(&v)? = dv;
        Ok(())
    })
}

simd_kernel! {
    /// Causal attention of one batch element: `q`, `k`, `v` rows `[t, da]` → `ob` `[t, da]`
    /// and the weights `pb` `[h, t, t]`. Scores are accumulated over a transposed key block
    /// (`s[0..=i] += q[c] · kᵀ[c][0..=i]`), so the inner loops are vector FMAs with no
    /// horizontal sums.
    fn attn_fwd_batch(
        ins: (&[f32], &[f32], &[f32]),
        ob: &mut [f32],
        pb: &mut [f32],
        dims: (usize, usize, usize, usize),
        h: usize,
        scale: f32,
    ) {
        let (t, da, dk, dp) = dims;
        let (qb, kb, vb) = ins;
        let (mut qh, mut kh, mut vh) = (vec![0.0; t * dp], vec![0.0; t * dp], vec![0.0; t * dp]);
        let mut kt = vec![0.0f32; dk * t];
        let mut oh = vec![0.0f32; t * dp];
        for hh in 0..h {
            gather_head(qb, dims, hh, &mut qh);
            gather_head(kb, dims, hh, &mut kh);
            gather_head(vb, dims, hh, &mut vh);
            transpose_head(&kh, t, dk, dp, &mut kt);
            oh.fill(0.0);
            for i in 0..t {
                let p = &mut pb[(hh * t + i) * t..(hh * t + i + 1) * t];
                let row = &mut p[..=i];
                row.fill(0.0);
                for c in 0..dk {
                    axpy(row, qh[i * dp + c] * scale, &kt[c * t..c * t + i + 1]);
                }
                let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                for pj in row.iter_mut() {
                    *pj = exp_fast(*pj - m);
                }
                let inv = 1.0 / sum8(row);
                let o = &mut oh[i * dp..(i + 1) * dp];
                for (j, pj) in row.iter_mut().enumerate() {
                    *pj *= inv;
                    axpy(o, *pj, &vh[j * dp..(j + 1) * dp]);
                }
            }
            for i in 0..t {
                ob[i * da + hh * dk..i * da + (hh + 1) * dk].copy_from_slice(&oh[i * dp..i * dp + dk]);
            }
        }
    }
}

simd_kernel! {
    /// Backward pass of [`attn_fwd_batch`]: adds `∂q`, `∂k`, `∂v` of one batch element given the
    /// output gradient `gb` and the saved weights `pb`.
    fn attn_bwd_batch(
        ins: (&[f32], &[f32], &[f32]),
        gb: &[f32],
        pb: &[f32],
        outs: (&mut [f32], &mut [f32], &mut [f32]),
        dims: (usize, usize, usize, usize),
        h: usize,
        scale: f32,
    ) {
        let (t, _, dk, dp) = dims;
        let (qb, kb, vb) = ins;
        let (dqb, dkb, dvb) = outs;
        let mk = || vec![0.0f32; t * dp];
        let (mut qh, mut kh, mut vh, mut gh) = (mk(), mk(), mk(), mk());
        let (mut dqh, mut dkh, mut dvh) = (mk(), mk(), mk());
        let mut vt = vec![0.0f32; dk * t];
        let mut ds = vec![0.0f32; t];
        for hh in 0..h {
            gather_head(qb, dims, hh, &mut qh);
            gather_head(kb, dims, hh, &mut kh);
            gather_head(vb, dims, hh, &mut vh);
            gather_head(gb, dims, hh, &mut gh);
            transpose_head(&vh, t, dk, dp, &mut vt);
            dqh.fill(0.0);
            dkh.fill(0.0);
            dvh.fill(0.0);
            for i in 0..t {
                let p = &pb[(hh * t + i) * t..(hh * t + i + 1) * t];
                let gi = &gh[i * dp..(i + 1) * dp];
                // ∂p_j = g_i · v_j for j ≤ i, accumulated over the transposed value block.
                let dpi = &mut ds[..=i];
                dpi.fill(0.0);
                for c in 0..dk {
                    axpy(dpi, gi[c], &vt[c * t..c * t + i + 1]);
                }
                let s = dot(&p[..=i], dpi);
                let qi = &qh[i * dp..(i + 1) * dp];
                for j in 0..=i {
                    axpy(&mut dvh[j * dp..(j + 1) * dp], p[j], gi);
                    let dsj = p[j] * (dpi[j] - s) * scale;
                    axpy(&mut dqh[i * dp..(i + 1) * dp], dsj, &kh[j * dp..(j + 1) * dp]);
                    axpy(&mut dkh[j * dp..(j + 1) * dp], dsj, qi);
                }
            }
            scatter_head(dqb, dims, hh, &dqh);
            scatter_head(dkb, dims, hh, &dkh);
            scatter_head(dvb, dims, hh, &dvh);
        }
    }
}

/// `out [dk, t] = blkᵀ` for a padded head block `blk` `[t, dp]`.
#[inline(always)]
fn transpose_head(blk: &[f32], t: usize, dk: usize, dp: usize, out: &mut [f32]) {
    for i in 0..t {
        for c in 0..dk {
            out[c * t + i] = blk[i * dp + c];
        }
    }
}
