//! The training model (dfdx) and the decoding path (plain kernels) compute the same function:
//! the same logits for the same weights, and a trained-then-saved checkpoint decodes identically.

use crate::model::{ModelConfig, Weights};
use rand::SeedableRng;

fn config() -> ModelConfig {
    ModelConfig {
        vocab_size: 23,
        d_model: 16,
        d_attn: 12,
        n_heads: 3,
        d_ff: 20,
        n_layers: 2,
        context: 8,
    }
}

#[test]
fn dfdx_forward_equals_decode_forward() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let mut w = Weights::init(&config(), &mut rng);
    // Non-trivial LayerNorm parameters so that every tensor matters.
    for (i, x) in w.blocks[0].ln1.weight.iter_mut().enumerate() {
        *x = 1.0 + 0.05 * i as f32;
    }
    w.ln_f.bias.iter_mut().for_each(|b| *b = 0.1);
    let ids = [0u32, 5, 7, 22, 3, 9, 1, 4];
    let a = super::composed::forward_logits(&w, &ids);
    let b = crate::decode::forward::forward(&w, &ids, 0, 1);
    assert_eq!(a.len(), b.len());
    let max = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert!(max <= 1e-4, "max |dfdx - decode| = {max}");
}
