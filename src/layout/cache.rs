//! The store's layout under `cache/`: `objects/ab/cdef…` (named by [`Blake3`] only),
//! `runs/<fingerprint>.json` (named by [`Fingerprint`] only), `tmp/` (staging), `quarantine/`,
//! `downloads/`, `interrupted/`, `jobs/` (Slurm job staging), `experiments/`, `stat.json` and
//! `lock`. A remote store mirrors `objects/` and `runs/` ([`object_rel`], [`record_rel`]).

use crate::digest::{Blake3, Fingerprint};
use std::path::{Path, PathBuf};

/// `objects/ab/cdef…`: where object `hash` lives, relative to a store (local or remote).
pub fn object_rel(hash: &Blake3) -> String {
    let (dir, file) = hash.split();
    format!("{OBJECTS}/{dir}/{file}")
}

/// `runs/<fp>.json`: where the record of `fp` lives, relative to a store (local or remote).
pub fn record_rel(fp: &Fingerprint) -> String {
    format!("{RUNS}/{fp}.json")
}

/// Store objects, by blake3.
pub const OBJECTS: &str = "objects";
/// Run records, by fingerprint.
pub const RUNS: &str = "runs";

/// The `cache/` folder of a project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheLayout {
    dir: PathBuf,
}

impl CacheLayout {
    pub(super) fn new(dir: PathBuf) -> CacheLayout {
        CacheLayout { dir }
    }

    /// The layout of the store at `dir` (a project's `cache/`, as a stage sees it).
    pub fn at(dir: &Path) -> CacheLayout {
        CacheLayout {
            dir: dir.to_path_buf(),
        }
    }

    /// `cache/`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `cache/objects/`.
    pub fn objects(&self) -> PathBuf {
        self.dir.join(OBJECTS)
    }

    /// `cache/objects/ab/cdef…`.
    pub fn object(&self, hash: &Blake3) -> PathBuf {
        self.dir.join(object_rel(hash))
    }

    /// `cache/runs/`.
    pub fn runs(&self) -> PathBuf {
        self.dir.join(RUNS)
    }

    /// `cache/runs/<fp>.json`.
    pub fn record(&self, fp: &Fingerprint) -> PathBuf {
        self.dir.join(record_rel(fp))
    }

    /// `cache/tmp/`: staging folders and downloads in progress.
    pub fn tmp(&self) -> PathBuf {
        self.dir.join("tmp")
    }

    /// `cache/tmp/<pid>/`: one process's staging folders.
    pub fn staging(&self, pid: u32) -> PathBuf {
        self.tmp().join(pid.to_string())
    }

    /// `cache/quarantine/`: corrupt objects and refused records, moved aside.
    pub fn quarantine(&self) -> PathBuf {
        self.dir.join("quarantine")
    }

    /// `cache/downloads/`: verified downloads of `fetch` stages.
    pub fn downloads(&self) -> PathBuf {
        self.dir.join("downloads")
    }

    /// `cache/interrupted/`: markers of stages stopped by a signal.
    pub fn interrupted(&self) -> PathBuf {
        self.dir.join("interrupted")
    }

    /// `cache/jobs/`: staging of Slurm jobs running in the project.
    pub fn jobs(&self) -> PathBuf {
        self.dir.join("jobs")
    }

    /// `cache/experiments/`: experiment records.
    pub fn experiments(&self) -> PathBuf {
        self.dir.join("experiments")
    }

    /// `cache/experiments/.run/`: the scratch copies `pipe exp run --run-all` runs experiments
    /// in (`<pid>-<name>/`) and its lock.
    pub fn experiment_runs(&self) -> PathBuf {
        self.experiments().join(".run")
    }

    /// `cache/stat.json`: the stat cache.
    pub fn stat(&self) -> PathBuf {
        self.dir.join("stat.json")
    }

    /// `cache/lock`: the project lock.
    pub fn lock(&self) -> PathBuf {
        self.dir.join("lock")
    }
}
