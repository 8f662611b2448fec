//! Planning: for each stage instance, up to date, restore (outputs from the store, nothing
//! recomputed) or run, with typed reasons (new stage, changed param, changed input, upstream
//! will run, output differs, forced, …), computed from fingerprints, run records, the working
//! tree and the pipeline's lock file without running anything.

pub mod reason;

pub use crate::project::Project;
pub use reason::Reason;

use crate::cache::lockfile::LockEntry;
use crate::cache::{Area, FingerprintKey, RunRecord};
use crate::config::Node;
use crate::digest::{Blake3, Fingerprint};
use std::collections::BTreeMap;

impl Project {
    /// The fingerprint key of an instance given its upstream manifest hashes; the second value
    /// lists declared inputs that do not exist.
    ///
    /// An input that is missing on disk but is a project output of an upstream record (about
    /// to be restored) gets the hash it will have.
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
            let found = self
                .stats
                .input_hash(&self.pipeline.root.join(&p))
                .or_else(|| recorded_input_hash(&s, upstream_records));
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

/// What an instance needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    UpToDate,
    /// The record's outputs are placed again from the store (or the store repaired from the
    /// tree); nothing is recomputed.
    Restore,
    Run,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::UpToDate => "up-to-date",
            State::Restore => "restore",
            State::Run => "run",
        }
    }
}

/// The plan of one instance.
#[derive(Debug, Clone)]
pub struct Planned {
    pub state: State,
    pub reasons: Vec<Reason>,
    /// Known when every upstream has a record.
    pub fingerprint: Option<Fingerprint>,
    /// The record of that fingerprint, when there is one.
    pub record: Option<RunRecord>,
}

/// Why `key` differs from the key of the previous run.
fn diff_reasons(prev: &FingerprintKey, key: &FingerprintKey) -> Vec<Reason> {
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
    let pu: BTreeMap<&String, &Blake3> = prev.upstream.iter().map(|(a, b)| (a, b)).collect();
    let ku: BTreeMap<&String, &Blake3> = key.upstream.iter().map(|(a, b)| (a, b)).collect();
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

/// Plans the instances marked in `selected`. `force[i]` forces instance i to run. With
/// `rehash`, every materialised file and store object is re-read instead of trusting the stat
/// cache. `interrupted(id)` tells whether an earlier run of an instance was interrupted.
pub fn plan(
    proj: &Project,
    selected: &[bool],
    force: &[bool],
    rehash: bool,
    interrupted: &dyn Fn(&str) -> bool,
) -> Vec<Option<Planned>> {
    let p = &proj.pipeline;
    let mut out: Vec<Option<Planned>> = vec![None; p.nodes.len()];
    for &i in &proj.dag.order {
        if !selected[i] {
            continue;
        }
        let n = &p.nodes[i];
        // Upstream hashes, when every upstream has a record that will be in place.
        let mut ups = Vec::new();
        let mut up_recs = Vec::new();
        let mut waiting = Vec::new();
        for u in proj
            .dag
            .fingerprint_upstream(i, n.kind.info().reads_measurements)
        {
            let pl = out[u].as_ref();
            match pl.and_then(|pl| pl.record.as_ref().filter(|_| pl.state != State::Run)) {
                Some(rec) => {
                    ups.push((p.nodes[u].id.clone(), rec.outputs_hash));
                    up_recs.push(rec);
                }
                None => waiting.push(p.nodes[u].id.clone()),
            }
        }
        let mut planned = Planned {
            state: State::Run,
            reasons: Vec::new(),
            fingerprint: None,
            record: None,
        };
        if force[i] {
            planned.reasons.push(Reason::Forced);
        }
        if !waiting.is_empty() {
            for w in waiting {
                planned.reasons.push(Reason::UpstreamWillRun { id: w });
            }
            out[i] = Some(planned);
            continue;
        }
        let (key, _missing) = proj.key(n, ups, &up_recs);
        let fp = key.fingerprint();
        planned.fingerprint = Some(fp);
        match proj.cache.record(&fp) {
            Some(rec) if !force[i] => {
                let c = crate::instance::outputs::check(proj, n, &rec, rehash);
                planned.state = if c.unrestorable {
                    State::Run
                } else if c.reasons.is_empty() {
                    State::UpToDate
                } else {
                    State::Restore
                };
                planned.reasons.extend(c.reasons);
                if planned.state != State::Run {
                    planned.record = Some(rec);
                }
            }
            Some(_) => {}
            None => {
                if !force[i] {
                    if interrupted(&n.id) {
                        planned.reasons.push(Reason::Interrupted);
                    }
                    match proj.lock.stages.get(&n.id) {
                        None if planned.reasons.is_empty() => {
                            planned.reasons.push(Reason::NewStage)
                        }
                        None => {}
                        Some(e) => match proj.cache.record(&e.fingerprint) {
                            Some(prev) => planned.reasons.extend(diff_reasons(&prev.key, &key)),
                            None => planned.reasons.push(Reason::NoCachedRun),
                        },
                    }
                }
            }
        }
        out[i] = Some(planned);
    }
    out
}
