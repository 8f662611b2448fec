//! One name, one pipeline: no other pipeline file beside this one (or in `pipelines/`) claims
//! its `name:`, since two pipelines with one name would share `results/<name>/`. Only the
//! top-level `name:` and `stages:` lines of the other files (regular files, bounded in size)
//! are looked at, so this stays cheap.

use super::limits::MAX_YAML_BYTES;
use super::parse::{cfg, default_name};
use crate::error::Result;
use crate::input_file::read_text;
use std::path::{Path, PathBuf};

/// The pipeline name a file claims, if it looks like a pipeline (has a top-level `stages:`).
/// Only regular files of a bounded size are read (a FIFO named `x.yaml` is never opened for a
/// blocking read).
fn claimed_name(path: &Path) -> Option<String> {
    let text = read_text(path, "a pipeline file", MAX_YAML_BYTES).ok()?;
    let mut name = None;
    let mut stages = false;
    for line in text.lines() {
        if line.starts_with("stages:") {
            stages = true;
        } else if let Some(v) = line.strip_prefix("name:") {
            let v = match v.find(" #") {
                Some(i) => &v[..i],
                None => v,
            };
            let v = v.trim().trim_matches(|c| c == '"' || c == '\'');
            name = Some(v.to_string());
        }
    }
    stages.then(|| name.unwrap_or_else(|| default_name(path)))
}

/// Fails naming both files when another pipeline file claims `name`.
pub(crate) fn check_unique_name(root: &Path, file: &Path, name: &str) -> Result<()> {
    let full = root.join(file);
    let me = std::fs::canonicalize(&full).unwrap_or(full.clone());
    let mut dirs: Vec<PathBuf> = Vec::new();
    for d in [
        full.parent().map(Path::to_path_buf),
        Some(crate::layout::Layout::new(root).pipelines()),
    ]
    .into_iter()
    .flatten()
    {
        let d = std::fs::canonicalize(&d).unwrap_or(d);
        if !dirs.contains(&d) {
            dirs.push(d);
        }
    }
    let croot = std::fs::canonicalize(root).unwrap_or(root.to_path_buf());
    for d in dirs {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        let mut entries: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
            .collect();
        entries.sort();
        for p in entries {
            if p == me || std::fs::canonicalize(&p).is_ok_and(|c| c == me) {
                continue;
            }
            if claimed_name(&p).as_deref() == Some(name) {
                let other = p.strip_prefix(&croot).unwrap_or(&p);
                return Err(cfg(format!(
                    "{}: pipeline name `{name}` is also claimed by {}; both would write results/{name}/ and overwrite each other: give one of them another `name:`",
                    file.display(),
                    other.display()
                )));
            }
        }
    }
    Ok(())
}
