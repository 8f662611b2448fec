//! Wall and CPU time of each fused training op (forward + backward) at the seed configuration's
//! shapes: `cargo run --release --example ops_bench [threads] [f32|bf16]`. For a profiler:
//! `PIPE_OPS_ONLY=attention PIPE_OPS_REPEAT=60 perf record target/release/examples/ops_bench 1`.

use dfdx::prelude::*;
use pipe::model::net::Net;
use pipe::model::ops;
use pipe::model::{ModelConfig, Weights};
use rand::SeedableRng;
use std::time::Instant;

/// CPU time (user + system) of the process so far, in seconds.
fn cpu_s() -> f64 {
    // SAFETY: `rusage` is plain data, for which all-zero bytes are a valid value.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage only writes the struct it is given.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// Times `f` (best of 5 after a warm-up), or, when `PIPE_OPS_REPEAT=N` and `PIPE_OPS_ONLY` is
/// part of `name`, just runs it N times (for a profiler).
fn time(name: &str, mut f: impl FnMut()) {
    let only = std::env::var("PIPE_OPS_ONLY").unwrap_or_default();
    if !name.contains(only.as_str()) {
        return;
    }
    if let Some(n) = std::env::var("PIPE_OPS_REPEAT")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        for _ in 0..n {
            f();
        }
        return;
    }
    f();
    let (mut best, mut cpu) = (f64::MAX, f64::MAX);
    for _ in 0..5 {
        let (t, c) = (Instant::now(), cpu_s());
        f();
        best = best.min(t.elapsed().as_secs_f64());
        cpu = cpu.min(cpu_s() - c);
    }
    println!(
        "{name:>22}: {:7.2} ms wall {:7.2} ms cpu",
        best * 1e3,
        cpu * 1e3
    );
}

fn main() {
    let threads: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("threads"))
        .unwrap_or(2);
    let precision: pipe::model::Precision = std::env::args()
        .nth(2)
        .map(|s| s.parse().expect("precision"))
        .unwrap_or_default();
    println!("{precision}, {threads} threads");
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .start_handler(|_| pipe::simd::denormals::flush_on_this_thread())
        .build_global()
        .expect("pool");
    pipe::alloc::keep_freed_memory();
    let cfg = ModelConfig {
        n_layers: 1,
        ..ModelConfig::seed(15487)
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let w = Weights::init(&cfg, &mut rng);
    let dev = Cpu::default();
    let net = Net::from_weights_in(&w, &dev, precision);
    let (b, t) = (32usize, 63usize);
    let n = b * t;
    let x: Tensor<(usize, usize), f32, Cpu> = dev.sample_normal_like(&(n, 300));
    let a: Tensor<(usize, usize), f32, Cpu> = dev.sample_normal_like(&(n, 304));
    let blk = &net.blocks[0];
    let bw = |y: ops::Act| {
        let _ = y.t.sum().backward();
    };
    let xa = || ops::Act::from_tensor(x.leaky_trace());
    let aa = || ops::Act::from_tensor(a.leaky_trace());
    time("layer_norm", || bw(ops::layer_norm(xa(), &blk.ln1)));
    time("linear 300->304", || {
        bw(ops::linear(xa(), &blk.attn_in, false))
    });
    time("linear 304->304", || bw(ops::linear(aa(), &blk.q, false)));
    time("linear 300->512 relu", || {
        bw(ops::linear(xa(), &blk.ff_up, true))
    });
    time("attention", || {
        bw(ops::attention(aa(), aa(), aa(), (b, t, 8)))
    });
    let m = ops::DropMask { p: 0.1, seed: 3 };
    time("residual+dropout", || {
        bw(ops::residual(xa(), xa(), Some(m)))
    });
    time("as_vec + sum (baseline)", || bw(xa()));
    let tg: Vec<u32> = (0..n as u32).map(|i| 4 + i % 15000).collect();
    let wt = vec![1.0 / n as f32; n];
    time("head_loss", || {
        let _ = ops::head_loss(xa(), &net.head, &tg, &wt).backward();
    });
}
