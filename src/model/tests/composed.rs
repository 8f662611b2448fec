//! The model composed from plain dfdx ops (matmuls, `normalize`, `softmax`, `log_softmax`): the
//! slow reference that the fused training ops and the decode paths are checked against. Test
//! code only.

use crate::model::batches::PAD;
use crate::model::config::LN_EPS;
use crate::model::net::{Dropout, Net};
use crate::model::ops::{Lin, Ln, T1, T2};
use crate::model::Weights;
use dfdx::prelude::*;

/// `x·Wᵀ + b` for `x` `[n, in]` (the reference for `ops::linear`).
pub fn linear_composed<Tp: Tape<f32, Cpu>>(x: T2<Tp>, l: &Lin) -> T2<Tp> {
    let n = x.shape().0;
    let out = l.w.shape().0;
    let y = x.matmul(l.w.retaped::<Tp>().permute::<_, Axes2<1, 0>>());
    y + l.b.retaped::<Tp>().broadcast_like::<_, Axis<0>>(&(n, out))
}

/// LayerNorm over the last axis of `x` `[n, d]` (the reference for `ops::layer_norm`).
pub fn layer_norm_composed<Tp: Tape<f32, Cpu>>(x: T2<Tp>, l: &Ln) -> T2<Tp> {
    let shape = *x.shape();
    let y = x.normalize::<Axis<1>>(f64::from(LN_EPS));
    y * l.g.retaped::<Tp>().broadcast_like::<_, Axis<0>>(&shape)
        + l.b.retaped::<Tp>().broadcast_like::<_, Axis<0>>(&shape)
}

/// `x` times the dropout mask of site `k` as a dfdx product.
fn drop_composed<Tp: Tape<f32, Cpu>>(d: Option<&Dropout>, dev: &Cpu, x: T2<Tp>, k: u64) -> T2<Tp> {
    match d.and_then(|d| d.site(k)) {
        None => x,
        Some(m) => {
            let shape = *x.shape();
            x * dev.tensor_from_vec(m.to_vec(shape.0 * shape.1), shape)
        }
    }
}

/// Causal mask `[t, t]`: 0 on and below the diagonal, -1e9 above.
pub fn causal_mask(dev: &Cpu, t: usize) -> T2 {
    let mask: Vec<f32> = (0..t * t)
        .map(|i| if i % t > i / t { -1e9 } else { 0.0 })
        .collect();
    dev.tensor_from_vec(mask, (t, t))
}

/// Causal multi-head attention (the reference for `ops::attention`): `q`, `k`, `v`
/// `[b·t, h·dk]` → `[b·t, h·dk]`, `mask` from [`causal_mask`].
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

/// `Net::hidden` composed from plain dfdx ops, with the same dropout masks.
pub fn hidden_composed<Tp: Tape<f32, Cpu>>(
    net: &Net,
    x: T2<Tp>,
    b: usize,
    t: usize,
    dropout: Option<&Dropout>,
) -> T2<Tp> {
    let c = &net.config;
    c.check_len(t);
    let dev = &net.dev;
    let mask = causal_mask(dev, t);
    let mut x = drop_composed(dropout, dev, x, 0);
    for (l, blk) in net.blocks.iter().enumerate() {
        let a = linear_composed(
            layer_norm_composed(x.retaped::<Tp>(), &blk.ln1),
            &blk.attn_in,
        );
        let q = linear_composed(a.retaped::<Tp>(), &blk.q);
        let k = linear_composed(a.retaped::<Tp>(), &blk.k);
        let v = linear_composed(a, &blk.v);
        let att = attention_composed(q, k, v, (b, t, c.n_heads), &mask);
        let y = linear_composed(linear_composed(att, &blk.o), &blk.attn_out);
        let x1 = x + drop_composed(dropout, dev, y, 1 + 2 * l as u64);
        let f = linear_composed(
            linear_composed(
                layer_norm_composed(x1.retaped::<Tp>(), &blk.ln2),
                &blk.ff_up,
            )
            .relu(),
            &blk.ff_down,
        );
        x = x1 + drop_composed(dropout, dev, f, 2 + 2 * l as u64);
    }
    layer_norm_composed(x, &net.ln_f)
}

/// Logits `[b·t, V]` through the composed model.
pub fn forward_composed<Tp: Tape<f32, Cpu>>(
    net: &Net,
    x: T2<Tp>,
    b: usize,
    t: usize,
    dropout: Option<&Dropout>,
) -> T2<Tp> {
    linear_composed(hidden_composed(net, x, b, t, dropout), &net.head)
}

/// Logits `[len, V]` row-major of one sequence (`len` ≤ context, no dropout) through the
/// composed model; the reference the decode paths are checked against.
pub fn forward_logits(weights: &Weights, ids: &[u32]) -> Vec<f32> {
    let net = Net::from_weights(weights, &Cpu::default());
    let x = net.embed_const(ids, ids.len()).t;
    forward_composed(&net, x, 1, ids.len(), None).as_vec()
}

/// Per-target negative log-likelihoods of `logits` `[n, V]` at `targets`, as a tensor `[n]` on
/// the tape of `logits`: `-log_softmax(logits)[i, target_i]` without a dense one-hot.
pub fn nll<Tp: Tape<f32, Cpu>>(logits: T2<Tp>, targets: &[u32]) -> T1<Tp> {
    let dev = logits.device().clone();
    let idx: Tensor<(usize,), usize, Cpu> = dev.tensor_from_vec(
        targets.iter().map(|&i| i as usize).collect(),
        (targets.len(),),
    );
    -logits.log_softmax::<Axis<1>>().select(idx)
}

/// 1/(non-pad count) for non-pad targets, 0 for pads.
pub fn pad_weights(targets: &[u32]) -> Vec<f32> {
    let count = targets.iter().filter(|&&x| x != PAD).count().max(1);
    targets
        .iter()
        .map(|&x| if x == PAD { 0.0 } else { 1.0 / count as f32 })
        .collect()
}

/// `train::loss_and_grads` through the composed model.
pub fn loss_and_grads_composed(
    net: &Net,
    inputs: &[u32],
    targets: &[u32],
    t: usize,
    train_emb: bool,
    dropout: Option<&Dropout>,
) -> (f32, Vec<Option<Vec<f32>>>) {
    let b = inputs.len() / t;
    let x = net.embed_traced(inputs, t, train_emb).t;
    let logits = forward_composed(net, x, b, t, dropout);
    let w = net
        .dev
        .tensor_from_vec(pad_weights(targets), (targets.len(),));
    let loss = (nll(logits, targets) * w).sum();
    let value = loss.array();
    let mut grads = loss.backward();
    (value, net.grads(&mut grads, train_emb))
}

/// The loss alone (no tape, no dropout) through the composed model.
pub fn batch_loss(net: &Net, inputs: &[u32], targets: &[u32], t: usize) -> f32 {
    let b = inputs.len() / t;
    let x = net.embed_const(inputs, t).t;
    let per = nll(forward_composed(net, x, b, t, None), targets).as_vec();
    per.iter()
        .zip(pad_weights(targets))
        .map(|(a, b)| a * b)
        .sum()
}
