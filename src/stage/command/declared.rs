//! What a `command` stage declares besides its files: `metrics:` (JSON files whose values
//! become the stage's headline metrics) and `plots:` (CSV files drawn as curves), collected
//! into its results folder after the command ran: `metrics.json` and `plots/` with
//! `plots.json`, so `metrics show/diff`, `exp show`, `plots diff` and the report see them.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::path::Path;

/// One declared plot: a CSV file, its x column and the y columns drawn against it.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PlotDecl {
    /// The CSV file, relative to the project root (inside one of `outs`).
    pub file: String,
    /// The x column.
    pub x: String,
    /// The y columns (at least one).
    pub y: Vec<String>,
    /// A title; default: the file name.
    #[serde(default)]
    pub title: Option<String>,
}

/// `plots.json` in the results folder: each declared plot with its copy under `plots/`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct PlotEntry {
    #[serde(flatten)]
    pub decl: PlotDecl,
    /// The copy, relative to the results folder (`plots/curve.csv`).
    pub csv: String,
}

/// Whether `path` lies inside (or is) one of `outs`.
pub fn inside_outs(path: &str, outs: &[String]) -> bool {
    let p = Path::new(path);
    outs.iter().any(|o| p.starts_with(Path::new(o)))
}

/// Checks the declarations: relative paths inside `outs`, plots with an x and some y columns.
pub fn check(metrics: &[String], plots: &[PlotDecl], outs: &[String]) -> Result<(), String> {
    let files = metrics
        .iter()
        .map(|m| ("metrics", m))
        .chain(plots.iter().map(|p| ("plots", &p.file)));
    for (key, f) in files {
        if f.is_empty() || Path::new(f).is_absolute() || f.split('/').any(|c| c == "..") {
            return Err(format!(
                "`{key}` entry `{f}` must be a relative path inside the project"
            ));
        }
        if !inside_outs(f, outs) {
            return Err(format!(
                "`{key}` entry `{f}` is not among the stage's `outs`; add it (or its folder) to `outs`"
            ));
        }
    }
    for p in plots {
        if p.x.is_empty() || p.y.is_empty() || p.y.iter().any(String::is_empty) {
            return Err(format!(
                "`plots` entry `{}` needs `x: <column>` and `y: [<column>, …]`",
                p.file
            ));
        }
    }
    Ok(())
}

/// Reads a JSON object file; the error names the file and what is wrong.
fn object(path: &Path, shown: &str) -> anyhow::Result<Map<String, Value>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("metrics file `{shown}`: cannot read: {e}"))?;
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => anyhow::bail!("metrics file `{shown}` is not a JSON object"),
        Err(e) => anyhow::bail!("metrics file `{shown}` is not valid JSON: {e}"),
    }
}

/// After the command: merges `out/metrics.json` (if it wrote one) with every declared metrics
/// file (later files win on a repeated key) into `out/metrics.json`, and copies each declared
/// plot under `out/plots/` with `out/plots.json` describing them.
pub fn collect(
    root: &Path,
    out: &Path,
    metrics: &[String],
    plots: &[PlotDecl],
) -> anyhow::Result<()> {
    if !metrics.is_empty() {
        let own = out.join("metrics.json");
        let mut all = if own.is_file() {
            object(&own, "$PIPE_OUT/metrics.json")?
        } else {
            Map::new()
        };
        for m in metrics {
            all.extend(object(&root.join(m), m)?);
        }
        crate::stage::create_dir(out)?;
        crate::stage::write_file(&own, serde_json::to_vec_pretty(&Value::Object(all))?)?;
    }
    if plots.is_empty() {
        return Ok(());
    }
    let mut entries = Vec::new();
    for (i, p) in plots.iter().enumerate() {
        let src = root.join(&p.file);
        let mut rdr = csv::Reader::from_path(&src)
            .map_err(|e| anyhow::anyhow!("plot file `{}`: {e}", p.file))?;
        let header: Vec<String> = rdr
            .headers()
            .map_err(|e| anyhow::anyhow!("plot file `{}`: {e}", p.file))?
            .iter()
            .map(str::to_string)
            .collect();
        for c in std::iter::once(&p.x).chain(&p.y) {
            anyhow::ensure!(
                header.contains(c),
                "plot file `{}` has no column `{c}` (columns: {})",
                p.file,
                header.join(", ")
            );
        }
        let stem = Path::new(&p.file)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let csv = format!("plots/{i}_{}.csv", crate::plot::html::slug(&stem));
        crate::stage::create_dir(out.join("plots"))?;
        std::fs::copy(&src, out.join(&csv))
            .map_err(|e| anyhow::anyhow!("copying plot file `{}`: {e}", p.file))?;
        entries.push(PlotEntry {
            decl: p.clone(),
            csv,
        });
    }
    crate::stage::write_file(out.join("plots.json"), serde_json::to_vec_pretty(&entries)?)
}
