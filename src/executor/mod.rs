//! Where the instances that must compute run: on this machine (the default) or as one Slurm job
//! each (`--executor slurm`, or `executor: { kind: slurm, … }` in the pipeline file).

pub mod resources;
pub mod slurm;

use crate::error::{PipeError, Result};
use std::path::Path;

/// The executor a run uses.
#[derive(Debug, Clone, Default)]
pub enum Executor {
    #[default]
    Local,
    Slurm(slurm::SlurmConfig),
}

/// `--executor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExecutorKind {
    Local,
    Slurm,
}

/// The pipeline file's top-level `executor:` block, if any (`kind: local|slurm`, `partition`,
/// `account`, `extra: [flags]`, `resources: { stage: { cpus, mem_mb, time_min, gpus,
/// partition } }`).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutorBlock {
    pub kind: Option<String>,
    pub partition: Option<String>,
    pub account: Option<String>,
    #[serde(default)]
    pub extra: Vec<String>,
    #[serde(default)]
    pub resources: std::collections::BTreeMap<String, resources::Resources>,
}

fn read_block(root: &Path, pipeline: &Path) -> Result<Option<ExecutorBlock>> {
    let file = root.join(pipeline);
    let text = std::fs::read_to_string(&file)
        .map_err(|e| PipeError::Config(format!("cannot read {}: {e}", file.display())))?;
    let yaml: serde_yaml::Value = serde_yaml::from_str(&text)
        .map_err(|e| PipeError::Config(format!("{}: not valid YAML: {e}", file.display())))?;
    match yaml.get("executor") {
        None | Some(serde_yaml::Value::Null) => Ok(None),
        Some(v) => serde_yaml::from_value(v.clone())
            .map(Some)
            .map_err(|e| PipeError::Config(format!("{}: key `executor`: {e}", file.display()))),
    }
}

/// The executor for a run: `--executor` wins over the pipeline's `executor:` block; the
/// block's settings apply to Slurm either way. `sets`/`params` are the run's overrides, passed
/// on to each job.
pub fn select(
    cli: Option<ExecutorKind>,
    root: &Path,
    pipeline: &Path,
    sets: &[String],
    params: Option<&Path>,
) -> Result<Executor> {
    let block = read_block(root, pipeline)?.unwrap_or_default();
    let kind = match (cli, block.kind.as_deref()) {
        (Some(k), _) => k,
        (None, None | Some("local")) => ExecutorKind::Local,
        (None, Some("slurm")) => ExecutorKind::Slurm,
        (None, Some(other)) => {
            return Err(PipeError::Config(format!(
                "{}: executor.kind `{other}`: expected `local` or `slurm`",
                root.join(pipeline).display()
            )))
        }
    };
    Ok(match kind {
        ExecutorKind::Local => Executor::Local,
        ExecutorKind::Slurm => Executor::Slurm(slurm::SlurmConfig {
            pipeline: pipeline.to_path_buf(),
            sets: sets.to_vec(),
            params: params.map(|p| p.to_path_buf()),
            partition: block.partition,
            account: block.account,
            extra: block.extra,
            resources: block.resources,
        }),
    })
}
