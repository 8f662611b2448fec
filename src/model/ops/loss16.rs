//! The output layer fused with cross-entropy for bf16 products on the packed kernels (AMX /
//! AVX512-BF16). The logits never exist whole: blocks of [`ROWS`] rows are computed into a
//! per-thread buffer that stays in cache, turned into `∂loss/∂logits` there (softmax in f32,
//! as the f32 path does), and written straight into the two bf16 layouts the backward products
//! read (`∂h = G·W` reads G as a left operand, `∂Wᵀ = hᵀ·G` as a right one), with the bias
//! gradient's column sums per block. A step holds two bf16 copies of G (the bytes of the f32
//! path's one f32 copy), kept between steps in a small pool like the f32 path's logits.

use super::layers::Lin;
use super::loss::softmax_row;
use super::tape::{grad_mut, Act};
use crate::simd::bf16::{self, scale_pack_pair, Dst, Kernel, PackedA, PackedB, TILE_LEN};
use crate::simd::mat::MatRef;
use crate::simd::simd_kernel;
use dfdx::prelude::*;
use rayon::prelude::*;
use std::cell::RefCell;
use std::sync::Mutex;

/// Rows of logits per block (two 32-row blocks of the left operand).
const ROWS: usize = 64;

thread_local! {
    /// The logits of one block on this thread (reused: every value read is written first).
    static LOGITS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Buffers of G kept between steps (at most two: its two layouts).
static POOL: Mutex<Vec<Vec<u16>>> = Mutex::new(Vec::new());

/// A buffer of `len` values with unspecified (initialised) contents, from [`POOL`] if one is
/// large enough.
fn take(len: usize) -> Vec<u16> {
    let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
    let mut v = match pool.iter().position(|b| b.capacity() >= len) {
        Some(i) => pool.swap_remove(i),
        None => Vec::new(),
    };
    drop(pool);
    v.resize(len, 0);
    v.truncate(len);
    v
}

fn recycle(v: Vec<u16>) {
    let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
    if pool.len() < 2 {
        pool.push(v);
    }
}

/// The logits `hc·Wᵀ` (bias not added) of `rows` rows of `hc` into `z` (row stride: the
/// padded width of `wt`), on the current thread.
fn block_logits(kernel: Kernel, hc: &[f32], d: usize, rows: usize, wt: &PackedB, z: &mut [f32]) {
    let a = PackedA::new(MatRef::rows(hc, d), rows, d);
    let ld = wt.nt * 16;
    bf16::gemm(kernel, &a, wt, Dst::rows(&mut z[..rows * ld], ld), false);
}

/// Runs `f` with this thread's logits buffer of at least `len` floats.
fn with_logits<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    LOGITS.with(|z| {
        let mut z = z.borrow_mut();
        if z.len() < len {
            z.resize(len, 0.0);
        }
        f(&mut z[..len])
    })
}

simd_kernel! {
    /// `ln Σ exp − (z[y] − max)` of one row of logits (bias not yet added).
    fn nll_row(row: &mut [f32], bias: &[f32], y: usize) -> f32 {
        let (zy, sum) = softmax_row(row, bias, y);
        sum.ln() - zy
    }
}

simd_kernel! {
    /// Turns a row of logits (bias not yet added) into `exp(z − max)` with `row[y]` lowered by
    /// the sum, so that `w / sum` times it is `w (softmax − onehot)`; returns that scale and
    /// the row's weighted NLL.
    fn ce_row(row: &mut [f32], bias: &[f32], y: usize, w: f32) -> (f32, f64) {
        let (zy, s) = softmax_row(row, bias, y);
        row[y] -= s;
        (w / s, (s.ln() - zy) as f64 * w as f64)
    }
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
            with_logits(rows * ld, |z| {
                block_logits(kernel, &hd[r0 * d..], d, rows, &wt, z);
                (0..rows)
                    .map(|r| nll_row(&mut z[r * ld..r * ld + v], bias, targets[r0 + r] as usize))
                    .collect()
            })
        })
        .collect();
    per_block.concat()
}

/// G's two layouts, written by the blocks of the forward pass.
struct Sink {
    a: *mut u16,
    b: *mut u16,
    /// `k` steps of the left layout (columns of G / 32) and of the right one (rows / 32).
    a_steps: usize,
    b_steps: usize,
}

// SAFETY: blocks write disjoint parts through it (see `Sink::pair`).
unsafe impl Sync for Sink {}

impl Sink {
    /// Writes rows `g`, `g + 1` (`g` even) of G, `v` columns padded to `npad`, scaled, and adds
    /// them into `db`.
    ///
    /// # Safety
    /// Rows `g`, `g + 1` exist in both layouts and no other thread writes them (each block
    /// owns its 64 rows: its two `k` steps of the right layout).
    #[allow(clippy::too_many_arguments)]
    unsafe fn pair(
        &self,
        g: usize,
        rows: (Option<&[f32]>, Option<&[f32]>),
        scales: (f32, f32),
        (v, npad): (usize, usize),
        db: &mut [f32],
    ) {
        let a_row = |r: usize| {
            let at = ((r / 16) * self.a_steps) * TILE_LEN + (r % 16) * 32;
            // SAFETY: row r of the left layout exists (the caller's contract).
            Some(unsafe { self.a.add(at) })
        };
        let b_at = (g / 32) * TILE_LEN + ((g % 32) / 2) * 32;
        // SAFETY: as documented; the CPU has AVX512-BF16 (a packed kernel runs).
        unsafe {
            scale_pack_pair(
                rows,
                scales,
                v,
                npad,
                db,
                [a_row(g), a_row(g + 1)],
                self.b.add(b_at),
                self.b_steps * TILE_LEN,
            )
        }
    }
}

/// The forward pass of one block of `ROWS` rows (from row `r0` of the `m` kept rows): the
/// block's weighted NLL and the column sums of its G; G goes into `sink`.
#[allow(clippy::too_many_arguments)]
fn forward_block(
    kernel: Kernel,
    (hc, d): (&[f32], usize),
    (r0, m): (usize, usize),
    wt: &PackedB,
    head: &Lin,
    targets: impl Fn(usize) -> (usize, f32),
    sink: &Sink,
) -> (f64, Vec<f32>) {
    let v = head.w.shape().0;
    let (ld, nr) = (wt.nt * 16, ROWS.min(m - r0));
    // Rows up to the padded height of G's layouts: those past `m` are zeros.
    let padded = (m.div_ceil(32) * 32 - r0).min(ROWS);
    with_logits(nr * ld, |z| {
        block_logits(kernel, &hc[r0 * d..], d, nr, wt, z);
        let mut loss = 0.0f64;
        let mut scales = vec![0.0f32; nr];
        for (r, sc) in scales.iter_mut().enumerate() {
            let (y, w) = targets(r0 + r);
            let (s, l) = ce_row(&mut z[r * ld..r * ld + v], &head.host.b, y, w);
            *sc = s;
            loss += l;
        }
        let mut db = vec![0.0f32; v];
        for p in (0..padded).step_by(2) {
            let row = |r: usize| (r < nr).then(|| &z[r * ld..r * ld + v]);
            let sc = |r: usize| scales.get(r).copied().unwrap_or(0.0);
            // SAFETY: rows r0 + p, r0 + p + 1 lie in this block's part of both layouts.
            unsafe {
                sink.pair(
                    r0 + p,
                    (row(p), row(p + 1)),
                    (sc(p), sc(p + 1)),
                    (v, ld),
                    &mut db,
                )
            };
        }
        (loss, db)
    })
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
    // G as a left operand [m × V] and as a right one [m × V], every value written below.
    let ga = PackedA::from_data(m, v, take);
    let gb = PackedB::from_data(m, v, take);
    let mut ga = ga;
    let mut gb = gb;
    let sink = Sink {
        a: ga.data.as_mut_ptr(),
        b: gb.data.as_mut_ptr(),
        a_steps: ga.ksteps,
        b_steps: gb.ksteps,
    };
    let target = |i: usize| (targets[rows[i]] as usize, weights[rows[i]]);
    let blocks: Vec<(f64, Vec<f32>)> = (0..m.div_ceil(ROWS))
        .into_par_iter()
        .map(|b| forward_block(kernel, (&hc, d), (b * ROWS, m), &wt, head, target, &sink))
        .collect();
    drop((wt, sink));
    // Loss and bias gradient summed in block order.
    let total: f64 = blocks.iter().map(|b| b.0).sum();
    let mut db = vec![0.0f32; v];
    for b in &blocks {
        for (a, x) in db.iter_mut().zip(&b.1) {
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
        drop(w_rows);
        recycle(std::mem::take(&mut ga.data));
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
        recycle(std::mem::take(&mut gb.data));
        for (a, x) in grad_mut(grads, &b_t)?.iter_mut().zip(&db) {
            *a += g * x;
        }
        Ok(())
    });
    loss.put_tape(tape)
}
