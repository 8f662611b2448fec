//! Mirror folders for downloads, read once by the CLI: `--mirror DIR` flags first, then the
//! colon-separated `PIPE_MIRROR`, every folder made absolute (a stage, a scratch run or a Slurm
//! job may run elsewhere). The list travels in the project and the stage context, never back
//! through the environment.

use crate::download::MIRROR_ENV;
use std::path::{Path, PathBuf};

/// `path` absolute: canonical when it exists, else joined to `cwd`.
fn absolute(cwd: &Path, path: &Path) -> PathBuf {
    std::fs::canonicalize(cwd.join(path)).unwrap_or_else(|_| cwd.join(path))
}

/// The mirror folders of this invocation: `flags` in order, then `PIPE_MIRROR`'s entries,
/// absolute, each once.
pub fn from_cli(flags: &[PathBuf]) -> Vec<PathBuf> {
    let var = std::env::var(MIRROR_ENV).unwrap_or_default();
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let mut out: Vec<PathBuf> = Vec::new();
    for m in flags
        .iter()
        .cloned()
        .chain(crate::download::mirror_dirs(&var))
    {
        let m = absolute(&cwd, &m);
        if !out.contains(&m) {
            out.push(m);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_folders_become_absolute() {
        let d = tempfile::tempdir().unwrap();
        let cwd = std::fs::canonicalize(d.path()).unwrap();
        std::fs::create_dir(cwd.join("m")).unwrap();
        assert_eq!(absolute(&cwd, Path::new("m")), cwd.join("m"));
        assert_eq!(absolute(&cwd, Path::new("nope")), cwd.join("nope"));
        assert_eq!(absolute(&cwd, &cwd.join("m")), cwd.join("m"));
    }
}
