//! The `beam-eval` stage kind: continuations of held-out prompts by beam search of one width
//! (or, with `beam_width: 0`, by sampling), their BLEU against the held-out continuation
//! (sacreBLEU corpus BLEU and the seed's sentence BLEU) and the decoding throughput.

use super::eval_inputs::{load_inputs, md_cell, pick_examples, prompt_seed, text_of, Example};
use super::{Kind, KindInfo, StageCtx};
use crate::decode::memory::Workload;
use crate::decode::{
    beam_search, generate_cached, with_threads, BeamConfig, Decoder, GenOptions, Sampler,
    SamplerConfig,
};
use crate::text::{EOS, PAD, SOS};
use serde::Deserialize;
use std::time::Instant;

pub struct BeamEval;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    beam_width: usize,
    prompts: usize,
    prompt_len: usize,
    max_new: usize,
    alpha: f32,
    temperature: f32,
}

impl Params {
    /// What one prompt's decoding holds at once (checked against the available memory).
    fn workload(&self) -> Workload {
        let w = match self.beam_width {
            0 => Workload::sample(1, self.max_new),
            k => Workload::beam(k, self.max_new),
        };
        w.described(format!(
            "beam_width {}, max_new {}",
            self.beam_width, self.max_new
        ))
    }
}

/// Continues every prompt: sampling (`beam_width: 0`) or the best hypothesis of a beam search,
/// with its score.
fn decode_all(
    ctx: &StageCtx,
    p: &Params,
    w: &crate::model::Weights,
    ex: &[Example],
) -> Vec<(Vec<u32>, Option<f64>)> {
    let threads = ctx.threads.max(1);
    let banned = vec![SOS, PAD];
    with_threads(threads, || {
        if p.beam_width == 0 {
            let mut dec = Decoder::new(w, 1, threads);
            let mut s = Sampler::new(
                SamplerConfig::temperature(p.temperature),
                ctx.seed_for("sampling"),
            );
            let opts = GenOptions {
                stop_at_eos: true,
                banned: banned.clone(),
            };
            ex.iter()
                .map(|e| {
                    let g =
                        generate_cached(&mut dec, &[&e.prompt], &[p.max_new], &mut s, &opts, None);
                    (g.into_iter().next().unwrap_or_default(), None)
                })
                .collect()
        } else {
            let mut dec = Decoder::new(w, p.beam_width, threads);
            let cfg = BeamConfig {
                width: p.beam_width,
                max_new: p.max_new,
                alpha: p.alpha,
                eos: Some(EOS),
                banned: banned.clone(),
            };
            ex.iter()
                .map(|e| {
                    let h = beam_search(&mut dec, &e.prompt, &cfg)
                        .into_iter()
                        .next()
                        .expect("beam search returns a hypothesis");
                    (h.tokens, Some(h.score))
                })
                .collect()
        }
    })
}

impl Kind for BeamEval {
    type Params = Params;

    fn info(&self) -> KindInfo {
        KindInfo {
            heavy: true,
            needs: &["train", "tokenize"],
            ..KindInfo::base("beam-eval", 5, include_str!("../../stages/beam-eval.yaml"))
        }
    }

    fn validate(&self, p: &Params) -> Result<(), String> {
        if p.prompts == 0 {
            return Err("prompts must be at least 1".into());
        }
        if p.prompt_len == 0 {
            return Err("prompt_len must be at least 1 (it counts <sos>)".into());
        }
        if p.max_new == 0 {
            return Err("max_new must be at least 1".into());
        }
        if !(p.alpha >= 0.0 && p.alpha.is_finite()) {
            return Err(format!("alpha must be >= 0, got {}", p.alpha));
        }
        SamplerConfig::temperature(p.temperature).validate()
    }

    fn run(&self, ctx: &StageCtx, p: &Params) -> anyhow::Result<()> {
        let inp = load_inputs(ctx, |_| p.workload())?;
        let w = &inp.ckpt.weights;
        // The same prompts for every decoding stage of the pipeline (seed and data only).
        let ex = pick_examples(
            &inp.valid,
            p.prompts,
            p.prompt_len,
            w.config.context,
            prompt_seed(ctx.pipeline_seed, &inp.valid),
        )?;
        let t0 = Instant::now();
        let outs = decode_all(ctx, p, w, &ex);
        let wall = t0.elapsed().as_secs_f64();
        let generated: usize = outs.iter().map(|o| o.0.len()).sum();
        let hyps: Vec<String> = outs.iter().map(|o| text_of(&inp.vocab, &o.0)).collect();
        let refs: Vec<String> = ex.iter().map(|e| inp.vocab.decode(&e.reference)).collect();
        let bleu = crate::metrics::corpus_bleu(
            &hyps,
            std::slice::from_ref(&refs),
            &crate::metrics::BleuOptions::default(),
        )?;
        let sent = crate::metrics::sentence_mean(&hyps, &refs);
        let method = if p.beam_width == 0 {
            "sampling"
        } else {
            "beam"
        };
        let tps = generated as f64 / wall.max(1e-9);
        let metrics = serde_json::json!({
            "method": method,
            "beam_width": p.beam_width,
            "bleu": bleu.score,
            "bleu_sentence_mean": sent,
            "generated_tokens": generated,
            "prompts": ex.len(),
            "alpha": p.alpha,
            "temperature": p.temperature,
        });
        let out = &ctx.out_dir;
        crate::stage::create_dir(out)?;
        crate::stage::write_file(
            out.join("metrics.json"),
            serde_json::to_string_pretty(&metrics)?,
        )?;
        let label = if p.beam_width == 0 {
            format!("sampling (temperature {})", p.temperature)
        } else {
            format!("beam search, width {} (alpha {})", p.beam_width, p.alpha)
        };
        let mut md = format!(
            "# Outputs: {label}\n\n{} prompts of {} tokens (incl. <sos>), at most {} new tokens. \
             BLEU {:.2} (sacreBLEU), mean sentence BLEU {:.4}.\n\n\
             | doc | prompt | reference | output | score |\n|---|---|---|---|---|\n",
            ex.len(),
            p.prompt_len,
            p.max_new,
            bleu.score,
            sent,
        );
        for (i, e) in ex.iter().enumerate() {
            md.push_str(&format!(
                "| {} | {} | {} | {} | {} |\n",
                e.doc,
                md_cell(&inp.vocab.decode(&e.prompt)),
                md_cell(&refs[i]),
                md_cell(&hyps[i]),
                outs[i].1.map_or("".to_string(), |s| format!("{s:.3}"))
            ));
        }
        crate::stage::write_file(out.join("outputs.md"), md)?;
        let texts: Vec<serde_json::Value> = ex
            .iter()
            .enumerate()
            .map(|(i, e)| {
                serde_json::json!({
                    "doc": e.doc,
                    "prompt": inp.vocab.decode(&e.prompt),
                    "reference": refs[i],
                    "output": hyps[i],
                    "score": outs[i].1,
                })
            })
            .collect();
        let doc = serde_json::json!({"method": method, "label": label, "outputs": texts});
        crate::stage::write_file(
            out.join("outputs.json"),
            serde_json::to_string_pretty(&doc)?,
        )?;
        super::write_measurements(
            ctx,
            &serde_json::json!({"tokens_per_s": tps, "wall_s": wall, "generated_tokens": generated}),
        )?;
        ctx.reporter.log(format!(
            "{label}: BLEU {:.2}, sentence BLEU {:.4}, {tps:.1} tokens/s",
            bleu.score, sent
        ));
        Ok(())
    }
}
