//! Integration tests of the `fetch` stage kind: downloads from a local HTTP server on 127.0.0.1
//! (with Range support), resume, mirror hits, checksum mismatch and the offline error.

mod common;
use common::CtxBuilder;
use pipe::download::MIRROR_ENV;
use pipe::download::{download_cache_path, find_in_mirrors};
use pipe::stage::fetch::{read_record, Fetch};
use pipe::stage::{StageCtx, StageKind};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};

fn ctx(root: &Path, params: serde_json::Value) -> StageCtx {
    let v: serde_yaml::Value = serde_yaml::from_str(Fetch.info().defaults_yaml).unwrap();
    let mut p = serde_json::to_value(v).unwrap();
    for (k, v) in params.as_object().unwrap() {
        p[k] = v.clone();
    }
    Fetch.check(&p).unwrap();
    let out = root.join(format!("out{}", rand_suffix()));
    std::fs::create_dir_all(&out).unwrap();
    CtxBuilder::new(root, &Fetch)
        .id("data")
        .pipeline("t", 1)
        .params(p)
        .out_dir(out)
        .ckpt_dir(root.join("ckpt"))
        .meas_dir(root.join("meas"))
        .build()
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

fn content(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

fn b3(d: &[u8]) -> String {
    blake3::hash(d).to_hex().to_string()
}

/// A tiny HTTP/1.1 server for one file; records the Range header of every request.
/// `honour_range: false` makes it ignore Range and send the whole file with 200.
struct Server {
    url_base: String,
    ranges: Arc<Mutex<Vec<Option<String>>>>,
}

fn serve(data: Vec<u8>, honour_range: bool) -> Server {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let ranges = Arc::new(Mutex::new(Vec::new()));
    let rec = ranges.clone();
    std::thread::spawn(move || {
        for stream in l.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut range = None;
            let mut first = String::new();
            r.read_line(&mut first).unwrap();
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap() == 0 || h.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    if k.eq_ignore_ascii_case("range") {
                        range = Some(v.trim().to_string());
                    }
                }
            }
            rec.lock().unwrap().push(range.clone());
            if !first.contains("/file.bin") {
                let _ = s.write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                continue;
            }
            let (status, body, extra) = match range.filter(|_| honour_range) {
                Some(r) => {
                    let spec = r.trim_start_matches("bytes=");
                    let (a, b) = spec.split_once('-').unwrap();
                    let a: usize = a.parse().unwrap();
                    let b: usize = if b.is_empty() {
                        data.len() - 1
                    } else {
                        b.parse::<usize>().unwrap().min(data.len() - 1)
                    };
                    if a >= data.len() {
                        ("416 Range Not Satisfiable", Vec::new(), String::new())
                    } else {
                        (
                            "206 Partial Content",
                            data[a..=b].to_vec(),
                            format!("Content-Range: bytes {a}-{b}/{}\r\n", data.len()),
                        )
                    }
                }
                None => ("200 OK", data.clone(), String::new()),
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(&body);
        }
    });
    Server {
        url_base: format!("http://{addr}"),
        ranges,
    }
}

fn closed_port_url() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    drop(l);
    format!("http://{a}/file.bin")
}

#[test]
fn downloads_with_range_and_checksum_then_reuses_the_cache() {
    let data = content(300_000);
    let srv = serve(data.clone(), true);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("{}/file.bin", srv.url_base);
    let want = b3(&data[..100_000]);
    let c = ctx(
        dir.path(),
        serde_json::json!({"url": url, "bytes": 100_000, "blake3": want}),
    );
    Fetch.run(&c).unwrap();
    let rec = read_record(&c.out_dir).unwrap();
    assert_eq!(rec.file, "file.bin");
    assert_eq!(rec.bytes, 100_000);
    assert_eq!(rec.blake3, want);
    assert_eq!(rec.source, url);
    assert_eq!(
        std::fs::read(c.out_dir.join("file.bin")).unwrap(),
        &data[..100_000]
    );
    assert_eq!(
        srv.ranges.lock().unwrap().as_slice(),
        &[Some("bytes=0-99999".to_string())]
    );
    // Second run: served from cache/downloads, no request.
    let c2 = ctx(
        dir.path(),
        serde_json::json!({"url": url, "bytes": 100_000, "blake3": want}),
    );
    Fetch.run(&c2).unwrap();
    assert_eq!(srv.ranges.lock().unwrap().len(), 1);
    assert!(download_cache_path(&c.cache_dir, &url, Some(100_000), Some(&want)).is_file());
}

#[test]
fn resumes_a_partial_download_and_handles_servers_without_range() {
    let data = content(50_000);
    let srv = serve(data.clone(), true);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("{}/file.bin", srv.url_base);
    let want = b3(&data);
    let cached = download_cache_path(&dir.path().join("cache"), &url, None, Some(&want));
    std::fs::create_dir_all(cached.parent().unwrap()).unwrap();
    std::fs::write(format!("{}.part", cached.display()), &data[..12_345]).unwrap();
    let c = ctx(dir.path(), serde_json::json!({"url": url, "blake3": want}));
    Fetch.run(&c).unwrap();
    assert_eq!(std::fs::read(c.out_dir.join("file.bin")).unwrap(), data);
    assert_eq!(
        srv.ranges.lock().unwrap().as_slice(),
        &[Some("bytes=12345-".to_string())]
    );

    // A server that ignores Range: the first N bytes are still exactly right.
    let srv = serve(data.clone(), false);
    let url = format!("{}/file.bin", srv.url_base);
    let c = ctx(dir.path(), serde_json::json!({"url": url, "bytes": 1000}));
    Fetch.run(&c).unwrap();
    assert_eq!(
        std::fs::read(c.out_dir.join("file.bin")).unwrap(),
        &data[..1000]
    );
    assert_eq!(read_record(&c.out_dir).unwrap().blake3, b3(&data[..1000]));

    // A file shorter than `bytes` is an error.
    let c = ctx(dir.path(), serde_json::json!({"url": url, "bytes": 60_000}));
    let e = Fetch.run(&c).unwrap_err().to_string();
    assert!(e.contains("60000") && e.contains("50000"), "{e}");
}

#[test]
fn checksum_mismatch_and_http_errors() {
    let data = content(5000);
    let srv = serve(data.clone(), true);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("{}/file.bin", srv.url_base);
    let wrong = b3(b"something else");
    let c = ctx(dir.path(), serde_json::json!({"url": url, "blake3": wrong}));
    let e = Fetch.run(&c).unwrap_err().to_string();
    assert!(
        e.contains("checksum mismatch") && e.contains(&wrong) && e.contains(&b3(&data)),
        "{e}"
    );
    let part = format!(
        "{}.part",
        download_cache_path(&c.cache_dir, &url, None, Some(&wrong)).display()
    );
    assert!(!Path::new(&part).exists());

    let c = ctx(
        dir.path(),
        serde_json::json!({"url": format!("{}/missing", srv.url_base)}),
    );
    let e = Fetch.run(&c).unwrap_err().to_string();
    assert!(e.contains("404"), "{e}");

    // Local path with a wrong checksum, and a local path that does not exist.
    std::fs::write(dir.path().join("f.txt"), b"abc").unwrap();
    let c = ctx(
        dir.path(),
        serde_json::json!({"path": "f.txt", "blake3": wrong}),
    );
    assert!(Fetch
        .run(&c)
        .unwrap_err()
        .to_string()
        .contains("checksum mismatch"));
    let c = ctx(dir.path(), serde_json::json!({"path": "none.txt"}));
    assert!(Fetch.run(&c).unwrap_err().to_string().contains("none.txt"));
}

#[test]
fn mirror_hit_needs_no_network_and_offline_error_is_clear() {
    let dir = tempfile::tempdir().unwrap();
    let data = content(4096);
    let want = b3(&data[..2048]);
    let m = dir.path().join("mirror");
    std::fs::create_dir_all(m.join("deep/er")).unwrap();
    std::fs::write(m.join("decoy.bin"), &data[2048..]).unwrap(); // same size, wrong content
    std::fs::write(m.join("deep/er/head.bin"), &data[..2048]).unwrap();
    std::fs::write(m.join("other.txt"), b"x").unwrap();
    let url = closed_port_url();
    // The mirror folders come in the stage context (the CLI reads --mirror and PIPE_MIRROR).
    let mirrors = vec![std::path::PathBuf::from("/nonexistent"), m.clone()];
    let mut c = ctx(
        dir.path(),
        serde_json::json!({"url": url, "bytes": 2048, "blake3": want}),
    );
    c.mirrors = mirrors.clone();
    Fetch.run(&c).unwrap();
    let rec = read_record(&c.out_dir).unwrap();
    assert_eq!(rec.file, "file.bin");
    assert_eq!(rec.source, url);
    assert_eq!(
        std::fs::read(c.out_dir.join("file.bin")).unwrap(),
        &data[..2048]
    );
    // Name match preferred; size filter; unknown size hashes everything.
    assert_eq!(
        find_in_mirrors(std::slice::from_ref(&m), "head.bin", None, &want),
        Some(m.join("deep/er/head.bin"))
    );
    assert_eq!(
        find_in_mirrors(std::slice::from_ref(&m), "zzz", Some(17), &want),
        None
    );

    // Offline, checksum known but no mirror file: one clear error.
    let other = b3(b"not in the mirror");
    let mut c = ctx(dir.path(), serde_json::json!({"url": url, "blake3": other}));
    c.mirrors = mirrors.clone();
    let e = Fetch.run(&c).unwrap_err().to_string();
    assert!(
        e.contains(&url) && e.contains(&other) && e.contains(MIRROR_ENV),
        "{e}"
    );
    assert!(e.contains(&m.display().to_string()), "{e}");
    // Without blake3, a mirror cannot be used: the error says so.
    let mut c = ctx(dir.path(), serde_json::json!({"url": url}));
    c.mirrors = mirrors;
    let e = Fetch.run(&c).unwrap_err().to_string();
    assert!(
        e.contains(&url) && e.contains("`blake3`") && e.contains("mirror folders /nonexistent"),
        "{e}"
    );
    let c = ctx(dir.path(), serde_json::json!({"url": url, "blake3": other}));
    let e = Fetch.run(&c).unwrap_err().to_string();
    assert!(e.contains("no mirror folder was given"), "{e}");
}

#[test]
fn local_path_is_copied_and_declared_as_external_input() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("corpus.txt"), b"hello world").unwrap();
    let c = ctx(dir.path(), serde_json::json!({"path": "corpus.txt"}));
    assert_eq!(
        Fetch.external_inputs(&c.params),
        vec![std::path::PathBuf::from("corpus.txt")]
    );
    Fetch.run(&c).unwrap();
    let rec = read_record(&c.out_dir).unwrap();
    assert_eq!(rec.file, "corpus.txt");
    assert_eq!(rec.bytes, 11);
    assert_eq!(rec.blake3, b3(b"hello world"));
    assert_eq!(
        std::fs::read(c.out_dir.join("corpus.txt")).unwrap(),
        b"hello world"
    );
}
