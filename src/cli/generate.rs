//! `pipe generate`: continue a prompt with a checkpoint, by sampling (temperature, top-k,
//! top-p) or beam search, and print the continuation.

use crate::decode::{
    beam_search, generate_cached, load_model, with_threads, BeamConfig, Decoder, GenOptions,
    Sampler, SamplerConfig,
};
use crate::error::{PipeError, Result};
use crate::text::{EOS, PAD, SOS};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct GenerateArgs {
    /// Checkpoint (`epoch_N.safetensors` with its `epoch_N.json` sidecar).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// The `vocab.json` the checkpoint was trained with.
    #[arg(long)]
    pub vocab: PathBuf,
    /// The prompt text (tokenized like the training data; `<sos>` is prepended).
    #[arg(long)]
    pub prompt: String,
    /// Beam search of this width instead of sampling.
    #[arg(long, conflicts_with_all = ["temperature", "top_k", "top_p"])]
    pub beam: Option<usize>,
    /// Length penalty exponent for beam search (score / length^alpha).
    #[arg(long, default_value_t = 0.6, requires = "beam")]
    pub alpha: f32,
    /// Sampling temperature (0 = greedy).
    #[arg(long, default_value_t = 0.8)]
    pub temperature: f32,
    /// Keep only the k most likely tokens (0 = off).
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    /// Keep the smallest set of tokens holding this probability mass (1 = off).
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    /// Maximum number of new tokens.
    #[arg(long, default_value_t = 50)]
    pub max_new: usize,
    /// Seed of the sampler.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Threads (default: all available).
    #[arg(long)]
    pub threads: Option<usize>,
}

pub fn run(a: GenerateArgs) -> Result<i32> {
    let (ck, vocab) =
        load_model(&a.checkpoint, &a.vocab).map_err(|e| PipeError::Config(e.to_string()))?;
    let mut prompt = vec![SOS];
    prompt.extend(vocab.encode(&a.prompt));
    let threads = a.threads.unwrap_or_else(crate::decode::default_threads);
    let banned = vec![SOS, PAD];
    let w = &ck.weights;
    let mut toks = if let Some(k) = a.beam {
        if k == 0 {
            return Err(PipeError::Config("--beam must be at least 1".into()));
        }
        if a.alpha.is_nan() || a.alpha < 0.0 {
            return Err(PipeError::Config("--alpha must be >= 0".into()));
        }
        with_threads(threads, || {
            let mut dec = Decoder::new(w, k, threads);
            let cfg = BeamConfig {
                width: k,
                max_new: a.max_new,
                alpha: a.alpha,
                eos: Some(EOS),
                banned,
            };
            beam_search(&mut dec, &prompt, &cfg)
                .into_iter()
                .next()
                .map(|h| h.tokens)
                .unwrap_or_default()
        })
    } else {
        let sc = SamplerConfig {
            temperature: a.temperature,
            top_k: a.top_k,
            top_p: a.top_p,
        };
        sc.validate()
            .map_err(|e| PipeError::Config(format!("--{}", e.replace('_', "-"))))?;
        with_threads(threads, || {
            let mut dec = Decoder::new(w, 1, threads);
            let mut s = Sampler::new(sc, a.seed);
            let opts = GenOptions {
                stop_at_eos: true,
                banned,
            };
            generate_cached(&mut dec, &[&prompt], &[a.max_new], &mut s, &opts, None)
                .pop()
                .unwrap_or_default()
        })
    };
    if toks.last() == Some(&EOS) {
        toks.pop();
    }
    println!("{}", vocab.decode(&toks));
    Ok(0)
}
