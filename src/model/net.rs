//! The transformer of DESIGN.md section 5 on runtime-shaped dfdx tensors, for training: the
//! parameters as tape tensors ([`Net`], laid out by [`crate::model::weights::Block`] and the
//! contract visitor), the embedding, and the body through the fused tape ops of
//! [`super::ops`], top to bottom, with the shape of every step. Conversion to and from
//! [`Weights`] and gradient extraction follow the contract order.

use super::config::{position_encoding, ModelConfig};
use super::ops::{self, Act, DropMask, Lin, Ln, T1, T2};
use super::weights::{visit, visit_mut, Block, Param, Weights};
use crate::seed::mix;
use crate::simd::bf16::Products;
use crate::simd::Precision;
use dfdx::prelude::*;
use std::sync::Arc;

/// The whole model on the dfdx CPU device.
#[derive(Clone, Debug)]
pub struct Net {
    pub config: ModelConfig,
    pub dev: Cpu,
    /// `[V, d_model]`.
    pub tok_emb: T2,
    pub blocks: Vec<Block<Lin, Ln>>,
    pub ln_f: Ln,
    pub head: Lin,
    /// Sinusoidal table `[context, d_model]` (host copy).
    pe: Vec<f32>,
    /// How the matrix products run.
    pub products: Products,
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
}

impl Net {
    /// Uploads weights to a dfdx CPU device (f32 products).
    pub fn from_weights(w: &Weights, dev: &Cpu) -> Self {
        Net::from_weights_in(w, dev, Precision::F32)
    }

    /// Uploads weights to a dfdx CPU device; the matrix products run in `precision` (with this
    /// CPU's kernel).
    pub fn from_weights_in(w: &Weights, dev: &Cpu, precision: Precision) -> Self {
        Net::from_weights_with(w, dev, Products::of(precision))
    }

    /// Uploads weights to a dfdx CPU device; the matrix products run as `products` says.
    pub fn from_weights_with(w: &Weights, dev: &Cpu, products: Products) -> Self {
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
                .map(|b| b.map(|l| Lin::new(dev, l, products), |l| Ln::new(dev, l)))
                .collect(),
            ln_f: Ln::new(dev, &w.ln_f),
            head: Lin::new(dev, &w.head, products),
            pe,
            products,
        }
    }

    /// The parameters as plain weights.
    pub fn to_weights(&self) -> Weights {
        let mut w = Weights::zeros(&self.config);
        for (slot, data) in w
            .slots_mut()
            .into_iter()
            .zip(self.tensors(|t| t.as_vec(), |t| t.as_vec()))
        {
            *slot = data;
        }
        w
    }

    /// Applies `f1` to every 1-D and `f2` to every 2-D parameter tensor, in contract order.
    fn tensors<R>(&self, f1: impl Fn(&T1) -> R, f2: impl Fn(&T2) -> R) -> Vec<R> {
        let mut out = Vec::new();
        visit(
            &self.tok_emb,
            &self.blocks,
            &self.ln_f,
            &self.head,
            |_, p| match p {
                Param::Emb(e) => out.push(f2(e)),
                Param::Lin(l) => {
                    out.push(f2(&l.w));
                    out.push(f1(&l.b));
                }
                Param::Ln(l) => {
                    out.push(f1(&l.g));
                    out.push(f1(&l.b));
                }
            },
        );
        out
    }

    /// Overwrites every parameter from `w` (same config), e.g. after an optimiser step.
    pub fn load_weights(&mut self, w: &Weights) {
        let named = w.named();
        let mut it = named.iter().map(|(_, _, d)| *d);
        let mut next = || it.next().expect("tensor count matches the contract");
        let Net {
            tok_emb,
            blocks,
            ln_f,
            head,
            ..
        } = self;
        visit_mut(tok_emb, blocks, ln_f, head, |_, p| match p {
            Param::Emb(e) => e.copy_from(next()),
            Param::Lin(l) => l.set(next(), next()),
            Param::Ln(l) => l.set(next(), next()),
        });
    }

    /// Gradients of every parameter in contract order; `None` for `tok_emb` when it was not
    /// traced (frozen embeddings).
    pub fn grads(&self, grads: &mut Gradients<f32, Cpu>, with_emb: bool) -> Vec<Option<Vec<f32>>> {
        enum Key {
            One(T1),
            Two(T2),
        }
        let keys = self.tensors(|t| Key::One(t.clone()), |t| Key::Two(t.clone()));
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

    /// The body of the model through the fused tape ops: `x` `[b·t, d_model]` (embedded,
    /// positions added) → `ln_f(h)` `[b·t, d_model]`. `dropout` is applied after the embedding
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
        // x = dropout(tok_emb[ids] + PE)                                      [b·t, d_model]
        let mut x = match site(0) {
            Some(m) => ops::dropout(x, m),
            None => x,
        };
        for (l, blk) in self.blocks.iter().enumerate() {
            // a = attn_in(ln1(x))                                             [b·t, d_attn]
            let a = ops::linear(ops::layer_norm(x.retaped(), &blk.ln1), &blk.attn_in, false);
            // q, k, v = attn.q(a), attn.k(a), attn.v(a)                 each [b·t, d_attn]
            let q = ops::linear(a.retaped(), &blk.q, false);
            let k = ops::linear(a.retaped(), &blk.k, false);
            let v = ops::linear(a, &blk.v, false);
            // softmax(q kᵀ/√d_k + causal mask) v per head, heads concatenated [b·t, d_attn]
            let att = ops::attention(q, k, v, (b, t, c.n_heads));
            // y = attn_out(attn.o(att))                                       [b·t, d_model]
            let y = ops::linear(ops::linear(att, &blk.o, false), &blk.attn_out, false);
            // x1 = x + dropout(y)                                             [b·t, d_model]
            let x1 = ops::residual(x, y, site(1 + 2 * l as u64));
            // f = ff.down(relu(ff.up(ln2(x1))))              [b·t, d_ff] → [b·t, d_model]
            let f = ops::linear(
                ops::linear(ops::layer_norm(x1.retaped(), &blk.ln2), &blk.ff_up, true),
                &blk.ff_down,
                false,
            );
            // x = x1 + dropout(f)                                             [b·t, d_model]
            x = ops::residual(x1, f, site(2 + 2 * l as u64));
        }
        // ln_f(x)                                                             [b·t, d_model]
        ops::layer_norm(x, &self.ln_f)
    }
}
