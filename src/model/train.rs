//! The training loop as a library: a [`Trainer`] holds weights, AdamW state and the epoch
//! counter and runs one epoch at a time over [`Examples`]; [`evaluate`] gives validation loss
//! and perplexity. Everything random is derived from two seeds and the step/epoch numbers, so a
//! trainer saved after epoch N and resumed continues exactly as an uninterrupted run.

use super::adamw::{AdamWConfig, AdamWState, OptimMeta};
use super::batches::{Examples, PAD};
use super::checkpoint::CheckpointError;
use super::divergence::Guard;
use super::net::{Dropout, Net};
use super::ops::{head_loss, head_nll};
use super::weights::{all_finite, Weights};
use crate::simd::Precision;
use dfdx::prelude::*;
use std::path::Path;
use std::time::Instant;

/// Learning-rate schedule after warm-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    Constant,
    /// Cosine decay to zero at `TrainConfig::total_steps`.
    Cosine,
}

/// Everything that controls training besides the model shape.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    pub batch_size: usize,
    pub lr: f32,
    pub adamw: AdamWConfig,
    /// Global gradient-norm clip.
    pub grad_clip: Option<f32>,
    pub warmup_steps: u64,
    pub schedule: Schedule,
    /// Horizon of the cosine schedule in steps (ignored for `Constant`).
    pub total_steps: u64,
    pub freeze_embeddings: bool,
    pub dropout: f32,
    /// Seed of the per-epoch data order.
    pub data_seed: u64,
    /// Seed of the per-step dropout masks.
    pub dropout_seed: u64,
    /// Precision of the matrix products (training and validation).
    pub precision: Precision,
    /// Divergence guard: an epoch fails once its running loss exceeds this multiple of its
    /// first step's loss (`model::divergence`); `None`: off.
    pub divergence: Option<f32>,
}

/// One optimiser step, as reported to the caller.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRecord {
    /// Global step, from 1.
    pub step: u64,
    /// Epoch (from 1) this step belongs to.
    pub epoch: usize,
    pub loss: f32,
    pub lr: f32,
    /// Input positions (batch × context) per second of this step.
    pub tokens_per_s: f64,
    /// Step within the epoch (from 1) and the epoch's number of steps.
    pub in_epoch: (usize, usize),
}

/// Summary of one epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochStats {
    pub epoch: usize,
    /// Mean loss over all non-pad targets of the epoch.
    pub train_loss: f64,
    pub steps: usize,
    pub tokens_per_s: f64,
}

/// Validation result.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalStats {
    /// Mean NLL over non-pad targets.
    pub loss: f64,
    /// `exp(loss)`.
    pub perplexity: f64,
    /// Number of predicted non-pad tokens.
    pub tokens: usize,
}

/// Training failures.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("loss became {loss} at step {step} (epoch {epoch}); lower the learning rate or enable grad_clip")]
    NonFinite { step: u64, epoch: usize, loss: f32 },
    #[error("weights became non-finite (first: `{tensor}`) after the update of step {step} (epoch {epoch}); lower the learning rate or enable grad_clip")]
    NonFiniteWeights {
        step: u64,
        epoch: usize,
        tensor: String,
    },
    #[error("validation loss became {loss} after epoch {epoch} (step {step}); lower the learning rate or enable grad_clip")]
    NonFiniteValidation { step: u64, epoch: usize, loss: f64 },
    #[error("training diverged at step {step} (epoch {epoch}): the running loss {running:.4} exceeds {ratio} × the epoch's starting loss {start:.4}; lower the learning rate or enable grad_clip (divergence_ratio sets the multiple, null turns the check off)")]
    Diverged {
        step: u64,
        epoch: usize,
        running: f64,
        start: f64,
        ratio: f32,
    },
    #[error("no training windows: the training split is empty")]
    NoData,
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("optimiser state {path}: {msg}")]
    Resume { path: String, msg: String },
}

pub use crate::seed::mix;

/// Learning rate at global step `step` (from 1).
pub fn lr_at(cfg: &TrainConfig, step: u64) -> f32 {
    let warm = cfg.warmup_steps;
    if warm > 0 && step <= warm {
        return cfg.lr * step as f32 / warm as f32;
    }
    match cfg.schedule {
        Schedule::Constant => cfg.lr,
        Schedule::Cosine => {
            let span = cfg.total_steps.saturating_sub(warm).max(1);
            let done = (step - warm).min(span) as f64 / span as f64;
            (cfg.lr as f64 * 0.5 * (1.0 + (std::f64::consts::PI * done).cos())) as f32
        }
    }
}

/// Which weight slots are trained.
pub fn trainable_slots(weights: &Weights, freeze_embeddings: bool) -> Vec<bool> {
    (0..weights.named().len())
        .map(|i| !(i == 0 && freeze_embeddings))
        .collect()
}

/// Mean loss over non-pad targets of one batch and the gradients of every slot (`None` for
/// frozen `tok_emb`). `inputs`/`targets` hold `b` rows of `t` ids.
pub fn loss_and_grads(
    net: &Net,
    inputs: &[u32],
    targets: &[u32],
    t: usize,
    train_emb: bool,
    dropout: Option<&Dropout>,
) -> (f32, Vec<Option<Vec<f32>>>) {
    let b = inputs.len() / t;
    let x = net.embed_traced(inputs, t, train_emb);
    let h = net.hidden(x, b, t, dropout);
    let loss = head_loss(h, &net.head, targets, &pad_weights(targets));
    let value = loss.array();
    let mut grads = loss.backward();
    (value, net.grads(&mut grads, train_emb))
}

/// 1/(non-pad count) for non-pad targets, 0 for pads.
fn pad_weights(targets: &[u32]) -> Vec<f32> {
    let count = targets.iter().filter(|&&x| x != PAD).count().max(1);
    targets
        .iter()
        .map(|&x| if x == PAD { 0.0 } else { 1.0 / count as f32 })
        .collect()
}

/// Validation: mean NLL and perplexity over every non-pad target of `examples`, no dropout,
/// matrix products in `precision`.
pub fn evaluate(
    weights: &Weights,
    examples: &Examples,
    batch_size: usize,
    precision: Precision,
) -> EvalStats {
    let dev = Cpu::default();
    let net = Net::from_weights_in(weights, &dev, precision);
    let t = examples.context;
    let all: Vec<usize> = (0..examples.len()).collect();
    let (mut sum, mut count) = (0.0f64, 0usize);
    for rows in all.chunks(batch_size.max(1)) {
        let (inp, tgt) = examples.batch(rows);
        let h = net.hidden(net.embed_const(&inp, t), rows.len(), t, None);
        let per = head_nll(&h, &net.head, &tgt);
        for (l, &y) in per.iter().zip(&tgt) {
            if y != PAD {
                sum += *l as f64;
                count += 1;
            }
        }
    }
    let loss = if count > 0 {
        sum / count as f64
    } else {
        f64::NAN
    };
    EvalStats {
        loss,
        perplexity: loss.exp(),
        tokens: count,
    }
}

/// Weights, optimiser state and progress of a training run.
#[derive(Debug, Clone)]
pub struct Trainer {
    pub weights: Weights,
    pub opt: AdamWState,
    /// Epochs completed.
    pub epoch: usize,
    pub cfg: TrainConfig,
    trainable: Vec<bool>,
}

impl Trainer {
    /// A fresh run from `weights`.
    pub fn new(weights: Weights, cfg: TrainConfig) -> Self {
        let trainable = trainable_slots(&weights, cfg.freeze_embeddings);
        let opt = AdamWState::new(&weights, &trainable);
        Trainer {
            weights,
            opt,
            epoch: 0,
            cfg,
            trainable,
        }
    }

    /// Resumes from `weights` and the optimiser state saved beside `checkpoint`; the saved
    /// seeds and frozen slots must match `cfg`.
    pub fn resume(
        weights: Weights,
        cfg: TrainConfig,
        checkpoint: &Path,
    ) -> Result<Self, TrainError> {
        let (opt, meta) = AdamWState::load(&weights, checkpoint)?;
        let trainable = trainable_slots(&weights, cfg.freeze_embeddings);
        let bad = |msg: String| TrainError::Resume {
            path: checkpoint.display().to_string(),
            msg,
        };
        if meta.trainable != trainable {
            return Err(bad(
                "it was saved with a different freeze_embeddings setting".into(),
            ));
        }
        if meta.data_seed != cfg.data_seed || meta.dropout_seed != cfg.dropout_seed {
            return Err(bad("it was saved with a different seed".into()));
        }
        Ok(Trainer {
            weights,
            opt,
            epoch: meta.epoch,
            cfg,
            trainable,
        })
    }

    /// The JSON part of the optimiser state for the current point.
    pub fn optim_meta(&self) -> OptimMeta {
        OptimMeta {
            step: self.opt.step,
            epoch: self.epoch,
            data_seed: self.cfg.data_seed,
            dropout_seed: self.cfg.dropout_seed,
            trainable: self.trainable.clone(),
        }
    }

    /// Writes the optimiser state beside `checkpoint` (`epoch_N.optim.safetensors/.json`).
    pub fn save_optim(&self, checkpoint: &Path) -> Result<(), TrainError> {
        Ok(self
            .opt
            .save(&self.weights, &self.optim_meta(), checkpoint)?)
    }

    /// Validation loss and perplexity of the current weights over `examples`
    /// ([`evaluate`]); a non-finite loss over at least one token is an error naming the epoch
    /// and the step.
    pub fn validate(
        &self,
        examples: &Examples,
        batch_size: usize,
    ) -> Result<EvalStats, TrainError> {
        let stats = evaluate(&self.weights, examples, batch_size, self.cfg.precision);
        if stats.tokens > 0 && !stats.loss.is_finite() {
            return Err(TrainError::NonFiniteValidation {
                step: self.opt.step,
                epoch: self.epoch,
                loss: stats.loss,
            });
        }
        Ok(stats)
    }

    /// The first trained tensor (contract order) holding a NaN or an infinity.
    fn first_non_finite_trained(&self) -> Option<String> {
        let mut bad = None;
        let mut i = 0;
        self.weights.for_each_tensor(|name, _, data| {
            if bad.is_none() && self.trainable[i] && !all_finite(data) {
                bad = Some(name);
            }
            i += 1;
        });
        bad
    }

    /// Trains one epoch over `examples` in a shuffled order; `on_step` sees every step. A
    /// non-finite loss, non-finite weights after any update (the last one included), or a
    /// diverging running loss (`TrainConfig::divergence`) stops the epoch with an error naming
    /// the epoch and the step; the trainer must then be discarded.
    pub fn run_epoch(
        &mut self,
        examples: &Examples,
        on_step: &mut dyn FnMut(&StepRecord),
    ) -> Result<EpochStats, TrainError> {
        if examples.is_empty() {
            return Err(TrainError::NoData);
        }
        let epoch = self.epoch + 1;
        let cfg = self.cfg.clone();
        let t = examples.context;
        let dev = Cpu::default();
        let mut net = Net::from_weights_in(&self.weights, &dev, cfg.precision);
        let mut guard = cfg.divergence.map(Guard::new);
        let order = examples.order(mix(cfg.data_seed, epoch as u64));
        let bs = cfg.batch_size.max(1);
        let n_steps = order.len().div_ceil(bs);
        let train_emb = !cfg.freeze_embeddings;
        let (mut loss_sum, mut loss_tokens, mut positions) = (0.0f64, 0usize, 0usize);
        let started = Instant::now();
        for (i, rows) in order.chunks(bs).enumerate() {
            let t0 = Instant::now();
            let step = self.opt.step + 1;
            let (inp, tgt) = examples.batch(rows);
            let n_tok = tgt.iter().filter(|&&x| x != PAD).count();
            let drop = Dropout::new(cfg.dropout, mix(cfg.dropout_seed, step));
            let (loss, mut grads) = loss_and_grads(&net, &inp, &tgt, t, train_emb, Some(&drop));
            if !loss.is_finite() {
                return Err(TrainError::NonFinite { step, epoch, loss });
            }
            if let (Some(g), Some(ratio)) = (guard.as_mut(), cfg.divergence) {
                g.step(loss).map_err(|d| TrainError::Diverged {
                    step,
                    epoch,
                    running: d.running,
                    start: d.start,
                    ratio,
                })?;
            }
            if let Some(clip) = cfg.grad_clip {
                clip_grad_norm(&mut grads, clip);
            }
            let lr = lr_at(&cfg, step);
            self.opt.update(&cfg.adamw, lr, &mut self.weights, &grads);
            // A finite loss can still give non-finite weights (huge steps, overflowing moments);
            // on the last step of an epoch no later loss would show it.
            if let Some(tensor) = self.first_non_finite_trained() {
                return Err(TrainError::NonFiniteWeights {
                    step,
                    epoch,
                    tensor,
                });
            }
            net.load_weights(&self.weights);
            loss_sum += loss as f64 * n_tok as f64;
            loss_tokens += n_tok;
            positions += inp.len();
            on_step(&StepRecord {
                step,
                epoch,
                loss,
                lr,
                tokens_per_s: inp.len() as f64 / t0.elapsed().as_secs_f64().max(1e-9),
                in_epoch: (i + 1, n_steps),
            });
        }
        self.epoch = epoch;
        Ok(EpochStats {
            epoch,
            train_loss: loss_sum / loss_tokens.max(1) as f64,
            steps: n_steps,
            tokens_per_s: positions as f64 / started.elapsed().as_secs_f64().max(1e-9),
        })
    }
}

/// Scales all gradients so their global L2 norm is at most `max_norm` (PyTorch's
/// `clip_grad_norm_`); returns the norm before clipping.
pub fn clip_grad_norm(grads: &mut [Option<Vec<f32>>], max_norm: f32) -> f64 {
    let sq: f64 = grads
        .iter()
        .flatten()
        .map(|g| g.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>())
        .sum();
    let norm = sq.sqrt();
    let coef = max_norm as f64 / (norm + 1e-6);
    if coef < 1.0 {
        for g in grads.iter_mut().flatten() {
            for x in g.iter_mut() {
                *x = (*x as f64 * coef) as f32;
            }
        }
    }
    norm
}
