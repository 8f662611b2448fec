//! The sections for stages of the user's own (`command` stages) and for compared experiments:
//! each command stage's headline metrics (one row per instance) and the curves it declared
//! (`plots.json`: one chart per curve, a line per instance), and the experiment overlays the
//! report stage drew (`report.compare`).

use super::read::metrics_of;
use super::{Builder, ReportError, Source};
use crate::plot::{LineChart, Series};
use serde_json::Value;
use std::collections::BTreeMap;

impl Builder<'_> {
    pub(super) fn commands(&mut self) -> Result<(), ReportError> {
        let mut stages: Vec<(String, Vec<&Source>)> = Vec::new();
        for s in self.of("command") {
            match stages.iter_mut().find(|(n, _)| *n == s.stage) {
                Some((_, v)) => v.push(s),
                None => stages.push((s.stage.clone(), vec![s])),
            }
        }
        if stages.is_empty() {
            return Ok(());
        }
        self.page.section("stages", "Stages");
        for (stage, srcs) in stages {
            self.page.heading(&format!("Stage `{stage}`"));
            self.command_metrics(&srcs);
            self.command_plots(&stage, &srcs)?;
        }
        Ok(())
    }

    fn command_metrics(&mut self, srcs: &[&Source]) {
        let mut keys: Vec<String> = Vec::new();
        let mut per: Vec<(String, BTreeMap<String, Value>)> = Vec::new();
        for s in srcs {
            if let Some(Ok(m)) = metrics_of(&s.dir) {
                for k in m.keys() {
                    if !keys.contains(k) {
                        keys.push(k.clone());
                    }
                }
                per.push((s.id.clone(), m));
            }
        }
        if per.is_empty() {
            self.page.note(
                "No headline metrics (write a metrics.json into $PIPE_OUT, or declare `metrics:`).",
            );
            return;
        }
        let mut headers = vec!["instance".to_string()];
        headers.extend(keys.iter().map(|k| super::format::label(k)));
        let rows: Vec<Vec<String>> = per
            .iter()
            .map(|(id, m)| {
                let mut r = vec![id.clone()];
                r.extend(
                    keys.iter()
                        .map(|k| m.get(k).map(super::format::show).unwrap_or("—".into())),
                );
                r
            })
            .collect();
        let h: Vec<&str> = headers.iter().map(String::as_str).collect();
        self.page.table(&h, &rows);
    }

    fn command_plots(&mut self, stage: &str, srcs: &[&Source]) -> Result<(), ReportError> {
        // (title, x, y) → one series per instance.
        let mut charts: Vec<((String, String, String), Vec<Series>)> = Vec::new();
        for s in srcs {
            let Ok(t) = std::fs::read_to_string(s.dir.join("plots.json")) else {
                continue;
            };
            let Ok(entries) =
                serde_json::from_str::<Vec<crate::stage::command::declared::PlotEntry>>(&t)
            else {
                continue;
            };
            for e in entries {
                let csv = std::fs::read_to_string(s.dir.join(&e.csv)).unwrap_or_default();
                let title = e.decl.title.clone().unwrap_or_else(|| e.decl.file.clone());
                for y in &e.decl.y {
                    let key = (title.clone(), e.decl.x.clone(), y.clone());
                    let series = Series {
                        name: s.id.clone(),
                        points: crate::experiment::curves::csv_points(&csv, &e.decl.x, y),
                        ranges: Vec::new(),
                    };
                    match charts.iter_mut().find(|(k, _)| *k == key) {
                        Some((_, v)) => v.push(series),
                        None => charts.push((key, vec![series])),
                    }
                }
            }
        }
        let Some(first) = srcs.first() else {
            return Ok(());
        };
        for (i, ((title, x, y), series)) in charts.into_iter().enumerate() {
            let dir = self.inp.out_dir.join("figures");
            let path = dir.join(format!("{}_{i}.png", crate::plot::html::slug(stage)));
            std::fs::create_dir_all(&dir).map_err(|source| ReportError::Write {
                path: dir.clone(),
                source,
            })?;
            let chart = LineChart {
                title: format!("{title}: {y}"),
                x_label: x.clone(),
                y_label: y.clone(),
                series,
                log_y: false,
            };
            if crate::plot::line_chart(&path, &chart, (900, 500)).is_ok() {
                self.image(
                    first,
                    &path,
                    &format!("{y} against {x}, from {title} (one line per instance of `{stage}`)."),
                )?;
            }
        }
        Ok(())
    }

    pub(super) fn compare(&mut self) -> Result<(), ReportError> {
        if self.inp.compare.is_empty() {
            return Ok(());
        }
        self.page.section("compare", "Experiments compared");
        let own = self.inp.all.last().cloned();
        for (caption, path) in self.inp.compare.clone() {
            if let Some(s) = &own {
                self.image(s, &path, &caption)?;
            }
        }
        Ok(())
    }
}
