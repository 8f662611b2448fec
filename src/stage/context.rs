//! What a stage sees when it runs: its [`StageCtx`] (parameters, upstreams, staging folders,
//! seeds, threads, progress) and small file helpers whose errors name the path.

use crate::progress::Reporter;
use std::path::{Path, PathBuf};

/// A stage this one needs, already run (or restored) and materialised on disk.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// Instance id, e.g. `beam-eval@beam_width=5` or `train@epoch=3`.
    pub id: String,
    /// Base stage name, e.g. `beam-eval`.
    pub stage: String,
    pub kind: String,
    /// Its `results/<pipeline>/<id>/` folder.
    pub results: PathBuf,
    /// Its `checkpoints/<pipeline>/<stage>/` folder.
    pub checkpoints: PathBuf,
    /// Its fully merged parameters (matrix values included).
    pub params: serde_json::Value,
    /// Its fingerprint (blake3 hex) as recorded by the engine.
    pub fingerprint: String,
    /// Seconds its last real run took (None when unknown).
    pub duration_s: Option<f64>,
}

/// Everything a stage gets when it runs.
pub struct StageCtx {
    pub pipeline: String,
    /// Instance id (`train@epoch=2`, `beam-eval@beam_width=5`, `tokenize`).
    pub id: String,
    /// Base stage name (`train`).
    pub stage: String,
    pub kind: String,
    /// The pipeline's `seed:`.
    pub pipeline_seed: u64,
    /// Fully merged parameters, matrix point and epoch (for per-epoch kinds: `epoch`) included.
    pub params: serde_json::Value,
    /// Stages this one needs, in `needs` order with swept stages expanded to all instances.
    /// For epoch N > 1 of a per-epoch kind, the previous epoch comes first.
    pub upstream: Vec<Upstream>,
    /// Every instance this one depends on, transitively, in topological order: filled for kinds
    /// that read measurements (reports), empty for the others.
    pub ancestors: Vec<Upstream>,
    /// This instance's fingerprint (blake3 hex).
    pub fingerprint: String,
    /// Staging folder whose content becomes `results/<pipeline>/<id>/`.
    pub out_dir: PathBuf,
    /// Staging folder whose content is added to `checkpoints/<pipeline>/<stage>/`.
    pub ckpt_dir: PathBuf,
    /// Staging folder for measurements (speeds, wall times): its files are stored and restored
    /// into `results/<pipeline>/<id>/` beside the outputs, but they are not part of the outputs
    /// hash that downstream fingerprints see. File names must not clash with `out_dir`'s.
    pub meas_dir: PathBuf,
    /// Project root (the folder `pipe` runs in); relative paths in params are relative to it.
    pub root: PathBuf,
    /// The project's `cache/` folder (downloads may be kept here).
    pub cache_dir: PathBuf,
    /// Mirror folders (absolute) searched for downloads by checksum (`--mirror`, `PIPE_MIRROR`).
    pub mirrors: Vec<PathBuf>,
    /// Threads this stage may use.
    pub threads: usize,
    pub reporter: Reporter,
}

impl StageCtx {
    /// A seed for random draws named `what`, derived from the pipeline seed and the stage id.
    pub fn seed_for(&self, what: &str) -> u64 {
        crate::seed::derive_seed(self.pipeline_seed, &self.id, what)
    }

    /// A seed derived from the pipeline seed and the *base* stage name (the same for every
    /// epoch node of a stage, so epoch-by-epoch training equals one uninterrupted run).
    pub fn stage_seed_for(&self, what: &str) -> u64 {
        crate::seed::derive_seed(self.pipeline_seed, &self.stage, what)
    }

    /// Resolves a path parameter against the project root.
    pub fn path(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.root.join(p)
        }
    }

    /// Upstream stages of a given kind.
    pub fn upstream_of_kind<'a>(
        &'a self,
        kind: &'a str,
    ) -> impl Iterator<Item = &'a Upstream> + 'a {
        self.upstream.iter().filter(move |u| u.kind == kind)
    }

    /// The single upstream of a kind, or an error naming the stage and the kind.
    pub fn one_upstream<'a>(&'a self, kind: &'a str) -> anyhow::Result<&'a Upstream> {
        let mut it = self.upstream_of_kind(kind);
        match (it.next(), it.next()) {
            (Some(u), None) => Ok(u),
            (None, _) => {
                anyhow::bail!("needs a stage of kind `{kind}`; add one to its `needs`")
            }
            (Some(_), Some(_)) => {
                anyhow::bail!("needs exactly one stage of kind `{kind}`, found several")
            }
        }
    }

    /// Typed parameters (for kinds implementing [`StageKind`] directly; [`Kind`]s get theirs
    /// parsed once by the blanket impl).
    pub fn params<T: serde::de::DeserializeOwned>(&self) -> anyhow::Result<T> {
        serde_json::from_value(self.params.clone())
            .map_err(|e| anyhow::anyhow!("bad parameters: {e}"))
    }
}

/// Writes a file; the error names it.
pub fn write_file(path: impl AsRef<Path>, bytes: impl AsRef<[u8]>) -> anyhow::Result<()> {
    let path = path.as_ref();
    std::fs::write(path, bytes).map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))
}

/// Creates a folder and its parents; the error names it.
pub fn create_dir(path: impl AsRef<Path>) -> anyhow::Result<()> {
    let path = path.as_ref();
    std::fs::create_dir_all(path).map_err(|e| anyhow::anyhow!("creating {}: {e}", path.display()))
}

/// Writes `measurements.json` (speeds, wall times, and `measured_at`: when) into
/// `ctx.meas_dir`: stored and shown in reports, never part of the outputs hash.
pub fn write_measurements(ctx: &StageCtx, doc: &serde_json::Value) -> anyhow::Result<()> {
    use anyhow::Context;
    let dir = &ctx.meas_dir;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("measurements.json");
    let mut doc = doc.clone();
    if let serde_json::Value::Object(m) = &mut doc {
        m.insert("measured_at".into(), crate::experiment::now().into());
    }
    std::fs::write(&path, serde_json::to_vec_pretty(&doc)?)
        .with_context(|| format!("writing {}", path.display()))
}
