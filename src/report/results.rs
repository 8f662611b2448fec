//! The result sections of the page: each reads its stages' files and sets them beside the
//! seed's figures, or says what is missing.

use super::format::{attention_caption, label, metric_label, opt, show};
use super::read::{metrics_of, read_table, Table};
use super::{seed, Builder, ReportError};
use crate::plot::fmt_num;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;

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
            let (l, s) = metric_label(k);
            vec![l, show(v), opt(s)]
        })
        .collect()
}

fn num(m: &BTreeMap<String, Value>, key: &str) -> Option<f64> {
    m.get(key).and_then(Value::as_f64)
}

/// Median of values (sorted here); NaN when empty.
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Rows of a table with the headers given as labels.
fn labelled(h: &[String]) -> Vec<String> {
    h.iter().map(|c| label(c)).collect()
}

impl Builder<'_> {
    /// The last train source's per-epoch table, if any.
    fn epochs(&self) -> Option<Table> {
        let train = self.of("train").into_iter().last()?;
        read_table(&train.dir.join("epochs.csv"))?.ok()
    }

    pub(super) fn summary(&mut self) {
        self.page.section("summary", "Results beside the seed");
        let mut rows: Vec<Vec<String>> = Vec::new();
        let mut both = (false, false);
        for up in self.of("infer") {
            if let Some(Ok(m)) = metrics_of(&up.dir) {
                let (l, _) = metric_label("perplexity");
                rows.push(vec![l, opt(num(&m, "perplexity")), "—".into()]);
                both.0 = true;
            }
        }
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
                    format!(
                        "validation perplexity, stories cut to the context (the seed's figure), \
                         epoch {epoch}"
                    ),
                    last[v].clone(),
                    s,
                ]);
                both.1 = true;
            }
        }
        let keys: [(&str, &[&str]); 2] = [
            ("infer", &["perplexity_seed", "bleu", "bleu_sentence_mean"]),
            (
                "kv-eval",
                &["speedup", "tokens_per_s_cache", "tokens_per_s_nocache"],
            ),
        ];
        for (kind, keys) in keys {
            for up in self.of(kind) {
                if let Some(Ok(m)) = metrics_of(&up.dir) {
                    let when = m
                        .get("measured_at")
                        .and_then(Value::as_str)
                        .map(|t| format!(" (measured {t} by {})", up.id))
                        .unwrap_or_default();
                    for key in keys {
                        let (mut l, s) = metric_label(key);
                        if key.starts_with("tokens_per_s") || *key == "speedup" {
                            l.push_str(&when);
                        }
                        rows.push(vec![l, opt(num(&m, key)), opt(s)]);
                    }
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
            if both.0 && both.1 {
                self.page.note(
                    "Two validation perplexities: the seed's figure, like training, reads each \
                     held-out story cut to the model's context (its first tokens only); the \
                     standard one scores every token of every story, where later windows start \
                     with little history, so it is higher.",
                );
            }
            self.page.note(
                "Seed: d_model 300, 3 layers, 8 heads, batch 32, AdamW 3e-4, 3 epochs on the \
                 full TinyStories training set; ours: see the parameters below (scale and data \
                 may differ). Speeds are measurements of this machine, taken when the stage \
                 named last ran (a restored stage keeps its speeds).",
            );
        }
    }

    pub(super) fn training(&mut self) -> Result<(), ReportError> {
        self.page.section("training", "Training");
        let plots = self.of("plot");
        if plots.is_empty() {
            self.page
                .missing("No `plot` stage among this report's `needs`: no training curves.");
        }
        for up in plots {
            let file = up.dir.join("training_curves.png");
            let caption = format!(
                "Left: training loss per step (raw and smoothed; x: optimiser step, y: \
                 cross-entropy in nats per token) with the validation loss at the end of each \
                 epoch. Right: validation perplexity per epoch (stage `{}`).",
                up.id
            );
            self.image(up, &file, &caption)?;
        }
        let Some(train) = self.of("train").last().copied() else {
            self.page
                .missing("No `train` stage among this report's `needs`: no epoch table.");
            return Ok(());
        };
        self.page.heading("Epochs");
        match read_table(&train.dir.join("epochs.csv")) {
            None => self
                .page
                .missing(&format!("`{}` wrote no epochs.csv.", train.id)),
            Some(Err(e)) => self.page.missing(&e),
            Some(Ok((h, r))) => {
                let col = |name: &str| h.iter().position(|c| c == name);
                let cols = [
                    col("epoch"),
                    col("train_loss"),
                    col("val_loss"),
                    col("val_perplexity"),
                ];
                let get = |row: &Vec<String>, c: Option<usize>| {
                    c.and_then(|c| row.get(c).cloned())
                        .unwrap_or_else(|| "—".into())
                };
                let rows: Vec<Vec<String>> = r
                    .iter()
                    .map(|row| {
                        let epoch: usize = get(row, cols[0]).parse().unwrap_or(0);
                        let s = |t: &[f64; 3]| opt(t.get(epoch.wrapping_sub(1)).copied());
                        vec![
                            get(row, cols[0]),
                            get(row, cols[1]),
                            s(&seed::TRAIN_LOSS),
                            get(row, cols[2]),
                            s(&seed::VAL_LOSS),
                            get(row, cols[3]),
                            s(&seed::VAL_PERPLEXITY),
                        ]
                    })
                    .collect();
                self.page.table(
                    &[
                        "epoch",
                        "train loss",
                        "seed",
                        "validation loss",
                        "seed",
                        "validation perplexity (stories cut to the context)",
                        "seed",
                    ],
                    &rows,
                );
            }
        }
        if let Some(Ok(m)) = metrics_of(&train.dir) {
            let rows: Vec<Vec<String>> = m.iter().map(|(k, v)| vec![label(k), show(v)]).collect();
            self.page.heading(&format!("Last epoch (`{}`)", train.id));
            self.page.table(&["metric", "value"], &rows);
        }
        Ok(())
    }

    pub(super) fn inference(&mut self) {
        self.page.section("inference", "Inference");
        let infers = self.of("infer");
        if infers.is_empty() {
            self.page
                .missing("No `infer` stage among this report's `needs`: no inference metrics.");
        }
        let several = infers.len() > 1;
        for up in infers {
            if several {
                self.page.heading(&format!("Stage `{}`", up.id));
            }
            match metrics_of(&up.dir) {
                None => self
                    .page
                    .missing(&format!("`{}` wrote no metrics.json.", up.id)),
                Some(Err(e)) => self.page.missing(&e),
                Some(Ok(m)) => self
                    .page
                    .table(&["metric", "ours", "seed"], &metric_rows(&m)),
            }
        }
    }

    pub(super) fn attention(&mut self) -> Result<(), ReportError> {
        self.page.section("attention", "Attention maps");
        let infers = self.of("infer");
        if infers.is_empty() {
            self.page
                .missing("No `infer` stage among this report's `needs`: no attention maps.");
        }
        for up in infers {
            let dir = up.dir.join("attention");
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
            let mut grid = Vec::new();
            for f in files {
                let stem = f
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or_default()
                    .to_string();
                if let Some(src) = self.image_src(up, &f)? {
                    grid.push((src, attention_caption(&stem)));
                }
            }
            if !grid.is_empty() {
                self.page.figure_grid(&grid);
                self.page.note(
                    "One map per layer and sentence, a panel per head (colour: attention \
                     weight, 0–1). Click a map to see it at full size; click again to shrink it.",
                );
            }
        }
        Ok(())
    }

    pub(super) fn kv_cache(&mut self) -> Result<(), ReportError> {
        self.page.section("kv-cache", "KV cache");
        let kvs = self.of("kv-eval");
        if kvs.is_empty() {
            self.page
                .missing("No `kv-eval` stage among this report's `needs`: no KV-cache results.");
        }
        for up in kvs {
            match metrics_of(&up.dir) {
                None => self
                    .page
                    .missing(&format!("`{}` wrote no metrics.json.", up.id)),
                Some(Err(e)) => self.page.missing(&e),
                Some(Ok(m)) => {
                    self.page
                        .table(&["metric", "ours", "seed"], &metric_rows(&m));
                    self.page.note(
                        "Seed: batch 20, prompt 5, 95 new tokens on a CPU: 219 tok/s without \
                         the cache, 992 with it. Speeds are medians of repeated timings.",
                    );
                }
            }
            self.image(
                up,
                &up.dir.join("kv_cache.png"),
                "Greedy decoding throughput (y: generated tokens per second, log scale) \
                 against generation length (x: new tokens), with and without the KV cache; \
                 points are medians, bars the range of the repeated timings.",
            )?;
            match read_table(&up.dir.join("kv_cache.csv")) {
                None => self
                    .page
                    .missing(&format!("`{}` wrote no kv_cache.csv.", up.id)),
                Some(Err(e)) => self.page.missing(&e),
                Some(Ok((h, r))) => self.kv_table(&h, &r),
            }
        }
        Ok(())
    }

    /// Medians per generation length from the raw timings.
    fn kv_table(&mut self, h: &[String], r: &[Vec<String>]) {
        let col = |name: &str| h.iter().position(|c| c == name);
        let (Some(n), Some(mode), Some(tps)) =
            (col("new_tokens"), col("mode"), col("tokens_per_s"))
        else {
            let h: Vec<String> = labelled(h);
            let h: Vec<&str> = h.iter().map(String::as_str).collect();
            self.page.table(&h, r);
            return;
        };
        let mut by: BTreeMap<(u64, String), Vec<f64>> = BTreeMap::new();
        for row in r {
            let key = row.get(n).and_then(|s| s.parse::<u64>().ok());
            let v = row.get(tps).and_then(|s| s.parse::<f64>().ok());
            if let (Some(k), Some(m), Some(v)) = (key, row.get(mode), v) {
                by.entry((k, m.clone())).or_default().push(v);
            }
        }
        let lengths: Vec<u64> = {
            let mut l: Vec<u64> = by.keys().map(|k| k.0).collect();
            l.dedup();
            l
        };
        let rows: Vec<Vec<String>> = lengths
            .iter()
            .map(|&l| {
                let get = |m: &str| by.get(&(l, m.to_string())).cloned().unwrap_or_default();
                let (c, u) = (get("cache"), get("nocache"));
                let range = |v: &[f64]| {
                    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
                    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    if v.is_empty() {
                        "—".to_string()
                    } else {
                        format!("{}–{}", fmt_num(lo), fmt_num(hi))
                    }
                };
                let (mc, mu) = (median(c.clone()), median(u.clone()));
                vec![
                    l.to_string(),
                    fmt_num(mc),
                    range(&c),
                    fmt_num(mu),
                    range(&u),
                    format!("{}×", fmt_num(mc / mu)),
                    c.len().max(u.len()).to_string(),
                ]
            })
            .collect();
        self.page.table(
            &[
                "new tokens",
                "tokens/s with cache (median)",
                "range",
                "tokens/s without cache (median)",
                "range",
                "speed-up",
                "timings",
            ],
            &rows,
        );
    }

    pub(super) fn beam(&mut self) -> Result<(), ReportError> {
        self.page
            .section("beam-search", "Beam search against sampling");
        let reports = self.of("beam-report");
        if reports.is_empty() {
            self.page.missing(
                "No `beam-report` stage among this report's `needs`: no beam-search comparison.",
            );
        }
        for up in reports {
            match read_table(&up.dir.join("comparison.csv")) {
                None => self
                    .page
                    .missing(&format!("`{}` wrote no comparison.csv.", up.id)),
                Some(Err(e)) => self.page.missing(&e),
                Some(Ok((h, r))) => {
                    let col = |name: &str| h.iter().position(|c| c == name);
                    let (m, w) = (col("method"), col("beam_width"));
                    let mut headers = labelled(&h);
                    headers.extend(["seed sentence BLEU".into(), "seed tokens/s".into()]);
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
                    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
                    self.page.table(&headers, &rows);
                    self.page.note(
                        "One column per swept parameter. Seed: 5 prompts of 10 tokens, 50 new \
                         tokens; its BLEU is the mean sentence BLEU (0–1). Corpus BLEU is on \
                         the sacreBLEU 0–100 scale. Speeds are measurements of this machine.",
                    );
                }
            }
            self.image(
                up,
                &up.dir.join("comparison.png"),
                "Corpus BLEU (y, sacreBLEU 0–100) of each decoding method (x).",
            )?;
            self.image(
                up,
                &up.dir.join("speed.png"),
                "Decoding speed (y: generated tokens per second, one prompt at a time) of each \
                 decoding method (x).",
            )?;
        }
        self.beam_texts();
        Ok(())
    }

    pub(super) fn samples(&mut self) {
        self.page.section("samples", "Sample generations");
        let infers = self.of("infer");
        if infers.is_empty() {
            self.page
                .missing("No `infer` stage among this report's `needs`: no sample generations.");
        }
        for up in infers {
            match std::fs::read_to_string(up.dir.join("samples.md")) {
                Ok(md) => {
                    let rows = md.lines().filter(|l| l.starts_with("| ")).count();
                    self.page.begin_details(&format!(
                        "{} sample rows of `{}` (click to show)",
                        rows.saturating_sub(1),
                        up.id
                    ));
                    self.page.markdown(&md);
                    self.page.end_details();
                }
                Err(_) => self
                    .page
                    .missing(&format!("`{}` wrote no samples.md.", up.id)),
            }
        }
    }
}
