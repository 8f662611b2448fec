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
}

impl Kind for Report {
    type Params = ReportParams;

    fn info(&self) -> KindInfo {
        KindInfo {
            uses_pipeline_name: true,
            reads_measurements: true,
            ..KindInfo::base("report", 3, include_str!("../../stages/report.yaml"))
        }
    }

    fn run(&self, ctx: &StageCtx, p: &ReportParams) -> anyhow::Result<()> {
        let title = if p.title.trim().is_empty() {
            format!("Results of pipeline `{}`", ctx.pipeline)
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
            subtitle: format!(
                "Decoder-only transformer LM on TinyStories, reproduced with pipe; the seed \
                 study's figures are shown beside ours. Report stage `{}`.",
                ctx.id
            ),
            images: p.images,
            out_dir: ctx.out_dir.clone(),
            direct: ctx.upstream.iter().map(source).collect(),
            all,
            run: run_info(&ctx.root),
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

/// Date, version and the project's git commit (asked of `git`; none outside a repository).
fn run_info(root: &Path) -> RunInfo {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("--no-optional-locks")
            .arg("-C")
            .arg(root)
            .args(args)
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).filter(|c| !c.is_empty());
    let dirty = commit.is_some()
        && git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    RunInfo {
        date: crate::report::format::utc_now(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        commit,
        dirty,
    }
}
