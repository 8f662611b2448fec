//! Experiments: a run of a pipeline with its overrides (`--set`, `--params`,
//! `PIPE_<STAGE>__<KEY>`), recorded in the store as `cache/experiments/<name>.json` with a name,
//! when it ran, the git commit and dirty mark, the overrides and every instance's fingerprint.
//! Its results are the store's run records and objects, so an experiment costs one small file.
//! An experiment may also be queued (overrides only) and run later (`pipe exp run --run-all`).
//!
//! The library takes a small [`RunInput`] of its own, so it knows nothing of the run loop.

pub mod charts;
pub mod curves;
pub mod git;
pub mod overrides;
pub mod table;
pub mod yaml_edit;

pub use overrides::Override;

use crate::digest::Fingerprint;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where an experiment stands.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Waiting in the queue (`pipe exp run --queue`).
    Queued,
    /// Its run is in progress (by process `pid`).
    Running,
    /// Every instance is up to date.
    Done,
    /// A stage failed.
    Failed,
    /// The run was stopped (Ctrl-C, SIGTERM).
    Interrupted,
}

/// One instance of the experiment's run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InstanceRef {
    pub id: String,
    /// Base stage name.
    pub stage: String,
    pub kind: String,
    /// Its fingerprint, when known (an instance behind a failed one has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<Fingerprint>,
    /// `ran`, `restored`, `up-to-date`, `failed`, `skipped`, `interrupted`, `planned`.
    pub outcome: String,
}

/// The overrides as given, to run a queued experiment again exactly.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Given {
    /// `--set stage.key=value`, in order.
    #[serde(default)]
    pub set: Vec<String>,
    /// The `--params` file's path (relative to the root) and its content when recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params_file: Option<(String, String)>,
    /// `PIPE_<STAGE>__<KEY>` variables that applied to this pipeline.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// One experiment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Experiment {
    pub name: String,
    /// The pipeline's `name:`.
    pub pipeline: String,
    /// The pipeline file, relative to the project root.
    pub file: String,
    /// When it was recorded (`YYYY-MM-DD HH:MM:SS UTC`).
    pub created: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    #[serde(default)]
    pub dirty: bool,
    pub status: Status,
    /// The process running it (while `Running`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// What it changes against the pipeline file, resolved to stage, key and value.
    #[serde(default)]
    pub overrides: Vec<Override>,
    #[serde(default)]
    pub given: Given,
    /// Every instance, in the pipeline's order (empty while queued).
    #[serde(default)]
    pub instances: Vec<InstanceRef>,
    /// The name was chosen by the user (`-n`), not generated.
    #[serde(default)]
    pub named: bool,
}

/// What a run tells the library about itself.
pub struct RunInput<'a> {
    pub root: &'a Path,
    pub pipeline: &'a str,
    /// The pipeline file, relative to the root.
    pub file: &'a Path,
    /// The pipeline's base stage names (to read `--set stage.key=value`).
    pub stages: &'a [String],
    pub given: Given,
    pub instances: Vec<InstanceRef>,
    /// `-n NAME`.
    pub name: Option<String>,
}

/// Why an experiment could not be read, written or found.
#[derive(Debug, thiserror::Error)]
pub enum ExpError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not an experiment record: {msg}", path.display())]
    Bad { path: PathBuf, msg: String },
    #[error("no experiment `{name}` in {}; {known}", dir.display())]
    Unknown {
        name: String,
        dir: PathBuf,
        known: String,
    },
    #[error("experiment name `{0}`: use letters, digits, `-`, `_` and `.` (at most 64, not starting with `.`)")]
    BadName(String),
    /// `pipe exp apply` cannot write what the experiment changes into its pipeline file.
    #[error("{0}")]
    Apply(String),
    /// `pipe exp apply` wrote the file, but `run --frozen` found results missing.
    #[error(
        "{file} now describes experiment {name}, but not all its results are in the store \
         (see above); `pipe run {file}` computes them"
    )]
    NotRestored { name: String, file: String },
    /// `pipe exp run --run-all`: these experiments' runs failed.
    #[error("experiments failed: {}", .0.join(", "))]
    RunsFailed(Vec<String>),
    /// `pipe plots`: nothing to draw.
    #[error("{}: no curves to draw (no train stage and no declared plots among their results)", .0.join(", "))]
    NoCurves(Vec<String>),
    /// `pipe plots show` without a name, and no experiment recorded.
    #[error("no experiments yet: `pipe run -n NAME` records one")]
    NoneYet,
    #[error(transparent)]
    Chart(#[from] charts::ChartError),
}

impl ExpError {
    /// 2 for a name or request that cannot be met as given, 1 for a failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            ExpError::Unknown { .. }
            | ExpError::BadName(_)
            | ExpError::Apply(_)
            | ExpError::NoneYet => 2,
            _ => 1,
        }
    }
}

/// Checks a user-given name (it becomes a file name).
pub fn check_name(name: &str) -> Result<(), ExpError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(ExpError::BadName(name.to_string()))
    }
}

fn dir(root: &Path) -> PathBuf {
    crate::layout::Layout::new(root).cache().experiments()
}

fn path_of(root: &Path, name: &str) -> PathBuf {
    dir(root).join(format!("{name}.json"))
}

/// Writes an experiment (atomically), never through a link planted in `cache/experiments/`
/// or above it.
pub fn save(root: &Path, e: &Experiment) -> Result<(), ExpError> {
    let path = path_of(root, &e.name);
    crate::cache::fsafe::create_dir_all(root, &dir(root)).map_err(|err| ExpError::Io {
        path: dir(root),
        source: err.into(),
    })?;
    let mut bytes = serde_json::to_vec_pretty(e).expect("serialises");
    bytes.push(b'\n');
    crate::cache::fsafe::write_atomic(root, &path, &bytes).map_err(|err| ExpError::Io {
        path,
        source: err.into(),
    })
}

/// The folders [`save`] would create for `root` (`cache/`, `cache/experiments/`) that do not
/// exist yet, deepest first: what to remove when a run that recorded nothing gives up.
pub fn missing_dirs(root: &Path) -> Vec<PathBuf> {
    let layout = crate::layout::Layout::new(root);
    [dir(root), layout.cache().dir().to_path_buf()]
        .into_iter()
        .filter(|d| std::fs::symlink_metadata(d).is_err())
        .collect()
}

/// Every readable experiment of the project, oldest first; unreadable files are named in the
/// second list.
pub fn load_all(root: &Path) -> (Vec<Experiment>, Vec<ExpError>) {
    let mut out = Vec::new();
    let mut bad = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir(root)) else {
        return (out, bad);
    };
    for e in rd.flatten() {
        let path = e.path();
        if path.extension().and_then(|x| x.to_str()) != Some("json") {
            continue;
        }
        match std::fs::read(&path) {
            Ok(b) => match serde_json::from_slice::<Experiment>(&b) {
                Ok(x) => out.push(x),
                Err(e) => bad.push(ExpError::Bad {
                    path,
                    msg: e.to_string(),
                }),
            },
            Err(source) => bad.push(ExpError::Io { path, source }),
        }
    }
    out.sort_by(|a, b| a.created.cmp(&b.created).then(a.name.cmp(&b.name)));
    (out, bad)
}

/// One experiment by name; unknown is an error listing the known names.
pub fn load(root: &Path, name: &str) -> Result<Experiment, ExpError> {
    let path = path_of(root, name);
    match std::fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| ExpError::Bad {
            path,
            msg: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let (all, _) = load_all(root);
            let names: Vec<String> = all.into_iter().map(|e| e.name).collect();
            Err(ExpError::Unknown {
                name: name.to_string(),
                dir: dir(root),
                known: if names.is_empty() {
                    "there are none yet (`pipe run -n NAME` records one)".into()
                } else {
                    format!(
                        "{} (experiments: {})",
                        crate::config::nearest(name, &names),
                        names.join(", ")
                    )
                },
            })
        }
        Err(source) => Err(ExpError::Io { path, source }),
    }
}

/// Deletes an experiment's record (its results stay in the store).
pub fn remove(root: &Path, name: &str) -> Result<(), ExpError> {
    load(root, name)?;
    let path = path_of(root, name);
    std::fs::remove_file(&path).map_err(|source| ExpError::Io { path, source })
}

/// A generated name: `exp-` and 7 hex digits of the pipeline file, the overrides and the
/// instances' fingerprints, so running the same thing again updates the same experiment.
fn generated_name(file: &str, overrides: &[Override], instances: &[InstanceRef]) -> String {
    let mut h = blake3::Hasher::new();
    h.update(file.as_bytes());
    h.update(&serde_json::to_vec(overrides).expect("serialises"));
    for i in instances {
        h.update(i.id.as_bytes());
        h.update(
            i.fingerprint
                .as_ref()
                .map(|f| f.as_str())
                .unwrap_or("-")
                .as_bytes(),
        );
    }
    format!("exp-{}", &h.finalize().to_hex()[..7])
}

/// Whether process `pid` is alive.
pub fn alive(pid: u32) -> bool {
    // SAFETY: kill with signal 0 only checks that the process exists; no signal is sent.
    unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
}

/// `YYYY-MM-DD HH:MM:SS UTC` now.
pub fn now() -> String {
    let t = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    format!("{} UTC", t.trim_end_matches('Z').replacen('T', " ", 1))
}

/// When an experiment was recorded, from its `created` (None if unreadable).
pub fn created_at(e: &Experiment) -> Option<std::time::SystemTime> {
    humantime::parse_rfc3339_weak(e.created.trim_end_matches(" UTC")).ok()
}

/// Records an experiment at the start of a run: `Running`, the instances as planned. The name
/// is `-n NAME` (an experiment of that name is replaced) or generated; [`finish`] completes it.
pub fn start(input: RunInput) -> Result<Experiment, ExpError> {
    let file = input.file.display().to_string();
    let overrides = overrides::resolve(&input.given, input.stages);
    let (commit, dirty) = git::state(input.root);
    let name = match &input.name {
        Some(n) => {
            check_name(n)?;
            n.clone()
        }
        None => generated_name(&file, &overrides, &input.instances),
    };
    let e = Experiment {
        name,
        pipeline: input.pipeline.to_string(),
        file,
        created: now(),
        commit,
        dirty,
        status: Status::Running,
        pid: Some(std::process::id()),
        overrides,
        given: input.given,
        instances: input.instances,
        named: input.name.is_some(),
    };
    save(input.root, &e)?;
    Ok(e)
}

/// Completes an experiment after its run: the outcomes, the fingerprints now known and the
/// status. A generated name follows the final fingerprints (the same run again updates the
/// same experiment); an unnamed experiment of the same pipeline with the same instances as a
/// named one is dropped, so `exp show` has one row per experiment.
pub fn finish(
    root: &Path,
    mut e: Experiment,
    instances: Vec<InstanceRef>,
    status: Status,
) -> Result<Experiment, ExpError> {
    e.instances = instances;
    e.status = status;
    e.pid = None;
    if !e.named {
        let name = generated_name(&e.file, &e.overrides, &e.instances);
        if name != e.name {
            let _ = std::fs::remove_file(path_of(root, &e.name));
            e.name = name;
        }
    }
    save(root, &e)?;
    let (all, _) = load_all(root);
    let fps = |x: &Experiment| {
        x.instances
            .iter()
            .map(|i| (i.id.clone(), i.fingerprint))
            .collect::<Vec<_>>()
    };
    for other in all {
        let same = other.name != e.name && other.file == e.file && fps(&other) == fps(&e);
        if !same || e.status != Status::Done || other.status != Status::Done {
            continue;
        }
        if !other.named {
            let _ = std::fs::remove_file(path_of(root, &other.name));
        } else if !e.named {
            // This run reproduced a named experiment: it is that one.
            let _ = std::fs::remove_file(path_of(root, &e.name));
            return Ok(other);
        }
    }
    Ok(e)
}

/// Whether the experiment is still running (its process alive): a `pipe run`, or a queued
/// experiment that `pipe exp run --run-all` (process `pid`) is running.
pub fn is_running(e: &Experiment) -> bool {
    matches!(e.status, Status::Running | Status::Queued) && e.pid.is_some_and(alive)
}

/// The status shown: a `Running` experiment whose process is gone was interrupted; a queued
/// one being run is running (and queued again if its `--run-all` is gone).
pub fn shown_status(e: &Experiment) -> Status {
    match e.status {
        Status::Running if !is_running(e) => Status::Interrupted,
        Status::Queued if is_running(e) => Status::Running,
        s => s,
    }
}

/// The scratch copy in which `pipe exp run --run-all` (process `pid`) runs experiment `name`.
pub fn scratch_dir(cache_dir: &Path, pid: u32, name: &str) -> PathBuf {
    crate::layout::CacheLayout::at(cache_dir)
        .experiment_runs()
        .join(format!("{pid}-{name}"))
}

/// The live metrics file of a running training instance: `cache/live/<fingerprint>.csv`
/// (`step,epoch,loss`), written while it trains and removed when it ends. It is read by
/// `exp show` and `pipe plots`, never part of any fingerprint or output.
pub fn live_file(cache_dir: &Path, fp: &str) -> PathBuf {
    cache_dir.join("live").join(format!("{fp}.csv"))
}

/// The live file of the training a running experiment is in when its instances are not known
/// yet (they are recorded when the run ends): the most recently written one, written since the
/// experiment started (a file left by an older, killed run does not count).
pub fn latest_live(cache_dir: &Path, e: &Experiment) -> Option<PathBuf> {
    let since = created_at(e).unwrap_or(std::time::UNIX_EPOCH);
    // A queued experiment being run trains in its scratch copy, with a store of its own.
    let live = match (e.status, e.pid) {
        (Status::Queued, Some(pid)) => {
            let scratch = crate::layout::Layout::new(&scratch_dir(cache_dir, pid, &e.name));
            scratch.cache().dir().join("live")
        }
        _ => cache_dir.join("live"),
    };
    std::fs::read_dir(live)
        .ok()?
        .flatten()
        .filter_map(|f| Some((f.metadata().ok()?.modified().ok()?, f.path())))
        .filter(|(t, _)| *t >= since)
        .max()
        .map(|(_, p)| p)
}
