//! Wall time of each phase of one training step of the seed configuration (random weights and
//! tokens, 2 threads by default): `cargo run --release --example train_phases [threads]`.

use dfdx::prelude::*;
use pipe::model::adamw::{AdamWConfig, AdamWState};
use pipe::model::net::{Dropout, Net};
use pipe::model::ops::head_loss;
use pipe::model::train::trainable_slots;
use pipe::model::{ModelConfig, Weights};
use rand::{Rng, SeedableRng};
use std::time::Instant;

fn main() {
    let threads: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("threads"))
        .unwrap_or(2);
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .expect("pool");
    pipe::alloc::keep_freed_memory();
    let cfg = ModelConfig::seed(15487);
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let mut w = Weights::init(&cfg, &mut rng);
    let (b, t) = (32usize, 63usize);
    let dev = Cpu::default();
    let mut net = Net::from_weights(&w, &dev);
    let trainable = trainable_slots(&w, true);
    let mut opt = AdamWState::new(&w, &trainable);
    let acfg = AdamWConfig {
        weight_decay: 0.01,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
    };
    let mut totals = [0.0f64; 6];
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
        let t0 = Instant::now();
        let x = net.embed_traced(&inp, t, false);
        let h = net.hidden(x, b, t, Some(&drop));
        lap.push(t0.elapsed().as_secs_f64());
        let loss = head_loss(h, &net.head, &tgt, &wts);
        lap.push(t0.elapsed().as_secs_f64());
        let mut g = loss.backward();
        lap.push(t0.elapsed().as_secs_f64());
        let grads = net.grads(&mut g, false);
        drop_grads(g);
        lap.push(t0.elapsed().as_secs_f64());
        opt.update(&acfg, 3e-4, &mut w, &grads);
        lap.push(t0.elapsed().as_secs_f64());
        net.load_weights(&w);
        lap.push(t0.elapsed().as_secs_f64());
        if s >= 2 {
            let mut prev = 0.0;
            for (i, l) in lap.iter().enumerate() {
                totals[i] += l - prev;
                prev = *l;
            }
        }
    }
    let n = (steps - 2) as f64;
    let total: f64 = totals.iter().sum::<f64>() / n;
    for (name, v) in names.iter().zip(totals) {
        println!("{name:>9}: {:7.1} ms", v / n * 1e3);
    }
    println!(
        "{:>9}: {:7.1} ms = {:.0} tokens/s",
        "step",
        total * 1e3,
        (b * t) as f64 / total
    );
}

fn drop_grads(g: Gradients<f32, Cpu>) {
    drop(g);
}
