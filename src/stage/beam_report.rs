//! The `beam-report` stage kind: fan-in over every `beam-eval` instance: a comparison table
//! (CSV and Markdown) and a bar chart of BLEU, with speed relative to sampling.

use super::{KindInfo, StageCtx, StageKind};
use anyhow::Context;
use serde::Deserialize;

pub struct BeamReport;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {}

#[derive(Debug, Deserialize)]
struct EvalMetrics {
    method: String,
    beam_width: usize,
    bleu: f64,
    bleu_sentence_mean: f64,
    /// From the instance's measurements.
    #[serde(default)]
    tokens_per_s: f64,
}

/// The speed a beam-eval instance measured (its `measurements.json`).
#[derive(Debug, Deserialize)]
struct Speed {
    tokens_per_s: f64,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> anyhow::Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

impl StageKind for BeamReport {
    fn info(&self) -> KindInfo {
        KindInfo {
            name: "beam-report",
            version: 2,
            defaults_yaml: include_str!("../../stages/beam-report.yaml"),
            heavy: false,
            per_epoch: false,
            free_matrix_keys: false,
            needs: &["beam-eval"],
            uses_pipeline_name: false,
            reads_measurements: true,
        }
    }

    fn check(&self, params: &serde_json::Value) -> Result<(), String> {
        super::check_as::<Params>(params).map(|_| ())
    }

    fn run(&self, ctx: &StageCtx) -> anyhow::Result<()> {
        let mut rows: Vec<EvalMetrics> = Vec::new();
        for u in ctx.upstream_of_kind("beam-eval") {
            let mut row: EvalMetrics = read_json(&u.results.join("metrics.json"))?;
            let speed: Speed = read_json(&u.results.join("measurements.json"))?;
            row.tokens_per_s = speed.tokens_per_s;
            rows.push(row);
        }
        anyhow::ensure!(
            !rows.is_empty(),
            "stage `{}` needs at least one `beam-eval` stage; add it to its `needs`",
            ctx.id
        );
        rows.sort_by_key(|r| r.beam_width);
        let base = rows
            .iter()
            .find(|r| r.method == "sampling")
            .map(|r| r.tokens_per_s);
        let label = |r: &EvalMetrics| {
            if r.method == "sampling" {
                "sampling".to_string()
            } else {
                format!("beam {}", r.beam_width)
            }
        };
        let out = &ctx.out_dir;
        std::fs::create_dir_all(out)?;
        let mut csv = csv::Writer::from_path(out.join("comparison.csv"))?;
        csv.write_record([
            "method",
            "beam_width",
            "bleu",
            "bleu_sentence_mean",
            "tokens_per_s",
            "speed_vs_sampling",
        ])?;
        let mut md = String::from(
            "# Sampling and beam search\n\n\
             | method | BLEU | sentence BLEU | tokens/s | speed vs sampling |\n\
             |---|---:|---:|---:|---:|\n",
        );
        for r in &rows {
            let rel = base.map(|b| r.tokens_per_s / b);
            csv.write_record([
                r.method.clone(),
                r.beam_width.to_string(),
                format!("{:.4}", r.bleu),
                format!("{:.6}", r.bleu_sentence_mean),
                format!("{:.3}", r.tokens_per_s),
                rel.map_or(String::new(), |x| format!("{x:.4}")),
            ])?;
            md.push_str(&format!(
                "| {} | {:.2} | {:.4} | {:.1} | {} |\n",
                label(r),
                r.bleu,
                r.bleu_sentence_mean,
                r.tokens_per_s,
                rel.map_or("–".to_string(), |x| format!("{x:.2}×"))
            ));
        }
        csv.flush()?;
        if base.is_none() {
            md.push_str("\nNo sampling instance (beam_width 0): speeds are not compared.\n");
        }
        std::fs::write(out.join("comparison.md"), md)?;
        let chart = crate::plot::BarChart {
            title: "Corpus BLEU by decoding method".into(),
            y_label: "BLEU (sacreBLEU, 0-100)".into(),
            bars: rows.iter().map(|r| (label(r), r.bleu)).collect(),
        };
        crate::plot::bar_chart(&out.join("comparison.png"), &chart, (800, 500))
            .with_context(|| format!("stage `{}`: comparison.png", ctx.id))?;
        Ok(())
    }
}
