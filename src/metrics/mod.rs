//! Evaluation metrics with fixed definitions (DESIGN.md section 6): corpus BLEU exactly as
//! sacreBLEU computes it by default, the seed study's mean sentence BLEU, and perplexity.

pub mod bleu;

pub use bleu::{
    corpus_bleu, sentence_bleu_seed, sentence_mean, tokenize_13a, BleuError, BleuOptions,
    BleuScore, Tokenize,
};

/// Perplexity from a summed negative log-likelihood (nats) over `tokens` predictions:
/// `exp(nll / tokens)` (NaN when nothing was predicted).
pub fn perplexity(nll: f64, tokens: usize) -> f64 {
    if tokens == 0 {
        return f64::NAN;
    }
    (nll / tokens as f64).exp()
}

#[cfg(test)]
mod tests;
