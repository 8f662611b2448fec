//! Finding the project from wherever pipe is started: the project root (walking up as git
//! does), the optional project config `pipe.yaml`, and the pipeline a command means.
//!
//! Rules:
//! - **Root:** the nearest folder, from the current one upwards, that holds a `pipelines/`
//!   folder or a `pipe.yaml` file. When no folder does, the current folder is the root (a lone
//!   pipeline file outside any project still runs where it is). `pipe -C DIR` changes to `DIR`
//!   before the search.
//! - **A pipeline** given on the command line is a path relative to the current folder; when no
//!   such file exists there it is tried relative to the root (so `pipe run pipelines/ci.yaml`
//!   works from any subfolder too), then as a name (`ci` → `pipelines/ci.yaml`); its lock file
//!   (`pipelines/ci.lock`) names it too. Inside pipe it is then named relative to the root.
//! - **No pipeline given:** the `default:` of `pipe.yaml`, else the only `.yaml`/`.yml` file in
//!   `pipelines/`; several files and no default is a usage error listing them.

use crate::error::{PipeError, Result};
use std::path::{Path, PathBuf};

/// The project config file at the root.
pub const CONFIG_FILE: &str = "pipe.yaml";

/// The optional project config `pipe.yaml`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectConfig {
    /// The default pipeline file, relative to the root (`default: pipelines/ci.yaml`).
    #[serde(default)]
    pub default: Option<PathBuf>,
}

fn is_root(dir: &Path) -> bool {
    dir.join(crate::layout::PIPELINES).is_dir() || dir.join(CONFIG_FILE).is_file()
}

/// The nearest folder from `start` upwards holding `pipelines/` or `pipe.yaml`, else `start`.
pub fn find_root(start: &Path) -> PathBuf {
    start
        .ancestors()
        .find(|d| is_root(d))
        .unwrap_or(start)
        .to_path_buf()
}

/// The project root and the pipeline file (relative to the root) a command means, from the
/// current folder (after `-C`): every subcommand that takes a pipeline resolves it here.
pub fn locate(given: Option<&Path>) -> Result<(PathBuf, PathBuf)> {
    let cwd = std::env::current_dir().map_err(PipeError::current_dir)?;
    let root = find_root(&cwd);
    let file = resolve_pipeline(&root, &cwd, given)?;
    Ok((root, file))
}

/// `given` as a name or a lock file: `ci` → `pipelines/ci.yaml` (or `.yml`), `x/ci.lock` →
/// `x/ci.yaml` beside it; relative to `base`. None when no such file exists.
fn by_name(base: &Path, given: &Path) -> Option<PathBuf> {
    let candidates: Vec<PathBuf> = match given.extension().and_then(|e| e.to_str()) {
        Some("lock") => vec![given.with_extension("yaml"), given.with_extension("yml")],
        None if given.components().count() == 1 => ["yaml", "yml"]
            .iter()
            .map(|e| Path::new(crate::layout::PIPELINES).join(format!("{}.{e}", given.display())))
            .collect(),
        _ => Vec::new(),
    };
    candidates
        .into_iter()
        .map(|c| base.join(c))
        .find(|p| p.is_file())
}

/// The project root for the current folder (after `-C`): see the module documentation.
pub fn project_root() -> Result<PathBuf> {
    let cwd = std::env::current_dir().map_err(PipeError::current_dir)?;
    Ok(find_root(&cwd))
}

/// Reads `<root>/pipe.yaml` (an absent file is the empty config).
pub fn load_config(root: &Path) -> Result<ProjectConfig> {
    let path = root.join(CONFIG_FILE);
    if std::fs::symlink_metadata(&path).is_err() {
        return Ok(ProjectConfig::default());
    }
    let limit = crate::config::limits::MAX_YAML_BYTES;
    let text = crate::input_file::read_text(&path, "a YAML file", limit)
        .map_err(|e| PipeError::config(format!("{}: cannot read: {e}", path.display())))?;
    if text.trim().is_empty() {
        return Ok(ProjectConfig::default());
    }
    serde_yaml::from_str(&text).map_err(|e| {
        let at = e
            .location()
            .map(|l| format!(":{}:{}", l.line(), l.column()))
            .unwrap_or_default();
        PipeError::config(format!(
            "{}{at}: {e} (the project config takes `default: pipelines/<file>.yaml`)",
            path.display()
        ))
    })
}

/// `path` relative to `root` when it lies inside it (both made absolute without following a
/// final symlink), else `path` made absolute.
fn relative_to_root(root: &Path, path: &Path) -> PathBuf {
    let abs_parent = path
        .parent()
        .map(|p| {
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            }
        })
        .and_then(|p| std::fs::canonicalize(p).ok());
    let (Some(parent), Some(name)) = (abs_parent, path.file_name()) else {
        return path.to_path_buf();
    };
    let abs = parent.join(name);
    let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    match abs.strip_prefix(&root) {
        Ok(rel) => rel.to_path_buf(),
        Err(_) => abs,
    }
}

/// The `.yaml`/`.yml` files directly in `<root>/pipelines/`, sorted, relative to the root.
pub fn pipeline_files(root: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(crate::layout::Layout::new(root).pipelines())
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .filter_map(|p| {
            p.file_name()
                .map(|n| Path::new(crate::layout::PIPELINES).join(n))
        })
        .collect();
    v.sort();
    v
}

/// The pipeline file a command means, relative to `root` (or absolute when outside it):
/// `given` resolved from `cwd` (then from the root), or the project's default pipeline, which
/// is announced on stderr ("using pipelines/ci.yaml").
pub fn resolve_pipeline(root: &Path, cwd: &Path, given: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = given {
        let from_root = p.is_relative().then(|| root.join(p));
        // The first place where something exists is the one meant: a folder or a device
        // there is named as what it is.
        for at in std::iter::once(cwd.join(p)).chain(from_root) {
            if std::fs::symlink_metadata(&at).is_err() {
                continue;
            }
            if let Some(why) = crate::input_file::not_a_file(&at) {
                return Err(PipeError::config(format!(
                    "cannot read pipeline file {}: {why}",
                    p.display()
                )));
            }
            return Ok(relative_to_root(root, &at));
        }
        if let Some(f) = by_name(cwd, p).or_else(|| by_name(root, p)) {
            return Ok(relative_to_root(root, &f));
        }
        let where_ = if cwd == root || p.is_absolute() {
            String::new()
        } else {
            format!(
                " (looked in {} and in the project root {})",
                cwd.display(),
                root.display()
            )
        };
        return Err(PipeError::config(format!(
            "cannot read pipeline file {}: no such file{where_}",
            p.display()
        )));
    }
    let cfg = load_config(root)?;
    if let Some(d) = cfg.default {
        if let Some(why) = crate::input_file::not_a_file(&root.join(&d)) {
            return Err(PipeError::config(format!(
                "{}: `default: {}`: {why} (in {})",
                root.join(CONFIG_FILE).display(),
                d.display(),
                root.display()
            )));
        }
        let file = relative_to_root(root, &root.join(&d));
        announce(&file, "the default in pipe.yaml");
        return Ok(file);
    }
    if !is_root(root) {
        return Err(PipeError::config(format!(
            "no pipeline given, and no folder from {} upwards holds pipelines/ or {CONFIG_FILE}; \
             give a pipeline file, or create a project with `pipe init`",
            root.display()
        )));
    }
    let files = pipeline_files(root);
    match files.len() {
        0 => Err(PipeError::config(format!(
            "no pipeline given, and {} holds no .yaml file; give a pipeline file",
            crate::layout::Layout::new(root).pipelines().display()
        ))),
        1 => {
            announce(&files[0], "the only file in pipelines/");
            Ok(files[0].clone())
        }
        n => Err(PipeError::config(format!(
            "no pipeline given, and pipelines/ holds {n} files ({}); name one, or set \
             `default: pipelines/<file>.yaml` in {}",
            files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            root.join(CONFIG_FILE).display()
        ))),
    }
}

fn announce(file: &Path, why: &str) {
    let line = format!("using {} ({why})", file.display());
    eprintln!("{}", super::style::note(&line));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_the_nearest_folder_with_pipelines() {
        let d = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(d.path()).unwrap();
        std::fs::create_dir_all(root.join("pipelines")).unwrap();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        assert_eq!(find_root(&root.join("a/b")), root);
        std::fs::write(root.join("a/pipe.yaml"), "").unwrap();
        assert_eq!(find_root(&root.join("a/b")), root.join("a"));
    }

    #[test]
    fn given_paths_resolve_from_cwd_then_root() {
        let d = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(d.path()).unwrap();
        std::fs::create_dir_all(root.join("pipelines")).unwrap();
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("pipelines/x.yaml"), "stages: {}").unwrap();
        let sub = root.join("sub");
        let want = PathBuf::from("pipelines/x.yaml");
        let r = |p: &str| resolve_pipeline(&root, &sub, Some(Path::new(p))).unwrap();
        assert_eq!(r("../pipelines/x.yaml"), want);
        assert_eq!(r("pipelines/x.yaml"), want);
        assert_eq!(r(root.join("pipelines/x.yaml").to_str().unwrap()), want);
        assert_eq!(r("x"), want);
        assert_eq!(r("pipelines/x.lock"), want);
        assert_eq!(r("../pipelines/x.lock"), want);
        let e = resolve_pipeline(&root, &sub, Some(Path::new("nope.yaml"))).unwrap_err();
        assert!(e.to_string().contains("nope.yaml"), "{e}");
    }

    #[test]
    fn config_rejects_unknown_keys() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(CONFIG_FILE), "defualt: x.yaml\n").unwrap();
        let e = load_config(d.path()).unwrap_err().to_string();
        assert!(e.contains("pipe.yaml:1:1"), "{e}");
        assert!(e.contains("defualt"), "{e}");
    }
}
