//! A pipeline's top-level settings besides its stages: the remote store (`remote:`) and how
//! stages are executed (`executor: { kind, partition, account, extra, shared_fs }`), read from
//! the pipeline file once, with the file's other keys. Resources are per stage (`resources:`),
//! not here.

use super::parse::{cfg, Source};
use crate::error::Result;
use std::path::Path;

/// Where instances that must compute run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecutorKind {
    /// This machine.
    #[default]
    Local,
    /// One Slurm batch job per instance.
    Slurm,
}

/// The pipeline's `executor:` block.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutorSettings {
    /// `local` or `slurm` (None: not given).
    pub kind: Option<ExecutorKind>,
    /// The partition of stages whose resources name none.
    pub partition: Option<String>,
    pub account: Option<String>,
    /// Further `sbatch` flags, as given.
    #[serde(default)]
    pub extra: Vec<String>,
    /// False: jobs share no folder with the driver and go through the remote store.
    pub shared_fs: Option<bool>,
    /// The old place of resources: refused with a message naming the new key.
    #[serde(default)]
    resources: Option<serde_yaml::Value>,
}

/// The settings of a pipeline file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settings {
    /// `remote:` (an `s3://bucket/prefix` URL or a folder).
    pub remote: Option<String>,
    pub executor: ExecutorSettings,
}

impl Settings {
    /// True when the pipeline's `executor.kind` is `slurm`.
    pub fn uses_slurm(&self) -> bool {
        self.executor.kind == Some(ExecutorKind::Slurm)
    }
}

/// The settings of a parsed pipeline file.
pub(crate) fn from_source(src: &Source) -> Result<Settings> {
    from_values(
        &src.fname,
        &src.text,
        src.remote.as_ref(),
        src.executor.as_ref(),
    )
}

/// The settings from the top-level `remote:` and `executor:` values of the file `fname`
/// (`text`, for positions).
fn from_values(
    fname: &str,
    text: &str,
    remote: Option<&serde_yaml::Value>,
    executor: Option<&serde_yaml::Value>,
) -> Result<Settings> {
    let at = |path: &[&str]| super::locate::at_best(fname, text, path);
    let remote = match remote {
        None | Some(serde_yaml::Value::Null) => None,
        Some(serde_yaml::Value::String(u)) if !u.trim().is_empty() => Some(u.trim().to_string()),
        Some(_) => {
            return Err(cfg(format!(
                "{}: key `remote` must be a string (s3://bucket/prefix or a folder)",
                at(&["remote"])
            )))
        }
    };
    let executor: ExecutorSettings = match executor {
        None | Some(serde_yaml::Value::Null) => ExecutorSettings::default(),
        Some(v) => serde_yaml::from_value(v.clone())
            .map_err(|e| cfg(format!("{}: key `executor`: {e}", at(&["executor"]))))?,
    };
    if executor.resources.is_some() {
        return Err(cfg(format!(
            "{}: `executor.resources` is no longer read: give each stage a `resources:` key \
             beside `params:` (e.g. `train: {{ kind: train, resources: {{ cpus: 2, mem_mb: 4096 }} }}`) \
             or a kind default as `defaults.<kind>.resources`",
            at(&["executor", "resources"])
        )));
    }
    Ok(Settings { remote, executor })
}

/// The settings of a pipeline file, reading only its top-level `remote:` and `executor:` (for
/// `push` and `pull`, which need no stage).
pub fn read(root: &Path, file: &Path) -> Result<Settings> {
    #[derive(serde::Deserialize)]
    struct Top {
        #[serde(default)]
        remote: Option<serde_yaml::Value>,
        #[serde(default)]
        executor: Option<serde_yaml::Value>,
    }
    let fname = file.display().to_string();
    let text = std::fs::read_to_string(root.join(file))
        .map_err(|e| cfg(format!("cannot read pipeline file {fname}: {e}")))?;
    let top: Top = serde_yaml::from_str(&text).map_err(|e| super::parse::yaml_error(&fname, &e))?;
    from_values(&fname, &text, top.remote.as_ref(), top.executor.as_ref())
}
