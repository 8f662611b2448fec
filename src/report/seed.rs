//! The seed study's published figures (DESIGN.md section 1), shown beside ours.

pub const TRAIN_LOSS: [f64; 3] = [2.509, 2.366, 2.307];
pub const VAL_LOSS: [f64; 3] = [2.124, 2.050, 2.010];
pub const VAL_PERPLEXITY: [f64; 3] = [8.41, 7.77, 7.49];
pub const SAMPLE_PERPLEXITY: f64 = 9.41;
pub const SENTENCE_BLEU: f64 = 0.0176;
pub const SAMPLES: f64 = 50.0;
pub const KV_SPEEDUP: f64 = 4.52;
pub const KV_TOK_S_CACHE: f64 = 992.0;
pub const KV_TOK_S_NOCACHE: f64 = 219.0;
/// (method, beam width, sentence BLEU, tokens/s).
pub const BEAM: [(&str, u32, f64, f64); 3] = [
    ("sampling", 0, 0.0219, 110.0),
    ("beam", 5, 0.0134, 24.0),
    ("beam", 10, 0.0149, 11.7),
];
