//! Planning: for each stage instance, up to date or will run with the reasons why (new stage,
//! changed param, changed input, upstream will run, output missing, forced), computed from
//! fingerprints, run records and the pipeline's lock file without running anything.

use crate::cache::lockfile::{LockEntry, LockFile};
use crate::cache::stat::StatCache;
use crate::cache::{Area, Cache, FingerprintKey, Output, RunRecord};
use crate::config::{self, Node, Overrides, Pipeline};
use crate::error::Result;
use crate::graph::Dag;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A loaded project: the expanded pipeline, its DAG, the cache and the previous lock file.
pub struct Project {
    pub pipeline: Pipeline,
    pub dag: Dag,
    pub cache: Cache,
    pub stats: StatCache,
    pub lock: LockFile,
}

impl Project {
    /// Loads and validates a pipeline (configuration errors exit 2; nothing is written).
    pub fn load(root: &Path, file: &Path, ov: &Overrides) -> Result<Project> {
        let pipeline = config::load(root, file, ov)?;
        let dag = Dag::new(&pipeline);
        let cache = Cache::new(root);
        let stats = StatCache::load(&cache.dir);
        let lock = LockFile::read(&pipeline.lock_path());
        Ok(Project {
            pipeline,
            dag,
            cache,
            stats,
            lock,
        })
    }

    pub fn results_dir(&self, n: &Node) -> PathBuf {
        self.pipeline
            .root
            .join("results")
            .join(&self.pipeline.name)
            .join(&n.id)
    }

    pub fn ckpt_dir(&self, n: &Node) -> PathBuf {
        self.pipeline
            .root
            .join("checkpoints")
            .join(&self.pipeline.name)
            .join(&n.ckpt_name)
    }

    pub fn log_path(&self, n: &Node) -> PathBuf {
        self.pipeline
            .root
            .join("results")
            .join(&self.pipeline.name)
            .join("logs")
            .join(format!("{}.log", n.id))
    }

    /// Where an output file lives once materialised.
    pub fn dest(&self, n: &Node, o: &Output) -> PathBuf {
        match o.area {
            Area::Results => self.results_dir(n).join(&o.path),
            Area::Checkpoints => self.ckpt_dir(n).join(&o.path),
            Area::Project => self.pipeline.root.join(&o.path),
        }
    }

    /// The output's path relative to the project root, for messages and the lock file.
    pub fn display(&self, n: &Node, o: &Output) -> String {
        let p = &self.pipeline.name;
        match o.area {
            Area::Results => format!("results/{p}/{}/{}", n.id, o.path),
            Area::Checkpoints => format!("checkpoints/{p}/{}/{}", n.ckpt_name, o.path),
            Area::Project => o.path.clone(),
        }
    }

    /// The fingerprint key of an instance given its upstream manifest hashes; the second value
    /// lists declared inputs that do not exist.
    ///
    /// An input that is missing on disk but is a project output of an upstream record (about
    /// to be restored) gets the hash it will have.
    pub fn key(
        &self,
        n: &Node,
        upstream: Vec<(String, String)>,
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

    /// Why a record's outputs are not in place, if they are not: a file missing or of another
    /// size, a project file with other content (hashed through the stat cache), or a declared
    /// output folder holding files the record does not list.
    pub fn missing_output(&self, n: &Node, rec: &RunRecord) -> Option<String> {
        let mut project_files = 0usize;
        for o in &rec.outputs {
            let dest = self.dest(n, o);
            match std::fs::metadata(&dest) {
                Ok(m) if m.len() == o.size => {}
                Ok(_) => return Some(format!("output {} differs", self.display(n, o))),
                Err(_) => return Some(format!("output {} missing", self.display(n, o))),
            }
            if o.area == Area::Project {
                project_files += 1;
                if self.stats.file_hash(&dest).ok().as_deref() != Some(o.blake3.as_str()) {
                    return Some(format!("output {} changed", self.display(n, o)));
                }
            }
        }
        if project_files > 0 {
            for d in n.kind.declared_outputs(&n.params) {
                let full = self.pipeline.root.join(&d);
                if full.is_dir() {
                    let ds = d.to_string_lossy().trim_end_matches('/').to_string();
                    let listed = rec
                        .outputs
                        .iter()
                        .filter(|o| {
                            o.area == Area::Project && o.path.starts_with(&format!("{ds}/"))
                        })
                        .count();
                    if crate::cache::walk(&full).map(|f| f.len()).unwrap_or(0) != listed {
                        return Some(format!("output folder {ds} has other files"));
                    }
                }
            }
        }
        None
    }

    /// Re-hashes a record's store objects and materialised files; the first bad one.
    pub fn verify(&self, n: &Node, rec: &RunRecord) -> Option<String> {
        for o in &rec.outputs {
            if !self.cache.verify_object(&o.blake3) {
                return Some(format!(
                    "store object of {} corrupt or missing",
                    self.display(n, o)
                ));
            }
            match crate::cache::hash_file(&self.dest(n, o)) {
                Ok(h) if h == o.blake3 => {}
                _ => return Some(format!("output {} changed or missing", self.display(n, o))),
            }
        }
        None
    }

    /// A lock entry from a run record.
    pub fn lock_entry(&self, n: &Node, rec: &RunRecord) -> LockEntry {
        LockEntry {
            kind: n.kind_name.clone(),
            fingerprint: rec.fingerprint.clone(),
            outputs: rec
                .outputs
                .iter()
                .filter(|o| !o.measure)
                .map(|o| (self.display(n, o), o.blake3.clone()))
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
                return Some(o.blake3.clone());
            }
            if let Some(rest) = o.path.strip_prefix(&prefix) {
                list.push((rest.to_string(), o.blake3.clone()));
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

/// What a stage's fingerprint sees of an upstream record: its outputs hash, plus its
/// measurements for kinds that read them.
pub fn upstream_hash(n: &Node, rec: &RunRecord) -> String {
    if n.kind.info().reads_measurements {
        format!("{}+{}", rec.outputs_hash, rec.measurements_hash())
    } else {
        rec.outputs_hash.clone()
    }
}

/// Whether an instance needs work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    UpToDate,
    WillRun,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::UpToDate => "up-to-date",
            State::WillRun => "will-run",
        }
    }
}

/// The plan of one instance.
#[derive(Debug, Clone)]
pub struct Planned {
    pub state: State,
    pub reasons: Vec<String>,
    /// Known when every upstream has a record.
    pub fingerprint: Option<String>,
    /// The record of that fingerprint, when there is one.
    pub record: Option<RunRecord>,
    /// Will-run only because outputs are missing from the working tree: they are restored
    /// from the store, not recomputed.
    pub restore: bool,
}

fn short(v: &Value) -> String {
    let s = match v {
        Value::String(s) => s.clone(),
        v => v.to_string(),
    };
    if s.chars().count() > 40 {
        format!("{}…", s.chars().take(39).collect::<String>())
    } else {
        s
    }
}

/// Why `key` differs from the key of the previous run.
fn diff_reasons(prev: &FingerprintKey, key: &FingerprintKey) -> Vec<String> {
    let mut r = Vec::new();
    if prev.kind != key.kind || prev.kind_version != key.kind_version {
        r.push(format!(
            "kind {} v{} -> {} v{}",
            prev.kind, prev.kind_version, key.kind, key.kind_version
        ));
    }
    let empty = serde_json::Map::new();
    let a = prev.params.as_object().unwrap_or(&empty);
    let b = key.params.as_object().unwrap_or(&empty);
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        match (a.get(k), b.get(k)) {
            (Some(x), Some(y)) if x != y => {
                r.push(format!("param {k}: {} -> {}", short(x), short(y)))
            }
            (Some(x), None) => r.push(format!("param {k}: {} -> (removed)", short(x))),
            (None, Some(y)) => r.push(format!("param {k}: (new) -> {}", short(y))),
            _ => {}
        }
    }
    for (p, h) in &key.inputs {
        match prev.inputs.get(p) {
            Some(h0) if h0 == h => {}
            Some(_) if h == "missing" => r.push(format!("input {p} missing")),
            Some(_) => r.push(format!("input {p} changed")),
            None => r.push(format!("input {p} added")),
        }
    }
    for p in prev.inputs.keys() {
        if !key.inputs.contains_key(p) {
            r.push(format!("input {p} removed"));
        }
    }
    let pu: BTreeMap<&String, &String> = prev.upstream.iter().map(|(a, b)| (a, b)).collect();
    for (id, h) in &key.upstream {
        match pu.get(id) {
            Some(h0) if *h0 == h => {}
            Some(_) => r.push(format!("upstream {id} changed")),
            None => r.push(format!("upstream {id} added")),
        }
    }
    if prev.upstream.len() > key.upstream.len() {
        r.push("an upstream was removed".into());
    }
    if prev.seed != key.seed {
        r.push(format!("seed {} -> {}", prev.seed, key.seed));
    }
    if prev.id != key.id {
        r.push("stage id changed".into());
    }
    if r.is_empty() {
        r.push("fingerprint changed".into());
    }
    r
}

/// Plans the instances marked in `selected`. `force[i]` forces instance i to run.
/// With `verify`, records that look fresh are re-hashed (store objects and materialised files).
pub fn plan(
    proj: &Project,
    selected: &[bool],
    force: &[bool],
    verify: bool,
) -> Vec<Option<Planned>> {
    let p = &proj.pipeline;
    let mut out: Vec<Option<Planned>> = vec![None; p.nodes.len()];
    for &i in &proj.dag.order {
        if !selected[i] {
            continue;
        }
        let n = &p.nodes[i];
        // Upstream hashes, when every upstream has a record.
        let mut ups = Vec::new();
        let mut up_recs = Vec::new();
        let mut waiting = Vec::new();
        for u in proj
            .dag
            .fingerprint_upstream(i, n.kind.info().reads_measurements)
        {
            match out[u].as_ref().and_then(|pl| pl.record.as_ref()) {
                Some(rec) => {
                    ups.push((p.nodes[u].id.clone(), upstream_hash(n, rec)));
                    up_recs.push(rec);
                }
                None => waiting.push(p.nodes[u].id.clone()),
            }
        }
        let mut planned = Planned {
            state: State::WillRun,
            reasons: Vec::new(),
            fingerprint: None,
            record: None,
            restore: false,
        };
        if force[i] {
            planned.reasons.push("forced".into());
        }
        if !waiting.is_empty() {
            for w in waiting {
                planned.reasons.push(format!("upstream {w} will run"));
            }
            out[i] = Some(planned);
            continue;
        }
        let (key, _missing) = proj.key(n, ups, &up_recs);
        let fp = key.fingerprint();
        planned.fingerprint = Some(fp.clone());
        match proj.cache.record(&fp) {
            Some(rec) => {
                if let Some(m) = proj.missing_output(n, &rec) {
                    planned
                        .reasons
                        .push(format!("{m} (restored from the store, not recomputed)"));
                    planned.restore = !force[i];
                } else if verify {
                    if let Some(bad) = proj.verify(n, &rec) {
                        planned.reasons.push(bad);
                    }
                }
                if planned.reasons.is_empty() {
                    planned.state = State::UpToDate;
                }
                planned.record = Some(rec);
            }
            None => {
                if !force[i] {
                    match proj.lock.stages.get(&n.id) {
                        None => planned.reasons.push("new stage".into()),
                        Some(e) => match proj.cache.record(&e.fingerprint) {
                            Some(prev) => planned.reasons.extend(diff_reasons(&prev.key, &key)),
                            None => planned.reasons.push("no cached run".into()),
                        },
                    }
                }
            }
        }
        // A forced stage is not a valid upstream source for planning its dependents.
        if force[i] {
            planned.record = None;
            planned.state = State::WillRun;
        }
        out[i] = Some(planned);
    }
    out
}
