//! The contract between the engine and a stage kind: its static facts ([`KindInfo`]), the
//! untyped interface the engine calls ([`StageKind`]) and the typed one built-in kinds implement
//! ([`Kind`]: parameters parsed and validated once).

use super::StageCtx;
use std::path::PathBuf;

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
    /// Matrix keys and parameters may be any name (user parameters, besides the kind's own):
    /// `command` stages. Override layers (`--params`, `PIPE_<STAGE>__<KEY>`, `--set`) may only
    /// set a key the pipeline declares (a kind parameter, a stage parameter or a matrix key).
    pub free_matrix_keys: bool,
    /// Upstream kinds this kind reads: each must be among the stage's `needs` (checked at load).
    pub needs: &'static [&'static str],
    /// The kind reads the pipeline's `name` (e.g. as a title): it enters the fingerprint.
    pub uses_pipeline_name: bool,
    /// The kind shows its upstreams' measurements (speeds, wall times, durations): it sees every
    /// ancestor (`StageCtx::ancestors`), whose outputs hashes enter its fingerprint; the
    /// measurements themselves never do, so its outputs may differ between two runs, and
    /// downstream fingerprints see its fingerprint instead of its outputs.
    pub reads_measurements: bool,
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

/// Parses typed params (the message names the bad or unknown key): a helper for
/// `StageKind::check` implementations, which then validate the values.
pub fn check_as<T: serde::de::DeserializeOwned>(params: &serde_json::Value) -> Result<T, String> {
    serde_json::from_value::<T>(params.clone()).map_err(|e| e.to_string())
}
