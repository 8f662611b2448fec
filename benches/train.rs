//! Training throughput at the seed configuration (V 15487, d_model 300, d_attn 304, 8 heads,
//! d_ff 512, 3 layers, batch 32 × 63 tokens, dropout 0.1, frozen embeddings, AdamW) on random
//! weights and tokens, with 1 and 2 threads: prints the median tokens/s over the measured steps.
//! `cargo bench --bench train` (BENCH_STEPS=N measured steps, default 4; BENCH_THREADS="1 2").

use pipe::model::adamw::AdamWConfig;
use pipe::model::batches::{Examples, PAD};
use pipe::model::train::{Schedule, TrainConfig, Trainer};
use pipe::model::{ModelConfig, Weights};
use rand::{Rng, SeedableRng};

/// CPU seconds used by this process so far (all threads).
fn cpu_s() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

fn main() {
    let steps: usize = std::env::var("BENCH_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4);
    let threads: Vec<usize> = std::env::var("BENCH_THREADS")
        .unwrap_or_else(|_| "1 2".into())
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect();
    let cfg = ModelConfig::seed(15487);
    let (b, t) = (32usize, 63usize);
    let warm = 2;
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    // Random windows of t + 1 tokens, the last 3 targets padded (as torch_reference.py).
    let mut windows = Vec::with_capacity((warm + steps) * b * (t + 1));
    for _ in 0..(warm + steps) * b {
        for j in 0..=t {
            windows.push(if j > t - 3 {
                PAD
            } else {
                rng.gen_range(4..15487)
            });
        }
    }
    let ex = Examples {
        context: t,
        windows,
    };
    let weights = Weights::init(&cfg, &mut rng);
    for &n in &threads {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .unwrap();
        let tc = TrainConfig {
            batch_size: b,
            lr: 3e-4,
            adamw: AdamWConfig {
                weight_decay: 0.01,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
            },
            grad_clip: None,
            warmup_steps: 0,
            schedule: Schedule::Constant,
            total_steps: 0,
            freeze_embeddings: true,
            dropout: 0.1,
            data_seed: 1,
            dropout_seed: 2,
        };
        let mut tr = Trainer::new(weights.clone(), tc);
        let mut rates = Vec::new();
        let mut losses = Vec::new();
        let mut cpu = Vec::new();
        let mut last = cpu_s();
        pool.install(|| {
            tr.run_epoch(&ex, &mut |s| {
                let now = cpu_s();
                cpu.push(now - last);
                last = now;
                rates.push(s.tokens_per_s);
                losses.push(s.loss);
            })
            .unwrap()
        });
        let mut measured: Vec<f64> = rates[warm..].to_vec();
        measured.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let k = measured.len();
        let median = if k % 2 == 1 {
            measured[k / 2]
        } else {
            0.5 * (measured[k / 2 - 1] + measured[k / 2])
        };
        println!(
            "RESULT pipe train threads={n} tok_per_s={median:.1} steps={k} min={:.1} max={:.1} step_s={:.3} loss_first={:.4} loss_last={:.4}",
            measured[0],
            measured[k - 1],
            (b * t) as f64 / median,
            losses[0],
            losses[losses.len() - 1]
        );
        let mut c: Vec<f64> = cpu[warm..].to_vec();
        c.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!(
            "CPUTIME pipe train threads={n} cpu_s_per_step_median={:.3} tok_per_cpu_s={:.1}",
            c[k / 2],
            (b * t) as f64 / c[k / 2]
        );
    }
}
