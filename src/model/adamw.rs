//! AdamW (PyTorch semantics: decoupled weight decay, bias-corrected moments) over the weight
//! slots of [`Weights`], with state that is saved beside each checkpoint
//! (`epoch_<N>.optim.safetensors`: tensors `m.<name>` and `v.<name>` per trainable parameter,
//! plus `epoch_<N>.optim.json`: step and the training RNG seeds), so that training resumed from
//! a saved epoch equals one uninterrupted run.

use super::checkpoint::{read_tensors, write_atomic, write_tensors, CheckpointError};
use super::weights::Weights;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Hyper-parameters of AdamW.
#[derive(Debug, Clone, PartialEq)]
pub struct AdamWConfig {
    pub weight_decay: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
}

/// Moments per weight slot (slot order of [`Weights::slots_mut`]); frozen slots have empty
/// vectors. `step` counts optimiser steps taken so far.
#[derive(Debug, Clone, PartialEq)]
pub struct AdamWState {
    pub step: u64,
    pub m: Vec<Vec<f32>>,
    pub v: Vec<Vec<f32>>,
}

/// The JSON part of the saved optimiser state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptimMeta {
    /// Optimiser steps taken (also the global training step).
    pub step: u64,
    /// Epochs completed.
    pub epoch: usize,
    /// Seed of the data order (epoch e shuffles with a seed derived from it and e).
    pub data_seed: u64,
    /// Seed of the dropout masks (step s draws from a seed derived from it and s).
    pub dropout_seed: u64,
    /// Which weight slots were trained (false: frozen, no moments).
    pub trainable: Vec<bool>,
}

/// Paths of the optimiser state for a checkpoint path `dir/epoch_N.safetensors`.
pub fn optim_paths(checkpoint: &Path) -> (PathBuf, PathBuf) {
    let stem = checkpoint
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dir = checkpoint.parent().unwrap_or_else(|| Path::new("."));
    (
        dir.join(format!("{stem}.optim.safetensors")),
        dir.join(format!("{stem}.optim.json")),
    )
}

impl AdamWState {
    /// Zero moments for the trainable slots of `weights`.
    pub fn new(weights: &Weights, trainable: &[bool]) -> Self {
        let sizes: Vec<usize> = weights.named().iter().map(|(_, _, d)| d.len()).collect();
        let zeros = |i: usize| {
            if trainable[i] {
                vec![0.0; sizes[i]]
            } else {
                Vec::new()
            }
        };
        AdamWState {
            step: 0,
            m: (0..sizes.len()).map(zeros).collect(),
            v: (0..sizes.len()).map(zeros).collect(),
        }
    }

    /// One AdamW step at learning rate `lr`: `grads[i]` is `None` for frozen slots.
    pub fn update(
        &mut self,
        cfg: &AdamWConfig,
        lr: f32,
        weights: &mut Weights,
        grads: &[Option<Vec<f32>>],
    ) {
        self.step += 1;
        let t = self.step as i32;
        let bc1 = 1.0 - cfg.beta1.powi(t);
        let bc2 = 1.0 - cfg.beta2.powi(t);
        let step_size = lr / bc1;
        let bc2_sqrt = bc2.sqrt();
        let decay = 1.0 - lr * cfg.weight_decay;
        // Work items of at most CHUNK elements across all slots (the output layer alone is
        // half the trainable parameters), element-wise so the split cannot change results.
        const CHUNK: usize = 1 << 16;
        type Item<'a> = (&'a mut [f32], &'a mut [f32], &'a mut [f32], &'a [f32]);
        let mut items: Vec<Item> = Vec::new();
        for (((p, m), v), g) in weights
            .slots_mut()
            .into_iter()
            .zip(self.m.iter_mut())
            .zip(self.v.iter_mut())
            .zip(grads)
        {
            let Some(g) = g else { continue };
            for (((p, m), v), g) in p
                .chunks_mut(CHUNK)
                .zip(m.chunks_mut(CHUNK))
                .zip(v.chunks_mut(CHUNK))
                .zip(g.chunks(CHUNK))
            {
                items.push((p, m, v, g));
            }
        }
        items.into_par_iter().for_each(|(p, m, v, g)| {
            for i in 0..g.len() {
                let gi = g[i];
                m[i] = cfg.beta1 * m[i] + (1.0 - cfg.beta1) * gi;
                v[i] = cfg.beta2 * v[i] + (1.0 - cfg.beta2) * gi * gi;
                let denom = v[i].sqrt() / bc2_sqrt + cfg.eps;
                p[i] = p[i] * decay - step_size * m[i] / denom;
            }
        });
    }

    /// Writes the moments (`m.<name>`, `v.<name>` for trainable slots) and `meta`.
    pub fn save(
        &self,
        weights: &Weights,
        meta: &OptimMeta,
        checkpoint: &Path,
    ) -> Result<(), CheckpointError> {
        let (st, js) = optim_paths(checkpoint);
        let named = weights.named();
        let mut tensors: Vec<(String, Vec<usize>, &[f32])> = Vec::new();
        for (i, (name, shape, _)) in named.iter().enumerate() {
            if meta.trainable[i] {
                tensors.push((format!("m.{name}"), shape.clone(), &self.m[i]));
                tensors.push((format!("v.{name}"), shape.clone(), &self.v[i]));
            }
        }
        write_tensors(&st, &tensors)?;
        let json = serde_json::to_vec_pretty(meta).expect("meta serialises");
        write_atomic(&js, &json).map_err(|source| CheckpointError::Io { path: js, source })
    }

    /// Reads the state saved beside `checkpoint` for weights shaped like `weights`.
    pub fn load(
        weights: &Weights,
        checkpoint: &Path,
    ) -> Result<(Self, OptimMeta), CheckpointError> {
        let (st, js) = optim_paths(checkpoint);
        let text = std::fs::read_to_string(&js).map_err(|source| CheckpointError::Io {
            path: js.clone(),
            source,
        })?;
        let meta: OptimMeta = serde_json::from_str(&text).map_err(|e| CheckpointError::Meta {
            path: js.clone(),
            msg: e.to_string(),
        })?;
        let named = weights.named();
        if meta.trainable.len() != named.len() {
            return Err(CheckpointError::Contract {
                path: js,
                msg: format!(
                    "{} trainable flags for {} tensors",
                    meta.trainable.len(),
                    named.len()
                ),
            });
        }
        let mut tensors = read_tensors(&st)?;
        let mut state = AdamWState::new(weights, &meta.trainable);
        state.step = meta.step;
        for (i, (name, shape, _)) in named.iter().enumerate() {
            if !meta.trainable[i] {
                continue;
            }
            for (which, dst) in [("m", &mut state.m[i]), ("v", &mut state.v[i])] {
                let key = format!("{which}.{name}");
                let (s, d) = tensors
                    .remove(&key)
                    .ok_or_else(|| CheckpointError::Contract {
                        path: st.clone(),
                        msg: format!("tensor `{key}` is missing"),
                    })?;
                if &s != shape {
                    return Err(CheckpointError::Contract {
                        path: st.clone(),
                        msg: format!("tensor `{key}` has shape {s:?}, expected {shape:?}"),
                    });
                }
                *dst = d;
            }
        }
        Ok((state, meta))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelConfig;
    use rand::SeedableRng;

    #[test]
    fn matches_hand_computed_first_step() {
        let cfg = ModelConfig {
            vocab_size: 5,
            d_model: 2,
            d_attn: 2,
            n_heads: 1,
            d_ff: 2,
            n_layers: 1,
            context: 3,
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        let mut w = Weights::init(&cfg, &mut rng);
        let before = w.clone();
        let n = w.named().len();
        let trainable: Vec<bool> = (0..n).map(|i| i != 0).collect();
        let mut st = AdamWState::new(&w, &trainable);
        let grads: Vec<Option<Vec<f32>>> = w
            .named()
            .iter()
            .enumerate()
            .map(|(i, (_, _, d))| (i != 0).then(|| vec![0.5; d.len()]))
            .collect();
        let a = AdamWConfig {
            weight_decay: 0.1,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        };
        st.update(&a, 0.01, &mut w, &grads);
        // First step: m̂ = g, v̂ = g², so p ← p(1 − lr·wd) − lr·sign(g).
        let p0 = before.head.bias[0];
        let want = p0 * (1.0 - 0.001) - 0.01 * 0.5 / (0.5 + 1e-8);
        assert!((w.head.bias[0] - want).abs() < 1e-6);
        assert_eq!(w.tok_emb, before.tok_emb);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("epoch_1.safetensors");
        let meta = OptimMeta {
            step: st.step,
            epoch: 1,
            data_seed: 1,
            dropout_seed: 2,
            trainable,
        };
        st.save(&w, &meta, &p).unwrap();
        let (back, m2) = AdamWState::load(&w, &p).unwrap();
        assert_eq!(back, st);
        assert_eq!(m2, meta);
    }
}
