//! Checkpoint files: `epoch_<N>.safetensors` (the tensor-name contract) with a JSON sidecar
//! `epoch_<N>.json` holding the model configuration, vocabulary hash, epoch and metrics.

use super::config::ModelConfig;
use super::weights::Weights;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The JSON sidecar written beside every checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    pub config: ModelConfig,
    /// blake3 (hex) of the `vocab.json` the model was trained with.
    pub vocab_blake3: String,
    pub epoch: usize,
    /// Headline metrics of this epoch (train_loss, val_loss, val_perplexity, ...).
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
    /// Anything else the trainer wants to record (training params, optimiser file name, ...).
    #[serde(default)]
    pub extra: serde_json::Value,
}

/// Errors reading or writing checkpoints; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a valid safetensors file: {msg}")]
    Format { path: PathBuf, msg: String },
    #[error("{path}: {msg}")]
    Contract { path: PathBuf, msg: String },
    #[error("{path}: sidecar JSON is invalid: {msg}")]
    Meta { path: PathBuf, msg: String },
}

/// A loaded checkpoint.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub weights: Weights,
    pub meta: CheckpointMeta,
}

/// The sidecar path for a checkpoint path (`x.safetensors` → `x.json`).
pub fn sidecar_path(path: &Path) -> PathBuf {
    path.with_extension("json")
}

/// Writes named f32 tensors to a safetensors file (atomically: temp file then rename).
pub fn write_tensors(
    path: &Path,
    tensors: &[(String, Vec<usize>, &[f32])],
) -> Result<(), CheckpointError> {
    let io = |source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    };
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, d)| d.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .zip(&bytes)
        .map(|((n, s, _), b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                    .expect("shape matches data"),
            )
        })
        .collect();
    let data =
        safetensors::tensor::serialize(views, &None).map_err(|e| CheckpointError::Format {
            path: path.to_path_buf(),
            msg: e.to_string(),
        })?;
    write_atomic(path, &data).map_err(io)
}

/// Named tensors: name → (shape, row-major data).
pub type NamedTensors = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

/// Reads every f32 tensor of a safetensors file.
pub fn read_tensors(path: &Path) -> Result<NamedTensors, CheckpointError> {
    let bytes = std::fs::read(path).map_err(|source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let st =
        safetensors::SafeTensors::deserialize(&bytes).map_err(|e| CheckpointError::Format {
            path: path.to_path_buf(),
            msg: e.to_string(),
        })?;
    let mut out = BTreeMap::new();
    for (name, view) in st.tensors() {
        if view.dtype() != safetensors::Dtype::F32 {
            return Err(CheckpointError::Contract {
                path: path.to_path_buf(),
                msg: format!("tensor `{name}` is {:?}, expected F32", view.dtype()),
            });
        }
        let data = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        out.insert(name, (view.shape().to_vec(), data));
    }
    Ok(out)
}

impl Checkpoint {
    /// Writes `path` (safetensors) and its sidecar.
    pub fn save(&self, path: &Path) -> Result<(), CheckpointError> {
        write_tensors(path, &self.weights.named())?;
        let side = sidecar_path(path);
        let json = serde_json::to_vec_pretty(&self.meta).expect("meta serialises");
        write_atomic(&side, &json).map_err(|source| CheckpointError::Io { path: side, source })
    }

    /// Loads a checkpoint and its sidecar, checking every tensor against the sidecar's config.
    pub fn load(path: &Path) -> Result<Self, CheckpointError> {
        let meta = Self::read_meta(path)?;
        let tensors = read_tensors(path)?;
        let weights =
            Weights::from_named(&meta.config, tensors).map_err(|e| CheckpointError::Contract {
                path: path.to_path_buf(),
                msg: e.to_string(),
            })?;
        Ok(Checkpoint { weights, meta })
    }

    /// The sidecar of checkpoint `path` alone (its config validated), read without the
    /// tensors: enough to estimate what loading the model will need.
    pub fn read_meta(path: &Path) -> Result<CheckpointMeta, CheckpointError> {
        let side = sidecar_path(path);
        let text = std::fs::read_to_string(&side).map_err(|source| CheckpointError::Io {
            path: side.clone(),
            source,
        })?;
        let meta: CheckpointMeta =
            serde_json::from_str(&text).map_err(|e| CheckpointError::Meta {
                path: side.clone(),
                msg: e.to_string(),
            })?;
        meta.config
            .validate()
            .map_err(|msg| CheckpointError::Contract {
                path: side.clone(),
                msg,
            })?;
        Ok(meta)
    }
}

/// Writes `data` to `path` through a temporary file in the same folder and a rename.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut tmp, data)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn save_load_round_trip() {
        let cfg = ModelConfig {
            vocab_size: 9,
            d_model: 4,
            d_attn: 4,
            n_heads: 2,
            d_ff: 6,
            n_layers: 1,
            context: 5,
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let ck = Checkpoint {
            weights: Weights::init(&cfg, &mut rng),
            meta: CheckpointMeta {
                config: cfg,
                vocab_blake3: "abc".into(),
                epoch: 1,
                metrics: BTreeMap::from([("val_loss".to_string(), 1.5)]),
                extra: serde_json::Value::Null,
            },
        };
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("epoch_1.safetensors");
        ck.save(&p).unwrap();
        let back = Checkpoint::load(&p).unwrap();
        assert_eq!(back.weights, ck.weights);
        assert_eq!(back.meta, ck.meta);
    }
}
