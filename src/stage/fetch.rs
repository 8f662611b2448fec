//! The `fetch` stage kind: a local file or a download (optionally only the first `bytes` bytes,
//! resumed from a partial file, checksum-verified, kept in `cache/downloads/`), or a file with
//! the right blake3 found under a mirror folder (`PIPE_MIRROR`, colon-separated) without network.
//! Writes `<file name>` and `fetch.json` = `{"file", "bytes", "blake3", "source"}`.

use super::{KindInfo, StageCtx, StageKind, Upstream};
use anyhow::Context;
use serde::Deserialize;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub struct Fetch;

/// Environment variable holding mirror folders (colon-separated).
pub const MIRROR_ENV: &str = "PIPE_MIRROR";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub path: Option<String>,
    pub url: Option<String>,
    pub bytes: Option<u64>,
    pub blake3: Option<String>,
    pub timeout_s: f64,
}

/// The content of `fetch.json`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, Deserialize)]
pub struct FetchRecord {
    pub file: String,
    pub bytes: u64,
    pub blake3: String,
    pub source: String,
}

/// The file an upstream fetch stage produced (from its `fetch.json`).
pub fn fetched_file(up: &Upstream) -> anyhow::Result<PathBuf> {
    let rec = read_record(&up.results)
        .with_context(|| format!("upstream stage `{}` (kind fetch)", up.id))?;
    Ok(up.results.join(rec.file))
}

/// Reads `<dir>/fetch.json`.
pub fn read_record(dir: &Path) -> anyhow::Result<FetchRecord> {
    let p = dir.join("fetch.json");
    let text = std::fs::read_to_string(&p).with_context(|| format!("{}", p.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not a fetch record", p.display()))
}

/// Checks values; `need_source` also requires one of `path`/`url` (the kind's defaults alone
/// have neither, and `check` must accept them).
fn validate(p: &Params, need_source: bool) -> Result<(), String> {
    match (&p.path, &p.url) {
        (Some(_), Some(_)) => return Err("give either `path` or `url`, not both".into()),
        (None, None) if need_source => {
            return Err("give `path` (a local file) or `url` (a download)".into())
        }
        _ => {}
    }
    if let Some(u) = &p.url {
        if !(u.starts_with("http://") || u.starts_with("https://")) {
            return Err(format!("`url` = {u:?} must start with http:// or https://"));
        }
    }
    if let Some(b) = p.bytes {
        if p.url.is_none() {
            return Err("`bytes` only applies to a `url`".into());
        }
        if b == 0 {
            return Err("`bytes` must be positive".into());
        }
    }
    if let Some(h) = &p.blake3 {
        if h.len() != 64 || !h.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!("`blake3` = {h:?} is not 64 hex digits"));
        }
    }
    if p.timeout_s.is_nan() || p.timeout_s <= 0.0 {
        return Err(format!("`timeout_s` = {} must be positive", p.timeout_s));
    }
    Ok(())
}

/// blake3 hex of a file's content.
pub fn hash_file(path: &Path) -> std::io::Result<String> {
    let mut h = blake3::Hasher::new();
    h.update_reader(File::open(path)?)?;
    Ok(h.finalize().to_hex().to_string())
}

/// The file name a URL names (last path segment, without query; unsafe characters replaced).
pub fn url_file_name(url: &str) -> String {
    let no_q = url.split(['?', '#']).next().unwrap_or(url);
    let after_scheme = no_q.split_once("://").map(|x| x.1).unwrap_or(no_q);
    let last = after_scheme
        .split_once('/')
        .map(|(_, p)| p.rsplit('/').next().unwrap_or(""))
        .unwrap_or("");
    let clean: String = last
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.is_empty() || clean.chars().all(|c| c == '.') {
        "download".into()
    } else {
        clean
    }
}

/// Where a verified download of (url, bytes, blake3) is kept; the partial file adds `.part`.
pub fn download_cache_path(
    cache_dir: &Path,
    url: &str,
    bytes: Option<u64>,
    blake3: Option<&str>,
) -> PathBuf {
    let key = match blake3 {
        Some(h) => h.to_ascii_lowercase()[..16].to_string(),
        None => {
            let mut h = blake3::Hasher::new();
            h.update(url.as_bytes());
            h.update(&[0]);
            h.update(&bytes.unwrap_or(u64::MAX).to_le_bytes());
            h.finalize().to_hex()[..16].to_string()
        }
    };
    cache_dir
        .join("downloads")
        .join(format!("{key}-{}", url_file_name(url)))
}

/// Mirror folders from a colon-separated list (empty entries skipped).
pub fn mirror_dirs(var: &str) -> Vec<PathBuf> {
    var.split(':')
        .filter(|s| !s.trim().is_empty())
        .map(PathBuf::from)
        .collect()
}

fn walk(dir: &Path, depth: usize, out: &mut Vec<(PathBuf, u64)>) {
    if depth > 32 {
        return;
    }
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = rd.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            walk(&p, depth + 1, out);
        } else if let Ok(m) = std::fs::metadata(&p) {
            // Regular files and symlinks to files (symlinked folders are not followed).
            if m.is_file() {
                out.push((p, m.len()));
            }
        }
    }
}

/// A file under one of `mirrors` (searched recursively) whose blake3 is `blake3`. Candidates are
/// hashed in this order: files called `name`, then files of `size` bytes (or, when the size is
/// unknown, every other file).
pub fn find_in_mirrors(
    mirrors: &[PathBuf],
    name: &str,
    size: Option<u64>,
    blake3: &str,
) -> Option<PathBuf> {
    let mut files = Vec::new();
    for m in mirrors {
        if m.is_file() {
            let len = std::fs::metadata(m).map(|x| x.len()).unwrap_or(0);
            files.push((m.clone(), len));
        } else {
            walk(m, 0, &mut files);
        }
    }
    let named = |p: &Path| p.file_name().is_some_and(|n| n == name);
    let by_name = files.iter().filter(|(p, _)| named(p));
    let rest = files.iter().filter(|(p, len)| {
        !named(p)
            && match size {
                Some(s) => *len == s,
                None => true,
            }
    });
    let want = blake3.to_ascii_lowercase();
    by_name
        .chain(rest)
        .filter(|(_, len)| size.is_none_or(|s| *len == s))
        .find(|(p, _)| hash_file(p).is_ok_and(|h| h == want))
        .map(|(p, _)| p.clone())
}

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

impl StageKind for Fetch {
    fn info(&self) -> KindInfo {
        KindInfo {
            name: "fetch",
            version: 1,
            defaults_yaml: include_str!("../../stages/fetch.yaml"),
            heavy: false,
            per_epoch: false,
            free_matrix_keys: false,
            needs: &[],
            uses_pipeline_name: false,
            reads_measurements: false,
        }
    }

    fn check(&self, params: &serde_json::Value) -> Result<(), String> {
        let p: Params = super::check_as(params)?;
        validate(&p, false)
    }

    fn external_inputs(&self, params: &serde_json::Value) -> Vec<PathBuf> {
        serde_json::from_value::<Params>(params.clone())
            .ok()
            .and_then(|p| p.path)
            .map(PathBuf::from)
            .into_iter()
            .collect()
    }

    fn run(&self, ctx: &StageCtx) -> anyhow::Result<()> {
        let p: Params = ctx.params()?;
        validate(&p, true).map_err(|e| anyhow::anyhow!("stage `{}`: {e}", ctx.id))?;
        let want = p.blake3.as_ref().map(|h| h.to_ascii_lowercase());
        let (src, name, source) = if let Some(path) = &p.path {
            let src = ctx.path(path);
            if !src.is_file() {
                anyhow::bail!(
                    "stage `{}`: `path` = {path:?}: no such file ({})",
                    ctx.id,
                    src.display()
                );
            }
            let name = src
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "input".into());
            (src, name, path.clone())
        } else {
            let url = p.url.clone().expect("validated");
            let name = url_file_name(&url);
            (
                self.obtain(ctx, &url, p.bytes, want.as_deref(), p.timeout_s)?,
                name,
                url,
            )
        };
        let hash = hash_file(&src).with_context(|| format!("{}", src.display()))?;
        if let Some(w) = &want {
            if &hash != w {
                anyhow::bail!(
                    "stage `{}`: checksum mismatch for {source}: blake3 is {hash}, expected {w} (`blake3`)",
                    ctx.id
                );
            }
        }
        let size = std::fs::metadata(&src)?.len();
        let dest = ctx.out_dir.join(&name);
        // Downloads in the cache may be hard-linked; user files and mirror files are copied so
        // that later edits to them cannot reach the stored result.
        let in_cache = src.starts_with(ctx.cache_dir.join("downloads"));
        if !(in_cache && std::fs::hard_link(&src, &dest).is_ok()) {
            std::fs::copy(&src, &dest)
                .with_context(|| format!("copying {} to {}", src.display(), dest.display()))?;
        }
        let rec = FetchRecord {
            file: name,
            bytes: size,
            blake3: hash,
            source,
        };
        std::fs::write(
            ctx.out_dir.join("fetch.json"),
            serde_json::to_string_pretty(&rec)?,
        )?;
        ctx.reporter.log(format!(
            "{} ({} bytes, blake3 {})",
            rec.file, rec.bytes, rec.blake3
        ));
        Ok(())
    }
}

impl Fetch {
    /// A verified local copy of the URL: from the download cache, a mirror, or the network.
    fn obtain(
        &self,
        ctx: &StageCtx,
        url: &str,
        bytes: Option<u64>,
        want: Option<&str>,
        timeout_s: f64,
    ) -> anyhow::Result<PathBuf> {
        let cached = download_cache_path(&ctx.cache_dir, url, bytes, want);
        if let Some(w) = want {
            if cached.is_file() && hash_file(&cached).is_ok_and(|h| h == w) {
                ctx.reporter
                    .log(format!("using the earlier download {}", cached.display()));
                return Ok(cached);
            }
        }
        let mirror_var = std::env::var(MIRROR_ENV).unwrap_or_default();
        let mirrors = mirror_dirs(&mirror_var);
        if let Some(w) = want {
            if !mirrors.is_empty() {
                if let Some(hit) = find_in_mirrors(&mirrors, &url_file_name(url), bytes, w) {
                    ctx.reporter
                        .log(format!("{url}: using mirror file {}", hit.display()));
                    return Ok(hit);
                }
            }
        }
        let part = PathBuf::from(format!("{}.part", cached.display()));
        let mut bar: Option<crate::progress::Bar> = None;
        let res = download(
            url,
            bytes,
            &part,
            Duration::from_secs_f64(timeout_s),
            &mut |total, n| {
                let b = bar.get_or_insert_with(|| {
                    ctx.reporter.bar(
                        total.unwrap_or(0),
                        &format!("download {}", url_file_name(url)),
                    )
                });
                b.inc(n);
            },
        );
        if let Some(b) = bar {
            b.finish();
        }
        if let Err(e) = res {
            let mirror_desc = if mirror_var.trim().is_empty() {
                format!("{MIRROR_ENV} is not set")
            } else {
                format!("{MIRROR_ENV}={mirror_var}")
            };
            let hint = match want {
                Some(w) => format!(
                    "no file with blake3 {w} was found in a mirror ({mirror_desc}); put the file in a folder named by {MIRROR_ENV} (or --mirror), or check the network"
                ),
                None => format!(
                    "a mirror can only be used with a checksum ({mirror_desc}): add the file's `blake3` to the stage's params, or check the network"
                ),
            };
            anyhow::bail!("stage `{}`: {e}; {hint}", ctx.id);
        }
        let got = hash_file(&part).with_context(|| format!("{}", part.display()))?;
        if let Some(w) = want {
            if got != w {
                let _ = std::fs::remove_file(&part);
                anyhow::bail!(
                    "stage `{}`: checksum mismatch for {url}: the download has blake3 {got}, expected {w} (`blake3`); the partial file was removed",
                    ctx.id
                );
            }
        }
        std::fs::rename(&part, &cached)
            .with_context(|| format!("moving {} to {}", part.display(), cached.display()))?;
        Ok(cached)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_from_urls() {
        assert_eq!(
            url_file_name("https://huggingface.co/datasets/roneneldan/TinyStories/resolve/main/TinyStories-train.txt?download=1"),
            "TinyStories-train.txt"
        );
        assert_eq!(url_file_name("http://host"), "download");
        assert_eq!(url_file_name("http://host/"), "download");
        assert_eq!(url_file_name("http://h/a b%20.txt"), "a_b_20.txt");
    }

    #[test]
    fn params_are_checked() {
        let ok = |v: serde_json::Value| {
            let mut base = serde_json::json!({"path": null, "url": null, "bytes": null, "blake3": null, "timeout_s": 60});
            for (k, x) in v.as_object().unwrap() {
                base[k] = x.clone();
            }
            Fetch.check(&base)
        };
        assert!(ok(serde_json::json!({"path": "a.txt"})).is_ok());
        assert!(ok(serde_json::json!({})).is_ok());
        let p: Params = serde_json::from_value(serde_json::json!({"path": null, "url": null, "bytes": null, "blake3": null, "timeout_s": 60})).unwrap();
        assert!(validate(&p, true).unwrap_err().contains("`path`"));
        assert!(ok(serde_json::json!({"url": "ftp://x"}))
            .unwrap_err()
            .contains("`url`"));
        assert!(ok(serde_json::json!({"path": "a", "bytes": 3}))
            .unwrap_err()
            .contains("`bytes`"));
        assert!(
            ok(serde_json::json!({"url": "http://x/a", "blake3": "abc"}))
                .unwrap_err()
                .contains("`blake3`")
        );
        assert!(ok(serde_json::json!({"url": "http://x/a", "sha": "abc"}))
            .unwrap_err()
            .contains("sha"));
    }
}
