//! The `infer` stage kind: continuations of held-out documents (sampling), perplexity over the
//! validation split and the seed's per-sample continuation perplexity, corpus and sentence BLEU,
//! and attention maps.

use super::eval_inputs::{load_inputs, pick_examples, prompt_seed, text_of};
use super::{Kind, KindInfo, StageCtx};
use crate::decode::{
    generate_cached, score_documents, windowed_nll, with_threads, Decoder, GenOptions, Sampler,
    SamplerConfig,
};
use crate::text::{PAD, SOS};
use serde::Deserialize;
use std::time::Instant;

mod attention;
mod samples;

pub struct Infer;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    samples: usize,
    prompt_len: usize,
    temperature: f32,
    top_k: usize,
    top_p: f32,
    extra_tokens: usize,
    max_valid_docs: usize,
    attention_sentences: Vec<String>,
}

impl Kind for Infer {
    type Params = Params;

    fn info(&self) -> KindInfo {
        KindInfo {
            heavy: true,
            needs: &["train", "tokenize"],
            ..KindInfo::base("infer", 5, include_str!("../../../stages/infer.yaml"))
        }
    }

    fn validate(&self, p: &Params) -> Result<(), String> {
        if p.samples == 0 {
            return Err("samples must be at least 1".into());
        }
        if p.prompt_len < 1 {
            return Err("prompt_len must be at least 1 (it counts <sos>)".into());
        }
        SamplerConfig {
            temperature: p.temperature,
            top_k: p.top_k,
            top_p: p.top_p,
        }
        .validate()
    }

    fn run(&self, ctx: &StageCtx, p: &Params) -> anyhow::Result<()> {
        // The samples in one batch (each continued for at most its reference, shorter than
        // the context, plus `extra_tokens`), then the perplexity passes.
        let inp = load_inputs(ctx, |c| {
            let new = c.context.saturating_add(p.extra_tokens);
            crate::decode::memory::Workload::sample(p.samples, new)
                .and_scoring()
                .described(format!(
                    "samples {}, extra_tokens {}",
                    p.samples, p.extra_tokens
                ))
        })?;
        let w = &inp.ckpt.weights;
        let cfg = &w.config;
        anyhow::ensure!(
            p.prompt_len < cfg.context,
            "prompt_len ({}) must be below the model's context ({})",
            p.prompt_len,
            cfg.context
        );
        let threads = ctx.threads.max(1);
        ctx.reporter.log(format!(
            "checkpoint {} ({} parameters)",
            inp.ckpt_path.display(),
            cfg.n_params()
        ));
        let ex = pick_examples(
            &inp.valid,
            p.samples,
            p.prompt_len,
            cfg.context,
            prompt_seed(ctx.pipeline_seed, &inp.valid),
        )?;
        let out = &ctx.out_dir;
        crate::stage::create_dir(out.join("attention"))?;
        let sampler_cfg = SamplerConfig {
            temperature: p.temperature,
            top_k: p.top_k,
            top_p: p.top_p,
        };
        let seed = ctx.seed_for("sampling");
        let (gens, gen_s, perp_seed, val) = with_threads(threads, || {
            // Continuations, all prompts in one batch.
            let prompts: Vec<&[u32]> = ex.iter().map(|e| e.prompt.as_slice()).collect();
            let max_new: Vec<usize> = ex
                .iter()
                .map(|e| e.reference.len() + p.extra_tokens)
                .collect();
            let mut dec = Decoder::new(w, prompts.len(), threads);
            let mut s = Sampler::new(sampler_cfg.clone(), seed);
            let opts = GenOptions {
                stop_at_eos: true,
                banned: vec![SOS, PAD],
            };
            let t0 = Instant::now();
            let gens = generate_cached(&mut dec, &prompts, &max_new, &mut s, &opts, None);
            let gen_s = t0.elapsed().as_secs_f64();
            // The seed's figure: perplexity of each reference continuation given its prompt.
            let framed: Vec<&[u32]> = ex.iter().map(|e| e.framed.as_slice()).collect();
            let from = vec![p.prompt_len; ex.len()];
            let per = windowed_nll(w, &framed, &from, threads);
            let pp: Vec<f64> = per.iter().map(|s| s.perplexity()).collect();
            // Standard perplexity over the validation split.
            let n_docs = if p.max_valid_docs == 0 {
                inp.valid.n_docs()
            } else {
                p.max_valid_docs.min(inp.valid.n_docs())
            };
            let mut bar = ctx.reporter.bar(n_docs as u64, "perplexity");
            let val = score_documents(w, (0..n_docs).map(|d| inp.valid.doc(d)), threads, |k| {
                bar.inc(k as u64)
            });
            bar.finish();
            (gens, gen_s, pp, val)
        });
        let hyps: Vec<String> = gens.iter().map(|g| text_of(&inp.vocab, g)).collect();
        let refs: Vec<String> = ex.iter().map(|e| inp.vocab.decode(&e.reference)).collect();
        let bleu = crate::metrics::corpus_bleu(
            &hyps,
            std::slice::from_ref(&refs),
            &crate::metrics::BleuOptions::default(),
        )?;
        let sent = crate::metrics::sentence_mean(&hyps, &refs);
        let perplexity_seed = perp_seed.iter().sum::<f64>() / perp_seed.len() as f64;
        let generated: usize = gens.iter().map(|g| g.len()).sum();
        let metrics = serde_json::json!({
            "perplexity": val.perplexity(),
            "perplexity_seed": perplexity_seed,
            "bleu": bleu.score,
            "bleu_sentence_mean": sent,
            "samples": ex.len(),
            "val_tokens": val.tokens,
            "val_nll_mean": val.mean(),
            "bleu_bp": bleu.bp,
            "generated_tokens": generated,
        });
        crate::stage::write_file(
            out.join("metrics.json"),
            serde_json::to_string_pretty(&metrics)?,
        )?;
        let summary = samples::Summary {
            bleu: bleu.score,
            bleu_sentence_mean: sent,
            perplexity: val.perplexity(),
            perplexity_seed,
        };
        samples::write_samples(
            out,
            (p.prompt_len, p.temperature),
            &inp.vocab,
            &ex,
            &refs,
            &hyps,
            &perp_seed,
            &summary,
        )?;
        for sentence in &p.attention_sentences {
            attention::write_maps(out, w, &inp.vocab, sentence, threads)?;
        }
        let tps = generated as f64 / gen_s.max(1e-9);
        super::write_measurements(
            ctx,
            &serde_json::json!({"tokens_per_s": tps, "generation_s": gen_s, "batch": ex.len()}),
        )?;
        ctx.reporter.log(format!(
            "generated {generated} tokens at {tps:.1} tokens/s (batch {})",
            ex.len()
        ));
        ctx.reporter.log(format!(
            "perplexity {:.3}, continuation perplexity {:.3}, BLEU {:.2}, sentence BLEU {:.4}",
            val.perplexity(),
            perplexity_seed,
            bleu.score,
            sent
        ));
        Ok(())
    }
}
