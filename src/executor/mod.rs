//! Where the instances that must compute run: on this machine (the default) or as one Slurm job
//! each (`--executor slurm`, or `executor: { kind: slurm, … }` in the pipeline file).

pub mod detached;
pub mod job;
pub mod resources;
pub mod scratch;
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

/// The pipeline file's top-level `executor:` block, if any (`kind: local|slurm`, `partition`
/// (the default of stages that name none), `account`, `extra: [flags]`, `shared_fs: false`).
/// Resources are per stage (`resources:` beside `params:`), not here.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutorBlock {
    pub kind: Option<String>,
    pub partition: Option<String>,
    pub account: Option<String>,
    #[serde(default)]
    pub extra: Vec<String>,
    /// False: jobs share no folder with the driver and go through the remote store.
    pub shared_fs: Option<bool>,
    /// The old place of resources: refused with a message naming the new key.
    resources: Option<serde_yaml::Value>,
}

fn read_block(root: &Path, pipeline: &Path) -> Result<Option<ExecutorBlock>> {
    let file = root.join(pipeline);
    let text = std::fs::read_to_string(&file)
        .map_err(|e| PipeError::Config(format!("cannot read {}: {e}", file.display())))?;
    let yaml: serde_yaml::Value = serde_yaml::from_str(&text)
        .map_err(|e| PipeError::Config(format!("{}: not valid YAML: {e}", file.display())))?;
    let block: ExecutorBlock = match yaml.get("executor") {
        None | Some(serde_yaml::Value::Null) => return Ok(None),
        Some(v) => serde_yaml::from_value(v.clone()).map_err(|e| {
            PipeError::Config(format!(
                "{}: key `executor`: {e}",
                crate::config::at_best(&file.display().to_string(), &text, &["executor"])
            ))
        })?,
    };
    if block.resources.is_some() {
        return Err(PipeError::Config(format!(
            "{}: `executor.resources` is no longer read: give each stage a `resources:` key \
             beside `params:` (e.g. `train: {{ kind: train, resources: {{ cpus: 2, mem_mb: 4096 }} }}`) \
             or a kind default as `defaults.<kind>.resources`",
            crate::config::at_best(
                &file.display().to_string(),
                &text,
                &["executor", "resources"]
            )
        )));
    }
    Ok(Some(block))
}

/// True when the pipeline's `executor:` block asks for Slurm (then `pipe graph`/`status` show
/// resources without `--resources`). A block that cannot be read counts as no.
pub fn pipeline_uses_slurm(root: &Path, pipeline: &Path) -> bool {
    matches!(read_block(root, pipeline), Ok(Some(b)) if b.kind.as_deref() == Some("slurm"))
}

/// The executor for a run: `--executor` wins over the pipeline's `executor:` block; the
/// block's settings apply to Slurm either way. `sets`/`params` are the run's overrides, passed
/// on to each job; `remote` is `run --remote` (jobs without a shared folder need a remote).
pub fn select(
    cli: Option<ExecutorKind>,
    root: &Path,
    pipeline: &Path,
    sets: &[String],
    params: Option<&Path>,
    remote: Option<&str>,
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
    if kind == ExecutorKind::Local {
        return Ok(Executor::Local);
    }
    let remote = if block.shared_fs == Some(false) {
        let url = crate::remote::select::remote_url(remote, root, pipeline).map_err(|e| {
            PipeError::Config(format!(
                "{}: `executor.shared_fs: false` sends every job's inputs and outputs through a \
                 remote store, but {e}",
                root.join(pipeline).display()
            ))
        })?;
        // Open it once here: a bad URL is a configuration error before anything is submitted;
        // a folder remote is passed to the jobs as an absolute path.
        let r = crate::remote::Remote::open(&url, root)?;
        Some(match &r {
            crate::remote::Remote::Folder(f) => f.root().display().to_string(),
            crate::remote::Remote::S3(_) => url,
        })
    } else {
        None
    };
    Ok(Executor::Slurm(slurm::SlurmConfig {
        pipeline: pipeline.to_path_buf(),
        sets: sets.to_vec(),
        params: params.map(|p| p.to_path_buf()),
        partition: block.partition,
        account: block.account,
        extra: block.extra,
        remote,
    }))
}
