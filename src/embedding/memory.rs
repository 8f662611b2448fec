//! The memory skip-gram training needs before anything is allocated: the shared input and
//! output matrices and every shard's private copy of both, the negative-sampling table, the
//! per-word tables and the shards' round slices. Checked against the machine's available memory
//! so that an absurd `dim` or `shards` is a clear error, never an abort.

use super::SgnsConfig;
use crate::bytes::{human, saturate};

/// Bytes [`super::train_sgns`] holds at once for `vocab_size` words and a training stream of
/// `tokens` tokens with `cfg`.
pub fn sgns_bytes(vocab_size: usize, tokens: u64, cfg: &SgnsConfig) -> u64 {
    let v = vocab_size as u128;
    let dim = cfg.dim.max(1) as u128;
    let shards = cfg.shards.max(1) as u128;
    let round = mul(&[shards, cfg.round_tokens.max(1) as u128]);
    // Input and output matrices, shared and per shard.
    let matrices = mul(&[4 * 2, shards.saturating_add(1), v, dim]);
    // The unigram table (u32), counts, keep probabilities, powers and flags per word, and each
    // shard's touched flags and hidden-layer buffer.
    let table = mul(&[4, (1u128 << 20).max(mul(&[4, v]))]);
    let per_word = mul(&[v, 8 + 4 + 8 + 1])
        .saturating_add(mul(&[shards, mul(&[2, v]).saturating_add(mul(&[4, dim]))]));
    // Every shard's slice of every round (a range each).
    let rounds = (tokens as u128).div_ceil(round).max(1);
    let slices = mul(&[16, shards, rounds]);
    saturate(
        [table, per_word, slices]
            .iter()
            .fold(matrices, |a, &b| a.saturating_add(b)),
    )
}

/// The product of `xs`, saturating.
fn mul(xs: &[u128]) -> u128 {
    xs.iter().fold(1, |a, &b| a.saturating_mul(b))
}

/// Skip-gram training that would not fit in the available memory.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "skip-gram training of {vocab} words × dim {dim} with {shards} shard{} needs about {}, but \
     the machine has {} available; lower `dim` or `shards`",
    if *shards == 1 { "" } else { "s" },
    human(*need),
    human(*available)
)]
pub struct TooLarge {
    pub vocab: usize,
    pub dim: usize,
    pub shards: usize,
    /// The estimate, in bytes.
    pub need: u64,
    /// The machine's available memory, in bytes.
    pub available: u64,
}

/// [`sgns_bytes`] checked against `available` bytes (`None`: unknown, never refused).
pub fn check_sgns(
    vocab_size: usize,
    tokens: u64,
    cfg: &SgnsConfig,
    available: Option<u64>,
) -> Result<u64, TooLarge> {
    let need = sgns_bytes(vocab_size, tokens, cfg);
    match available {
        Some(a) if need > a => Err(TooLarge {
            vocab: vocab_size,
            dim: cfg.dim,
            shards: cfg.shards,
            need,
            available: a,
        }),
        _ => Ok(need),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimate_grows_with_dim_and_shards_and_names_them() {
        let cfg = SgnsConfig {
            dim: 16,
            shards: 2,
            ..SgnsConfig::default()
        };
        let small = sgns_bytes(100, 1000, &cfg);
        // The matrices: 2 × (1 + 2) × 100 × 16 floats.
        assert!(small >= 4 * 2 * 3 * 100 * 16, "{small}");
        let wide = SgnsConfig {
            dim: 32,
            ..cfg.clone()
        };
        assert!(sgns_bytes(100, 1000, &wide) > small);
        let many = SgnsConfig {
            shards: 8,
            ..cfg.clone()
        };
        assert!(sgns_bytes(100, 1000, &many) > small);
        let huge = SgnsConfig {
            dim: 1_000_000_000,
            ..cfg.clone()
        };
        let e = check_sgns(50_000, 1000, &huge, Some(8 << 30)).unwrap_err();
        let m = e.to_string();
        assert!(
            m.contains("50000 words × dim 1000000000 with 2 shards")
                && m.contains("8.0 GiB available")
                && m.contains("lower `dim` or `shards`"),
            "{m}"
        );
        assert_eq!(check_sgns(100, 1000, &cfg, Some(8 << 30)), Ok(small));
        assert_eq!(
            check_sgns(50_000, 1000, &huge, None).unwrap(),
            sgns_bytes(50_000, 1000, &huge)
        );
        // Absurd values saturate, never wrap.
        let absurd = SgnsConfig {
            dim: usize::MAX,
            shards: usize::MAX,
            ..cfg
        };
        assert_eq!(sgns_bytes(usize::MAX, u64::MAX, &absurd), u64::MAX);
    }
}
