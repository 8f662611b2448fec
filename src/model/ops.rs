//! Fused training operations recorded on dfdx's autodiff tape (`Tape::add_backward_op`):
//! linear (+ ReLU), LayerNorm, causal multi-head attention, dropout from a counter-based RNG
//! fused with the residual add, and the output layer fused with cross-entropy. Each computes
//! its forward pass over plain slices (matrix products through `gemm` in fixed partitions,
//! row-parallel element-wise work on the rayon pool) and accumulates its gradients straight
//! into dfdx's [`Gradients`]. Partitions never depend on the thread count, so results are
//! byte-identical with 1 or 2 threads.

use super::net::{Lin, Ln, T2};
use super::train::mix;
use crate::simd::{dot, has_avx2_fma, sum8, SharedMut};
use dfdx::prelude::*;
use rayon::prelude::*;
use std::sync::Arc;

/// LayerNorm epsilon of the contract.
pub const LN_EPS: f32 = 1e-5;

/// Rows per work item of row-parallel kernels (fixed, so reductions do not depend on threads).
const ROW_CHUNK: usize = 32;
/// Columns per work item of column sums.
const COL_CHUNK: usize = 128;
/// Multiply-adds below which a matrix product runs as one `gemm` call; up to
/// [`SPLIT_WIDE`] it runs as 2 parts (each part repacks the shared operand, so small products
/// are not cut finer), above it as 8.
const SPLIT_MIN: usize = 1 << 20;
const SPLIT_WIDE: usize = 1 << 30;

/// Gradient buffer type of the CPU device.
type Grads = Gradients<f32, Cpu>;

/// A read-only matrix operand: element `(i, j)` is `data[i * rs + j * cs]`.
#[derive(Clone, Copy)]
pub struct MatRef<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

impl<'a> MatRef<'a> {
    /// A row-major matrix with `cols` columns.
    pub fn rows(data: &'a [f32], cols: usize) -> Self {
        MatRef {
            data,
            rs: cols,
            cs: 1,
        }
    }
    /// The transpose of a row-major matrix with `cols` columns.
    pub fn transposed(data: &'a [f32], cols: usize) -> Self {
        MatRef {
            data,
            rs: 1,
            cs: cols,
        }
    }
    fn check(&self, r: usize, c: usize) {
        if r > 0 && c > 0 {
            assert!(
                (r - 1) * self.rs + (c - 1) * self.cs < self.data.len(),
                "matrix operand too small"
            );
        }
    }
}

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

/// `acc[j] += alpha · Σ_r x[r, j]` for row-major `x` with `cols` columns; rows summed in order.
pub fn add_col_sums(acc: &mut [f32], x: &[f32], cols: usize, alpha: f32) {
    acc[..cols]
        .par_chunks_mut(COL_CHUNK)
        .enumerate()
        .for_each(|(c, out)| col_sums_chunk(out, x, cols, c * COL_CHUNK, alpha));
}

/// `a += b`, in parallel.
fn add_into(a: &mut [f32], b: &[f32]) {
    a.par_chunks_mut(1 << 14)
        .zip(b.par_chunks(1 << 14))
        .for_each(|(a, b)| add_slice(a, b));
}

/// `exp(x)` for `x ≤ 88`, branch-free so that loops over it vectorise: `2^k · e^r` with
/// `k = ⌊x·log₂e⌉`, `r = x − k·ln 2` (in two parts) and Cephes' degree-6 polynomial for `e^r`
/// (within 2 ulp of the exact value; inputs below −87 give ~1e-38 instead of 0).
#[inline(always)]
pub fn exp_fast(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    let k = (x * std::f32::consts::LOG2_E + 0.5).floor();
    let r = x - k * 0.693_359_4 + k * 2.121_944_4e-4;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 0.166_666_65)
        * r
        + 0.5;
    let e = p * r * r + r + 1.0;
    // 2^k from the bits of k + 1.5·2²³ (whose low mantissa bits hold k): integer lane
    // operations only, unlike a float-to-int cast, so the loop stays vectorised.
    let bits = (k + 12_582_912.0).to_bits();
    e * f32::from_bits(bits.wrapping_sub(0x4B40_0000 - 127) << 23)
}

/// `y += alpha · x`.
#[inline]
fn axpy(y: &mut [f32], alpha: f32, x: &[f32]) {
    for (a, b) in y.iter_mut().zip(x) {
        *a += alpha * b;
    }
}

/// Moves the gradient of `t` out of `grads` (zeros if nothing reached it). Used for an op's own
/// output, whose gradient is complete when the op's backward pass runs and not needed after.
fn take_grad<S: Shape>(grads: &mut Grads, t: &Tensor<S, f32, Cpu>) -> Result<Vec<f32>, CpuError> {
    Ok(std::mem::take(&mut **grads.get_or_alloc_mut(t)?))
}

/// The gradient buffer of `t`, allocated (zeros) if absent.
fn grad_mut<'g, S: Shape>(
    grads: &'g mut Grads,
    t: &Tensor<S, f32, Cpu>,
) -> Result<&'g mut [f32], CpuError> {
    Ok(&mut grads.get_or_alloc_mut(t)?[..])
}

/// An activation on the tape: the dfdx tensor (whose id keys its gradient and whose tape
/// carries the backward ops) and a host copy of its data, so ops read their inputs without
/// dfdx's element-by-element `as_vec`.
#[derive(Debug)]
pub struct Act<Tp = OwnedTape<f32, Cpu>> {
    pub t: T2<Tp>,
    pub data: Arc<Vec<f32>>,
}

impl<Tp: Tape<f32, Cpu>> Act<Tp> {
    /// Wraps a tensor (copies its data out once).
    pub fn from_tensor(t: T2<Tp>) -> Self {
        let data = Arc::new(t.as_vec());
        Act { t, data }
    }

    /// `[rows, cols]`.
    pub fn shape(&self) -> (usize, usize) {
        *self.t.shape()
    }

    /// The same activation with an empty tape (for a second consumer of it).
    pub fn retaped(&self) -> Self {
        Act {
            t: self.t.retaped::<Tp>(),
            data: self.data.clone(),
        }
    }

    fn split(self) -> (T2, Arc<Vec<f32>>, Tp) {
        let (t, tape) = self.t.split_tape();
        (t, self.data, tape)
    }
}

impl Act<NoneTape> {
    /// A constant activation from host data.
    pub fn constant(dev: &Cpu, data: Vec<f32>, shape: (usize, usize)) -> Self {
        Act {
            t: dev.tensor_from_vec(data.clone(), shape),
            data: Arc::new(data),
        }
    }

    /// The same constant on a fresh gradient tape.
    pub fn traced(self) -> Act {
        Act {
            t: self.t.leaky_traced(),
            data: self.data,
        }
    }
}

/// The output activation `y` of an op carrying `tape`; with a real tape, `backward` is recorded
/// and runs with the output's complete gradient.
fn finish<Tp, F>(
    dev: &Cpu,
    y: Arc<Vec<f32>>,
    shape: (usize, usize),
    mut tape: Tp,
    backward: F,
) -> Act<Tp>
where
    Tp: Tape<f32, Cpu>,
    F: 'static + FnOnce(&mut Grads, Vec<f32>) -> Result<(), CpuError>,
{
    let t = dev.tensor_from_vec(y.as_ref().clone(), shape);
    if Tp::OWNS_TAPE {
        let key = t.clone();
        tape.add_backward_op(move |grads| {
            let gy = take_grad(grads, &key)?;
            backward(grads, gy)
        });
    }
    Act {
        t: t.put_tape(tape),
        data: y,
    }
}

/// Row-major host copies of a linear layer's parameters, shared with backward closures.
#[derive(Clone, Debug)]
pub struct HostLin {
    pub w: Arc<Vec<f32>>,
    pub b: Arc<Vec<f32>>,
}

/// `x·Wᵀ + b` (then ReLU when `relu`) for `x` `[n, in]`.
pub fn linear<Tp: Tape<f32, Cpu>>(x: Act<Tp>, l: &Lin, relu: bool) -> Act<Tp> {
    let (x, xd, tape) = x.split();
    let (n, n_in) = *x.shape();
    let n_out = l.w.shape().0;
    assert_eq!(l.w.shape().1, n_in, "linear layer input size");
    let host = l.host.clone();
    let mut y = Vec::with_capacity(n * n_out);
    for _ in 0..n {
        y.extend_from_slice(&host.b);
    }
    matmul(
        &mut y,
        (n, n_out, n_in),
        MatRef::rows(&xd, n_in),
        MatRef::transposed(&host.w, n_in),
        true,
        1.0,
    );
    if relu {
        y.par_chunks_mut(1 << 14).for_each(|c| {
            for v in c {
                *v = v.max(0.0);
            }
        });
    }
    let y = Arc::new(y);
    let saved_y = relu.then(|| y.clone());
    let (w_t, b_t) = (l.w.clone(), l.b.clone());
    let dev = x.device().clone();
    finish(&dev, y, (n, n_out), tape, move |grads, mut gy| {
        if let Some(y) = saved_y {
            gy.par_chunks_mut(1 << 14)
                .zip(y.par_chunks(1 << 14))
                .for_each(|(g, y)| {
                    for (g, y) in g.iter_mut().zip(y) {
                        if *y <= 0.0 {
                            *g = 0.0;
                        }
                    }
                });
        }
        add_col_sums(grad_mut(grads, &b_t)?, &gy, n_out, 1.0);
        // ∂W += gyᵀ · x
        matmul(
            grad_mut(grads, &w_t)?,
            (n_out, n_in, n),
            MatRef::transposed(&gy, n_out),
            MatRef::rows(&xd, n_in),
            true,
            1.0,
        );
        // ∂x += gy · W
        matmul(
            grad_mut(grads, &x)?,
            (n, n_in, n_out),
            MatRef::rows(&gy, n_out),
            MatRef::rows(&host.w, n_in),
            true,
            1.0,
        );
        Ok(())
    })
}

/// LayerNorm over the last axis of `x` `[n, d]`: `(x − mean) / sqrt(var + ε) · g + b`.
pub fn layer_norm<Tp: Tape<f32, Cpu>>(x: Act<Tp>, l: &Ln) -> Act<Tp> {
    let (x, xd, tape) = x.split();
    let (n, d) = *x.shape();
    let (g, b) = (l.host_g.clone(), l.host_b.clone());
    let keep = Tp::OWNS_TAPE;
    // x̂ (kept for the backward pass) and 1 / std per row.
    let mut xhat = vec![0.0f32; n * d];
    let mut rstd = vec![0.0f32; n];
    xhat.par_chunks_mut(d * ROW_CHUNK)
        .zip(rstd.par_chunks_mut(ROW_CHUNK))
        .zip(xd.par_chunks(d * ROW_CHUNK))
        .for_each(|((hc, rc), xc)| ln_normalize(xc, hc, rc, d));
    let mut y = vec![0.0f32; n * d];
    y.par_chunks_mut(d * ROW_CHUNK)
        .zip(xhat.par_chunks(d * ROW_CHUNK))
        .for_each(|(yc, hc)| ln_affine(yc, hc, &g, &b, d));
    if !keep {
        xhat = Vec::new();
    }
    let (g_t, b_t) = (l.g.clone(), l.b.clone());
    let dev = x.device().clone();
    finish(&dev, Arc::new(y), (n, d), tape, move |grads, gy| {
        // ∂b = Σ gy, ∂g = Σ gy ⊙ x̂ over rows, in fixed row chunks summed in order.
        let chunks = n.div_ceil(ROW_CHUNK);
        let partial: Vec<(Vec<f32>, Vec<f32>)> = (0..chunks)
            .into_par_iter()
            .map(|c| {
                let r = c * ROW_CHUNK..((c + 1) * ROW_CHUNK).min(n);
                ln_param_sums(
                    &gy[r.start * d..r.end * d],
                    &xhat[r.start * d..r.end * d],
                    d,
                )
            })
            .collect();
        {
            let dg = grad_mut(grads, &g_t)?;
            for (sg, _) in &partial {
                for (a, v) in dg.iter_mut().zip(sg) {
                    *a += v;
                }
            }
        }
        {
            let db = grad_mut(grads, &b_t)?;
            for (_, sb) in &partial {
                for (a, v) in db.iter_mut().zip(sb) {
                    *a += v;
                }
            }
        }
        // ∂x = rstd · (ĝ − mean(ĝ) − x̂ · mean(ĝ ⊙ x̂)) with ĝ = gy ⊙ g.
        let dx = grad_mut(grads, &x)?;
        dx.par_chunks_mut(d * ROW_CHUNK)
            .enumerate()
            .for_each(|(c, dc)| {
                let r = c * ROW_CHUNK * d..c * ROW_CHUNK * d + dc.len();
                let rows = c * ROW_CHUNK..c * ROW_CHUNK + dc.len() / d;
                ln_dx(dc, &gy[r.clone()], &xhat[r], &rstd[rows], &g, d)
            });
        Ok(())
    })
}

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

/// The dropout mask of one site (the embedding, or one residual branch) of one training step:
/// element `i` is dropped when a hash of `(seed, i)` falls below `p`, so any element's mask can
/// be recomputed in any order on any thread.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DropMask {
    pub p: f32,
    pub seed: u64,
}

impl DropMask {
    /// The factor element `i` is multiplied by: 0 or `1 / (1 − p)`.
    #[inline]
    pub fn factor(&self, i: usize) -> f32 {
        let u = (mix(self.seed, i as u64) >> 40) as f32 * (1.0 / (1u64 << 24) as f32);
        if u < self.p {
            0.0
        } else {
            1.0 / (1.0 - self.p)
        }
    }

    /// The mask of the first `n` elements.
    pub fn to_vec(&self, n: usize) -> Vec<f32> {
        (0..n).into_par_iter().map(|i| self.factor(i)).collect()
    }

    /// `x ⊙ mask` in place.
    pub fn apply(&self, x: &mut [f32]) {
        x.par_chunks_mut(1 << 12).enumerate().for_each(|(c, xs)| {
            for (i, v) in xs.iter_mut().enumerate() {
                *v *= self.factor(c * (1 << 12) + i);
            }
        });
    }
}

/// The residual add `x + dropout(y)` (`x + y` without a mask).
pub fn residual<Tp: Tape<f32, Cpu>>(x: Act<Tp>, y: Act<Tp>, mask: Option<DropMask>) -> Act<Tp> {
    let (x, xd, tx) = x.split();
    let (y, yd, ty) = y.split();
    let shape = *x.shape();
    assert_eq!(shape, *y.shape(), "residual shapes");
    const C: usize = 1 << 12;
    let mut out = vec![0.0f32; xd.len()];
    out.par_chunks_mut(C)
        .zip(xd.par_chunks(C).zip(yd.par_chunks(C)))
        .enumerate()
        .for_each(|(c, (o, (xs, ys)))| residual_chunk(o, xs, ys, mask, c * C));
    let dev = x.device().clone();
    finish(
        &dev,
        Arc::new(out),
        shape,
        tx.merge(ty),
        move |grads, mut g| {
            add_into(grad_mut(grads, &x)?, &g);
            if let Some(m) = mask {
                m.apply(&mut g);
            }
            add_into(grad_mut(grads, &y)?, &g);
            Ok(())
        },
    )
}

/// `x ⊙ mask` on the tape.
pub fn dropout<Tp: Tape<f32, Cpu>>(x: Act<Tp>, mask: DropMask) -> Act<Tp> {
    let (x, xd, tape) = x.split();
    let shape = *x.shape();
    let mut out = xd.as_ref().clone();
    mask.apply(&mut out);
    let dev = x.device().clone();
    finish(&dev, Arc::new(out), shape, tape, move |grads, mut g| {
        mask.apply(&mut g);
        add_into(grad_mut(grads, &x)?, &g);
        Ok(())
    })
}

/// `hc·Wᵀ` `[m, V]` for packed rows `hc` `[m, d]`, in a reused scratch buffer (the bias is
/// added by the caller).
fn head_logits(hc: &[f32], d: usize, head: &HostLin, v: usize) -> Vec<f32> {
    let m = hc.len() / d.max(1);
    let mut z = scratch(m * v);
    matmul(
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
fn softmax_row(row: &mut [f32], bias: &[f32], y: usize) -> (f32, f32) {
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

/// Negative log-likelihood of every row of `h` `[n, d]` at `targets` under the output layer,
/// without a tape (validation).
pub fn head_nll<Tp: Tape<f32, Cpu>>(h: &Act<Tp>, head: &Lin, targets: &[u32]) -> Vec<f32> {
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
        matmul(
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
        matmul(
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

/// Defines `fn name(args) -> ret` whose body runs compiled for AVX2 and FMA when the CPU has
/// them (checked at run time) and for baseline x86-64 otherwise, so its element-wise loops are
/// vectorised 8 wide. Vectorisation never reorders floating-point sums, so both give the same
/// results.
macro_rules! simd_kernel {
    ($(#[$m:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$m])*
        #[allow(clippy::too_many_arguments)]
        fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn fast($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                if has_avx2_fma() {
                    // SAFETY: the CPU supports AVX2 and FMA (checked just above).
                    return unsafe { fast($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
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

simd_kernel! {
    /// `a += b`.
    fn add_slice(a: &mut [f32], b: &[f32]) {
        for (x, y) in a.iter_mut().zip(b) {
            *x += y;
        }
    }
}

simd_kernel! {
    /// `o = x + y ⊙ mask` for elements `base …` of a residual add.
    fn residual_chunk(o: &mut [f32], xs: &[f32], ys: &[f32], mask: Option<DropMask>, base: usize) {
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
    fn ln_normalize(xc: &[f32], hc: &mut [f32], rc: &mut [f32], d: usize) {
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
    fn ln_affine(yc: &mut [f32], hc: &[f32], g: &[f32], b: &[f32], d: usize) {
        for (yr, hr) in yc.chunks_mut(d).zip(hc.chunks(d)) {
            for j in 0..d {
                yr[j] = hr[j] * g[j] + b[j];
            }
        }
    }
}

simd_kernel! {
    /// `(Σ gy ⊙ x̂, Σ gy)` over the rows of a chunk.
    fn ln_param_sums(gy: &[f32], xhat: &[f32], d: usize) -> (Vec<f32>, Vec<f32>) {
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
    fn ln_dx(dc: &mut [f32], gy: &[f32], xhat: &[f32], rstd: &[f32], g: &[f32], d: usize) {
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
