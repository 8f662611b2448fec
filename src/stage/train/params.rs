//! The `train` kind's parameters (stages/train.yaml): their checks, and the model shape and
//! training configuration they describe.

use crate::model::adamw::AdamWConfig;
use crate::model::batches::Packing;
use crate::model::train::{mix, Schedule, TrainConfig};
use crate::model::{ModelConfig, Precision};
use serde::{Deserialize, Serialize};

/// Typed parameters (stages/train.yaml).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainParams {
    pub d_model: usize,
    pub d_attn: usize,
    pub n_heads: usize,
    pub d_ff: usize,
    pub n_layers: usize,
    pub context: usize,
    pub dropout: f32,
    pub batch_size: usize,
    pub lr: f32,
    pub weight_decay: f32,
    pub betas: [f32; 2],
    pub eps: f32,
    pub grad_clip: Option<f32>,
    pub warmup_steps: u64,
    pub schedule: Schedule,
    pub schedule_epochs: Option<usize>,
    pub freeze_embeddings: bool,
    pub packing: Packing,
    pub epochs: usize,
    pub seed: Option<u64>,
    pub eval_batch_size: usize,
    pub precision: Precision,
    pub divergence_ratio: Option<f32>,
    /// The node's epoch, set by the engine; absent → all `epochs` in one run.
    #[serde(default)]
    pub epoch: Option<usize>,
}

impl TrainParams {
    /// The model shape for a vocabulary of `vocab_size`.
    pub fn model_config(&self, vocab_size: usize) -> ModelConfig {
        ModelConfig {
            vocab_size,
            d_model: self.d_model,
            d_attn: self.d_attn,
            n_heads: self.n_heads,
            d_ff: self.d_ff,
            n_layers: self.n_layers,
            context: self.context,
        }
    }

    /// Value checks; messages name the key.
    pub fn validate(&self) -> Result<(), String> {
        self.model_config(4).validate()?;
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(format!("dropout ({}) must be in [0, 1)", self.dropout));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(format!("lr ({}) must be a positive number", self.lr));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(format!("weight_decay ({}) must be ≥ 0", self.weight_decay));
        }
        for b in self.betas {
            if !(0.0..1.0).contains(&b) {
                return Err(format!("betas ({:?}) must each be in [0, 1)", self.betas));
            }
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return Err(format!("eps ({}) must be positive", self.eps));
        }
        if let Some(c) = self.grad_clip {
            if !(c.is_finite() && c > 0.0) {
                return Err(format!("grad_clip ({c}) must be positive or null"));
            }
        }
        for (k, v) in [
            ("batch_size", self.batch_size),
            ("epochs", self.epochs),
            ("eval_batch_size", self.eval_batch_size),
        ] {
            if v == 0 {
                return Err(format!("{k} must be at least 1"));
            }
        }
        if let Some(r) = self.divergence_ratio {
            if !(r.is_finite() && r > 1.0) {
                return Err(format!(
                    "divergence_ratio ({r}) must be a number above 1, or null to turn the check off"
                ));
            }
        }
        if self.schedule == Schedule::Cosine && self.schedule_epochs.unwrap_or(0) == 0 {
            return Err(
                "schedule: cosine needs schedule_epochs (the decay horizon in epochs; \
                        kept apart from `epochs` so raising epochs does not change earlier ones)"
                    .into(),
            );
        }
        if let Some(e) = self.epoch {
            if e == 0 || e > self.epochs {
                return Err(format!("epoch ({e}) must be in 1..={}", self.epochs));
            }
        }
        Ok(())
    }

    /// The training configuration for `steps_per_epoch` steps an epoch and a base seed.
    pub fn train_config(&self, steps_per_epoch: usize, seed: u64) -> TrainConfig {
        TrainConfig {
            batch_size: self.batch_size,
            lr: self.lr,
            adamw: AdamWConfig {
                weight_decay: self.weight_decay,
                beta1: self.betas[0],
                beta2: self.betas[1],
                eps: self.eps,
            },
            grad_clip: self.grad_clip,
            warmup_steps: self.warmup_steps,
            schedule: self.schedule,
            total_steps: (self.schedule_epochs.unwrap_or(0) * steps_per_epoch) as u64,
            freeze_embeddings: self.freeze_embeddings,
            dropout: self.dropout,
            data_seed: mix(seed, 2),
            dropout_seed: mix(seed, 3),
            precision: self.precision,
            divergence: self.divergence_ratio,
        }
    }
}
