//! Decoding library: cached vs uncached, beyond context, beam search, samplers, scoring.

use crate::decode::*;
use crate::model::{ModelConfig, Weights};
use rand::SeedableRng;

fn model(vocab: usize, layers: usize, context: usize, seed: u64) -> Weights {
    let cfg = ModelConfig {
        vocab_size: vocab,
        d_model: 16,
        d_attn: 16,
        n_heads: 2,
        d_ff: 24,
        n_layers: layers,
        context,
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    Weights::init(&cfg, &mut rng)
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn cached_logits_equal_full_forward_within_context() {
    let w = model(23, 2, 16, 1);
    let toks: Vec<u32> = (0..12).map(|i| (i * 7 % 23) as u32).collect();
    let full = forward(&w, &toks, 0, 1);
    let mut dec = Decoder::new(&w, 1, 1);
    dec.prefill(&[&toks[..3]]);
    let v = 23;
    assert!(max_diff(dec.logits(), &full[2 * v..3 * v]) < 1e-4);
    for t in 3..12 {
        dec.step(&[toks[t]]);
        assert!(
            max_diff(dec.logits(), &full[t * v..(t + 1) * v]) < 1e-4,
            "t={t}"
        );
    }
}

#[test]
fn causal_changing_later_token_keeps_earlier_logits() {
    let w = model(13, 1, 8, 2);
    let a = forward(&w, &[1, 4, 5, 6], 0, 1);
    let b = forward(&w, &[1, 4, 5, 9], 0, 1);
    assert_eq!(&a[..3 * 13], &b[..3 * 13]);
}

#[test]
fn cached_equals_uncached_beyond_context_batched() {
    // context 6, 3 layers, 40 tokens per sequence: far beyond the window.
    let w = model(19, 3, 6, 3);
    let prompts: Vec<Vec<u32>> = (0..3)
        .map(|b| (0..9).map(|i| ((i * 5 + b * 3) % 19) as u32).collect())
        .collect();
    let refs: Vec<&[u32]> = prompts.iter().map(|p| p.as_slice()).collect();
    let max_new = vec![31; 3];
    let opts = GenOptions::default();
    let mut cached_logits: Vec<Vec<f32>> = Vec::new();
    let mut dec = Decoder::new(&w, 3, 1);
    let mut s1 = Sampler::new(SamplerConfig::temperature(1.0), 9);
    let mut h1 = |_: usize, l: &[f32]| cached_logits.push(l.to_vec());
    let a = generate_cached(&mut dec, &refs, &max_new, &mut s1, &opts, Some(&mut h1));
    let mut unc_logits: Vec<Vec<f32>> = Vec::new();
    let mut s2 = Sampler::new(SamplerConfig::temperature(1.0), 9);
    let mut h2 = |_: usize, l: &[f32]| unc_logits.push(l.to_vec());
    let b = generate_uncached(
        &Model::new(&w, 1),
        &refs,
        &max_new,
        &mut s2,
        &opts,
        Some(&mut h2),
    );
    assert_eq!(a, b);
    assert_eq!(cached_logits.len(), 31);
    for (x, y) in cached_logits.iter().zip(&unc_logits) {
        assert!(max_diff(x, y) < 1e-4);
    }
    // Prefill longer than the context (chunked) equals step-by-step feeding.
    let long: Vec<u32> = (0..20).map(|i| (i * 3 % 19) as u32).collect();
    let mut d1 = Decoder::new(&w, 1, 1);
    d1.prefill(&[&long]);
    let mut d2 = Decoder::new(&w, 1, 1);
    d2.prefill(&[&long[..1]]);
    for &t in &long[1..] {
        d2.step(&[t]);
    }
    assert!(max_diff(d1.logits(), d2.logits()) < 1e-4);
    let u = last_logits(&w, &[&long], 1);
    assert!(max_diff(d1.logits(), &u) < 1e-4);
}

#[test]
fn greedy_cached_equals_uncached_two_threads() {
    let w = model(29, 2, 8, 4);
    let p: Vec<u32> = vec![0, 5, 6, 7, 8];
    let mut dec = Decoder::new(&w, 1, 2);
    let opts = GenOptions {
        stop_at_eos: false,
        banned: vec![2],
    };
    let mut s = Sampler::new(SamplerConfig::greedy(), 0);
    let a = generate_cached(&mut dec, &[&p], &[30], &mut s, &opts, None);
    let b = generate_uncached(&Model::new(&w, 2), &[&p], &[30], &mut s, &opts, None);
    assert_eq!(a, b);
    assert!(!a[0].contains(&2));
}

#[test]
fn beam_width_one_equals_greedy() {
    for seed in 0..4 {
        let w = model(11, 2, 8, 10 + seed);
        let p: Vec<u32> = vec![0, 4, 5];
        let mut dec = Decoder::new(&w, 4, 1);
        let opts = GenOptions {
            stop_at_eos: true,
            banned: vec![0, 2],
        };
        let mut s = Sampler::new(SamplerConfig::greedy(), 0);
        let g = generate_cached(&mut dec, &[&p], &[12], &mut s, &opts, None);
        let cfg = BeamConfig {
            width: 1,
            max_new: 12,
            alpha: 0.0,
            eos: Some(1),
            banned: vec![0, 2],
        };
        let h = beam_search(&mut dec, &p, &cfg);
        assert_eq!(h[0].tokens, g[0], "seed {seed}");
    }
}

/// Log probability of `cont` after `prompt` by full forward passes.
fn seq_logprob(w: &Weights, prompt: &[u32], cont: &[u32], banned: &[u32]) -> f64 {
    let mut all = prompt.to_vec();
    all.extend_from_slice(cont);
    let v = w.config.vocab_size;
    let logits = forward(w, &all, 0, 1);
    let mut lp = 0.0;
    for (i, &t) in cont.iter().enumerate() {
        let mut row = logits[(prompt.len() - 1 + i) * v..(prompt.len() + i) * v].to_vec();
        for &b in banned {
            row[b as usize] = f32::NEG_INFINITY;
        }
        lp += row[t as usize] as f64 - kernels::log_sum_exp(&row);
    }
    lp
}

#[test]
fn wide_beam_finds_exhaustive_best() {
    // Vocabulary of 6 (<eos>=1 ends, ids 0 and 2 banned): 4 usable tokens, up to 4 new tokens.
    let banned = vec![0u32, 2];
    let usable = [1u32, 3, 4, 5];
    for (seed, alpha) in [(20u64, 0.0f32), (21, 0.0), (22, 1.0), (23, 0.6)] {
        let w = model(6, 2, 8, seed);
        let prompt = vec![0u32, 3];
        let max_new = 4;
        // All sequences: ended by eos before max_new, or any sequence of max_new tokens.
        let mut best: Option<(f64, Vec<u32>)> = None;
        let mut stack: Vec<Vec<u32>> = vec![vec![]];
        while let Some(s) = stack.pop() {
            let ended = s.last() == Some(&1) || s.len() == max_new;
            if ended {
                let lp = seq_logprob(&w, &prompt, &s, &banned);
                let sc = length_score(lp, s.len(), alpha);
                if best.as_ref().is_none_or(|(b, _)| sc > *b) {
                    best = Some((sc, s));
                }
                continue;
            }
            for &t in &usable {
                let mut n = s.clone();
                n.push(t);
                stack.push(n);
            }
        }
        let (bs, bt) = best.unwrap();
        let mut dec = Decoder::new(&w, 64, 1);
        let cfg = BeamConfig {
            width: 64,
            max_new,
            alpha,
            eos: Some(1),
            banned: banned.clone(),
        };
        let h = beam_search(&mut dec, &prompt, &cfg);
        assert_eq!(h[0].tokens, bt, "seed {seed} alpha {alpha}");
        assert!((h[0].score - bs).abs() < 1e-4);
        // A narrow beam never beats the exhaustive optimum.
        let mut dec2 = Decoder::new(&w, 2, 1);
        let h2 = beam_search(&mut dec2, &prompt, &BeamConfig { width: 2, ..cfg });
        assert!(h2[0].score <= bs + 1e-6);
    }
}

#[test]
fn samplers_on_fixed_logits() {
    let logits = [0.0f32, 2.0, 1.0, 2.0, -1.0];
    // Greedy: lowest id among the maxima.
    let mut g = Sampler::new(SamplerConfig::greedy(), 1);
    assert_eq!(g.sample(&logits, &[]), 1);
    assert_eq!(g.sample(&logits, &[1]), 3);
    // Top-k 1 at any temperature is greedy.
    let mut k1 = Sampler::new(
        SamplerConfig {
            temperature: 5.0,
            top_k: 1,
            top_p: 1.0,
        },
        1,
    );
    for _ in 0..20 {
        assert_eq!(k1.sample(&logits, &[]), 1);
    }
    // Top-k 2: only the two best (ids 1 and 3) appear, both do.
    let mut k2 = Sampler::new(
        SamplerConfig {
            temperature: 1.0,
            top_k: 2,
            top_p: 1.0,
        },
        7,
    );
    let draws: Vec<u32> = (0..200).map(|_| k2.sample(&logits, &[])).collect();
    assert!(draws.iter().all(|&t| t == 1 || t == 3));
    assert!(draws.contains(&1) && draws.contains(&3));
    // Top-p: probs ∝ e^[0,2,1,2,-1]; ids 1 and 3 hold ~0.78 of the mass → p=0.7 keeps only them.
    let mut p = Sampler::new(
        SamplerConfig {
            temperature: 1.0,
            top_k: 0,
            top_p: 0.7,
        },
        3,
    );
    let draws: Vec<u32> = (0..300).map(|_| p.sample(&logits, &[])).collect();
    assert!(draws.iter().all(|&t| t == 1 || t == 3));
    // Plain temperature sampling: frequencies follow the softmax; same seed, same draws.
    let mut a = Sampler::new(SamplerConfig::temperature(1.0), 42);
    let mut b = Sampler::new(SamplerConfig::temperature(1.0), 42);
    let n = 20000;
    let mut counts = [0usize; 5];
    for _ in 0..n {
        let x = a.sample(&logits, &[]);
        assert_eq!(x, b.sample(&logits, &[]));
        counts[x as usize] += 1;
    }
    let z: f64 = logits.iter().map(|&l| (l as f64).exp()).sum();
    for (i, &c) in counts.iter().enumerate() {
        let want = (logits[i] as f64).exp() / z;
        assert!((c as f64 / n as f64 - want).abs() < 0.015, "id {i}");
    }
    // Banned ids never appear; low temperature concentrates on the maxima.
    let mut cold = Sampler::new(SamplerConfig::temperature(0.05), 5);
    for _ in 0..50 {
        let t = cold.sample(&logits, &[3]);
        assert_eq!(t, 1);
    }
}

#[test]
fn windowed_scoring_predicts_every_token_once_and_matches_forward() {
    let w = model(17, 2, 5, 30);
    assert_eq!(window_starts(9, 5), vec![0, 4]);
    assert_eq!(window_starts(10, 5), vec![0, 4, 8]);
    assert_eq!(window_starts(5, 5), vec![0]);
    let doc: Vec<u32> = vec![4, 5, 6, 7, 8, 9, 10]; // framed: 9 tokens → windows [0..5], [4..9]
    let framed = frame(&doc);
    let s = score_documents(&Model::new(&w, 1), [doc.as_slice()], |_| {});
    assert_eq!(s.tokens, 8);
    // Hand computation from two independent forward passes at positions 0...
    let v = 17;
    let mut nll = 0.0;
    for st in [0usize, 4] {
        let win = &framed[st..st + 5];
        let lg = forward(&w, &win[..4], 0, 1);
        for i in 0..4 {
            let row = &lg[i * v..(i + 1) * v];
            nll += kernels::log_sum_exp(row) - row[win[i + 1] as usize] as f64;
        }
    }
    assert!((s.nll - nll).abs() < 1e-4, "{} vs {nll}", s.nll);
    // count_from skips the prompt's targets.
    let part = windowed_nll(&Model::new(&w, 1), &[&framed], &[5]);
    assert_eq!(part[0].tokens, 4);
}

#[test]
fn attention_rows_sum_to_one_and_are_causal() {
    let w = model(13, 2, 8, 40);
    let (_, at) = forward_with_attention(&w, &[0, 4, 5, 6, 7], 0, 1);
    assert_eq!(at.len(), 2);
    assert_eq!(at[0].len(), 2);
    for layer in &at {
        for head in layer {
            for i in 0..5 {
                let s: f32 = head[i * 5..(i + 1) * 5].iter().sum();
                assert!((s - 1.0).abs() < 1e-5);
                for j in i + 1..5 {
                    assert_eq!(head[i * 5 + j], 0.0);
                }
            }
        }
    }
}

#[test]
fn cached_equals_uncached_batched_on_the_threaded_kernels() {
    // Vocabulary 5000 × d_model 16 crosses the work threshold of the parallel output layer;
    // batch 3 with 2 threads runs attention in parallel over sequences; the odd vocabulary
    // leaves a partial last panel in the packed kernel; 30 tokens pass the context of 8.
    let w = model(5001, 2, 8, 11);
    let prompts: Vec<Vec<u32>> = (0..3)
        .map(|b| (0..5).map(|i| ((i * 7 + b * 13) % 5001) as u32).collect())
        .collect();
    let refs: Vec<&[u32]> = prompts.iter().map(|p| p.as_slice()).collect();
    let opts = GenOptions::default();
    with_threads(2, || {
        let mut cached: Vec<Vec<f32>> = Vec::new();
        let mut dec = Decoder::new(&w, 3, 2);
        let mut s1 = Sampler::new(SamplerConfig::greedy(), 0);
        let mut h1 = |_: usize, l: &[f32]| cached.push(l.to_vec());
        let a = generate_cached(&mut dec, &refs, &[25; 3], &mut s1, &opts, Some(&mut h1));
        let mut unc: Vec<Vec<f32>> = Vec::new();
        let mut s2 = Sampler::new(SamplerConfig::greedy(), 0);
        let mut h2 = |_: usize, l: &[f32]| unc.push(l.to_vec());
        let b = generate_uncached(
            &Model::new(&w, 1),
            &refs,
            &[25; 3],
            &mut s2,
            &opts,
            Some(&mut h2),
        );
        assert_eq!(a, b);
        assert_eq!(cached.len(), 25);
        for (x, y) in cached.iter().zip(&unc) {
            assert!(max_diff(x, y) < 1e-4, "{}", max_diff(x, y));
        }
    });
}

#[test]
fn reorder_forks_histories_beyond_context() {
    // Beams forked, dropped and regrown (reorder) over 30 steps with context 6, 2 layers: every
    // step's cached logits equal the uncached forward pass over each sequence's own history.
    let w = model(17, 2, 6, 7);
    let v = 17;
    for threads in [1, 2] {
        let mut hist: Vec<Vec<u32>> = vec![vec![3, 4, 5], vec![6, 7, 8]];
        let mut dec = Decoder::new(&w, 4, threads);
        let refs: Vec<&[u32]> = hist.iter().map(|h| h.as_slice()).collect();
        with_threads(threads, || dec.prefill(&refs));
        let mut state = 12345u64;
        for step in 0..30 {
            let n = dec.batch();
            // Next batch size 1..=4, each continuing a pseudo-random old sequence.
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let m = 1 + (state >> 33) as usize % 4;
            let src: Vec<usize> = (0..m)
                .map(|i| ((state >> (7 + 5 * i)) as usize) % n)
                .collect();
            hist = src.iter().map(|&s| hist[s].clone()).collect();
            let toks: Vec<u32> = (0..m)
                .map(|i| ((state >> (3 + 4 * i)) % v as u64) as u32)
                .collect();
            for (h, &t) in hist.iter_mut().zip(&toks) {
                h.push(t);
            }
            dec.reorder(&src);
            with_threads(threads, || {
                dec.step(&toks);
            });
            let refs: Vec<&[u32]> = hist.iter().map(|h| h.as_slice()).collect();
            let want = last_logits(&w, &refs, 1);
            assert!(
                max_diff(dec.logits(), &want) < 1e-4,
                "threads {threads} step {step} src {src:?}"
            );
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod bf16;
