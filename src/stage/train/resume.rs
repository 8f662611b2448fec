//! Where a training node starts: fresh weights (with the embed upstream's vectors) for epoch 1,
//! or the previous epoch's checkpoint and optimiser state, checked against this node's
//! vocabulary and model shape.

use super::inputs::{load_embedding, Inputs};
use crate::model::history::History;
use crate::model::train::{mix, TrainConfig, Trainer};
use crate::model::{Checkpoint, Weights};
use crate::stage::{StageCtx, Upstream};
use anyhow::bail;
use rand::SeedableRng;

/// The trainer and cumulative history before epoch `first`.
pub(super) fn start(
    ctx: &StageCtx,
    inp: &Inputs,
    tcfg: TrainConfig,
    seed: u64,
    first: usize,
) -> anyhow::Result<(Trainer, History)> {
    let (cfg, vocab_hash, vocab_path) = (&inp.cfg, &inp.vocab_hash, &inp.vocab_path);
    let (trainer, history) = if first == 1 {
        let mut rng = rand::rngs::StdRng::seed_from_u64(mix(seed, 1));
        let mut w = Weights::init(cfg, &mut rng);
        if let Some(emb) = ctx.upstream_of_kind("embed").next() {
            w.tok_emb = load_embedding(emb, cfg)?;
        }
        (Trainer::new(w, tcfg), History::default())
    } else {
        let prev = previous_epoch(ctx, first - 1)?;
        let path = prev
            .checkpoints
            .join(format!("epoch_{}.safetensors", first - 1));
        let ck = Checkpoint::load(&path)?;
        if ck.meta.vocab_blake3 != *vocab_hash {
            bail!(
                "{}: checkpoint was trained with a different vocabulary (blake3 {}) than {} (blake3 {vocab_hash}); refusing to continue",
                path.display(),
                ck.meta.vocab_blake3,
                vocab_path.display()
            );
        }
        if ck.meta.config != *cfg {
            bail!(
                "{}: checkpoint model config {:?} differs from this stage's {:?}",
                path.display(),
                ck.meta.config,
                cfg
            );
        }
        let tr = Trainer::resume(ck.weights, tcfg, &path)?;
        (tr, History::load(&prev.results)?)
    };
    if trainer.epoch != first - 1 {
        bail!(
            "optimiser state is at epoch {}, expected {}",
            trainer.epoch,
            first - 1
        );
    }
    Ok((trainer, history))
}

/// The upstream node of epoch `n` of this stage.
fn previous_epoch(ctx: &StageCtx, n: usize) -> anyhow::Result<&Upstream> {
    ctx.upstream_of_kind("train")
        .find(|u| {
            matches!(u.params.get("epoch").and_then(|e| e.as_u64()), Some(e) if e == n as u64)
                && u.checkpoints
                    .join(format!("epoch_{n}.safetensors"))
                    .exists()
        })
        .ok_or_else(|| {
            anyhow::anyhow!(
                "epoch {} needs the previous epoch's node (epoch {n}) with its checkpoint epoch_{n}.safetensors as an upstream",
                n + 1
            )
        })
}
