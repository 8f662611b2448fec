//! The `train` stage kind: one epoch of language-model training per DAG node, glue over
//! `crate::model::train`. Reads the tokenize upstream (vocabulary, train/valid ids), the embed
//! upstream (`tok_emb.weight`), and for epoch N > 1 the previous epoch's checkpoint and
//! optimiser state; writes `epoch_N.safetensors` + `.json` + `.optim.*` and cumulative metrics.

use super::{Kind, KindInfo, StageCtx};
use crate::model::history::EpochRow;
use anyhow::Context;
use inputs::Inputs;
use outputs::Headline;

mod inputs;
mod outputs;
mod params;
mod resume;

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
    let inp = Inputs::load(ctx, p)?;
    let seed = p.seed.unwrap_or_else(|| ctx.stage_seed_for("train"));
    let tcfg = p.train_config(inp.train_ex.n_batches(p.batch_size), seed);
    let epochs: Vec<usize> = match p.epoch {
        Some(e) => vec![e],
        None => (1..=p.epochs).collect(),
    };
    let (mut trainer, mut history) = resume::start(ctx, &inp, tcfg, seed, epochs[0])?;

    let mut headline = Headline::new();
    // Measurements of this node only (speeds differ between two runs): never in the outputs.
    let mut speed_rows: Vec<String> = Vec::new();
    let mut epoch_speed: Vec<serde_json::Value> = Vec::new();
    let mut live = outputs::Live::new(ctx, &history);
    for epoch in epochs {
        let started = std::time::Instant::now();
        let n_batches = inp.train_ex.n_batches(p.batch_size);
        let mut bar = ctx
            .reporter
            .bar(n_batches as u64, &format!("epoch {epoch}"));
        let stats = trainer
            .run_epoch(&inp.train_ex, &mut |s| {
                bar.inc(1);
                bar.set_message(format!("loss {:.4} {:.0} tok/s", s.loss, s.tokens_per_s));
                history.push_step(s.step, s.epoch, s.loss, s.lr);
                live.step(s.step, s.epoch, s.loss);
                speed_rows.push(format!("{},{},{:.1}", s.step, s.epoch, s.tokens_per_s));
            })
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        bar.finish();
        let val = trainer
            .validate(&inp.valid_ex, p.eval_batch_size)
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
        headline = Headline::from([
            ("train_loss".to_string(), stats.train_loss),
            ("val_loss".to_string(), val.loss),
            ("val_perplexity".to_string(), val.perplexity),
            ("steps".to_string(), stats.steps as f64),
        ]);
        outputs::save_checkpoint(ctx, p, &trainer, &inp, seed, epoch, &headline)?;
    }
    outputs::write_cumulative(ctx, &history, headline)?;
    outputs::write_measurements(&ctx.meas_dir, &speed_rows, &epoch_speed)
}
