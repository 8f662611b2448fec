//! The "what was run" sections: date, version and commit, every stage instance with its
//! fingerprint and run time, the total compute time, and the merged parameters of each stage.

use super::format::{duration, label, show};
use super::Builder;
use serde_json::Value;
use std::collections::BTreeMap;

impl Builder<'_> {
    pub(super) fn run_info(&mut self) {
        self.page.section("run", "What was run");
        let r = &self.inp.run;
        let commit = match &r.commit {
            Some(c) if r.dirty => format!("{c} (with uncommitted changes)"),
            Some(c) => c.clone(),
            None => "— (not a git repository)".into(),
        };
        let total: f64 = self.inp.all.iter().filter_map(|s| s.duration_s).sum();
        let rows = vec![
            vec!["date".to_string(), r.date.clone()],
            vec!["pipe version".to_string(), r.version.clone()],
            vec!["git commit".to_string(), commit],
            vec![
                "stage instances".to_string(),
                self.inp.all.len().to_string(),
            ],
            vec![
                "total compute time (last real run of each)".to_string(),
                duration(Some(total)),
            ],
        ];
        self.page.table(&["", ""], &rows);
    }

    pub(super) fn stages(&mut self) {
        self.page.heading("Stage instances");
        let rows: Vec<Vec<String>> = self
            .inp
            .all
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
            return;
        }
        self.page
            .table(&["instance", "kind", "fingerprint", "run time"], &rows);
        self.page.note(
            "Every instance the report depends on, in run order, the report last. Fingerprint: \
             blake3 of the kind, its version, the merged parameters, the input hashes and the \
             seed (hover for all of it). Run time: the last real run; a stage restored from the \
             cache keeps the time of the run that made it (the report's own is not known yet).",
        );
    }

    pub(super) fn parameters(&mut self) {
        self.page.heading("Parameters");
        // Base stage → key → the distinct values over its instances (in instance order).
        let mut by: BTreeMap<&str, (String, BTreeMap<String, Vec<String>>)> = BTreeMap::new();
        let mut order: Vec<&str> = Vec::new();
        for s in &self.inp.all {
            let Value::Object(m) = &s.params else {
                continue;
            };
            if !by.contains_key(s.stage.as_str()) {
                order.push(&s.stage);
            }
            let e = by
                .entry(&s.stage)
                .or_insert_with(|| (s.kind.clone(), BTreeMap::new()));
            for (k, v) in m {
                let vals = e.1.entry(k.clone()).or_default();
                let v = show(v);
                if !vals.contains(&v) {
                    vals.push(v);
                }
            }
        }
        if order.is_empty() {
            self.page.missing("No parameters recorded.");
            return;
        }
        self.page
            .begin_details("Merged parameters of every stage (click to show)");
        for stage in order {
            let (kind, keys) = &by[stage];
            let rows: Vec<Vec<String>> = keys
                .iter()
                .map(|(k, v)| {
                    let text = if v.len() > 1 {
                        format!("{} (one per instance)", v.join(" | "))
                    } else {
                        v.join("")
                    };
                    vec![label(k), format!("{text}\u{1}{k}")]
                })
                .collect();
            self.page.heading(&format!("{stage} (kind {kind})"));
            self.page.table(&["parameter", "value"], &rows);
        }
        self.page.end_details();
    }
}
