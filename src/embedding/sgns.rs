//! Skip-gram with negative sampling (word2vec) on token id documents.
//!
//! Parallelism is *deterministic sharding*: the documents are cut into `shards` contiguous parts
//! of about equal size, and training proceeds in rounds. In a round every shard trains on its next
//! slice of about `round_tokens` tokens with its own seeded random stream, on a private copy of the
//! weights (rayon runs the shards on however many threads there are); at the end of the round each
//! row of the shared weights moves by the mean of the changes of the shards that touched it, in
//! shard order (a row seen by one shard only takes its whole change, so rare words are not
//! diluted). No data races; the result depends on the seed and the `shards`/`round_tokens`
//! settings only, not on the number of threads.

use super::Embedding;
use crate::text::{TokenFile, EOS, PAD, SOS};
use rayon::prelude::*;

/// Training settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SgnsConfig {
    pub dim: usize,
    /// Maximum distance between centre and context word (a random smaller window per position).
    pub window: usize,
    /// Negative samples per positive pair (drawn from the unigram distribution to the 3/4).
    pub negatives: usize,
    pub epochs: usize,
    /// Initial learning rate, decayed linearly to `lr`·1e-4.
    pub lr: f32,
    /// Sub-sampling threshold for frequent words (word2vec's `sample`); 0 disables.
    pub subsample: f64,
    /// Independent parts trained in parallel between merges.
    pub shards: usize,
    /// Tokens per shard between merges.
    pub round_tokens: usize,
    /// Frame every document as `<sos> … <eos>` so that these tokens get vectors too.
    pub frame: bool,
    pub seed: u64,
}

impl Default for SgnsConfig {
    fn default() -> Self {
        SgnsConfig {
            dim: 100,
            window: 5,
            negatives: 5,
            epochs: 5,
            lr: 0.025,
            subsample: 1e-3,
            shards: 2,
            round_tokens: 10_000,
            frame: true,
            seed: 0,
        }
    }
}

/// splitmix64: a small, fast, seedable generator (stable across platforms and versions).
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64, a: u64, b: u64, c: u64) -> Self {
        let mut r = Rng(seed ^ 0x5851_F42D_4C95_7F2D);
        for x in [a, b, c] {
            r.0 ^= r.next().wrapping_add(x);
        }
        r
    }
    fn next(&mut self) -> u64 {
        let mut g = crate::seed::SplitMix64(self.0);
        let z = g.next_u64();
        self.0 = g.0;
        z
    }
    /// Uniform in 0..n (n < 2^32).
    fn below(&mut self, n: usize) -> usize {
        (((self.next() >> 32) * n as u64) >> 32) as usize
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
}

#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for ((a, x), y) in acc.iter_mut().zip(x).zip(y) {
            *a += x * y;
        }
    }
    let mut s = acc.iter().sum::<f32>();
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

#[inline]
fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

/// One shard's private weights and scratch space.
struct Local {
    w_in: Vec<f32>,
    w_out: Vec<f32>,
    t_in: Vec<bool>,
    t_out: Vec<bool>,
    neu: Vec<f32>,
    sent: Vec<u32>,
}

struct Shared<'a> {
    cfg: &'a SgnsConfig,
    docs: &'a TokenFile,
    keep: Vec<f32>,
    table: Vec<u32>,
    total_work: f64,
}

impl Shared<'_> {
    fn framed_len(&self, d: usize) -> usize {
        self.docs.doc(d).len() + if self.cfg.frame { 2 } else { 0 }
    }

    /// Trains on documents `range` with `rng`; `base` = tokens processed by all shards before
    /// this round (for the learning-rate schedule).
    fn train_slice(&self, l: &mut Local, range: std::ops::Range<usize>, rng: &mut Rng, base: f64) {
        let cfg = self.cfg;
        let dim = cfg.dim;
        let mut done = 0usize;
        for d in range {
            let alpha = cfg.lr
                * (1.0 - (base + (done * cfg.shards) as f64) / self.total_work).max(1e-4) as f32;
            let doc = self.docs.doc(d);
            done += self.framed_len(d);
            l.sent.clear();
            let it = cfg
                .frame
                .then_some(SOS)
                .into_iter()
                .chain(doc.iter().copied())
                .chain(cfg.frame.then_some(EOS));
            for id in it {
                let k = self.keep[id as usize];
                if k >= 1.0 || rng.unit() < k {
                    l.sent.push(id);
                }
            }
            let n = l.sent.len();
            for i in 0..n {
                let w = cfg.window - rng.below(cfg.window);
                let center = l.sent[i] as usize;
                let lo = i.saturating_sub(w);
                let hi = (i + w).min(n - 1);
                for j in lo..=hi {
                    if j == i {
                        continue;
                    }
                    let input = l.sent[j] as usize;
                    self.pair(l, input, center, alpha, rng, dim);
                }
            }
        }
    }

    #[inline]
    fn pair(&self, l: &mut Local, input: usize, pos: usize, alpha: f32, rng: &mut Rng, dim: usize) {
        l.neu.fill(0.0);
        let inp = &mut l.w_in[input * dim..(input + 1) * dim];
        for s in 0..=self.cfg.negatives {
            let (target, label) = if s == 0 {
                (pos, 1.0f32)
            } else {
                let t = self.table[rng.below(self.table.len())] as usize;
                if t == pos {
                    continue;
                }
                (t, 0.0)
            };
            let out = &mut l.w_out[target * dim..(target + 1) * dim];
            let f = dot(inp, out);
            let sig = if f > 8.0 {
                1.0
            } else if f < -8.0 {
                0.0
            } else {
                1.0 / (1.0 + (-f).exp())
            };
            let g = (label - sig) * alpha;
            axpy(&mut l.neu, g, out);
            axpy(out, g, inp);
            l.t_out[target] = true;
        }
        axpy(inp, 1.0, &l.neu);
        l.t_in[input] = true;
    }
}

/// Cuts `0..n_docs` into `parts` contiguous ranges of about equal weight.
fn split_by_weight(
    weights: &[usize],
    range: std::ops::Range<usize>,
    parts: usize,
) -> Vec<std::ops::Range<usize>> {
    let total: usize = weights[range.clone()].iter().sum();
    let mut out = Vec::with_capacity(parts);
    let mut start = range.start;
    let mut acc = 0usize;
    for p in 1..=parts {
        let goal = total * p / parts;
        let mut end = start;
        while end < range.end && (acc + weights[end] <= goal || p == parts) {
            acc += weights[end];
            end += 1;
        }
        out.push(start..end);
        start = end;
    }
    out
}

/// Trains input vectors for ids `0..vocab_size` on `docs`. Rows of ids that never occur keep
/// their small random initial values; `<pad>` is a zero row. `progress(done, total)` is called
/// after every round with token counts (epochs included).
pub fn train_sgns(
    docs: &TokenFile,
    vocab_size: usize,
    cfg: &SgnsConfig,
    progress: &mut dyn FnMut(u64, u64),
) -> Embedding {
    let dim = cfg.dim.max(1);
    let cfg = &SgnsConfig {
        dim,
        window: cfg.window.max(1),
        shards: cfg.shards.max(1),
        round_tokens: cfg.round_tokens.max(1),
        ..cfg.clone()
    };
    let v = vocab_size;
    // Counts over the (framed) training stream.
    let mut counts = vec![0u64; v];
    for d in docs.docs() {
        for &i in d {
            if let Some(c) = counts.get_mut(i as usize) {
                *c += 1;
            }
        }
    }
    if cfg.frame && v > EOS as usize {
        counts[SOS as usize] += docs.n_docs() as u64;
        counts[EOS as usize] += docs.n_docs() as u64;
    }
    if (PAD as usize) < v {
        counts[PAD as usize] = 0;
    }
    // Ids out of range would index past the matrices: map them to nothing by filtering below.
    let total: u64 = counts.iter().sum();
    let keep: Vec<f32> = counts
        .iter()
        .map(|&c| {
            if cfg.subsample <= 0.0 || c == 0 {
                1.0
            } else {
                let f = c as f64 / total as f64;
                (((f / cfg.subsample).sqrt() + 1.0) * cfg.subsample / f).min(1.0) as f32
            }
        })
        .collect();
    // Unigram^0.75 table for negatives.
    let pw: Vec<f64> = counts.iter().map(|&c| (c as f64).powf(0.75)).collect();
    let pw_sum: f64 = pw.iter().sum();
    let table_len = (1usize << 20).max(4 * v);
    let mut table = Vec::with_capacity(table_len);
    if pw_sum > 0.0 {
        let mut cum = 0.0;
        for (id, p) in pw.iter().enumerate() {
            cum += p / pw_sum;
            let upto = ((cum * table_len as f64).round() as usize).min(table_len);
            while table.len() < upto {
                table.push(id as u32);
            }
        }
        let last = pw.iter().rposition(|&p| p > 0.0).unwrap_or(0) as u32;
        while table.len() < table_len {
            table.push(last);
        }
    }
    // Initial weights: input uniform in ±0.5/dim, output zero.
    let mut init = Rng::new(cfg.seed, 0xE11B, 0, 0);
    let mut g_in: Vec<f32> = (0..v * dim)
        .map(|_| (init.unit() - 0.5) / dim as f32)
        .collect();
    let mut g_out = vec![0f32; v * dim];
    let has_vector: Vec<bool> = counts.iter().map(|&c| c > 0).collect();
    let n_docs = docs.n_docs();
    // Documents with ids outside the vocabulary are not trainable; guard by clamping reads.
    let bad = docs.ids.iter().any(|&i| i as usize >= v);
    if total == 0 || n_docs == 0 || cfg.epochs == 0 || bad {
        zero_pad(&mut g_in, dim, v);
        return Embedding {
            dim,
            weights: g_in,
            has_vector,
        };
    }
    let sh = Shared {
        cfg,
        docs,
        keep,
        table,
        total_work: (total * cfg.epochs as u64) as f64,
    };
    let weights: Vec<usize> = (0..n_docs).map(|d| sh.framed_len(d)).collect();
    let shard_ranges = split_by_weight(&weights, 0..n_docs, cfg.shards);
    let rounds = (total as usize)
        .div_ceil(cfg.shards * cfg.round_tokens)
        .max(1);
    let slices: Vec<Vec<std::ops::Range<usize>>> = shard_ranges
        .iter()
        .map(|r| split_by_weight(&weights, r.clone(), rounds))
        .collect();
    let slice_tokens = |s: usize, r: usize| -> usize { weights[slices[s][r].clone()].iter().sum() };
    let mut locals: Vec<Local> = (0..cfg.shards)
        .map(|_| Local {
            w_in: g_in.clone(),
            w_out: g_out.clone(),
            t_in: vec![false; v],
            t_out: vec![false; v],
            neu: vec![0.0; dim],
            sent: Vec::new(),
        })
        .collect();
    let mut done = 0u64;
    #[allow(clippy::needless_range_loop)] // `r` also seeds the shards' random streams
    for epoch in 0..cfg.epochs {
        for r in 0..rounds {
            let base = done as f64;
            locals.par_iter_mut().enumerate().for_each(|(s, l)| {
                let mut rng = Rng::new(cfg.seed, epoch as u64, s as u64, r as u64);
                sh.train_slice(l, slices[s][r].clone(), &mut rng, base);
            });
            merge(&mut g_in, &mut locals, dim, |l| (&l.w_in, &l.t_in));
            merge(&mut g_out, &mut locals, dim, |l| (&l.w_out, &l.t_out));
            sync(&g_in, &g_out, &mut locals, dim);
            done += (0..cfg.shards)
                .map(|s| slice_tokens(s, r) as u64)
                .sum::<u64>();
            progress(done, total * cfg.epochs as u64);
        }
    }
    zero_pad(&mut g_in, dim, v);
    Embedding {
        dim,
        weights: g_in,
        has_vector: has_vector
            .iter()
            .enumerate()
            .map(|(i, &b)| b && i != PAD as usize)
            .collect(),
    }
}

fn zero_pad(w: &mut [f32], dim: usize, v: usize) {
    let p = PAD as usize;
    if p < v {
        w[p * dim..(p + 1) * dim].fill(0.0);
    }
}

/// Adds the mean change of every row over the shards that touched it to the shared matrix, in
/// shard order (a row only one shard touched gets that shard's full change).
fn merge(
    global: &mut [f32],
    locals: &mut [Local],
    dim: usize,
    pick: impl Fn(&Local) -> (&Vec<f32>, &Vec<bool>) + Sync,
) {
    let locals = &*locals;
    global
        .par_chunks_mut(dim)
        .enumerate()
        .with_min_len(64)
        .for_each(|(r, row)| {
            let n = locals.iter().filter(|l| pick(l).1[r]).count();
            if n == 0 {
                return;
            }
            let scale = 1.0 / n as f32;
            let old = row.to_vec();
            for l in locals {
                let (w, t) = pick(l);
                if t[r] {
                    let lr = &w[r * dim..(r + 1) * dim];
                    for ((x, l), o) in row.iter_mut().zip(lr).zip(&old) {
                        *x += (l - o) * scale;
                    }
                }
            }
        });
}

/// Copies the merged rows back into every shard and clears the touched marks.
fn sync(g_in: &[f32], g_out: &[f32], locals: &mut [Local], dim: usize) {
    let v = g_in.len() / dim;
    let union_in: Vec<bool> = (0..v).map(|r| locals.iter().any(|l| l.t_in[r])).collect();
    let union_out: Vec<bool> = (0..v).map(|r| locals.iter().any(|l| l.t_out[r])).collect();
    locals.par_iter_mut().for_each(|l| {
        for r in 0..v {
            if union_in[r] {
                l.w_in[r * dim..(r + 1) * dim].copy_from_slice(&g_in[r * dim..(r + 1) * dim]);
            }
            if union_out[r] {
                l.w_out[r * dim..(r + 1) * dim].copy_from_slice(&g_out[r * dim..(r + 1) * dim]);
            }
        }
        l.t_in.fill(false);
        l.t_out.fill(false);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_by_weight_covers_everything_in_order() {
        let w = vec![5, 1, 1, 1, 5, 2, 2, 3];
        let parts = split_by_weight(&w, 0..w.len(), 3);
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0].start, 0);
        assert_eq!(parts[2].end, w.len());
        for p in parts.windows(2) {
            assert_eq!(p[0].end, p[1].start);
        }
        let more = split_by_weight(&w, 2..5, 10);
        assert_eq!(more.iter().map(|r| r.len()).sum::<usize>(), 3);
    }

    #[test]
    fn rng_below_in_range() {
        let mut r = Rng::new(1, 2, 3, 4);
        for _ in 0..1000 {
            assert!(r.below(7) < 7);
            let u = r.unit();
            assert!((0.0..1.0).contains(&u));
        }
    }
}
