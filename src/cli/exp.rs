//! `pipe exp show`: one row per run recorded in the store of the pipeline's stages (every
//! parameter set tried, not only the current one), the parameters that vary as columns and the
//! headline metrics beside them; `*` marks the runs in the workspace's lock file. The text
//! table rounds numbers to 6 significant digits; `--csv` and `--json` keep every digit.

use crate::compare::number::{fmt_value, fmt_value_sig};
use crate::compare::runs::{self, Group, Run};
use crate::compare::{lock, table, CompareError};
use crate::error::Result;
use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;

#[derive(clap::Subcommand)]
pub enum ExpCommand {
    /// Every recorded run of the pipeline's stages, with varying parameters and metrics.
    Show(ShowArgs),
}

#[derive(clap::Args, Debug)]
pub struct ShowArgs {
    /// The pipeline file (`pipelines/ci.yaml`), its lock file, or its name.
    pub pipeline: PathBuf,
    /// Sort rows by this column (`id`, `ran`, a parameter or a metric), ascending.
    #[arg(long, value_name = "COL")]
    pub sort: Option<String>,
    /// Sort descending.
    #[arg(long, requires = "sort")]
    pub desc: bool,
    /// Only these stages (repeatable).
    #[arg(long, value_name = "STAGE")]
    pub stage: Vec<String>,
    /// Print `{"runs": [{"stage", "id", "kind", "fingerprint", "current", "ran", "params", "metrics"}]}`.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print one CSV table (varying parameters and metrics of every stage as columns).
    #[arg(long)]
    pub csv: bool,
}

pub fn run(cmd: ExpCommand) -> Result<i32> {
    match cmd {
        ExpCommand::Show(a) => show(a),
    }
}

fn show(a: ShowArgs) -> Result<i32> {
    let lock_path = lock::lock_path(&a.pipeline);
    let lockfile = match lock::read(&lock_path, &a.pipeline) {
        Ok(l) => Some(l),
        Err(CompareError::NoLock { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    let current: BTreeSet<String> = lockfile
        .iter()
        .flat_map(|l| l.stages.values().map(|e| e.fingerprint.to_string()))
        .collect();
    let pfile = lock::pipeline_path(&a.pipeline);
    let mut stages = runs::pipeline_stages(&pfile, lockfile.as_ref())?;
    if stages.is_empty() {
        return Err(CompareError::Usage(format!(
            "{}: no stages found (and no lock file {})",
            pfile.display(),
            lock_path.display()
        ))
        .into());
    }
    if !a.stage.is_empty() {
        for s in &a.stage {
            if !stages.iter().any(|(n, _)| n == s) {
                let names: Vec<String> = stages.iter().map(|(n, _)| n.clone()).collect();
                return Err(CompareError::Usage(format!(
                    "--stage {s}: no stage `{s}` in {}; stages: {}",
                    pfile.display(),
                    names.join(", ")
                ))
                .into());
            }
        }
        stages.retain(|(n, _)| a.stage.contains(n));
    }
    let root = std::env::current_dir().map_err(crate::error::PipeError::current_dir)?;
    let (all, skipped) = runs::load(&root.join("cache"), &stages, &current)?;
    if skipped > 0 {
        eprintln!("note: {skipped} unreadable run record(s) in cache/runs skipped");
    }
    let mut groups = runs::group(all, &stages);
    if let Some(col) = &a.sort {
        if !groups.is_empty() && !runs::has_column(&groups, col) {
            let mut cols: Vec<String> = runs::FIXED.iter().map(|s| s.to_string()).collect();
            for g in &groups {
                for c in g.varying.iter().chain(&g.metrics) {
                    if !cols.contains(c) {
                        cols.push(c.clone());
                    }
                }
            }
            return Err(CompareError::Usage(format!(
                "--sort {col}: no such column; columns: {}",
                cols.join(", ")
            ))
            .into());
        }
        for g in &mut groups {
            runs::sort_runs(&mut g.runs, col, a.desc);
        }
    }
    let text = if a.json {
        json(&groups, a.sort.as_deref(), a.desc)
    } else if a.csv {
        csv(&groups, a.sort.as_deref(), a.desc)?
    } else {
        text(&groups, &pfile)
    };
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(text.as_bytes());
    let _ = o.flush();
    Ok(0)
}

/// All runs in one list (sorted across stages when a column is given).
fn flat(groups: &[Group], sort: Option<&str>, desc: bool) -> Vec<(usize, Run)> {
    let mut v: Vec<(usize, Run)> = groups
        .iter()
        .enumerate()
        .flat_map(|(i, g)| g.runs.iter().map(move |r| (i, r.clone())))
        .collect();
    if let Some(col) = sort {
        v.sort_by(|(_, a), (_, b)| runs::cmp_runs(a, b, col, desc));
    }
    v
}

fn json(groups: &[Group], sort: Option<&str>, desc: bool) -> String {
    let rows: Vec<serde_json::Value> = flat(groups, sort, desc)
        .into_iter()
        .map(|(g, r)| {
            let params: serde_json::Map<String, serde_json::Value> = groups[g]
                .varying
                .iter()
                .filter_map(|k| r.params.get(k).map(|v| (k.clone(), v.clone())))
                .collect();
            serde_json::json!({
                "stage": r.stage,
                "id": r.id,
                "kind": r.kind,
                "fingerprint": r.fingerprint,
                "current": r.current,
                "ran": r.ran.map(runs::utc),
                "params": params,
                "metrics": r.metrics,
            })
        })
        .collect();
    format!(
        "{}\n",
        serde_json::to_string_pretty(&serde_json::json!({ "runs": rows })).expect("serialises")
    )
}

fn csv(groups: &[Group], sort: Option<&str>, desc: bool) -> Result<String> {
    let mut cols: Vec<String> = Vec::new();
    for g in groups {
        for c in &g.varying {
            if !cols.contains(c) {
                cols.push(c.clone());
            }
        }
    }
    let nparams = cols.len();
    for g in groups {
        for c in &g.metrics {
            if !cols[nparams..].contains(c) {
                cols.push(c.clone());
            }
        }
    }
    let mut w = ::csv::Writer::from_writer(Vec::new());
    let mut header: Vec<String> = ["current", "stage", "id", "kind", "fingerprint", "ran"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    header.extend(cols.iter().cloned());
    let e = |e: ::csv::Error| crate::error::PipeError::Tool(anyhow::anyhow!("writing CSV: {e}"));
    w.write_record(&header).map_err(e)?;
    for (g, r) in flat(groups, sort, desc) {
        let mut rec = vec![
            if r.current { "*" } else { "" }.to_string(),
            r.stage.clone(),
            r.id.clone(),
            r.kind.clone(),
            r.fingerprint.clone(),
            r.ran.map(runs::utc).unwrap_or_default(),
        ];
        for (i, c) in cols.iter().enumerate() {
            let v = if i < nparams {
                groups[g]
                    .varying
                    .contains(c)
                    .then(|| r.params.get(c))
                    .flatten()
            } else {
                r.metrics.get(c)
            };
            rec.push(v.map(fmt_value).unwrap_or_default());
        }
        w.write_record(&rec).map_err(e)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|x| crate::error::PipeError::Tool(anyhow::anyhow!("writing CSV: {x}")))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn text(groups: &[Group], pfile: &std::path::Path) -> String {
    if groups.is_empty() {
        return format!(
            "no runs of the stages of {} are recorded in cache/runs\n",
            pfile.display()
        );
    }
    let mut s = String::new();
    for (i, g) in groups.iter().enumerate() {
        if i > 0 {
            s.push('\n');
        }
        let n = g.runs.len();
        s.push_str(&format!(
            "{} ({}): {n} run{}\n",
            g.stage,
            g.kind,
            if n == 1 { "" } else { "s" }
        ));
        let mut header = vec![
            String::new(),
            "id".into(),
            "fingerprint".into(),
            "ran".into(),
        ];
        header.extend(g.varying.iter().cloned());
        header.extend(g.metrics.iter().cloned());
        let rows: Vec<Vec<String>> = g
            .runs
            .iter()
            .map(|r| {
                let mut row = vec![
                    if r.current { "*" } else { "" }.to_string(),
                    r.id.clone(),
                    r.fingerprint.chars().take(10).collect(),
                    r.ran.map(runs::utc).unwrap_or_default(),
                ];
                for k in &g.varying {
                    row.push(table::clip(
                        &r.params.get(k).map(fmt_value).unwrap_or_default(),
                        30,
                    ));
                }
                for k in &g.metrics {
                    row.push(table::clip(
                        &r.metrics
                            .get(k)
                            .map(|v| fmt_value_sig(v, 6))
                            .unwrap_or_default(),
                        30,
                    ));
                }
                row
            })
            .collect();
        s.push_str(&table::render(&header, &rows));
    }
    s.push_str("(* = in the workspace's lock file)\n");
    s
}
