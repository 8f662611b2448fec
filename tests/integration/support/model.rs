//! The one tiny model of the tests: its configuration, a random checkpoint saved beside the
//! tokenize outputs it belongs to (vocabulary, valid and train splits), and the upstream
//! records a stage reads them through.

use pipe::model::{Checkpoint, CheckpointMeta, ModelConfig, Weights};
use pipe::stage::Upstream;
use pipe::text::{TokenFile, Vocab};
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};

/// The fixture vocabulary's words (ids 4…23 after the four specials).
pub const WORDS: [&str; 20] = [
    "there", "was", "a", "brave", "explorer", "he", "wanted", "to", "explore", "little", "girl",
    "she", "so", "small", "the", "dog", "ran", "home", "and", "played",
];

/// The tiny model: two layers of width 16, two heads, context 16.
pub fn tiny_config(vocab: usize) -> ModelConfig {
    ModelConfig {
        vocab_size: vocab,
        d_model: 16,
        d_attn: 16,
        n_heads: 2,
        d_ff: 24,
        n_layers: 2,
        context: 16,
    }
}

/// The vocabulary of [`WORDS`].
pub fn vocab() -> Vocab {
    Vocab::from_words(WORDS.iter().map(|s| s.to_string()))
}

/// Saves `weights` as an epoch-1 checkpoint at `path` whose sidecar names the vocabulary by
/// its blake3 `vocab_blake3`.
pub fn save_checkpoint(path: &Path, weights: Weights, config: ModelConfig, vocab_blake3: &str) {
    let ck = Checkpoint {
        weights,
        meta: CheckpointMeta {
            config,
            vocab_blake3: vocab_blake3.into(),
            epoch: 1,
            metrics: Default::default(),
            extra: serde_json::Value::Null,
        },
    };
    ck.save(path).unwrap();
}

/// Random weights of the tiny model for `vocab` tokens (seeded, so always the same).
pub fn random_weights(vocab: usize) -> Weights {
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    Weights::init(&tiny_config(vocab), &mut rng)
}

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub tokenize: PathBuf,
    pub ckpts: PathBuf,
    pub ckpt: PathBuf,
    pub vocab: PathBuf,
}

/// vocab.json, valid split (`docs` documents of 12–20 words), train split, and a random
/// checkpoint `epoch_1.safetensors` whose sidecar carries the vocabulary's blake3.
pub fn fixture(docs: usize) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let tokenize = dir.path().join("results/tokenize");
    let ckpts = dir.path().join("checkpoints/train");
    std::fs::create_dir_all(&tokenize).unwrap();
    std::fs::create_dir_all(&ckpts).unwrap();
    let vocab = vocab();
    let vocab_path = tokenize.join("vocab.json");
    std::fs::write(&vocab_path, vocab.to_json()).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let mut valid = TokenFile::new();
    for _ in 0..docs {
        let n = rng.gen_range(12..=20);
        let d: Vec<u32> = (0..n)
            .map(|_| rng.gen_range(4..vocab.len() as u32))
            .collect();
        valid.push_doc(&d);
    }
    valid.save(&tokenize.join("valid")).unwrap();
    valid.save(&tokenize.join("train")).unwrap();
    let cfg = tiny_config(vocab.len());
    let weights = Weights::init(&cfg, &mut rng);
    let bytes = std::fs::read(&vocab_path).unwrap();
    let ckpt = ckpts.join("epoch_1.safetensors");
    save_checkpoint(&ckpt, weights, cfg, blake3::hash(&bytes).to_hex().as_str());
    Fixture {
        dir,
        tokenize,
        ckpts,
        ckpt,
        vocab: vocab_path,
    }
}

/// An upstream record of instance `id` (its stage is `id` before any `@`), kind `kind`, reading
/// `results` and `checkpoints`; parameters `{}`, fingerprint `0`, no duration. Change fields
/// with struct update syntax.
pub fn upstream(id: &str, kind: &str, results: PathBuf, checkpoints: PathBuf) -> Upstream {
    Upstream {
        id: id.into(),
        stage: id.split('@').next().unwrap().into(),
        kind: kind.into(),
        results,
        checkpoints,
        params: serde_json::json!({}),
        fingerprint: "0".into(),
        duration_s: None,
    }
}

/// The fixture's two upstreams: `train@epoch=1` (its checkpoints) and `tokenize`.
pub fn upstreams(f: &Fixture) -> Vec<Upstream> {
    vec![
        Upstream {
            params: serde_json::json!({"epoch": 1}),
            ..upstream(
                "train@epoch=1",
                "train",
                f.dir.path().join("results/train@epoch=1"),
                f.ckpts.clone(),
            )
        },
        Upstream {
            fingerprint: "1".into(),
            ..upstream(
                "tokenize",
                "tokenize",
                f.tokenize.clone(),
                f.dir.path().join("checkpoints/tokenize"),
            )
        },
    ]
}
