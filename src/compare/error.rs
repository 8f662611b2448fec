//! Typed errors of the comparison commands, each naming the file, revision or stage involved.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    /// The workspace has no lock file for the pipeline.
    #[error("{}: no lock file; run `pipe run {}` first", path.display(), pipeline.display())]
    NoLock { path: PathBuf, pipeline: PathBuf },
    /// A lock file that does not parse.
    #[error("{origin}:{line}:{column}: not a valid lock file: {msg}")]
    BadLock {
        origin: String,
        line: usize,
        column: usize,
        msg: String,
    },
    /// `--rev` outside a git work tree.
    #[error("{}: not inside a git repository, so `--rev {rev}` cannot be read; use `--against OTHER.lock`", dir.display())]
    NotGit { dir: PathBuf, rev: String },
    /// A revision git does not know.
    #[error("git: unknown revision `{rev}` (in {}): {msg}", dir.display())]
    BadRev {
        dir: PathBuf,
        rev: String,
        msg: String,
    },
    /// A file that cannot be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A bad command-line value (unknown sort column, …).
    #[error("{0}")]
    Usage(String),
}

impl CompareError {
    /// 1 for a file that cannot be read or written, 2 for bad input.
    pub fn exit_code(&self) -> i32 {
        match self {
            CompareError::Io { .. } => 1,
            _ => 2,
        }
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        CompareError::Io {
            path: path.into(),
            source,
        }
    }
}
