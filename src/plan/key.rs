//! Fingerprint keys: what an instance's fingerprint covers given its upstream records (the
//! recorded hash of an upstream output it lists in `deps`, which a run restores first), the lock
//! entry of a record, and why a key differs from the previous run's (typed reasons; a change of
//! order alone is named as one).

use super::Reason;
use crate::cache::lockfile::LockEntry;
use crate::cache::{Area, FingerprintKey, RunRecord};
use crate::config::Node;
use crate::digest::Blake3;
use crate::project::Project;
use std::collections::BTreeMap;

impl Project {
    /// The fingerprint key of an instance given its upstream manifest hashes; the second value
    /// lists declared inputs that do not exist.
    ///
    /// An input that is a project output of an upstream record gets the hash that record gives
    /// it, whatever the working tree holds: a run restores the upstream's outputs before this
    /// instance reads them, so status and run agree.
    pub fn key(
        &self,
        n: &Node,
        upstream: Vec<(String, Blake3)>,
        upstream_records: &[&RunRecord],
    ) -> (FingerprintKey, Vec<String>) {
        let mut inputs = BTreeMap::new();
        let mut missing = Vec::new();
        for p in n.kind.external_inputs(&n.params) {
            let s = p.to_string_lossy().into_owned();
            let found = recorded_input_hash(&s, upstream_records)
                .or_else(|| self.stats.input_hash(&self.pipeline.root.join(&p)));
            match found {
                Some(h) => {
                    inputs.insert(s, h);
                }
                None => {
                    inputs.insert(s.clone(), "missing".into());
                    missing.push(s);
                }
            }
        }
        let info = n.kind.info();
        (
            FingerprintKey {
                id: n.id.clone(),
                kind: info.name.to_string(),
                kind_version: info.version,
                params: n.fingerprint_params(),
                upstream,
                inputs,
                seed: self.pipeline.seed,
                pipeline: info.uses_pipeline_name.then(|| self.pipeline.name.clone()),
            },
            missing,
        )
    }

    /// What an upstream's record contributes to a downstream fingerprint: the hash of its
    /// outputs manifest, or, for kinds whose outputs show measurements (`beam-report`,
    /// `report`: they differ between two runs of the same fingerprint), its fingerprint. So two
    /// clean runs give every instance the same fingerprint, and a rerun that only measured
    /// other speeds reruns nothing downstream.
    pub fn seen_hash(&self, u: &Node, rec: &RunRecord) -> Blake3 {
        if u.kind.info().reads_measurements {
            Blake3::parse(rec.fingerprint.as_str()).expect("a fingerprint is a blake3 hash")
        } else {
            rec.outputs_hash
        }
    }

    /// A lock entry from a run record.
    pub fn lock_entry(&self, n: &Node, rec: &RunRecord) -> LockEntry {
        LockEntry {
            kind: n.kind_name.clone(),
            fingerprint: rec.fingerprint,
            outputs: rec
                .outputs
                .iter()
                .filter(|o| !o.measure)
                .map(|o| (self.display(n, o), o.blake3))
                .collect(),
            metrics: rec.metrics.clone(),
            params: n.params.clone(),
        }
    }
}

/// The hash an input will have once upstream records are restored: a project output file of
/// one of them, or a folder of such files (hashed as `StatCache::input_hash` does).
fn recorded_input_hash(path: &str, recs: &[&RunRecord]) -> Option<String> {
    let path = path.trim_end_matches('/');
    let prefix = format!("{path}/");
    let mut list: Vec<(String, String)> = Vec::new();
    for r in recs {
        for o in &r.outputs {
            if o.area != Area::Project {
                continue;
            }
            if o.path == path {
                return Some(o.blake3.to_string());
            }
            if let Some(rest) = o.path.strip_prefix(&prefix) {
                list.push((rest.to_string(), o.blake3.to_string()));
            }
        }
    }
    if list.is_empty() {
        return None;
    }
    list.sort();
    let bytes = serde_json::to_vec(&list).ok()?;
    Some(format!("dir:{}", blake3::hash(&bytes).to_hex()))
}

/// Why `key` differs from the key of the previous run.
pub(super) fn diff_reasons(prev: &FingerprintKey, key: &FingerprintKey) -> Vec<Reason> {
    let mut r = Vec::new();
    if prev.kind != key.kind {
        r.push(Reason::KindChanged {
            from: prev.kind.clone(),
            to: key.kind.clone(),
        });
    } else if prev.kind_version != key.kind_version {
        r.push(Reason::KindVersion {
            kind: key.kind.clone(),
            from: prev.kind_version,
            to: key.kind_version,
        });
    }
    params_diff(prev, key, &mut r);
    inputs_diff(prev, key, &mut r);
    upstream_diff(prev, key, &mut r);
    if prev.seed != key.seed {
        r.push(Reason::Seed {
            from: prev.seed,
            to: key.seed,
        });
    }
    if prev.pipeline != key.pipeline {
        r.push(Reason::PipelineName {
            from: prev.pipeline.clone(),
            to: key.pipeline.clone(),
        });
    }
    if prev.id != key.id {
        r.push(Reason::IdChanged {
            from: prev.id.clone(),
            to: key.id.clone(),
        });
    }
    if r.is_empty() {
        r.push(Reason::FingerprintChanged);
    }
    r
}

fn params_diff(prev: &FingerprintKey, key: &FingerprintKey, r: &mut Vec<Reason>) {
    let empty = serde_json::Map::new();
    let a = prev.params.as_object().unwrap_or(&empty);
    let b = key.params.as_object().unwrap_or(&empty);
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        let (x, y) = (a.get(k), b.get(k));
        if x != y {
            r.push(Reason::ParamChanged {
                key: k.clone(),
                from: x.cloned(),
                to: y.cloned(),
            });
        }
    }
}

fn inputs_diff(prev: &FingerprintKey, key: &FingerprintKey, r: &mut Vec<Reason>) {
    for (p, h) in &key.inputs {
        match prev.inputs.get(p) {
            Some(h0) if h0 == h => {}
            Some(_) if h == "missing" => r.push(Reason::InputMissing { path: p.clone() }),
            Some(_) => r.push(Reason::InputChanged { path: p.clone() }),
            None => r.push(Reason::InputAdded { path: p.clone() }),
        }
    }
    for p in prev.inputs.keys() {
        if !key.inputs.contains_key(p) {
            r.push(Reason::InputRemoved { path: p.clone() });
        }
    }
}

/// Upstreams changed, added or removed, and a change of their order alone (a record made
/// before upstreams were kept in canonical order).
fn upstream_diff(prev: &FingerprintKey, key: &FingerprintKey, r: &mut Vec<Reason>) {
    let ids = |k: &FingerprintKey| k.upstream.iter().map(|(id, _)| id.clone()).collect();
    let (was, now): (Vec<String>, Vec<String>) = (ids(prev), ids(key));
    let pu: BTreeMap<&String, &Blake3> = prev.upstream.iter().map(|(a, b)| (a, b)).collect();
    let ku: BTreeMap<&String, &Blake3> = key.upstream.iter().map(|(a, b)| (a, b)).collect();
    if was != now && pu.keys().eq(ku.keys()) {
        r.push(Reason::UpstreamReordered { from: was, to: now });
    }
    for (id, h) in &key.upstream {
        match pu.get(id) {
            Some(h0) if *h0 == h => {}
            Some(_) => r.push(Reason::UpstreamChanged { id: id.clone() }),
            None => r.push(Reason::UpstreamAdded { id: id.clone() }),
        }
    }
    for (id, _) in &prev.upstream {
        if !ku.contains_key(id) {
            r.push(Reason::UpstreamRemoved { id: id.clone() });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(upstream: &[(&str, &[u8])]) -> FingerprintKey {
        FingerprintKey {
            id: "c".into(),
            kind: "command".into(),
            kind_version: 1,
            params: serde_json::json!({ "cmd": "x" }),
            upstream: upstream
                .iter()
                .map(|(id, h)| (id.to_string(), Blake3::of(h)))
                .collect(),
            inputs: Default::default(),
            seed: 1,
            pipeline: None,
        }
    }

    #[test]
    fn a_change_of_upstream_order_alone_is_named() {
        let old = key(&[("tokenize", b"t"), ("embed", b"e")]);
        let new = key(&[("embed", b"e"), ("tokenize", b"t")]);
        let r = diff_reasons(&old, &new);
        assert_eq!(
            r,
            vec![Reason::UpstreamReordered {
                from: vec!["tokenize".into(), "embed".into()],
                to: vec!["embed".into(), "tokenize".into()],
            }]
        );
        assert_eq!(
            r[0].to_string(),
            "upstreams reordered: tokenize, embed -> embed, tokenize"
        );
        // Reordered and changed: both named.
        let changed = key(&[("embed", b"E"), ("tokenize", b"t")]);
        let r = diff_reasons(&old, &changed);
        assert!(r.contains(&Reason::UpstreamChanged { id: "embed".into() }));
        assert!(matches!(r[0], Reason::UpstreamReordered { .. }));
    }
}
