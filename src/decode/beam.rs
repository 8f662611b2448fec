//! Beam search batched through the KV cache: one forward pass per step for all live beams,
//! the cache reordered after each selection.
//!
//! Scores: a hypothesis of `L` generated tokens (its `<eos>` included) with summed log
//! probability `lp` scores `lp / L^alpha`. Candidates are ranked by cumulative log probability
//! (ties: lower token id, then lower beam index). Of the best `2·width` candidates, an `<eos>`
//! ranked within the first `width` finishes a hypothesis; the others fill the `width` live
//! beams. Search stops at `max_new` tokens (live beams are then finished as they are) or as
//! soon as no live beam can beat the best finished one (`lp / max_new^alpha` bounds a live
//! beam's final score since `lp` only decreases and `alpha >= 0`). Width 1 is greedy decoding
//! when `alpha = 0`.

use super::decoder::Decoder;
use super::kernels::{first_above, log_sum_exp_fast};
use rayon::prelude::*;

/// Beam search settings.
#[derive(Debug, Clone, PartialEq)]
pub struct BeamConfig {
    pub width: usize,
    pub max_new: usize,
    /// Length penalty exponent (>= 0).
    pub alpha: f32,
    /// The end token (None: hypotheses only end at `max_new`).
    pub eos: Option<u32>,
    /// Token ids never produced.
    pub banned: Vec<u32>,
}

/// A finished hypothesis.
#[derive(Debug, Clone, PartialEq)]
pub struct Hypothesis {
    /// Generated tokens (ending in `<eos>` when it ended there).
    pub tokens: Vec<u32>,
    /// Summed log probability of the generated tokens.
    pub logprob: f64,
    /// `logprob / len^alpha`.
    pub score: f64,
}

/// The length-normalised score.
pub fn length_score(logprob: f64, len: usize, alpha: f32) -> f64 {
    if len == 0 {
        return logprob;
    }
    logprob / (len as f64).powf(alpha as f64)
}

fn cmp_cand(a: &(f64, u32, usize), b: &(f64, u32, usize)) -> std::cmp::Ordering {
    b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2))
}

fn cmp_hyp(a: &Hypothesis, b: &Hypothesis) -> std::cmp::Ordering {
    b.score.total_cmp(&a.score).then(a.tokens.cmp(&b.tokens))
}

/// One beam's best (logit, token) pairs and its log normaliser.
type BeamTop = (Vec<(f32, u32)>, f64);

/// The `k` highest finite entries of `row` as (value, index), best first; ties go to the lower
/// index (the order `cmp_cand` ranks one beam's candidates in, since they share the beam's
/// log probability and normaliser). One pass; most entries are rejected by one comparison.
fn top_k(row: &[f32], k: usize, out: &mut Vec<(f32, u32)>) {
    out.clear();
    if k == 0 {
        return;
    }
    let mut thr = f32::NEG_INFINITY;
    let mut t = 0;
    loop {
        // `thr` is -inf until k entries are kept, then the k-th best: this skips -inf
        // (banned), NaN, and anything not above the k-th best (an equal value has a higher
        // index, so ranks after it).
        t = first_above(row, t, thr);
        if t == row.len() {
            break;
        }
        let x = row[t];
        let at = out.partition_point(|e| e.0 >= x);
        out.insert(at, (x, t as u32));
        if out.len() > k {
            out.pop();
        }
        if out.len() == k {
            thr = out[k - 1].0;
        }
        t += 1;
    }
}

/// Runs beam search after `prompt`; returns every finished hypothesis, best first.
/// The decoder's capacity must be at least `cfg.width`.
pub fn beam_search(dec: &mut Decoder, prompt: &[u32], cfg: &BeamConfig) -> Vec<Hypothesis> {
    assert!(cfg.width >= 1 && cfg.width <= dec.capacity());
    assert!(cfg.alpha >= 0.0);
    if cfg.max_new == 0 {
        return vec![Hypothesis {
            tokens: Vec::new(),
            logprob: 0.0,
            score: 0.0,
        }];
    }
    let v = dec.weights().config.vocab_size;
    let w = cfg.width;
    dec.prefill(&[prompt]);
    let mut alive: Vec<(Vec<u32>, f64)> = vec![(Vec::new(), 0.0)];
    let mut finished: Vec<Hypothesis> = Vec::new();
    let keep_per_beam = 2 * w;
    let mut cands: Vec<(f64, u32, usize)> = Vec::with_capacity(w * keep_per_beam);
    // Per beam: a copy of its logits (banned tokens masked), its top 2·width tokens and its
    // log normaliser; filled in parallel across beams.
    let mut rows = vec![0.0f32; w * v];
    let mut tops: Vec<BeamTop> = (0..w)
        .map(|_| (Vec::with_capacity(keep_per_beam + 1), 0.0))
        .collect();
    let mut src: Vec<usize> = Vec::with_capacity(w);
    let mut next_tok: Vec<u32> = Vec::with_capacity(w);
    let max_norm = (cfg.max_new as f64).powf(cfg.alpha as f64);
    for step in 0..cfg.max_new {
        cands.clear();
        let logits = dec.logits();
        let n = alive.len();
        let per_beam = |((row, (top, lse)), lg): ((&mut [f32], &mut BeamTop), &[f32])| {
            // Masked copy only when something is banned.
            let r: &[f32] = if cfg.banned.is_empty() {
                lg
            } else {
                row.copy_from_slice(lg);
                for &t in &cfg.banned {
                    row[t as usize] = f32::NEG_INFINITY;
                }
                row
            };
            *lse = log_sum_exp_fast(r);
            top_k(r, keep_per_beam, top);
        };
        rows[..n * v]
            .par_chunks_mut(v)
            .zip(tops[..n].par_iter_mut())
            .zip(logits[..n * v].par_chunks(v))
            .for_each(per_beam);
        for (b, ((_, lp), (top, lse))) in alive.iter().zip(&tops).enumerate() {
            for &(x, t) in top {
                cands.push((lp + x as f64 - lse, t, b));
            }
        }
        let keep = (2 * w).min(cands.len());
        if keep < cands.len() {
            cands.select_nth_unstable_by(keep - 1, cmp_cand);
            cands.truncate(keep);
        }
        cands.sort_unstable_by(cmp_cand);
        let mut new_alive: Vec<(Vec<u32>, f64)> = Vec::with_capacity(w);
        src.clear();
        for (rank, &(lp, t, b)) in cands.iter().enumerate() {
            if Some(t) == cfg.eos {
                if rank < w {
                    let mut toks = alive[b].0.clone();
                    toks.push(t);
                    let len = toks.len();
                    finished.push(Hypothesis {
                        tokens: toks,
                        logprob: lp,
                        score: length_score(lp, len, cfg.alpha),
                    });
                }
                continue;
            }
            let mut toks = alive[b].0.clone();
            toks.push(t);
            new_alive.push((toks, lp));
            src.push(b);
            if new_alive.len() == w {
                break;
            }
        }
        alive = new_alive;
        if step + 1 == cfg.max_new {
            for (toks, lp) in alive.drain(..) {
                let len = toks.len();
                finished.push(Hypothesis {
                    tokens: toks,
                    logprob: lp,
                    score: length_score(lp, len, cfg.alpha),
                });
            }
            break;
        }
        if alive.is_empty() {
            break;
        }
        if let Some(best) = finished.iter().map(|h| h.score).reduce(f64::max) {
            let bound = alive
                .iter()
                .map(|(_, lp)| lp / max_norm)
                .fold(f64::NEG_INFINITY, f64::max);
            if best >= bound {
                break;
            }
        }
        next_tok.clear();
        next_tok.extend(alive.iter().map(|(t, _)| *t.last().expect("non-empty")));
        dec.reorder(&src);
        dec.step(&next_tok);
    }
    finished.sort_by(cmp_hyp);
    finished
}

#[cfg(test)]
mod tests {
    use super::top_k;

    #[test]
    fn top_k_matches_a_full_sort_with_ties_and_masked_entries() {
        // Values from a small set, so many ties; some -inf (banned) and a NaN.
        let mut row: Vec<f32> = (0..500).map(|i| ((i * 37 % 11) as f32) * 0.5).collect();
        row[3] = f32::NEG_INFINITY;
        row[40] = f32::NEG_INFINITY;
        row[77] = f32::NAN;
        let mut want: Vec<(f32, u32)> = row
            .iter()
            .enumerate()
            .filter(|(_, x)| x.is_finite())
            .map(|(i, &x)| (x, i as u32))
            .collect();
        want.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut got = Vec::new();
        for k in [1, 2, 7, 20, 600] {
            top_k(&row, k, &mut got);
            assert_eq!(got, want[..k.min(want.len())].to_vec(), "k = {k}");
        }
        let masked = vec![f32::NEG_INFINITY; 5];
        top_k(&masked, 3, &mut got);
        assert!(got.is_empty());
    }
}
