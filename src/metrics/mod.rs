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
mod tests {
    #[test]
    fn perplexity_is_exp_mean_nll() {
        assert!((super::perplexity(2.0 * 3.0f64.ln(), 2) - 3.0).abs() < 1e-12);
        assert!(super::perplexity(1.0, 0).is_nan());
    }
}
