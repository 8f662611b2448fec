//! Decoding throughput at the seed configuration on random weights (the protocol of
//! ../shared/bench/torch_reference.py): decode1 = one sequence, prompt 5, generated to 64
//! tokens; decode20 = batch 20, prompt 5, 95 new (cache and no cache); beam10 = width 10, 59 new.
//! Usage: cargo run --release --example decode_speed [threads]

use pipe::decode::*;
use pipe::model::{ModelConfig, Weights};
use rand::{Rng, SeedableRng};
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let threads: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2);
    let cfg = ModelConfig::seed(15487);
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let w = Weights::init(&cfg, &mut rng);
    let prompts: Vec<Vec<u32>> = (0..20)
        .map(|_| (0..5).map(|_| rng.gen_range(1..15487)).collect())
        .collect();
    let greedy = GenOptions::default();
    with_threads(threads, || {
        let mut dec = Decoder::new(&w, 20, threads);
        let mut run = |name: &str, b: usize, new: usize, cache: bool, reps: usize| {
            let refs: Vec<&[u32]> = prompts[..b].iter().map(|p| p.as_slice()).collect();
            let mut r = Vec::new();
            for _ in 0..reps {
                let mut s = Sampler::new(SamplerConfig::greedy(), 0);
                let t0 = Instant::now();
                if cache {
                    generate_cached(&mut dec, &refs, &vec![new; b], &mut s, &greedy, None);
                } else {
                    generate_uncached(&w, &refs, &vec![new; b], &mut s, &greedy, threads, None);
                }
                r.push((b * new) as f64 / t0.elapsed().as_secs_f64());
            }
            println!(
                "{name}: {:.1} tokens/s (threads {threads}, median of {reps})",
                median(r)
            );
        };
        run("decode1 cache", 1, 59, true, 5);
        run("decode1 nocache", 1, 59, false, 3);
        run("decode20 cache", 20, 95, true, 3);
        run("decode20 nocache", 20, 95, false, 1);
        let mut dec10 = Decoder::new(&w, 10, threads);
        let cfgb = BeamConfig {
            width: 10,
            max_new: 59,
            alpha: 0.0,
            eos: None,
            banned: vec![],
        };
        let mut r = Vec::new();
        for _ in 0..3 {
            let t0 = Instant::now();
            let h = beam_search(&mut dec10, &prompts[0], &cfgb);
            r.push(h[0].tokens.len() as f64 / t0.elapsed().as_secs_f64());
        }
        println!(
            "beam10: {:.1} tokens/s of output (threads {threads})",
            median(r)
        );
    });
}
