//! The output layer fused with cross-entropy: [`head_loss`] on the tape (training) and
//! [`head_nll`] without one (validation), over a reused scratch buffer for the logits.

use super::kernels::exp_fast;
use super::layers::{HostLin, Lin};
use super::matmul::{add_col_sums, matmul_in, MatRef};
use super::tape::{grad_mut, Act};
use crate::simd::{simd_kernel, sum8};
use dfdx::prelude::*;
use rayon::prelude::*;

/// `hc·Wᵀ` `[m, V]` for packed rows `hc` `[m, d]`, in a reused scratch buffer (the bias is
/// added by the caller).
fn head_logits(hc: &[f32], d: usize, head: &HostLin, v: usize) -> Vec<f32> {
    let m = hc.len() / d.max(1);
    let mut z = scratch(m * v);
    matmul_in(
        head.products,
        &mut z,
        (m, v, d),
        MatRef::rows(hc, d),
        MatRef::transposed(&head.w, d),
        false,
        1.0,
    );
    z
}

/// Rows `rows` of `hd` (`d` columns), packed.
fn gather_rows(hd: &[f32], d: usize, rows: &[usize]) -> Vec<f32> {
    let mut hc = Vec::with_capacity(rows.len() * d);
    for &r in rows {
        hc.extend_from_slice(&hd[r * d..(r + 1) * d]);
    }
    hc
}

/// Large buffers kept between training steps (the logits are ~120 MB at the seed's size;
/// allocating them fresh every step costs a page fault per 4 KB).
static SCRATCH: std::sync::Mutex<Vec<Vec<f32>>> = std::sync::Mutex::new(Vec::new());

/// A buffer of `len` elements with unspecified contents, reused from [`SCRATCH`] if possible.
fn scratch(len: usize) -> Vec<f32> {
    let mut pool = SCRATCH.lock().unwrap_or_else(|e| e.into_inner());
    let mut v = match pool.iter().position(|b| b.capacity() >= len) {
        Some(i) => pool.swap_remove(i),
        None => Vec::new(),
    };
    drop(pool);
    v.truncate(len);
    v.resize(len, 0.0);
    v
}

/// Returns a buffer to [`SCRATCH`] (at most two are kept).
fn recycle(v: Vec<f32>) {
    let mut pool = SCRATCH.lock().unwrap_or_else(|e| e.into_inner());
    if pool.len() < 2 {
        pool.push(v);
    }
}

/// Adds `bias` to a row of logits and turns it in place into `exp(z − max z)`; returns
/// `z[y] − max z` and the sum of the exponentials (so `NLL = ln(sum) − (z[y] − max z)`).
#[inline(always)]
pub(super) fn softmax_row(row: &mut [f32], bias: &[f32], y: usize) -> (f32, f32) {
    let mut acc = [f32::NEG_INFINITY; 8];
    let mut chunks = row.chunks_exact_mut(8);
    let mut bchunks = bias.chunks_exact(8);
    for (x, b) in (&mut chunks).zip(&mut bchunks) {
        for l in 0..8 {
            x[l] += b[l];
            acc[l] = if x[l] > acc[l] { x[l] } else { acc[l] };
        }
    }
    let mut m = acc.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    for (x, b) in chunks.into_remainder().iter_mut().zip(bchunks.remainder()) {
        *x += b;
        m = m.max(*x);
    }
    let zy = row[y] - m;
    for x in row.iter_mut() {
        *x = exp_fast(*x - m);
    }
    (zy, sum8(row))
}

/// The packed bf16 kernel when the output layer's products are bf16 and the CPU has one (the
/// fused path of [`super::loss16`]); `None`: this file's path (f32, or bf16-rounded operands).
fn packed_bf16(head: &Lin) -> Option<crate::simd::bf16::Kernel> {
    head.host.products.packed()
}

/// Negative log-likelihood of every row of `h` `[n, d]` at `targets` under the output layer,
/// without a tape (validation).
pub fn head_nll<Tp: Tape<f32, Cpu>>(h: &Act<Tp>, head: &Lin, targets: &[u32]) -> Vec<f32> {
    #[cfg(target_arch = "x86_64")]
    if let Some(k) = packed_bf16(head) {
        return super::loss16::head_nll16(k, h, head, targets);
    }
    let (n, d) = h.shape();
    let v = head.w.shape().0;
    assert_eq!(targets.len(), n, "one target per row");
    let bias = &head.host.b;
    let mut z = head_logits(&h.data, d, &head.host, v);
    let nll = z
        .par_chunks_mut(v)
        .zip(targets.par_iter())
        .map(|(row, &y)| nll_row(row, bias, y as usize))
        .collect();
    recycle(z);
    nll
}

/// Fused output layer and weighted cross-entropy on the tape: `Σ_i w_i · NLL_i` of
/// `logits = h·Wᵀ + b` at `targets`. Rows of weight 0 (padding) are skipped entirely. The
/// forward pass turns the logits buffer in place into `∂loss/∂logits = w_i (softmax_i −
/// onehot_i)`; the backward pass is three products (`∂h = G·W`, `∂W = Gᵀ·h`, `∂b = Σ_rows G`)
/// scaled by the loss's incoming gradient and accumulated straight into the gradients.
pub fn head_loss(
    h: Act,
    head: &Lin,
    targets: &[u32],
    weights: &[f32],
) -> Tensor<(), f32, Cpu, OwnedTape<f32, Cpu>> {
    #[cfg(target_arch = "x86_64")]
    if let Some(k) = packed_bf16(head) {
        return super::loss16::head_loss16(k, h, head, targets, weights);
    }
    let (h, hd, mut tape) = h.split();
    let dev = h.device().clone();
    let (n, d) = *h.shape();
    let v = head.w.shape().0;
    assert_eq!(targets.len(), n, "one target per row");
    assert_eq!(weights.len(), n, "one weight per row");
    let rows: Vec<usize> = (0..n).filter(|&i| weights[i] != 0.0).collect();
    let m = rows.len();
    let hc = gather_rows(&hd, d, &rows);
    let mut z = head_logits(&hc, d, &head.host, v);
    let bias = &head.host.b;
    let per_row: Vec<f64> = z
        .par_chunks_mut(v)
        .zip(rows.par_iter())
        .map(|(row, &r)| ce_grad_row(row, bias, targets[r] as usize, weights[r]))
        .collect();
    let total: f64 = per_row.iter().sum();
    let loss = dev.tensor_from_vec(vec![total as f32], ());
    let mut db = vec![0.0f32; v];
    add_col_sums(&mut db, &z, v, 1.0);
    let (w_t, b_t, loss_t, host) = (
        head.w.clone(),
        head.b.clone(),
        loss.clone(),
        head.host.clone(),
    );
    tape.add_backward_op(move |grads| {
        let g = grads.get(&loss_t).as_vec()[0];
        // ∂h (compacted rows) = g · G·W, scattered back to the rows they came from.
        let mut dhc = vec![0.0f32; m * d];
        matmul_in(
            host.products,
            &mut dhc,
            (m, d, v),
            MatRef::rows(&z, v),
            MatRef::rows(&host.w, d),
            false,
            g,
        );
        let dh = grad_mut(grads, &h)?;
        for (src, &r) in dhc.chunks(d).zip(&rows) {
            for (a, x) in dh[r * d..(r + 1) * d].iter_mut().zip(src) {
                *a += x;
            }
        }
        matmul_in(
            host.products,
            grad_mut(grads, &w_t)?,
            (v, d, m),
            MatRef::transposed(&z, v),
            MatRef::rows(&hc, d),
            true,
            g,
        );
        for (a, x) in grad_mut(grads, &b_t)?.iter_mut().zip(&db) {
            *a += g * x;
        }
        recycle(z);
        Ok(())
    });
    loss.put_tape(tape)
}

simd_kernel! {
    /// Negative log-likelihood of target `y` for one row of logits (bias not yet added).
    fn nll_row(row: &mut [f32], bias: &[f32], y: usize) -> f32 {
        let (zy, sum) = softmax_row(row, bias, y);
        sum.ln() - zy
    }
}

simd_kernel! {
    /// One row of the fused loss: turns logits (bias not yet added) into `w (softmax − onehot)`
    /// and returns `w · NLL`.
    fn ce_grad_row(row: &mut [f32], bias: &[f32], y: usize, w: f32) -> f64 {
        let (zy, s) = softmax_row(row, bias, y);
        let scale = w / s;
        for x in row.iter_mut() {
            *x *= scale;
        }
        row[y] -= w;
        (s.ln() - zy) as f64 * w as f64
    }
}
