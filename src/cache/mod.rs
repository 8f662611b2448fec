//! The cache: fingerprints, content hashing with a stat cache, the content-addressed object
//! store, run records, the project lock and `<pipeline>.lock` files.
//!
//! Layout under `cache/`: `objects/ab/cdef…` (read-only blobs named by blake3), `runs/<fp>.json`
//! (one run record per fingerprint, written last by rename), `tmp/` (staging), `stat.json`
//! (path+size+mtime+inode → hash), `lock` (the project lock).

pub mod lockfile;
pub mod project_lock;
pub mod stat;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

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
    pub upstream: Vec<(String, String)>,
    /// External input (as written in params) → content hash.
    pub inputs: BTreeMap<String, String>,
    pub seed: u64,
    /// The pipeline's `name`, for kinds that read it (`KindInfo::uses_pipeline_name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<String>,
}

impl FingerprintKey {
    /// blake3 hex of the canonical JSON of the key.
    pub fn fingerprint(&self) -> String {
        let bytes = serde_json::to_vec(self).expect("a key always serialises");
        blake3::hash(&bytes).to_hex().to_string()
    }
}

/// Where an output file is materialised.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Area {
    /// `results/<pipeline>/<id>/`
    Results,
    /// `checkpoints/<pipeline>/<stage>/`
    Checkpoints,
    /// The project root (`outs` of command stages).
    Project,
}

/// One output file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Output {
    pub area: Area,
    /// Relative path inside the area, `/`-separated.
    pub path: String,
    pub blake3: String,
    pub size: u64,
    /// A measurement (speeds, wall times): stored and restored, but not part of the outputs
    /// hash that downstream fingerprints see.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub measure: bool,
}

/// The record of one successful stage run, keyed by fingerprint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    pub fingerprint: String,
    pub key: FingerprintKey,
    /// Sorted by (area, path).
    pub outputs: Vec<Output>,
    /// blake3 of the outputs manifest: what downstream fingerprints see.
    pub outputs_hash: String,
    pub duration_s: f64,
    /// Headline metrics from the stage's `metrics.json`.
    pub metrics: BTreeMap<String, Value>,
}

impl RunRecord {
    /// Hash of the run's measurements (measurement files and duration): part of the
    /// fingerprint of kinds that read them (`KindInfo::reads_measurements`), of no other.
    pub fn measurements_hash(&self) -> String {
        let v: Vec<(&str, &str)> = self
            .outputs
            .iter()
            .filter(|o| o.measure)
            .map(|o| (o.path.as_str(), o.blake3.as_str()))
            .collect();
        let bytes = serde_json::to_vec(&(v, self.duration_s.to_bits())).expect("serialises");
        blake3::hash(&bytes).to_hex().to_string()
    }
}

/// Hash of an outputs manifest (measurement outputs left out).
pub fn manifest_hash(outputs: &[Output]) -> String {
    let v: Vec<(&Area, &str, &str)> = outputs
        .iter()
        .filter(|o| !o.measure)
        .map(|o| (&o.area, o.path.as_str(), o.blake3.as_str()))
        .collect();
    blake3::hash(&serde_json::to_vec(&v).expect("serialises"))
        .to_hex()
        .to_string()
}

/// blake3 hex of a file's content.
pub fn hash_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = blake3::Hasher::new();
    let len = f.metadata()?.len();
    if len > 1 << 24 {
        let mut buf = Vec::with_capacity(len as usize);
        std::io::Read::read_to_end(&mut f, &mut buf)?;
        h.update_rayon(&buf);
    } else {
        h.update_reader(&mut f)?;
    }
    Ok(h.finalize().to_hex().to_string())
}

/// Files under a folder, as sorted `/`-separated relative paths.
pub fn walk(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut out = Vec::new();
    fn rec(base: &Path, rel: &str, out: &mut Vec<String>) -> std::io::Result<()> {
        let dir = if rel.is_empty() {
            base.to_path_buf()
        } else {
            base.join(rel)
        };
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            let r = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let ft = e.file_type()?;
            if ft.is_dir() {
                rec(base, &r, out)?;
            } else if ft.is_file() || ft.is_symlink() {
                out.push(r);
            }
        }
        Ok(())
    }
    if dir.is_dir() {
        rec(dir, "", &mut out)?;
    }
    out.sort();
    Ok(out)
}

/// The `cache/` folder of a project.
#[derive(Debug, Clone)]
pub struct Cache {
    pub dir: PathBuf,
}

impl Cache {
    pub fn new(root: &Path) -> Self {
        Cache {
            dir: root.join("cache"),
        }
    }

    pub fn object_path(&self, hash: &str) -> PathBuf {
        self.dir.join("objects").join(&hash[..2]).join(&hash[2..])
    }

    pub fn record_path(&self, fp: &str) -> PathBuf {
        self.dir.join("runs").join(format!("{fp}.json"))
    }

    pub fn tmp_dir(&self) -> PathBuf {
        self.dir.join("tmp")
    }

    /// The run record for a fingerprint, if there is a readable one.
    pub fn record(&self, fp: &str) -> Option<RunRecord> {
        let bytes = std::fs::read(self.record_path(fp)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Writes a record atomically (temp file + rename): the last step of a run.
    pub fn write_record(&self, rec: &RunRecord) -> std::io::Result<()> {
        let path = self.record_path(&rec.fingerprint);
        write_atomic(&path, &serde_json::to_vec_pretty(rec)?)
    }

    /// Moves (or links, or copies) `src` into the store under `hash`. With `keep_src`, the
    /// source stays in place (project `outs`); otherwise it may be renamed away.
    pub fn store(&self, src: &Path, hash: &str, keep_src: bool) -> std::io::Result<()> {
        let obj = self.object_path(hash);
        if obj.exists() {
            return Ok(());
        }
        std::fs::create_dir_all(obj.parent().expect("object has a parent"))?;
        let tmp = obj.with_extension(tmp_suffix());
        let _ = std::fs::remove_file(&tmp);
        if keep_src {
            if std::fs::hard_link(src, &tmp).is_err() {
                std::fs::copy(src, &tmp)?;
            }
        } else if std::fs::rename(src, &tmp).is_err() {
            std::fs::copy(src, &tmp)?;
        }
        let mut perm = std::fs::metadata(&tmp)?.permissions();
        perm.set_readonly(true);
        std::fs::set_permissions(&tmp, perm)?;
        std::fs::rename(&tmp, &obj)
    }

    /// Re-hashes an object: true when present and intact. A corrupt object is removed.
    pub fn verify_object(&self, hash: &str) -> bool {
        let obj = self.object_path(hash);
        match hash_file(&obj) {
            Ok(h) if h == hash => true,
            Ok(_) => {
                let _ = std::fs::remove_file(&obj);
                false
            }
            Err(_) => false,
        }
    }

    /// Places an object at `dest` (hard link, copy fallback), replacing what is there.
    pub fn materialise(&self, hash: &str, dest: &Path) -> std::io::Result<()> {
        let obj = self.object_path(hash);
        if let Some(p) = dest.parent() {
            std::fs::create_dir_all(p)?;
        }
        match std::fs::symlink_metadata(dest) {
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(dest)?,
            Ok(_) => std::fs::remove_file(dest)?,
            Err(_) => {}
        }
        if std::fs::hard_link(&obj, dest).is_err() {
            std::fs::copy(&obj, dest)?;
        }
        Ok(())
    }
}

/// A temp-file suffix unique within the machine: pid plus a per-process counter.
fn tmp_suffix() -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("tmp{}-{n}", std::process::id())
}

/// Writes a file atomically: a temp file in the same folder, then rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p)?;
    }
    let tmp = path.with_extension(tmp_suffix());
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
    }
    std::fs::rename(&tmp, path)
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
            upstream: vec![("data".into(), blake3::hash(b"up").to_hex().to_string())],
            inputs,
            seed: 100,
            pipeline: None,
        };
        assert_eq!(
            key.fingerprint(),
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
