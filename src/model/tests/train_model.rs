//! Model and training-library tests on tiny sizes: causality, overfitting one batch, gradient
//! check against finite differences, epoch-by-epoch resume equals one run, checkpoint round trip.

use super::composed::{batch_loss, forward_logits};
use crate::model::adamw::AdamWConfig;
use crate::model::batches::{Examples, Packing};
use crate::model::net::Net;
use crate::model::train::{evaluate, loss_and_grads, Schedule, TrainConfig, TrainError, Trainer};
use crate::model::{Checkpoint, CheckpointMeta, ModelConfig, Precision, Weights};
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;

fn tiny(v: usize) -> ModelConfig {
    ModelConfig {
        vocab_size: v,
        d_model: 16,
        d_attn: 16,
        n_heads: 2,
        d_ff: 24,
        n_layers: 2,
        context: 8,
    }
}

fn weights(cfg: &ModelConfig, seed: u64) -> Weights {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    Weights::init(cfg, &mut rng)
}

fn docs(n: usize, v: u32, seed: u64) -> Vec<Vec<u32>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let len = rng.gen_range(3..14);
            (0..len).map(|_| rng.gen_range(4..v)).collect()
        })
        .collect()
}

fn train_cfg(freeze: bool) -> TrainConfig {
    TrainConfig {
        batch_size: 4,
        lr: 3e-3,
        adamw: AdamWConfig {
            weight_decay: 0.01,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        },
        grad_clip: Some(1.0),
        warmup_steps: 2,
        schedule: Schedule::Cosine,
        total_steps: 30,
        freeze_embeddings: freeze,
        dropout: 0.1,
        data_seed: 11,
        dropout_seed: 12,
        precision: Precision::F32,
        divergence: Some(3.0),
    }
}

#[test]
fn causal_later_tokens_do_not_change_earlier_logits() {
    let cfg = tiny(20);
    let w = weights(&cfg, 1);
    let a = forward_logits(&w, &[0, 5, 6, 7, 8, 9]);
    let b = forward_logits(&w, &[0, 5, 6, 7, 13, 4]);
    let v = cfg.vocab_size;
    assert_eq!(a.len(), 6 * v);
    assert_eq!(&a[..4 * v], &b[..4 * v]);
    assert_ne!(&a[4 * v..5 * v], &b[4 * v..5 * v]);
    // A shorter sequence gives the same logits as the prefix of a longer one.
    let c = forward_logits(&w, &[0, 5, 6]);
    for (x, y) in c.iter().zip(&a[..3 * v]) {
        assert!((x - y).abs() < 1e-5);
    }
}

#[test]
fn loss_falls_when_overfitting_one_batch() {
    let cfg = tiny(24);
    let d = docs(4, 24, 2);
    let ex = Examples::build(
        d.iter().map(|x| x.as_slice()),
        cfg.context,
        Packing::Truncate,
    );
    let mut tc = train_cfg(false);
    tc.dropout = 0.0;
    tc.schedule = Schedule::Constant;
    tc.warmup_steps = 0;
    tc.lr = 1e-2;
    let mut tr = Trainer::new(weights(&cfg, 3), tc);
    let before = evaluate(&tr.weights, &ex, 4, Precision::F32).loss;
    for _ in 0..40 {
        tr.run_epoch(&ex, &mut |_| {}).unwrap();
    }
    let after = evaluate(&tr.weights, &ex, 4, Precision::F32).loss;
    assert!(after < 0.3 * before, "loss {before} -> {after}");
}

/// Gradient of every tensor of every layer against central differences on a few entries.
#[test]
fn gradients_match_finite_differences() {
    let cfg = ModelConfig {
        vocab_size: 12,
        d_model: 8,
        d_attn: 8,
        n_heads: 2,
        d_ff: 10,
        n_layers: 2,
        context: 5,
    };
    let mut w = weights(&cfg, 4);
    // Non-trivial LayerNorm parameters so their gradients are generic.
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    for b in &mut w.blocks {
        for x in b.ln1.weight.iter_mut().chain(b.ln2.bias.iter_mut()) {
            *x += rng.gen_range(-0.3..0.3);
        }
    }
    let inputs = vec![0, 4, 5, 6, 7, 0, 8, 9, 10, 1];
    let targets = vec![4, 5, 6, 7, 1, 8, 9, 10, 1, 2];
    let dev = dfdx::prelude::Cpu::default();
    let net = Net::from_weights(&w, &dev);
    let (fused, grads) = loss_and_grads(&net, &inputs, &targets, 5, true, None);
    let composed = batch_loss(&net, &inputs, &targets, 5);
    assert!(
        (fused - composed).abs() < 1e-5,
        "fused {fused} vs composed {composed}"
    );
    let names: Vec<String> = w.named().into_iter().map(|(n, _, _)| n).collect();
    let h = 1e-2f32;
    let mut checked = 0;
    for (slot, name) in names.iter().enumerate() {
        let g = grads[slot].as_ref().unwrap();
        // The three largest-magnitude entries of this tensor.
        let mut idx: Vec<usize> = (0..g.len()).collect();
        idx.sort_by(|&a, &b| g[b].abs().partial_cmp(&g[a].abs()).unwrap());
        for &i in idx.iter().take(3) {
            let loss_at = |delta: f32| {
                let mut w2 = w.clone();
                w2.slots_mut()[slot][i] += delta;
                let n2 = Net::from_weights(&w2, &dev);
                batch_loss(&n2, &inputs, &targets, 5) as f64
            };
            let fd = (loss_at(h) - loss_at(-h)) / (2.0 * h as f64);
            let an = g[i] as f64;
            let err = (fd - an).abs();
            assert!(
                err <= 0.05 * an.abs().max(fd.abs()) + 2e-4,
                "{name}[{i}]: analytic {an} vs finite difference {fd}"
            );
            checked += 1;
        }
    }
    assert!(checked > 60);
}

fn weight_bytes(w: &Weights) -> Vec<u8> {
    w.named()
        .iter()
        .flat_map(|(_, _, d)| d.iter().flat_map(|x| x.to_le_bytes()))
        .collect()
}

#[test]
fn three_epochs_as_three_resumed_runs_equal_one_run() {
    for freeze in [true, false] {
        let cfg = tiny(30);
        let d = docs(22, 30, 6);
        let ex = Examples::build(d.iter().map(|x| x.as_slice()), cfg.context, Packing::Pack);
        let w0 = weights(&cfg, 7);
        let mut one = Trainer::new(w0.clone(), train_cfg(freeze));
        for _ in 0..3 {
            one.run_epoch(&ex, &mut |_| {}).unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let mut weights = w0;
        for e in 1..=3usize {
            let mut tr = if e == 1 {
                Trainer::new(weights, train_cfg(freeze))
            } else {
                let p = dir.path().join(format!("epoch_{}.safetensors", e - 1));
                let ck = Checkpoint::load(&p).unwrap();
                Trainer::resume(ck.weights, train_cfg(freeze), &p).unwrap()
            };
            assert_eq!(tr.epoch, e - 1);
            let stats = tr.run_epoch(&ex, &mut |_| {}).unwrap();
            assert_eq!(stats.epoch, e);
            let p = dir.path().join(format!("epoch_{e}.safetensors"));
            Checkpoint {
                weights: tr.weights.clone(),
                meta: CheckpointMeta {
                    config: cfg.clone(),
                    vocab_blake3: "x".into(),
                    epoch: e,
                    metrics: BTreeMap::new(),
                    extra: serde_json::Value::Null,
                },
            }
            .save(&p)
            .unwrap();
            tr.save_optim(&p).unwrap();
            weights = tr.weights;
        }
        assert_eq!(one.opt.step, 3 * ex.n_batches(4) as u64);
        assert!(
            weight_bytes(&weights) == weight_bytes(&one.weights),
            "freeze={freeze}"
        );
        // And training actually changed the weights.
        assert!(weight_bytes(&weights) != weight_bytes(&weights_init(&cfg)));
    }
}

fn weights_init(cfg: &ModelConfig) -> Weights {
    weights(cfg, 7)
}

#[test]
fn net_round_trips_weights_and_checkpoint() {
    let cfg = tiny(15);
    let w = weights(&cfg, 8);
    let dev = dfdx::prelude::Cpu::default();
    assert_eq!(Net::from_weights(&w, &dev).to_weights(), w);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("epoch_1.safetensors");
    let ck = Checkpoint {
        weights: w.clone(),
        meta: CheckpointMeta {
            config: cfg,
            vocab_blake3: "abc".into(),
            epoch: 1,
            metrics: BTreeMap::new(),
            extra: serde_json::json!({"lr": 0.1}),
        },
    };
    ck.save(&p).unwrap();
    let back = Checkpoint::load(&p).unwrap();
    assert_eq!(
        forward_logits(&back.weights, &[0, 4, 5]),
        forward_logits(&w, &[0, 4, 5])
    );
}

#[test]
fn absurd_learning_rate_stops_with_step() {
    let cfg = tiny(24);
    let d = docs(16, 24, 9);
    let ex = Examples::build(
        d.iter().map(|x| x.as_slice()),
        cfg.context,
        Packing::Truncate,
    );
    let mut tc = train_cfg(false);
    tc.lr = 1e30;
    tc.grad_clip = None;
    tc.warmup_steps = 0;
    tc.schedule = Schedule::Constant;
    let mut tr = Trainer::new(weights(&cfg, 10), tc);
    let mut res = Ok(());
    for _ in 0..5 {
        if let Err(e) = tr.run_epoch(&ex, &mut |_| {}) {
            res = Err(e);
            break;
        }
    }
    let msg = res.unwrap_err().to_string();
    assert!(msg.contains("at step"), "{msg}");
}

/// Same inputs give byte-identical weights whatever the thread count.
#[test]
fn training_is_deterministic_across_thread_counts() {
    let cfg = ModelConfig {
        vocab_size: 300,
        d_model: 64,
        d_attn: 64,
        n_heads: 4,
        d_ff: 96,
        n_layers: 1,
        context: 16,
    };
    let d = docs(24, 300, 13);
    let ex = Examples::build(d.iter().map(|x| x.as_slice()), cfg.context, Packing::Pack);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let mut tr = Trainer::new(weights(&cfg, 14), train_cfg(true));
        pool.install(|| tr.run_epoch(&ex, &mut |_| {}).unwrap());
        weight_bytes(&tr.weights)
    };
    let one = run(1);
    assert!(one == run(2), "weights differ between 1 and 2 threads");
    assert!(one == run(1), "weights differ between two runs");
}

/// The fused output layer + loss equals the composed dfdx loss at a seed-sized vocabulary.
#[test]
fn fused_loss_matches_composed_at_large_vocabulary() {
    let mut cfg = tiny(15487);
    cfg.n_layers = 1;
    let w = weights(&cfg, 21);
    let mut rng = rand::rngs::StdRng::seed_from_u64(22);
    let t = cfg.context;
    let inputs: Vec<u32> = (0..4 * t).map(|_| rng.gen_range(4..15487)).collect();
    let mut targets: Vec<u32> = (0..4 * t).map(|_| rng.gen_range(4..15487)).collect();
    targets[3] = 2;
    let dev = dfdx::prelude::Cpu::default();
    let net = Net::from_weights(&w, &dev);
    let (fused, _) = loss_and_grads(&net, &inputs, &targets, t, false, None);
    let composed = batch_loss(&net, &inputs, &targets, t);
    assert!(
        (fused - composed).abs() < 1e-4,
        "fused {fused} vs composed {composed}"
    );
}

/// Issue 10 item 6: an update that makes the weights non-finite on the last step of an epoch
/// (a finite loss, so no later step would see it) fails the epoch naming epoch and step.
#[test]
fn non_finite_weights_on_the_last_step_fail_the_epoch() {
    let cfg = tiny(24);
    let d = docs(16, 24, 9);
    let ex = Examples::build(
        d.iter().map(|x| x.as_slice()),
        cfg.context,
        Packing::Truncate,
    );
    let mut tc = train_cfg(true);
    // One step per epoch, so the diverging step is the last one; lr·|update| overflows f32.
    tc.batch_size = 64;
    tc.lr = f32::MAX;
    tc.grad_clip = None;
    tc.warmup_steps = 0;
    tc.schedule = Schedule::Constant;
    let mut tr = Trainer::new(weights(&cfg, 10), tc);
    let mut seen = Vec::new();
    let err = tr
        .run_epoch(&ex, &mut |s| seen.push((s.loss, s.in_epoch)))
        .unwrap_err();
    assert!(seen.is_empty(), "no step is reported as done: {seen:?}");
    match &err {
        TrainError::NonFiniteWeights { step, epoch, .. } => assert_eq!((*step, *epoch), (1, 1)),
        other => panic!("unexpected error: {other}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("step 1") && msg.contains("epoch 1"), "{msg}");
    assert_eq!(tr.epoch, 0, "the epoch is not counted as done");
}

/// A weight the forward pass never reads (the embedding row of a token absent from the data)
/// keeps the loss finite; the check of the updated weights still stops the epoch.
#[test]
fn a_poisoned_unused_weight_is_caught_after_the_update() {
    let cfg = tiny(24);
    let d = docs(16, 24, 9);
    let ex = Examples::build(
        d.iter().map(|x| x.as_slice()),
        cfg.context,
        Packing::Truncate,
    );
    let mut w = weights(&cfg, 10);
    // Token 3 never occurs (documents use ids 4.., specials are 0–2).
    w.tok_emb[3 * cfg.d_model] = f32::INFINITY;
    let mut tr = Trainer::new(w, train_cfg(false));
    let err = tr.run_epoch(&ex, &mut |_| {}).unwrap_err();
    match err {
        TrainError::NonFiniteWeights { tensor, epoch, .. } => {
            assert_eq!(tensor, "tok_emb.weight");
            assert_eq!(epoch, 1);
        }
        other => panic!("unexpected error: {other}"),
    }
}

/// A non-finite validation loss is an error naming the epoch and the step.
#[test]
fn non_finite_validation_loss_is_an_error() {
    let cfg = tiny(24);
    let d = docs(8, 24, 9);
    let ex = Examples::build(
        d.iter().map(|x| x.as_slice()),
        cfg.context,
        Packing::Truncate,
    );
    let mut w = weights(&cfg, 10);
    w.head.bias[5] = f32::NAN;
    let tr = Trainer::new(w, train_cfg(false));
    let err = tr.validate(&ex, 4).unwrap_err();
    assert!(
        matches!(
            err,
            TrainError::NonFiniteValidation {
                step: 0,
                epoch: 0,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        tr.validate(&Examples::build([], cfg.context, Packing::Truncate), 4)
            .is_ok(),
        "no validation tokens is not a divergence"
    );
}
