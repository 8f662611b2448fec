//! The `report` stage kind: one self-contained `index.html` gathering the study's results from
//! its upstream stages (found by kind: train, plot, infer, kv-eval, beam-report), beside the
//! seed's published figures, with every upstream's fingerprint and run time. Sections whose
//! stage or file is absent are replaced by a note.

use super::{KindInfo, StageCtx, StageKind, Upstream};
use crate::plot::fmt_num;
use crate::plot::html::{data_uri, image_mime, slug, Page};
use anyhow::Context;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub struct Report;

/// How figures get into the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageMode {
    /// Base64 data URIs: index.html is the only file.
    Embed,
    /// Copies under `figures/`, linked relatively.
    Copy,
}

/// Parameters (defaults in `stages/report.yaml`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportParams {
    /// Page title; empty = "Results of pipeline <name>".
    pub title: String,
    pub images: ImageMode,
}

/// The seed study's figures (DESIGN.md section 1).
mod seed {
    pub const TRAIN_LOSS: [f64; 3] = [2.509, 2.366, 2.307];
    pub const VAL_LOSS: [f64; 3] = [2.124, 2.050, 2.010];
    pub const VAL_PERPLEXITY: [f64; 3] = [8.41, 7.77, 7.49];
    pub const SAMPLE_PERPLEXITY: f64 = 9.41;
    pub const SENTENCE_BLEU: f64 = 0.0176;
    pub const SAMPLES: f64 = 50.0;
    pub const KV_SPEEDUP: f64 = 4.52;
    pub const KV_TOK_S_CACHE: f64 = 992.0;
    pub const KV_TOK_S_NOCACHE: f64 = 219.0;
    /// (method, beam width, sentence BLEU, tokens/s).
    pub const BEAM: [(&str, u32, f64, f64); 3] = [
        ("sampling", 0, 0.0219, 110.0),
        ("beam", 5, 0.0134, 24.0),
        ("beam", 10, 0.0149, 11.7),
    ];
}

impl StageKind for Report {
    fn info(&self) -> KindInfo {
        KindInfo {
            name: "report",
            version: 2,
            defaults_yaml: include_str!("../../stages/report.yaml"),
            heavy: false,
            per_epoch: false,
            free_matrix_keys: false,
            needs: &[],
            uses_pipeline_name: true,
            reads_measurements: true,
        }
    }

    fn check(&self, params: &serde_json::Value) -> Result<(), String> {
        super::check_as::<ReportParams>(params)
            .map(|_| ())
            .map_err(|e| {
                if e.contains("unknown variant") {
                    format!("`images`: {e}")
                } else {
                    e
                }
            })
    }

    fn run(&self, ctx: &StageCtx) -> anyhow::Result<()> {
        let p: ReportParams = ctx.params()?;
        let title = if p.title.trim().is_empty() {
            format!("Results of pipeline `{}`", ctx.pipeline)
        } else {
            p.title.clone()
        };
        let mut b = Builder {
            ctx,
            mode: p.images,
            page: Page::new(
                &title,
                &format!(
                    "Decoder-only transformer LM on TinyStories, reproduced with pipe; the seed \
                     study's figures are shown beside ours. Report stage `{}`.",
                    ctx.id
                ),
            ),
        };
        b.summary();
        b.training()?;
        b.inference();
        b.attention()?;
        b.kv_cache()?;
        b.beam()?;
        b.samples();
        b.stages();
        let path = ctx.out_dir.join("index.html");
        std::fs::write(&path, b.page.render())
            .with_context(|| format!("stage `{}`: writing {}", ctx.id, path.display()))?;
        ctx.reporter.log(format!(
            "report written: index.html ({} upstream stages)",
            ctx.upstream.len()
        ));
        Ok(())
    }
}

struct Builder<'a> {
    ctx: &'a StageCtx,
    mode: ImageMode,
    page: Page,
}

/// A JSON object file, or why it could not be read (None when the file does not exist).
fn read_object(path: &Path) -> Option<Result<BTreeMap<String, Value>, String>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => return Some(Err(format!("cannot read {}: {e}", path.display()))),
    };
    Some(
        serde_json::from_str::<BTreeMap<String, Value>>(&text)
            .map_err(|e| format!("{} is not a JSON object: {e}", path.display())),
    )
}

/// An upstream's `metrics.json` with its `measurements.json` (speeds) laid over it, or why it
/// could not be read (None when there is no metrics.json).
fn metrics_of(up: &Upstream) -> Option<Result<BTreeMap<String, Value>, String>> {
    let mut m = match read_object(&up.results.join("metrics.json"))? {
        Ok(m) => m,
        Err(e) => return Some(Err(e)),
    };
    if let Some(Ok(meas)) = read_object(&up.results.join("measurements.json")) {
        for (k, v) in meas {
            if !v.is_object() && !v.is_array() {
                m.insert(k, v);
            }
        }
    }
    Some(Ok(m))
}

/// A CSV file's header and rows, as text.
type Table = (Vec<String>, Vec<Vec<String>>);

/// A CSV file as header and rows of text, or why not (None when it does not exist).
fn read_table(path: &Path) -> Option<Result<Table, String>> {
    if !path.exists() {
        return None;
    }
    let read = || -> Result<_, csv::Error> {
        let mut rdr = csv::Reader::from_path(path)?;
        let headers = rdr.headers()?.iter().map(str::to_string).collect();
        let mut rows = Vec::new();
        for r in rdr.records() {
            rows.push(r?.iter().map(tidy).collect());
        }
        Ok((headers, rows))
    };
    Some(read().map_err(|e| format!("cannot read {}: {e}", path.display())))
}

/// Shortens long decimals in a text cell; anything else is kept.
fn tidy(s: &str) -> String {
    match s.parse::<f64>() {
        Ok(v) if s.contains('.') || s.contains('e') => fmt_num(v),
        _ => s.to_string(),
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::Number(n) => n
            .as_f64()
            .map(|f| {
                if n.is_f64() {
                    fmt_num(f)
                } else {
                    n.to_string()
                }
            })
            .unwrap_or_else(|| n.to_string()),
        Value::Bool(b) => if *b { "yes" } else { "no" }.into(),
        Value::String(s) => s.clone(),
        Value::Null => "—".into(),
        other => other.to_string(),
    }
}

/// Metric rows (label, ours, seed): the known keys in a fixed order, then any extras by name.
fn metric_rows(m: &BTreeMap<String, Value>) -> Vec<Vec<String>> {
    const ORDER: [&str; 10] = [
        "perplexity",
        "perplexity_seed",
        "bleu",
        "bleu_sentence_mean",
        "samples",
        "speedup",
        "tokens_per_s_cache",
        "tokens_per_s_nocache",
        "identical",
        "max_abs_logit_diff",
    ];
    let known = ORDER.iter().filter_map(|k| m.get_key_value(*k));
    let extra = m.iter().filter(|(k, _)| !ORDER.contains(&k.as_str()));
    known
        .chain(extra)
        .map(|(k, v)| {
            let (label, s) = metric_label(k);
            vec![label.to_string(), show(v), opt(s)]
        })
        .collect()
}

fn num(m: &BTreeMap<String, Value>, key: &str) -> Option<f64> {
    m.get(key).and_then(Value::as_f64)
}

fn opt(v: Option<f64>) -> String {
    v.map(fmt_num).unwrap_or_else(|| "—".into())
}

fn duration(s: Option<f64>) -> String {
    match s {
        None => "—".into(),
        Some(s) if s < 60.0 => format!("{s:.1} s"),
        Some(s) => format!("{} min {:.0} s", (s / 60.0).floor(), s % 60.0),
    }
}

/// Human labels and seed figures of known metric keys.
fn metric_label(key: &str) -> (&str, Option<f64>) {
    match key {
        "perplexity" => (
            "held-out perplexity, exp(mean NLL) over all tokens (seed: epoch 3)",
            Some(seed::VAL_PERPLEXITY[2]),
        ),
        "perplexity_seed" => (
            "mean per-sample continuation perplexity (the seed's figure)",
            Some(seed::SAMPLE_PERPLEXITY),
        ),
        "bleu" => ("corpus BLEU, sacreBLEU default (0–100)", None),
        "bleu_sentence_mean" => (
            "mean sentence BLEU-4, unsmoothed (0–1, the seed's figure)",
            Some(seed::SENTENCE_BLEU),
        ),
        "samples" => ("samples", Some(seed::SAMPLES)),
        "speedup" => ("speed-up of the KV cache", Some(seed::KV_SPEEDUP)),
        "tokens_per_s_cache" => ("tokens/s with the KV cache", Some(seed::KV_TOK_S_CACHE)),
        "tokens_per_s_nocache" => ("tokens/s without the cache", Some(seed::KV_TOK_S_NOCACHE)),
        "identical" => ("cached and uncached tokens identical", None),
        "max_abs_logit_diff" => ("largest |logit difference|, cached vs uncached", None),
        _ => (key, None),
    }
}

impl<'a> Builder<'a> {
    fn ups(&self, kind: &str) -> Vec<&'a Upstream> {
        let ctx: &'a StageCtx = self.ctx;
        ctx.upstream.iter().filter(|u| u.kind == kind).collect()
    }

    /// Adds `file` of upstream `up` as a figure (embedded or copied), or a note if it is absent.
    fn image(
        &mut self,
        up: &Upstream,
        file: &Path,
        caption: &str,
        wide: bool,
    ) -> anyhow::Result<()> {
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let Some(mime) = image_mime(&name) else {
            return Ok(());
        };
        let bytes = match std::fs::read(file) {
            Ok(b) => b,
            Err(_) => {
                self.page.missing(&format!(
                    "`{}` wrote no {name}, so the figure is missing.",
                    up.id
                ));
                return Ok(());
            }
        };
        let src = match self.mode {
            ImageMode::Embed => data_uri(mime, &bytes),
            ImageMode::Copy => {
                let rel = PathBuf::from("figures").join(slug(&up.id)).join(&name);
                let dest = self.ctx.out_dir.join(&rel);
                std::fs::create_dir_all(dest.parent().expect("has a parent"))
                    .and_then(|_| std::fs::write(&dest, &bytes))
                    .with_context(|| {
                        format!("stage `{}`: copying {}", self.ctx.id, dest.display())
                    })?;
                rel.to_string_lossy().replace('\\', "/")
            }
        };
        if wide {
            self.page.figure_wide(&src, caption);
        } else {
            self.page.figure(&src, caption);
        }
        Ok(())
    }

    /// The last train upstream's per-epoch table, if any.
    fn epochs(&self) -> Option<Table> {
        let train = self.ups("train").into_iter().last()?;
        read_table(&train.results.join("epochs.csv"))?.ok()
    }

    fn summary(&mut self) {
        self.page.section("summary", "Results beside the seed");
        let mut rows: Vec<Vec<String>> = Vec::new();
        if let Some((h, r)) = self.epochs() {
            let col = |name: &str| h.iter().position(|c| c == name);
            if let (Some(e), Some(v), Some(last)) = (col("epoch"), col("val_perplexity"), r.last())
            {
                let epoch: usize = last[e].parse().unwrap_or(0);
                let s = seed::VAL_PERPLEXITY
                    .get(epoch.wrapping_sub(1))
                    .map(|s| format!("{} (epoch {epoch})", fmt_num(*s)))
                    .unwrap_or_else(|| "—".into());
                rows.push(vec![
                    format!("validation perplexity after epoch {epoch}"),
                    last[v].clone(),
                    s,
                ]);
            }
        }
        for up in self.ups("infer") {
            if let Some(Ok(m)) = metrics_of(up) {
                for key in [
                    "perplexity",
                    "perplexity_seed",
                    "bleu",
                    "bleu_sentence_mean",
                ] {
                    let (label, s) = metric_label(key);
                    rows.push(vec![label.to_string(), opt(num(&m, key)), opt(s)]);
                }
            }
        }
        for up in self.ups("kv-eval") {
            if let Some(Ok(m)) = metrics_of(up) {
                for key in ["speedup", "tokens_per_s_cache", "tokens_per_s_nocache"] {
                    let (label, s) = metric_label(key);
                    rows.push(vec![label.to_string(), opt(num(&m, key)), opt(s)]);
                }
            }
        }
        if rows.is_empty() {
            self.page.missing(
                "No train, infer or kv-eval stage among this report's `needs`, so there is \
                 nothing to compare.",
            );
        } else {
            self.page.table(&["metric", "ours", "seed"], &rows);
            self.page.note(
                "Seed: d_model 300, 3 layers, 8 heads, batch 32, AdamW 3e-4, 3 epochs on the \
                 full TinyStories training set; ours: see the pipeline file (scale and data \
                 may differ).",
            );
        }
    }

    fn training(&mut self) -> anyhow::Result<()> {
        self.page.section("training", "Training");
        let plots = self.ups("plot");
        if plots.is_empty() {
            self.page
                .missing("No `plot` stage among this report's `needs`: no training curves.");
        }
        for up in plots {
            let file = up.results.join("training_curves.png");
            self.image(
                up,
                &file,
                &format!(
                    "Training loss per step (raw and smoothed) with validation loss per epoch, \
                     and validation perplexity per epoch (stage `{}`).",
                    up.id
                ),
                false,
            )?;
        }
        let trains = self.ups("train");
        let Some(train) = trains.last().copied() else {
            self.page
                .missing("No `train` stage among this report's `needs`: no epoch table.");
            return Ok(());
        };
        self.page.heading("Epochs");
        match read_table(&train.results.join("epochs.csv")) {
            None => self
                .page
                .missing(&format!("`{}` wrote no epochs.csv.", train.id)),
            Some(Err(e)) => self.page.missing(&e),
            Some(Ok((h, r))) => {
                let col = |name: &str| h.iter().position(|c| c == name);
                let (e, tl, vl, vp) = (
                    col("epoch"),
                    col("train_loss"),
                    col("val_loss"),
                    col("val_perplexity"),
                );
                let get = |row: &Vec<String>, c: Option<usize>| {
                    c.and_then(|c| row.get(c).cloned())
                        .unwrap_or_else(|| "—".into())
                };
                let rows: Vec<Vec<String>> = r
                    .iter()
                    .map(|row| {
                        let epoch: usize = get(row, e).parse().unwrap_or(0);
                        let s = |t: &[f64; 3]| opt(t.get(epoch.wrapping_sub(1)).copied());
                        vec![
                            get(row, e),
                            get(row, tl),
                            s(&seed::TRAIN_LOSS),
                            get(row, vl),
                            s(&seed::VAL_LOSS),
                            get(row, vp),
                            s(&seed::VAL_PERPLEXITY),
                        ]
                    })
                    .collect();
                self.page.table(
                    &[
                        "epoch",
                        "train loss",
                        "seed",
                        "val loss",
                        "seed",
                        "val perplexity",
                        "seed",
                    ],
                    &rows,
                );
            }
        }
        if let Some(Ok(m)) = metrics_of(train) {
            let rows: Vec<Vec<String>> = m.iter().map(|(k, v)| vec![k.clone(), show(v)]).collect();
            self.page.heading(&format!("Last epoch (`{}`)", train.id));
            self.page.table(&["metric", "value"], &rows);
        }
        Ok(())
    }

    fn inference(&mut self) {
        self.page.section("inference", "Inference");
        let infers = self.ups("infer");
        if infers.is_empty() {
            self.page
                .missing("No `infer` stage among this report's `needs`: no inference metrics.");
        }
        let several = infers.len() > 1;
        for up in infers {
            if several {
                self.page.heading(&format!("Stage `{}`", up.id));
            }
            match metrics_of(up) {
                None => self
                    .page
                    .missing(&format!("`{}` wrote no metrics.json.", up.id)),
                Some(Err(e)) => self.page.missing(&e),
                Some(Ok(m)) => {
                    let rows = metric_rows(&m);
                    self.page.table(&["metric", "ours", "seed"], &rows);
                }
            }
        }
    }

    fn attention(&mut self) -> anyhow::Result<()> {
        self.page.section("attention", "Attention maps");
        let infers = self.ups("infer");
        if infers.is_empty() {
            self.page
                .missing("No `infer` stage among this report's `needs`: no attention maps.");
        }
        for up in infers {
            let dir = up.results.join("attention");
            let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
                .map(|rd| {
                    rd.filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| p.extension().is_some_and(|x| x == "png"))
                        .collect()
                })
                .unwrap_or_default();
            files.sort();
            if files.is_empty() {
                self.page
                    .missing(&format!("`{}` wrote no attention/*.png.", up.id));
            }
            for f in files {
                let stem = f
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or_default()
                    .to_string();
                let caption = attention_caption(&stem);
                self.image(up, &f, &caption, true)?;
            }
        }
        Ok(())
    }

    fn kv_cache(&mut self) -> anyhow::Result<()> {
        self.page.section("kv-cache", "KV cache");
        let kvs = self.ups("kv-eval");
        if kvs.is_empty() {
            self.page
                .missing("No `kv-eval` stage among this report's `needs`: no KV-cache results.");
        }
        for up in kvs {
            match metrics_of(up) {
                None => self
                    .page
                    .missing(&format!("`{}` wrote no metrics.json.", up.id)),
                Some(Err(e)) => self.page.missing(&e),
                Some(Ok(m)) => {
                    let rows = metric_rows(&m);
                    self.page.table(&["metric", "ours", "seed"], &rows);
                    self.page.note(
                        "Seed: batch 20, prompt 5, 95 new tokens on a CPU: 219 tok/s without \
                         the cache, 992 with it.",
                    );
                }
            }
            self.image(
                up,
                &up.results.join("kv_cache.png"),
                "Generation throughput against length, with and without the KV cache.",
                false,
            )?;
            match read_table(&up.results.join("kv_cache.csv")) {
                None => self
                    .page
                    .missing(&format!("`{}` wrote no kv_cache.csv.", up.id)),
                Some(Err(e)) => self.page.missing(&e),
                Some(Ok((h, r))) => {
                    let h: Vec<&str> = h.iter().map(String::as_str).collect();
                    self.page.table(&h, &r);
                }
            }
        }
        Ok(())
    }

    fn beam(&mut self) -> anyhow::Result<()> {
        self.page
            .section("beam-search", "Beam search against sampling");
        let reports = self.ups("beam-report");
        if reports.is_empty() {
            self.page.missing(
                "No `beam-report` stage among this report's `needs`: no beam-search comparison.",
            );
        }
        for up in reports {
            match read_table(&up.results.join("comparison.csv")) {
                None => self
                    .page
                    .missing(&format!("`{}` wrote no comparison.csv.", up.id)),
                Some(Err(e)) => self.page.missing(&e),
                Some(Ok((h, r))) => {
                    let col = |name: &str| h.iter().position(|c| c == name);
                    let (m, w) = (col("method"), col("beam_width"));
                    let mut headers: Vec<&str> = h.iter().map(String::as_str).collect();
                    headers.extend(["seed sentence BLEU", "seed tokens/s"]);
                    let rows: Vec<Vec<String>> = r
                        .iter()
                        .map(|row| {
                            let method = m.and_then(|i| row.get(i)).cloned().unwrap_or_default();
                            let width: u32 = w
                                .and_then(|i| row.get(i))
                                .and_then(|s| s.parse().ok())
                                .unwrap_or(0);
                            let s = seed::BEAM.iter().find(|(sm, sw, _, _)| {
                                *sm == method && (method == "sampling" || *sw == width)
                            });
                            let mut row = row.clone();
                            row.push(opt(s.map(|s| s.2)));
                            row.push(opt(s.map(|s| s.3)));
                            row
                        })
                        .collect();
                    self.page.table(&headers, &rows);
                    self.page.note(
                        "Seed: 5 prompts of 10 tokens, 50 new tokens; its BLEU is the mean \
                         sentence BLEU (0–1). Corpus BLEU is on the sacreBLEU 0–100 scale.",
                    );
                }
            }
            self.image(
                up,
                &up.results.join("comparison.png"),
                "BLEU and speed of each decoding method.",
                false,
            )?;
        }
        Ok(())
    }

    fn samples(&mut self) {
        self.page.section("samples", "Sample generations");
        let infers = self.ups("infer");
        if infers.is_empty() {
            self.page
                .missing("No `infer` stage among this report's `needs`: no sample generations.");
        }
        for up in infers {
            match std::fs::read_to_string(up.results.join("samples.md")) {
                Ok(md) => self.page.markdown(&md),
                Err(_) => self
                    .page
                    .missing(&format!("`{}` wrote no samples.md.", up.id)),
            }
        }
    }

    fn stages(&mut self) {
        self.page.section("stages", "Stages");
        let rows: Vec<Vec<String>> = self
            .ctx
            .upstream
            .iter()
            .map(|u| {
                let short: String = u.fingerprint.chars().take(12).collect();
                vec![
                    u.id.clone(),
                    u.kind.clone(),
                    format!("{short}\u{1}{}", u.fingerprint),
                    duration(u.duration_s),
                ]
            })
            .collect();
        if rows.is_empty() {
            self.page.missing("This report has no upstream stages.");
        } else {
            self.page
                .table(&["stage", "kind", "fingerprint", "run time"], &rows);
            self.page.note(
                "Fingerprint: blake3 of the kind, its version, the merged parameters, the input \
                 hashes and the seed (hover for all of it). Run time: the last real run; a stage \
                 restored from the cache keeps the time of the run that made it.",
            );
        }
    }
}

/// `layer_1_there-was-a-brave-explorer` → `Layer 1: "there was a brave explorer"`.
fn attention_caption(stem: &str) -> String {
    let rest = stem.strip_prefix("layer_").unwrap_or(stem);
    match rest.split_once('_') {
        Some((layer, slug)) if layer.chars().all(|c| c.is_ascii_digit()) => format!(
            "Layer {layer}: \"{}\" (rows: queries, columns: keys).",
            slug.replace(['-', '_'], " ")
        ),
        _ => stem.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captions_and_formats() {
        assert_eq!(
            attention_caption("layer_2_there-was-a-little-girl"),
            "Layer 2: \"there was a little girl\" (rows: queries, columns: keys)."
        );
        assert_eq!(attention_caption("other"), "other");
        assert_eq!(duration(Some(75.0)), "1 min 15 s");
        assert_eq!(duration(Some(3.25)), "3.2 s");
        assert_eq!(tidy("7.49231"), "7.492");
        assert_eq!(tidy("20"), "20");
        assert_eq!(tidy("cache"), "cache");
        assert_eq!(show(&serde_json::json!(true)), "yes");
        assert_eq!(show(&serde_json::json!(50)), "50");
    }
}
