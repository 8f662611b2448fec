//! The `train` stage's inputs: the tokenize upstream's vocabulary and token ids cut into
//! examples, the model shape they give (checked to fit in memory before anything is allocated)
//! and the embed upstream's vectors.

use super::TrainParams;
use crate::model::batches::Examples;
use crate::model::checkpoint::read_tensors;
use crate::model::ModelConfig;
use crate::stage::{StageCtx, Upstream};
use crate::text::{TokenFile, Vocab};
use anyhow::{bail, Context};
use std::path::PathBuf;

/// What one training node reads from its tokenize upstream.
pub(super) struct Inputs {
    pub vocab_path: PathBuf,
    /// blake3 of `vocab.json`, recorded in each checkpoint.
    pub vocab_hash: String,
    pub cfg: ModelConfig,
    pub train_ex: Examples,
    pub valid_ex: Examples,
}

impl Inputs {
    pub fn load(ctx: &StageCtx, p: &TrainParams) -> anyhow::Result<Inputs> {
        // Vocabulary and token ids.
        let tok = ctx.one_upstream("tokenize")?;
        let vocab_path = tok.results.join("vocab.json");
        let vocab_bytes = std::fs::read(&vocab_path)
            .with_context(|| format!("reading {}", vocab_path.display()))?;
        let vocab_hash = blake3::hash(&vocab_bytes).to_hex().to_string();
        let vocab = Vocab::load(&vocab_path).map_err(|e| anyhow::anyhow!("{e}"))?;
        let cfg = p.model_config(vocab.len());
        cfg.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
        // Estimated before anything is allocated: a model, batch or context that cannot fit is a
        // clear error, never an allocation abort.
        let need = crate::model::memory::training(&cfg, p.batch_size, p.freeze_embeddings).total();
        if let Some(avail) = crate::model::memory::available() {
            if need > avail {
                bail!(
                    "training this model needs about {} (parameters, AdamW moments, gradients and the activations of batch_size {} × context {}), but the machine has {} available; lower `context`, `batch_size` or the model's size",
                    crate::bytes::human(need),
                    p.batch_size,
                    p.context,
                    crate::bytes::human(avail)
                );
            }
        }
        let load_ids = |name: &str| {
            let base = tok.results.join(name);
            TokenFile::load(&base)
                .with_context(|| format!("reading {}.ids/.offsets", base.display()))
        };
        let (train_ids, valid_ids) = (load_ids("train")?, load_ids("valid")?);
        for (name, f) in [("train", &train_ids), ("valid", &valid_ids)] {
            if let Some(&bad) = f.ids.iter().find(|&&x| x as usize >= vocab.len()) {
                bail!(
                    "{}: token id {bad} is outside the vocabulary of {} tokens ({})",
                    tok.results.join(name).display(),
                    vocab.len(),
                    vocab_path.display()
                );
            }
        }
        let train_ex = Examples::build(train_ids.docs(), p.context, p.packing);
        let valid_ex = Examples::build(valid_ids.docs(), p.context, p.packing);
        if train_ex.is_empty() {
            bail!("the training split of `{}` has no documents", tok.id);
        }
        if valid_ex.is_empty() {
            bail!(
                "the validation split of `{}` has no documents, so validation loss and perplexity are undefined; give tokenize a validation share",
                tok.id
            );
        }
        Ok(Inputs {
            vocab_path,
            vocab_hash,
            cfg,
            train_ex,
            valid_ex,
        })
    }
}

/// `tok_emb.weight` of an embed stage, checked against the model shape.
pub(super) fn load_embedding(emb: &Upstream, cfg: &ModelConfig) -> anyhow::Result<Vec<f32>> {
    let path = emb.results.join("embedding.safetensors");
    let mut t = read_tensors(&path)?;
    let (shape, data) = t
        .remove("tok_emb.weight")
        .ok_or_else(|| anyhow::anyhow!("{}: tensor `tok_emb.weight` is missing", path.display()))?;
    if shape.len() != 2 {
        bail!(
            "{}: `tok_emb.weight` has shape {shape:?}, expected [V, dim]",
            path.display()
        );
    }
    if shape[1] != cfg.d_model {
        bail!(
            "{}: embedding dimension {} (stage `{}`) differs from train d_model {}; set both to the same number",
            path.display(),
            shape[1],
            emb.id,
            cfg.d_model
        );
    }
    if shape[0] != cfg.vocab_size {
        bail!(
            "{}: embedding has {} rows but the vocabulary has {} tokens; the embed stage must use the same tokenize output",
            path.display(),
            shape[0],
            cfg.vocab_size
        );
    }
    Ok(data)
}
