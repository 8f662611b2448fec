//! The `plot` stage kind: reads the last train epoch's cumulative `metrics.csv` and `epochs.csv`
//! and draws `training_curves.png` / `.svg` (training loss per step, raw and smoothed; validation
//! loss and perplexity per epoch).

use super::{Kind, KindInfo, StageCtx};
use crate::plot::{smooth_ema, training_curves, EpochPoint, TrainingCurves};
use anyhow::Context;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

pub struct Plot;

/// Parameters (defaults in `stages/plot.yaml`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlotParams {
    /// EMA weight of the history for the smoothed training loss, in [0, 1).
    pub smoothing: f64,
    pub width: u32,
    pub height: u32,
}

impl PlotParams {
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..1.0).contains(&self.smoothing) {
            return Err(format!(
                "`smoothing` must be in [0, 1) (0 = none), got {}",
                self.smoothing
            ));
        }
        for (key, v) in [("width", self.width), ("height", self.height)] {
            if !(200..=8000).contains(&v) {
                return Err(format!(
                    "`{key}` must be between 200 and 8000 pixels, got {v}"
                ));
            }
        }
        Ok(())
    }
}

/// One row of train's `metrics.csv`.
#[derive(Debug, Deserialize)]
struct StepRow {
    step: u64,
    epoch: u32,
    train_loss: f64,
    #[allow(dead_code)]
    lr: f64,
}

/// One row of train's `epochs.csv`.
#[derive(Debug, Deserialize)]
struct EpochRow {
    epoch: u32,
    #[allow(dead_code)]
    train_loss: f64,
    val_loss: f64,
    val_perplexity: f64,
}

fn read_csv<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<Vec<T>> {
    let mut rdr =
        csv::Reader::from_path(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut rows = Vec::new();
    for (i, r) in rdr.deserialize().enumerate() {
        rows.push(r.with_context(|| format!("{}: bad row {}", path.display(), i + 2))?);
    }
    Ok(rows)
}

impl Kind for Plot {
    type Params = PlotParams;

    fn info(&self) -> KindInfo {
        KindInfo {
            needs: &["train"],
            ..KindInfo::base("plot", 3, include_str!("../../stages/plot.yaml"))
        }
    }

    fn validate(&self, p: &PlotParams) -> Result<(), String> {
        p.validate()
    }

    fn run(&self, ctx: &StageCtx, p: &PlotParams) -> anyhow::Result<()> {
        let train = ctx.one_upstream("train")?;
        let steps: Vec<StepRow> = read_csv(&train.results.join("metrics.csv"))
            .with_context(|| format!("training metrics of `{}`", train.id))?;
        let epochs: Vec<EpochRow> = read_csv(&train.results.join("epochs.csv"))
            .with_context(|| format!("epoch table of `{}`", train.id))?;
        if steps.is_empty() || epochs.is_empty() {
            anyhow::bail!(
                "`{}` logged no training steps or no epochs (in {})",
                train.id,
                train.results.display()
            );
        }
        let curves = curves_from(&train.stage, &steps, &epochs, p.smoothing);
        let size = (p.width, p.height);
        for name in ["training_curves.png", "training_curves.svg"] {
            let path = ctx.out_dir.join(name);
            training_curves(&path, &curves, size).with_context(|| format!("drawing {name}"))?;
        }
        ctx.reporter.log(format!(
            "training curves of {} steps over {} epochs written",
            steps.len(),
            epochs.len()
        ));
        Ok(())
    }
}

/// Builds the figure's data: the validation points sit at the last step of their epoch (or,
/// when an epoch logged no step, at an evenly spaced estimate).
fn curves_from(
    stage: &str,
    steps: &[StepRow],
    epochs: &[EpochRow],
    smoothing: f64,
) -> TrainingCurves {
    let train_loss: Vec<(f64, f64)> = steps
        .iter()
        .map(|r| (r.step as f64, r.train_loss))
        .collect();
    let smoothed = if smoothing > 0.0 {
        let ys: Vec<f64> = steps.iter().map(|r| r.train_loss).collect();
        train_loss
            .iter()
            .map(|p| p.0)
            .zip(smooth_ema(&ys, smoothing))
            .collect()
    } else {
        Vec::new()
    };
    let mut last_step: BTreeMap<u32, u64> = BTreeMap::new();
    for r in steps {
        let e = last_step.entry(r.epoch).or_insert(r.step);
        *e = (*e).max(r.step);
    }
    let max_step = steps.iter().map(|r| r.step).max().unwrap_or(0) as f64;
    let n_epochs = epochs.iter().map(|e| e.epoch).max().unwrap_or(1).max(1) as f64;
    let epochs = epochs
        .iter()
        .map(|e| EpochPoint {
            epoch: e.epoch,
            end_step: last_step
                .get(&e.epoch)
                .map(|s| *s as f64)
                .unwrap_or(max_step * e.epoch as f64 / n_epochs),
            val_loss: e.val_loss,
            val_perplexity: e.val_perplexity,
        })
        .collect();
    TrainingCurves {
        title: format!("Training curves ({stage})"),
        train_loss,
        smoothed,
        smoothed_label: format!("EMA {smoothing}"),
        epochs,
    }
}
