//! The `beam-report` stage kind: fan-in over every `beam-eval` instance: a comparison table
//! (CSV and Markdown, one column per parameter that varies across the instances) and bar
//! charts of BLEU and of speed (tokens/s, read from the instances' measurements).

use super::{Kind, KindInfo, StageCtx, Upstream};
use anyhow::Context;
use serde::Deserialize;
use serde_json::Value;

pub struct BeamReport;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {}

#[derive(Debug, Deserialize)]
struct EvalMetrics {
    method: String,
    beam_width: usize,
    bleu: f64,
    bleu_sentence_mean: f64,
}

/// The speed a beam-eval instance measured (its `measurements.json`).
#[derive(Debug, Deserialize)]
struct Speed {
    tokens_per_s: f64,
}

/// One instance: its metrics, speed and the values of the swept parameters.
struct Row {
    m: EvalMetrics,
    tokens_per_s: f64,
    swept: Vec<String>,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> anyhow::Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// A parameter value as a table cell (`0.6`, not the f32 noise of the metrics files).
fn cell(v: Option<&Value>) -> String {
    match v {
        Some(Value::Number(n)) => match n.as_f64() {
            Some(f) if n.is_f64() => crate::plot::fmt_num(f),
            _ => n.to_string(),
        },
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => String::new(),
    }
}

/// Parameters whose value differs between instances (`beam_width` first), in name order.
fn swept_keys(ups: &[&Upstream]) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    if let Some(Value::Object(first)) = ups.first().map(|u| &u.params) {
        for k in first.keys() {
            if ups.iter().any(|u| u.params.get(k) != first.get(k)) {
                keys.push(k.clone());
            }
        }
    }
    keys.sort_by_key(|k| (k != "beam_width", k.clone()));
    keys
}

impl Kind for BeamReport {
    type Params = Params;

    fn info(&self) -> KindInfo {
        KindInfo {
            needs: &["beam-eval"],
            reads_measurements: true,
            ..KindInfo::base(
                "beam-report",
                3,
                include_str!("../../stages/beam-report.yaml"),
            )
        }
    }

    fn run(&self, ctx: &StageCtx, _p: &Params) -> anyhow::Result<()> {
        let ups: Vec<&Upstream> = ctx.upstream_of_kind("beam-eval").collect();
        anyhow::ensure!(
            !ups.is_empty(),
            "needs at least one `beam-eval` stage; add it to its `needs`"
        );
        let keys = swept_keys(&ups);
        let mut rows: Vec<Row> = Vec::new();
        for u in &ups {
            let speed: Speed = read_json(&u.results.join("measurements.json"))?;
            rows.push(Row {
                m: read_json(&u.results.join("metrics.json"))?,
                tokens_per_s: speed.tokens_per_s,
                swept: keys.iter().map(|k| cell(u.params.get(k))).collect(),
            });
        }
        let base = rows
            .iter()
            .find(|r| r.m.method == "sampling")
            .map(|r| r.tokens_per_s);
        // "beam 3", or with several swept keys "beam 3, alpha 0.6".
        let label = |r: &Row| {
            let mut parts = vec![if r.m.method == "sampling" {
                "sampling".to_string()
            } else {
                format!("beam {}", r.m.beam_width)
            }];
            for (k, v) in keys.iter().zip(&r.swept) {
                if k != "beam_width" && !(r.m.method == "sampling" && k == "alpha") {
                    parts.push(format!("{} {v}", k.replace('_', " ")));
                }
            }
            parts.join(", ")
        };
        let out = &ctx.out_dir;
        super::create_dir(out)?;
        let mut csv = csv::Writer::from_writer(Vec::new());
        let mut header = vec!["method".to_string()];
        header.extend(keys.iter().filter(|k| *k != "beam_width").cloned());
        header.splice(1..1, ["beam_width".to_string()]);
        header.extend(
            [
                "bleu",
                "bleu_sentence_mean",
                "tokens_per_s",
                "speed_vs_sampling",
            ]
            .map(String::from),
        );
        csv.write_record(&header)?;
        let mut md = String::from("# Sampling and beam search\n\n| method | BLEU | sentence BLEU | tokens/s | speed vs sampling |\n|---|---:|---:|---:|---:|\n");
        for r in &rows {
            let rel = base.map(|b| r.tokens_per_s / b);
            let mut rec = vec![r.m.method.clone(), r.m.beam_width.to_string()];
            rec.extend(
                keys.iter()
                    .zip(&r.swept)
                    .filter(|(k, _)| *k != "beam_width")
                    .map(|(_, v)| v.clone()),
            );
            rec.extend([
                format!("{:.4}", r.m.bleu),
                format!("{:.6}", r.m.bleu_sentence_mean),
                format!("{:.3}", r.tokens_per_s),
                rel.map_or(String::new(), |x| format!("{x:.4}")),
            ]);
            csv.write_record(&rec)?;
            md.push_str(&format!(
                "| {} | {:.2} | {:.4} | {:.1} | {} |\n",
                label(r),
                r.m.bleu,
                r.m.bleu_sentence_mean,
                r.tokens_per_s,
                rel.map_or("–".to_string(), |x| format!("{x:.2}×"))
            ));
        }
        super::write_file(out.join("comparison.csv"), csv.into_inner()?)?;
        if base.is_none() {
            md.push_str("\nNo sampling instance (beam_width 0): speeds are not compared.\n");
        }
        super::write_file(out.join("comparison.md"), md)?;
        let charts = [
            (
                "comparison.png",
                "Corpus BLEU by decoding method",
                "BLEU (sacreBLEU, 0-100)",
                rows.iter()
                    .map(|r| (label(r), r.m.bleu))
                    .collect::<Vec<_>>(),
            ),
            (
                "speed.png",
                "Decoding speed by method",
                "generated tokens / s",
                rows.iter().map(|r| (label(r), r.tokens_per_s)).collect(),
            ),
        ];
        for (file, title, y_label, bars) in charts {
            let chart = crate::plot::BarChart {
                title: title.into(),
                y_label: y_label.into(),
                bars,
            };
            let path = out.join(file);
            crate::plot::bar_chart(&path, &chart, (800, 500))
                .with_context(|| format!("drawing {}", path.display()))?;
        }
        Ok(())
    }
}
