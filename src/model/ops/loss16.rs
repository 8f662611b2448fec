//! The output layer fused with cross-entropy for bf16 products on the packed kernels (AMX /
//! AVX512-BF16). The logits never exist whole: blocks of [`ROWS`] rows are computed into a
//! buffer that stays in cache, turned into `∂loss/∂logits` there (softmax in f32, as the f32
//! path does), and written straight into the two bf16 layouts the backward products read
//! (`∂h = G·W` reads G as a left operand, `∂Wᵀ = hᵀ·G` as a right one), with the bias
//! gradient's column sums per block. So a step holds two bf16 copies of G (the size of the f32
//! path's one f32 copy) and never packs G separately.

use super::kernels::exp_fast;
use super::layers::Lin;
use super::tape::{grad_mut, Act};
use crate::simd::bf16::{self, fill_a_block, Dst, Kernel, PackedA, PackedB};
use crate::simd::mat::MatRef;
use crate::simd::{simd_kernel, sum8};
use dfdx::prelude::*;
use rayon::prelude::*;

/// Rows of logits per block (one 32-row block of the left operand).
const ROWS: usize = 32;

/// The logits `hc·Wᵀ` (bias not added) of rows `r0..r0 + rows` of `hc` into `z` (row stride
/// `ld` ≥ V), on the current thread.
fn block_logits(kernel: Kernel, hc: &[f32], d: usize, rows: usize, wt: &PackedB, z: &mut [f32]) {
    let a = PackedA::new(MatRef::rows(hc, d), rows, d);
    let ld = wt.nt * 16;
    bf16::gemm(kernel, &a, wt, Dst::rows(&mut z[..rows * ld], ld), false);
}

simd_kernel! {
    /// Adds `bias` to a row of logits and turns it into `exp(z − max z)`; returns `z[y] − max z`
    /// and the sum of the exponentials.
    fn softmax_row(row: &mut [f32], bias: &[f32], y: usize) -> (f32, f32) {
        let mut m = f32::NEG_INFINITY;
        for (x, b) in row.iter_mut().zip(bias) {
            *x += b;
            m = m.max(*x);
        }
        let zy = row[y] - m;
        for x in row.iter_mut() {
            *x = exp_fast(*x - m);
        }
        (zy, sum8(row))
    }
}

simd_kernel! {
    /// `row = w (softmax − onehot)` from `exp(z − max)` and its sum; also adds `row` into the
    /// block's column sums `db`.
    fn grad_row(row: &mut [f32], s: f32, y: usize, w: f32, db: &mut [f32]) {
        let scale = w / s;
        for x in row.iter_mut() {
            *x *= scale;
        }
        row[y] -= w;
        for (a, x) in db.iter_mut().zip(row.iter()) {
            *a += x;
        }
    }
}

/// One block of the fused forward pass: its rows' weighted NLL and the column sums of its G.
struct BlockOut {
    loss: f64,
    db: Vec<f32>,
}

/// Negative log-likelihood of every row of `h` `[n, d]` at `targets` (validation), bf16
/// products.
pub fn head_nll16<Tp: Tape<f32, Cpu>>(
    kernel: Kernel,
    h: &Act<Tp>,
    head: &Lin,
    targets: &[u32],
) -> Vec<f32> {
    let (n, d) = h.shape();
    let v = head.w.shape().0;
    assert_eq!(targets.len(), n, "one target per row");
    let wt = PackedB::weights(&head.host.w, v, d);
    let ld = wt.nt * 16;
    let bias = &head.host.b;
    let hd: &[f32] = &h.data;
    let per_block: Vec<Vec<f32>> = (0..n.div_ceil(ROWS))
        .into_par_iter()
        .map(|b| {
            let (r0, rows) = (b * ROWS, ROWS.min(n - b * ROWS));
            let mut z = vec![0.0f32; rows * ld];
            block_logits(kernel, &hd[r0 * d..], d, rows, &wt, &mut z);
            (0..rows)
                .map(|r| {
                    let y = targets[r0 + r] as usize;
                    let (zy, s) = softmax_row(&mut z[r * ld..r * ld + v], bias, y);
                    s.ln() - zy
                })
                .collect()
        })
        .collect();
    per_block.concat()
}

/// [`super::head_loss`] with bf16 products on the packed kernels (same contract): blocks of
/// rows of weight ≠ 0 give the loss, G in both bf16 layouts and the bias gradient; the
/// backward pass is two products (`∂h = g·G·W`, `∂W += g·(hᵀ·G)ᵀ`) and `∂b += g·Σ G`.
pub fn head_loss16(
    kernel: Kernel,
    h: Act,
    head: &Lin,
    targets: &[u32],
    weights: &[f32],
) -> Tensor<(), f32, Cpu, OwnedTape<f32, Cpu>> {
    let (h, hd, mut tape) = h.split();
    let dev = h.device().clone();
    let (n, d) = *h.shape();
    let v = head.w.shape().0;
    assert_eq!(targets.len(), n, "one target per row");
    assert_eq!(weights.len(), n, "one weight per row");
    let rows: Vec<usize> = (0..n).filter(|&i| weights[i] != 0.0).collect();
    let m = rows.len();
    let mut hc = Vec::with_capacity(m * d);
    for &r in &rows {
        hc.extend_from_slice(&hd[r * d..(r + 1) * d]);
    }
    let wt = PackedB::weights(&head.host.w, v, d);
    let (mut ga, mut gb) = (PackedA::zeroed(m, v), PackedB::zeroed(m, v));
    let ld = wt.nt * 16;
    let bias = &head.host.b;
    let items: Vec<_> = ga.blocks_mut().zip(gb.steps_mut()).enumerate().collect();
    let blocks: Vec<BlockOut> = items
        .into_par_iter()
        .map(|(b, (ga_block, mut gb_step))| {
            let (r0, nr) = (b * ROWS, ROWS.min(m - b * ROWS));
            let mut z = vec![0.0f32; nr * ld];
            block_logits(kernel, &hc[r0 * d..], d, nr, &wt, &mut z);
            let mut db = vec![0.0f32; v];
            let mut loss = 0.0f64;
            for r in 0..nr {
                let (y, w) = (targets[rows[r0 + r]] as usize, weights[rows[r0 + r]]);
                let row = &mut z[r * ld..r * ld + v];
                let (zy, s) = softmax_row(row, bias, y);
                loss += (s.ln() - zy) as f64 * w as f64;
                grad_row(row, s, y, w, &mut db);
            }
            fill_a_block(ga_block, &z, ld, nr, v);
            gb_step.fill(&z, ld, nr);
            BlockOut { loss, db }
        })
        .collect();
    drop(wt);
    // Loss and bias gradient summed in block order.
    let total: f64 = blocks.iter().map(|b| b.loss).sum();
    let mut db = vec![0.0f32; v];
    for b in &blocks {
        for (a, x) in db.iter_mut().zip(&b.db) {
            *a += x;
        }
    }
    drop(blocks);
    let loss = dev.tensor_from_vec(vec![total as f32], ());
    let (w_t, b_t, loss_t, host) = (
        head.w.clone(),
        head.b.clone(),
        loss.clone(),
        head.host.clone(),
    );
    tape.add_backward_op(move |grads| {
        let g = grads.get(&loss_t).as_vec()[0];
        // ∂h (compacted rows) = g · G·W, scattered back to the rows they came from.
        let w_rows = PackedB::new(MatRef::rows(&host.w, d), v, d);
        let mut dhc = vec![0.0f32; m * d];
        let out = Dst {
            alpha: g,
            ..Dst::rows(&mut dhc, d)
        };
        bf16::gemm(kernel, &ga, &w_rows, out, true);
        drop((ga, w_rows));
        let dh = grad_mut(grads, &h)?;
        for (src, &r) in dhc.chunks(d).zip(&rows) {
            for (a, x) in dh[r * d..(r + 1) * d].iter_mut().zip(src) {
                *a += x;
            }
        }
        // ∂W += g · (hcᵀ·G)ᵀ, written transposed into ∂W [V, d].
        let hct = PackedA::new(MatRef::transposed(&hc, d), d, m);
        let out = Dst {
            data: grad_mut(grads, &w_t)?,
            ld: d,
            transposed: true,
            accumulate: true,
            alpha: g,
            bias: None,
        };
        bf16::gemm(kernel, &hct, &gb, out, true);
        for (a, x) in grad_mut(grads, &b_t)?.iter_mut().zip(&db) {
            *a += g * x;
        }
        Ok(())
    });
    loss.put_tape(tape)
}
