//! A verified local copy of a URL: the earlier download kept under `cache/downloads/`, a mirror
//! file with the wanted blake3, or the network (resumed from a partial file, checked, then
//! renamed into the download cache).

use super::{
    download, download_cache_path, find_in_mirrors, url_file_name, DownloadError, MIRROR_ENV,
};
use crate::cache::{fsafe, hash_file};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What to obtain.
pub struct Request<'a> {
    pub url: &'a str,
    /// Only the first `bytes` bytes.
    pub bytes: Option<u64>,
    /// The expected blake3 (lower-case hex); without it no mirror can be used.
    pub blake3: Option<&'a str>,
    pub timeout: Duration,
}

/// Why no verified copy could be obtained.
#[derive(Debug, thiserror::Error)]
pub enum ObtainError {
    /// The download failed; `hint` says where a mirror was looked for.
    // Fields named `err`, not `source`: the message already holds the cause, so an error
    // chain printed with `{:#}` does not repeat it.
    #[error("{err}; {hint}")]
    Download { err: DownloadError, hint: String },
    #[error(
        "checksum mismatch for {url}: the download has blake3 {got}, expected {want} (`blake3`); the partial file was removed"
    )]
    Checksum {
        url: String,
        got: String,
        want: String,
    },
    #[error("{what} {path}: {err}")]
    Io {
        what: &'static str,
        path: PathBuf,
        err: std::io::Error,
    },
}

/// Where a verified copy of `req` is on disk: the download cache under `cache_dir`, a file in
/// one of `mirrors`, or a fresh download into the cache. `log` gets one line saying which;
/// `progress(total, done_now)` is called as a download arrives.
pub fn obtain(
    cache_dir: &Path,
    req: &Request,
    mirrors: &[PathBuf],
    log: &mut dyn FnMut(String),
    progress: &mut dyn FnMut(Option<u64>, u64),
) -> Result<PathBuf, ObtainError> {
    let (url, want) = (req.url, req.blake3);
    let cached = download_cache_path(cache_dir, url, req.bytes, want);
    if let Some(w) = want {
        if cached.is_file() && hash_file(&cached).is_ok_and(|h| h == w) {
            log(format!("using the earlier download {}", cached.display()));
            return Ok(cached);
        }
        if let Some(hit) = find_in_mirrors(mirrors, &url_file_name(url), req.bytes, w) {
            log(format!("{url}: using mirror file {}", hit.display()));
            return Ok(hit);
        }
    }
    let part = PathBuf::from(format!("{}.part", cached.display()));
    // `cache/downloads/` and the partial file are written, never through a link.
    let root = cache_dir.parent().unwrap_or(cache_dir);
    let safe = |p: &Path| fsafe::create_dir_all(root, p.parent().unwrap_or(root));
    safe(&part)
        .and_then(|()| match std::fs::symlink_metadata(&part) {
            Ok(m) if !m.is_file() => fsafe::remove(root, &part),
            _ => Ok(()),
        })
        .map_err(|e| ObtainError::Io {
            what: "writing",
            path: part.clone(),
            err: e.into(),
        })?;
    if let Err(err) = download(url, req.bytes, &part, req.timeout, progress) {
        return Err(ObtainError::Download {
            err,
            hint: mirror_hint(mirrors, want),
        });
    }
    let got = hash_file(&part).map_err(|err| ObtainError::Io {
        what: "reading",
        path: part.clone(),
        err,
    })?;
    if let Some(w) = want {
        if got != w {
            let _ = std::fs::remove_file(&part);
            return Err(ObtainError::Checksum {
                url: url.to_string(),
                got: got.to_string(),
                want: w.to_string(),
            });
        }
    }
    fsafe::rename(root, &part, &cached).map_err(|err| ObtainError::Io {
        what: "moving the download to",
        path: cached.clone(),
        err: err.into(),
    })?;
    Ok(cached)
}

/// What to do when the network fails: where mirrors were looked for and what they need.
fn mirror_hint(mirrors: &[PathBuf], want: Option<&str>) -> String {
    let desc = if mirrors.is_empty() {
        format!("no mirror folder was given: --mirror DIR or {MIRROR_ENV}")
    } else {
        let list: Vec<String> = mirrors.iter().map(|m| m.display().to_string()).collect();
        format!("mirror folders {}", list.join(", "))
    };
    match want {
        Some(w) => format!(
            "no file with blake3 {w} was found in a mirror ({desc}); put the file in a folder named by {MIRROR_ENV} (or --mirror), or check the network"
        ),
        None => format!(
            "a mirror can only be used with a checksum ({desc}): add the file's `blake3` to the stage's params, or check the network"
        ),
    }
}
