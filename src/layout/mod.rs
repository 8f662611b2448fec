//! Every folder and file pipe owns in a project, named in one place (uv's `uv-cache` is the
//! model): `results/<pipeline>/<id>/`, `results/<pipeline>/logs/<id>.log`,
//! `checkpoints/<pipeline>/<stage>/`, `pipelines/<name>.lock` and the store under `cache/`
//! ([`CacheLayout`]). Nothing else in the crate spells these names.

pub mod cache;

pub use cache::{object_rel, record_rel, CacheLayout};

use serde::{Deserialize, Serialize};
use std::path::{Component, Path, PathBuf};

/// The store, run records, downloads and the project lock.
pub const CACHE: &str = "cache";
/// Each stage instance's outputs and logs, per pipeline.
pub const RESULTS: &str = "results";
/// Model weights per epoch, per pipeline and stage.
pub const CHECKPOINTS: &str = "checkpoints";
/// Pipeline files and their lock files.
pub const PIPELINES: &str = "pipelines";
/// The logs folder inside `results/<pipeline>/` (no instance may be called this).
pub const LOGS: &str = "logs";
/// pipe's own top-level folders: a stage never declares an output in them.
pub const OWN_DIRS: [&str; 3] = [CACHE, RESULTS, CHECKPOINTS];

/// Where an output file is materialised.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Area {
    /// `results/<pipeline>/<id>/`
    Results,
    /// `checkpoints/<pipeline>/<stage>/`
    Checkpoints,
    /// The project root (`outs` of command stages).
    Project,
}

/// The places pipe owns in one project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    root: PathBuf,
    cache: CacheLayout,
}

impl Layout {
    /// The layout of the project at `root`.
    pub fn new(root: &Path) -> Layout {
        Layout {
            root: root.to_path_buf(),
            cache: CacheLayout::new(root.join(CACHE)),
        }
    }

    /// The project root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `cache/` and what lies in it.
    pub fn cache(&self) -> &CacheLayout {
        &self.cache
    }

    /// `pipelines/`.
    pub fn pipelines(&self) -> PathBuf {
        self.root.join(PIPELINES)
    }

    /// `results/`, `checkpoints/` and `cache/`.
    pub fn own_dirs(&self) -> [PathBuf; 3] {
        OWN_DIRS.map(|d| self.root.join(d))
    }

    /// The folders of the pipeline called `name` (its `name:` key).
    pub fn pipeline(&self, name: &str) -> PipelineLayout {
        PipelineLayout {
            root: self.root.clone(),
            name: name.to_string(),
        }
    }

    /// The lock file of a pipeline file (relative to the root, or absolute): `<stem>.lock`
    /// beside it when it lies inside the project, else `pipelines/<stem>.lock` (pipe never
    /// writes outside the project).
    pub fn lock_file(&self, pipeline_file: &Path) -> PathBuf {
        let file = self.root.join(pipeline_file);
        if lexically_inside(&self.root, &file) {
            lock_beside(&file)
        } else {
            lock_beside(&self.pipelines().join(file.file_name().unwrap_or_default()))
        }
    }
}

/// `<stem>.lock` in the folder of `pipeline_file` (`pipelines/ci.yaml` → `pipelines/ci.lock`):
/// the one rule for the name of a lock file.
pub fn lock_beside(pipeline_file: &Path) -> PathBuf {
    let stem = pipeline_file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "pipe".into());
    pipeline_file.with_file_name(format!("{stem}.lock"))
}

/// Whether `path` lies strictly inside `root`, judged on the names alone (`..` pops a
/// component; links are not resolved, and `fsafe` refuses writes through them anyway).
pub fn lexically_inside(root: &Path, path: &Path) -> bool {
    let Ok(rel) = path.strip_prefix(root) else {
        return false;
    };
    let mut depth = 0usize;
    for c in rel.components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir if depth > 0 => depth -= 1,
            _ => return false,
        }
    }
    depth > 0
}

/// The folders of one pipeline (by its `name:`): results, logs and checkpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineLayout {
    root: PathBuf,
    name: String,
}

impl PipelineLayout {
    /// The pipeline's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `results/<pipeline>/`.
    pub fn results(&self) -> PathBuf {
        self.root.join(RESULTS).join(&self.name)
    }

    /// `checkpoints/<pipeline>/`.
    pub fn checkpoints(&self) -> PathBuf {
        self.root.join(CHECKPOINTS).join(&self.name)
    }

    /// `results/<pipeline>/<id>/`: an instance's outputs.
    pub fn instance(&self, id: &str) -> PathBuf {
        self.results().join(id)
    }

    /// `results/<pipeline>/logs/`.
    pub fn logs(&self) -> PathBuf {
        self.results().join(LOGS)
    }

    /// `results/<pipeline>/logs/<id>.log`.
    pub fn log(&self, id: &str) -> PathBuf {
        self.logs().join(format!("{id}.log"))
    }

    /// `checkpoints/<pipeline>/<stage>/` (the stage name plus its matrix point, if any).
    pub fn stage_checkpoints(&self, ckpt_name: &str) -> PathBuf {
        self.checkpoints().join(ckpt_name)
    }

    /// The folder (relative to the root, `/`-separated) that holds an instance's files of
    /// `area`; empty for [`Area::Project`].
    pub fn area_rel(&self, area: Area, id: &str, ckpt_name: &str) -> String {
        match area {
            Area::Results => format!("{RESULTS}/{}/{id}", self.name),
            Area::Checkpoints => format!("{CHECKPOINTS}/{}/{ckpt_name}", self.name),
            Area::Project => String::new(),
        }
    }

    /// An output's path relative to the root (`results/p/id/metrics.json`), for messages and
    /// the lock file.
    pub fn output_rel(&self, area: Area, id: &str, ckpt_name: &str, path: &str) -> String {
        match area {
            Area::Project => path.to_string(),
            _ => format!("{}/{path}", self.area_rel(area, id, ckpt_name)),
        }
    }

    /// Where an output file lives once materialised.
    pub fn output(&self, area: Area, id: &str, ckpt_name: &str, path: &str) -> PathBuf {
        match area {
            Area::Results => self.instance(id).join(path),
            Area::Checkpoints => self.stage_checkpoints(ckpt_name).join(path),
            Area::Project => self.root.join(path),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_place_is_named_here() {
        let l = Layout::new(Path::new("/p"));
        let p = l.pipeline("ci");
        assert_eq!(p.instance("tok"), Path::new("/p/results/ci/tok"));
        assert_eq!(p.log("tok"), Path::new("/p/results/ci/logs/tok.log"));
        assert_eq!(
            p.stage_checkpoints("train"),
            Path::new("/p/checkpoints/ci/train")
        );
        assert_eq!(
            p.output_rel(Area::Checkpoints, "train@epoch=1", "train", "epoch_1.json"),
            "checkpoints/ci/train/epoch_1.json"
        );
        assert_eq!(
            p.output(Area::Project, "x", "x", "out/a.txt"),
            Path::new("/p/out/a.txt")
        );
        assert_eq!(l.cache().dir(), Path::new("/p/cache"));
        assert_eq!(l.own_dirs()[1], Path::new("/p/results"));
    }

    #[test]
    fn lock_files_stay_inside_the_project() {
        let l = Layout::new(Path::new("/p"));
        let lock = |f: &str| l.lock_file(Path::new(f));
        assert_eq!(lock("pipelines/ci.yaml"), Path::new("/p/pipelines/ci.lock"));
        assert_eq!(lock("sub/x.yml"), Path::new("/p/sub/x.lock"));
        assert_eq!(
            lock("/p/pipelines/a.yaml"),
            Path::new("/p/pipelines/a.lock")
        );
        assert_eq!(
            lock("../victim/evil.yaml"),
            Path::new("/p/pipelines/evil.lock")
        );
        assert_eq!(lock("/elsewhere/e.yaml"), Path::new("/p/pipelines/e.lock"));
        assert_eq!(lock("a/../../b.yaml"), Path::new("/p/pipelines/b.lock"));
        assert!(lexically_inside(Path::new("/p"), Path::new("/p/a/../b")));
        assert!(!lexically_inside(Path::new("/p"), Path::new("/p")));
        assert!(!lexically_inside(Path::new("/p"), Path::new("/p/a/..")));
    }
}
