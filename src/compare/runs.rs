//! The runs recorded in the store (`cache/runs/<fp>.json`) of a pipeline's stages, matched by
//! base stage name and kind, grouped per stage with the parameters that vary across them: the
//! table of `pipe exp show`.
//!
//! Records are read as loose JSON (`key.id`, `key.kind`, `key.params`, `metrics`, optional
//! `measurements`), so records written by older or newer versions of pipe are still listed.

use super::number::{flatten, fmt_value};
use super::CompareError;
use crate::cache::lockfile::LockFile;
use serde_json::Value;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::SystemTime;

/// One recorded run of one stage instance.
#[derive(Debug, Clone)]
pub struct Run {
    /// Base stage name (`train` for `train@epoch=2`).
    pub stage: String,
    pub id: String,
    pub kind: String,
    pub fingerprint: String,
    /// Its fingerprint is in the workspace's lock file.
    pub current: bool,
    /// When the record was written.
    pub ran: Option<SystemTime>,
    /// Merged parameters, flattened to dotted keys.
    pub params: BTreeMap<String, Value>,
    /// Headline metrics (and measurements), flattened.
    pub metrics: BTreeMap<String, Value>,
}

/// The base stage name of an instance id.
pub fn base_name(id: &str) -> &str {
    id.split('@').next().unwrap_or(id)
}

/// The pipeline's stages as (name, kind), in file order, from the pipeline file when it can be
/// read and from the lock file.
pub fn pipeline_stages(
    pipeline_file: &Path,
    lock: Option<&LockFile>,
) -> Result<Vec<(String, String)>, CompareError> {
    let mut out: Vec<(String, String)> = Vec::new();
    if let Ok(text) = std::fs::read_to_string(pipeline_file) {
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).map_err(|e| {
            CompareError::Usage(format!("{}: not valid YAML: {e}", pipeline_file.display()))
        })?;
        if let Some(m) = doc.get("stages").and_then(|s| s.as_mapping()) {
            for (k, v) in m {
                if let (Some(name), Some(kind)) =
                    (k.as_str(), v.get("kind").and_then(|x| x.as_str()))
                {
                    out.push((name.to_string(), kind.to_string()));
                }
            }
        }
    }
    if let Some(l) = lock {
        for (id, e) in &l.stages {
            let pair = (base_name(id).to_string(), e.kind.clone());
            if !out.contains(&pair) {
                out.push(pair);
            }
        }
    }
    Ok(out)
}

/// Every readable record of `cache_dir/runs` whose stage and kind are in `stages`; returns the
/// runs and the number of unreadable records skipped.
pub fn load(
    cache_dir: &Path,
    stages: &[(String, String)],
    current: &BTreeSet<String>,
) -> Result<(Vec<Run>, usize), CompareError> {
    let dir = crate::layout::CacheLayout::at(cache_dir).runs();
    let mut runs = Vec::new();
    let mut skipped = 0;
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((runs, 0)),
        Err(e) => return Err(CompareError::io(&dir, e)),
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.extension().and_then(|x| x.to_str()) != Some("json") {
            continue;
        }
        let Some(v) = std::fs::read(&p)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        else {
            skipped += 1;
            continue;
        };
        let key = &v["key"];
        let (Some(id), Some(kind), Some(fp)) = (
            key["id"].as_str(),
            key["kind"].as_str(),
            v["fingerprint"].as_str(),
        ) else {
            skipped += 1;
            continue;
        };
        let stage = base_name(id);
        if !stages.iter().any(|(s, k)| s == stage && k == kind) {
            continue;
        }
        let mut metrics = flatten(&v["metrics"]);
        metrics.extend(flatten(&v["measurements"]));
        runs.push(Run {
            stage: stage.to_string(),
            id: id.to_string(),
            kind: kind.to_string(),
            fingerprint: fp.to_string(),
            current: current.contains(fp),
            ran: e.metadata().ok().and_then(|m| m.modified().ok()),
            params: flatten(&key["params"]),
            metrics,
        });
    }
    Ok((runs, skipped))
}

/// The runs of one stage, with the parameters that vary across them and the metrics they have.
#[derive(Debug, Clone)]
pub struct Group {
    pub stage: String,
    pub kind: String,
    pub varying: Vec<String>,
    pub metrics: Vec<String>,
    pub runs: Vec<Run>,
}

/// Groups runs per stage in `stages` order; inside a group, by id (natural order), then time.
pub fn group(mut runs: Vec<Run>, stages: &[(String, String)]) -> Vec<Group> {
    runs.sort_by(|a, b| crate::config::natural_cmp(&a.id, &b.id).then(a.ran.cmp(&b.ran)));
    let mut groups = Vec::new();
    for (stage, kind) in stages {
        let rs: Vec<Run> = runs
            .iter()
            .filter(|r| &r.stage == stage && &r.kind == kind)
            .cloned()
            .collect();
        if rs.is_empty() {
            continue;
        }
        let keys: BTreeSet<&String> = rs.iter().flat_map(|r| r.params.keys()).collect();
        let varying: Vec<String> = keys
            .into_iter()
            .filter(|k| rs.iter().any(|r| r.params.get(*k) != rs[0].params.get(*k)))
            .cloned()
            .collect();
        // Metrics that echo a parameter (`alpha`, `beam_width`) are shown as the parameter.
        let mut metrics: Vec<String> = Vec::new();
        for r in &rs {
            for k in r.metrics.keys() {
                if !metrics.contains(k) && !rs.iter().any(|x| x.params.contains_key(k)) {
                    metrics.push(k.clone());
                }
            }
        }
        groups.push(Group {
            stage: stage.clone(),
            kind: kind.clone(),
            varying,
            metrics,
            runs: rs,
        });
    }
    groups
}

/// Fixed columns before the parameters.
pub const FIXED: &[&str] = &["id", "fingerprint", "ran"];

/// A run's value in a column: a fixed column, a parameter or a metric.
pub fn cell(r: &Run, col: &str) -> Option<Value> {
    match col {
        "id" => Some(Value::String(r.id.clone())),
        "stage" => Some(Value::String(r.stage.clone())),
        "kind" => Some(Value::String(r.kind.clone())),
        "fingerprint" => Some(Value::String(r.fingerprint.clone())),
        "ran" => r.ran.map(|t| Value::String(utc(t))),
        _ => r.params.get(col).or_else(|| r.metrics.get(col)).cloned(),
    }
}

/// Orders two cells: numbers numerically, text naturally, absent last.
pub fn cmp_cells(a: &Option<Value>, b: &Option<Value>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, _) => Ordering::Greater,
        (_, None) => Ordering::Less,
        (Some(x), Some(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(p), Some(q)) => p.partial_cmp(&q).unwrap_or(Ordering::Equal),
            _ => crate::config::natural_cmp(&fmt_value(x), &fmt_value(y)),
        },
    }
}

/// Orders two runs by a column (absent values last, also when descending).
pub fn cmp_runs(a: &Run, b: &Run, col: &str, desc: bool) -> Ordering {
    let (x, y) = (cell(a, col), cell(b, col));
    match (&x, &y) {
        (Some(_), Some(_)) if desc => cmp_cells(&y, &x),
        _ => cmp_cells(&x, &y),
    }
}

/// Sorts runs by a column (stable).
pub fn sort_runs(runs: &mut [Run], col: &str, desc: bool) {
    runs.sort_by(|a, b| cmp_runs(a, b, col, desc));
}

/// Whether any run has a value in `col`.
pub fn has_column(groups: &[Group], col: &str) -> bool {
    groups
        .iter()
        .flat_map(|g| &g.runs)
        .any(|r| cell(r, col).is_some())
}

/// `YYYY-MM-DD HH:MM` in UTC.
pub fn utc(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    #[test]
    fn dates() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_625_500);
        assert_eq!(utc(t), "2025-12-01 21:45");
        assert_eq!(utc(SystemTime::UNIX_EPOCH), "1970-01-01 00:00");
    }

    fn run(id: &str, lr: f64, loss: Option<f64>) -> Run {
        let mut metrics = BTreeMap::new();
        if let Some(l) = loss {
            metrics.insert("loss".to_string(), json!(l));
        }
        Run {
            stage: base_name(id).into(),
            id: id.into(),
            kind: "command".into(),
            fingerprint: format!("{id}{lr}"),
            current: false,
            ran: None,
            params: flatten(&json!({"lr": lr, "cmd": "x"})),
            metrics,
        }
    }

    #[test]
    fn groups_and_sorts() {
        let stages = vec![("a".to_string(), "command".to_string())];
        let g = group(
            vec![
                run("a", 0.2, Some(1.0)),
                run("a", 0.1, Some(2.0)),
                run("a", 0.3, None),
            ],
            &stages,
        );
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].varying, ["lr"]);
        assert_eq!(g[0].metrics, ["loss"]);
        let mut rs = g[0].runs.clone();
        sort_runs(&mut rs, "loss", true);
        let lr: Vec<f64> = rs
            .iter()
            .map(|r| r.params["lr"].as_f64().unwrap())
            .collect();
        assert_eq!(lr, [0.1, 0.2, 0.3]);
        sort_runs(&mut rs, "lr", false);
        assert_eq!(rs[0].params["lr"], json!(0.1));
    }
}
