//! Cached against uncached greedy decoding of one batch of prompts over a sweep of generation
//! lengths: the wall time of each (repeated), whether both produce the same tokens, and the
//! largest logit difference (compared once, at the headline length).

use super::{
    generate_cached, generate_uncached, with_threads, Decoder, GenOptions, Sampler, SamplerConfig,
};
use crate::model::{Precision, Weights};
use std::time::Instant;

/// One timed run of one mode.
#[derive(Debug, Clone)]
pub struct KvRun {
    pub new_tokens: usize,
    /// With the KV cache (`true`) or recomputing the whole prefix every step.
    pub cached: bool,
    /// 1-based repeat index.
    pub run: usize,
    pub wall_s: f64,
}

/// The outcome of [`compare`].
#[derive(Debug, Clone)]
pub struct KvComparison {
    /// Every timed run, uncached then cached for each length and repeat.
    pub runs: Vec<KvRun>,
    /// Whether both modes produced identical tokens in every run.
    pub identical: bool,
    /// Largest absolute logit difference at the headline length (first repeat).
    pub max_abs_logit_diff: f32,
}

/// (new tokens, median, min, max) tokens/s of one mode, one entry per length.
pub type Throughput = Vec<(f64, f64, f64, f64)>;

impl KvComparison {
    /// Tokens per second of each length of one mode (`batch` prompts per run).
    pub fn throughput(&self, cached: bool, lengths: &[usize], batch: usize) -> Throughput {
        lengths
            .iter()
            .map(|&n| {
                let toks = (batch * n) as f64;
                let mut v: Vec<f64> = self
                    .runs
                    .iter()
                    .filter(|r| r.cached == cached && r.new_tokens == n)
                    .map(|r| toks / r.wall_s.max(1e-9))
                    .collect();
                v.sort_by(f64::total_cmp);
                match (v.first(), v.last()) {
                    (Some(&lo), Some(&hi)) => (n as f64, median(&v), lo, hi),
                    _ => (n as f64, f64::NAN, f64::NAN, f64::NAN),
                }
            })
            .collect()
    }
}

/// Median of sorted, non-empty values.
fn median(v: &[f64]) -> f64 {
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// Greedy decoding of `prompts` for each of `lengths` new tokens, `repeats` times, with and
/// without the cache, on `threads` threads with products in `precision`; `tick` is called
/// after each (length, repeat).
/// Tokens are compared in every run, logits once at `headline` (which `lengths` holds).
pub fn compare(
    w: &Weights,
    prompts: &[&[u32]],
    lengths: &[usize],
    headline: usize,
    repeats: usize,
    (threads, precision): (usize, Precision),
    mut tick: impl FnMut() + Send,
) -> KvComparison {
    let opts = GenOptions {
        stop_at_eos: false,
        banned: vec![],
    };
    let batch = prompts.len();
    let mut runs = Vec::new();
    let mut identical = true;
    let mut max_diff = 0.0f32;
    with_threads(threads, || {
        let mut dec = Decoder::new_in(w, batch, threads, precision);
        for &n in lengths {
            let max_new = vec![n; batch];
            for run in 0..repeats {
                let logits_too = n == headline && run == 0;
                let mut kept: Vec<Vec<f32>> = Vec::new();
                let mut keep = |_: usize, l: &[f32]| kept.push(l.to_vec());
                let mut s = Sampler::new(SamplerConfig::greedy(), 0);
                let t0 = Instant::now();
                let a = generate_cached(
                    &mut dec,
                    prompts,
                    &max_new,
                    &mut s,
                    &opts,
                    if logits_too { Some(&mut keep) } else { None },
                );
                let wall_c = t0.elapsed().as_secs_f64();
                let mut diff = 0.0f32;
                let mut cmp = |step: usize, l: &[f32]| {
                    if let Some(k) = kept.get(step) {
                        for (x, y) in k.iter().zip(l) {
                            diff = diff.max((x - y).abs());
                        }
                    }
                };
                let t0 = Instant::now();
                let b = generate_uncached(
                    dec.model(),
                    prompts,
                    &max_new,
                    &mut s,
                    &opts,
                    if logits_too { Some(&mut cmp) } else { None },
                );
                let wall_u = t0.elapsed().as_secs_f64();
                if logits_too {
                    max_diff = max_diff.max(diff);
                }
                identical &= a == b;
                for (cached, wall_s) in [(false, wall_u), (true, wall_c)] {
                    runs.push(KvRun {
                        new_tokens: n,
                        cached,
                        run: run + 1,
                        wall_s,
                    });
                }
                tick();
            }
        }
    });
    KvComparison {
        runs,
        identical,
        max_abs_logit_diff: max_diff,
    }
}
