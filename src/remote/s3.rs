//! An S3 bucket and prefix on any S3-compatible endpoint, spoken to synchronously with `ureq`
//! through requests presigned by `rusty-s3` (path-style URLs, SigV4). Connect and read timeouts
//! keep an unreachable endpoint from hanging the caller.

use super::{RemoteError, Result, S3Settings};
use rusty_s3::actions::ListObjectsV2;
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long the server may stay silent while answering or receiving.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a presigned request stays valid.
const SIGN_FOR: Duration = Duration::from_secs(3600);

pub struct S3Remote {
    url: String,
    endpoint: String,
    prefix: String,
    bucket: Bucket,
    creds: Credentials,
    agent: ureq::Agent,
}

impl std::fmt::Debug for S3Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// True for hosts where plain http is accepted.
fn is_loopback(host: &str) -> bool {
    host == "localhost" || host == "[::1]" || host.starts_with("127.")
}

impl S3Remote {
    pub fn new(url: &str, bucket: &str, prefix: &str, s: &S3Settings) -> Result<Self> {
        let cfg = |msg: String| RemoteError::Config {
            url: url.into(),
            msg,
        };
        if bucket.is_empty() {
            return Err(cfg("no bucket name: write s3://bucket/prefix".into()));
        }
        let region = if s.region.is_empty() {
            "us-east-1".to_string()
        } else {
            s.region.clone()
        };
        let endpoint = s
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
        let ep: url::Url = endpoint
            .parse()
            .map_err(|e| cfg(format!("AWS_ENDPOINT_URL `{endpoint}` is not a URL: {e}")))?;
        let host = ep.host_str().unwrap_or("").to_string();
        match ep.scheme() {
            "https" => {}
            "http" if is_loopback(&host) => {}
            "http" => {
                return Err(cfg(format!(
                    "endpoint `{endpoint}` uses plain http: use https (http is accepted for 127.0.0.1 and localhost only)"
                )))
            }
            other => return Err(cfg(format!("endpoint `{endpoint}`: unsupported scheme `{other}`"))),
        }
        let (key_id, secret) = match (&s.key_id, &s.secret) {
            (Some(k), Some(sec)) => (k.clone(), sec.clone()),
            _ => {
                return Err(cfg(
                    "S3 credentials missing: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
                        .into(),
                ))
            }
        };
        let b = Bucket::new(ep, UrlStyle::Path, bucket.to_string(), region)
            .map_err(|e| cfg(format!("endpoint `{endpoint}` with bucket `{bucket}`: {e}")))?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_recv_response(Some(IO_TIMEOUT))
            .timeout_per_read(Some(IO_TIMEOUT))
            .timeout_per_write(Some(IO_TIMEOUT))
            .build()
            .into();
        Ok(S3Remote {
            url: url.into(),
            endpoint: endpoint.trim_end_matches('/').to_string(),
            prefix: prefix.to_string(),
            bucket: b,
            creds: Credentials::new(key_id, secret),
            agent,
        })
    }

    pub fn describe(&self) -> String {
        format!("{} at {}", self.url, self.endpoint)
    }

    fn full_key(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}/{key}", self.prefix)
        }
    }

    fn net(&self, op: &str, key: &str, e: impl std::fmt::Display) -> RemoteError {
        RemoteError::Unreachable {
            endpoint: self.endpoint.clone(),
            detail: format!("{op} `{key}`: {e}"),
        }
    }

    /// Turns a non-success answer into a typed error.
    fn fail(
        &self,
        op: &'static str,
        key: &str,
        mut resp: ureq::http::Response<ureq::Body>,
    ) -> RemoteError {
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(64 * 1024)
            .read_to_string()
            .unwrap_or_default();
        let code = xml_tag(&body, "Code").unwrap_or_default();
        if status == 401 || status == 403 {
            return RemoteError::Auth {
                endpoint: self.endpoint.clone(),
                status,
                code: if code.is_empty() {
                    String::new()
                } else {
                    format!(": {code}")
                },
                key_id: self.creds.key().to_string(),
            };
        }
        if code == "NoSuchBucket" {
            return RemoteError::NoBucket {
                endpoint: self.endpoint.clone(),
                bucket: self.bucket.name().to_string(),
            };
        }
        let detail = xml_tag(&body, "Message")
            .map(|m| format!("{code}: {m}"))
            .unwrap_or_else(|| body.chars().take(200).collect());
        RemoteError::Http {
            endpoint: self.endpoint.clone(),
            op,
            key: key.to_string(),
            status,
            detail,
        }
    }

    pub fn list(&self, dir: &str) -> Result<BTreeMap<String, u64>> {
        let full_dir = format!("{}/", self.full_key(dir));
        let strip = if self.prefix.is_empty() {
            0
        } else {
            self.prefix.len() + 1
        };
        let mut out = BTreeMap::new();
        let mut token: Option<String> = None;
        loop {
            let mut action = ListObjectsV2::new(&self.bucket, Some(&self.creds));
            action.with_prefix(full_dir.as_str());
            if let Some(t) = &token {
                action.with_continuation_token(t.as_str());
            }
            let url = action.sign(SIGN_FOR);
            let resp = self
                .agent
                .get(url.as_str())
                .call()
                .map_err(|e| self.net("list", &full_dir, e))?;
            if !resp.status().is_success() {
                return Err(self.fail("list", &full_dir, resp));
            }
            let text = resp
                .into_body()
                .into_with_config()
                .limit(64 << 20)
                .read_to_string()
                .map_err(|e| self.net("list", &full_dir, e))?;
            let parsed = ListObjectsV2::parse_response(&text).map_err(|e| RemoteError::Http {
                endpoint: self.endpoint.clone(),
                op: "list",
                key: full_dir.clone(),
                status: 200,
                detail: format!("unreadable listing: {e}"),
            })?;
            for c in parsed.contents {
                if c.key.len() > strip {
                    out.insert(c.key[strip..].to_string(), c.size.unwrap_or(0));
                }
            }
            match parsed.next_continuation_token {
                Some(t) if !t.is_empty() => token = Some(t),
                _ => break,
            }
        }
        Ok(out)
    }

    pub fn exists(&self, key: &str) -> Result<bool> {
        let k = self.full_key(key);
        let url = self
            .bucket
            .head_object(Some(&self.creds), &k)
            .sign(SIGN_FOR);
        let resp = self
            .agent
            .head(url.as_str())
            .call()
            .map_err(|e| self.net("head", &k, e))?;
        match resp.status().as_u16() {
            200..=299 => Ok(true),
            404 => Ok(false),
            _ => Err(self.fail("head", &k, resp)),
        }
    }

    /// GET a key; `None` on 404 (and not a missing bucket).
    fn get(&self, key: &str) -> Result<Option<ureq::http::Response<ureq::Body>>> {
        let k = self.full_key(key);
        let url = self.bucket.get_object(Some(&self.creds), &k).sign(SIGN_FOR);
        let resp = self
            .agent
            .get(url.as_str())
            .header("Accept-Encoding", "identity")
            .call()
            .map_err(|e| self.net("get", &k, e))?;
        match resp.status().as_u16() {
            200..=299 => Ok(Some(resp)),
            _ => match self.fail("get", &k, resp) {
                RemoteError::Http { status: 404, .. } => Ok(None),
                e => Err(e),
            },
        }
    }

    pub fn get_bytes(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let Some(resp) = self.get(key)? else {
            return Ok(None);
        };
        let k = self.full_key(key);
        resp.into_body()
            .into_with_config()
            .limit(256 << 20)
            .read_to_vec()
            .map(Some)
            .map_err(|e| self.net("get", &k, e))
    }

    pub fn download(
        &self,
        key: &str,
        dest: &Path,
        progress: &dyn Fn(u64),
    ) -> Result<Option<crate::digest::Blake3>> {
        let Some(resp) = self.get(key)? else {
            return Ok(None);
        };
        let k = self.full_key(key);
        let reader = NetReader {
            inner: resp.into_body().into_reader(),
            failed: None,
        };
        let mut reader = reader;
        let res = super::folder::copy_hashing(&mut reader, dest, progress);
        match (res, reader.failed) {
            (_, Some(e)) => Err(self.net("get", &k, e)),
            (Ok(h), None) => Ok(Some(h)),
            (Err(e), None) => Err(RemoteError::io(dest, e)),
        }
    }

    fn put(&self, key: &str, body: impl ureq::AsSendBody) -> Result<()> {
        let k = self.full_key(key);
        let url = self.bucket.put_object(Some(&self.creds), &k).sign(SIGN_FOR);
        let resp = self
            .agent
            .put(url.as_str())
            .send(body)
            .map_err(|e| self.net("put", &k, e))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(self.fail("put", &k, resp))
        }
    }

    pub fn put_bytes(&self, key: &str, bytes: &[u8]) -> Result<()> {
        self.put(key, bytes)
    }

    pub fn put_file(&self, key: &str, path: &Path, progress: &dyn Fn(u64)) -> Result<()> {
        let f = std::fs::File::open(path).map_err(|e| RemoteError::io(path, e))?;
        let n = f.metadata().map(|m| m.len()).unwrap_or(0);
        self.put(key, f)?;
        progress(n);
        Ok(())
    }
}

/// A body reader that remembers network errors, so that they are told apart from disk errors.
struct NetReader<R> {
    inner: R,
    failed: Option<std::io::Error>,
}

impl<R: Read> Read for NetReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => Ok(n),
            Err(e) => {
                let copy = std::io::Error::new(e.kind(), e.to_string());
                self.failed = Some(e);
                Err(copy)
            }
        }
    }
}

/// The text of the first `<tag>…</tag>` in an XML error body.
fn xml_tag(body: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = body.find(&open)? + open.len();
    let end = body[start..].find(&format!("</{tag}>"))? + start;
    Some(body[start..end].trim().to_string())
}
