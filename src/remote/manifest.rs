//! Job manifests: what a Slurm job that shares no folder with the driver needs to rebuild the
//! instance in its own scratch folder. The project files it reads (the pipeline file, the
//! `--params` file, project-local `stages/<kind>.yaml`, the stage's `deps`) travel as
//! content-addressed objects (`objects/<h[..2]>/<h[2..]>`, the store's layout); the manifest
//! that lists them is itself stored under its blake3 (`jobs/<hash>.json`), so a job given the
//! key can check that it reads exactly what the driver wrote. A failed job leaves its log under
//! `jobs/<fingerprint>.<job id>.log` for the driver.

use super::{object_key, Remote, RemoteError, Result};
use crate::digest::{Blake3, Fingerprint};
use serde::{Deserialize, Serialize};
use std::path::{Component, Path};

/// One project file of a job: its path relative to the project root, blake3 and size.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ManifestFile {
    pub path: String,
    pub blake3: Blake3,
    pub size: u64,
}

/// Everything a job without a shared folder needs besides the upstream records.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct JobManifest {
    /// The pipeline file, relative to the project root.
    pub pipeline: String,
    /// The instance id.
    pub id: String,
    /// The fingerprint the driver submitted.
    pub fingerprint: Fingerprint,
    /// Upstream instance id → fingerprint of the record the job reads.
    pub ups: Vec<(String, Fingerprint)>,
    /// The run's `--set` overrides.
    pub sets: Vec<String>,
    /// The `--params` file (one of `files`), relative to the project root.
    pub params: Option<String>,
    /// Run even if a record of the fingerprint exists.
    pub forced: bool,
    /// Project files, by path.
    pub files: Vec<ManifestFile>,
}

/// The largest job manifest read.
const MAX_MANIFEST_BYTES: u64 = 64 << 20;

/// Key of a manifest whose bytes hash to `hash`.
pub fn manifest_key(hash: &Blake3) -> String {
    format!("jobs/{hash}.json")
}

/// Key of the log a failed job leaves for the driver.
pub fn job_log_key(fp: &Fingerprint, job_id: &str) -> String {
    format!("jobs/{fp}.{job_id}.log")
}

/// True for a relative path of plain components (no `..`, no root, not empty): the only
/// paths a job writes into its scratch folder.
pub fn is_plain_relative(p: &str) -> bool {
    !p.is_empty()
        && !p.contains('\0')
        && Path::new(p)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

/// Uploads the file at `path` as an object unless the remote has it; its manifest entry,
/// under the path `rel` the job gives it.
pub fn put_file(remote: &Remote, path: &Path, rel: &str) -> Result<ManifestFile> {
    let blake3 = crate::cache::hash_file(path).map_err(|e| RemoteError::io(path, e))?;
    let size = std::fs::metadata(path)
        .map_err(|e| RemoteError::io(path, e))?
        .len();
    let key = object_key(&blake3);
    if !remote.exists(&key)? {
        remote.put_file(&key, path, &|_| {})?;
    }
    Ok(ManifestFile {
        path: rel.to_string(),
        blake3,
        size,
    })
}

/// Stores a manifest under its hash; its key.
pub fn put(remote: &Remote, m: &JobManifest) -> Result<String> {
    let bytes = serde_json::to_vec_pretty(m).expect("a manifest serialises");
    let key = manifest_key(&Blake3::of(&bytes));
    if !remote.exists(&key)? {
        remote.put_bytes(&key, &bytes)?;
    }
    Ok(key)
}

/// Reads the manifest at `key` (`jobs/<hash>.json`), checking that its bytes hash to the
/// name and that every path in it is a plain relative path.
pub fn get(remote: &Remote, key: &str) -> Result<JobManifest> {
    let corrupt = |got: String| RemoteError::Corrupt {
        key: format!("{}/{key}", remote.describe().trim_end_matches('/')),
        expected: "a job manifest".into(),
        got,
    };
    let hash = key
        .strip_prefix("jobs/")
        .and_then(|k| k.strip_suffix(".json"))
        .and_then(|h| Blake3::parse(h).ok())
        .ok_or_else(|| RemoteError::Config {
            url: remote.describe(),
            msg: format!("`{key}` is not a job manifest key (jobs/<blake3>.json)"),
        })?;
    let bytes = remote
        .get_bytes(key, MAX_MANIFEST_BYTES)?
        .ok_or_else(|| RemoteError::Config {
            url: remote.describe(),
            msg: format!("no job manifest `{key}`"),
        })?;
    let got = Blake3::of(&bytes);
    if got != hash {
        return Err(RemoteError::Corrupt {
            key: format!("{}/{key}", remote.describe().trim_end_matches('/')),
            expected: hash.to_string(),
            got: got.to_string(),
        });
    }
    let m: JobManifest =
        serde_json::from_slice(&bytes).map_err(|e| corrupt(format!("not a manifest ({e})")))?;
    let paths = m
        .files
        .iter()
        .map(|f| f.path.as_str())
        .chain(std::iter::once(m.pipeline.as_str()))
        .chain(m.params.as_deref());
    for p in paths {
        if !is_plain_relative(p) {
            return Err(corrupt(format!("unsafe path `{p}`")));
        }
    }
    Ok(m)
}

/// Downloads every file of a manifest into `dest` (a fresh folder the caller owns), each
/// verified by blake3 before it is renamed to its path.
pub fn materialise(remote: &Remote, m: &JobManifest, dest: &Path) -> Result<()> {
    for f in &m.files {
        let path = dest.join(&f.path);
        let parent = path.parent().unwrap_or(dest);
        std::fs::create_dir_all(parent).map_err(|e| RemoteError::io(parent, e))?;
        let tmp = parent.join(format!(".pipe-download.{}", crate::cache::tmp::suffix()));
        let key = object_key(&f.blake3);
        let got = match remote.download(&key, &tmp, &|_| {}) {
            Ok(Some(h)) => h,
            Ok(None) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(RemoteError::Config {
                    url: remote.describe(),
                    msg: format!("object {key} (project file `{}`) is missing", f.path),
                });
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        if got != f.blake3 {
            let _ = std::fs::remove_file(&tmp);
            return Err(RemoteError::Corrupt {
                key: format!("{}/{key}", remote.describe().trim_end_matches('/')),
                expected: f.blake3.to_string(),
                got: got.to_string(),
            });
        }
        std::fs::rename(&tmp, &path).map_err(|e| RemoteError::io(&path, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths() {
        assert!(is_plain_relative("pipelines/p.yaml"));
        assert!(is_plain_relative("in.txt"));
        for bad in ["", "/etc/passwd", "../x", "a/../../b", "./a", "a\0b"] {
            assert!(!is_plain_relative(bad), "{bad}");
        }
    }

    #[test]
    fn manifest_round_trip_checks_hash_and_paths() {
        let dir = tempfile::tempdir().unwrap();
        let remote = Remote::Folder(super::super::folder::FolderRemote::new(
            dir.path().join("remote"),
        ));
        let root = dir.path().join("proj");
        std::fs::create_dir_all(root.join("pipelines")).unwrap();
        std::fs::write(root.join("pipelines/p.yaml"), "stages: {}\n").unwrap();
        let f = put_file(&remote, &root.join("pipelines/p.yaml"), "pipelines/p.yaml").unwrap();
        let m = JobManifest {
            pipeline: "pipelines/p.yaml".into(),
            id: "a".into(),
            fingerprint: Fingerprint::parse(&"f".repeat(64)).unwrap(),
            ups: vec![],
            sets: vec![],
            params: None,
            forced: false,
            files: vec![f],
        };
        let key = put(&remote, &m).unwrap();
        assert_eq!(get(&remote, &key).unwrap(), m);
        let out = dir.path().join("scratch");
        materialise(&remote, &m, &out).unwrap();
        assert_eq!(
            std::fs::read_to_string(out.join("pipelines/p.yaml")).unwrap(),
            "stages: {}\n"
        );
        // A manifest whose bytes do not hash to its name is refused.
        let other = manifest_key(&Blake3::parse(&"0".repeat(64)).unwrap());
        remote.put_bytes(&other, b"{}").unwrap();
        assert!(get(&remote, &other).unwrap_err().is_corrupt());
        // A path outside the scratch folder is refused.
        let mut evil = m.clone();
        evil.files[0].path = "../escape".into();
        let key = put(&remote, &evil).unwrap();
        assert!(get(&remote, &key).unwrap_err().is_corrupt());
    }
}
