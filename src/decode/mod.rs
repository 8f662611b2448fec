//! Decoding over plain [`crate::model::Weights`], without autodiff: the full forward pass
//! (optionally returning attention weights), incremental decoding with an explicit,
//! preallocated per-layer KV cache for a batch of sequences, seeded samplers, beam search
//! batched through the cache, and windowed NLL scoring for perplexity.
//!
//! # Sequences longer than `context`
//!
//! Every token keeps its absolute position (the sinusoidal table is defined for any position)
//! and each query attends to itself and at most the `context − 1` tokens before it
//! (sliding-window attention; within a training window this is the ordinary causal mask).
//!
//! - The cached path ([`Decoder`]) keeps, per layer, a ring buffer of `context` keys/values per
//!   sequence: position `p` lives in slot `p % context`, so the oldest entry is dropped when a
//!   new one arrives.
//! - The uncached path ([`last_logits`], [`generate_uncached`]) recomputes, for the next-token
//!   logits, the trailing `n_layers · (context − 1) + 1` tokens (the receptive field of the
//!   last position under that mask) at their absolute positions with the same sliding-window
//!   mask. Keys and values of deeper layers therefore see exactly the windows they saw when the
//!   cache was filled, and both paths give the same logits (up to float rounding, ≤ 1e-4) and
//!   the same tokens. (Recomputing only the last `context` tokens would not: in layers ≥ 2 the
//!   early tokens of that window would lose the history they were cached with.)
//!
//! # Scoring
//!
//! [`windowed_nll`] / [`score_documents`] cut a framed document `<sos> … <eos>` into windows of
//! `context` tokens sharing one token (starts 0, context−1, 2·(context−1), …); each window is an
//! independent input at positions 0…, the model reads all but its last token and predicts the
//! next one at each position: every token after the first is predicted exactly once.

pub mod beam;
pub mod decoder;
pub mod forward;
pub mod generate;
pub mod kernels;
pub mod kv_compare;
pub mod memory;
pub mod model;
pub mod sample;

#[cfg(test)]
mod tests;

pub use beam::{beam_search, length_score, BeamConfig, Hypothesis};
pub use decoder::Decoder;
pub use forward::{
    final_hidden, final_hidden_with, forward, forward_with_attention, frame, last_logits,
    last_logits_with, receptive_field, score_documents, scoring_batch, window_starts, windowed_nll,
    Attention, NllSum, Segment,
};
pub use generate::{generate_cached, generate_uncached, GenOptions, LogitsHook};
pub use model::Model;
pub use sample::{argmax, Sampler, SamplerConfig};

/// Runs `f` on a rayon pool of `threads` threads (the decode kernels parallelise with rayon).
pub fn with_threads<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    match rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build()
    {
        Ok(pool) => pool.install(f),
        Err(_) => f(),
    }
}

/// Errors loading a model for decoding; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Checkpoint(#[from] crate::model::checkpoint::CheckpointError),
    #[error(transparent)]
    Vocab(#[from] crate::text::vocab::VocabError),
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(
        "checkpoint {} was trained with a different vocabulary: its sidecar says vocab_blake3 \
         {want}, but {} hashes to {got}",
        ckpt.display(),
        vocab.display()
    )]
    VocabMismatch {
        ckpt: std::path::PathBuf,
        vocab: std::path::PathBuf,
        want: String,
        got: String,
    },
    #[error("checkpoint {}: {source}", ckpt.display())]
    Memory {
        ckpt: std::path::PathBuf,
        source: Box<memory::TooLarge>,
    },
    #[error("{}: {got} tokens, but checkpoint {} has vocab_size {want}", vocab.display(), ckpt.display())]
    VocabSize {
        ckpt: std::path::PathBuf,
        vocab: std::path::PathBuf,
        want: usize,
        got: usize,
    },
}

/// Loads a checkpoint and a `vocab.json` for the decoding `work(config)` describes (a function
/// of the model's config, read from the sidecar). The memory that needs (weights, packed
/// weights, KV cache, new tokens, search buffers, scratch: `memory::estimate`) is estimated from
/// the sidecar first, so a workload that cannot fit is refused before anything is allocated. The pair is
/// refused when the vocabulary's blake3 differs from the sidecar's `vocab_blake3` (or its size
/// from the model's).
pub fn load_model(
    checkpoint: &std::path::Path,
    vocab: &std::path::Path,
    work: impl FnOnce(&crate::model::ModelConfig) -> memory::Workload,
) -> Result<(crate::model::Checkpoint, crate::text::Vocab), LoadError> {
    let meta = crate::model::Checkpoint::read_meta(checkpoint)?;
    memory::check(&meta.config, &work(&meta.config)).map_err(|source| LoadError::Memory {
        ckpt: checkpoint.to_path_buf(),
        source,
    })?;
    let ck = crate::model::Checkpoint::load(checkpoint)?;
    let bytes = std::fs::read(vocab).map_err(|source| LoadError::Io {
        path: vocab.to_path_buf(),
        source,
    })?;
    let got = blake3::hash(&bytes).to_hex().to_string();
    if got != ck.meta.vocab_blake3 {
        return Err(LoadError::VocabMismatch {
            ckpt: checkpoint.to_path_buf(),
            vocab: vocab.to_path_buf(),
            want: ck.meta.vocab_blake3.clone(),
            got,
        });
    }
    let v = crate::text::Vocab::load(vocab)?;
    if v.len() != ck.meta.config.vocab_size {
        return Err(LoadError::VocabSize {
            ckpt: checkpoint.to_path_buf(),
            vocab: vocab.to_path_buf(),
            want: ck.meta.config.vocab_size,
            got: v.len(),
        });
    }
    Ok((ck, v))
}

/// Default thread count for command-line use: the available parallelism.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
