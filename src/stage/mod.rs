//! Stage kinds: the contract between the engine and the built-in kinds, and the registry.
//! Each kind lives in its own file and is thin glue over the domain libraries.

use crate::progress::Reporter;
use std::path::{Path, PathBuf};

pub mod beam_eval;
pub mod beam_report;
pub mod command;
pub mod embed;
pub mod eval_inputs;
pub mod fetch;
pub mod infer;
pub mod kv_eval;
pub mod plot;
pub mod report;
pub mod tokenize;
pub mod train;

/// Static facts about a kind.
#[derive(Debug, Clone, Copy)]
pub struct KindInfo {
    /// The `kind:` name in pipeline files.
    pub name: &'static str,
    /// Bumped whenever the kind's behaviour or outputs change; part of every fingerprint.
    pub version: u32,
    /// The text of `stages/<kind>.yaml`: every parameter with its default and a comment.
    pub defaults_yaml: &'static str,
    /// Takes the `compute` slot: at most one heavy stage runs at a time.
    pub heavy: bool,
    /// Expands into one node per epoch (`<stage>@epoch=N`) driven by the `epochs` parameter.
    pub per_epoch: bool,
    /// Matrix keys may be any name (not only parameters of the kind): `command` stages.
    pub free_matrix_keys: bool,
    /// Upstream kinds this kind reads: each must be among the stage's `needs` (checked at load).
    pub needs: &'static [&'static str],
    /// The kind reads the pipeline's `name` (e.g. as a title): it enters the fingerprint.
    pub uses_pipeline_name: bool,
    /// The kind shows its upstreams' measurements (speeds, wall times, durations): it sees every
    /// ancestor (`StageCtx::ancestors`), whose outputs hashes enter its fingerprint; the
    /// measurements themselves never do, so its outputs may differ between two runs.
    pub reads_measurements: bool,
}

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
    /// Threads this stage may use.
    pub threads: usize,
    /// Mirror folders (absolute) searched for downloads by checksum (`--mirror`, `PIPE_MIRROR`).
    pub mirrors: Vec<PathBuf>,
    pub reporter: Reporter,
}

impl StageCtx {
    /// A seed for random draws named `what`, derived from the pipeline seed and the stage id.
    pub fn seed_for(&self, what: &str) -> u64 {
        derive_seed(self.pipeline_seed, &self.id, what)
    }

    /// A seed derived from the pipeline seed and the *base* stage name (the same for every
    /// epoch node of a stage, so epoch-by-epoch training equals one uninterrupted run).
    pub fn stage_seed_for(&self, what: &str) -> u64 {
        derive_seed(self.pipeline_seed, &self.stage, what)
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

pub use crate::seed::derive_seed;

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

/// Writes `measurements.json` (speeds, wall times) into `ctx.meas_dir`: stored and shown in
/// reports, never part of the outputs hash.
pub fn write_measurements(ctx: &StageCtx, doc: &serde_json::Value) -> anyhow::Result<()> {
    use anyhow::Context;
    let dir = &ctx.meas_dir;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("measurements.json");
    std::fs::write(&path, serde_json::to_vec_pretty(doc)?)
        .with_context(|| format!("writing {}", path.display()))
}

/// A stage kind.
pub trait StageKind: Send + Sync {
    fn info(&self) -> KindInfo;

    /// Checks fully merged parameters by deserialising them into the kind's typed struct
    /// (which denies unknown fields). The error names the key.
    fn check(&self, params: &serde_json::Value) -> Result<(), String>;

    /// Files or folders outside the pipeline graph whose content is an input of the stage
    /// (hashed into its fingerprint), relative to the project root.
    fn external_inputs(&self, _params: &serde_json::Value) -> Vec<PathBuf> {
        Vec::new()
    }

    /// Files or folders the stage writes in the project itself (relative to the project root),
    /// besides `ctx.out_dir` and `ctx.ckpt_dir`: the `outs` of `command` stages. The engine
    /// removes them before the stage runs, fails the stage when one is missing afterwards, and
    /// caches and restores them like any other output.
    fn declared_outputs(&self, _params: &serde_json::Value) -> Vec<PathBuf> {
        Vec::new()
    }

    /// Does the work, writing outputs under `ctx.out_dir` and `ctx.ckpt_dir`.
    fn run(&self, ctx: &StageCtx) -> anyhow::Result<()>;
}

/// The typed contract of a built-in kind: its parameters are parsed into `Params` and checked
/// by `validate` once, by the blanket [`StageKind`] impl; `run` gets them typed.
pub trait Kind: Send + Sync {
    /// The kind's parameters (`stages/<kind>.yaml`), denying unknown keys.
    type Params: serde::de::DeserializeOwned;

    fn info(&self) -> KindInfo;

    /// Value checks beyond the types; the message names the key.
    fn validate(&self, _p: &Self::Params) -> Result<(), String> {
        Ok(())
    }

    /// See [`StageKind::external_inputs`].
    fn external_inputs(&self, _p: &Self::Params) -> Vec<PathBuf> {
        Vec::new()
    }

    /// Does the work, writing outputs under `ctx.out_dir`, `ctx.ckpt_dir` and `ctx.meas_dir`.
    /// Messages need not name the stage: the engine does.
    fn run(&self, ctx: &StageCtx, p: &Self::Params) -> anyhow::Result<()>;
}

/// Parses and validates a kind's parameters (the message names the bad key).
pub fn parse<K: Kind>(kind: &K, params: &serde_json::Value) -> Result<K::Params, String> {
    let p = check_as::<K::Params>(params)?;
    kind.validate(&p)?;
    Ok(p)
}

impl<K: Kind> StageKind for K {
    fn info(&self) -> KindInfo {
        Kind::info(self)
    }

    fn check(&self, params: &serde_json::Value) -> Result<(), String> {
        parse(self, params).map(|_| ())
    }

    fn external_inputs(&self, params: &serde_json::Value) -> Vec<PathBuf> {
        parse(self, params)
            .map(|p| Kind::external_inputs(self, &p))
            .unwrap_or_default()
    }

    fn run(&self, ctx: &StageCtx) -> anyhow::Result<()> {
        let p = parse(self, &ctx.params).map_err(|e| anyhow::anyhow!("bad parameters: {e}"))?;
        Kind::run(self, ctx, &p)
    }
}

impl KindInfo {
    /// A light kind that needs nothing and reads no measurements: the base of each kind's
    /// `KindInfo` (`KindInfo { heavy: true, ..KindInfo::base(…) }`).
    pub const fn base(name: &'static str, version: u32, defaults_yaml: &'static str) -> Self {
        KindInfo {
            name,
            version,
            defaults_yaml,
            heavy: false,
            per_epoch: false,
            free_matrix_keys: false,
            needs: &[],
            uses_pipeline_name: false,
            reads_measurements: false,
        }
    }
}

/// Every built-in kind.
pub fn registry() -> Vec<&'static dyn StageKind> {
    vec![
        &command::Command,
        &fetch::Fetch,
        &tokenize::Tokenize,
        &embed::Embed,
        &train::Train,
        &plot::Plot,
        &infer::Infer,
        &kv_eval::KvEval,
        &beam_eval::BeamEval,
        &beam_report::BeamReport,
        &report::Report,
    ]
}

/// Looks a kind up by name.
pub fn find(name: &str) -> Option<&'static dyn StageKind> {
    registry().into_iter().find(|k| k.info().name == name)
}

/// Parses typed params (the message names the bad or unknown key): a helper for
/// `StageKind::check` implementations, which then validate the values.
pub fn check_as<T: serde::de::DeserializeOwned>(params: &serde_json::Value) -> Result<T, String> {
    serde_json::from_value::<T>(params.clone()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_are_unique_and_defaults_parse() {
        let mut names: Vec<_> = registry().iter().map(|k| k.info().name).collect();
        names.sort();
        let n = names.len();
        names.dedup();
        assert_eq!(names.len(), n);
        for k in registry() {
            let v: serde_yaml::Value = serde_yaml::from_str(k.info().defaults_yaml)
                .unwrap_or_else(|e| panic!("stages/{}.yaml: {e}", k.info().name));
            let json = serde_json::to_value(v).unwrap();
            let json = if json.is_null() {
                serde_json::json!({})
            } else {
                json
            };
            k.check(&json)
                .unwrap_or_else(|e| panic!("stages/{}.yaml defaults: {e}", k.info().name));
        }
    }

    #[test]
    fn derived_seeds_differ_by_name() {
        assert_ne!(derive_seed(1, "a", "x"), derive_seed(1, "b", "x"));
        assert_eq!(derive_seed(1, "a", "x"), derive_seed(1, "a", "x"));
    }
}
