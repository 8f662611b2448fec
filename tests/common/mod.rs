//! Shared fixtures of the stage tests: the one `StageCtx` builder, a tiny random model saved as
//! a checkpoint beside the tokenize outputs it belongs to, and kind defaults with overrides.
#![allow(dead_code)]

use pipe::model::{Checkpoint, CheckpointMeta, ModelConfig, Weights};
use pipe::progress::Reporter;
use pipe::stage::{StageCtx, StageKind, Upstream};
use pipe::text::{TokenFile, Vocab};
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};

pub const WORDS: [&str; 20] = [
    "there", "was", "a", "brave", "explorer", "he", "wanted", "to", "explore", "little", "girl",
    "she", "so", "small", "the", "dog", "ran", "home", "and", "played",
];

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub tokenize: PathBuf,
    pub ckpts: PathBuf,
    pub ckpt: PathBuf,
    pub vocab: PathBuf,
}

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

/// vocab.json, valid split (`docs` documents of 12–20 words), train split, and a random
/// checkpoint `epoch_1.safetensors` whose sidecar carries the vocabulary's blake3.
pub fn fixture(docs: usize) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let tokenize = dir.path().join("results/tokenize");
    let ckpts = dir.path().join("checkpoints/train");
    std::fs::create_dir_all(&tokenize).unwrap();
    std::fs::create_dir_all(&ckpts).unwrap();
    let vocab = Vocab::from_words(WORDS.iter().map(|s| s.to_string()));
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
    let ck = Checkpoint {
        weights,
        meta: CheckpointMeta {
            config: cfg,
            vocab_blake3: blake3::hash(&bytes).to_hex().to_string(),
            epoch: 1,
            metrics: Default::default(),
            extra: serde_json::Value::Null,
        },
    };
    let ckpt = ckpts.join("epoch_1.safetensors");
    ck.save(&ckpt).unwrap();
    Fixture {
        dir,
        tokenize,
        ckpts,
        ckpt,
        vocab: vocab_path,
    }
}

/// The kind's defaults with `overrides` laid over them.
pub fn params(kind: &dyn StageKind, overrides: serde_json::Value) -> serde_json::Value {
    let y: serde_yaml::Value = serde_yaml::from_str(kind.info().defaults_yaml).unwrap();
    let mut v = serde_json::to_value(y).unwrap();
    if v.is_null() {
        v = serde_json::json!({});
    }
    if let (Some(m), Some(o)) = (v.as_object_mut(), overrides.as_object()) {
        for (k, x) in o {
            m.insert(k.clone(), x.clone());
        }
    }
    kind.check(&v).unwrap();
    v
}

pub fn upstreams(f: &Fixture) -> Vec<Upstream> {
    vec![
        Upstream {
            id: "train@epoch=1".into(),
            stage: "train".into(),
            kind: "train".into(),
            results: f.dir.path().join("results/train@epoch=1"),
            checkpoints: f.ckpts.clone(),
            params: serde_json::json!({"epoch": 1}),
            fingerprint: "0".into(),
            duration_s: None,
        },
        Upstream {
            id: "tokenize".into(),
            stage: "tokenize".into(),
            kind: "tokenize".into(),
            results: f.tokenize.clone(),
            checkpoints: f.dir.path().join("checkpoints/tokenize"),
            params: serde_json::json!({}),
            fingerprint: "1".into(),
            duration_s: None,
        },
    ]
}

/// The one `StageCtx` builder of the stage tests: a kind's defaults, folders under `root`
/// (`results/<id>`, `ckpt/<id>`, `meas/<id>`), pipeline `test`, seed 7, one thread, silent.
pub struct CtxBuilder {
    ctx: StageCtx,
}

impl CtxBuilder {
    pub fn new(root: &Path, kind: &dyn StageKind) -> Self {
        let name = kind.info().name;
        CtxBuilder {
            ctx: StageCtx {
                pipeline: "test".into(),
                id: String::new(),
                stage: name.into(),
                kind: name.into(),
                pipeline_seed: 7,
                params: params(kind, serde_json::json!({})),
                upstream: Vec::new(),
                out_dir: PathBuf::new(),
                ckpt_dir: PathBuf::new(),
                meas_dir: PathBuf::new(),
                ancestors: Vec::new(),
                fingerprint: String::new(),
                root: root.to_path_buf(),
                cache_dir: root.join("cache"),
                threads: 1,
                mirrors: Vec::new(),
                reporter: Reporter::silent(),
            },
        }
        .id(name)
    }

    /// Instance id; the staging folders follow it.
    pub fn id(mut self, id: &str) -> Self {
        let root = self.ctx.root.clone();
        self.ctx.id = id.into();
        self.ctx.out_dir = root.join("results").join(id);
        self.ctx.ckpt_dir = root.join("ckpt").join(id);
        self.ctx.meas_dir = root.join("meas").join(id);
        self
    }

    pub fn stage(mut self, stage: &str) -> Self {
        self.ctx.stage = stage.into();
        self
    }

    /// Parameters as given (already merged with the defaults).
    pub fn params(mut self, params: serde_json::Value) -> Self {
        self.ctx.params = params;
        self
    }

    pub fn upstream(mut self, upstream: Vec<Upstream>) -> Self {
        self.ctx.upstream = upstream;
        self
    }

    pub fn out_dir(mut self, dir: PathBuf) -> Self {
        self.ctx.out_dir = dir;
        self
    }

    pub fn ckpt_dir(mut self, dir: PathBuf) -> Self {
        self.ctx.ckpt_dir = dir;
        self
    }

    pub fn meas_dir(mut self, dir: PathBuf) -> Self {
        self.ctx.meas_dir = dir;
        self
    }

    pub fn pipeline(mut self, name: &str, seed: u64) -> Self {
        self.ctx.pipeline = name.into();
        self.ctx.pipeline_seed = seed;
        self
    }

    pub fn threads(mut self, n: usize) -> Self {
        self.ctx.threads = n;
        self
    }

    /// Mirror folders for downloads (default none).
    pub fn mirrors(mut self, dirs: Vec<PathBuf>) -> Self {
        self.ctx.mirrors = dirs;
        self
    }

    pub fn reporter(mut self, r: Reporter) -> Self {
        self.ctx.reporter = r;
        self
    }

    pub fn build(self) -> StageCtx {
        std::fs::create_dir_all(&self.ctx.out_dir).unwrap();
        self.ctx
    }
}

/// A context for `kind` as instance `id` of stage `stage` (see [`CtxBuilder`]), with its output
/// folder under `root/results/<id>`.
pub fn ctx(
    root: &Path,
    id: &str,
    stage: &str,
    kind: &dyn StageKind,
    params: serde_json::Value,
    upstream: Vec<Upstream>,
) -> StageCtx {
    CtxBuilder::new(root, kind)
        .id(id)
        .stage(stage)
        .params(params)
        .upstream(upstream)
        .ckpt_dir(root.join("ckpt_out").join(stage))
        .meas_dir(root.join("meas_out").join(stage))
        .build()
}

/// Copies the stage's measurement files into its `out_dir`, as the engine materialises both
/// into `results/<pipeline>/<id>/` (for tests that hand one stage's results to the next).
pub fn materialise(c: &StageCtx) {
    let Ok(rd) = std::fs::read_dir(&c.meas_dir) else {
        return;
    };
    std::fs::create_dir_all(&c.out_dir).unwrap();
    for e in rd {
        let e = e.unwrap();
        std::fs::copy(e.path(), c.out_dir.join(e.file_name())).unwrap();
    }
}

/// Checks a PNG signature and returns its (width, height).
pub fn png_size(p: &Path) -> (u32, u32) {
    let b = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    assert_eq!(
        &b[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is not a PNG",
        p.display()
    );
    let w = u32::from_be_bytes(b[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(b[20..24].try_into().unwrap());
    (w, h)
}
