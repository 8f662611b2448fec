//! The `train` stage kind: one epoch of language-model training per DAG node, glue over
//! `crate::model::train`. Reads the tokenize upstream (vocabulary, train/valid ids), the embed
//! upstream (`tok_emb.weight`), and for epoch N > 1 the previous epoch's checkpoint and
//! optimiser state; writes `epoch_N.safetensors` + `.json` + `.optim.*` and cumulative metrics.

use super::{Kind, KindInfo, StageCtx, Upstream};
use crate::model::adamw::optim_paths;
use crate::model::batches::Examples;
use crate::model::checkpoint::read_tensors;
use crate::model::history::{EpochRow, History};
use crate::model::train::{mix, Trainer};
use crate::model::{Checkpoint, CheckpointMeta, ModelConfig, Weights};
use crate::text::{TokenFile, Vocab};
use anyhow::{bail, Context};
use rand::SeedableRng;
use std::collections::BTreeMap;
use std::path::Path;

mod params;

pub use params::TrainParams;

pub struct Train;

impl Kind for Train {
    type Params = TrainParams;

    fn info(&self) -> KindInfo {
        KindInfo {
            heavy: true,
            per_epoch: true,
            needs: &["tokenize"],
            ..KindInfo::base("train", 3, include_str!("../../../stages/train.yaml"))
        }
    }

    fn validate(&self, p: &TrainParams) -> Result<(), String> {
        p.validate()
    }

    fn run(&self, ctx: &StageCtx, p: &TrainParams) -> anyhow::Result<()> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(ctx.threads.max(1))
            .build()
            .context("building the thread pool")?;
        pool.install(|| run(ctx, p))
    }
}

fn run(ctx: &StageCtx, p: &TrainParams) -> anyhow::Result<()> {
    // Inputs: vocabulary and token ids.
    let tok = ctx.one_upstream("tokenize")?;
    let vocab_path = tok.results.join("vocab.json");
    let vocab_bytes =
        std::fs::read(&vocab_path).with_context(|| format!("reading {}", vocab_path.display()))?;
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
                "training this model needs about {:.1} GiB (parameters, AdamW moments, gradients and the activations of batch_size {} × context {}), but the machine has {:.1} GiB available; lower `context`, `batch_size` or the model's size",
                need as f64 / (1u64 << 30) as f64,
                p.batch_size,
                p.context,
                avail as f64 / (1u64 << 30) as f64
            );
        }
    }
    let load_ids = |name: &str| {
        let base = tok.results.join(name);
        TokenFile::load(&base).with_context(|| format!("reading {}.ids/.offsets", base.display()))
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

    let seed = p.seed.unwrap_or_else(|| ctx.stage_seed_for("train"));
    let tcfg = p.train_config(train_ex.n_batches(p.batch_size), seed);
    let epochs: Vec<usize> = match p.epoch {
        Some(e) => vec![e],
        None => (1..=p.epochs).collect(),
    };
    let first = epochs[0];

    // Start: fresh weights (with the embed stage's vectors) or the previous epoch's state.
    let (mut trainer, mut history) = if first == 1 {
        let mut rng = rand::rngs::StdRng::seed_from_u64(mix(seed, 1));
        let mut w = Weights::init(&cfg, &mut rng);
        if let Some(emb) = ctx.upstream_of_kind("embed").next() {
            w.tok_emb = load_embedding(emb, &cfg)?;
        }
        (Trainer::new(w, tcfg), History::default())
    } else {
        let prev = previous_epoch(ctx, first - 1)?;
        let path = prev
            .checkpoints
            .join(format!("epoch_{}.safetensors", first - 1));
        let ck = Checkpoint::load(&path)?;
        if ck.meta.vocab_blake3 != vocab_hash {
            bail!(
                "{}: checkpoint was trained with a different vocabulary (blake3 {}) than {} (blake3 {vocab_hash}); refusing to continue",
                path.display(),
                ck.meta.vocab_blake3,
                vocab_path.display()
            );
        }
        if ck.meta.config != cfg {
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

    let mut headline = BTreeMap::new();
    // Measurements of this node only (speeds differ between two runs): never in the outputs.
    let mut speed_rows: Vec<String> = Vec::new();
    let mut epoch_speed: Vec<serde_json::Value> = Vec::new();
    for epoch in epochs {
        let started = std::time::Instant::now();
        let mut bar = ctx.reporter.bar(
            train_ex.n_batches(p.batch_size) as u64,
            &format!("epoch {epoch}"),
        );
        let stats = trainer
            .run_epoch(&train_ex, &mut |s| {
                bar.inc(1);
                bar.set_message(format!("loss {:.4} {:.0} tok/s", s.loss, s.tokens_per_s));
                history.push_step(s.step, s.epoch, s.loss, s.lr);
                speed_rows.push(format!("{},{},{:.1}", s.step, s.epoch, s.tokens_per_s));
            })
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        bar.finish();
        let val = trainer
            .validate(&valid_ex, p.eval_batch_size)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        epoch_speed.push(serde_json::json!({
            "epoch": epoch,
            "tokens_per_s": stats.tokens_per_s,
            "wall_s": started.elapsed().as_secs_f64(),
        }));
        ctx.reporter.log(format!(
            "epoch {epoch}: train loss {:.4}, val loss {:.4}, val perplexity {:.3}, {:.0} tok/s",
            stats.train_loss, val.loss, val.perplexity, stats.tokens_per_s
        ));
        history.epochs.push(EpochRow {
            epoch,
            train_loss: stats.train_loss,
            val_loss: val.loss,
            val_perplexity: val.perplexity,
        });
        headline = BTreeMap::from([
            ("train_loss".to_string(), stats.train_loss),
            ("val_loss".to_string(), val.loss),
            ("val_perplexity".to_string(), val.perplexity),
            ("steps".to_string(), stats.steps as f64),
        ]);
        let path = ctx.ckpt_dir.join(format!("epoch_{epoch}.safetensors"));
        let mut extra = serde_json::to_value(p)?;
        extra["seed"] = serde_json::json!(seed);
        extra["epoch"] = serde_json::json!(epoch);
        extra["optimizer_state"] = serde_json::json!(optim_paths(&path)
            .0
            .file_name()
            .map(|f| f.to_string_lossy().into_owned()));
        Checkpoint {
            weights: trainer.weights.clone(),
            meta: CheckpointMeta {
                config: cfg.clone(),
                vocab_blake3: vocab_hash.clone(),
                epoch,
                metrics: headline.clone(),
                extra,
            },
        }
        .save(&path)?;
        trainer.save_optim(&path)?;
    }

    // Cumulative outputs.
    std::fs::create_dir_all(&ctx.out_dir)
        .with_context(|| format!("creating {}", ctx.out_dir.display()))?;
    history.save(&ctx.out_dir)?;
    let last = history.epochs.last().map(|r| r.epoch).unwrap_or(0);
    let mut m = serde_json::Map::new();
    m.insert("epoch".into(), serde_json::json!(last));
    for (k, v) in headline {
        let v = if k == "steps" {
            serde_json::json!(v as u64)
        } else {
            serde_json::json!(v)
        };
        m.insert(k, v);
    }
    let path = ctx.out_dir.join("metrics.json");
    std::fs::write(
        &path,
        serde_json::to_vec_pretty(&serde_json::Value::Object(m))?,
    )
    .with_context(|| format!("writing {}", path.display()))?;
    write_measurements(&ctx.meas_dir, &speed_rows, &epoch_speed)
}

/// This node's speeds: `speed.csv` (tokens/s per step) and `measurements.json` (per epoch).
fn write_measurements(
    dir: &Path,
    steps: &[String],
    epochs: &[serde_json::Value],
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut csv = String::from("step,epoch,tokens_per_s\n");
    for r in steps {
        csv.push_str(r);
        csv.push('\n');
    }
    let path = dir.join("speed.csv");
    std::fs::write(&path, csv).with_context(|| format!("writing {}", path.display()))?;
    let last = epochs.last().cloned().unwrap_or(serde_json::Value::Null);
    let doc = serde_json::json!({
        "tokens_per_s": last.get("tokens_per_s"),
        "epochs": epochs,
    });
    let path = dir.join("measurements.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&doc)?)
        .with_context(|| format!("writing {}", path.display()))
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

/// `tok_emb.weight` of an embed stage, checked against the model shape.
fn load_embedding(emb: &Upstream, cfg: &ModelConfig) -> anyhow::Result<Vec<f32>> {
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
