//! `pipe exp`: experiments, one per run of a pipeline with its overrides. `show` (one row per
//! experiment: the parameters that vary as `stage.key` columns and the headline metrics of
//! every stage), `diff A B`, `apply NAME` (the pipeline file edited to produce it, its results
//! restored), `remove NAME`, and `run` (the queue, in `exp_queue`).

use crate::compare::number::{fmt_value, fmt_value_sig};
use crate::error::{PipeError, Result};
use crate::experiment::{self, table, ExpError, Experiment};
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(clap::Subcommand)]
pub enum ExpCommand {
    /// One row per experiment of the pipeline: varying parameters and headline metrics.
    Show(ShowArgs),
    /// Two experiments' overrides, parameters and metrics side by side.
    Diff(DiffArgs),
    /// Edit the pipeline file so that it produces an experiment and restore its results.
    Apply(NameArgs),
    /// Forget experiments (their results stay in the store).
    Remove(RemoveArgs),
    /// Queue an experiment (`--queue -n NAME --set …`) or run the queue (`--run-all`).
    Run(super::exp_queue::QueueArgs),
}

#[derive(clap::Args, Debug)]
pub struct ShowArgs {
    /// The pipeline: a file, its name (`ci`) or its lock file; default as for `pipe run`.
    pub pipeline: Option<PathBuf>,
    /// Sort rows by a column (`name`, `created`, `status`, a parameter or a metric).
    #[arg(long, value_name = "COL")]
    pub sort: Option<String>,
    /// Sort descending.
    #[arg(long, requires = "sort")]
    pub desc: bool,
    /// Keep rows where COLUMN OP VALUE holds (`train.lr<0.01`, `status=done`; repeatable).
    #[arg(long, value_name = "COND")]
    pub filter: Vec<String>,
    /// Show every parameter, not only those that differ between the rows.
    #[arg(long)]
    pub all_params: bool,
    /// Print `{"experiments": [{"name", "created", "commit", "dirty", "status", "overrides",
    /// "params", "metrics", "live"}]}`.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print one CSV table.
    #[arg(long)]
    pub csv: bool,
}

#[derive(clap::Args, Debug)]
pub struct DiffArgs {
    pub a: String,
    pub b: String,
    /// Show equal values too.
    #[arg(long)]
    pub all: bool,
    /// Print a list of `{"key", "a", "b"}`.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct NameArgs {
    pub name: String,
}

#[derive(clap::Args, Debug)]
pub struct RemoveArgs {
    #[arg(required = true)]
    pub names: Vec<String>,
}

pub fn run(cmd: ExpCommand) -> Result<i32> {
    match cmd {
        ExpCommand::Show(a) => show(a),
        ExpCommand::Diff(a) => diff(a),
        ExpCommand::Apply(a) => apply(&a.name),
        ExpCommand::Remove(a) => remove(a),
        ExpCommand::Run(a) => super::exp_queue::run(a),
    }
}

fn out(s: &str) {
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(s.as_bytes());
    let _ = o.flush();
}

/// The terminal's width (COLUMNS, else the terminal of stdout), None when not a terminal.
fn term_width() -> Option<u16> {
    if let Some(c) = std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()) {
        return Some(c);
    }
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a `winsize` into the pointer given, which is valid and sized.
    let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) } == 0;
    (ok && ws.ws_col > 0).then_some(ws.ws_col)
}

/// The rows of a pipeline's experiments, filtered and sorted as asked.
fn rows(root: &Path, file: &Path, a: &ShowArgs) -> Result<Vec<table::Row>> {
    let (all, bad) = experiment::load_all(root);
    for b in bad {
        eprintln!("warning: {b} (skipped)");
    }
    let cache = crate::cache::Cache::new(root);
    let file = file.display().to_string();
    let mut rows: Vec<table::Row> = all
        .iter()
        .filter(|e| e.file == file)
        .map(|e| table::row(&cache, e))
        .collect();
    for f in &a.filter {
        let f: table::Filter = f.parse().map_err(PipeError::usage)?;
        if !rows.is_empty() && !table::has_column(&rows, &f.col) {
            return Err(PipeError::usage(format!(
                "--filter {}: no column `{}`; {}",
                a.filter.join(" "),
                f.col,
                columns_hint(&rows)
            )));
        }
        rows.retain(|r| f.keep(r));
    }
    if let Some(col) = &a.sort {
        if !rows.is_empty() && !table::has_column(&rows, col) {
            return Err(PipeError::usage(format!(
                "--sort {col}: no such column; {}",
                columns_hint(&rows)
            )));
        }
        rows.sort_by(|x, y| {
            let (p, q) = (table::cell(x, col), table::cell(y, col));
            match (&p, &q) {
                (Some(_), Some(_)) if a.desc => table::cmp_cells(&q, &p),
                _ => table::cmp_cells(&p, &q),
            }
        });
    }
    Ok(rows)
}

fn columns_hint(rows: &[table::Row]) -> String {
    let mut cols: Vec<String> = ["name", "created", "status", "commit"]
        .map(String::from)
        .to_vec();
    let mut keys: Vec<String> = rows.iter().flat_map(|r| r.params.keys().cloned()).collect();
    keys.sort();
    keys.dedup();
    cols.extend(keys);
    cols.extend(table::metric_columns(rows));
    let names: Vec<String> = cols.clone();
    format!("columns: {}", names.join(", "))
}

fn status_text(r: &table::Row) -> String {
    let s = serde_json::to_value(r.status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    match &r.live {
        Some(l) => format!("{s} ({l})"),
        None => s,
    }
}

fn show(a: ShowArgs) -> Result<i32> {
    let (root, file) = super::project::locate(a.pipeline.as_deref())?;
    let rows = rows(&root, &file, &a)?;
    let params: Vec<String> = if a.all_params {
        let mut k: Vec<String> = rows.iter().flat_map(|r| r.params.keys().cloned()).collect();
        k.sort();
        k.dedup();
        k
    } else {
        table::varying(&rows)
    };
    let metrics = table::metric_columns(&rows);
    if a.json {
        let list: Vec<Value> = rows
            .iter()
            .map(|r| {
                let p: serde_json::Map<String, Value> = params
                    .iter()
                    .filter_map(|k| r.params.get(k).map(|v| (k.clone(), v.clone())))
                    .collect();
                serde_json::json!({
                    "name": r.exp.name, "created": r.exp.created, "commit": r.exp.commit,
                    "dirty": r.exp.dirty, "status": r.status, "overrides": r.exp.overrides,
                    "params": p, "metrics": r.metrics, "live": r.live,
                })
            })
            .collect();
        let doc =
            serde_json::json!({ "pipeline": file.display().to_string(), "experiments": list });
        out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&doc).expect("serialises")
        ));
        return Ok(0);
    }
    if a.csv {
        let mut w = ::csv::Writer::from_writer(Vec::new());
        let mut header: Vec<String> = ["name", "created", "commit", "status"]
            .map(String::from)
            .to_vec();
        header.extend(params.iter().cloned());
        header.extend(metrics.iter().cloned());
        let e = |e: ::csv::Error| PipeError::Tool(anyhow::anyhow!("writing CSV: {e}"));
        w.write_record(&header).map_err(e)?;
        for r in &rows {
            let mut rec = vec![
                r.exp.name.clone(),
                r.exp.created.clone(),
                r.exp.commit.clone().unwrap_or_default(),
                status_text(r),
            ];
            for k in params.iter() {
                rec.push(r.params.get(k).map(fmt_value).unwrap_or_default());
            }
            for k in metrics.iter() {
                rec.push(r.metrics.get(k).map(fmt_value).unwrap_or_default());
            }
            w.write_record(&rec).map_err(e)?;
        }
        let bytes = w
            .into_inner()
            .map_err(|x| PipeError::Tool(anyhow::anyhow!("writing CSV: {x}")))?;
        out(&String::from_utf8_lossy(&bytes));
        return Ok(0);
    }
    if rows.is_empty() {
        out(&format!(
            "no experiments of {} yet: `pipe run {0} -n NAME` records one\n",
            file.display()
        ));
        return Ok(0);
    }
    let mut t = comfy_table::Table::new();
    t.load_style(comfy_table::presets::ASCII_BORDERS_ONLY_CONDENSED);
    if let Some(w) = term_width() {
        t.set_content_arrangement(comfy_table::ContentArrangement::Dynamic);
        t.set_width(w);
    }
    let mut header: Vec<String> = ["experiment", "created", "status"]
        .map(String::from)
        .to_vec();
    header.extend(params.iter().cloned());
    header.extend(metrics.iter().cloned());
    t.set_header(header);
    for r in &rows {
        let dirty = if r.exp.dirty { "+" } else { "" };
        let mut cells = vec![
            r.exp.name.clone(),
            format!(
                "{}{}",
                r.exp.created.trim_end_matches(" UTC"),
                r.exp
                    .commit
                    .as_ref()
                    .map(|c| format!(" {}{dirty}", &c[..c.len().min(7)]))
                    .unwrap_or_default()
            ),
            status_text(r),
        ];
        for k in &params {
            cells.push(
                r.params
                    .get(k)
                    .map(|v| fmt_value_sig(v, 6))
                    .unwrap_or_default(),
            );
        }
        for k in &metrics {
            cells.push(
                r.metrics
                    .get(k)
                    .map(|v| fmt_value_sig(v, 6))
                    .unwrap_or_default(),
            );
        }
        t.add_row(cells);
    }
    out(&format!("{t}\n"));
    Ok(0)
}

/// Both experiments as rows.
fn pair(root: &Path, a: &str, b: &str) -> Result<(table::Row, table::Row)> {
    let cache = crate::cache::Cache::new(root);
    let x = experiment::load(root, a)?;
    let y = experiment::load(root, b)?;
    Ok((table::row(&cache, &x), table::row(&cache, &y)))
}

pub(super) fn overrides_text(e: &Experiment) -> String {
    if e.overrides.is_empty() {
        return "(none)".into();
    }
    e.overrides
        .iter()
        .map(|o| format!("{}.{}={}", o.stage, o.key, fmt_value(&o.value)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn diff(a: DiffArgs) -> Result<i32> {
    let root = super::project::project_root()?;
    let (x, y) = pair(&root, &a.a, &a.b)?;
    let mut keys: Vec<(String, Option<Value>, Option<Value>)> = Vec::new();
    let mut names: Vec<&String> = x.params.keys().chain(y.params.keys()).collect();
    names.sort();
    names.dedup();
    let metric_names: Vec<String> = table::metric_columns(&[x.clone(), y.clone()]);
    for k in names.into_iter().chain(metric_names.iter()) {
        let (p, q) = (table::cell(&x, k), table::cell(&y, k));
        if a.all || p != q {
            keys.push((k.clone(), p, q));
        }
    }
    if a.json {
        let list: Vec<Value> = keys
            .iter()
            .map(|(k, p, q)| serde_json::json!({"key": k, "a": p, "b": q}))
            .collect();
        out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&list).expect("serialises")
        ));
        return Ok(0);
    }
    let mut t = comfy_table::Table::new();
    t.load_style(comfy_table::presets::ASCII_BORDERS_ONLY_CONDENSED);
    if let Some(w) = term_width() {
        t.set_content_arrangement(comfy_table::ContentArrangement::Dynamic);
        t.set_width(w);
    }
    t.set_header(vec![
        "".to_string(),
        a.a.clone(),
        a.b.clone(),
        "change".into(),
    ]);
    t.add_row(vec![
        "overrides".to_string(),
        overrides_text(&x.exp),
        overrides_text(&y.exp),
        String::new(),
    ]);
    let cell = |v: &Option<Value>| {
        v.as_ref()
            .map(|v| fmt_value_sig(v, 6))
            .unwrap_or("-".into())
    };
    for (k, p, q) in &keys {
        let change = match (p, q) {
            (Some(p), Some(q)) if p == q => String::new(),
            (Some(p), Some(q)) => crate::compare::number::fmt_change(p, q).unwrap_or_default(),
            _ => String::new(),
        };
        t.add_row(vec![k.clone(), cell(p), cell(q), change]);
    }
    out(&format!("{t}\n"));
    if keys.is_empty() {
        out("no parameter or metric differs\n");
    }
    Ok(0)
}

fn remove(a: RemoveArgs) -> Result<i32> {
    let root = super::project::project_root()?;
    for n in &a.names {
        experiment::load(&root, n)?;
    }
    for n in &a.names {
        experiment::remove(&root, n)?;
        println!("removed experiment {n} (its results stay in the store)");
    }
    Ok(0)
}

/// `pipe run FILE ARGS` as a child of this process, in its own process group (stopped with
/// this process), with the `PIPE_<STAGE>__<KEY>` variables of the caller replaced by `env`.
fn child_run(root: &Path, args: &[String], env: &[(String, String)]) -> Result<bool> {
    let start = |source| PipeError::Io {
        what: "cannot start `pipe run`".into(),
        source,
    };
    let exe = std::env::current_exe().map_err(start)?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("run").args(args).current_dir(root);
    for (k, _) in std::env::vars() {
        if k.starts_with("PIPE_") && k.contains("__") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().cloned());
    let io = crate::interrupt::GroupIo {
        stdout: std::process::Stdio::inherit(),
        stderr: std::process::Stdio::inherit(),
        cleanup: None,
    };
    let group = crate::interrupt::spawn_group(&cmd, io).map_err(start)?;
    Ok(group.wait().map_err(start)?.success())
}

fn apply(name: &str) -> Result<i32> {
    let root = super::project::project_root()?;
    let e = experiment::load(&root, name)?;
    let path = root.join(&e.file);
    let mut text = std::fs::read_to_string(&path).map_err(|err| {
        ExpError::Apply(format!(
            "experiment {name}: cannot read its pipeline file {}: {err}",
            e.file
        ))
    })?;
    for o in &e.overrides {
        text = experiment::yaml_edit::set(&e.file, &text, &o.stage, &o.key, &o.value)
            .map_err(ExpError::Apply)?;
    }
    crate::cache::fsafe::write_atomic(&root, &path, text.as_bytes())
        .map_err(|err| PipeError::io("cannot write", &path, err.into()))?;
    eprintln!(
        "{}: {} ({} override{} written)",
        e.file,
        overrides_text(&e),
        e.overrides.len(),
        if e.overrides.len() == 1 { "" } else { "s" }
    );
    let ok = child_run(&root, &[e.file.clone(), "--frozen".into()], &[])?;
    if !ok {
        return Err(ExpError::NotRestored {
            name: name.to_string(),
            file: e.file.clone(),
        }
        .into());
    }
    println!(
        "applied experiment {name}: {} describes it and its results are restored",
        e.file
    );
    Ok(0)
}
