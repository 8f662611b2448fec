//! Charts of experiments: their training and validation curves (and the curves `command`
//! stages declare) overlaid, one chart per curve, each line labelled by the experiment's name
//! and the parameters that differ between the experiments, as PNG and SVG files.

use super::{curves, table, Experiment};
use crate::plot::{LineChart, Series};
use std::path::{Path, PathBuf};

/// Why the charts could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    #[error("{}: cannot create: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Plot(#[from] crate::plot::PlotError),
}

/// Labels: the name, and the parameters that differ between the experiments.
pub fn labels(root: &Path, exps: &[Experiment]) -> Vec<String> {
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
            let live = if super::is_running(&r.exp) {
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

/// One chart drawn: its title and its files.
pub struct Drawn {
    pub title: String,
    pub png: PathBuf,
    pub svg: PathBuf,
}

/// Draws every chart with at least one non-empty series; returns what was written.
pub fn draw(root: &Path, exps: &[Experiment], out: &Path) -> Result<Vec<Drawn>, ChartError> {
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
    std::fs::create_dir_all(out).map_err(|source| ChartError::Io {
        path: out.to_path_buf(),
        source,
    })?;
    let mut written = Vec::new();
    for (file, chart) in charts {
        let (png, svg) = (
            out.join(format!("{file}.png")),
            out.join(format!("{file}.svg")),
        );
        for p in [&png, &svg] {
            crate::plot::line_chart(p, &chart, (1000, 600))?;
        }
        written.push(Drawn {
            title: chart.title,
            png,
            svg,
        });
    }
    Ok(written)
}
