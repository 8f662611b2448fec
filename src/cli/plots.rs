//! `pipe plots diff A B …`: the training and validation curves of several experiments overlaid
//! on one chart each (training loss per step, validation loss and perplexity per epoch, and
//! every curve a `command` stage declares), labelled by experiment name and the parameters that
//! differ, as PNG and SVG. `pipe plots show [NAME]`: one experiment's curves, a running
//! training's so far. Charts go to `pipe_plots/` under the project root (or `--out DIR`).

use crate::error::{PipeError, Result};
use crate::experiment::{self, curves, table, Experiment};
use crate::plot::{LineChart, Series};
use std::path::{Path, PathBuf};

#[derive(clap::Subcommand)]
pub enum PlotsCommand {
    /// Overlay the curves of several experiments.
    Diff(DiffArgs),
    /// The curves of one experiment (default: the latest), a running training's so far.
    Show(ShowArgs),
}

#[derive(clap::Args, Debug)]
pub struct DiffArgs {
    /// Experiment names (at least two).
    #[arg(required = true, num_args = 2..)]
    pub names: Vec<String>,
    /// Where the charts go (default: pipe_plots/ under the project root).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct ShowArgs {
    pub name: Option<String>,
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

pub fn run(cmd: PlotsCommand) -> Result<i32> {
    let root = super::project::project_root()?;
    let (exps, out) = match cmd {
        PlotsCommand::Diff(a) => {
            let mut v = Vec::new();
            for n in &a.names {
                v.push(experiment::load(&root, n)?);
            }
            (v, a.out)
        }
        PlotsCommand::Show(a) => {
            let e = match &a.name {
                Some(n) => experiment::load(&root, n)?,
                None => experiment::load_all(&root)
                    .0
                    .into_iter()
                    .next_back()
                    .ok_or_else(|| {
                        PipeError::Config(
                            "no experiments yet: `pipe run -n NAME` records one".into(),
                        )
                    })?,
            };
            (vec![e], a.out)
        }
    };
    let out = out.unwrap_or_else(|| root.join("pipe_plots"));
    let written = draw(&root, &exps, &out)?;
    if written.is_empty() {
        return Err(PipeError::Failed(format!(
            "{}: no curves to draw (no train stage and no declared plots among their results)",
            exps.iter()
                .map(|e| e.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    for w in written {
        println!("{}", w.display());
    }
    Ok(0)
}

/// Labels: the name, and the parameters that differ between the experiments.
fn labels(root: &Path, exps: &[Experiment]) -> Vec<String> {
    let cache = crate::cache::Cache::new(root);
    let rows: Vec<table::Row> = exps.iter().map(|e| table::row(&cache, e)).collect();
    let varying = table::varying(&rows);
    rows.iter()
        .map(|r| {
            let parts: Vec<String> = varying
                .iter()
                .filter_map(|k| {
                    r.params
                        .get(k)
                        .map(|v| format!("{k}={}", crate::compare::number::fmt_value_sig(v, 4)))
                })
                .collect();
            let live = if experiment::is_running(&r.exp) {
                " (running)"
            } else {
                ""
            };
            if parts.is_empty() {
                format!("{}{live}", r.exp.name)
            } else {
                format!("{}{live}: {}", r.exp.name, parts.join(", "))
            }
        })
        .collect()
}

/// Draws every chart with at least one non-empty series; returns the files written.
fn draw(root: &Path, exps: &[Experiment], out: &Path) -> Result<Vec<PathBuf>> {
    let cache = crate::cache::Cache::new(root);
    let all: Vec<curves::Curves> = exps.iter().map(|e| curves::of(&cache, e)).collect();
    let labels = labels(root, exps);
    let names: Vec<&str> = exps.iter().map(|e| e.name.as_str()).collect();
    let stem = names.join("_vs_");
    let mut charts: Vec<(String, LineChart)> = Vec::new();
    let mut add = |file: String, title: String, x: &str, y: &str, pts: Vec<Vec<(f64, f64)>>| {
        let series: Vec<Series> = labels
            .iter()
            .zip(pts)
            .filter(|(_, p)| !p.is_empty())
            .map(|(l, p)| Series {
                name: l.clone(),
                points: p,
                ranges: Vec::new(),
            })
            .collect();
        if !series.is_empty() {
            charts.push((
                file,
                LineChart {
                    title,
                    x_label: x.into(),
                    y_label: y.into(),
                    series,
                    log_y: false,
                },
            ));
        }
    };
    add(
        format!("{stem}_train_loss"),
        "Training loss per step".into(),
        "optimiser step",
        "cross-entropy (nats/token)",
        all.iter().map(|c| c.train_loss.clone()).collect(),
    );
    add(
        format!("{stem}_val_loss"),
        "Validation loss per epoch".into(),
        "epoch",
        "cross-entropy (nats/token)",
        all.iter().map(|c| c.val_loss.clone()).collect(),
    );
    add(
        format!("{stem}_val_perplexity"),
        "Validation perplexity per epoch".into(),
        "epoch",
        "perplexity",
        all.iter().map(|c| c.val_perplexity.clone()).collect(),
    );
    let mut keys: Vec<&(String, String, String, String)> =
        all.iter().flat_map(|c| c.declared.keys()).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        let (stage, title, x, y) = k;
        let slug = crate::plot::html::slug(&format!("{stage}_{title}_{y}"));
        add(
            format!("{stem}_{slug}"),
            format!("{title}: {y} (stage {stage})"),
            x,
            y,
            all.iter()
                .map(|c| c.declared.get(k).cloned().unwrap_or_default())
                .collect(),
        );
    }
    std::fs::create_dir_all(out)
        .map_err(|e| PipeError::Failed(format!("{}: cannot create: {e}", out.display())))?;
    let mut written = Vec::new();
    for (file, chart) in charts {
        for ext in ["png", "svg"] {
            let p = out.join(format!("{file}.{ext}"));
            crate::plot::line_chart(&p, &chart, (1000, 600))
                .map_err(|e| PipeError::Failed(e.to_string()))?;
            written.push(p);
        }
    }
    Ok(written)
}
