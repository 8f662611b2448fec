//! `<pipeline>.lock` beside each pipeline file: every stage's fingerprint, output hashes and
//! headline metrics, sorted by stage id, with no entries for stages that no longer exist.

use super::fsafe;
use crate::digest::{Blake3, Fingerprint};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// The largest lock file read.
const MAX_BYTES: u64 = 256 << 20;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LockFile {
    pub pipeline: String,
    pub stages: BTreeMap<String, LockEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LockEntry {
    pub kind: String,
    pub fingerprint: Fingerprint,
    /// `results/…`, `checkpoints/…` or project path → blake3.
    pub outputs: BTreeMap<String, Blake3>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, Value>,
    /// The stage's fully merged parameters.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub params: Value,
}

impl LockFile {
    /// Reads a lock file; a missing one is empty. One that cannot be read or parsed (say, with
    /// merge-conflict markers) is an error naming the file and line, never taken as empty.
    pub fn read(path: &Path) -> Result<LockFile, String> {
        let bytes = match fsafe::read_regular(path, MAX_BYTES) {
            Ok(Some(b)) => b,
            Ok(None) => return Ok(LockFile::default()),
            Err(e) => return Err(format!("cannot read the lock file {}: {e}", path.display())),
        };
        serde_json::from_slice(&bytes).map_err(|e| {
            let conflict = bytes
                .split(|&b| b == b'\n')
                .any(|l| l.starts_with(b"<<<<<<<") || l.starts_with(b">>>>>>>"));
            format!(
                "{}:{}:{}: not a valid lock file ({e}){}",
                path.display(),
                e.line(),
                e.column(),
                if conflict {
                    "; it holds merge-conflict markers: resolve the conflict (or delete the file and rerun)"
                } else {
                    "; fix it or delete it and rerun"
                }
            )
        })
    }

    /// Writes it atomically below the project `root` (never through a link), only when the
    /// content changed.
    pub fn write(&self, root: &Path, path: &Path) -> std::io::Result<()> {
        let mut bytes = serde_json::to_vec_pretty(self)?;
        bytes.push(b'\n');
        let limit = bytes.len() as u64;
        if fsafe::read_regular(path, limit).ok().flatten().as_deref() == Some(&bytes[..]) {
            return Ok(());
        }
        Ok(fsafe::write_atomic(root, path, &bytes)?)
    }
}
