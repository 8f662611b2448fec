//! The `kv-eval` stage kind: greedy decoding throughput without and with the KV cache over a
//! sweep of generation lengths, the identical-token check and the largest logit difference.

use super::eval_inputs::load_inputs;
use super::{Kind, KindInfo, StageCtx};
use crate::decode::kv_compare::{compare, KvComparison, Throughput};
use crate::decode::memory::Workload;
use crate::text::SOS;
use anyhow::Context;
use serde::Deserialize;

pub struct KvEval;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    batch: usize,
    prompt_len: usize,
    new_tokens: usize,
    sweep_new_tokens: Vec<usize>,
    repeats: usize,
}

impl Kind for KvEval {
    type Params = Params;

    fn info(&self) -> KindInfo {
        KindInfo {
            heavy: true,
            needs: &["train", "tokenize"],
            ..KindInfo::base("kv-eval", 4, include_str!("../../stages/kv-eval.yaml"))
        }
    }

    fn validate(&self, p: &Params) -> Result<(), String> {
        if p.batch == 0 {
            return Err("batch must be at least 1".into());
        }
        if p.prompt_len == 0 {
            return Err("prompt_len must be at least 1 (it counts <sos>)".into());
        }
        if p.repeats == 0 {
            return Err("repeats must be at least 1".into());
        }
        if p.new_tokens == 0 || p.sweep_new_tokens.contains(&0) {
            return Err("new_tokens and sweep_new_tokens must be at least 1".into());
        }
        Ok(())
    }

    fn run(&self, ctx: &StageCtx, p: &Params) -> anyhow::Result<()> {
        let longest = p
            .sweep_new_tokens
            .iter()
            .fold(p.new_tokens, |a, &b| a.max(b));
        let inp = load_inputs(ctx, |_| {
            Workload::kv_compare(p.batch, p.prompt_len, longest, p.new_tokens)
                .described(format!("batch {}, new tokens up to {longest}", p.batch))
        })?;
        let threads = ctx.threads.max(1);
        // Prompts: <sos> + the first prompt_len − 1 tokens of held-out documents (cycled).
        let docs: Vec<&[u32]> = inp
            .valid
            .docs()
            .filter(|d| d.len() + 1 >= p.prompt_len)
            .take(p.batch)
            .collect();
        anyhow::ensure!(
            !docs.is_empty(),
            "no validation document has {} tokens for the prompt",
            p.prompt_len - 1
        );
        let prompts: Vec<Vec<u32>> = (0..p.batch)
            .map(|b| {
                let mut v = vec![SOS];
                v.extend_from_slice(&docs[b % docs.len()][..p.prompt_len - 1]);
                v
            })
            .collect();
        let refs: Vec<&[u32]> = prompts.iter().map(|v| v.as_slice()).collect();
        let mut lengths = p.sweep_new_tokens.clone();
        lengths.push(p.new_tokens);
        lengths.sort_unstable();
        lengths.dedup();
        let mut bar = ctx
            .reporter
            .bar((lengths.len() * p.repeats) as u64, "kv-eval");
        let cmp = compare(
            &inp.ckpt.weights,
            &refs,
            &lengths,
            p.new_tokens,
            p.repeats,
            threads,
            || bar.inc(1),
        );
        bar.finish();
        write_metrics(ctx, p, &cmp)?;
        write_timings(ctx, p, &lengths, threads, &cmp)
    }
}

/// `metrics.json`, hashed: what is the same in every run (the settings and the checks).
fn write_metrics(ctx: &StageCtx, p: &Params, cmp: &KvComparison) -> anyhow::Result<()> {
    let out = &ctx.out_dir;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let metrics = serde_json::json!({
        "identical": cmp.identical,
        "max_abs_logit_diff": cmp.max_abs_logit_diff as f64,
        "batch": p.batch,
        "prompt_len": p.prompt_len,
        "new_tokens": p.new_tokens,
        "repeats": p.repeats,
    });
    let path = out.join("metrics.json");
    std::fs::write(&path, serde_json::to_string_pretty(&metrics)?)
        .with_context(|| format!("writing {}", path.display()))?;
    if !cmp.identical {
        ctx.reporter.log(format!(
            "warning: cached and uncached decoding produced different tokens (max logit diff {})",
            cmp.max_abs_logit_diff
        ));
    }
    Ok(())
}

/// The measurements: every timing (`kv_cache.csv`), the medians at the headline length
/// (`measurements.json`) and the chart (`kv_cache.png`).
fn write_timings(
    ctx: &StageCtx,
    p: &Params,
    lengths: &[usize],
    threads: usize,
    cmp: &KvComparison,
) -> anyhow::Result<()> {
    let meas = &ctx.meas_dir;
    std::fs::create_dir_all(meas).with_context(|| format!("creating {}", meas.display()))?;
    let mut csv = csv::Writer::from_writer(Vec::new());
    csv.write_record([
        "new_tokens",
        "batch",
        "prompt_len",
        "mode",
        "run",
        "tokens_per_s",
        "wall_s",
    ])?;
    for r in &cmp.runs {
        let toks = (p.batch * r.new_tokens) as f64;
        csv.write_record([
            r.new_tokens.to_string(),
            p.batch.to_string(),
            p.prompt_len.to_string(),
            (if r.cached { "cache" } else { "nocache" }).to_string(),
            r.run.to_string(),
            format!("{:.3}", toks / r.wall_s.max(1e-9)),
            format!("{:.6}", r.wall_s),
        ])?;
    }
    crate::stage::write_file(meas.join("kv_cache.csv"), csv.into_inner()?)?;
    let sc = cmp.throughput(true, lengths, p.batch);
    let su = cmp.throughput(false, lengths, p.batch);
    let at = |s: &Throughput| {
        s.iter()
            .find(|x| x.0 == p.new_tokens as f64)
            .map_or(f64::NAN, |x| x.1)
    };
    let (tc, tu) = (at(&sc), at(&su));
    super::write_measurements(
        ctx,
        &serde_json::json!({
            "speedup": tc / tu,
            "tokens_per_s_cache": tc,
            "tokens_per_s_nocache": tu,
            "threads": threads,
            "repeats": p.repeats,
        }),
    )?;
    ctx.reporter.log(format!(
        "{} new tokens × {}: cache {tc:.1} tok/s, no cache {tu:.1} tok/s (medians of {}), identical {}",
        p.new_tokens, p.batch, p.repeats, cmp.identical
    ));
    let series = |s: &Throughput, name: &str| crate::plot::Series {
        name: name.to_string(),
        points: s.iter().map(|x| (x.0, x.1)).collect(),
        ranges: s.iter().map(|x| (x.2, x.3)).collect(),
    };
    let chart = crate::plot::LineChart {
        title: format!(
            "Greedy decoding throughput (batch {}, prompt {}; median and range of {} runs)",
            p.batch, p.prompt_len, p.repeats
        ),
        x_label: "new tokens".into(),
        y_label: "tokens / s (log scale)".into(),
        series: vec![series(&sc, "KV cache"), series(&su, "no cache")],
        log_y: true,
    };
    let path = meas.join("kv_cache.png");
    crate::plot::line_chart(&path, &chart, (900, 560))
        .with_context(|| format!("drawing {}", path.display()))
}
