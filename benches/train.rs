//! Training throughput at the seed configuration (V 15487, d_model 300, d_attn 304, 8 heads,
//! d_ff 512, 3 layers, batch 32 × 63 tokens, dropout 0.1, frozen embeddings, AdamW) on random
//! weights and tokens, with 1 and 2 threads: the same measurement as `pipe bench train`.
//! `cargo bench --bench train` (BENCH_STEPS=N measured steps, default 4; BENCH_THREADS="1 2";
//! BENCH_PRECISION=f32|bf16, default f32).

use pipe::cli::bench::{measure, Task};
use pipe::model::{ModelConfig, Precision};

fn main() {
    pipe::alloc::keep_freed_memory();
    let steps: usize = std::env::var("BENCH_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4);
    let threads: Vec<usize> = std::env::var("BENCH_THREADS")
        .unwrap_or_else(|_| "1 2".into())
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect();
    let precision: Precision = std::env::var("BENCH_PRECISION")
        .unwrap_or_else(|_| "f32".into())
        .parse()
        .expect("BENCH_PRECISION: f32 or bf16");
    let cfg = ModelConfig::seed(15487);
    for n in threads {
        let r = measure(Task::Train, &cfg, n, steps, precision);
        println!(
            "RESULT pipe train precision={precision} threads={} tok_per_s={:.1} steps={} gflops={:.1}",
            r.threads,
            r.tokens_per_s,
            r.runs,
            r.gflops
        );
    }
}
