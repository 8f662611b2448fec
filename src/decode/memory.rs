//! The memory a [`super::Decoder`] needs before it is built: the weights, their packed copy, the
//! KV cache for `batch × context` positions and the decoding scratch (the training counterpart
//! and the machine's available memory are in `model::memory`).

use super::kernels::PANEL;
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
    pub fn total(&self) -> u64 {
        self.weights + self.packed + self.kv_cache + self.scratch
    }
}

/// Floats of one linear layer `[out, in]` once packed: whole panels plus the bias.
fn packed_floats(out: usize, inp: usize) -> u64 {
    (out.div_ceil(PANEL) * PANEL * inp + out) as u64
}

/// The memory a decoder for up to `batch` sequences of model `c` needs.
pub fn decoding(c: &ModelConfig, batch: usize) -> DecodingMemory {
    let b = batch.max(1) as u64;
    let rows = b * c.context as u64;
    let shapes = Block::shapes(c);
    let mut block = 0;
    shapes.map(|&(o, i)| block += packed_floats(o, i), |_| ());
    let packed = c.n_layers as u64 * block + packed_floats(c.vocab_size, c.d_model);
    let (dm, da, df) = (c.d_model as u64, c.d_attn as u64, c.d_ff as u64);
    let kv = 2 * c.n_layers as u64 * rows * da;
    // Residual stream and block scratch per row, the last rows and their logits, the score
    // scratch; the slot tables and token/position ids are u32/usize per row.
    let scratch = rows * (2 * dm + 6 * da + df)
        + b * (2 * dm + c.vocab_size as u64 + c.n_heads as u64 * c.context as u64);
    let tables = 2 * rows * 4 + rows * (4 + 8);
    DecodingMemory {
        weights: F32 * c.n_params() as u64,
        packed: F32 * packed,
        kv_cache: F32 * kv,
        scratch: F32 * scratch + tables,
    }
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
}
