//! The `embed` stage kind: glue from the tokenize output to `crate::embedding` (pretrained vectors
//! or SGNS training), writing `embedding.safetensors` (`tok_emb.weight` [V, dim]),
//! `coverage.json` and `metrics.json`.

use super::{Kind, KindInfo, StageCtx};
use crate::embedding::{coverage, load_vectors, token_counts, train_sgns, SgnsConfig};
use crate::text::{TokenFile, Vocab};
use anyhow::Context;
use serde::Deserialize;
use std::path::PathBuf;

pub struct Embed;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Sgns,
    Vectors,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub method: Method,
    pub dim: usize,
    pub path: Option<String>,
    pub window: usize,
    pub negatives: usize,
    pub epochs: usize,
    pub lr: f32,
    pub subsample: f64,
    pub shards: usize,
    pub round_tokens: usize,
    pub frame: bool,
}

fn validate(p: &Params) -> Result<(), String> {
    let pos = |k: &str, v: usize| {
        if v == 0 {
            Err(format!("`{k}` must be at least 1"))
        } else {
            Ok(())
        }
    };
    pos("dim", p.dim)?;
    pos("window", p.window)?;
    pos("shards", p.shards)?;
    pos("round_tokens", p.round_tokens)?;
    if !(p.lr.is_finite() && p.lr > 0.0) {
        return Err(format!("`lr` = {} must be positive", p.lr));
    }
    if !(p.subsample.is_finite() && p.subsample >= 0.0) {
        return Err(format!(
            "`subsample` = {} must be 0 or positive",
            p.subsample
        ));
    }
    Ok(())
}

impl Kind for Embed {
    type Params = Params;

    fn info(&self) -> KindInfo {
        KindInfo {
            heavy: true,
            needs: &["tokenize"],
            ..KindInfo::base("embed", 1, include_str!("../../stages/embed.yaml"))
        }
    }

    fn validate(&self, p: &Params) -> Result<(), String> {
        validate(p)
    }

    fn external_inputs(&self, p: &Params) -> Vec<PathBuf> {
        match (&p.method, &p.path) {
            (Method::Vectors, Some(path)) => vec![PathBuf::from(path)],
            _ => Vec::new(),
        }
    }

    fn run(&self, ctx: &StageCtx, p: &Params) -> anyhow::Result<()> {
        let tok = ctx.one_upstream("tokenize")?;
        let vocab_path = tok.results.join("vocab.json");
        let vocab = Vocab::load(&vocab_path).map_err(|e| anyhow::anyhow!("{e}"))?;
        let train = TokenFile::load(&tok.results.join("train"))
            .with_context(|| format!("train ids of `{}`", tok.id))?;
        let v = vocab.len();
        let counts = token_counts(&train.ids, v);
        let (emb, extra) = match p.method {
            Method::Vectors => {
                let path = match &p.path {
                    Some(path) => ctx.path(path),
                    None => {
                        super::fetch::fetched_file(ctx.one_upstream("fetch").map_err(|e| {
                            anyhow::anyhow!("{e}, or set `path` to the vectors file")
                        })?)?
                    }
                };
                let loaded = load_vectors(&path, &vocab, ctx.seed_for("missing-rows"))
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                if let Some(m) = &loaded.member {
                    ctx.reporter
                        .log(format!("read the vectors from {m} in {}", path.display()));
                }
                if loaded.embedding.dim != p.dim {
                    anyhow::bail!(
                        "the vectors in {} have {} dimensions but `dim` is {}; set `dim: {}`",
                        path.display(),
                        loaded.embedding.dim,
                        p.dim,
                        loaded.embedding.dim
                    );
                }
                let extra = serde_json::json!({
                    "file": path.file_name().map(|n| n.to_string_lossy().into_owned()),
                    "file_words": loaded.file_words,
                });
                (loaded.embedding, extra)
            }
            Method::Sgns => {
                let cfg = SgnsConfig {
                    dim: p.dim,
                    window: p.window,
                    negatives: p.negatives,
                    epochs: p.epochs,
                    lr: p.lr,
                    subsample: p.subsample,
                    shards: p.shards,
                    round_tokens: p.round_tokens,
                    frame: p.frame,
                    seed: ctx.seed_for("sgns"),
                };
                if let Some(&bad) = train.ids.iter().find(|&&i| i as usize >= v) {
                    anyhow::bail!(
                        "train ids of `{}` contain id {bad}, outside the vocabulary of {v}",
                        tok.id
                    );
                }
                // The matrices, every shard's copies and the tables must fit before any is
                // allocated (an absurd `dim` or `shards` fails the stage, never the run).
                let tokens = train.ids.len() as u64 + 2 * train.n_docs() as u64;
                crate::embedding::memory::check_sgns(
                    v,
                    tokens,
                    &cfg,
                    crate::model::memory::available(),
                )
                .map_err(|e| anyhow::anyhow!("{e}"))?;
                let mut bar: Option<crate::progress::Bar> = None;
                let mut last = 0u64;
                let started = std::time::Instant::now();
                let emb = train_sgns(&train, v, &cfg, &mut |done, total| {
                    let bar = bar.get_or_insert_with(|| ctx.reporter.bar(total, "sgns (tokens)"));
                    bar.inc(done - last);
                    last = done;
                    bar.set_message(format!(
                        "{:.0} tokens/s",
                        done as f64 / started.elapsed().as_secs_f64().max(1e-9)
                    ));
                });
                if let Some(bar) = bar {
                    bar.finish();
                }
                let secs = started.elapsed().as_secs_f64();
                ctx.reporter.log(format!("sgns trained in {secs:.1} s"));
                super::write_measurements(
                    ctx,
                    &serde_json::json!({
                        "sgns_s": secs,
                        "tokens_per_s": last as f64 / secs.max(1e-9),
                    }),
                )?;
                (emb, serde_json::json!({}))
            }
        };
        crate::model::checkpoint::write_tensors(
            &ctx.out_dir.join("embedding.safetensors"),
            &[("tok_emb.weight".to_string(), vec![v, emb.dim], &emb.weights)],
        )?;
        let cov = coverage(&emb.has_vector, &counts);
        let mut doc = serde_json::json!({
            "method": p.method,
            "dim": emb.dim,
            "vocab_size": v,
        });
        let obj = doc.as_object_mut().expect("object");
        if let serde_json::Value::Object(c) = serde_json::to_value(&cov)? {
            obj.extend(c);
        }
        if let serde_json::Value::Object(e) = extra {
            obj.extend(e);
        }
        crate::stage::write_file(
            ctx.out_dir.join("coverage.json"),
            serde_json::to_string_pretty(&doc)?,
        )?;
        crate::stage::write_file(
            ctx.out_dir.join("metrics.json"),
            serde_json::to_string_pretty(&serde_json::json!({
                "dim": emb.dim,
                "types_coverage": cov.types_coverage,
                "tokens_coverage": cov.tokens_coverage,
            }))?,
        )?;
        ctx.reporter.log(format!(
            "{:?}: [{v}, {}], types covered {:.1}%, tokens covered {:.1}%",
            p.method,
            emb.dim,
            100.0 * cov.types_coverage,
            100.0 * cov.tokens_coverage
        ));
        Ok(())
    }
}
