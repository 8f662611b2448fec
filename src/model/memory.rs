//! Memory estimates made before allocating: the bytes a model configuration needs for training
//! (parameters, AdamW moments, gradients, activations of one batch × context step), and the
//! machine's available memory (`/proc/meminfo` MemAvailable). The decoding counterpart is
//! `decode::memory`. Estimates count the f32 buffers this crate allocates; allocator overhead and
//! dfdx's own bookkeeping are not included.

use super::config::ModelConfig;
use crate::bytes::saturate;

/// Bytes of one f32.
const F32: u64 = 4;

/// What training a model needs, in bytes, by part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrainingMemory {
    /// The parameters, held three times: the plain weights, dfdx's tensors and the fused ops'
    /// host copies (the embedding has no host copy).
    pub parameters: u64,
    /// AdamW's two moments per trained parameter.
    pub optimizer: u64,
    /// One gradient per trained parameter.
    pub gradients: u64,
    /// Activations kept for the backward pass of one `batch × context` step (each on the tape
    /// and as a host copy), the attention probabilities, and the output layer's logits.
    pub activations: u64,
}

impl TrainingMemory {
    /// The sum of the parts (saturating, as each part does).
    pub fn total(&self) -> u64 {
        self.parameters
            .saturating_add(self.optimizer)
            .saturating_add(self.gradients)
            .saturating_add(self.activations)
    }
}

/// The memory training `c` at `batch` windows of `context` tokens needs.
pub fn training(c: &ModelConfig, batch: usize, freeze_embeddings: bool) -> TrainingMemory {
    // In 128 bits, saturated: an absurd batch or context never wraps around to a small number.
    let p = c.n_params() as u128;
    let emb = (c.vocab_size * c.d_model) as u128;
    let trained = if freeze_embeddings { p - emb } else { p };
    let (b, t) = (batch as u128, c.context as u128);
    let n = b * t;
    let (dm, da, df, h) = (
        c.d_model as u128,
        c.d_attn as u128,
        c.d_ff as u128,
        c.n_heads as u128,
    );
    // Per block and row: ln1 (x̂ and y), attn_in, q, k, v, attention output, attn.o,
    // attn_out, residual, ln2 (x̂ and y), ff.up, ff.down, residual; each twice (tape tensor and
    // host copy). Plus the probabilities `[b, h, t, t]`.
    let per_block = n * 2 * (2 * dm + 6 * da + dm + dm + 2 * dm + df + dm + dm) + b * h * t * t;
    // Embedding and ln_f (twice each), then the logits of the output layer.
    let outer = n * 2 * (dm + 2 * dm) + n * c.vocab_size as u128;
    let f32s = F32 as u128;
    TrainingMemory {
        parameters: saturate(f32s * (3 * p - emb)),
        optimizer: saturate(f32s * 2 * trained),
        gradients: saturate(f32s * trained),
        activations: saturate(f32s * (c.n_layers as u128 * per_block + outer)),
    }
}

/// The memory the system can give this process without swapping (`MemAvailable` of
/// `/proc/meminfo`), or `None` where that is not known.
pub fn available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_mem_available(&text)
}

/// `MemAvailable: <n> kB` of a `/proc/meminfo` text, in bytes.
fn parse_mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let mut parts = line["MemAvailable:".len()..].split_whitespace();
    let n: u64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") => Some(n * 1024),
        None => Some(n),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Weights;
    use rand::SeedableRng;

    fn tiny() -> ModelConfig {
        ModelConfig {
            vocab_size: 37,
            d_model: 8,
            d_attn: 12,
            n_heads: 3,
            d_ff: 20,
            n_layers: 2,
            context: 6,
        }
    }

    /// The parameter, moment and gradient parts count exactly the tensors of real weights.
    #[test]
    fn parameter_parts_match_the_real_weights() {
        let c = tiny();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let w = Weights::init(&c, &mut rng);
        let named = w.named();
        let all: u64 = named.iter().map(|(_, _, d)| d.len() as u64).sum();
        let emb = named[0].2.len() as u64;
        assert_eq!(named[0].0, "tok_emb.weight");
        for freeze in [false, true] {
            let m = training(&c, 4, freeze);
            let trained = if freeze { all - emb } else { all };
            assert_eq!(m.parameters, 4 * (3 * all - emb));
            assert_eq!(m.optimizer, 8 * trained);
            assert_eq!(m.gradients, 4 * trained);
        }
        // Activations grow with the batch; the logits alone are batch · context · V floats.
        let (a4, a8) = (training(&c, 4, true), training(&c, 8, true));
        assert!(a8.activations > a4.activations);
        assert!(a4.activations >= 4 * (4 * 6 * 37));
        assert_eq!(
            a4.total(),
            a4.parameters + a4.optimizer + a4.gradients + a4.activations
        );
    }

    /// A batch and context whose activations overflow 64 bits saturate instead of wrapping
    /// around to a size that would pass the check.
    #[test]
    fn an_absurd_batch_saturates() {
        let c = ModelConfig {
            context: 1 << 20,
            ..tiny()
        };
        let m = training(&c, 1 << 40, false);
        assert_eq!(m.activations, u64::MAX);
        assert_eq!(m.total(), u64::MAX);
        assert!(training(&tiny(), 4, false).total() < 1 << 30);
    }

    #[test]
    fn mem_available_is_read_in_bytes() {
        let text = "MemTotal:       16000000 kB\nMemFree:  100 kB\nMemAvailable:    8000000 kB\n";
        assert_eq!(parse_mem_available(text), Some(8_000_000 * 1024));
        assert_eq!(parse_mem_available("MemFree: 1 kB\n"), None);
        if std::path::Path::new("/proc/meminfo").exists() {
            assert!(available().is_some_and(|b| b > 0));
        }
    }
}
