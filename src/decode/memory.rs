//! The memory a decoding workload needs before anything is built: the weights and their packed
//! copies, the KV cache for `batch × context` positions and the decoder's scratch, the new tokens
//! every sequence keeps, the buffers of the search (beam search's masked logits, top tokens and
//! candidates; the uncached path and the kept logits of a cached/uncached comparison), and a
//! windowed scoring pass. The check made before loading a model compares that with the
//! machine's available memory and, when it does not fit, says how many sequences or new tokens
//! would (the training counterpart and the available memory are in `model::memory`).

use super::kernels::PANEL;
use crate::bytes::{human, saturate};
use crate::model::{Block, ModelConfig};

/// Bytes of one f32.
const F32: u128 = 4;

/// Rows of final hidden states per call of the output layer (`forward::HEAD_ROWS`).
const HEAD_ROWS: u128 = 64;

/// How the new tokens are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Search {
    /// Sampling or greedy decoding through the KV cache.
    Sample,
    /// Beam search whose width is the workload's `batch`.
    Beam,
    /// Cached against uncached greedy decoding (kv-eval): the uncached path recomputes each
    /// sequence's receptive field every step, with its own packed model, and the logits of the
    /// first `kept` steps are kept for the comparison; prompts are `prompt` tokens long.
    KvCompare { prompt: usize, kept: usize },
}

/// What is decoded at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    /// Sequences in the cached decoder at once (a batch, the samples of one prompt, or the
    /// beam width); 0 when nothing is decoded (scoring only).
    pub batch: usize,
    /// New tokens each sequence generates (and keeps until the end).
    pub new_tokens: usize,
    pub search: Search,
    /// Also windowed scoring (`pipe score`, infer's perplexity): its own packed model and up to
    /// `forward::scoring_batch(context) × context` rows at once.
    pub scoring: bool,
    /// Bytes of one weight in a packed copy (4 for f32; a bf16 packing passes 2).
    pub packed_weight_bytes: u64,
    /// The settings that chose this workload, as the user wrote them (`--beam 30000`), put in
    /// front of the message when it does not fit.
    pub what: String,
}

impl Workload {
    /// `batch` sequences sampled (or decoded greedily) for `new_tokens` tokens each.
    pub fn sample(batch: usize, new_tokens: usize) -> Self {
        Workload {
            batch,
            new_tokens,
            search: Search::Sample,
            scoring: false,
            packed_weight_bytes: F32 as u64,
            what: String::new(),
        }
    }

    /// Beam search of `width` for `new_tokens` tokens.
    pub fn beam(width: usize, new_tokens: usize) -> Self {
        Workload {
            search: Search::Beam,
            ..Workload::sample(width, new_tokens)
        }
    }

    /// kv-eval's comparison of `batch` prompts of `prompt` tokens decoded for up to
    /// `new_tokens` tokens, keeping the logits of `kept` steps.
    pub fn kv_compare(batch: usize, prompt: usize, new_tokens: usize, kept: usize) -> Self {
        Workload {
            search: Search::KvCompare { prompt, kept },
            ..Workload::sample(batch, new_tokens)
        }
    }

    /// Windowed scoring alone (no decoder).
    pub fn scoring() -> Self {
        Workload {
            scoring: true,
            ..Workload::sample(0, 0)
        }
    }

    /// The same with a windowed scoring pass too.
    pub fn and_scoring(self) -> Self {
        Workload {
            scoring: true,
            ..self
        }
    }

    /// The same, described as `what` in messages.
    pub fn described(self, what: impl Into<String>) -> Self {
        Workload {
            what: what.into(),
            ..self
        }
    }

    /// The same with packed copies of `bytes` per weight.
    pub fn packed_weight_bytes(self, bytes: u64) -> Self {
        Workload {
            packed_weight_bytes: bytes,
            ..self
        }
    }
}

/// What a workload needs, in bytes, by part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DecodingMemory {
    /// The plain f32 weights.
    pub weights: u64,
    /// The linear layers repacked into panels of `PANEL` output columns (the last padded), once
    /// per model alive at the same time (the decoder's, the uncached or scoring pass's).
    pub packed: u64,
    /// Keys and values of every layer for `batch × context` positions.
    pub kv_cache: u64,
    /// The decoder's activations of `batch × context` rows, the logits and the slot tables.
    pub scratch: u64,
    /// The new tokens of every sequence (for beam search: the live beams, twice, and every
    /// hypothesis that may finish).
    pub tokens: u64,
    /// Beam search's per-beam masked logits, top tokens and candidates, or the kept logits of a
    /// comparison, or the sampler's candidates.
    pub search: u64,
    /// The activations of an uncached or scoring forward pass.
    pub forward: u64,
}

impl DecodingMemory {
    /// The sum of the parts (saturating, as each part does).
    pub fn total(&self) -> u64 {
        [
            self.packed,
            self.kv_cache,
            self.scratch,
            self.tokens,
            self.search,
            self.forward,
        ]
        .iter()
        .fold(self.weights, |a, &b| a.saturating_add(b))
    }
}

/// Floats of one linear layer `[out, in]` once packed: whole panels plus the bias.
fn packed_floats(out: usize, inp: usize) -> u128 {
    (out.div_ceil(PANEL) as u128) * PANEL as u128 * inp as u128 + out as u128
}

/// Floats of one packed model.
fn packed_model(c: &ModelConfig) -> u128 {
    let mut block = 0;
    Block::shapes(c).map(|&(o, i)| block += packed_floats(o, i), |_| ());
    c.n_layers as u128 * block + packed_floats(c.vocab_size, c.d_model)
}

/// Bytes of a full forward pass over `rows` rows (`forward::final_hidden_with`): the residual
/// stream, the block scratch, the output of `ln_f`, token and position ids, and the logits of
/// `HEAD_ROWS` rows (or of every sequence's last row).
fn forward_pass(c: &ModelConfig, rows: u128, last_rows: u128) -> u128 {
    let (dm, da, df) = (c.d_model as u128, c.d_attn as u128, c.d_ff as u128);
    let v = c.vocab_size as u128;
    F32 * (rows * (3 * dm + 6 * da + df) + HEAD_ROWS.max(last_rows) * v) + rows * (4 + 8 + 16)
}

/// The memory `w` needs with model `c`.
pub fn estimate(c: &ModelConfig, w: &Workload) -> DecodingMemory {
    let b = w.batch as u128;
    let new = w.new_tokens as u128;
    let ctx = c.context as u128;
    let (dm, da, df) = (c.d_model as u128, c.d_attn as u128, c.d_ff as u128);
    let (v, nh) = (c.vocab_size as u128, c.n_heads as u128);
    let rows = b * ctx;
    let decoder = w.batch > 0;
    let uncached = matches!(w.search, Search::KvCompare { .. });
    let models = u128::from(decoder) + u128::from(w.scoring || uncached);
    let mut m = DecodingMemory {
        weights: saturate(F32 * c.n_params() as u128),
        packed: saturate(models * w.packed_weight_bytes as u128 * packed_model(c)),
        ..DecodingMemory::default()
    };
    if decoder {
        m.kv_cache = saturate(F32 * 2 * c.n_layers as u128 * rows * da);
        // Residual stream and block scratch per row, the last rows and their logits, the score
        // scratch; the slot tables and token/position ids are u32/usize per row.
        let floats = rows * (2 * dm + 6 * da + df) + b * (2 * dm + v + nh * ctx);
        m.scratch = saturate(F32 * floats + 2 * rows * 4 + rows * (4 + 8));
    }
    let u32s = 4;
    match w.search {
        Search::Sample => {
            m.tokens = saturate(b * new * u32s);
            // The sampler's (logit, id) candidates.
            m.search = saturate(v * 8);
        }
        Search::Beam => {
            // Live beams before and after a step, and at most `width` hypotheses finishing at
            // each step, each as long as the step (a header of 40 bytes each).
            let finished = b * new * 40 + b * u32s * new * (new + 1) / 2;
            m.tokens = saturate(2 * b * (new * u32s + 32) + finished);
            // Per beam: masked logits, the top 2·width (f32, u32) and the log normaliser; the
            // 2·width² (f64, u32, usize) candidates; the source and next-token tables.
            let keep = 2 * b;
            m.search = saturate(F32 * b * v + b * (keep + 1) * 8 + b * keep * 24 + b * 16);
        }
        Search::KvCompare { prompt, kept } => {
            let (p, kept) = (prompt as u128, (kept as u128).min(new));
            // Both paths' outputs, and the uncached path's growing sequences.
            m.tokens = saturate(b * new * u32s * 2 + b * (p + new) * u32s);
            m.search = saturate(kept * F32 * b * v + v * 8);
            let rf = c.n_layers as u128 * ctx.saturating_sub(1) + 1;
            m.forward = saturate(forward_pass(c, b * rf, b));
        }
    }
    if w.scoring {
        let score_rows = (super::forward::scoring_batch(c.context) * c.context) as u128;
        let pass = forward_pass(c, score_rows, 0);
        m.forward = m.forward.max(saturate(pass));
    }
    m
}

/// A workload that would not fit in the machine's available memory.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{}decoding needs about {} ({}) for {batch} sequence{} × context {context}{}, but the machine \
     has {} available; {}",
    if what.is_empty() { String::new() } else { format!("{what}: ") },
    human(need.total()),
    parts(need),
    if *batch == 1 { "" } else { "s" },
    if *new_tokens > 0 { format!(", {new_tokens} new tokens each") } else { String::new() },
    human(*available),
    fits(*batch, *new_tokens, *max_batch, *max_new)
)]
pub struct TooLarge {
    /// The workload's own description (`--beam 30000`).
    pub what: String,
    /// The estimate, by part.
    pub need: DecodingMemory,
    /// The machine's available memory, in bytes.
    pub available: u64,
    /// Sequences decoded at once.
    pub batch: usize,
    /// New tokens per sequence.
    pub new_tokens: usize,
    /// The model's context.
    pub context: usize,
    /// The most sequences that fit with the same new tokens (0: not even one).
    pub max_batch: usize,
    /// The most new tokens that fit with the same sequences (0: none).
    pub max_new: usize,
}

/// The non-zero parts of an estimate, named.
fn parts(m: &DecodingMemory) -> String {
    let named = [
        ("weights", m.weights),
        ("packed weights", m.packed),
        ("KV cache", m.kv_cache),
        ("new tokens", m.tokens),
        ("search buffers", m.search),
        ("forward pass", m.forward),
        ("scratch", m.scratch),
    ];
    let shown: Vec<String> = named
        .iter()
        .filter(|(_, b)| *b > 0)
        .map(|(n, b)| format!("{n} {}", human(*b)))
        .collect();
    shown.join(", ")
}

/// The sentence saying what would fit.
fn fits(batch: usize, new_tokens: usize, max_batch: usize, max_new: usize) -> String {
    let mut options = Vec::new();
    if max_batch > 0 && max_batch < batch {
        options.push(format!(
            "at most {max_batch} sequences at once fit{}",
            if new_tokens > 0 {
                format!(" with {new_tokens} new tokens each")
            } else {
                String::new()
            }
        ));
    }
    if max_new > 0 && max_new < new_tokens {
        options.push(format!(
            "at most {max_new} new tokens fit with {batch} sequence{}",
            if batch == 1 { "" } else { "s" }
        ));
    }
    if options.is_empty() {
        return "the model is too large for this machine at any setting: use a smaller model"
            .into();
    }
    format!(
        "{}; lower the sequences decoded at once (batch, samples, beam width) or the new tokens",
        options.join(", or ")
    )
}

/// The largest `x` in `0..=hi` whose `need(x)` is at most `available` (`need` grows with `x`);
/// 0 when none is.
fn largest(hi: usize, available: u64, need: impl Fn(usize) -> u64) -> usize {
    if need(0) > available {
        return 0;
    }
    let (mut lo, mut hi) = (0usize, hi);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if need(mid) <= available {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    lo
}

/// The estimate of `w` with model `c`, or the error when it exceeds `available` bytes (`None`:
/// unknown, never refused).
pub fn check_against(
    c: &ModelConfig,
    w: &Workload,
    available: Option<u64>,
) -> Result<DecodingMemory, Box<TooLarge>> {
    let need = estimate(c, w);
    match available {
        Some(a) if need.total() > a => {
            let with_batch = |b| {
                let w = Workload {
                    batch: b,
                    what: String::new(),
                    ..w.clone()
                };
                estimate(c, &w).total()
            };
            let with_new = |n| {
                let w = Workload {
                    new_tokens: n,
                    what: String::new(),
                    ..w.clone()
                };
                estimate(c, &w).total()
            };
            Err(Box::new(TooLarge {
                what: w.what.clone(),
                need,
                available: a,
                batch: w.batch,
                new_tokens: w.new_tokens,
                context: c.context,
                max_batch: if w.batch > 0 {
                    largest(w.batch, a, with_batch)
                } else {
                    0
                },
                max_new: largest(w.new_tokens, a, with_new),
            }))
        }
        _ => Ok(need),
    }
}

/// [`check_against`] the machine's available memory (`model::memory::available`); made before
/// a model is loaded, so a workload that cannot fit is an error, never an abort.
pub fn check(c: &ModelConfig, w: &Workload) -> Result<DecodingMemory, Box<TooLarge>> {
    check_against(c, w, crate::model::memory::available())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::kernels::PackedLinear;
    use crate::model::Weights;
    use rand::SeedableRng;

    fn tiny() -> ModelConfig {
        ModelConfig {
            vocab_size: 41,
            d_model: 8,
            d_attn: 12,
            n_heads: 3,
            d_ff: 20,
            n_layers: 2,
            context: 6,
        }
    }

    /// The weights and packed parts count exactly what a real model holds.
    #[test]
    fn weight_parts_match_a_real_model() {
        let c = tiny();
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let w = Weights::init(&c, &mut rng);
        let m = estimate(&c, &Workload::sample(3, 0));
        let all: u64 = w.named().iter().map(|(_, _, d)| d.len() as u64).sum();
        assert_eq!(m.weights, 4 * all);
        let mut packed = PackedLinear::new(&w.head).floats();
        for b in &w.blocks {
            b.map(|l| packed += PackedLinear::new(l).floats(), |_| ());
        }
        assert_eq!(m.packed, 4 * packed as u64);
        assert_eq!(m.kv_cache, 4 * 2 * 2 * 3 * 6 * 12);
        assert!(estimate(&c, &Workload::sample(6, 0)).total() > m.total());
        // A bf16 packing halves the packed part only; a comparison packs a second model.
        let half = estimate(&c, &Workload::sample(3, 0).packed_weight_bytes(2));
        assert_eq!(half.packed * 2, m.packed);
        assert_eq!(half.weights, m.weights);
        let two = estimate(&c, &Workload::kv_compare(3, 2, 0, 0));
        assert_eq!(two.packed, 2 * m.packed);
        assert_eq!(estimate(&c, &Workload::scoring()).kv_cache, 0);
    }

    /// Every buffer grows with what sizes it: new tokens, beam candidates (quadratic in the
    /// width), kept logits.
    #[test]
    fn every_buffer_is_counted() {
        let c = tiny();
        let s = estimate(&c, &Workload::sample(2, 1000));
        assert_eq!(s.tokens, 2 * 1000 * 4);
        let b = estimate(&c, &Workload::beam(30_000, 50));
        assert!(b.search >= 30_000u64 * 60_000 * 24, "{b:?}");
        assert!(b.tokens >= 2 * 30_000 * 50 * 4, "{b:?}");
        let k = estimate(&c, &Workload::kv_compare(4, 3, 100, 100));
        assert!(k.search >= 100 * 4 * 41 * 4, "{k:?}");
        assert!(k.forward > 0 && k.tokens >= 4 * 100 * 4 * 2, "{k:?}");
        let huge = estimate(&c, &Workload::sample(1, 1_000_000_000_000));
        assert_eq!(huge.tokens, 4_000_000_000_000);
        let absurd = estimate(&c, &Workload::beam(usize::MAX, usize::MAX));
        assert_eq!(absurd.total(), u64::MAX, "saturated, not wrapped");
    }

    #[test]
    fn a_workload_that_does_not_fit_names_what_would() {
        let c = tiny();
        assert!(check_against(&c, &Workload::beam(3, 50), Some(1 << 30)).is_ok());
        assert!(check_against(&c, &Workload::sample(usize::MAX, 9), None).is_ok());
        let w = Workload::beam(30_000, 50).described("--beam 30000");
        let e = check_against(&c, &w, Some(1 << 30)).unwrap_err();
        assert!(e.max_batch > 100 && e.max_batch < 30_000, "{e:?}");
        let fit = Workload::beam(e.max_batch, 50);
        assert!(estimate(&c, &fit).total() <= 1 << 30);
        let over = Workload::beam(e.max_batch + 1, 50);
        assert!(estimate(&c, &over).total() > 1 << 30);
        let msg = e.to_string();
        assert!(
            msg.starts_with("--beam 30000: decoding needs about")
                && msg.contains("search buffers")
                && msg.contains("30000 sequences × context 6, 50 new tokens each")
                && msg.contains("1.0 GiB available")
                && msg.contains(&format!("at most {} sequences at once fit", e.max_batch)),
            "{msg}"
        );
        let e = check_against(&c, &Workload::sample(1, 1 << 40), Some(1 << 30)).unwrap_err();
        assert_eq!(e.max_batch, 0);
        assert!(e.max_new > 1000 && e.max_new < 1 << 28, "{e:?}");
        assert!(
            e.to_string().contains("new tokens fit with 1 sequence;"),
            "{e}"
        );
        let e = check_against(&c, &Workload::sample(1, 1), Some(10)).unwrap_err();
        assert!(e.to_string().contains("too large for this machine"), "{e}");
    }
}
