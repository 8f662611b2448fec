//! bf16 decoding for every kernel path this CPU runs (AMX, AVX512-BF16, the portable rounded
//! f32 panels): logits within 2% (relative L2) of f32's; the cached decoder (one row through
//! the row kernel, several through the block kernels) against the uncached pass in the same
//! precision within 1e-4 of the logits' scale, with the same greedy tokens; the packed copy at
//! about half the bytes.

use crate::decode::*;
use crate::model::{ModelConfig, Weights};
use crate::simd::bf16::{available, Kernel, Products};
use rand::SeedableRng;

fn weights() -> Weights {
    let cfg = ModelConfig {
        vocab_size: 301,
        d_model: 40,
        d_attn: 36,
        n_heads: 3,
        d_ff: 70,
        n_layers: 2,
        context: 25,
    };
    Weights::init(&cfg, &mut rand::rngs::StdRng::seed_from_u64(91))
}

fn kernels() -> Vec<Kernel> {
    let all = [Kernel::Amx, Kernel::Avx512Bf16, Kernel::Portable];
    for k in all.iter().filter(|&&k| !available(k)) {
        eprintln!("bf16 path {} not tested: this CPU lacks it", k.name());
    }
    all.into_iter().filter(|&k| available(k)).collect()
}

fn rel_l2(a: &[f32], b: &[f32]) -> f64 {
    let d: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
    let n: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    (d / n).sqrt()
}

fn max_abs(a: &[f32]) -> f32 {
    a.iter().fold(0.0f32, |m, x| m.max(x.abs()))
}

#[test]
fn bf16_logits_match_f32_for_every_kernel() {
    let w = weights();
    let toks: Vec<u32> = (0..40).map(|i| (i * 37 % 297 + 4) as u32).collect();
    let seqs: Vec<&[u32]> = vec![&toks[..30], &toks[5..40], &toks[..12]];
    let f32s = last_logits_with(&Model::new(&w, 2), &seqs);
    for k in kernels() {
        let m = Model::with_products(&w, 2, Products::Bf16(k));
        let got = with_threads(2, || last_logits_with(&m, &seqs));
        let rel = rel_l2(&got, &f32s);
        assert!(rel < 0.02, "{}: logits off by {rel}", k.name());
    }
}

#[test]
fn bf16_cached_decoding_matches_uncached_for_every_kernel() {
    let w = weights();
    let v = w.config.vocab_size;
    let prompts: Vec<Vec<u32>> = (0..3)
        .map(|b| {
            (0..7)
                .map(|i| ((i * 11 + b * 5) % 297 + 4) as u32)
                .collect()
        })
        .collect();
    let refs: Vec<&[u32]> = prompts.iter().map(|p| p.as_slice()).collect();
    for k in kernels() {
        for batch in [1, 3] {
            let m = Model::with_products(&w, 2, Products::Bf16(k));
            let opts = GenOptions::default();
            let (mut la, mut lb) = (Vec::new(), Vec::new());
            let mut keep_a = |_: usize, l: &[f32]| la.push(l.to_vec());
            let mut keep_b = |_: usize, l: &[f32]| lb.push(l.to_vec());
            let max_new = vec![30; batch];
            let (a, b) = with_threads(2, || {
                let mut dec = Decoder::with_model(m.clone(), batch);
                let mut s = Sampler::new(SamplerConfig::greedy(), 0);
                let a = generate_cached(
                    &mut dec,
                    &refs[..batch],
                    &max_new,
                    &mut s,
                    &opts,
                    Some(&mut keep_a),
                );
                let mut s = Sampler::new(SamplerConfig::greedy(), 0);
                let b = generate_uncached(
                    &m,
                    &refs[..batch],
                    &max_new,
                    &mut s,
                    &opts,
                    Some(&mut keep_b),
                );
                (a, b)
            });
            assert_eq!(a, b, "{} batch {batch}: tokens differ", k.name());
            for (step, (x, y)) in la.iter().zip(&lb).enumerate() {
                assert_eq!(x.len(), batch * v);
                let tol = 1e-4 * (1.0 + max_abs(y));
                let d = x
                    .iter()
                    .zip(y)
                    .map(|(p, q)| (p - q).abs())
                    .fold(0.0f32, f32::max);
                assert!(d <= tol, "{} batch {batch} step {step}: {d}", k.name());
            }
        }
    }
}

#[test]
fn the_bf16_packed_copy_is_half_the_f32_one() {
    // Widths that are multiples of 32 (tiles pad to 32 where f32 panels pad to 16).
    let cfg = ModelConfig {
        vocab_size: 320,
        d_model: 64,
        d_attn: 64,
        n_heads: 4,
        d_ff: 128,
        n_layers: 2,
        context: 8,
    };
    let w = Weights::init(&cfg, &mut rand::rngs::StdRng::seed_from_u64(92));
    let f32s = Model::new(&w, 1).packed_bytes();
    if available(Kernel::Avx512Bf16) {
        let b = Model::with_products(&w, 1, Products::Bf16(Kernel::Avx512Bf16)).packed_bytes();
        // Weights at 2 bytes instead of 4; the f32 biases stay.
        assert!(b * 100 <= f32s * 51, "bf16 {b} vs f32 {f32s}");
    }
    let portable = Model::with_products(&w, 1, Products::Bf16(Kernel::Portable)).packed_bytes();
    assert_eq!(portable, f32s, "the portable path keeps f32 panels");
}
