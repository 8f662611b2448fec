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

use super::cache::Decoder;
use super::kernels::log_sum_exp;

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
    let mut cands: Vec<(f64, u32, usize)> = Vec::with_capacity(w * v);
    let mut row = vec![0.0f32; v];
    let mut src: Vec<usize> = Vec::with_capacity(w);
    let mut next_tok: Vec<u32> = Vec::with_capacity(w);
    let max_norm = (cfg.max_new as f64).powf(cfg.alpha as f64);
    for step in 0..cfg.max_new {
        cands.clear();
        let logits = dec.logits();
        for (b, (_, lp)) in alive.iter().enumerate() {
            row.copy_from_slice(&logits[b * v..(b + 1) * v]);
            for &t in &cfg.banned {
                row[t as usize] = f32::NEG_INFINITY;
            }
            let lse = log_sum_exp(&row);
            for (t, &x) in row.iter().enumerate() {
                if x != f32::NEG_INFINITY {
                    cands.push((lp + x as f64 - lse, t as u32, b));
                }
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
