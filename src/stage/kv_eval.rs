//! The `kv-eval` stage kind: greedy decoding throughput without and with the KV cache over a
//! sweep of generation lengths, the identical-token check and the largest logit difference.

use super::infer::load_inputs;
use super::{KindInfo, StageCtx, StageKind};
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
struct Params {
    batch: usize,
    prompt_len: usize,
    new_tokens: usize,
    sweep_new_tokens: Vec<usize>,
}

/// One timed run.
struct Row {
    new_tokens: usize,
    mode: &'static str,
    tokens_per_s: f64,
    wall_s: f64,
}

impl StageKind for KvEval {
    fn info(&self) -> KindInfo {
        KindInfo {
            name: "kv-eval",
            version: 3,
            defaults_yaml: include_str!("../../stages/kv-eval.yaml"),
            heavy: true,
            per_epoch: false,
            free_matrix_keys: false,
            needs: &["train", "tokenize"],
            uses_pipeline_name: false,
            reads_measurements: false,
        }
    }

    fn check(&self, params: &serde_json::Value) -> Result<(), String> {
        let p: Params = super::check_as(params)?;
        if p.batch == 0 {
            return Err("batch must be at least 1".into());
        }
        if p.prompt_len == 0 {
            return Err("prompt_len must be at least 1 (it counts <sos>)".into());
        }
        if p.new_tokens == 0 || p.sweep_new_tokens.contains(&0) {
            return Err("new_tokens and sweep_new_tokens must be at least 1".into());
        }
        Ok(())
    }

    fn run(&self, ctx: &StageCtx) -> anyhow::Result<()> {
        let p: Params = ctx.params()?;
        let inp = load_inputs(ctx)?;
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
            "stage `{}`: no validation document has {} tokens for the prompt",
            ctx.id,
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
        let mut bar = ctx.reporter.bar(lengths.len() as u64, "kv-eval");
        with_threads(threads, || -> anyhow::Result<()> {
            let mut dec = Decoder::new(w, p.batch, threads);
            for &n in &lengths {
                let max_new = vec![n; p.batch];
                let headline = n == p.new_tokens;
                // Cached first; at the headline setting keep its logits for the comparison.
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
                let toks = (p.batch * n) as f64;
                rows.push(Row {
                    new_tokens: n,
                    mode: "nocache",
                    tokens_per_s: toks / wall_u.max(1e-9),
                    wall_s: wall_u,
                });
                rows.push(Row {
                    new_tokens: n,
                    mode: "cache",
                    tokens_per_s: toks / wall_c.max(1e-9),
                    wall_s: wall_c,
                });
                ctx.reporter.log(format!(
                    "{n} new tokens × {}: cache {:.1} tok/s, no cache {:.1} tok/s, identical {}",
                    p.batch,
                    toks / wall_c,
                    toks / wall_u,
                    a == b
                ));
                bar.inc(1);
            }
            Ok(())
        })?;
        bar.finish();
        let out = &ctx.out_dir;
        std::fs::create_dir_all(out)?;
        let mut csv = csv::Writer::from_path(out.join("kv_cache.csv"))?;
        csv.write_record([
            "new_tokens",
            "batch",
            "prompt_len",
            "mode",
            "tokens_per_s",
            "wall_s",
        ])?;
        for r in &rows {
            csv.write_record([
                r.new_tokens.to_string(),
                p.batch.to_string(),
                p.prompt_len.to_string(),
                r.mode.to_string(),
                format!("{:.3}", r.tokens_per_s),
                format!("{:.6}", r.wall_s),
            ])?;
        }
        csv.flush()?;
        let at = |mode: &str| {
            rows.iter()
                .find(|r| r.new_tokens == p.new_tokens && r.mode == mode)
                .map(|r| r.tokens_per_s)
                .unwrap_or(f64::NAN)
        };
        let (tc, tu) = (at("cache"), at("nocache"));
        let metrics = serde_json::json!({
            "speedup": tc / tu,
            "tokens_per_s_cache": tc,
            "tokens_per_s_nocache": tu,
            "identical": identical,
            "max_abs_logit_diff": max_diff as f64,
            "batch": p.batch,
            "prompt_len": p.prompt_len,
            "new_tokens": p.new_tokens,
            "threads": threads,
        });
        std::fs::write(
            out.join("metrics.json"),
            serde_json::to_string_pretty(&metrics)?,
        )?;
        let series = |mode: &str, name: &str| crate::plot::Series {
            name: name.to_string(),
            points: rows
                .iter()
                .filter(|r| r.mode == mode)
                .map(|r| (r.new_tokens as f64, r.tokens_per_s))
                .collect(),
        };
        let chart = crate::plot::LineChart {
            title: format!(
                "Greedy decoding throughput (batch {}, prompt {})",
                p.batch, p.prompt_len
            ),
            x_label: "new tokens".into(),
            y_label: "tokens / s".into(),
            series: vec![series("cache", "KV cache"), series("nocache", "no cache")],
            log_y: false,
        };
        crate::plot::line_chart(&out.join("kv_cache.png"), &chart, (900, 560))
            .with_context(|| format!("stage `{}`: kv_cache.png", ctx.id))?;
        if !identical {
            ctx.reporter.log(format!(
                "warning: cached and uncached decoding produced different tokens (max logit diff {max_diff})"
            ));
        }
        Ok(())
    }
}
