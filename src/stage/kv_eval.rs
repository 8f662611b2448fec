//! The `kv-eval` stage kind: greedy decoding throughput without and with the KV cache over a
//! sweep of generation lengths, the identical-token check and the largest logit difference.

use super::eval_inputs::load_inputs;
use super::{Kind, KindInfo, StageCtx};
use crate::decode::{
    generate_cached, generate_uncached, with_threads, Decoder, GenOptions, Sampler, SamplerConfig,
};
use crate::text::SOS;
use anyhow::Context;
use serde::Deserialize;
use std::time::Instant;

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

/// One timed run.
struct Row {
    new_tokens: usize,
    mode: &'static str,
    /// 1-based repeat index.
    run: usize,
    wall_s: f64,
}

/// Median of sorted, non-empty values.
fn median(v: &[f64]) -> f64 {
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

impl Kind for KvEval {
    type Params = Params;

    fn info(&self) -> KindInfo {
        KindInfo {
            heavy: true,
            needs: &["train", "tokenize"],
            ..KindInfo::base("kv-eval", 3, include_str!("../../stages/kv-eval.yaml"))
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
        let inp = load_inputs(ctx, |_| p.batch)?;
        let w = &inp.ckpt.weights;
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
        let opts = GenOptions {
            stop_at_eos: false,
            banned: vec![],
        };
        let mut rows: Vec<Row> = Vec::new();
        let mut identical = true;
        let mut max_diff = 0.0f32;
        let mut bar = ctx
            .reporter
            .bar((lengths.len() * p.repeats) as u64, "kv-eval");
        with_threads(threads, || {
            let mut dec = Decoder::new(w, p.batch, threads);
            for &n in &lengths {
                let max_new = vec![n; p.batch];
                for run in 0..p.repeats {
                    // The comparison of tokens and logits is made once, at the headline setting.
                    let headline = n == p.new_tokens && run == 0;
                    let mut kept: Vec<Vec<f32>> = Vec::new();
                    let mut keep = |_: usize, l: &[f32]| kept.push(l.to_vec());
                    let mut s = Sampler::new(SamplerConfig::greedy(), 0);
                    let t0 = Instant::now();
                    let a = generate_cached(
                        &mut dec,
                        &refs,
                        &max_new,
                        &mut s,
                        &opts,
                        if headline { Some(&mut keep) } else { None },
                    );
                    let wall_c = t0.elapsed().as_secs_f64();
                    let mut diff = 0.0f32;
                    let mut cmp = |step: usize, l: &[f32]| {
                        if let Some(k) = kept.get(step) {
                            for (x, y) in k.iter().zip(l) {
                                diff = diff.max((x - y).abs());
                            }
                        }
                    };
                    let t0 = Instant::now();
                    let b = generate_uncached(
                        w,
                        &refs,
                        &max_new,
                        &mut s,
                        &opts,
                        threads,
                        if headline { Some(&mut cmp) } else { None },
                    );
                    let wall_u = t0.elapsed().as_secs_f64();
                    if headline {
                        max_diff = max_diff.max(diff);
                    }
                    identical &= a == b;
                    for (mode, wall) in [("nocache", wall_u), ("cache", wall_c)] {
                        rows.push(Row {
                            new_tokens: n,
                            mode,
                            run: run + 1,
                            wall_s: wall,
                        });
                    }
                    bar.inc(1);
                }
            }
        });
        bar.finish();
        let out = &ctx.out_dir;
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        // Hashed: what is the same in every run (the settings and the correctness checks).
        let metrics = serde_json::json!({
            "identical": identical,
            "max_abs_logit_diff": max_diff as f64,
            "batch": p.batch,
            "prompt_len": p.prompt_len,
            "new_tokens": p.new_tokens,
            "repeats": p.repeats,
        });
        let path = out.join("metrics.json");
        std::fs::write(&path, serde_json::to_string_pretty(&metrics)?)
            .with_context(|| format!("writing {}", path.display()))?;
        // Measurements: every timing, their medians, and the chart.
        let toks = |n: usize| (p.batch * n) as f64;
        let meas = &ctx.meas_dir;
        std::fs::create_dir_all(meas).with_context(|| format!("creating {}", meas.display()))?;
        let path = meas.join("kv_cache.csv");
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
        for r in &rows {
            csv.write_record([
                r.new_tokens.to_string(),
                p.batch.to_string(),
                p.prompt_len.to_string(),
                r.mode.to_string(),
                r.run.to_string(),
                format!("{:.3}", toks(r.new_tokens) / r.wall_s.max(1e-9)),
                format!("{:.6}", r.wall_s),
            ])?;
        }
        crate::stage::write_file(&path, csv.into_inner()?)?;
        // (new tokens, median, min, max) tokens/s of one mode.
        let stats = |mode: &str| -> Vec<(f64, f64, f64, f64)> {
            lengths
                .iter()
                .map(|&n| {
                    let mut v: Vec<f64> = rows
                        .iter()
                        .filter(|r| r.mode == mode && r.new_tokens == n)
                        .map(|r| toks(n) / r.wall_s.max(1e-9))
                        .collect();
                    v.sort_by(f64::total_cmp);
                    (n as f64, median(&v), v[0], v[v.len() - 1])
                })
                .collect()
        };
        let (sc, su) = (stats("cache"), stats("nocache"));
        let at = |s: &[(f64, f64, f64, f64)]| {
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
            "{} new tokens × {}: cache {tc:.1} tok/s, no cache {tu:.1} tok/s (medians of {}), identical {identical}",
            p.new_tokens, p.batch, p.repeats
        ));
        let series = |s: &[(f64, f64, f64, f64)], name: &str| crate::plot::Series {
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
            .with_context(|| format!("drawing {}", path.display()))?;
        if !identical {
            ctx.reporter.log(format!(
                "warning: cached and uncached decoding produced different tokens (max logit diff {max_diff})"
            ));
        }
        Ok(())
    }
}
