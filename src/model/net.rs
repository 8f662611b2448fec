//! The transformer of DESIGN.md section 5 on runtime-shaped dfdx tensors: the forward pass
//! through the fused tape ops of [`super::ops`] (training and validation), the same model
//! composed from plain dfdx ops (the reference the fused path is tested against), conversion to
//! and from [`Weights`], gradient extraction in the order of [`Weights::slots_mut`], and the
//! no-dropout [`forward_logits`] used to cross-check the decode paths.

use super::config::{position_encoding, ModelConfig};
use super::ops::{self, Act, DropMask, HostLin};
use super::train::mix;
use super::weights::{LayerNormWeights, LinearWeights, Weights};
use dfdx::prelude::*;
use std::sync::Arc;

/// A 1-D f32 tensor with a run-time length.
pub type T1<Tp = NoneTape> = Tensor<(usize,), f32, Cpu, Tp>;
/// A 2-D f32 tensor with run-time sizes.
pub type T2<Tp = NoneTape> = Tensor<(usize, usize), f32, Cpu, Tp>;

/// LayerNorm epsilon of the contract.
pub const LN_EPS: f64 = 1e-5;

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

/// One pre-LN block.
#[derive(Clone, Debug)]
pub struct Block {
    pub ln1: Ln,
    pub attn_in: Lin,
    pub q: Lin,
    pub k: Lin,
    pub v: Lin,
    pub o: Lin,
    pub attn_out: Lin,
    pub ln2: Ln,
    pub ff_up: Lin,
    pub ff_down: Lin,
}

/// The whole model on the dfdx CPU device.
#[derive(Clone, Debug)]
pub struct Net {
    pub config: ModelConfig,
    pub dev: Cpu,
    /// `[V, d_model]`.
    pub tok_emb: T2,
    pub blocks: Vec<Block>,
    pub ln_f: Ln,
    pub head: Lin,
    /// Sinusoidal table `[context, d_model]` (host copy).
    pe: Vec<f32>,
}

/// Dropout of one training step: every site (the embedding, then the attention and
/// feed-forward branches of each block) gets a counter-based [`DropMask`] derived from the
/// step's seed, so masks do not depend on evaluation order or threads and a resumed run draws
/// the same masks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dropout {
    pub p: f32,
    pub seed: u64,
}

impl Dropout {
    pub fn new(p: f32, seed: u64) -> Self {
        Dropout { p, seed }
    }

    /// The mask of site `k` (0: embedding; `1 + 2l`, `2 + 2l`: block `l`'s two branches), or
    /// `None` when `p` is 0.
    pub fn site(&self, k: u64) -> Option<DropMask> {
        (self.p > 0.0).then(|| DropMask {
            p: self.p,
            seed: mix(self.seed, k),
        })
    }

    /// The composed reference: `x` times the mask of site `k` as a dfdx product.
    fn apply_composed<Tp: Tape<f32, Cpu>>(&self, dev: &Cpu, x: T2<Tp>, k: u64) -> T2<Tp> {
        match self.site(k) {
            None => x,
            Some(m) => {
                let shape = *x.shape();
                x * dev.tensor_from_vec(m.to_vec(shape.0 * shape.1), shape)
            }
        }
    }
}

fn t1(dev: &Cpu, v: &[f32]) -> T1 {
    dev.tensor_from_vec(v.to_vec(), (v.len(),))
}

fn lin_from(dev: &Cpu, l: &LinearWeights) -> Lin {
    Lin {
        w: dev.tensor_from_vec(l.weight.clone(), (l.out_dim, l.in_dim)),
        b: t1(dev, &l.bias),
        host: HostLin {
            w: Arc::new(l.weight.clone()),
            b: Arc::new(l.bias.clone()),
        },
    }
}

fn ln_from(dev: &Cpu, l: &LayerNormWeights) -> Ln {
    Ln {
        g: t1(dev, &l.weight),
        b: t1(dev, &l.bias),
        host_g: Arc::new(l.weight.clone()),
        host_b: Arc::new(l.bias.clone()),
    }
}

impl Lin {
    fn set(&mut self, w: &[f32], b: &[f32]) {
        self.w.copy_from(w);
        self.b.copy_from(b);
        self.host = HostLin {
            w: Arc::new(w.to_vec()),
            b: Arc::new(b.to_vec()),
        };
    }
}

impl Ln {
    fn set(&mut self, g: &[f32], b: &[f32]) {
        self.g.copy_from(g);
        self.b.copy_from(b);
        self.host_g = Arc::new(g.to_vec());
        self.host_b = Arc::new(b.to_vec());
    }
}

/// `x·Wᵀ + b` for `x` `[n, in]`, composed from dfdx ops (the reference for [`ops::linear`]).
pub fn linear_composed<Tp: Tape<f32, Cpu>>(x: T2<Tp>, l: &Lin) -> T2<Tp> {
    let n = x.shape().0;
    let out = l.w.shape().0;
    let y = x.matmul(l.w.retaped::<Tp>().permute::<_, Axes2<1, 0>>());
    y + l.b.retaped::<Tp>().broadcast_like::<_, Axis<0>>(&(n, out))
}

/// LayerNorm over the last axis of `x` `[n, d]`, composed from dfdx ops (the reference for
/// [`ops::layer_norm`]).
pub fn layer_norm_composed<Tp: Tape<f32, Cpu>>(x: T2<Tp>, l: &Ln) -> T2<Tp> {
    let shape = *x.shape();
    let y = x.normalize::<Axis<1>>(LN_EPS);
    y * l.g.retaped::<Tp>().broadcast_like::<_, Axis<0>>(&shape)
        + l.b.retaped::<Tp>().broadcast_like::<_, Axis<0>>(&shape)
}

impl Net {
    /// Uploads weights to a dfdx CPU device.
    pub fn from_weights(w: &Weights, dev: &Cpu) -> Self {
        let c = &w.config;
        let mut pe = vec![0.0f32; c.context * c.d_model];
        for (p, row) in pe.chunks_mut(c.d_model).enumerate() {
            position_encoding(p, row);
        }
        Net {
            config: c.clone(),
            dev: dev.clone(),
            tok_emb: dev.tensor_from_vec(w.tok_emb.clone(), (c.vocab_size, c.d_model)),
            blocks: w
                .blocks
                .iter()
                .map(|b| Block {
                    ln1: ln_from(dev, &b.ln1),
                    attn_in: lin_from(dev, &b.attn_in),
                    q: lin_from(dev, &b.q),
                    k: lin_from(dev, &b.k),
                    v: lin_from(dev, &b.v),
                    o: lin_from(dev, &b.o),
                    attn_out: lin_from(dev, &b.attn_out),
                    ln2: ln_from(dev, &b.ln2),
                    ff_up: lin_from(dev, &b.ff_up),
                    ff_down: lin_from(dev, &b.ff_down),
                })
                .collect(),
            ln_f: ln_from(dev, &w.ln_f),
            head: lin_from(dev, &w.head),
            pe,
        }
    }

    /// Every parameter tensor's data in the order of [`Weights::slots_mut`].
    pub fn to_weights(&self) -> Weights {
        let mut w = Weights::zeros(&self.config);
        for (slot, data) in w
            .slots_mut()
            .into_iter()
            .zip(self.slot_vecs(|t| t.as_vec(), |t| t.as_vec()))
        {
            *slot = data;
        }
        w
    }

    /// Applies `f1` to every 1-D and `f2` to every 2-D parameter, in slot order.
    fn slot_vecs<R>(&self, f1: impl Fn(&T1) -> R, f2: impl Fn(&T2) -> R) -> Vec<R> {
        let mut out = vec![f2(&self.tok_emb)];
        let lin = |out: &mut Vec<R>, l: &Lin| {
            out.push(f2(&l.w));
            out.push(f1(&l.b));
        };
        for b in &self.blocks {
            out.push(f1(&b.ln1.g));
            out.push(f1(&b.ln1.b));
            for l in [&b.attn_in, &b.q, &b.k, &b.v, &b.o, &b.attn_out] {
                lin(&mut out, l);
            }
            out.push(f1(&b.ln2.g));
            out.push(f1(&b.ln2.b));
            lin(&mut out, &b.ff_up);
            lin(&mut out, &b.ff_down);
        }
        out.push(f1(&self.ln_f.g));
        out.push(f1(&self.ln_f.b));
        lin(&mut out, &self.head);
        out
    }

    /// Overwrites every parameter from `w` (same config), e.g. after an optimiser step.
    pub fn load_weights(&mut self, w: &Weights) {
        let named = w.named();
        let mut it = named.iter().map(|(_, _, d)| *d);
        let mut next = || it.next().expect("slot count matches");
        self.tok_emb.copy_from(next());
        for b in &mut self.blocks {
            b.ln1.set(next(), next());
            for l in [
                &mut b.attn_in,
                &mut b.q,
                &mut b.k,
                &mut b.v,
                &mut b.o,
                &mut b.attn_out,
            ] {
                l.set(next(), next());
            }
            b.ln2.set(next(), next());
            for l in [&mut b.ff_up, &mut b.ff_down] {
                l.set(next(), next());
            }
        }
        self.ln_f.set(next(), next());
        self.head.set(next(), next());
    }

    /// Gradients of every parameter in slot order; `None` for `tok_emb` when it was not traced
    /// (frozen embeddings).
    pub fn grads(&self, grads: &mut Gradients<f32, Cpu>, with_emb: bool) -> Vec<Option<Vec<f32>>> {
        enum Key {
            One(T1),
            Two(T2),
        }
        let keys = self.slot_vecs(|t| Key::One(t.clone()), |t| Key::Two(t.clone()));
        // Moved out of `grads` (each parameter's gradient is read once), not copied.
        let mut take = |k: &Key| -> Vec<f32> {
            let buf = match k {
                Key::One(t) => grads.get_or_alloc_mut(t),
                Key::Two(t) => grads.get_or_alloc_mut(t),
            };
            std::mem::take(&mut **buf.expect("CPU gradient allocation"))
        };
        keys.iter()
            .enumerate()
            .map(|(i, k)| (i > 0 || with_emb).then(|| take(k)))
            .collect()
    }

    /// Host-side `tok_emb[ids] + PE[pos]` for `b` rows of `t` ids, as `[b*t, d_model]`.
    fn embed_host(&self, ids: &[u32], t: usize) -> Vec<f32> {
        let d = self.config.d_model;
        let emb = self.tok_emb.as_vec();
        let mut x = vec![0.0f32; ids.len() * d];
        for (i, (row, &id)) in x.chunks_mut(d).zip(ids).enumerate() {
            let e = &emb[id as usize * d..(id as usize + 1) * d];
            let p = &self.pe[(i % t) * d..(i % t + 1) * d];
            for j in 0..d {
                row[j] = e[j] + p[j];
            }
        }
        x
    }

    /// Embedding of `ids` (`b*t` ids, rows of `t`), on the tape: traced through `tok_emb` when
    /// `train_emb`, else a traced constant.
    pub fn embed_traced(&self, ids: &[u32], t: usize, train_emb: bool) -> Act {
        let d = self.config.d_model;
        let n = ids.len();
        if train_emb {
            let idx: Tensor<(usize,), usize, Cpu> = self
                .dev
                .tensor_from_vec(ids.iter().map(|&i| i as usize).collect(), (n,));
            let pe: Vec<f32> = (0..n)
                .flat_map(|i| self.pe[(i % t) * d..(i % t + 1) * d].iter().copied())
                .collect();
            Act {
                t: self.tok_emb.leaky_trace().gather(idx) + self.dev.tensor_from_vec(pe, (n, d)),
                data: Arc::new(self.embed_host(ids, t)),
            }
        } else {
            Act::constant(&self.dev, self.embed_host(ids, t), (n, d)).traced()
        }
    }

    /// Embedding of `ids` without a tape, for the fused path.
    pub fn embed_const(&self, ids: &[u32], t: usize) -> Act<NoneTape> {
        Act::constant(
            &self.dev,
            self.embed_host(ids, t),
            (ids.len(), self.config.d_model),
        )
    }

    /// Embedding of `ids` without a tape, for the composed path.
    pub fn embed(&self, ids: &[u32], t: usize) -> T2 {
        let d = self.config.d_model;
        self.dev
            .tensor_from_vec(self.embed_host(ids, t), (ids.len(), d))
    }

    /// The body of the model through the fused tape ops: `x` `[b*t, d_model]` (embedded,
    /// positions added) → `ln_f(h)` `[b*t, d_model]`. `dropout` is applied after the embedding
    /// and on both residual branches.
    pub fn hidden<Tp: Tape<f32, Cpu>>(
        &self,
        x: Act<Tp>,
        b: usize,
        t: usize,
        dropout: Option<&Dropout>,
    ) -> Act<Tp> {
        let c = &self.config;
        c.check_len(t);
        let site = |k: u64| dropout.and_then(|d| d.site(k));
        let mut x = match site(0) {
            Some(m) => ops::dropout(x, m),
            None => x,
        };
        for (l, blk) in self.blocks.iter().enumerate() {
            let a = ops::linear(ops::layer_norm(x.retaped(), &blk.ln1), &blk.attn_in, false);
            let q = ops::linear(a.retaped(), &blk.q, false);
            let k = ops::linear(a.retaped(), &blk.k, false);
            let v = ops::linear(a, &blk.v, false);
            let att = ops::attention(q, k, v, (b, t, c.n_heads));
            let y = ops::linear(ops::linear(att, &blk.o, false), &blk.attn_out, false);
            let x1 = ops::residual(x, y, site(1 + 2 * l as u64));
            let f = ops::linear(
                ops::linear(ops::layer_norm(x1.retaped(), &blk.ln2), &blk.ff_up, true),
                &blk.ff_down,
                false,
            );
            x = ops::residual(x1, f, site(2 + 2 * l as u64));
        }
        ops::layer_norm(x, &self.ln_f)
    }

    /// Logits `[b*t, V]` of the body composed from plain dfdx ops (the reference that the fused
    /// path and the decode paths are checked against).
    pub fn forward_composed<Tp: Tape<f32, Cpu>>(
        &self,
        x: T2<Tp>,
        b: usize,
        t: usize,
        dropout: Option<&Dropout>,
    ) -> T2<Tp> {
        linear_composed(self.hidden_composed(x, b, t, dropout), &self.head)
    }

    /// [`Net::hidden`] composed from plain dfdx ops, with the same dropout masks.
    pub fn hidden_composed<Tp: Tape<f32, Cpu>>(
        &self,
        x: T2<Tp>,
        b: usize,
        t: usize,
        dropout: Option<&Dropout>,
    ) -> T2<Tp> {
        let c = &self.config;
        c.check_len(t);
        let mask = causal_mask(&self.dev, t);
        let drop = |x: T2<Tp>, k: u64| match dropout {
            Some(d) => d.apply_composed(&self.dev, x, k),
            None => x,
        };
        let mut x = drop(x, 0);
        for (l, blk) in self.blocks.iter().enumerate() {
            // a = attn_in(ln1(x))                                   [b*t, d_attn]
            let a = linear_composed(
                layer_norm_composed(x.retaped::<Tp>(), &blk.ln1),
                &blk.attn_in,
            );
            let q = linear_composed(a.retaped::<Tp>(), &blk.q);
            let k = linear_composed(a.retaped::<Tp>(), &blk.k);
            let v = linear_composed(a, &blk.v);
            let att = attention_composed(q, k, v, (b, t, c.n_heads), &mask);
            let y = drop(
                linear_composed(linear_composed(att, &blk.o), &blk.attn_out),
                1 + 2 * l as u64,
            );
            let x1 = x + y;
            // x = x + dropout(ff.down(relu(ff.up(ln2(x)))))
            let f = linear_composed(
                linear_composed(
                    layer_norm_composed(x1.retaped::<Tp>(), &blk.ln2),
                    &blk.ff_up,
                )
                .relu(),
                &blk.ff_down,
            );
            x = x1 + drop(f, 2 + 2 * l as u64);
        }
        layer_norm_composed(x, &self.ln_f)
    }
}

/// Causal mask `[t, t]`: 0 on and below the diagonal, -1e9 above.
pub fn causal_mask(dev: &Cpu, t: usize) -> T2 {
    let mask: Vec<f32> = (0..t * t)
        .map(|i| if i % t > i / t { -1e9 } else { 0.0 })
        .collect();
    dev.tensor_from_vec(mask, (t, t))
}

/// Causal multi-head attention composed from dfdx ops (the reference for [`ops::attention`]):
/// `q`, `k`, `v` `[b·t, h·dk]` → `[b·t, h·dk]`, `mask` from [`causal_mask`].
pub fn attention_composed<Tp: Tape<f32, Cpu>>(
    q: T2<Tp>,
    k: T2<Tp>,
    v: T2<Tp>,
    (b, t, h): (usize, usize, usize),
    mask: &T2,
) -> T2<Tp> {
    let dk = q.shape().1 / h;
    let scale = 1.0 / (dk as f32).sqrt();
    let heads = |x: T2<Tp>| {
        x.reshape_like(&(b, t, h, dk))
            .permute::<_, Axes4<0, 2, 1, 3>>()
    };
    let (q, k, v) = (heads(q), heads(k), heads(v));
    // softmax(q kᵀ / √dk + mask) v                                  [b, h, t, dk]
    let scores = q.matmul(k.permute::<_, Axes4<0, 1, 3, 2>>()) * scale
        + mask.clone().broadcast_like::<_, Axes2<0, 1>>(&(b, h, t, t));
    let att = scores.softmax::<Axis<3>>().matmul(v);
    // heads concatenated                                            [b*t, d_attn]
    att.permute::<_, Axes4<0, 2, 1, 3>>()
        .reshape_like(&(b * t, h * dk))
}

/// Logits `[len, V]` row-major of one sequence (`len` ≤ context, no dropout) through the dfdx
/// model; the reference that faster decode paths are checked against.
pub fn forward_logits(weights: &Weights, ids: &[u32]) -> Vec<f32> {
    let dev = Cpu::default();
    let net = Net::from_weights(weights, &dev);
    let x = net.embed(ids, ids.len());
    net.forward_composed(x, 1, ids.len(), None).as_vec()
}

/// Per-target negative log-likelihoods of `logits` `[n, V]` at `targets` (length n), as a
/// tensor `[n]` (on the tape of `logits`), computed as `-log_softmax(logits)[i, target_i]`
/// without a dense one-hot.
pub fn nll<Tp: Tape<f32, Cpu>>(logits: T2<Tp>, targets: &[u32]) -> T1<Tp> {
    let dev = logits.device().clone();
    let idx: Tensor<(usize,), usize, Cpu> = dev.tensor_from_vec(
        targets.iter().map(|&i| i as usize).collect(),
        (targets.len(),),
    );
    -logits.log_softmax::<Axis<1>>().select(idx)
}
