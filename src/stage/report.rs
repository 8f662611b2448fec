//! The `report` stage kind: one self-contained `index.html` made by `crate::report` from the
//! stages in its `needs` (found by kind: train, plot, infer, kv-eval, beam-report) and every
//! instance it depends on (with fingerprint, run time and parameters), plus the date, pipe's
//! version and the project's git commit. This file only locates the inputs.

use super::{Kind, KindInfo, StageCtx, Upstream};
use crate::report::{build, ImageMode, Inputs, RunInfo, Source};
use serde::Deserialize;
use std::path::Path;

pub struct Report;

/// Parameters (defaults in `stages/report.yaml`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportParams {
    /// Page title; empty = "Results of pipeline <name>".
    pub title: String,
    pub images: ImageMode,
    /// Experiments whose curves are overlaid in a section of their own (`pipe exp show`).
    #[serde(default)]
    pub compare: Vec<String>,
}

impl Kind for Report {
    type Params = ReportParams;

    fn info(&self) -> KindInfo {
        KindInfo {
            uses_pipeline_name: true,
            reads_measurements: true,
            ..KindInfo::base("report", 5, include_str!("../../stages/report.yaml"))
        }
    }

    fn run(&self, ctx: &StageCtx, p: &ReportParams) -> anyhow::Result<()> {
        let title = if p.title.trim().is_empty() {
            format!("Results of pipeline {}", ctx.pipeline)
        } else {
            p.title.clone()
        };
        let source = |u: &Upstream| Source {
            id: u.id.clone(),
            stage: u.stage.clone(),
            kind: u.kind.clone(),
            dir: u.results.clone(),
            params: u.params.clone(),
            fingerprint: u.fingerprint.clone(),
            duration_s: u.duration_s,
        };
        // Every instance (the engine fills `ancestors` for kinds that read measurements; a
        // hand-built context may give only `upstream`), then the report itself.
        let mut all: Vec<Source> = if ctx.ancestors.is_empty() {
            ctx.upstream.iter().map(source).collect()
        } else {
            ctx.ancestors.iter().map(source).collect()
        };
        all.push(Source {
            id: ctx.id.clone(),
            stage: ctx.stage.clone(),
            kind: ctx.kind.clone(),
            dir: ctx.out_dir.clone(),
            params: ctx.params.clone(),
            fingerprint: ctx.fingerprint.clone(),
            duration_s: None,
        });
        let inputs = Inputs {
            title,
            subtitle: if all.iter().any(|s| s.kind == "train") {
                format!(
                    "Decoder-only transformer LM on TinyStories, reproduced with pipe; the seed \
                     study's figures are shown beside ours. Report stage `{}`.",
                    ctx.id
                )
            } else {
                format!(
                    "What the stages of pipeline `{}` produced. Report stage `{}`.",
                    ctx.pipeline, ctx.id
                )
            },
            images: p.images,
            out_dir: ctx.out_dir.clone(),
            direct: ctx.upstream.iter().map(source).collect(),
            all,
            run: run_info(&ctx.root),
            compare: compared(ctx, &p.compare)?,
        };
        super::create_dir(&ctx.out_dir)?;
        let html = build(&inputs)?;
        super::write_file(ctx.out_dir.join("index.html"), html)?;
        ctx.reporter.log(format!(
            "report written: index.html ({} stage instances)",
            inputs.all.len()
        ));
        Ok(())
    }
}

/// The overlays of the experiments named in `compare`, drawn into the report's folder.
fn compared(ctx: &StageCtx, names: &[String]) -> anyhow::Result<Vec<(String, std::path::PathBuf)>> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let mut exps = Vec::new();
    for n in names {
        exps.push(crate::experiment::load(&ctx.root, n)?);
    }
    let dir = ctx.out_dir.join("compare");
    let drawn = crate::experiment::charts::draw(&ctx.root, &exps, &dir)?;
    Ok(drawn
        .into_iter()
        .map(|d| {
            (
                format!(
                    "{} of experiments {}, overlaid (as recorded when this report ran; \
                     `pipe exp show` lists them).",
                    d.title,
                    names.join(", ")
                ),
                d.png,
            )
        })
        .collect())
}

/// Date, version and the project's git commit (asked of `git`; none outside a repository).
fn run_info(root: &Path) -> RunInfo {
    let (commit, dirty) = crate::experiment::git::state(root);
    RunInfo {
        date: crate::report::format::utc_now(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        commit,
        dirty,
    }
}
