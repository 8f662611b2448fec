//! The `fetch` stage kind: a local file or a download (optionally only the first `bytes` bytes,
//! resumed from a partial file, checksum-verified, kept in `cache/downloads/`), or a file with
//! the right blake3 found under a mirror folder (`StageCtx::mirrors`: `--mirror`, `PIPE_MIRROR`)
//! without network.
//! Writes `<file name>` and `fetch.json` = `{"file", "bytes", "blake3", "source"}`.

use super::{Kind, KindInfo, StageCtx, Upstream};
use crate::cache::hash_file;
use crate::download::{url_file_name, Request};
use crate::layout::CacheLayout;
use anyhow::Context;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub struct Fetch;

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
    let text = std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
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

impl Kind for Fetch {
    type Params = Params;

    fn info(&self) -> KindInfo {
        KindInfo::base("fetch", 1, include_str!("../../stages/fetch.yaml"))
    }

    fn validate(&self, p: &Params) -> Result<(), String> {
        validate(p, false)
    }

    fn external_inputs(&self, p: &Params) -> Vec<PathBuf> {
        p.path.iter().map(PathBuf::from).collect()
    }

    fn run(&self, ctx: &StageCtx, p: &Params) -> anyhow::Result<()> {
        // The defaults alone have no source; a stage that runs must name one.
        validate(p, true).map_err(|e| anyhow::anyhow!("{e}"))?;
        let want = p.blake3.as_ref().map(|h| h.to_ascii_lowercase());
        let (src, name, source) = if let Some(path) = &p.path {
            let src = ctx.path(path);
            if let Some(why) = crate::input_file::not_a_file(&src) {
                anyhow::bail!("`path` = {path:?} ({}): {why}", src.display());
            }
            let name = src
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "input".into());
            (src, name, path.clone())
        } else {
            let url = p.url.clone().expect("validated");
            let name = url_file_name(&url);
            let req = Request {
                url: &url,
                bytes: p.bytes,
                blake3: want.as_deref(),
                timeout: Duration::from_secs_f64(p.timeout_s),
            };
            (obtain(ctx, &req)?, name, url)
        };
        let hash = hash_file(&src).with_context(|| format!("reading {}", src.display()))?;
        if let Some(w) = &want {
            if &hash != w {
                anyhow::bail!(
                    "checksum mismatch for {source}: blake3 is {hash}, expected {w} (`blake3`)"
                );
            }
        }
        let size = std::fs::metadata(&src)
            .with_context(|| format!("reading {}", src.display()))?
            .len();
        let dest = ctx.out_dir.join(&name);
        // Downloads in the cache may be hard-linked; user files and mirror files are copied so
        // that later edits to them cannot reach the stored result.
        let in_cache = src.starts_with(CacheLayout::at(&ctx.cache_dir).downloads());
        if !(in_cache && std::fs::hard_link(&src, &dest).is_ok()) {
            std::fs::copy(&src, &dest)
                .with_context(|| format!("copying {} to {}", src.display(), dest.display()))?;
        }
        let rec = FetchRecord {
            file: name,
            bytes: size,
            blake3: hash.to_string(),
            source,
        };
        crate::stage::write_file(
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

/// A verified local copy of the URL (see [`crate::download::obtain`]), with the stage's log and
/// a progress bar for the download.
fn obtain(ctx: &StageCtx, req: &Request) -> anyhow::Result<PathBuf> {
    let mut bar: Option<crate::progress::Bar> = None;
    let res = crate::download::obtain(
        &ctx.cache_dir,
        req,
        &ctx.mirrors,
        &mut |line| ctx.reporter.log(line),
        &mut |total, n| {
            let b = bar.get_or_insert_with(|| {
                ctx.reporter.bar(
                    total.unwrap_or(0),
                    &format!("download {}", url_file_name(req.url)),
                )
            });
            b.inc(n);
        },
    );
    if let Some(b) = bar {
        b.finish();
    }
    Ok(res?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stage::StageKind;

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
