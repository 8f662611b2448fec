//! The table of `pipe exp show`: one row per experiment, with its parameters (dotted
//! `stage.key`, read from the run records of its instances) and the headline metrics of every
//! stage (`stage.metric`, or `instance.metric` for a swept stage; the last epoch for a
//! per-epoch stage), a live loss for a running training; filters and sorting. A `command`
//! stage's `cmd`, `deps`, `outs`, `metrics` and `plots` are not parameters here.

use super::{Experiment, Status};
use crate::compare::number::{flatten, fmt_value};
use serde_json::Value;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::path::Path;

/// Headline metrics shown for the built-in kinds (any other kind: every metric).
fn headline(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "train" => &["train_loss", "val_loss", "val_perplexity"],
        "infer" => &["perplexity", "perplexity_seed", "bleu"],
        "beam-eval" => &["bleu"],
        "kv-eval" => &["identical"],
        "fetch" | "tokenize" | "embed" | "plot" | "beam-report" | "report" => &[],
        _ => return None,
    })
}

/// A `command` stage's own keys: what it runs, not parameters of the experiment.
const COMMAND_KEYS: [&str; 5] = ["cmd", "deps", "outs", "metrics", "plots"];

/// One experiment as a row.
#[derive(Debug, Clone)]
pub struct Row {
    pub exp: Experiment,
    pub status: Status,
    /// `stage.key` → value (keys whose value is the same in every instance of the stage).
    pub params: BTreeMap<String, Value>,
    /// `stage.metric` (or `instance.metric`) → value.
    pub metrics: BTreeMap<String, Value>,
    /// For a running training: `epoch E, step S, loss L` from its live file.
    pub live: Option<String>,
}

/// The label of an instance's metrics: its stage when the stage has one instance or only
/// epochs (the last one speaks for it), else its id.
fn metric_label(e: &Experiment, id: &str, stage: &str) -> Option<String> {
    let same: Vec<&str> = e
        .instances
        .iter()
        .filter(|i| i.stage == stage)
        .map(|i| i.id.as_str())
        .collect();
    if same.len() == 1 {
        return Some(stage.to_string());
    }
    let epochs = same.iter().all(|i| {
        i.strip_prefix(stage)
            .is_some_and(|r| r.starts_with("@epoch="))
    });
    if epochs {
        return (same.last() == Some(&id)).then(|| stage.to_string());
    }
    Some(id.to_string())
}

/// The last line of a live file as `epoch E, step S, loss L`.
fn live_line(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let last = text.lines().rfind(|l| !l.starts_with("step"))?;
    let f: Vec<&str> = last.split(',').collect();
    let loss: f64 = f.get(2)?.parse().ok()?;
    Some(format!(
        "epoch {}, step {}, loss {}",
        f.get(1)?,
        f.first()?,
        crate::compare::number::fmt_value_sig(&serde_json::json!(loss), 4)
    ))
}

/// The row of one experiment, from the run records in `cache`.
pub fn row(cache: &crate::cache::Cache, e: &Experiment) -> Row {
    let status = super::shown_status(e);
    let mut per_stage: BTreeMap<String, BTreeMap<String, Vec<Value>>> = BTreeMap::new();
    let mut metrics = BTreeMap::new();
    let mut live = None;
    for i in &e.instances {
        let Some(fp) = &i.fingerprint else { continue };
        let Some(rec) = cache.record(fp) else {
            if status == Status::Running && i.kind == "train" {
                live = live.or_else(|| live_line(&super::live_file(cache.dir(), fp.as_str())));
            }
            continue;
        };
        if let Value::Object(m) = &rec.key.params {
            for (k, v) in m {
                let own = i.kind == "command" && COMMAND_KEYS.contains(&k.as_str());
                if k == "epoch" || own {
                    continue;
                }
                per_stage
                    .entry(i.stage.clone())
                    .or_default()
                    .entry(k.clone())
                    .or_default()
                    .push(v.clone());
            }
        }
        let Some(label) = metric_label(e, &i.id, &i.stage) else {
            continue;
        };
        let flat = flatten(&Value::Object(rec.metrics.clone().into_iter().collect()));
        let params = &rec.key.params;
        for (k, v) in flat {
            let wanted = match headline(&i.kind) {
                Some(list) => list.contains(&k.as_str()),
                None => params.get(&k).is_none(),
            };
            if wanted && !v.is_object() && !v.is_array() {
                metrics.insert(format!("{label}.{k}"), v);
            }
        }
    }
    // While it runs its instances are not recorded yet (or a training's fingerprint is not).
    let unknown_train = e.instances.is_empty()
        || e.instances
            .iter()
            .any(|i| i.kind == "train" && i.fingerprint.is_none());
    if status == Status::Running && live.is_none() && unknown_train {
        live = super::latest_live(cache.dir(), e).and_then(|p| live_line(&p));
    }
    let mut params = BTreeMap::new();
    for (stage, keys) in per_stage {
        for (k, vals) in keys {
            if vals.iter().all(|v| v == &vals[0]) {
                for (sub, v) in flatten(&vals[0]) {
                    let key = if sub.is_empty() {
                        k.clone()
                    } else {
                        format!("{k}.{sub}")
                    };
                    params.insert(format!("{stage}.{key}"), v);
                }
            }
        }
    }
    Row {
        exp: e.clone(),
        status,
        params,
        metrics,
        live,
    }
}

/// The parameter columns whose values differ between rows (or are absent in some).
pub fn varying(rows: &[Row]) -> Vec<String> {
    let mut keys: Vec<String> = rows.iter().flat_map(|r| r.params.keys().cloned()).collect();
    keys.sort();
    keys.dedup();
    keys.retain(|k| {
        let first = rows.first().and_then(|r| r.params.get(k));
        rows.iter().any(|r| r.params.get(k) != first)
    });
    keys
}

/// Every metric column, in stage order of first appearance.
pub fn metric_columns(rows: &[Row]) -> Vec<String> {
    let mut cols: Vec<String> = Vec::new();
    for r in rows {
        for k in r.metrics.keys() {
            if !cols.contains(k) {
                cols.push(k.clone());
            }
        }
    }
    cols
}

/// A row's value in a column: `name`, `created`, `status`, `commit`, a parameter or a metric.
pub fn cell(r: &Row, col: &str) -> Option<Value> {
    match col {
        "name" => Some(Value::from(r.exp.name.clone())),
        "created" => Some(Value::from(r.exp.created.clone())),
        "status" => serde_json::to_value(r.status).ok(),
        "commit" => r.exp.commit.clone().map(Value::from),
        _ => r.params.get(col).or_else(|| r.metrics.get(col)).cloned(),
    }
}

/// Numbers numerically, text naturally, absent last.
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

/// `train.lr<0.01`, `infer.bleu>=2`, `status=done`, `name~base`: a column, an operator
/// (`<`, `<=`, `>`, `>=`, `=`, `!=`, `~` for "contains") and a value.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    pub col: String,
    pub op: String,
    pub value: String,
}

impl std::str::FromStr for Filter {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        for op in ["<=", ">=", "!=", "==", "<", ">", "=", "~"] {
            if let Some(i) = s.find(op) {
                let (col, value) = (s[..i].trim(), s[i + op.len()..].trim());
                if col.is_empty() || value.is_empty() {
                    break;
                }
                let op = if op == "==" { "=" } else { op };
                return Ok(Filter {
                    col: col.to_string(),
                    op: op.to_string(),
                    value: value.to_string(),
                });
            }
        }
        Err(format!(
            "--filter {s}: expected COLUMN OP VALUE with OP one of < <= > >= = != ~ (e.g. `train.lr<0.01`)"
        ))
    }
}

impl Filter {
    /// Whether a row passes (a row without the column never does).
    pub fn keep(&self, r: &Row) -> bool {
        let Some(v) = cell(r, &self.col) else {
            return false;
        };
        let text = crate::compare::number::fmt_value(&v);
        let text = text.trim_matches('"');
        if self.op == "~" {
            return text.contains(&self.value);
        }
        let ord = match (v.as_f64(), self.value.parse::<f64>()) {
            (Some(x), Ok(y)) => x.partial_cmp(&y),
            _ => Some(crate::config::natural_cmp(text, &self.value)),
        };
        let Some(o) = ord else { return false };
        match self.op.as_str() {
            "<" => o == Ordering::Less,
            "<=" => o != Ordering::Greater,
            ">" => o == Ordering::Greater,
            ">=" => o != Ordering::Less,
            "=" => o == Ordering::Equal,
            _ => o != Ordering::Equal,
        }
    }
}

/// Whether any row has a value in `col`.
pub fn has_column(rows: &[Row], col: &str) -> bool {
    rows.iter().any(|r| cell(r, col).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_and_compare_numbers() {
        let f: Filter = "train.lr<0.01".parse().unwrap();
        assert_eq!(
            (f.col.as_str(), f.op.as_str(), f.value.as_str()),
            ("train.lr", "<", "0.01")
        );
        let f: Filter = "status = done".parse().unwrap();
        assert_eq!(f.op, "=");
        assert!("lr".parse::<Filter>().is_err());
        assert!("<3".parse::<Filter>().is_err());
    }
}
