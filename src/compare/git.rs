//! Reading a file as committed at a git revision, through the `git` command
//! (`git -C <dir> show REV:./<file>`).

use super::CompareError;
use std::path::Path;
use std::process::{Command, Stdio};

fn git(dir: &Path, args: &[&str]) -> std::io::Result<std::process::Output> {
    Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
}

/// The content of `file` at revision `rev`; `Ok(None)` when the revision exists but does not
/// hold the file. Outside a git work tree, or for an unknown revision, a typed error.
pub fn show(file: &Path, rev: &str) -> Result<Option<Vec<u8>>, CompareError> {
    let parent = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => Path::new(".").to_path_buf(),
    };
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let not_git = || CompareError::NotGit {
        dir: parent.clone(),
        rev: rev.to_string(),
    };
    match git(&parent, &["rev-parse", "--is-inside-work-tree"]) {
        Ok(o) if o.status.success() && o.stdout.starts_with(b"true") => {}
        _ => return Err(not_git()),
    }
    let spec = format!("{rev}^{{commit}}");
    let o = git(&parent, &["rev-parse", "--verify", "--quiet", &spec])
        .map_err(|e| CompareError::io(&parent, e))?;
    if !o.status.success() {
        return Err(CompareError::BadRev {
            dir: parent.clone(),
            rev: rev.to_string(),
            msg: "not a commit".into(),
        });
    }
    let o = git(&parent, &["show", &format!("{rev}:./{name}")])
        .map_err(|e| CompareError::io(&parent, e))?;
    if o.status.success() {
        Ok(Some(o.stdout))
    } else {
        Ok(None)
    }
}
