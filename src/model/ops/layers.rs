//! The fused layer ops and their operand types: linear (+ ReLU) over [`Lin`], LayerNorm over
//! [`Ln`], and the residual add fused with dropout from a counter-based mask
//! ([`super::mask::DropMask`]).
//! Each computes over plain slices and accumulates its gradients straight into dfdx's
//! gradients.

use super::kernels::{add_slice, ln_affine, ln_dx, ln_normalize, ln_param_sums, residual_chunk};
use super::mask::DropMask;
use super::matmul::{add_col_sums, matmul_in, MatRef};
use super::tape::{finish, grad_mut, Act, T1, T2};
use crate::model::weights::{LayerNormWeights, LinearWeights};
use crate::simd::bf16::Products;
use dfdx::prelude::*;
use rayon::prelude::*;
use std::sync::Arc;

/// Rows per work item of row-parallel kernels (fixed, so reductions do not depend on threads).
const ROW_CHUNK: usize = 32;

/// `a += b`, in parallel.
fn add_into(a: &mut [f32], b: &[f32]) {
    a.par_chunks_mut(1 << 14)
        .zip(b.par_chunks(1 << 14))
        .for_each(|(a, b)| add_slice(a, b));
}

/// Row-major host copies of a linear layer's parameters and how its products run, shared with
/// backward closures.
#[derive(Clone, Debug)]
pub struct HostLin {
    pub w: Arc<Vec<f32>>,
    pub b: Arc<Vec<f32>>,
    pub products: Products,
}

/// A linear layer: `w` `[out, in]`, `b` `[out]` (the tensors the tape keys gradients by), and
/// host copies of their data for the fused kernels.
#[derive(Clone, Debug)]
pub struct Lin {
    pub w: T2,
    pub b: T1,
    pub host: HostLin,
}

/// LayerNorm affine parameters, with host copies of their data.
#[derive(Clone, Debug)]
pub struct Ln {
    pub g: T1,
    pub b: T1,
    pub host_g: Arc<Vec<f32>>,
    pub host_b: Arc<Vec<f32>>,
}

fn t1(dev: &Cpu, v: &[f32]) -> T1 {
    dev.tensor_from_vec(v.to_vec(), (v.len(),))
}

impl Lin {
    /// Uploads a linear layer's weights; its products run as `products` says.
    pub fn new(dev: &Cpu, l: &LinearWeights, products: Products) -> Self {
        Lin {
            w: dev.tensor_from_vec(l.weight.clone(), (l.out_dim, l.in_dim)),
            b: t1(dev, &l.bias),
            host: HostLin {
                w: Arc::new(l.weight.clone()),
                b: Arc::new(l.bias.clone()),
                products,
            },
        }
    }

    /// Overwrites the parameters (same shapes).
    pub fn set(&mut self, w: &[f32], b: &[f32]) {
        self.w.copy_from(w);
        self.b.copy_from(b);
        self.host = HostLin {
            w: Arc::new(w.to_vec()),
            b: Arc::new(b.to_vec()),
            products: self.host.products,
        };
    }
}

impl Ln {
    /// Uploads LayerNorm parameters.
    pub fn new(dev: &Cpu, l: &LayerNormWeights) -> Self {
        Ln {
            g: t1(dev, &l.weight),
            b: t1(dev, &l.bias),
            host_g: Arc::new(l.weight.clone()),
            host_b: Arc::new(l.bias.clone()),
        }
    }

    /// Overwrites the parameters (same shapes).
    pub fn set(&mut self, g: &[f32], b: &[f32]) {
        self.g.copy_from(g);
        self.b.copy_from(b);
        self.host_g = Arc::new(g.to_vec());
        self.host_b = Arc::new(b.to_vec());
    }
}

/// `x·Wᵀ + b` (then ReLU when `relu`) for `x` `[n, in]`, products as the layer says.
pub fn linear<Tp: Tape<f32, Cpu>>(x: Act<Tp>, l: &Lin, relu: bool) -> Act<Tp> {
    let (x, xd, tape) = x.split();
    let (n, n_in) = *x.shape();
    let n_out = l.w.shape().0;
    assert_eq!(l.w.shape().1, n_in, "linear layer input size");
    let host = l.host.clone();
    let p = host.products;
    let mut y = Vec::with_capacity(n * n_out);
    for _ in 0..n {
        y.extend_from_slice(&host.b);
    }
    matmul_in(
        p,
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
        matmul_in(
            p,
            grad_mut(grads, &w_t)?,
            (n_out, n_in, n),
            MatRef::transposed(&gy, n_out),
            MatRef::rows(&xd, n_in),
            true,
            1.0,
        );
        // ∂x += gy · W
        matmul_in(
            p,
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
