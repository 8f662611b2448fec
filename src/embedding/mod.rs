//! Word embeddings for a vocabulary: pretrained vectors in the word2vec/fastText/GloVe text format
//! ([`vectors`]) and skip-gram with negative sampling trained on token ids ([`sgns`]), plus
//! coverage statistics. Knows nothing of pipelines.

pub mod memory;
pub mod sgns;
pub mod vectors;

pub use sgns::{train_sgns, SgnsConfig};
pub use vectors::{load_vectors, VectorsError};

/// A `[vocab, dim]` row-major embedding matrix and which rows carry a real (pretrained or
/// trained) vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedding {
    pub dim: usize,
    pub weights: Vec<f32>,
    /// Per token id: true when the row comes from the vectors file or from training data.
    pub has_vector: Vec<bool>,
}

impl Embedding {
    pub fn vocab_size(&self) -> usize {
        self.has_vector.len()
    }

    pub fn row(&self, id: usize) -> &[f32] {
        &self.weights[id * self.dim..(id + 1) * self.dim]
    }
}

/// How much of the vocabulary (specials excluded) and of the token stream has a real vector.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Coverage {
    pub types_total: u64,
    pub types_covered: u64,
    pub types_coverage: f64,
    pub tokens_total: u64,
    pub tokens_covered: u64,
    pub tokens_coverage: f64,
}

/// Occurrences of each id (ids ≥ `vocab_size` are ignored).
pub fn token_counts(ids: &[u32], vocab_size: usize) -> Vec<u64> {
    let mut c = vec![0u64; vocab_size];
    for &i in ids {
        if let Some(x) = c.get_mut(i as usize) {
            *x += 1;
        }
    }
    c
}

/// Coverage of `has_vector` over the non-special types and over tokens with the given counts
/// (special ids, `<unk>` included, count as uncovered tokens).
pub fn coverage(has_vector: &[bool], counts: &[u64]) -> Coverage {
    let n_special = crate::text::SPECIALS.len();
    let types_total = has_vector.len().saturating_sub(n_special) as u64;
    let types_covered = has_vector.iter().skip(n_special).filter(|&&b| b).count() as u64;
    let tokens_total: u64 = counts.iter().sum();
    let tokens_covered: u64 = counts
        .iter()
        .zip(has_vector)
        .skip(n_special)
        .filter(|(_, &b)| b)
        .map(|(c, _)| c)
        .sum();
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    Coverage {
        types_total,
        types_covered,
        types_coverage: ratio(types_covered, types_total),
        tokens_total,
        tokens_covered,
        tokens_coverage: ratio(tokens_covered, tokens_total),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coverage_counts_types_and_tokens() {
        let has = [false, false, false, false, true, false, true];
        let counts = token_counts(&[4, 4, 5, 6, 3, 9], 7);
        let c = coverage(&has, &counts);
        assert_eq!((c.types_total, c.types_covered), (3, 2));
        assert_eq!((c.tokens_total, c.tokens_covered), (5, 3));
        assert!((c.tokens_coverage - 0.6).abs() < 1e-12);
    }
}
