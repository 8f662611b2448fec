//! Wall and CPU time of each phase of one training step of the seed configuration (random
//! weights and tokens, 2 threads by default, f32 or bf16 products):
//! `cargo run --release --example train_phases [threads] [f32|bf16]`.

use dfdx::prelude::*;
use pipe::model::adamw::{AdamWConfig, AdamWState};
use pipe::model::net::{Dropout, Net};
use pipe::model::ops::head_loss;
use pipe::model::train::trainable_slots;
use pipe::model::{ModelConfig, Precision, Weights};
use rand::{Rng, SeedableRng};
use std::time::Instant;

fn main() {
    let threads: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("threads"))
        .unwrap_or(2);
    let precision: Precision = std::env::args()
        .nth(2)
        .map(|s| s.parse().expect("precision"))
        .unwrap_or_default();
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .start_handler(|_| pipe::simd::denormals::flush_on_this_thread())
        .build_global()
        .expect("pool");
    pipe::alloc::keep_freed_memory();
    let cfg = ModelConfig::seed(15487);
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let mut w = Weights::init(&cfg, &mut rng);
    let (b, t) = (32usize, 63usize);
    let dev = Cpu::default();
    let mut net = Net::from_weights_in(&w, &dev, precision);
    let trainable = trainable_slots(&w, true);
    let mut opt = AdamWState::new(&w, &trainable);
    let acfg = AdamWConfig {
        weight_decay: 0.01,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
    };
    let mut totals = [0.0f64; 6];
    let mut cpus = [0.0f64; 6];
    let names = ["forward", "loss", "backward", "grads", "adamw", "load"];
    let steps = 6;
    for s in 0..steps {
        let inp: Vec<u32> = (0..b * t).map(|_| rng.gen_range(4..15487)).collect();
        let tgt: Vec<u32> = (0..b * t)
            .map(|i| {
                if i % t + 3 >= t {
                    2
                } else {
                    rng.gen_range(4..15487)
                }
            })
            .collect();
        let wts: Vec<f32> = tgt
            .iter()
            .map(|&x| if x == 2 { 0.0 } else { 1.0 / 1920.0 })
            .collect();
        let drop = Dropout::new(0.1, s as u64);
        let mut lap = Vec::new();
        let mut cpu = Vec::new();
        let c0 = cpu_s();
        let t0 = Instant::now();
        let x = net.embed_traced(&inp, t, false);
        let h = net.hidden(x, b, t, Some(&drop));
        lap.push(t0.elapsed().as_secs_f64());
        cpu.push(cpu_s() - c0);
        let loss = head_loss(h, &net.head, &tgt, &wts);
        lap.push(t0.elapsed().as_secs_f64());
        cpu.push(cpu_s() - c0);
        let mut g = loss.backward();
        lap.push(t0.elapsed().as_secs_f64());
        cpu.push(cpu_s() - c0);
        let grads = net.grads(&mut g, false);
        drop_grads(g);
        lap.push(t0.elapsed().as_secs_f64());
        cpu.push(cpu_s() - c0);
        opt.update(&acfg, 3e-4, &mut w, &grads);
        lap.push(t0.elapsed().as_secs_f64());
        cpu.push(cpu_s() - c0);
        net.load_weights(&w);
        lap.push(t0.elapsed().as_secs_f64());
        cpu.push(cpu_s() - c0);
        if s >= 2 {
            let (mut prev, mut prev_c) = (0.0, 0.0);
            for (i, (l, c)) in lap.iter().zip(&cpu).enumerate() {
                totals[i] += l - prev;
                cpus[i] += c - prev_c;
                prev = *l;
                prev_c = *c;
            }
        }
    }
    let n = (steps - 2) as f64;
    let total: f64 = totals.iter().sum::<f64>() / n;
    let total_c: f64 = cpus.iter().sum::<f64>() / n;
    println!("{precision}, {threads} threads");
    for ((name, v), c) in names.iter().zip(totals).zip(cpus) {
        println!(
            "{name:>9}: {:7.1} ms wall {:7.1} ms cpu",
            v / n * 1e3,
            c / n * 1e3
        );
    }
    println!(
        "{:>9}: {:7.1} ms wall {:7.1} ms cpu = {:.0} tokens/s, {:.0} tokens per cpu second",
        "step",
        total * 1e3,
        total_c * 1e3,
        (b * t) as f64 / total,
        (b * t) as f64 / total_c
    );
}

/// CPU time (user + system) of the process so far, in seconds.
fn cpu_s() -> f64 {
    // SAFETY: `rusage` is plain data, for which all-zero bytes are a valid value.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage only writes the struct it is given.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

fn drop_grads(g: Gradients<f32, Cpu>) {
    drop(g);
}
