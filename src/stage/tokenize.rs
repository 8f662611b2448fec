//! The `tokenize` stage kind: glue from a corpus file (a `path` or an upstream fetch stage) to
//! `crate::text::tokenize_corpus`, writing `vocab.json`, `train`/`valid` token files, `stats.json`
//! and `metrics.json`.

use super::{Kind, KindInfo, StageCtx};
use crate::text::{tokenize_corpus, CorpusSpec, Format, TokenizeOptions, ValidSource, SPECIALS};
use anyhow::Context;
use serde::Deserialize;
use std::path::PathBuf;

pub struct Tokenize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub path: Option<String>,
    pub format: Format,
    pub lossy: bool,
    pub valid_fraction: f64,
    pub valid_from: Option<String>,
    pub valid_path: Option<String>,
    pub valid_format: Format,
    pub min_count: u64,
    pub max_size: Option<usize>,
    pub batch_mb: f64,
    pub max_documents: Option<u64>,
}

fn validate(p: &Params) -> Result<(), String> {
    if !(0.0..1.0).contains(&p.valid_fraction) {
        return Err(format!(
            "`valid_fraction` = {} must be at least 0 and below 1",
            p.valid_fraction
        ));
    }
    if let Some(m) = p.max_size {
        if m < SPECIALS.len() {
            return Err(format!(
                "`max_size` = {m} is smaller than the {} special tokens {SPECIALS:?}; use at least {}",
                SPECIALS.len(),
                SPECIALS.len() + 1
            ));
        }
    }
    if p.valid_from.is_some() && p.valid_path.is_some() {
        return Err("give either `valid_from` or `valid_path`, not both".into());
    }
    if p.batch_mb.is_nan() || p.batch_mb <= 0.0 {
        return Err(format!("`batch_mb` = {} must be positive", p.batch_mb));
    }
    Ok(())
}

impl Kind for Tokenize {
    type Params = Params;

    fn info(&self) -> KindInfo {
        KindInfo {
            heavy: true,
            ..KindInfo::base("tokenize", 1, include_str!("../../stages/tokenize.yaml"))
        }
    }

    fn validate(&self, p: &Params) -> Result<(), String> {
        validate(p)
    }

    fn external_inputs(&self, p: &Params) -> Vec<PathBuf> {
        p.path
            .iter()
            .chain(&p.valid_path)
            .map(PathBuf::from)
            .collect()
    }

    fn run(&self, ctx: &StageCtx, p: &Params) -> anyhow::Result<()> {
        let fetches: Vec<_> = ctx
            .upstream_of_kind("fetch")
            .filter(|u| Some(&u.stage) != p.valid_from.as_ref())
            .collect();
        let train_path = match (&p.path, fetches.as_slice()) {
            (Some(path), _) => ctx.path(path),
            (None, [one]) => super::fetch::fetched_file(one)?,
            (None, []) => anyhow::bail!(
                "no corpus: set `path` or add a stage of kind `fetch` to its `needs`"
            ),
            (None, _) => anyhow::bail!(
                "several upstream fetch stages; set `valid_from` to the validation one or give `path`"
            ),
        };
        let valid = if let Some(vf) = &p.valid_from {
            let up = ctx
                .upstream
                .iter()
                .find(|u| &u.stage == vf && u.kind == "fetch")
                .with_context(|| {
                    format!(
                        "`valid_from` = `{vf}` is not an upstream fetch stage; add it to `needs`"
                    )
                })?;
            ValidSource::Corpus(CorpusSpec {
                path: super::fetch::fetched_file(up)?,
                format: p.valid_format,
                lossy: p.lossy,
                max_documents: None,
            })
        } else if let Some(vp) = &p.valid_path {
            ValidSource::Corpus(CorpusSpec {
                path: ctx.path(vp),
                format: p.valid_format,
                lossy: p.lossy,
                max_documents: None,
            })
        } else {
            ValidSource::Fraction {
                fraction: p.valid_fraction,
                seed: ctx.seed_for("split"),
            }
        };
        if matches!(valid, ValidSource::Corpus(_)) && p.valid_fraction > 0.0 {
            ctx.reporter.log(format!(
                "separate validation corpus given: `valid_fraction` = {} is not used",
                p.valid_fraction
            ));
        }
        let mut total = std::fs::metadata(&train_path)
            .with_context(|| format!("corpus {}", train_path.display()))?
            .len();
        if let ValidSource::Corpus(s) = &valid {
            total += std::fs::metadata(&s.path)
                .with_context(|| format!("corpus {}", s.path.display()))?
                .len();
        }
        let opts = TokenizeOptions {
            train: CorpusSpec {
                path: train_path.clone(),
                format: p.format,
                lossy: p.lossy,
                max_documents: p.max_documents,
            },
            valid,
            min_count: p.min_count,
            max_size: p.max_size,
            batch_bytes: (p.batch_mb * (1 << 20) as f64) as usize,
        };
        let mut bar = ctx.reporter.bar(total * 2, "tokenize (bytes, 2 passes)");
        let res = tokenize_corpus(&opts, &ctx.out_dir, &mut |n| bar.inc(n))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        bar.finish();
        if res.valid.documents == 0 {
            ctx.reporter
                .log("warning: the validation split is empty; raise `valid_fraction` or give a validation corpus");
        }
        let stats = serde_json::json!({
            "source": train_path.file_name().map(|n| n.to_string_lossy().into_owned()),
            "format": res.train_format.name(),
            "valid_format": res.valid_format.name(),
            "vocab_size": res.vocab.len(),
            "train_types": res.train_types,
            "min_count": p.min_count,
            "max_size": p.max_size,
            "train": res.train,
            "valid": res.valid,
        });
        crate::stage::write_file(
            ctx.out_dir.join("stats.json"),
            serde_json::to_string_pretty(&stats)?,
        )?;
        let metrics = serde_json::json!({
            "vocab_size": res.vocab.len(),
            "train_documents": res.train.documents,
            "train_tokens": res.train.tokens,
            "train_unknown_rate": res.train.unknown_rate,
            "valid_documents": res.valid.documents,
            "valid_tokens": res.valid.tokens,
            "valid_unknown_rate": res.valid.unknown_rate,
        });
        crate::stage::write_file(
            ctx.out_dir.join("metrics.json"),
            serde_json::to_string_pretty(&metrics)?,
        )?;
        ctx.reporter.log(format!(
            "{} ({}): vocabulary {}, train {} docs / {} tokens, valid {} docs / {} tokens",
            train_path.display(),
            res.train_format.name(),
            res.vocab.len(),
            res.train.documents,
            res.train.tokens,
            res.valid.documents,
            res.valid.tokens
        ));
        Ok(())
    }
}
