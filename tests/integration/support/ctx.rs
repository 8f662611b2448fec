//! The one `StageCtx` builder of the stage tests, the kind defaults with overrides, and the
//! engine's materialising of measurements that tests handing results on need.

use pipe::progress::Reporter;
use pipe::stage::{StageCtx, StageKind, Upstream};
use std::path::{Path, PathBuf};

/// The kind's defaults with `overrides` laid over them, checked by the kind.
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

/// A context for one kind: its defaults, folders under `root` (`results/<id>`, `ckpt/<id>`,
/// `meas/<id>`), pipeline `test`, seed 7, one thread, silent. New `StageCtx` fields get their
/// test value here and nowhere else.
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

    /// Parameters as given (already merged with the defaults, see [`params`]).
    pub fn params(mut self, params: serde_json::Value) -> Self {
        self.ctx.params = params;
        self
    }

    /// The kind's defaults with `overrides` laid over them, checked (see [`params`]).
    pub fn overrides(self, kind: &dyn StageKind, overrides: serde_json::Value) -> Self {
        self.params(params(kind, overrides))
    }

    pub fn upstream(mut self, upstream: Vec<Upstream>) -> Self {
        self.ctx.upstream = upstream;
        self
    }

    /// Output folders `root/out`, `root/ckpt` and `root/meas` (one context per root).
    pub fn flat(mut self) -> Self {
        let root = self.ctx.root.clone();
        self.ctx.out_dir = root.join("out");
        self.ctx.ckpt_dir = root.join("ckpt");
        self.ctx.meas_dir = root.join("meas");
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

    /// The context, its output folder created.
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
