//! The full (uncached) forward pass over [`Weights`]: packed batches of sequences, optional
//! attention weights, logits for every or only the last position, and windowed NLL scoring.

use super::kernels::{add_assign, embed, layer_norm, linear, log_sum_exp, relu};
use crate::model::Weights;

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
    mut attn: Option<&mut Attention>,
) -> Vec<f32> {
    let c = &w.config;
    let (dm, da, dff, nh, dk, ctx) = (c.d_model, c.d_attn, c.d_ff, c.n_heads, c.d_k(), c.context);
    let rows: usize = segs.iter().map(|s| s.tokens.len()).sum();
    let mut ids = Vec::with_capacity(rows);
    let mut pos = Vec::with_capacity(rows);
    for s in segs {
        ids.extend_from_slice(s.tokens);
        pos.extend((0..s.tokens.len()).map(|i| s.pos0 + i));
    }
    let mut h = vec![0.0f32; rows * dm];
    embed(&w.tok_emb, dm, &ids, &pos, &mut h);
    let mut t1 = vec![0.0f32; rows * dm];
    let mut a = vec![0.0f32; rows * da];
    let mut q = vec![0.0f32; rows * da];
    let mut k = vec![0.0f32; rows * da];
    let mut v = vec![0.0f32; rows * da];
    let mut o = vec![0.0f32; rows * da];
    let mut t2 = vec![0.0f32; rows * da];
    let mut f = vec![0.0f32; rows * dff];
    let mut scores = vec![0.0f32; ctx];
    let scale = 1.0 / (dk as f32).sqrt();
    if let Some(at) = attn.as_deref_mut() {
        assert_eq!(
            segs.len(),
            1,
            "attention weights are returned for one sequence"
        );
        *at = vec![vec![vec![0.0; rows * rows]; nh]; c.n_layers];
    }
    for (l, b) in w.blocks.iter().enumerate() {
        layer_norm(&h, rows, &b.ln1, &mut t1);
        linear(&t1, rows, &b.attn_in, &mut a, threads);
        linear(&a, rows, &b.q, &mut q, threads);
        linear(&a, rows, &b.k, &mut k, threads);
        linear(&a, rows, &b.v, &mut v, threads);
        // Attention per segment and head, causal within a sliding window of `ctx` keys.
        let mut r0 = 0;
        for s in segs {
            let n = s.tokens.len();
            for hd in 0..nh {
                let off = hd * dk;
                for i in 0..n {
                    let lo = (i + 1).saturating_sub(ctx);
                    let qi = &q[(r0 + i) * da + off..(r0 + i) * da + off + dk];
                    let mut m = f32::NEG_INFINITY;
                    for j in lo..=i {
                        let kj = &k[(r0 + j) * da + off..(r0 + j) * da + off + dk];
                        let sc = super::kernels::dot(qi, kj) * scale;
                        scores[j - lo] = sc;
                        m = m.max(sc);
                    }
                    let mut sum = 0.0f32;
                    for sc in &mut scores[..=i - lo] {
                        *sc = (*sc - m).exp();
                        sum += *sc;
                    }
                    let out = &mut o[(r0 + i) * da + off..(r0 + i) * da + off + dk];
                    out.fill(0.0);
                    for j in lo..=i {
                        let p = scores[j - lo] / sum;
                        let vj = &v[(r0 + j) * da + off..(r0 + j) * da + off + dk];
                        for (x, y) in out.iter_mut().zip(vj) {
                            *x += p * y;
                        }
                        if let Some(at) = attn.as_deref_mut() {
                            at[l][hd][i * n + j] = p;
                        }
                    }
                }
            }
            r0 += n;
        }
        linear(&o, rows, &b.o, &mut t2, threads);
        linear(&t2, rows, &b.attn_out, &mut t1, threads);
        add_assign(&mut h, &t1);
        layer_norm(&h, rows, &b.ln2, &mut t1);
        linear(&t1, rows, &b.ff_up, &mut f, threads);
        relu(&mut f);
        linear(&f, rows, &b.ff_down, &mut t1, threads);
        add_assign(&mut h, &t1);
    }
    layer_norm(&h, rows, &w.ln_f, &mut t1);
    t1
}

/// Logits `[S, V]` for every position of one sequence starting at absolute position `pos0`.
pub fn forward(w: &Weights, tokens: &[u32], pos0: usize, threads: usize) -> Vec<f32> {
    let hid = final_hidden(w, &[Segment { tokens, pos0 }], threads, None);
    head(w, &hid, tokens.len(), threads)
}

/// Logits `[S, V]` and the attention weights of every layer and head for one sequence.
pub fn forward_with_attention(
    w: &Weights,
    tokens: &[u32],
    pos0: usize,
    threads: usize,
) -> (Vec<f32>, Attention) {
    let mut at = Vec::new();
    let hid = final_hidden(w, &[Segment { tokens, pos0 }], threads, Some(&mut at));
    (head(w, &hid, tokens.len(), threads), at)
}

fn head(w: &Weights, hid: &[f32], rows: usize, threads: usize) -> Vec<f32> {
    let mut logits = vec![0.0; rows * w.config.vocab_size];
    linear(hid, rows, &w.head, &mut logits, threads);
    logits
}

/// Uncached next-token logits `[B, V]` for each full sequence (tokens from position 0): only
/// the trailing [`receptive_field`] tokens are recomputed, at their absolute positions, which
/// gives exactly what the cached decoder computes.
pub fn last_logits(w: &Weights, seqs: &[&[u32]], threads: usize) -> Vec<f32> {
    let rf = receptive_field(w);
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
    let hid = final_hidden(w, &segs, threads, None);
    let dm = w.config.d_model;
    let mut last = Vec::with_capacity(seqs.len() * dm);
    let mut r = 0;
    for s in &segs {
        r += s.tokens.len();
        last.extend_from_slice(&hid[(r - 1) * dm..r * dm]);
    }
    head(w, &last, seqs.len(), threads)
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
    const MAX_ROWS: usize = 2048;
    const HEAD_ROWS: usize = 64;
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
        let hid = final_hidden(w, &segs, threads, None);
        // Targets per row: (sequence, target index in sequence)
        let mut targets: Vec<(usize, usize)> = Vec::with_capacity(rows);
        for &(i, st, len) in group {
            targets.extend((1..len).map(|t| (i, st + t)));
        }
        for b0 in (0..rows).step_by(HEAD_ROWS) {
            let nb = HEAD_ROWS.min(rows - b0);
            linear(&hid[b0 * dm..], nb, &w.head, &mut logits, threads);
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
