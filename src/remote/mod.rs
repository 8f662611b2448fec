//! Remote stores shared between machines: an S3 bucket and prefix (`s3://bucket/prefix`, any
//! S3-compatible endpoint) or a folder on a shared filesystem. The remote mirrors the local store
//! layout: `objects/<h[..2]>/<h[2..]>` and `runs/<fingerprint>.json`.
//!
//! Nothing from the remote is trusted: every downloaded object is verified by its blake3 before
//! it is renamed into the local store, and every record must name the fingerprint it is stored
//! under. Credentials come from the environment only and are never written anywhere.

pub mod error;
pub mod folder;
pub mod manifest;
pub mod push;
pub mod query;
pub mod s3;
pub mod select;
pub mod sync;

pub use error::RemoteError;
pub use push::push;
pub use sync::{
    fetch_objects, fetch_record, pull, record_log, record_objects, FetchReport, Transfer,
};

use crate::cache::Cache;
use crate::digest::{Blake3, Fingerprint};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub type Result<T> = std::result::Result<T, RemoteError>;

/// S3 settings, normally from the standard AWS variables; tests build them directly.
#[derive(Clone, Default)]
pub struct S3Settings {
    /// `AWS_ENDPOINT_URL`; AWS itself when unset.
    pub endpoint: Option<String>,
    /// `AWS_ACCESS_KEY_ID`.
    pub key_id: Option<String>,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret: Option<String>,
    /// `AWS_REGION` (then `AWS_DEFAULT_REGION`), default `us-east-1`.
    pub region: String,
}

impl std::fmt::Debug for S3Settings {
    // the secret never appears in a debug print or a log
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("endpoint", &self.endpoint)
            .field("key_id", &self.key_id)
            .field("secret", &self.secret.as_ref().map(|_| "***"))
            .field("region", &self.region)
            .finish()
    }
}

impl S3Settings {
    /// Reads `AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`.
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        S3Settings {
            endpoint: var("AWS_ENDPOINT_URL"),
            key_id: var("AWS_ACCESS_KEY_ID"),
            secret: var("AWS_SECRET_ACCESS_KEY"),
            region: var("AWS_REGION")
                .or_else(|| var("AWS_DEFAULT_REGION"))
                .unwrap_or_else(|| "us-east-1".into()),
        }
    }
}

/// One remote store.
#[derive(Debug)]
pub enum Remote {
    S3(Box<s3::S3Remote>),
    Folder(folder::FolderRemote),
}

/// Key of an object in a remote: `objects/ab/cdef…` (the local store's layout).
pub fn object_key(hash: &Blake3) -> String {
    crate::layout::object_rel(hash)
}

/// Key of a run record in a remote: `runs/<fp>.json` (the local store's layout).
pub fn record_key(fp: &Fingerprint) -> String {
    crate::layout::record_rel(fp)
}

impl Remote {
    /// Opens a remote from its URL: `s3://bucket[/prefix]` (S3 settings from the environment),
    /// `file:///path` or a plain folder path (relative paths are relative to `root`).
    pub fn open(url: &str, root: &Path) -> Result<Remote> {
        Remote::open_with(url, root, &S3Settings::from_env())
    }

    /// Like [`Remote::open`], with explicit S3 settings.
    pub fn open_with(url: &str, root: &Path, s3: &S3Settings) -> Result<Remote> {
        let url = url.trim();
        if url.is_empty() {
            return Err(RemoteError::Config {
                url: url.into(),
                msg: "empty remote URL".into(),
            });
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = match rest.split_once('/') {
                Some((b, p)) => (b, p.trim_matches('/')),
                None => (rest, ""),
            };
            return Ok(Remote::S3(Box::new(s3::S3Remote::new(
                url, bucket, prefix, s3,
            )?)));
        }
        let path = if let Some(p) = url.strip_prefix("file://") {
            PathBuf::from(p)
        } else if url.contains("://") {
            return Err(RemoteError::Config {
                url: url.into(),
                msg: "unsupported scheme: use s3://bucket/prefix, file:///path or a folder path"
                    .into(),
            });
        } else {
            root.join(url)
        };
        Ok(Remote::Folder(folder::FolderRemote::new(path)))
    }

    /// How to name this remote in messages (no credentials).
    pub fn describe(&self) -> String {
        match self {
            Remote::S3(s) => s.describe(),
            Remote::Folder(f) => f.root().display().to_string(),
        }
    }

    /// Every key under `dir/` (e.g. `objects`) with its size, relative to the remote's root.
    pub fn list(&self, dir: &str) -> Result<BTreeMap<String, u64>> {
        match self {
            Remote::S3(s) => s.list(dir),
            Remote::Folder(f) => f.list(dir),
        }
    }

    /// The hashes of the objects the remote holds.
    pub fn list_objects(&self) -> Result<BTreeMap<Blake3, u64>> {
        use crate::layout::cache::OBJECTS;
        Ok(self
            .list(OBJECTS)?
            .into_iter()
            .filter_map(|(k, n)| {
                let rest = k.strip_prefix(OBJECTS)?.strip_prefix('/')?;
                let (dir, file) = rest.split_once('/')?;
                let h = Blake3::parse(&format!("{dir}{file}")).ok()?;
                (object_key(&h) == k).then_some((h, n))
            })
            .collect())
    }

    /// The fingerprints of the run records the remote holds.
    pub fn list_records(&self) -> Result<Vec<Fingerprint>> {
        use crate::layout::cache::RUNS;
        Ok(self
            .list(RUNS)?
            .into_keys()
            .filter_map(|k| {
                let fp = k
                    .strip_prefix(RUNS)?
                    .strip_prefix('/')?
                    .strip_suffix(".json")?;
                Fingerprint::parse(fp).ok()
            })
            .collect())
    }

    /// True when the remote has this key.
    pub fn exists(&self, key: &str) -> Result<bool> {
        match self {
            Remote::S3(s) => s.exists(key),
            Remote::Folder(f) => Ok(f.exists(key)),
        }
    }

    /// The size of `key`, asked for that key alone (a stat or a HEAD, never a listing);
    /// `None` when the remote does not have it.
    pub fn size(&self, key: &str) -> Result<Option<u64>> {
        match self {
            Remote::S3(s) => s.size(key),
            Remote::Folder(f) => f.size(key),
        }
    }

    /// The blake3 and length of what the remote holds under `key` (read through, in bounded
    /// memory, nothing stored); `None` when absent.
    pub fn hash(&self, key: &str) -> Result<Option<(Blake3, u64)>> {
        match self {
            Remote::S3(s) => s.hash(key),
            Remote::Folder(f) => f.hash(key),
        }
    }

    /// A small file's bytes (a record), or `None` when absent; more than `limit` bytes is
    /// [`RemoteError::TooLarge`].
    pub fn get_bytes(&self, key: &str, limit: u64) -> Result<Option<Vec<u8>>> {
        match self {
            Remote::S3(s) => s.get_bytes(key, limit),
            Remote::Folder(f) => f.get_bytes(key, limit),
        }
    }

    /// Writes a small file (a record); replaces what is there.
    pub fn put_bytes(&self, key: &str, bytes: &[u8]) -> Result<()> {
        match self {
            Remote::S3(s) => s.put_bytes(key, bytes),
            Remote::Folder(f) => f.put_bytes(key, bytes),
        }
    }

    /// Uploads a local file under `key`; `progress` is told of bytes as they go.
    pub fn put_file(&self, key: &str, path: &Path, progress: &dyn Fn(u64)) -> Result<()> {
        match self {
            Remote::S3(s) => s.put_file(key, path, progress),
            Remote::Folder(f) => f.put_file(key, path, progress),
        }
    }

    /// Streams `key` into the new file `dest`, returning the blake3 of what was received, or
    /// `None` when the remote has no such key.
    pub fn download(
        &self,
        key: &str,
        dest: &Path,
        progress: &dyn Fn(u64),
    ) -> Result<Option<Blake3>> {
        match self {
            Remote::S3(s) => s.download(key, dest, progress),
            Remote::Folder(f) => f.download(key, dest, progress),
        }
    }

    /// Uploads a store object (verified locally first: a corrupt local object is never pushed).
    pub fn put_object(&self, cache: &Cache, hash: &Blake3, progress: &dyn Fn(u64)) -> Result<()> {
        let path = cache.object_path(hash);
        let got = crate::cache::hash_file(&path).map_err(|e| RemoteError::io(&path, e))?;
        if got != *hash {
            return Err(RemoteError::Corrupt {
                key: path.display().to_string(),
                expected: hash.to_string(),
                got: got.to_string(),
            });
        }
        self.put_file(&object_key(hash), &path, progress)
    }

    /// Downloads an object into the local store: to a temp file in `cache/tmp/`, verified by
    /// blake3, then renamed into place. `Ok(None)` when the remote lacks it; `Err(Corrupt)`
    /// (naming the key) when its content does not match its name, and nothing is stored.
    pub fn get_object(
        &self,
        cache: &Cache,
        hash: &Blake3,
        progress: &dyn Fn(u64),
    ) -> Result<Option<u64>> {
        let tmp = crate::cache::tmp::in_cache_tmp(cache.root(), &format!("remote-{hash}"));
        if let Some(dir) = tmp.parent() {
            crate::cache::fsafe::create_dir_all(cache.root(), dir)?;
        }
        let key = object_key(hash);
        let res = self.download(&key, &tmp, progress);
        let got = match res {
            Ok(Some(h)) => h,
            Ok(None) => {
                let _ = std::fs::remove_file(&tmp);
                return Ok(None);
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        if got != *hash {
            let _ = std::fs::remove_file(&tmp);
            return Err(RemoteError::Corrupt {
                key: format!("{}/{key}", self.describe().trim_end_matches('/')),
                expected: hash.to_string(),
                got: got.to_string(),
            });
        }
        let size = std::fs::metadata(&tmp).map(|m| m.len()).unwrap_or(0);
        let stored = cache.adopt(
            &tmp,
            hash,
            "a downloaded object",
            &crate::cache::stat::StatCache::detached(),
        );
        let _ = std::fs::remove_file(&tmp);
        stored.map_err(|e| RemoteError::io(cache.object_path(hash), e))?;
        Ok(Some(size))
    }
}
