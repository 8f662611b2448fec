//! The full (uncached) forward pass over a [`Model`]: packed batches of sequences through the
//! same inference block as the cached decoder, with attention within each sequence's sliding
//! window; optional attention weights (the probabilities the attention kernel computes),
//! logits for every or only the last position, and windowed NLL scoring.

use super::kernels::{attend_row, log_sum_exp};
use super::model::{Model, Scratch};
use crate::model::Weights;
use rayon::prelude::*;

/// Rows of final hidden states per call of the output layer (its packed kernel's sweet spot).
const HEAD_ROWS: usize = 64;

/// One sequence of a packed batch: its tokens and the absolute position of its first token.
#[derive(Debug, Clone, Copy)]
pub struct Segment<'a> {
    pub tokens: &'a [u32],
    pub pos0: usize,
}

/// Attention weights of one sequence: `[layer][head]`, each an `S × S` row-major matrix
/// (row = query, column = key; zero where masked).
pub type Attention = Vec<Vec<Vec<f32>>>;

/// How many trailing tokens determine the last position's output under the sliding-window
/// mask: `n_layers · (context − 1) + 1`.
pub fn receptive_field(w: &Weights) -> usize {
    w.config.n_layers * (w.config.context - 1) + 1
}

/// Runs every block over the packed segments and returns the final hidden states after
/// `ln_f`, `[rows, d_model]` (rows = total tokens, segments in order). Each query attends to
/// itself and at most `context − 1` earlier tokens of its own segment. When `attn` is given
/// (only with one segment) the attention weights are written into it.
pub fn final_hidden(
    w: &Weights,
    segs: &[Segment],
    threads: usize,
    attn: Option<&mut Attention>,
) -> Vec<f32> {
    final_hidden_with(&Model::new(w, threads), segs, attn)
}

/// [`final_hidden`] over an already packed model.
pub fn final_hidden_with(
    m: &Model,
    segs: &[Segment],
    mut attn: Option<&mut Attention>,
) -> Vec<f32> {
    let c = m.config();
    let (nh, dk, da, ctx) = (c.n_heads, c.d_k(), c.d_attn, c.context);
    let rows: usize = segs.iter().map(|s| s.tokens.len()).sum();
    let mut ids = Vec::with_capacity(rows);
    let mut pos = Vec::with_capacity(rows);
    for s in segs {
        ids.extend_from_slice(s.tokens);
        pos.extend((0..s.tokens.len()).map(|i| s.pos0 + i));
    }
    // h = tok_emb[ids] + PE[pos]                                            [rows, d_model]
    let mut h = vec![0.0f32; rows * c.d_model];
    m.embed(&ids, &pos, &mut h);
    let mut scratch = Scratch::new(c, rows);
    if let Some(at) = attn.as_deref_mut() {
        assert_eq!(
            segs.len(),
            1,
            "attention weights are returned for one sequence"
        );
        *at = vec![vec![vec![0.0; rows * rows]; nh]; c.n_layers];
    }
    let scale = 1.0 / (dk as f32).sqrt();
    let parallel = attn.is_none() && segs.len() > 1 && m.threads() > 1;
    for l in 0..c.n_layers {
        let maps = attn.as_deref_mut().map(|at| &mut at[l]);
        m.block(l, &mut h, rows, &mut scratch, |q, k, v, o| {
            // Attention within each segment, causal over a sliding window of `ctx` keys: row
            // i of a segment sees its rows lo..=i.
            let segment = |r0: usize,
                           n: usize,
                           o: &mut [f32],
                           scores: &mut [f32],
                           mut maps: Option<&mut Vec<Vec<f32>>>| {
                for i in 0..n {
                    let lo = (i + 1).saturating_sub(ctx);
                    let n_keys = i + 1 - lo;
                    let qr = &q[(r0 + i) * da..(r0 + i + 1) * da];
                    let key = |j: usize| &k[(r0 + lo + j) * da..(r0 + lo + j + 1) * da];
                    let val = |j: usize| &v[(r0 + lo + j) * da..(r0 + lo + j + 1) * da];
                    let out = &mut o[i * da..(i + 1) * da];
                    attend_row(qr, (nh, dk), n_keys, scale, key, val, scores, out);
                    // The probabilities the kernel left in `scores`, `[head][key]`.
                    if let Some(maps) = maps.as_deref_mut() {
                        for (hd, map) in maps.iter_mut().enumerate() {
                            map[i * n + lo..i * n + i + 1]
                                .copy_from_slice(&scores[hd * n_keys..(hd + 1) * n_keys]);
                        }
                    }
                }
            };
            let mut parts: Vec<(usize, usize, &mut [f32])> = Vec::with_capacity(segs.len());
            let (mut rest, mut r0) = (o, 0);
            for s in segs {
                let n = s.tokens.len();
                let (head, tail) = rest.split_at_mut(n * da);
                parts.push((r0, n, head));
                rest = tail;
                r0 += n;
            }
            if parallel {
                parts.into_par_iter().for_each(|(r0, n, o)| {
                    let mut scores = vec![0.0f32; nh * ctx];
                    segment(r0, n, o, &mut scores, None);
                });
            } else {
                let mut scores = vec![0.0f32; nh * ctx];
                let mut maps = maps;
                for (r0, n, o) in parts {
                    segment(r0, n, o, &mut scores, maps.as_deref_mut());
                }
            }
        });
    }
    // ln_f(h)                                                               [rows, d_model]
    let mut out = vec![0.0f32; rows * c.d_model];
    m.final_norm(&h, rows, &mut out);
    out
}

/// Logits `[S, V]` for every position of one sequence starting at absolute position `pos0`.
pub fn forward(w: &Weights, tokens: &[u32], pos0: usize, threads: usize) -> Vec<f32> {
    let m = Model::new(w, threads);
    let hid = final_hidden_with(&m, &[Segment { tokens, pos0 }], None);
    head(&m, &hid, tokens.len())
}

/// Logits `[S, V]` and the attention weights of every layer and head for one sequence.
pub fn forward_with_attention(
    w: &Weights,
    tokens: &[u32],
    pos0: usize,
    threads: usize,
) -> (Vec<f32>, Attention) {
    let m = Model::new(w, threads);
    let mut at = Vec::new();
    let hid = final_hidden_with(&m, &[Segment { tokens, pos0 }], Some(&mut at));
    (head(&m, &hid, tokens.len()), at)
}

/// Logits `[rows, V]` of final hidden states, in blocks of rows.
fn head(m: &Model, hid: &[f32], rows: usize) -> Vec<f32> {
    let (v, dm) = (m.config().vocab_size, m.config().d_model);
    let mut logits = vec![0.0; rows * v];
    for (x, y) in hid[..rows * dm]
        .chunks(HEAD_ROWS * dm)
        .zip(logits.chunks_mut(HEAD_ROWS * v))
    {
        m.head(x, x.len() / dm, y);
    }
    logits
}

/// Uncached next-token logits `[B, V]` for each full sequence (tokens from position 0): only
/// the trailing [`receptive_field`] tokens are recomputed, at their absolute positions, which
/// gives exactly what the cached decoder computes.
pub fn last_logits(w: &Weights, seqs: &[&[u32]], threads: usize) -> Vec<f32> {
    last_logits_with(&Model::new(w, threads), seqs)
}

/// [`last_logits`] over an already packed model.
pub fn last_logits_with(m: &Model, seqs: &[&[u32]]) -> Vec<f32> {
    let rf = receptive_field(m.weights());
    let segs: Vec<Segment> = seqs
        .iter()
        .map(|s| {
            let start = s.len().saturating_sub(rf);
            Segment {
                tokens: &s[start..],
                pos0: start,
            }
        })
        .collect();
    let hid = final_hidden_with(m, &segs, None);
    let dm = m.config().d_model;
    let mut last = Vec::with_capacity(seqs.len() * dm);
    let mut r = 0;
    for s in &segs {
        r += s.tokens.len();
        last.extend_from_slice(&hid[(r - 1) * dm..r * dm]);
    }
    head(m, &last, seqs.len())
}

/// Start offsets of the scoring windows of a sequence of `n` tokens: windows of `context`
/// tokens sharing one token (starts 0, context−1, 2·(context−1), …) until the end is covered.
pub fn window_starts(n: usize, context: usize) -> Vec<usize> {
    let step = context - 1;
    let mut out = Vec::new();
    let mut s = 0;
    while s + 1 < n {
        out.push(s);
        s += step;
    }
    out
}

/// Negative log-likelihood of the targets of windowed scoring, summed in f64.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct NllSum {
    /// Number of predicted tokens.
    pub tokens: usize,
    /// Total NLL (nats).
    pub nll: f64,
}

impl NllSum {
    pub fn add(&mut self, o: NllSum) {
        self.tokens += o.tokens;
        self.nll += o.nll;
    }
    pub fn mean(&self) -> f64 {
        self.nll / self.tokens.max(1) as f64
    }
    pub fn perplexity(&self) -> f64 {
        self.mean().exp()
    }
}

/// Rows (window positions) [`windowed_nll`] runs through the model at once.
const MAX_ROWS: usize = 2048;

/// The number of `context`-token sequences whose rows [`windowed_nll`] holds at once: the
/// batch its memory is estimated for (`memory::Workload::scoring`).
pub fn scoring_batch(context: usize) -> usize {
    MAX_ROWS.max(context).div_ceil(context.max(1))
}

/// Windowed NLL of several sequences (already framed `<sos> … <eos>` by the caller). Each
/// window is an independent model input at positions 0…: the model reads all but the last
/// window token and predicts the next one at each position, so every token after the first
/// is predicted exactly once. Only targets at sequence index `>= count_from[i]` are counted
/// (use 1 for all). Returns one sum per sequence.
pub fn windowed_nll(
    w: &Weights,
    seqs: &[&[u32]],
    count_from: &[usize],
    threads: usize,
) -> Vec<NllSum> {
    let m = Model::new(w, threads);
    let ctx = w.config.context;
    // (sequence index, window start, window length)
    let mut wins: Vec<(usize, usize, usize)> = Vec::new();
    for (i, s) in seqs.iter().enumerate() {
        for st in window_starts(s.len(), ctx) {
            wins.push((i, st, (s.len() - st).min(ctx)));
        }
    }
    let mut out = vec![NllSum::default(); seqs.len()];
    let v = w.config.vocab_size;
    let dm = w.config.d_model;
    let mut logits = vec![0.0f32; HEAD_ROWS * v];
    let mut g = 0;
    while g < wins.len() {
        let mut end = g;
        let mut rows = 0;
        while end < wins.len() && (end == g || rows + wins[end].2 - 1 <= MAX_ROWS) {
            rows += wins[end].2 - 1;
            end += 1;
        }
        let group = &wins[g..end];
        let segs: Vec<Segment> = group
            .iter()
            .map(|&(i, st, len)| Segment {
                tokens: &seqs[i][st..st + len - 1],
                pos0: 0,
            })
            .collect();
        let hid = final_hidden_with(&m, &segs, None);
        // Targets per row: (sequence, target index in sequence)
        let mut targets: Vec<(usize, usize)> = Vec::with_capacity(rows);
        for &(i, st, len) in group {
            targets.extend((1..len).map(|t| (i, st + t)));
        }
        for b0 in (0..rows).step_by(HEAD_ROWS) {
            let nb = HEAD_ROWS.min(rows - b0);
            m.head(&hid[b0 * dm..(b0 + nb) * dm], nb, &mut logits);
            for r in 0..nb {
                let (i, t) = targets[b0 + r];
                if t < count_from[i] {
                    continue;
                }
                let row = &logits[r * v..(r + 1) * v];
                let tgt = seqs[i][t] as usize;
                out[i].tokens += 1;
                out[i].nll += log_sum_exp(row) - row[tgt] as f64;
            }
        }
        g = end;
    }
    out
}

/// Frames a document `<sos> doc <eos>`.
pub fn frame(doc: &[u32]) -> Vec<u32> {
    let mut v = Vec::with_capacity(doc.len() + 2);
    v.push(crate::text::SOS);
    v.extend_from_slice(doc);
    v.push(crate::text::EOS);
    v
}

/// Windowed NLL over documents (each framed `<sos> … <eos>` here), summed over all of them;
/// `progress` is called with the number of documents done after each batch.
pub fn score_documents<'a>(
    w: &Weights,
    docs: impl IntoIterator<Item = &'a [u32]>,
    threads: usize,
    mut progress: impl FnMut(usize),
) -> NllSum {
    let mut total = NllSum::default();
    let mut batch: Vec<Vec<u32>> = Vec::new();
    let mut batch_tokens = 0;
    let mut flush = |batch: &mut Vec<Vec<u32>>, total: &mut NllSum| {
        if batch.is_empty() {
            return;
        }
        let refs: Vec<&[u32]> = batch.iter().map(|d| d.as_slice()).collect();
        let ones = vec![1; refs.len()];
        for s in windowed_nll(w, &refs, &ones, threads) {
            total.add(s);
        }
        progress(batch.len());
        batch.clear();
    };
    for d in docs {
        let f = frame(d);
        batch_tokens += f.len();
        batch.push(f);
        if batch_tokens >= 2048 {
            flush(&mut batch, &mut total);
            batch_tokens = 0;
        }
    }
    flush(&mut batch, &mut total);
    total
}
