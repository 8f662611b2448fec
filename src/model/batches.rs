//! Training examples from tokenized documents: every document framed `<sos> doc <eos>`, then
//! either truncated to one window per document (`truncate`, padded with `<pad>`) or concatenated
//! and cut into full windows (`pack`); windows are `context + 1` tokens, inputs the first
//! `context`, targets the last `context`. Batches follow a seeded per-epoch shuffle.

use rand::seq::SliceRandom;
use rand::SeedableRng;

/// Special token ids of the vocabulary contract.
pub const SOS: u32 = 0;
pub const EOS: u32 = 1;
pub const PAD: u32 = 2;

/// How documents become windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Packing {
    /// Each framed document cut to `context + 1` tokens and padded (the seed's way).
    Truncate,
    /// Framed documents concatenated and cut into full windows sharing one token.
    Pack,
}

/// Fixed-length windows of `context + 1` token ids, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Examples {
    pub context: usize,
    pub windows: Vec<u32>,
}

impl Examples {
    /// Builds windows from documents (unframed token ids).
    pub fn build<'a>(
        docs: impl IntoIterator<Item = &'a [u32]>,
        context: usize,
        packing: Packing,
    ) -> Self {
        let w = context + 1;
        let mut windows = Vec::new();
        match packing {
            Packing::Truncate => {
                for doc in docs {
                    let start = windows.len();
                    windows.push(SOS);
                    windows.extend(doc.iter().take(w - 1));
                    if windows.len() - start < w {
                        windows.push(EOS);
                    }
                    windows.resize(start + w, PAD);
                }
            }
            Packing::Pack => {
                let mut stream = Vec::new();
                for doc in docs {
                    stream.push(SOS);
                    stream.extend_from_slice(doc);
                    stream.push(EOS);
                }
                // Windows start every `context` tokens so each token is predicted once.
                let mut s = 0;
                while s + w <= stream.len() {
                    windows.extend_from_slice(&stream[s..s + w]);
                    s += context;
                }
            }
        }
        Examples { context, windows }
    }

    pub fn len(&self) -> usize {
        self.windows.len() / (self.context + 1)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn window(&self, i: usize) -> &[u32] {
        let w = self.context + 1;
        &self.windows[i * w..(i + 1) * w]
    }

    /// Inputs and targets (`rows × context` each) of the windows `rows`.
    pub fn batch(&self, rows: &[usize]) -> (Vec<u32>, Vec<u32>) {
        let t = self.context;
        let mut inputs = Vec::with_capacity(rows.len() * t);
        let mut targets = Vec::with_capacity(rows.len() * t);
        for &r in rows {
            let w = self.window(r);
            inputs.extend_from_slice(&w[..t]);
            targets.extend_from_slice(&w[1..]);
        }
        (inputs, targets)
    }

    /// The window order of an epoch: a permutation from an RNG seeded with `seed`.
    pub fn order(&self, seed: u64) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..self.len()).collect();
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        idx.shuffle(&mut rng);
        idx
    }

    /// Number of batches of `batch_size` (the last may be smaller).
    pub fn n_batches(&self, batch_size: usize) -> usize {
        self.len().div_ceil(batch_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_frames_cuts_and_pads() {
        let docs: Vec<Vec<u32>> = vec![vec![10, 11], vec![20, 21, 22, 23, 24]];
        let ex = Examples::build(docs.iter().map(|d| d.as_slice()), 4, Packing::Truncate);
        assert_eq!(ex.len(), 2);
        assert_eq!(ex.window(0), &[SOS, 10, 11, EOS, PAD]);
        assert_eq!(ex.window(1), &[SOS, 20, 21, 22, 23]);
        let (i, t) = ex.batch(&[0]);
        assert_eq!(i, vec![SOS, 10, 11, EOS]);
        assert_eq!(t, vec![10, 11, EOS, PAD]);
    }

    #[test]
    fn pack_shares_one_token_between_windows() {
        let docs: Vec<Vec<u32>> = vec![vec![10, 11], vec![20, 21, 22]];
        // stream: 0 10 11 1 0 20 21 22 1 (9 tokens); windows of 4 every 3.
        let ex = Examples::build(docs.iter().map(|d| d.as_slice()), 3, Packing::Pack);
        assert_eq!(ex.len(), 2);
        assert_eq!(ex.window(0), &[SOS, 10, 11, EOS]);
        assert_eq!(ex.window(1), &[EOS, SOS, 20, 21]);
        assert_eq!(ex.order(5), ex.order(5));
    }
}
