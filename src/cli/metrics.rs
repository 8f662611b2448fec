//! `pipe metrics show` (every stage's headline metrics from the lock file) and `pipe metrics
//! diff` (the workspace's lock against the one committed at a git revision, read with
//! `git show`, or against another lock file). `pipe params diff` shares the diff.

use crate::compare::lock::{self, DiffRow, Part};
use crate::compare::number::{fmt_change, fmt_value};
use crate::compare::{git, table, CompareError};
use crate::error::Result;
use std::io::Write;
use std::path::PathBuf;

#[derive(clap::Subcommand)]
pub enum MetricsCommand {
    /// Every stage's headline metrics from the pipeline's lock file.
    Show(ShowArgs),
    /// Metrics that changed between a git revision (or another lock file) and the workspace.
    Diff(DiffArgs),
}

#[derive(clap::Args, Debug)]
pub struct ShowArgs {
    /// The pipeline file (`pipelines/ci.yaml`), its lock file, or its name.
    pub pipeline: PathBuf,
    /// Print `{"stages": {"<id>": {"<metric>": value}}}`.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct DiffArgs {
    /// The pipeline file (`pipelines/ci.yaml`), its lock file, or its name.
    pub pipeline: PathBuf,
    /// The git revision whose committed lock file is the old side (default `HEAD`).
    #[arg(long, value_name = "REV", conflicts_with = "against")]
    pub rev: Option<String>,
    /// Another lock file as the old side, instead of a git revision.
    #[arg(long, value_name = "OTHER.lock")]
    pub against: Option<PathBuf>,
    /// Show unchanged values too.
    #[arg(long)]
    pub all: bool,
    /// Print a list of `{"stage", "key", "old", "new"}`.
    #[arg(long)]
    pub json: bool,
}

pub fn run(cmd: MetricsCommand) -> Result<i32> {
    match cmd {
        MetricsCommand::Show(a) => show(a),
        MetricsCommand::Diff(a) => diff(&a, Part::Metrics),
    }
}

fn out(s: &str) {
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(s.as_bytes());
    let _ = o.flush();
}

fn show(a: ShowArgs) -> Result<i32> {
    let path = lock::lock_path(&a.pipeline);
    let l = lock::read(&path, &a.pipeline)?;
    if a.json {
        let stages: serde_json::Map<String, serde_json::Value> = l
            .stages
            .iter()
            .map(|(id, e)| {
                let m: serde_json::Map<String, serde_json::Value> =
                    e.metrics.clone().into_iter().collect();
                (id.clone(), serde_json::Value::Object(m))
            })
            .collect();
        let doc = serde_json::json!({ "stages": stages });
        out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&doc).expect("serialises")
        ));
        return Ok(0);
    }
    let mut rows = Vec::new();
    for (id, e) in &l.stages {
        let flat = crate::compare::number::flatten(&serde_json::Value::Object(
            e.metrics.clone().into_iter().collect(),
        ));
        for (i, (k, v)) in flat.iter().enumerate() {
            let stage = if i == 0 { id.clone() } else { String::new() };
            rows.push(vec![stage, k.clone(), table::clip(&fmt_value(v), 60)]);
        }
    }
    if rows.is_empty() {
        out(&format!("{}: no stage has metrics\n", path.display()));
        return Ok(0);
    }
    let header = ["Stage", "Metric", "Value"].map(String::from);
    out(&table::render(&header, &rows));
    Ok(0)
}

/// The old and new lock files of a diff, and a description of each side.
fn sides(a: &DiffArgs) -> Result<(lock::LockFile, lock::LockFile, String)> {
    let path = lock::lock_path(&a.pipeline);
    let new = lock::read(&path, &a.pipeline)?;
    if let Some(other) = &a.against {
        let bytes = std::fs::read(other).map_err(|e| CompareError::io(other, e))?;
        let old = lock::parse(&bytes, &other.display().to_string())?;
        let what = format!("{} → {} (workspace)", other.display(), path.display());
        return Ok((old, new, what));
    }
    let rev = a.rev.clone().unwrap_or_else(|| "HEAD".into());
    let old = match git::show(&path, &rev)? {
        Some(b) => lock::parse(&b, &format!("{rev}:{}", path.display()))?,
        None => {
            eprintln!(
                "note: {} is not committed at {rev}; every value counts as new",
                path.display()
            );
            lock::LockFile::default()
        }
    };
    let what = format!("{rev}:{0} → {0} (workspace)", path.display());
    Ok((old, new, what))
}

/// `metrics diff` and `params diff`.
pub fn diff(a: &DiffArgs, part: Part) -> Result<i32> {
    let (old, new, what) = sides(a)?;
    let rows = lock::diff(&old, &new, part, a.all);
    if a.json {
        let list: Vec<serde_json::Value> = rows.iter().map(DiffRow::to_json).collect();
        out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&list).expect("serialises")
        ));
        return Ok(0);
    }
    let noun = match part {
        Part::Metrics => "metric",
        Part::Params => "parameter",
    };
    if rows.is_empty() {
        out(&format!("{what}: no {noun} differs\n"));
        return Ok(0);
    }
    let cell = |v: &Option<serde_json::Value>| match v {
        Some(v) => table::clip(&fmt_value(v), 50),
        None => "(absent)".to_string(),
    };
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let change = match (&r.old, &r.new) {
                (Some(o), Some(n)) if o == n => "unchanged".to_string(),
                (Some(o), Some(n)) => fmt_change(o, n).unwrap_or_else(|| "changed".into()),
                (None, _) => "added".into(),
                (_, None) => "removed".into(),
            };
            let note = if r.measurement && r.changed() {
                "measurement".to_string()
            } else {
                String::new()
            };
            vec![
                r.stage.clone(),
                r.key.clone(),
                cell(&r.old),
                cell(&r.new),
                change,
                note,
            ]
        })
        .collect();
    let key = match part {
        Part::Metrics => "Metric",
        Part::Params => "Param",
    };
    let header = ["Stage", key, "Old", "New", "Change", ""].map(String::from);
    out(&format!("{what}\n{}", table::render(&header, &body)));
    Ok(0)
}
