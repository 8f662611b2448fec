//! Incremental decoding with an explicit, preallocated per-layer KV cache for a batch of
//! sequences that advance in lockstep. The cache of each layer is a ring buffer of `context`
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

use super::kernels::{
    add_assign, attend_row, embed, layer_norm, linear, linear_packed, relu, PackedLinear,
};
use crate::model::LinearWeights;
use crate::model::Weights;
use rayon::prelude::*;

/// Row counts up to this use the packed small-batch kernel; more (long prefills) use `gemm`.
const PACKED_ROWS: usize = 64;

/// One block's linear layers repacked for the decoding kernel.
struct PackedBlock {
    attn_in: PackedLinear,
    q: PackedLinear,
    k: PackedLinear,
    v: PackedLinear,
    o: PackedLinear,
    attn_out: PackedLinear,
    ff_up: PackedLinear,
    ff_down: PackedLinear,
}

/// `linear` over the packed copy for few rows, over the plain weights with `gemm` for many.
fn lin(
    x: &[f32],
    rows: usize,
    plain: &LinearWeights,
    packed: &PackedLinear,
    y: &mut [f32],
    th: usize,
) {
    if rows <= PACKED_ROWS {
        linear_packed(x, rows, packed, y, th);
    } else {
        linear(x, rows, plain, y, th);
    }
}

/// A cached decoder over borrowed weights (with a repacked copy of the linear layers, made
/// once in [`Decoder::new`]).
pub struct Decoder<'w> {
    w: &'w Weights,
    packed: Vec<PackedBlock>,
    head: PackedLinear,
    threads: usize,
    cap: usize,
    batch: usize,
    pos: usize,
    /// Per layer: `[cap, context, d_attn]`.
    k: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    /// `[cap, context]`: the sequence whose cache rows hold this sequence's entry in a slot.
    lanes: Vec<u32>,
    lanes_spare: Vec<u32>,
    // Scratch, sized for `cap · context` rows.
    ids: Vec<u32>,
    posv: Vec<usize>,
    h: Vec<f32>,
    t1: Vec<f32>,
    a: Vec<f32>,
    q: Vec<f32>,
    kn: Vec<f32>,
    vn: Vec<f32>,
    o: Vec<f32>,
    t2: Vec<f32>,
    f: Vec<f32>,
    scores: Vec<f32>,
    last: Vec<f32>,
    lastn: Vec<f32>,
    logits: Vec<f32>,
}

impl<'w> Decoder<'w> {
    /// A decoder for up to `max_batch` sequences; `threads` is passed to the matrix kernels.
    pub fn new(w: &'w Weights, max_batch: usize, threads: usize) -> Self {
        let c = &w.config;
        let cap = max_batch.max(1);
        let rows = cap * c.context;
        let cache = cap * c.context * c.d_attn;
        let packed = w
            .blocks
            .iter()
            .map(|b| PackedBlock {
                attn_in: PackedLinear::new(&b.attn_in),
                q: PackedLinear::new(&b.q),
                k: PackedLinear::new(&b.k),
                v: PackedLinear::new(&b.v),
                o: PackedLinear::new(&b.o),
                attn_out: PackedLinear::new(&b.attn_out),
                ff_up: PackedLinear::new(&b.ff_up),
                ff_down: PackedLinear::new(&b.ff_down),
            })
            .collect();
        Decoder {
            w,
            packed,
            head: PackedLinear::new(&w.head),
            threads: threads.max(1),
            cap,
            batch: 0,
            pos: 0,
            k: vec![vec![0.0; cache]; c.n_layers],
            v: vec![vec![0.0; cache]; c.n_layers],
            lanes: vec![0; cap * c.context],
            lanes_spare: vec![0; cap * c.context],
            ids: vec![0; rows],
            posv: vec![0; rows],
            h: vec![0.0; rows * c.d_model],
            t1: vec![0.0; rows * c.d_model],
            a: vec![0.0; rows * c.d_attn],
            q: vec![0.0; rows * c.d_attn],
            kn: vec![0.0; rows * c.d_attn],
            vn: vec![0.0; rows * c.d_attn],
            o: vec![0.0; rows * c.d_attn],
            t2: vec![0.0; rows * c.d_attn],
            f: vec![0.0; rows * c.d_ff],
            scores: vec![0.0; cap * c.n_heads * 2 * c.context],
            last: vec![0.0; cap * c.d_model],
            lastn: vec![0.0; cap * c.d_model],
            logits: vec![0.0; cap * c.vocab_size],
        }
    }

    pub fn weights(&self) -> &'w Weights {
        self.w
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
        &self.logits[..self.batch * self.w.config.vocab_size]
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
        let ctx = self.w.config.context;
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
        let ctx = self.w.config.context;
        let identity = src.len() == self.batch && src.iter().enumerate().all(|(i, &s)| i == s);
        if !identity {
            for (i, &s) in src.iter().enumerate() {
                self.lanes_spare[i * ctx..(i + 1) * ctx]
                    .copy_from_slice(&self.lanes[s * ctx..(s + 1) * ctx]);
            }
            std::mem::swap(&mut self.lanes, &mut self.lanes_spare);
        }
        self.batch = src.len();
    }

    /// Runs `c` new tokens per sequence (taken from `self.ids`, `[batch, c]`) through the
    /// model, appending their keys and values to the cache.
    fn feed_ids(&mut self, c: usize) {
        let w = self.w;
        let cfg = &w.config;
        let (dm, da, nh, dk, ctx, vsz) = (
            cfg.d_model,
            cfg.d_attn,
            cfg.n_heads,
            cfg.d_k(),
            cfg.context,
            cfg.vocab_size,
        );
        assert!(c >= 1 && c <= ctx);
        let bsz = self.batch;
        let rows = bsz * c;
        let t = self.pos;
        for b in 0..bsz {
            for i in 0..c {
                self.posv[b * c + i] = t + i;
            }
        }
        embed(
            &w.tok_emb,
            dm,
            &self.ids[..rows],
            &self.posv[..rows],
            &mut self.h,
        );
        let scale = 1.0 / (dk as f32).sqrt();
        let per = ctx * da;
        for (l, (blk, pb)) in w.blocks.iter().zip(&self.packed).enumerate() {
            let th = self.threads;
            layer_norm(&self.h, rows, &blk.ln1, &mut self.t1);
            lin(&self.t1, rows, &blk.attn_in, &pb.attn_in, &mut self.a, th);
            lin(&self.a, rows, &blk.q, &pb.q, &mut self.q, th);
            lin(&self.a, rows, &blk.k, &pb.k, &mut self.kn, th);
            lin(&self.a, rows, &blk.v, &pb.v, &mut self.vn, th);
            let (kc, vc) = (&self.k[l][..], &self.v[l][..]);
            let (q, kn, vn) = (&self.q[..], &self.kn[..], &self.vn[..]);
            let lanes = &self.lanes[..];
            // One sequence's attention for its c new rows: writes o rows b·c.., uses its own
            // slice of the score scratch, so sequences run in parallel.
            let sw = ctx; // score scratch per head (at most `context` keys)
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
            if th > 1 && bsz > 1 {
                self.o[..rows * da]
                    .par_chunks_mut(c * da)
                    .zip(self.scores.par_chunks_mut(nh * sw))
                    .enumerate()
                    .for_each(|(b, (ob, sb))| attend(b, ob, sb));
            } else {
                self.o[..rows * da]
                    .chunks_mut(c * da)
                    .zip(self.scores.chunks_mut(nh * sw))
                    .enumerate()
                    .for_each(|(b, (ob, sb))| attend(b, ob, sb));
            }
            // Append the new keys and values to the ring, in each sequence's own rows.
            for b in 0..bsz {
                for i in 0..c {
                    let slot = (t + i) % ctx;
                    self.lanes[b * ctx + slot] = b as u32;
                    let dst = b * per + slot * da;
                    let src = (b * c + i) * da;
                    self.k[l][dst..dst + da].copy_from_slice(&self.kn[src..src + da]);
                    self.v[l][dst..dst + da].copy_from_slice(&self.vn[src..src + da]);
                }
            }
            lin(&self.o, rows, &blk.o, &pb.o, &mut self.t2, th);
            lin(
                &self.t2,
                rows,
                &blk.attn_out,
                &pb.attn_out,
                &mut self.t1,
                th,
            );
            add_assign(&mut self.h[..rows * dm], &self.t1[..rows * dm]);
            layer_norm(&self.h, rows, &blk.ln2, &mut self.t1);
            lin(&self.t1, rows, &blk.ff_up, &pb.ff_up, &mut self.f, th);
            relu(&mut self.f[..rows * cfg.d_ff]);
            lin(&self.f, rows, &blk.ff_down, &pb.ff_down, &mut self.t1, th);
            add_assign(&mut self.h[..rows * dm], &self.t1[..rows * dm]);
        }
        // Logits for the last new position of each sequence only.
        for b in 0..bsz {
            let r = b * c + c - 1;
            self.last[b * dm..(b + 1) * dm].copy_from_slice(&self.h[r * dm..(r + 1) * dm]);
        }
        layer_norm(&self.last, bsz, &w.ln_f, &mut self.lastn);
        lin(
            &self.lastn,
            bsz,
            &w.head,
            &self.head,
            &mut self.logits[..bsz * vsz],
            self.threads,
        );
        self.pos += c;
    }
}
