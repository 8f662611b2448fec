//! HTTP download of a whole file or its first bytes, resumed from a partial file.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why a download failed.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("{0}")]
    Network(String),
    #[error("{0}")]
    Content(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Downloads `url` (only its first `bytes` bytes when given) into `part`, resuming from what
/// `part` already holds. `progress(total, done_now)` is called as data arrives.
pub fn download(
    url: &str,
    bytes: Option<u64>,
    part: &Path,
    timeout: Duration,
    progress: &mut dyn FnMut(Option<u64>, u64),
) -> Result<(), DownloadError> {
    download_inner(url, bytes, part, timeout, progress, true)
}

fn download_inner(
    url: &str,
    bytes: Option<u64>,
    part: &Path,
    timeout: Duration,
    progress: &mut dyn FnMut(Option<u64>, u64),
    may_retry: bool,
) -> Result<(), DownloadError> {
    let io = |source| DownloadError::Io {
        path: part.to_path_buf(),
        source,
    };
    if let Some(dir) = part.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut have = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
    if let Some(n) = bytes {
        if have > n {
            std::fs::remove_file(part).map_err(io)?;
            have = 0;
        }
        if have == n {
            return Ok(());
        }
    }
    let range = match bytes {
        Some(n) => Some(format!("bytes={have}-{}", n - 1)),
        None if have > 0 => Some(format!("bytes={have}-")),
        None => None,
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(timeout))
        .timeout_recv_response(Some(timeout))
        .timeout_per_read(Some(timeout))
        .build()
        .into();
    let mut req = agent.get(url).header("Accept-Encoding", "identity");
    if let Some(r) = &range {
        req = req.header("Range", r);
    }
    let resp = req
        .call()
        .map_err(|e| DownloadError::Network(format!("could not download {url}: {e}")))?;
    let status = resp.status().as_u16();
    let content_len = resp
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let start = match status {
        206 => {
            if let Some(cr) = resp
                .headers()
                .get("content-range")
                .and_then(|v| v.to_str().ok())
            {
                let first = cr
                    .trim_start_matches("bytes ")
                    .split('-')
                    .next()
                    .and_then(|s| s.trim().parse::<u64>().ok());
                if first != Some(have) {
                    return Err(DownloadError::Content(format!(
                        "{url}: asked for bytes from {have}, the server sent `Content-Range: {cr}`"
                    )));
                }
            }
            have
        }
        200 => 0,
        416 if have > 0 && may_retry => {
            std::fs::remove_file(part).map_err(io)?;
            return download_inner(url, bytes, part, timeout, progress, false);
        }
        s => {
            return Err(DownloadError::Network(format!(
                "could not download {url}: HTTP status {s}"
            )))
        }
    };
    let total = match (bytes, content_len) {
        (Some(n), _) => Some(n),
        (None, Some(l)) => Some(start + l),
        (None, None) => None,
    };
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(part)
        .map_err(io)?;
    f.set_len(start).map_err(io)?;
    use std::io::Seek;
    f.seek(std::io::SeekFrom::Start(start)).map_err(io)?;
    progress(total, start);
    let body = resp.into_body().into_reader();
    let mut body: Box<dyn Read> = match bytes {
        Some(n) => Box::new(body.take(n - start)),
        None => Box::new(body),
    };
    let mut buf = vec![0u8; 1 << 16];
    let mut got = start;
    loop {
        let n = body.read(&mut buf).map_err(|e| {
            DownloadError::Network(format!(
                "download of {url} interrupted after {got} bytes: {e} (run again to resume)"
            ))
        })?;
        if n == 0 {
            break;
        }
        f.write_all(&buf[..n]).map_err(io)?;
        got += n as u64;
        progress(total, n as u64);
    }
    f.flush().map_err(io)?;
    drop(f);
    if let Some(n) = bytes {
        if got != n {
            let _ = std::fs::remove_file(part);
            return Err(DownloadError::Content(format!(
                "{url}: asked for the first {n} bytes but received {got}; is the file shorter than `bytes`?"
            )));
        }
    }
    Ok(())
}
