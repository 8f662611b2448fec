//! Run records are data from someone else (a remote store, a copied `cache/`), so each one is
//! validated before anything acts on it: bounded in size and in outputs, filed under the
//! fingerprint it names, its fingerprint key hashing to that fingerprint, every hash a checked
//! [`Blake3`] (at deserialisation), its outputs hash matching its outputs, and every output
//! path a plain relative path inside the place its stage owns: its own `results/<p>/<id>/` or
//! `checkpoints/<p>/<stage>/` folder, or (project outputs) one of the `outs` its stage declares,
//! under the same rules as `outs` (`config::output_rule`).

use super::record::{manifest_hash, Area, FingerprintKey, RunRecord};
use crate::digest::{Blake3, Fingerprint};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// The largest run record file accepted.
pub const MAX_RECORD_BYTES: u64 = 16 << 20;
/// The most outputs one record may list.
pub const MAX_OUTPUTS: usize = 100_000;
/// The longest output path, in bytes.
pub const MAX_PATH_BYTES: usize = 4096;
/// The longest component of an output path, in bytes.
pub const MAX_NAME_BYTES: usize = 255;

/// The project outputs (`outs`) a stage owns, from its fingerprint key (kind and parameters);
/// `None` for a kind this pipe does not know.
pub type Owners = dyn Fn(&FingerprintKey) -> Option<Vec<PathBuf>> + Send + Sync;

/// Why a run record is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RecordError {
    #[error("it is over the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("it is not a run record ({0})")]
    Parse(String),
    #[error("it names another fingerprint ({named}) than the one it is filed under")]
    Misfiled { named: Fingerprint },
    #[error("its fingerprint key hashes to {got}, not to the fingerprint it is filed under")]
    KeyMismatch { got: Fingerprint },
    #[error("it lists {n} outputs, over the limit of {MAX_OUTPUTS}")]
    TooManyOutputs { n: usize },
    #[error("its outputs hash is not the hash of its outputs ({got})")]
    OutputsHash { got: Blake3 },
    #[error("output `{path}` ({area}): {why}")]
    BadOutput {
        area: &'static str,
        path: String,
        why: String,
    },
}

/// A value from a record, escaped and cut for a message.
fn shown(s: &str) -> String {
    let mut out: String = s.escape_debug().take(120).collect();
    if s.escape_debug().nth(120).is_some() {
        out.push('…');
    }
    out
}

fn area_name(a: Area) -> &'static str {
    match a {
        Area::Results => "results",
        Area::Checkpoints => "checkpoints",
        Area::Project => "project",
    }
}

/// Why `path` is not a plain relative path of bounded size (`a/b.txt`: no root, no empty,
/// `.` or `..` component, no NUL), if it is not.
fn plain_relative(path: &str) -> Option<String> {
    if path.is_empty() {
        return Some("is empty".into());
    }
    if path.len() > MAX_PATH_BYTES {
        return Some(format!("is over {MAX_PATH_BYTES} bytes long"));
    }
    if path.contains('\0') {
        return Some("contains NUL".into());
    }
    if path.starts_with('/') {
        return Some("is absolute".into());
    }
    for c in path.split('/') {
        match c {
            "" => return Some("has an empty component (`//` or a trailing `/`)".into()),
            "." | ".." => return Some(format!("has a `{c}` component")),
            _ if c.len() > MAX_NAME_BYTES => {
                return Some(format!("has a component over {MAX_NAME_BYTES} bytes"))
            }
            _ => {}
        }
    }
    None
}

/// Parses and validates the bytes of the run record filed under `filed`. With `owners`,
/// project outputs must lie inside the stage's declared `outs`.
pub fn parse(
    bytes: &[u8],
    filed: &Fingerprint,
    owners: Option<&Owners>,
) -> Result<RunRecord, RecordError> {
    if bytes.len() as u64 > MAX_RECORD_BYTES {
        return Err(RecordError::TooLarge {
            limit: MAX_RECORD_BYTES,
        });
    }
    let rec: RunRecord =
        serde_json::from_slice(bytes).map_err(|e| RecordError::Parse(shown(&e.to_string())))?;
    check(&rec, filed, owners)?;
    Ok(rec)
}

/// Validates a parsed record (see [`parse`]).
pub fn check(
    rec: &RunRecord,
    filed: &Fingerprint,
    owners: Option<&Owners>,
) -> Result<(), RecordError> {
    if rec.fingerprint != *filed {
        return Err(RecordError::Misfiled {
            named: rec.fingerprint,
        });
    }
    let got = rec.key.fingerprint();
    if got != *filed {
        return Err(RecordError::KeyMismatch { got });
    }
    if rec.outputs.len() > MAX_OUTPUTS {
        return Err(RecordError::TooManyOutputs {
            n: rec.outputs.len(),
        });
    }
    let got = manifest_hash(&rec.outputs);
    if got != rec.outputs_hash {
        return Err(RecordError::OutputsHash { got });
    }
    // The `outs` the stage declares, normalised; `None`: not checked (no owners given).
    let owned: Option<Vec<Vec<String>>> = owners.map(|f| {
        f(&rec.key)
            .unwrap_or_default()
            .iter()
            .filter_map(|p| crate::config::normalise(p).ok())
            .filter(|c| !c.is_empty())
            .collect()
    });
    let mut seen = HashSet::new();
    for o in &rec.outputs {
        let bad = |why: String| RecordError::BadOutput {
            area: area_name(o.area),
            path: shown(&o.path),
            why,
        };
        if let Some(why) = plain_relative(&o.path) {
            return Err(bad(why));
        }
        if !seen.insert((o.area, o.path.as_str())) {
            return Err(bad("is listed twice".into()));
        }
        if o.measure && o.area != Area::Results {
            return Err(bad(
                "is a measurement outside the stage's results folder".into()
            ));
        }
        if o.area != Area::Project {
            continue; // inside the instance's own folder, by construction
        }
        let c = crate::config::output_rule(Path::new(&o.path))
            .map_err(|why| bad(format!("{why}, which no stage may write")))?;
        if let Some(owned) = &owned {
            if !owned.iter().any(|d| c.starts_with(d)) {
                return Err(bad(format!(
                    "is not inside an output stage `{}` declares (`outs`)",
                    shown(&rec.key.id)
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
