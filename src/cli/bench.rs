//! `pipe bench`: training and decoding throughput of the seed configuration on random weights
//! and tokens, with the protocol of `../shared/bench/torch_reference.py`, so a machine can be
//! sized and pipe compared with the PyTorch reference back to back.

use crate::decode::{
    beam_search, generate_cached, generate_uncached, with_threads, BeamConfig, Decoder, GenOptions,
    Sampler, SamplerConfig,
};
use crate::error::{PipeError, Result};
use crate::model::adamw::AdamWConfig;
use crate::model::batches::{Examples, PAD};
use crate::model::train::{Schedule, TrainConfig, Trainer};
use crate::model::{ModelConfig, Weights};
use rand::{Rng, SeedableRng};
use std::time::Instant;

/// What to measure.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// Training: batch 32 × (context − 1) tokens, forward, backward and AdamW.
    Train,
    /// One sequence, prompt 5, generated to 64 tokens, greedy, KV cache.
    Decode1,
    /// Batch 20, prompt 5, 95 new tokens, greedy, KV cache.
    Decode20,
    /// Batch 20, prompt 5, 95 new tokens, greedy, recomputing the forward pass every step.
    #[value(name = "decode20-nocache")]
    Decode20Nocache,
    /// Beam search of width 10 from a 10-token prompt, 50 new tokens.
    Beam10,
}

impl Task {
    /// The name used on the command line and in the JSON output.
    pub fn name(self) -> &'static str {
        match self {
            Task::Train => "train",
            Task::Decode1 => "decode1",
            Task::Decode20 => "decode20",
            Task::Decode20Nocache => "decode20-nocache",
            Task::Beam10 => "beam10",
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// The task to measure.
    #[arg(value_enum)]
    pub task: Task,
    /// Threads (default: the available parallelism; at most 4 per core).
    #[arg(long, value_parser = super::threads_arg, allow_negative_numbers = true)]
    pub threads: Option<usize>,
    /// Print one JSON object instead of a sentence.
    #[arg(long)]
    pub json: bool,
    /// Measured runs (training: steps, after 2 warm-up steps); the median is reported.
    #[arg(long)]
    pub runs: Option<usize>,
    /// Measure a tiny model instead of the seed configuration (for tests).
    #[arg(long, hide = true)]
    pub tiny: bool,
}

/// One measurement: tokens/s is the median over `runs`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchResult {
    pub task: &'static str,
    pub threads: usize,
    pub tokens_per_s: f64,
    pub runs: usize,
    /// Training only: achieved GFLOP/s (matrix products and attention, forward and backward).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gflops: Option<f64>,
}

/// The configuration `--tiny` measures.
pub fn tiny_config() -> ModelConfig {
    ModelConfig {
        vocab_size: 64,
        d_model: 16,
        d_attn: 16,
        n_heads: 2,
        d_ff: 32,
        n_layers: 1,
        context: 16,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// Floating-point operations of one trained token at context `t` (forward + backward = 3 ×
/// forward): every linear layer including the output layer, and causal attention.
pub fn train_flops_per_token(w: &Weights, t: usize) -> f64 {
    let lin = |l: &crate::model::LinearWeights| (l.in_dim * l.out_dim) as f64;
    let per_block: f64 = w
        .blocks
        .iter()
        .map(|b| {
            lin(&b.attn_in)
                + lin(&b.q)
                + lin(&b.k)
                + lin(&b.v)
                + lin(&b.o)
                + lin(&b.attn_out)
                + lin(&b.ff_up)
                + lin(&b.ff_down)
        })
        .sum();
    let c = &w.config;
    // Scores and weighted values: 2 × 2 × d_attn multiply-adds per attended position,
    // (t + 1) / 2 positions on average under the causal mask.
    let attn = (c.n_layers * 2 * c.d_attn) as f64 * (t as f64 + 1.0) / 2.0;
    3.0 * 2.0 * (per_block + lin(&w.head) + attn)
}

/// Random prompts of `len` tokens (ids 4.. so no special token) for `n` sequences.
fn prompts(rng: &mut impl Rng, n: usize, len: usize, v: usize) -> Vec<Vec<u32>> {
    (0..n)
        .map(|_| (0..len).map(|_| rng.gen_range(4..v as u32)).collect())
        .collect()
}

/// Measures `task` on the model shape `cfg` (random weights) with `threads` threads.
pub fn measure(task: Task, cfg: &ModelConfig, threads: usize, runs: usize) -> BenchResult {
    let threads = threads.max(1);
    let runs = runs.max(1);
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let w = Weights::init(cfg, &mut rng);
    let v = cfg.vocab_size;
    let mut gflops = None;
    let tokens_per_s = match task {
        Task::Train => {
            let (b, t, warm) = (32usize, cfg.context - 1, 2usize);
            // Random windows of t + 1 tokens, the last 3 targets padded (as torch_reference.py).
            let mut windows = Vec::with_capacity((warm + runs) * b * (t + 1));
            for _ in 0..(warm + runs) * b {
                for j in 0..=t {
                    windows.push(if j + 3 > t {
                        PAD
                    } else {
                        rng.gen_range(4..v as u32)
                    });
                }
            }
            let ex = Examples {
                context: t,
                windows,
            };
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
            let flops = train_flops_per_token(&w, t);
            let mut tr = Trainer::new(w, tc);
            let mut rates = Vec::new();
            with_threads(threads, || {
                tr.run_epoch(&ex, &mut |s| rates.push(s.tokens_per_s))
                    .expect("training on random tokens")
            });
            let tps = median(rates[warm.min(rates.len() - 1)..].to_vec());
            gflops = Some(tps * flops * 1e-9);
            tps
        }
        Task::Decode1 | Task::Decode20 | Task::Decode20Nocache => {
            let (b, new) = match task {
                Task::Decode1 => (1, 59),
                _ => (20, 95),
            };
            let ps = prompts(&mut rng, b, 5, v);
            let refs: Vec<&[u32]> = ps.iter().map(|p| p.as_slice()).collect();
            let opts = GenOptions::default();
            let cache = task != Task::Decode20Nocache;
            with_threads(threads, || {
                let mut dec = Decoder::new(&w, b, threads);
                let mut once = |new: usize| {
                    let mut s = Sampler::new(SamplerConfig::greedy(), 0);
                    let t0 = Instant::now();
                    let out = if cache {
                        generate_cached(&mut dec, &refs, &vec![new; b], &mut s, &opts, None)
                    } else {
                        generate_uncached(&w, &refs, &vec![new; b], &mut s, &opts, threads, None)
                    };
                    let n: usize = out.iter().map(|o| o.len()).sum();
                    n as f64 / t0.elapsed().as_secs_f64()
                };
                once(4); // warm-up, as the reference
                median((0..runs).map(|_| once(new)).collect())
            })
        }
        Task::Beam10 => {
            let prompt = prompts(&mut rng, 1, 10, v).remove(0);
            let bc = BeamConfig {
                width: 10,
                max_new: 50,
                alpha: 0.0,
                eos: None,
                banned: vec![],
            };
            with_threads(threads, || {
                let mut dec = Decoder::new(&w, bc.width, threads);
                let mut once = |bc: &BeamConfig| {
                    let t0 = Instant::now();
                    let h = beam_search(&mut dec, &prompt, bc);
                    h[0].tokens.len() as f64 / t0.elapsed().as_secs_f64()
                };
                once(&BeamConfig {
                    max_new: 4,
                    ..bc.clone()
                });
                median((0..runs).map(|_| once(&bc)).collect())
            })
        }
    };
    BenchResult {
        task: task.name(),
        threads,
        tokens_per_s,
        runs,
        gflops,
    }
}

/// Runs the benchmark and prints the result.
pub fn run(args: BenchArgs) -> Result<i32> {
    let threads = args.threads.unwrap_or_else(crate::decode::default_threads);
    if threads == 0 {
        return Err(PipeError::usage("--threads must be at least 1"));
    }
    if args.runs == Some(0) {
        return Err(PipeError::usage("--runs must be at least 1"));
    }
    let runs = args
        .runs
        .unwrap_or(if args.task == Task::Train { 4 } else { 3 });
    let cfg = if args.tiny {
        tiny_config()
    } else {
        ModelConfig::seed(15487)
    };
    let r = measure(args.task, &cfg, threads, runs);
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&r).map_err(|e| PipeError::Tool(e.into()))?
        );
    } else {
        print!(
            "{}: {:.1} tokens/s (threads {}, median of {} runs",
            r.task, r.tokens_per_s, r.threads, r.runs
        );
        match r.gflops {
            Some(g) => println!(", {g:.1} GFLOP/s)"),
            None => println!(")"),
        }
    }
    Ok(0)
}
