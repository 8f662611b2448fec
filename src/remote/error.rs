//! `RemoteError`: what can go wrong talking to a remote store, each variant naming the remote,
//! endpoint or key involved, and its exit-code class.

use std::path::PathBuf;

/// A failure of a remote store operation.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// A bad remote URL or missing settings (exit 2).
    #[error("{}", if url.is_empty() { msg.clone() } else { format!("remote `{url}`: {msg}") })]
    Config { url: String, msg: String },
    /// The endpoint refused our credentials (exit 2).
    #[error("remote {endpoint}: access denied (HTTP {status}{code}) for access key `{key_id}`: check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY")]
    Auth {
        endpoint: String,
        status: u16,
        /// `: SignatureDoesNotMatch` and the like, when the server said.
        code: String,
        key_id: String,
    },
    /// The endpoint does not answer (refused, timed out, unknown host).
    #[error("remote {endpoint} is unreachable: {detail}")]
    Unreachable { endpoint: String, detail: String },
    /// The bucket does not exist (exit 2).
    #[error("remote {endpoint}: bucket `{bucket}` does not exist")]
    NoBucket { endpoint: String, bucket: String },
    /// A downloaded object or record does not match its name: never used.
    #[error("remote object `{key}` is corrupt: expected blake3 {expected}, got {got}")]
    Corrupt {
        key: String,
        expected: String,
        got: String,
    },
    /// A run record on the remote that is not a valid record for the fingerprint it is
    /// filed under (see `cache::trust`): never used.
    #[error("remote run record `{key}` is refused: {why}")]
    BadRecord { key: String, why: String },
    /// A file on the remote larger than pipe reads for its kind: never used.
    #[error("remote file `{key}` is refused: it is over the limit of {limit} bytes")]
    TooLarge { key: String, limit: u64 },
    /// A file on the remote that is not a regular file (a link, a folder, a FIFO, a device):
    /// never read, treated as missing.
    #[error("remote file `{key}` is refused: it is not a regular file (a link, a folder, a FIFO or a device)")]
    NotFile { key: String },
    /// A write or read pipe refuses (a link in the way, not a regular file), naming the path.
    #[error("{0}")]
    Unsafe(#[from] crate::cache::fsafe::FsError),
    /// Any other unexpected answer.
    #[error("remote {endpoint}: {op} `{key}` answered HTTP {status}: {detail}")]
    Http {
        endpoint: String,
        op: &'static str,
        key: String,
        status: u16,
        detail: String,
    },
    /// A local or shared-folder file operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl RemoteError {
    /// Exit code class: 2 for configuration and credentials, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            RemoteError::Config { .. }
            | RemoteError::Auth { .. }
            | RemoteError::NoBucket { .. } => 2,
            _ => 1,
        }
    }

    /// A corrupt (or truncated) remote object: the caller treats it as missing.
    pub fn is_corrupt(&self) -> bool {
        matches!(
            self,
            RemoteError::Corrupt { .. }
                | RemoteError::BadRecord { .. }
                | RemoteError::TooLarge { .. }
                | RemoteError::NotFile { .. }
        )
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        RemoteError::Io {
            path: path.into(),
            source,
        }
    }
}
