//! Lock files for comparison: reading one strictly (a file that does not parse is an error
//! naming file and line), and the differences of metrics or parameters between two of them.

use super::measure::{is_measurement_key, is_measurement_kind};
use super::number::flatten;
use super::CompareError;
pub use crate::cache::lockfile::{LockEntry, LockFile};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Parses lock-file bytes; `origin` names where they came from (`HEAD:pipelines/ci.lock`).
pub fn parse(bytes: &[u8], origin: &str) -> Result<LockFile, CompareError> {
    serde_json::from_slice(bytes).map_err(|e| CompareError::BadLock {
        origin: origin.to_string(),
        line: e.line(),
        column: e.column(),
        msg: e.to_string(),
    })
}

/// Reads the workspace's lock of a pipeline; missing is an error saying how to make it.
pub fn read(path: &Path, pipeline: &Path) -> Result<LockFile, CompareError> {
    match std::fs::read(path) {
        Ok(b) => parse(&b, &path.display().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(CompareError::NoLock {
            path: path.to_path_buf(),
            pipeline: pipeline.to_path_buf(),
        }),
        Err(e) => Err(CompareError::io(path, e)),
    }
}

/// One compared value.
#[derive(Debug, Clone, PartialEq)]
pub struct DiffRow {
    pub stage: String,
    pub key: String,
    /// `None` when the stage or key is absent on that side.
    pub old: Option<Value>,
    pub new: Option<Value>,
    /// The key or the stage's kind measures the machine.
    pub measurement: bool,
}

impl DiffRow {
    pub fn changed(&self) -> bool {
        self.old != self.new
    }

    /// `{"stage", "key", "old", "new"}` in that order, absent values as null.
    pub fn to_json(&self) -> Value {
        #[derive(serde::Serialize)]
        struct Row<'a> {
            stage: &'a str,
            key: &'a str,
            old: &'a Option<Value>,
            new: &'a Option<Value>,
        }
        serde_json::to_value(Row {
            stage: &self.stage,
            key: &self.key,
            old: &self.old,
            new: &self.new,
        })
        .expect("serialises")
    }
}

/// What of a lock entry is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Metrics,
    Params,
}

fn values(e: &LockEntry, part: Part) -> BTreeMap<String, Value> {
    match part {
        Part::Metrics => flatten(&Value::Object(e.metrics.clone().into_iter().collect())),
        Part::Params => flatten(&e.params),
    }
}

/// Pairs the stage ids of two lock files: the same id, or else, for a base stage with exactly
/// one unmatched instance on each side, those two (a matrix value edited: `a@lr=0.1` then
/// `a@lr=0.3`). Each pair is (old id, new id), sorted by the id shown (the new one when present).
pub fn pair_ids(old: &LockFile, new: &LockFile) -> Vec<(Option<String>, Option<String>)> {
    let base = |id: &str| id.split('@').next().unwrap_or(id).to_string();
    let only_old: Vec<&String> = old
        .stages
        .keys()
        .filter(|k| !new.stages.contains_key(*k))
        .collect();
    let only_new: Vec<&String> = new
        .stages
        .keys()
        .filter(|k| !old.stages.contains_key(*k))
        .collect();
    let mut pairs: Vec<(Option<String>, Option<String>)> = new
        .stages
        .keys()
        .filter(|k| old.stages.contains_key(*k))
        .map(|k| (Some(k.clone()), Some(k.clone())))
        .collect();
    let mut used_old = BTreeSet::new();
    for n in &only_new {
        let b = base(n);
        let olds: Vec<&&String> = only_old.iter().filter(|o| base(o) == b).collect();
        let news = only_new.iter().filter(|x| base(x) == b).count();
        if olds.len() == 1 && news == 1 {
            used_old.insert(olds[0].to_string());
            pairs.push((Some(olds[0].to_string()), Some(n.to_string())));
        } else {
            pairs.push((None, Some(n.to_string())));
        }
    }
    for o in only_old {
        if !used_old.contains(o) {
            pairs.push((Some(o.clone()), None));
        }
    }
    pairs.sort_by(|a, b| {
        let k = |p: &(Option<String>, Option<String>)| p.1.clone().or(p.0.clone());
        k(a).cmp(&k(b))
    });
    pairs
}

/// Every key of every stage on either side, sorted by stage then key; with `all` false only
/// the ones that differ. Stages are paired by [`pair_ids`]; a row names the new id.
pub fn diff(old: &LockFile, new: &LockFile, part: Part, all: bool) -> Vec<DiffRow> {
    let mut rows = Vec::new();
    for (oid, nid) in pair_ids(old, new) {
        let o = oid.as_ref().and_then(|k| old.stages.get(k));
        let n = nid.as_ref().and_then(|k| new.stages.get(k));
        let stage = nid.or(oid).unwrap_or_default();
        let kind = n.or(o).map(|e| e.kind.as_str()).unwrap_or("");
        let ov = o.map(|e| values(e, part)).unwrap_or_default();
        let nv = n.map(|e| values(e, part)).unwrap_or_default();
        let keys: BTreeSet<&String> = ov.keys().chain(nv.keys()).collect();
        for k in keys {
            let row = DiffRow {
                stage: stage.clone(),
                key: k.clone(),
                old: ov.get(k).cloned(),
                new: nv.get(k).cloned(),
                measurement: part == Part::Metrics
                    && (is_measurement_kind(kind) || is_measurement_key(k)),
            };
            if all || row.changed() {
                rows.push(row);
            }
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lock(v: Value) -> LockFile {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn diffs() {
        let a = lock(json!({"pipeline": "p", "stages": {
            "s": {"kind": "command", "fingerprint": "f".repeat(64), "outputs": {},
                  "metrics": {"loss": 2.0, "wall_s": 1.0}, "params": {"lr": 0.1, "n": 3}},
            "gone": {"kind": "command", "fingerprint": "a".repeat(64), "outputs": {}, "metrics": {"x": 1}}}}));
        let b = lock(json!({"pipeline": "p", "stages": {
            "s": {"kind": "command", "fingerprint": "f".repeat(63) + "2", "outputs": {},
                  "metrics": {"loss": 1.5, "wall_s": 2.0}, "params": {"lr": 0.2, "n": 3}}}}));
        let m = diff(&a, &b, Part::Metrics, false);
        let got: Vec<(&str, &str, bool)> = m
            .iter()
            .map(|r| (r.stage.as_str(), r.key.as_str(), r.measurement))
            .collect();
        assert_eq!(
            got,
            [
                ("gone", "x", false),
                ("s", "loss", false),
                ("s", "wall_s", true)
            ]
        );
        assert_eq!(m[0].new, None);
        let p = diff(&a, &b, Part::Params, false);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].key, "lr");
        assert_eq!(diff(&a, &b, Part::Params, true).len(), 2);
    }

    #[test]
    fn pairs_edited_matrix_values() {
        let e = |lr: f64| json!({"kind": "command", "fingerprint": "f".repeat(64), "outputs": {}, "params": {"lr": lr}});
        let a = lock(
            json!({"pipeline": "p", "stages": {"a@lr=0.1": e(0.1), "b": e(1.0), "c@w=1": e(1.0), "c@w=2": e(2.0)}}),
        );
        let b = lock(
            json!({"pipeline": "p", "stages": {"a@lr=0.3": e(0.3), "b": e(1.0), "c@w=3": e(3.0)}}),
        );
        let p = diff(&a, &b, Part::Params, false);
        let got: Vec<(&str, Option<f64>, Option<f64>)> = p
            .iter()
            .map(|r| {
                (
                    r.stage.as_str(),
                    r.old.as_ref().and_then(|v| v.as_f64()),
                    r.new.as_ref().and_then(|v| v.as_f64()),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("a@lr=0.3", Some(0.1), Some(0.3)),
                ("c@w=1", Some(1.0), None),
                ("c@w=2", Some(2.0), None),
                ("c@w=3", None, Some(3.0))
            ]
        );
    }

    #[test]
    fn bad_lock_names_line() {
        let e = parse(b"{\n<<<<<<< HEAD\n", "pipelines/p.lock").unwrap_err();
        assert!(e.to_string().starts_with("pipelines/p.lock:2:"), "{e}");
    }
}
