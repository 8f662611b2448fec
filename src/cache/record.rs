//! Run records and what they cover: the fingerprint key of an instance, its output files
//! (results, checkpoints, project files, measurements) and the outputs manifest hash.

use crate::digest::{Blake3, Fingerprint};
pub use crate::layout::Area;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Everything a fingerprint covers, as a named-field struct serialised canonically (fields in
/// declaration order, maps with sorted keys).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FingerprintKey {
    /// Instance id (seeds derive from it).
    pub id: String,
    pub kind: String,
    pub kind_version: u32,
    /// Merged parameters (`epochs` dropped for per-epoch kinds).
    pub params: Value,
    /// Upstream instance id → hash of its outputs manifest, in the order the stage sees them.
    pub upstream: Vec<(String, Blake3)>,
    /// External input (as written in params) → content hash.
    pub inputs: BTreeMap<String, String>,
    pub seed: u64,
    /// The pipeline's `name`, for kinds that read it (`KindInfo::uses_pipeline_name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<String>,
}

impl FingerprintKey {
    /// blake3 of the canonical JSON of the key.
    pub fn fingerprint(&self) -> Fingerprint {
        let bytes = serde_json::to_vec(self).expect("a key always serialises");
        Fingerprint::of(&bytes)
    }
}

/// One output file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Output {
    pub area: Area,
    /// Relative path inside the area, `/`-separated.
    pub path: String,
    pub blake3: Blake3,
    pub size: u64,
    /// A measurement (speeds, wall times): stored and restored, but not part of the outputs
    /// hash that downstream fingerprints see.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub measure: bool,
}

/// The record of one successful stage run, keyed by fingerprint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    pub fingerprint: Fingerprint,
    pub key: FingerprintKey,
    /// Sorted by (area, path).
    pub outputs: Vec<Output>,
    /// blake3 of the outputs manifest: what downstream fingerprints see.
    pub outputs_hash: Blake3,
    pub duration_s: f64,
    /// Headline metrics from the stage's `metrics.json`.
    pub metrics: BTreeMap<String, Value>,
    /// The stage's log, stored as an object (not part of any hash downstream sees).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<Blake3>,
    /// When the run finished (RFC 3339, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ran_at: Option<String>,
}

/// Hash of an outputs manifest (measurement outputs left out).
pub fn manifest_hash(outputs: &[Output]) -> Blake3 {
    let v: Vec<(&Area, &str, &str)> = outputs
        .iter()
        .filter(|o| !o.measure)
        .map(|o| (&o.area, o.path.as_str(), o.blake3.as_str()))
        .collect();
    Blake3::of(&serde_json::to_vec(&v).expect("serialises"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fingerprint of a fixed key never changes: a change here invalidates every cache.
    #[test]
    fn golden_fingerprint() {
        let mut inputs = BTreeMap::new();
        inputs.insert(
            "data/x.txt".to_string(),
            blake3::hash(b"x").to_hex().to_string(),
        );
        let key = FingerprintKey {
            id: "tokenize".into(),
            kind: "command".into(),
            kind_version: 1,
            params: serde_json::json!({"cmd": "echo hi", "deps": ["data/x.txt"], "outs": [], "b": 2.5, "a": [1, "z"]}),
            upstream: vec![("data".into(), Blake3::of(b"up"))],
            inputs,
            seed: 100,
            pipeline: None,
        };
        assert_eq!(
            key.fingerprint().as_str(),
            "8c70ed42b1d882ecfad9d4189b86920b39c5204554d7d0714f51c92b0261568c"
        );
    }

    #[test]
    fn param_order_does_not_matter() {
        let a: Value = serde_json::from_str(r#"{"a":1,"b":{"y":2,"x":3}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"b":{"x":3,"y":2},"a":1}"#).unwrap();
        let k = |p: Value| FingerprintKey {
            id: "s".into(),
            kind: "command".into(),
            kind_version: 1,
            params: p,
            upstream: vec![],
            inputs: BTreeMap::new(),
            seed: 0,
            pipeline: None,
        };
        assert_eq!(k(a).fingerprint(), k(b).fingerprint());
    }
}
