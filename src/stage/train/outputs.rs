//! What a training node writes: each epoch's checkpoint (weights, sidecar, optimiser state), the
//! cumulative history and headline metrics, and this node's speeds as measurements (never in
//! the outputs hash).

use super::inputs::Inputs;
use super::TrainParams;
use crate::model::adamw::optim_paths;
use crate::model::history::History;
use crate::model::train::Trainer;
use crate::model::{Checkpoint, CheckpointMeta};
use crate::stage::StageCtx;
use anyhow::Context;
use std::collections::BTreeMap;
use std::path::Path;

/// The headline metrics of the last epoch (`train_loss`, `val_loss`, `val_perplexity`, `steps`).
pub(super) type Headline = BTreeMap<String, f64>;

/// `checkpoints/…/epoch_N.safetensors` with its sidecar (config, vocabulary hash, the stage's
/// parameters, seed and epoch) and the optimiser state beside it.
pub(super) fn save_checkpoint(
    ctx: &StageCtx,
    p: &TrainParams,
    trainer: &Trainer,
    inp: &Inputs,
    seed: u64,
    epoch: usize,
    headline: &Headline,
) -> anyhow::Result<()> {
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
            config: inp.cfg.clone(),
            vocab_blake3: inp.vocab_hash.clone(),
            epoch,
            metrics: headline.clone(),
            extra,
        },
    }
    .save(&path)?;
    trainer.save_optim(&path)?;
    Ok(())
}

/// The cumulative history (`metrics.csv`, `epochs.csv`, `epochs.json`) and `metrics.json` (the last epoch
/// and its headline metrics).
pub(super) fn write_cumulative(
    ctx: &StageCtx,
    history: &History,
    headline: Headline,
) -> anyhow::Result<()> {
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
    .with_context(|| format!("writing {}", path.display()))
}

/// This node's speeds: `speed.csv` (tokens/s per step) and `measurements.json` (per epoch).
pub(super) fn write_measurements(
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
        "measured_at": crate::experiment::now(),
    });
    let path = dir.join("measurements.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&doc)?)
        .with_context(|| format!("writing {}", path.display()))
}

/// The live metrics of a training node while it runs: `step,epoch,loss` appended to
/// `cache/live/<fingerprint>.csv` (flushed at most every half second) for `pipe exp show`
/// and `pipe plots show`, starting with the steps of the epochs it resumed from, so the file is
/// the whole curve so far; removed when the node ends, however it ends. Never an output, so
/// never part of a fingerprint. Failing to write it only stops the live view.
pub(super) struct Live {
    path: std::path::PathBuf,
    file: Option<std::io::BufWriter<std::fs::File>>,
    flushed: std::time::Instant,
}

impl Live {
    pub(super) fn new(ctx: &StageCtx, resumed: &History) -> Live {
        let path = crate::experiment::live_file(&ctx.cache_dir, &ctx.fingerprint);
        let file = path
            .parent()
            .and_then(|d| std::fs::create_dir_all(d).ok())
            .and_then(|_| std::fs::File::create(&path).ok())
            .map(std::io::BufWriter::new);
        let mut l = Live {
            path,
            file,
            flushed: std::time::Instant::now(),
        };
        l.write("step,epoch,loss\n");
        for row in resumed.step_rows() {
            let f: Vec<&str> = row.splitn(4, ',').collect();
            if let [step, epoch, loss, ..] = f[..] {
                l.write(&format!("{step},{epoch},{loss}\n"));
            }
        }
        l
    }

    fn write(&mut self, line: &str) {
        use std::io::Write;
        if let Some(f) = &mut self.file {
            if f.write_all(line.as_bytes()).is_err() {
                self.file = None;
            } else if self.flushed.elapsed().as_millis() >= 500 {
                let _ = f.flush();
                self.flushed = std::time::Instant::now();
            }
        }
    }

    pub(super) fn step(&mut self, step: u64, epoch: usize, loss: f32) {
        self.write(&format!("{step},{epoch},{loss}\n"));
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.file = None;
        let _ = std::fs::remove_file(&self.path);
    }
}
