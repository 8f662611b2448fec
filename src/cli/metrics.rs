//! `pipe metrics show` (every stage's headline metrics from the lock file) and `pipe metrics
//! diff` (the workspace's lock against the one committed at a git revision, read with
//! `git show`, or against another lock file). `pipe params diff` shares the diff. The pipeline
//! is found as for `pipe run` (a file, a name or the default, from any subfolder); stages are
//! in natural order (`w=3` before `w=10`) and numbers shown to 6 significant digits
//! (`--json` keeps every digit).

use crate::compare::lock::{self, DiffRow, Part};
use crate::compare::number::{fmt_change, fmt_value, fmt_value_sig};
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
    /// The pipeline: a file, its name (`ci`) or its lock file; default as for `pipe run`.
    pub pipeline: Option<PathBuf>,
    /// Print `{"stages": {"<id>": {"<metric>": value}}}`.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct DiffArgs {
    /// The pipeline: a file, its name (`ci`) or its lock file; default as for `pipe run`.
    pub pipeline: Option<PathBuf>,
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

/// The lock file of the pipeline a command means (absolute) and the pipeline file.
pub fn lock_of(pipeline: Option<&std::path::Path>) -> Result<(PathBuf, PathBuf, PathBuf)> {
    let (root, file) = super::project::locate(pipeline)?;
    let lock = crate::layout::Layout::new(&root).lock_file(&file);
    Ok((root, file, lock))
}

/// A path as the user sees it: relative to the current folder when inside it.
fn shown(p: &std::path::Path) -> String {
    let cwd = std::env::current_dir().unwrap_or_default();
    p.strip_prefix(&cwd).unwrap_or(p).display().to_string()
}

fn show(a: ShowArgs) -> Result<i32> {
    let (_, file, path) = lock_of(a.pipeline.as_deref())?;
    let l = lock::read(&path, &file)?;
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
    let mut ids: Vec<&String> = l.stages.keys().collect();
    ids.sort_by(|a, b| crate::config::natural_cmp(a, b));
    for id in ids {
        let e = &l.stages[id];
        let flat = crate::compare::number::flatten(&serde_json::Value::Object(
            e.metrics.clone().into_iter().collect(),
        ));
        for (i, (k, v)) in flat.iter().enumerate() {
            let stage = if i == 0 { id.clone() } else { String::new() };
            rows.push(vec![
                stage,
                k.clone(),
                table::clip(&fmt_value_sig(v, 6), 60),
            ]);
        }
    }
    if rows.is_empty() {
        out(&format!("{}: no stage has metrics\n", shown(&path)));
        return Ok(0);
    }
    let header = ["Stage", "Metric", "Value"].map(String::from);
    out(&table::render(&header, &rows));
    Ok(0)
}

/// The old and new lock files of a diff, and a description of each side.
fn sides(a: &DiffArgs) -> Result<(lock::LockFile, lock::LockFile, String)> {
    let (root, file, path) = lock_of(a.pipeline.as_deref())?;
    let new = lock::read(&path, &file)?;
    if let Some(other) = &a.against {
        let bytes = std::fs::read(other).map_err(|e| CompareError::io(other, e))?;
        let old = lock::parse(&bytes, &other.display().to_string())?;
        let what = format!("{} → {} (workspace)", other.display(), shown(&path));
        return Ok((old, new, what));
    }
    let rev = a.rev.clone().unwrap_or_else(|| "HEAD".into());
    let rel = path.strip_prefix(&root).unwrap_or(&path).to_path_buf();
    let old = match git::show(&path, &rev)? {
        Some(b) => lock::parse(&b, &format!("{rev}:{}", rel.display()))?,
        None => {
            eprintln!(
                "note: {} is not committed at {rev}; every value counts as new",
                rel.display()
            );
            lock::LockFile::default()
        }
    };
    let what = format!("{rev}:{} → {} (workspace)", rel.display(), shown(&path));
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
