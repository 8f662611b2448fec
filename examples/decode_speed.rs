//! Decoding throughput at the seed configuration on random weights (the protocol of
//! ../shared/bench/torch_reference.py, through the same code as `pipe bench`): decode1,
//! decode20 (cache and no cache) and beam10, in f32 and bf16.
//! Usage: cargo run --release --example decode_speed [threads]

use pipe::cli::bench::{measure, Task};
use pipe::model::{ModelConfig, Precision};

fn main() {
    let threads: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2);
    let cfg = ModelConfig::seed(15487);
    for (task, runs) in [
        (Task::Decode1, 5),
        (Task::Decode20, 3),
        (Task::Decode20Nocache, 1),
        (Task::Beam10, 3),
    ] {
        for precision in [Precision::F32, Precision::Bf16] {
            let r = measure(task, &cfg, threads, runs, precision);
            println!(
                "{} {precision}: {:.1} tokens/s (threads {threads}, median of {runs})",
                r.task, r.tokens_per_s
            );
        }
    }
}
