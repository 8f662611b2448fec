//! The model files `pipe generate` and `pipe score` are given: the checkpoint (with its JSON
//! sidecar) and its vocabulary. Without `--vocab`, the vocabulary is found from the sidecar's
//! `vocab_blake3`: a `vocab.json` beside the checkpoint with that hash, else the object of
//! that hash in the store (`cache/objects/<h[..2]>/<h[2..]>`) of the project holding the
//! checkpoint, then of the current project. Missing files are reported by the path the user
//! gave.

use crate::decode::load_model;
use crate::digest::Blake3;
use crate::error::{PipeError, Result};
use crate::input_file::not_a_file;
use crate::model::checkpoint::sidecar_path;
use crate::model::{Checkpoint, CheckpointMeta};
use crate::text::Vocab;
use std::path::{Path, PathBuf};

/// A checkpoint and its vocabulary, checked against each other.
pub struct Model {
    pub ck: Checkpoint,
    pub vocab: Vocab,
    /// Where the vocabulary was read from.
    pub vocab_path: PathBuf,
}

fn cfg(msg: String) -> PipeError {
    PipeError::config(msg)
}

/// Loads `checkpoint` and `vocab` (or the vocabulary its sidecar names) for the decoding
/// `work(config)` describes; a workload that cannot fit is refused before the model is read.
pub fn load(
    checkpoint: &Path,
    vocab: Option<&Path>,
    work: impl FnOnce(&crate::model::ModelConfig) -> crate::decode::memory::Workload,
) -> Result<Model> {
    let shown = checkpoint.display();
    if checkpoint.is_dir() {
        return Err(cfg(format!(
            "checkpoint {shown} is a folder; give its epoch_<N>.safetensors file"
        )));
    }
    if let Some(why) = not_a_file(checkpoint) {
        return Err(cfg(format!("checkpoint {shown}: {why}")));
    }
    let side = sidecar_path(checkpoint);
    match not_a_file(&side) {
        Some(why) if why == "no such file" => {
            return Err(cfg(format!(
                "checkpoint {shown}: its sidecar {} is missing (it holds the model's \
                 configuration)",
                side.display()
            )))
        }
        Some(why) => {
            return Err(cfg(format!(
                "checkpoint {shown}: its sidecar {} {why}",
                side.display()
            )))
        }
        None => {}
    }
    let vocab_path = match vocab {
        Some(v) => {
            if let Some(why) = not_a_file(v) {
                return Err(cfg(format!("vocabulary {}: {why}", v.display())));
            }
            v.to_path_buf()
        }
        None => find_vocab(checkpoint, &side)?,
    };
    let (ck, vocab) =
        load_model(checkpoint, &vocab_path, work).map_err(|e| PipeError::config(e.to_string()))?;
    Ok(Model {
        ck,
        vocab,
        vocab_path,
    })
}

/// The `vocab_blake3` of a sidecar.
fn sidecar_hash(side: &Path) -> Result<Blake3> {
    let text = std::fs::read_to_string(side)
        .map_err(|e| cfg(format!("{}: cannot read: {e}", side.display())))?;
    let meta: CheckpointMeta = serde_json::from_str(&text)
        .map_err(|e| cfg(format!("{}: sidecar JSON is invalid: {e}", side.display())))?;
    let h = meta.vocab_blake3;
    Blake3::parse(&h.to_ascii_lowercase()).map_err(|_| {
        cfg(format!(
            "{}: `vocab_blake3` is not a blake3 hash (64 hex digits): {h:?}; give --vocab",
            side.display()
        ))
    })
}

/// The blake3 of a regular file (never opening a FIFO or device that happens to be there).
fn hash_of(path: &Path) -> Option<Blake3> {
    match not_a_file(path) {
        None => crate::cache::hash_file(path).ok(),
        Some(_) => None,
    }
}

/// Finds the vocabulary whose blake3 the sidecar records; the error lists every place tried.
fn find_vocab(checkpoint: &Path, side: &Path) -> Result<PathBuf> {
    let h = sidecar_hash(side)?;
    let mut tried: Vec<String> = Vec::new();
    let dir = checkpoint
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let beside = dir.join("vocab.json");
    match hash_of(&beside) {
        Some(got) if got == h => return Ok(beside),
        Some(_) => tried.push(format!("{} (a different vocabulary)", beside.display())),
        None => tried.push(beside.display().to_string()),
    }
    let mut roots: Vec<PathBuf> = Vec::new();
    if let Ok(abs) = std::fs::canonicalize(dir) {
        roots.push(super::project::find_root(&abs));
    }
    if let Ok(r) = super::project::project_root() {
        if !roots.contains(&r) {
            roots.push(r);
        }
    }
    for root in roots {
        let obj = crate::cache::Cache::new(&root).object_path(&h);
        if obj.is_file() {
            return Ok(obj);
        }
        tried.push(obj.display().to_string());
    }
    Err(cfg(format!(
        "checkpoint {}: cannot find its vocabulary (vocab_blake3 {h} in {}); looked for {}; \
         give --vocab FILE",
        checkpoint.display(),
        side.display(),
        tried.join(", ")
    )))
}
