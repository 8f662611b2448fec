//! Incremental decoding: the decoder state (an explicit, preallocated per-layer KV cache for a
//! batch of sequences that advance in lockstep, and scratch) over a [`Model`], whose blocks it
//! runs with the cache's attention. The cache of each layer is a ring buffer of `context`
//! slots per sequence: the key/value of absolute position `p` lives in slot `p % context`, so
//! once a sequence is longer than `context` its oldest entry is overwritten. Nothing is
//! allocated after [`Decoder::new`].
//!
//! Sequences share history through a slot table instead of copies: the entry of sequence `b`
//! in slot `s` lives in the cache rows of sequence `lanes[b][s]`. A sequence always writes
//! its new entries into its own rows (and points its table there); the slot it writes only
//! ever held the position `context` steps back, which no sequence's window still reads. So
//! [`Decoder::reorder`] (beam search keeping some beams and forking others) copies table rows
//! of `context` indices, not keys and values.

use super::kernels::attend_row;
use super::model::{Model, Scratch};
use crate::model::Weights;
use rayon::prelude::*;

/// Per-layer keys and values of every sequence, and the slot table that shares history.
struct KvCache {
    /// Per layer: `[cap, context, d_attn]`.
    k: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    /// `[cap, context]`: the sequence whose cache rows hold this sequence's entry in a slot.
    lanes: Vec<u32>,
    lanes_spare: Vec<u32>,
    /// Attention probabilities of one query row, `[n_heads, context]` per sequence.
    scores: Vec<f32>,
}

/// A cached decoder: a [`Model`] (built once in [`Decoder::new`]) and the decoding state.
pub struct Decoder<'w> {
    model: Model<'w>,
    cap: usize,
    batch: usize,
    pos: usize,
    cache: KvCache,
    // Scratch, sized for `cap · context` rows.
    ids: Vec<u32>,
    posv: Vec<usize>,
    /// `[cap · context, d_model]`: the residual stream of the rows being fed.
    h: Vec<f32>,
    scratch: Scratch,
    last: Vec<f32>,
    lastn: Vec<f32>,
    logits: Vec<f32>,
}

impl<'w> Decoder<'w> {
    /// A decoder for up to `max_batch` sequences; `threads` is passed to the matrix kernels
    /// (f32 products).
    pub fn new(w: &'w Weights, max_batch: usize, threads: usize) -> Self {
        Decoder::with_model(Model::new(w, threads), max_batch)
    }

    /// [`Decoder::new`] with the matrix products in `precision`.
    pub fn new_in(
        w: &'w Weights,
        max_batch: usize,
        threads: usize,
        precision: crate::model::Precision,
    ) -> Self {
        Decoder::with_model(Model::new_in(w, threads, precision), max_batch)
    }

    /// A decoder for up to `max_batch` sequences over an already packed model.
    pub fn with_model(model: Model<'w>, max_batch: usize) -> Self {
        let c = model.config();
        let cap = max_batch.max(1);
        let rows = cap * c.context;
        let cache = cap * c.context * c.d_attn;
        Decoder {
            cap,
            batch: 0,
            pos: 0,
            cache: KvCache {
                k: vec![vec![0.0; cache]; c.n_layers],
                v: vec![vec![0.0; cache]; c.n_layers],
                lanes: vec![0; cap * c.context],
                lanes_spare: vec![0; cap * c.context],
                scores: vec![0.0; cap * c.n_heads * c.context],
            },
            ids: vec![0; rows],
            posv: vec![0; rows],
            h: vec![0.0; rows * c.d_model],
            scratch: Scratch::new(c, rows),
            last: vec![0.0; cap * c.d_model],
            lastn: vec![0.0; cap * c.d_model],
            logits: vec![0.0; cap * c.vocab_size],
            model,
        }
    }

    pub fn weights(&self) -> &'w Weights {
        self.model.weights()
    }

    pub fn model(&self) -> &Model<'w> {
        &self.model
    }
    /// Maximum number of sequences.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Active number of sequences.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Tokens processed per sequence = the absolute position of the next token.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Empties the cache and sets the number of active sequences.
    pub fn reset(&mut self, batch: usize) {
        assert!(
            batch >= 1 && batch <= self.cap,
            "batch {batch} exceeds capacity {}",
            self.cap
        );
        self.batch = batch;
        self.pos = 0;
    }

    /// Logits `[batch, V]` of the last fed position.
    pub fn logits(&self) -> &[f32] {
        &self.logits[..self.batch * self.model.config().vocab_size]
    }

    /// Resets to `prompts.len()` sequences and feeds the prompts (all the same, non-zero
    /// length) in chunks of at most `context` tokens. Returns the last position's logits.
    pub fn prefill(&mut self, prompts: &[&[u32]]) -> &[f32] {
        let n = prompts.first().map_or(0, |p| p.len());
        assert!(n > 0, "empty prompt");
        assert!(
            prompts.iter().all(|p| p.len() == n),
            "prompts differ in length"
        );
        self.reset(prompts.len());
        let ctx = self.model.config().context;
        let mut s = 0;
        while s < n {
            let c = ctx.min(n - s);
            for (b, p) in prompts.iter().enumerate() {
                self.ids[b * c..(b + 1) * c].copy_from_slice(&p[s..s + c]);
            }
            self.feed_ids(c);
            s += c;
        }
        self.logits()
    }

    /// Feeds one token per sequence and returns the next-token logits `[batch, V]`.
    pub fn step(&mut self, tokens: &[u32]) -> &[f32] {
        assert_eq!(tokens.len(), self.batch, "one token per active sequence");
        self.ids[..self.batch].copy_from_slice(tokens);
        self.feed_ids(1);
        self.logits()
    }

    /// Reorders (and resizes) the batch: new sequence `i` continues old sequence `src[i]`.
    /// Used by beam search after selecting the surviving beams. Copies only the slot table
    /// (`context` indices per sequence); keys and values stay where they are.
    pub fn reorder(&mut self, src: &[usize]) {
        assert!(!src.is_empty() && src.len() <= self.cap);
        assert!(
            src.iter().all(|&s| s < self.batch),
            "reorder source out of range"
        );
        let ctx = self.model.config().context;
        let identity = src.len() == self.batch && src.iter().enumerate().all(|(i, &s)| i == s);
        if !identity {
            for (i, &s) in src.iter().enumerate() {
                self.cache.lanes_spare[i * ctx..(i + 1) * ctx]
                    .copy_from_slice(&self.cache.lanes[s * ctx..(s + 1) * ctx]);
            }
            std::mem::swap(&mut self.cache.lanes, &mut self.cache.lanes_spare);
        }
        self.batch = src.len();
    }

    /// Runs `c` new tokens per sequence (taken from `self.ids`, `[batch, c]`) through the
    /// model, appending their keys and values to the cache.
    fn feed_ids(&mut self, c: usize) {
        let cfg = self.model.config();
        let (dm, ctx, vsz) = (cfg.d_model, cfg.context, cfg.vocab_size);
        assert!(c >= 1 && c <= ctx);
        let bsz = self.batch;
        let rows = bsz * c;
        let t = self.pos;
        for b in 0..bsz {
            for i in 0..c {
                self.posv[b * c + i] = t + i;
            }
        }
        // h = tok_emb[ids] + PE[pos]                                     [batch·c, d_model]
        self.model
            .embed(&self.ids[..rows], &self.posv[..rows], &mut self.h);
        let threads = self.model.threads();
        for l in 0..cfg.n_layers {
            let cache = &mut self.cache;
            self.model
                .block(l, &mut self.h, rows, &mut self.scratch, |q, kn, vn, o| {
                    cache.attend(cfg, l, (bsz, c, t), (q, kn, vn), o, threads);
                    cache.append(cfg, l, (bsz, c, t), (kn, vn));
                });
        }
        // Logits for the last new position of each sequence only.              [batch, V]
        for b in 0..bsz {
            let r = b * c + c - 1;
            self.last[b * dm..(b + 1) * dm].copy_from_slice(&self.h[r * dm..(r + 1) * dm]);
        }
        self.model.final_norm(&self.last, bsz, &mut self.lastn);
        self.model
            .head(&self.lastn, bsz, &mut self.logits[..bsz * vsz]);
        self.pos += c;
    }
}

impl KvCache {
    /// Attention of the `c` new rows of each of `bsz` sequences at positions `t..t + c`: each
    /// row sees the cached keys of the `context − 1 − i` positions before it (through the slot
    /// table) and the new rows up to itself. Sequences run in parallel with 2+ threads.
    #[allow(clippy::too_many_arguments)]
    fn attend(
        &mut self,
        cfg: &crate::model::ModelConfig,
        l: usize,
        (bsz, c, t): (usize, usize, usize),
        (q, kn, vn): (&[f32], &[f32], &[f32]),
        o: &mut [f32],
        threads: usize,
    ) {
        let (da, nh, dk, ctx) = (cfg.d_attn, cfg.n_heads, cfg.d_k(), cfg.context);
        let scale = 1.0 / (dk as f32).sqrt();
        let per = ctx * da;
        let (kc, vc) = (&self.k[l][..], &self.v[l][..]);
        let lanes = &self.lanes[..];
        // One sequence's attention for its c new rows: writes o rows b·c.., uses its own
        // slice of the score scratch, so sequences run in parallel.
        let attend = |b: usize, ob: &mut [f32], scores: &mut [f32]| {
            for i in 0..c {
                let p = t + i;
                let lo = (p + 1).saturating_sub(ctx);
                let r = b * c + i;
                let qr = &q[r * da..(r + 1) * da];
                // Keys: old positions lo..t from the ring, then new rows 0..=i; each key
                // row is read once for all heads.
                // Cache offset of old position lo + n, through the slot table (n < ctx, so
                // one conditional subtraction replaces a division per key).
                let lo_slot = lo % ctx;
                let cached = |n: usize| {
                    let s = lo_slot + n;
                    let slot = if s >= ctx { s - ctx } else { s };
                    lanes[b * ctx + slot] as usize * per + slot * da
                };
                let key_row = |n: usize| -> &[f32] {
                    if n < t - lo {
                        let s = cached(n);
                        &kc[s..s + da]
                    } else {
                        let s = (b * c + n - (t - lo)) * da;
                        &kn[s..s + da]
                    }
                };
                let val_row = |n: usize| -> &[f32] {
                    if n < t - lo {
                        let s = cached(n);
                        &vc[s..s + da]
                    } else {
                        let s = (b * c + n - (t - lo)) * da;
                        &vn[s..s + da]
                    }
                };
                let n_keys = t - lo + i + 1;
                let out = &mut ob[i * da..(i + 1) * da];
                attend_row(qr, (nh, dk), n_keys, scale, key_row, val_row, scores, out);
            }
        };
        let rows = bsz * c;
        if threads > 1 && bsz > 1 {
            o[..rows * da]
                .par_chunks_mut(c * da)
                .zip(self.scores.par_chunks_mut(nh * ctx))
                .enumerate()
                .for_each(|(b, (ob, sb))| attend(b, ob, sb));
        } else {
            o[..rows * da]
                .chunks_mut(c * da)
                .zip(self.scores.chunks_mut(nh * ctx))
                .enumerate()
                .for_each(|(b, (ob, sb))| attend(b, ob, sb));
        }
    }

    /// Appends the new keys and values to the ring, in each sequence's own rows.
    fn append(
        &mut self,
        cfg: &crate::model::ModelConfig,
        l: usize,
        (bsz, c, t): (usize, usize, usize),
        (kn, vn): (&[f32], &[f32]),
    ) {
        let (da, ctx) = (cfg.d_attn, cfg.context);
        let per = ctx * da;
        for b in 0..bsz {
            for i in 0..c {
                let slot = (t + i) % ctx;
                self.lanes[b * ctx + slot] = b as u32;
                let dst = b * per + slot * da;
                let src = (b * c + i) * da;
                self.k[l][dst..dst + da].copy_from_slice(&kn[src..src + da]);
                self.v[l][dst..dst + da].copy_from_slice(&vn[src..src + da]);
            }
        }
    }
}
