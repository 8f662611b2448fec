//! An S3 bucket and prefix on any S3-compatible endpoint, spoken to synchronously with `ureq`
//! through requests presigned by `rusty-s3` (path-style URLs, SigV4). Every request has a
//! deadline (`PIPE_REMOTE_TIMEOUT` seconds, default 5): a request without a large body (a
//! listing page, a HEAD, a record or manifest) must finish within it, and an object transfer
//! must connect and get its answer within it and never stall longer than it, so a silent or
//! unreachable endpoint fails within the deadline instead of hanging the caller.

use super::{RemoteError, Result, S3Settings};
use rusty_s3::actions::ListObjectsV2;
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

/// The deadline of a request unless `PIPE_REMOTE_TIMEOUT` says otherwise.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(5);
/// The variable that sets it (seconds, fractions allowed).
pub const DEADLINE_ENV: &str = "PIPE_REMOTE_TIMEOUT";
/// How long a presigned request stays valid.
const SIGN_FOR: Duration = Duration::from_secs(3600);

pub struct S3Remote {
    url: String,
    endpoint: String,
    prefix: String,
    bucket: Bucket,
    creds: Credentials,
    agent: ureq::Agent,
    deadline: Duration,
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
        let deadline = deadline_from_env().map_err(cfg)?;
        Ok(S3Remote {
            url: url.into(),
            endpoint: endpoint.trim_end_matches('/').to_string(),
            prefix: prefix.to_string(),
            bucket: b,
            creds: Credentials::new(key_id, secret),
            agent: agent(deadline),
            deadline,
        })
    }

    /// The same remote with another request deadline.
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self.agent = agent(deadline);
        self
    }

    /// A request's whole deadline (see the module doc), for requests without a large body.
    fn whole<B>(&self, r: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        r.config().timeout_global(Some(self.deadline)).build()
    }

    /// The error of a request that failed on the way, naming the deadline when it ran out.
    fn net(&self, op: &str, key: &str, e: impl std::fmt::Display) -> RemoteError {
        let e = e.to_string();
        let why = if e.contains("timeout") || e.contains("timed out") {
            format!(
                "{e} (no answer within {:.1} s; {DEADLINE_ENV} sets the deadline)",
                self.deadline.as_secs_f64()
            )
        } else {
            e
        };
        RemoteError::Unreachable {
            endpoint: self.endpoint.clone(),
            detail: format!("{op} `{key}`: {why}"),
        }
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
                .whole(self.agent.get(url.as_str()))
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
            .whole(self.agent.head(url.as_str()))
            .call()
            .map_err(|e| self.net("head", &k, e))?;
        match resp.status().as_u16() {
            200..=299 => Ok(true),
            404 => Ok(false),
            _ => Err(self.fail("head", &k, resp)),
        }
    }

    /// The size of `key` (HEAD's `Content-Length`); `None` when absent.
    pub fn size(&self, key: &str) -> Result<Option<u64>> {
        let k = self.full_key(key);
        let url = self
            .bucket
            .head_object(Some(&self.creds), &k)
            .sign(SIGN_FOR);
        let resp = self
            .whole(self.agent.head(url.as_str()))
            .call()
            .map_err(|e| self.net("head", &k, e))?;
        match resp.status().as_u16() {
            200..=299 => {
                let n = resp
                    .headers()
                    .get("content-length")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok());
                n.map(Some).ok_or_else(|| RemoteError::Http {
                    endpoint: self.endpoint.clone(),
                    op: "head",
                    key: k.clone(),
                    status: resp.status().as_u16(),
                    detail: "no Content-Length in the answer".into(),
                })
            }
            404 => Ok(None),
            _ => Err(self.fail("head", &k, resp)),
        }
    }

    /// The blake3 and length of `key`'s content, streamed in bounded memory; `None` when absent.
    pub fn hash(&self, key: &str) -> Result<Option<(crate::digest::Blake3, u64)>> {
        let Some(resp) = self.get(key, false)? else {
            return Ok(None);
        };
        let k = self.full_key(key);
        let mut reader = NetReader {
            inner: resp.into_body().into_reader(),
            failed: None,
        };
        let mut n = 0u64;
        let res = crate::cache::hash::hash_reader(&mut reader, |chunk| {
            n += chunk.len() as u64;
            Ok(())
        });
        match (res, reader.failed) {
            (_, Some(e)) => Err(self.net("get", &k, e)),
            (Ok(h), None) => Ok(Some((h, n))),
            (Err(e), None) => Err(self.net("get", &k, e)),
        }
    }

    /// GET a key; `None` on 404 (and not a missing bucket). `whole`: the deadline covers the
    /// body too (a small object), else only getting the answer (then reads must make progress).
    fn get(&self, key: &str, whole: bool) -> Result<Option<ureq::http::Response<ureq::Body>>> {
        let k = self.full_key(key);
        let url = self.bucket.get_object(Some(&self.creds), &k).sign(SIGN_FOR);
        let r = self
            .agent
            .get(url.as_str())
            .header("Accept-Encoding", "identity");
        let r = if whole { self.whole(r) } else { r };
        let resp = r.call().map_err(|e| self.net("get", &k, e))?;
        match resp.status().as_u16() {
            200..=299 => Ok(Some(resp)),
            _ => match self.fail("get", &k, resp) {
                RemoteError::Http { status: 404, .. } => Ok(None),
                e => Err(e),
            },
        }
    }

    pub fn get_bytes(&self, key: &str, limit: u64) -> Result<Option<Vec<u8>>> {
        let Some(resp) = self.get(key, true)? else {
            return Ok(None);
        };
        let k = self.full_key(key);
        let too_large = || RemoteError::TooLarge {
            key: format!("{}/{key}", self.url.trim_end_matches('/')),
            limit,
        };
        if resp.body().content_length().is_some_and(|n| n > limit) {
            return Err(too_large());
        }
        resp.into_body()
            .into_with_config()
            .limit(limit)
            .read_to_vec()
            .map(Some)
            .map_err(|e| match e {
                ureq::Error::BodyExceedsLimit(_) => too_large(),
                e => self.net("get", &k, e),
            })
    }

    pub fn download(
        &self,
        key: &str,
        dest: &Path,
        progress: &dyn Fn(u64),
    ) -> Result<Option<crate::digest::Blake3>> {
        let Some(resp) = self.get(key, false)? else {
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

    /// PUT a key; `whole` as for [`S3Remote::get`].
    fn put(&self, key: &str, body: impl ureq::AsSendBody, whole: bool) -> Result<()> {
        let k = self.full_key(key);
        let url = self.bucket.put_object(Some(&self.creds), &k).sign(SIGN_FOR);
        let r = self.agent.put(url.as_str());
        let r = if whole { self.whole(r) } else { r };
        let resp = r.send(body).map_err(|e| self.net("put", &k, e))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(self.fail("put", &k, resp))
        }
    }

    pub fn put_bytes(&self, key: &str, bytes: &[u8]) -> Result<()> {
        self.put(key, bytes, bytes.len() <= SMALL)
    }

    pub fn put_file(&self, key: &str, path: &Path, progress: &dyn Fn(u64)) -> Result<()> {
        let f = std::fs::File::open(path).map_err(|e| RemoteError::io(path, e))?;
        let n = f.metadata().map(|m| m.len()).unwrap_or(0);
        self.put(key, f, n <= SMALL as u64)?;
        progress(n);
        Ok(())
    }
}

/// Bodies up to this size are "small": their whole request has the deadline.
const SMALL: usize = 1 << 20;

/// `PIPE_REMOTE_TIMEOUT` (seconds > 0), or the default.
fn deadline_from_env() -> std::result::Result<Duration, String> {
    parse_deadline(std::env::var(DEADLINE_ENV).ok())
}

/// A `PIPE_REMOTE_TIMEOUT` value (None: unset).
fn parse_deadline(v: Option<String>) -> std::result::Result<Duration, String> {
    match v {
        None => Ok(DEFAULT_DEADLINE),
        Some(v) => match v.trim().parse::<f64>() {
            Ok(s) if s.is_finite() && s > 0.0 => Ok(Duration::from_secs_f64(s.min(1e6))),
            _ => Err(format!(
                "{DEADLINE_ENV}={v:?}: expected a number of seconds above 0 (default {})",
                DEFAULT_DEADLINE.as_secs()
            )),
        },
    }
}

/// The agent of a remote: connecting, sending the request and getting the answer each within
/// the deadline, and every read or write of a body making progress within it.
fn agent(deadline: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(deadline))
        .timeout_send_request(Some(deadline))
        .timeout_recv_response(Some(deadline))
        .timeout_per_read(Some(deadline))
        .timeout_per_write(Some(deadline))
        .build()
        .into()
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Instant;

    /// An endpoint on 127.0.0.1 that accepts connections and never answers; stopped on drop.
    struct Silent {
        port: u16,
        stop: Arc<AtomicBool>,
        thread: Option<std::thread::JoinHandle<()>>,
    }

    impl Silent {
        fn start() -> Silent {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.set_nonblocking(true).unwrap();
            let port = l.local_addr().unwrap().port();
            let stop = Arc::new(AtomicBool::new(false));
            let s = stop.clone();
            let thread = std::thread::spawn(move || {
                let mut held = Vec::new();
                while !s.load(Ordering::Relaxed) {
                    if let Ok((c, _)) = l.accept() {
                        held.push(c);
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            });
            Silent {
                port,
                stop,
                thread: Some(thread),
            }
        }
    }

    impl Drop for Silent {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }

    fn remote(port: u16) -> S3Remote {
        let s = S3Settings {
            endpoint: Some(format!("http://127.0.0.1:{port}")),
            key_id: Some("k".into()),
            secret: Some("s".into()),
            region: "us-east-1".into(),
        };
        S3Remote::new("s3://b/p", "b", "p", &s).unwrap()
    }

    #[test]
    fn a_silent_endpoint_fails_every_request_within_the_deadline() {
        let silent = Silent::start();
        let d = Duration::from_millis(600);
        let r = remote(silent.port).with_deadline(d);
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), vec![7u8; 3 << 20]).unwrap();
        let dest = tempfile::tempdir().unwrap();
        type Op<'a> = Box<dyn Fn() -> Result<()> + 'a>;
        let ops: Vec<(&str, Op)> = vec![
            ("list", Box::new(|| r.list("runs").map(|_| ()))),
            ("head", Box::new(|| r.exists("runs/x.json").map(|_| ()))),
            (
                "get",
                Box::new(|| r.get_bytes("runs/x.json", 1 << 20).map(|_| ())),
            ),
            ("put", Box::new(|| r.put_bytes("runs/x.json", b"{}"))),
            (
                "download",
                Box::new(|| {
                    r.download("objects/ab/cd", &dest.path().join("o"), &|_| {})
                        .map(|_| ())
                }),
            ),
            (
                "upload",
                Box::new(|| r.put_file("objects/ab/cd", file.path(), &|_| {})),
            ),
        ];
        for (what, op) in ops {
            let t0 = Instant::now();
            let e = op().unwrap_err();
            let took = t0.elapsed();
            let msg = e.to_string();
            assert!(
                matches!(e, RemoteError::Unreachable { .. }),
                "{what}: {msg}"
            );
            assert!(msg.contains(DEADLINE_ENV), "{what}: {msg}");
            assert!(took >= d && took < d * 3, "{what} took {took:?}: {msg}");
        }
    }

    #[test]
    fn the_default_deadline_is_five_seconds_and_a_bad_value_is_refused() {
        assert_eq!(DEFAULT_DEADLINE, Duration::from_secs(5));
        let silent = Silent::start();
        let r = remote(silent.port);
        assert_eq!(r.deadline, DEFAULT_DEADLINE);
        let t0 = Instant::now();
        assert!(r.exists("runs/x.json").is_err());
        let took = t0.elapsed();
        assert!(
            took >= Duration::from_secs(5) && took < Duration::from_secs(6),
            "{took:?}"
        );
    }
}
