//! The memory a [`super::Decoder`] needs before it is built: the weights, their packed copy, the
//! KV cache for `batch × context` positions and the decoding scratch, and the check made before
//! loading a model (the training counterpart and the machine's available memory are in
//! `model::memory`).

use super::kernels::PANEL;
use crate::bytes::saturate;
use crate::model::{Block, ModelConfig};

/// Bytes of one f32.
const F32: u64 = 4;

/// What decoding with a model needs, in bytes, by part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodingMemory {
    /// The plain weights.
    pub weights: u64,
    /// The linear layers repacked into panels of `PANEL` output columns (the last padded).
    pub packed: u64,
    /// Keys and values of every layer for `batch × context` positions.
    pub kv_cache: u64,
    /// Activations of `batch × context` rows, the logits and the slot tables.
    pub scratch: u64,
}

impl DecodingMemory {
    /// The sum of the parts (saturating, as each part does).
    pub fn total(&self) -> u64 {
        self.weights
            .saturating_add(self.packed)
            .saturating_add(self.kv_cache)
            .saturating_add(self.scratch)
    }
}

/// Floats of one linear layer `[out, in]` once packed: whole panels plus the bias.
fn packed_floats(out: usize, inp: usize) -> u128 {
    (out.div_ceil(PANEL) as u128) * PANEL as u128 * inp as u128 + out as u128
}

/// The memory a decoder for up to `batch` sequences of model `c` needs.
pub fn decoding(c: &ModelConfig, batch: usize) -> DecodingMemory {
    let b = batch.max(1) as u128;
    let rows = b * c.context as u128;
    let shapes = Block::shapes(c);
    let mut block = 0;
    shapes.map(|&(o, i)| block += packed_floats(o, i), |_| ());
    let packed = c.n_layers as u128 * block + packed_floats(c.vocab_size, c.d_model);
    let (dm, da, df) = (c.d_model as u128, c.d_attn as u128, c.d_ff as u128);
    let kv = 2 * c.n_layers as u128 * rows * da;
    // Residual stream and block scratch per row, the last rows and their logits, the score
    // scratch; the slot tables and token/position ids are u32/usize per row.
    let scratch = rows * (2 * dm + 6 * da + df)
        + b * (2 * dm + c.vocab_size as u128 + c.n_heads as u128 * c.context as u128);
    let tables = 2 * rows * 4 + rows * (4 + 8);
    let f32s = F32 as u128;
    DecodingMemory {
        weights: saturate(f32s * c.n_params() as u128),
        packed: saturate(f32s * packed),
        kv_cache: saturate(f32s * kv),
        scratch: saturate(f32s * scratch + tables),
    }
}

/// A decoder that would not fit in the machine's available memory.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "decoding needs about {} (weights {}, packed weights {}, KV cache {} and scratch {} for {batch} \
     sequence{} × context {context}), but the machine has {} available; lower the number of \
     sequences decoded at once (batch, samples, beam width) or use a smaller model",
    crate::bytes::human(need.total()),
    crate::bytes::human(need.weights),
    crate::bytes::human(need.packed),
    crate::bytes::human(need.kv_cache),
    crate::bytes::human(need.scratch),
    if *batch == 1 { "" } else { "s" },
    crate::bytes::human(*available)
)]
pub struct TooLarge {
    /// The estimate, by part.
    pub need: DecodingMemory,
    /// The machine's available memory, in bytes.
    pub available: u64,
    /// Sequences decoded at once.
    pub batch: usize,
    /// The model's context.
    pub context: usize,
}

/// The estimate for `batch` sequences of model `c`, or the error when it exceeds `available`
/// bytes (`None`: unknown, never refused).
pub fn check_against(
    c: &ModelConfig,
    batch: usize,
    available: Option<u64>,
) -> Result<DecodingMemory, TooLarge> {
    let need = decoding(c, batch);
    match available {
        Some(a) if need.total() > a => Err(TooLarge {
            need,
            available: a,
            batch: batch.max(1),
            context: c.context,
        }),
        _ => Ok(need),
    }
}

/// [`check_against`] the machine's available memory (`model::memory::available`); made before
/// a model is loaded, so a batch or context that cannot fit is an error, never an abort.
pub fn check(c: &ModelConfig, batch: usize) -> Result<DecodingMemory, TooLarge> {
    check_against(c, batch, crate::model::memory::available())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::kernels::PackedLinear;
    use crate::model::Weights;
    use rand::SeedableRng;

    /// The weights and packed parts count exactly what a real model holds.
    #[test]
    fn weight_parts_match_a_real_model() {
        let c = ModelConfig {
            vocab_size: 41,
            d_model: 8,
            d_attn: 12,
            n_heads: 3,
            d_ff: 20,
            n_layers: 2,
            context: 6,
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let w = Weights::init(&c, &mut rng);
        let m = decoding(&c, 3);
        let all: u64 = w.named().iter().map(|(_, _, d)| d.len() as u64).sum();
        assert_eq!(m.weights, 4 * all);
        let mut packed = PackedLinear::new(&w.head).floats();
        for b in &w.blocks {
            b.map(|l| packed += PackedLinear::new(l).floats(), |_| ());
        }
        assert_eq!(m.packed, 4 * packed as u64);
        assert_eq!(m.kv_cache, 4 * 2 * 2 * 3 * 6 * 12);
        assert!(decoding(&c, 6).total() > m.total());
    }

    #[test]
    fn an_absurd_batch_is_refused_with_the_estimate() {
        let c = ModelConfig {
            vocab_size: 41,
            d_model: 8,
            d_attn: 12,
            n_heads: 3,
            d_ff: 20,
            n_layers: 2,
            context: 6,
        };
        assert!(check_against(&c, 3, Some(1 << 30)).is_ok());
        assert!(check_against(&c, usize::MAX, None).is_ok());
        let e = check_against(&c, usize::MAX, Some(1 << 30)).unwrap_err();
        assert_eq!(e.need.kv_cache, u64::MAX, "saturated, not wrapped");
        let msg = e.to_string();
        assert!(
            msg.contains("× context 6") && msg.contains("1.0 GiB available"),
            "{msg}"
        );
    }
}
