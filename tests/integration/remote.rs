//! Remote store tests on real servers: SeaweedFS and `rclone serve s3` started by
//! `scripts/test.sh` (which exports `PIPE_TEST_S3*` / `PIPE_TEST_RCLONE*`), and folder remotes.
//! The S3 tests are `#[ignore]`d (plain `cargo test` reports them as ignored, with the reason);
//! `scripts/test.sh` runs them.

use crate::support::*;
use pipe::cache::{manifest_hash, Area, Cache, FingerprintKey, Output, RunRecord};
use pipe::digest::{Blake3, Fingerprint};
use pipe::remote::{object_key, record_key, Remote, RemoteError, S3Settings};
use std::collections::BTreeMap;
use std::path::Path;

/// A real S3 server from the test script's variables (`S3` or `RCLONE`).
struct Server {
    endpoint: String,
    bucket: String,
    settings: S3Settings,
}

/// Only reached by `#[ignore]`d tests, which `scripts/test.sh` runs with the servers up: a
/// missing server is a failure, never a silent pass.
fn server(which: &str) -> Server {
    let var = |k: &str| std::env::var(format!("PIPE_TEST_{which}{k}")).ok();
    let endpoint = var("").unwrap_or_else(|| {
        panic!("PIPE_TEST_{which} is unset: this test needs the S3 test servers; run it with scripts/test.sh")
    });
    let settings = S3Settings {
        endpoint: Some(endpoint.clone()),
        key_id: var("_KEY"),
        secret: var("_SECRET"),
        region: "us-east-1".into(),
    };
    Server {
        endpoint,
        bucket: var("_BUCKET").unwrap_or_else(|| "pipe-test".into()),
        settings,
    }
}

/// A prefix no other test run uses.
fn unique(name: &str) -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("t{}-{t}/{name}", std::process::id())
}

impl Server {
    fn open(&self, name: &str) -> Remote {
        let url = format!("s3://{}/{}", self.bucket, unique(name));
        Remote::open_with(&url, Path::new("/"), &self.settings).unwrap()
    }
}

/// A local store with `n` runs of two objects each (one shared by all runs); returns the
/// fingerprints.
fn fill_store(cache: &Cache, n: usize) -> Vec<Fingerprint> {
    let tmp = tempfile::tempdir().unwrap();
    let mut fps = Vec::new();
    let shared = b"shared tokenizer bytes\n".repeat(1000);
    for i in 0..n {
        let own: Vec<u8> = (0..50_000u32).map(|x| (x * 7 + i as u32) as u8).collect();
        let mut outputs = Vec::new();
        for (name, bytes) in [
            ("own.bin", own.as_slice()),
            ("shared.txt", shared.as_slice()),
        ] {
            let p = tmp.path().join(format!("{i}-{name}"));
            std::fs::write(&p, bytes).unwrap();
            let h = Blake3::of(bytes);
            cache
                .store(&p, &h, name, &pipe::cache::stat::StatCache::detached())
                .unwrap();
            outputs.push(Output {
                area: Area::Results,
                path: name.into(),
                blake3: h,
                size: bytes.len() as u64,
                measure: false,
            });
        }
        let key = FingerprintKey {
            id: format!("stage{i}"),
            kind: "command".into(),
            kind_version: 1,
            params: serde_json::json!({ "cmd": format!("run {i}") }),
            upstream: vec![],
            inputs: BTreeMap::new(),
            seed: i as u64,
            pipeline: None,
        };
        let fp = key.fingerprint();
        let rec = RunRecord {
            fingerprint: fp,
            key,
            outputs_hash: manifest_hash(&outputs),
            outputs,
            duration_s: 0.5,
            metrics: BTreeMap::new(),
            log: None,
            ran_at: None,
        };
        cache.write_record(&rec).unwrap();
        fps.push(fp);
    }
    fps
}

fn objects_of(cache: &Cache, fp: &Fingerprint) -> Vec<Blake3> {
    cache
        .record(fp)
        .unwrap()
        .outputs
        .iter()
        .map(|o| o.blake3)
        .collect()
}

/// push, pull into a fresh store: byte-identical objects and records; a second push sends
/// nothing.
fn round_trip(remote: &Remote) {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let (ca, cb) = (Cache::new(a.path()), Cache::new(b.path()));
    let fps = fill_store(&ca, 3);
    let t = pipe::remote::push(&ca, &fps, remote).unwrap();
    assert_eq!((t.records, t.objects), (3, 4), "{t:?}");
    let again = pipe::remote::push(&ca, &fps, remote).unwrap();
    assert_eq!((again.records, again.objects), (0, 0), "{again:?}");
    assert_eq!((again.records_skipped, again.objects_skipped), (3, 4));

    let p = pipe::remote::pull(&cb, &fps, remote).unwrap();
    assert_eq!((p.records, p.objects), (3, 4), "{p:?}");
    assert!(p.corrupt.is_empty() && p.incomplete.is_empty() && p.missing.is_empty());
    for fp in &fps {
        assert_eq!(
            std::fs::read(ca.record_path(fp)).unwrap(),
            std::fs::read(cb.record_path(fp)).unwrap()
        );
        for h in objects_of(&cb, fp) {
            assert_eq!(
                std::fs::read(ca.object_path(&h)).unwrap(),
                std::fs::read(cb.object_path(&h)).unwrap()
            );
            assert_eq!(
                cb.object_state(&h, &pipe::cache::stat::StatCache::detached(), true),
                pipe::cache::store::ObjectState::Ok
            );
        }
    }
    // a run the remote does not have is reported missing, not an error
    let unknown = Fingerprint::parse(&"0".repeat(64)).unwrap();
    let p = pipe::remote::pull(&cb, std::slice::from_ref(&unknown), remote).unwrap();
    assert_eq!(p.missing, vec![unknown]);
}

/// A corrupt and a truncated remote object are reported by key and not stored; the records
/// that need them are not written.
fn corrupt_objects(remote: &Remote) {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let (ca, cb) = (Cache::new(a.path()), Cache::new(b.path()));
    let fps = fill_store(&ca, 2);
    pipe::remote::push(&ca, &fps, remote).unwrap();
    let bad = objects_of(&ca, &fps[0])[0];
    let short = objects_of(&ca, &fps[1])[0];
    remote
        .put_bytes(&object_key(&bad), b"not what the name says")
        .unwrap();
    let full = std::fs::read(ca.object_path(&short)).unwrap();
    remote
        .put_bytes(&object_key(&short), &full[..full.len() / 2])
        .unwrap();

    let err = remote.get_object(&cb, &bad, &|_| {}).unwrap_err();
    assert!(err.is_corrupt(), "{err}");
    assert!(err.to_string().contains(&object_key(&bad)), "{err}");
    assert!(!cb.object_path(&bad).exists());

    let p = pipe::remote::pull(&cb, &fps, remote).unwrap();
    assert_eq!(p.corrupt.len(), 2, "{p:?}");
    assert!(p.corrupt.iter().any(|m| m.contains(&object_key(&bad))));
    assert!(p.corrupt.iter().any(|m| m.contains(&object_key(&short))));
    assert_eq!(p.incomplete.len(), 2);
    assert_eq!(p.records, 0);
    assert!(!cb.object_path(&bad).exists() && !cb.object_path(&short).exists());
    assert!(!cb.record_path(&fps[0]).exists() && !cb.record_path(&fps[1]).exists());
    // no temp file is left behind (only this process's journal of temp-file folders)
    let left: Vec<_> = std::fs::read_dir(cb.layout().tmp())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".journal"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// A record that does not hash to the fingerprint it is stored under is not used.
fn corrupt_record(remote: &Remote) {
    let a = tempfile::tempdir().unwrap();
    let ca = Cache::new(a.path());
    let fps = fill_store(&ca, 2);
    pipe::remote::push(&ca, &fps, remote).unwrap();
    let other = std::fs::read(ca.record_path(&fps[1])).unwrap();
    remote.put_bytes(&record_key(&fps[0]), &other).unwrap();
    let err = pipe::remote::fetch_record(remote, &ca, &fps[0]).unwrap_err();
    assert!(
        err.is_corrupt() && err.to_string().contains(&record_key(&fps[0])),
        "{err}"
    );
    assert!(pipe::remote::fetch_record(remote, &ca, &fps[1])
        .unwrap()
        .is_some());
}

/// A truncated remote object is replaced by the next push (its size is wrong); one of the
/// right size but wrong content only by `push --verify`, as is a damaged record; a fresh pull
/// then gets everything intact.
fn repair(remote: &Remote) {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let (ca, cb) = (Cache::new(a.path()), Cache::new(b.path()));
    let fps = fill_store(&ca, 2);
    pipe::remote::push(&ca, &fps, remote).unwrap();
    let short = objects_of(&ca, &fps[0])[0];
    let flipped = objects_of(&ca, &fps[1])[0];
    let full = std::fs::read(ca.object_path(&short)).unwrap();
    remote
        .put_bytes(&object_key(&short), &full[..full.len() / 2])
        .unwrap();
    let mut bytes = std::fs::read(ca.object_path(&flipped)).unwrap();
    bytes[7] ^= 1;
    remote.put_bytes(&object_key(&flipped), &bytes).unwrap();
    remote.put_bytes(&record_key(&fps[1]), b"{}").unwrap();

    let t = pipe::remote::push(&ca, &fps, remote).unwrap();
    assert_eq!((t.objects, t.records), (1, 0), "{t:?}");
    assert_eq!(t.repaired.len(), 1, "{t:?}");
    assert!(t.repaired[0].contains(&object_key(&short)), "{t:?}");
    assert_eq!(
        remote.size(&object_key(&short)).unwrap(),
        Some(full.len() as u64)
    );

    let t = pipe::remote::push::push_with(&ca, &fps, remote, true).unwrap();
    assert_eq!((t.objects, t.records, t.verified), (1, 1, 3), "{t:?}");
    assert_eq!(t.repaired.len(), 2, "{t:?}");
    assert!(t.repaired.iter().any(|r| r.contains(&object_key(&flipped))));
    assert!(t.repaired.iter().any(|r| r.contains(&record_key(&fps[1]))));
    let t = pipe::remote::push::push_with(&ca, &fps, remote, true).unwrap();
    assert!(
        t.repaired.is_empty() && t.objects == 0 && t.records == 0,
        "{t:?}"
    );

    let p = pipe::remote::pull(&cb, &fps, remote).unwrap();
    assert!(p.corrupt.is_empty() && p.incomplete.is_empty(), "{p:?}");
    assert_eq!((p.records, p.objects), (2, 3), "{p:?}");
}

fn wrong_secret(srv: &Server) {
    let mut s = srv.settings.clone();
    s.secret = Some("not-the-secret".into());
    let url = format!("s3://{}/{}", srv.bucket, unique("auth"));
    let r = Remote::open_with(&url, Path::new("/"), &s).unwrap();
    let err = r.list_objects().unwrap_err();
    assert!(matches!(err, RemoteError::Auth { .. }), "{err}");
    assert!(err.to_string().contains(&srv.endpoint), "{err}");
    assert_eq!(err.exit_code(), 2);
    let err = r
        .exists(&object_key(&Blake3::parse(&"a".repeat(64)).unwrap()))
        .unwrap_err();
    assert!(matches!(err, RemoteError::Auth { .. }), "{err}");
}

#[test]
#[ignore = "needs the S3 test servers (scripts/test.sh runs it)"]
fn seaweedfs_round_trip() {
    let s = server("S3");
    round_trip(&s.open("rt"));
}

#[test]
#[ignore = "needs the S3 test servers (scripts/test.sh runs it)"]
fn seaweedfs_corrupt_remote_objects_are_not_used() {
    let s = server("S3");
    corrupt_objects(&s.open("corrupt"));
    corrupt_record(&s.open("corrupt-record"));
}

#[test]
#[ignore = "needs the S3 test servers (scripts/test.sh runs it)"]
fn seaweedfs_push_repairs_the_remote() {
    let s = server("S3");
    repair(&s.open("repair"));
}

#[test]
#[ignore = "needs the S3 test servers (scripts/test.sh runs it)"]
fn rclone_push_repairs_the_remote() {
    let s = server("RCLONE");
    repair(&s.open("repair"));
}

#[test]
fn folder_push_repairs_the_remote() {
    let d = tempfile::tempdir().unwrap();
    repair(&Remote::open(d.path().to_str().unwrap(), Path::new("/")).unwrap());
}

#[test]
#[ignore = "needs the S3 test servers (scripts/test.sh runs it)"]
fn seaweedfs_wrong_secret_names_the_endpoint() {
    let s = server("S3");
    wrong_secret(&s);
}

#[test]
#[ignore = "needs the S3 test servers (scripts/test.sh runs it)"]
fn rclone_round_trip() {
    let s = server("RCLONE");
    round_trip(&s.open("rt"));
}

#[test]
#[ignore = "needs the S3 test servers (scripts/test.sh runs it)"]
fn rclone_corrupt_remote_objects_are_not_used() {
    let s = server("RCLONE");
    corrupt_objects(&s.open("corrupt"));
    corrupt_record(&s.open("corrupt-record"));
}

#[test]
#[ignore = "needs the S3 test servers (scripts/test.sh runs it)"]
fn rclone_wrong_secret_names_the_endpoint() {
    let s = server("RCLONE");
    wrong_secret(&s);
}

#[test]
fn folder_round_trip_and_corruption() {
    let d = tempfile::tempdir().unwrap();
    let r = Remote::open(d.path().join("remote").to_str().unwrap(), Path::new("/")).unwrap();
    round_trip(&r);
    let d = tempfile::tempdir().unwrap();
    let r = Remote::open(&format!("file://{}", d.path().display()), Path::new("/")).unwrap();
    corrupt_objects(&r);
    corrupt_record(&r);
}

#[test]
fn unreachable_endpoint_fails_quickly_naming_it() {
    // a port that was just free: nothing listens there
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let s = S3Settings {
        endpoint: Some(endpoint.clone()),
        key_id: Some("k".into()),
        secret: Some("s".into()),
        region: "us-east-1".into(),
    };
    let r = Remote::open_with("s3://bucket/p", Path::new("/"), &s).unwrap();
    let t0 = std::time::Instant::now();
    let err = r.list_objects().unwrap_err();
    assert!(matches!(err, RemoteError::Unreachable { .. }), "{err}");
    assert!(err.to_string().contains(&endpoint), "{err}");
    // bounded by the connect timeout (3 s), far below this limit
    assert!(t0.elapsed().as_secs() < 15, "took {:?}", t0.elapsed());
}

#[test]
fn bad_remote_urls_are_config_errors() {
    let s = S3Settings {
        endpoint: Some("http://127.0.0.1:1".into()),
        key_id: Some("k".into()),
        secret: Some("s".into()),
        region: "us-east-1".into(),
    };
    let no_keys = S3Settings {
        key_id: None,
        ..s.clone()
    };
    let far_http = S3Settings {
        endpoint: Some("http://s3.example.org".into()),
        ..s.clone()
    };
    for (url, set, needle) in [
        ("ftp://host/x", &s, "unsupported scheme"),
        ("s3://", &s, "no bucket"),
        ("s3://b/p", &no_keys, "AWS_ACCESS_KEY_ID"),
        ("s3://b/p", &far_http, "plain http"),
        ("", &s, "empty"),
    ] {
        let err = Remote::open_with(url, Path::new("/"), set).unwrap_err();
        assert_eq!(err.exit_code(), 2, "{url}: {err}");
        assert!(err.to_string().contains(needle), "{url}: {err}");
    }
}

/// `pipe push` from one project, `pipe pull` into a fresh copy without a store, then
/// `pipe run` there restores everything and computes nothing.
fn cli_round_trip(remote_url: &str, env: &[(&str, String)]) {
    let pipeline = r#"
name: demo
stages:
  a: { kind: command, params: { cmd: "echo a >> runs.log; echo a > $PIPE_OUT/a.txt" } }
  b: { kind: command, needs: [a], params: { cmd: "echo b >> runs.log; echo b > $PIPE_OUT/b.txt" } }
  c: { kind: command, params: { cmd: "echo c >> runs.log; mkdir -p out; echo c > out/c.txt", outs: [out/c.txt] } }
"#;
    let pipe = |root: &Path, args: &[&str]| {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let o = pipe_env(root, args, &env);
        (code(&o).unwrap_or(-1), text(&o))
    };
    let a = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(a.path().join("pipelines")).unwrap();
    std::fs::write(a.path().join("pipelines/p.yaml"), pipeline).unwrap();
    let (code, out) = pipe(a.path(), &["run", "pipelines/p.yaml"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = pipe(
        a.path(),
        &["push", "pipelines/p.yaml", "--remote", remote_url],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("pushed 3 records"), "{out}");

    let b = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(b.path().join("pipelines")).unwrap();
    for f in ["pipelines/p.yaml", "pipelines/p.lock"] {
        std::fs::copy(a.path().join(f), b.path().join(f)).unwrap();
    }
    let (code, out) = pipe(
        b.path(),
        &["pull", "pipelines/p.yaml", "--remote", remote_url],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("pulled 3 records"), "{out}");
    let (code, out) = pipe(b.path(), &["run", "pipelines/p.yaml"]);
    assert_eq!(code, 0, "{out}");
    assert!(!b.path().join("runs.log").exists(), "something ran: {out}");
    for f in [
        "results/demo/a/a.txt",
        "results/demo/b/b.txt",
        "out/c.txt",
        "pipelines/p.lock",
    ] {
        assert_eq!(
            std::fs::read(a.path().join(f)).unwrap(),
            std::fs::read(b.path().join(f)).unwrap(),
            "{f}"
        );
    }
    // The logs travelled with their records: after `pull` then `run`, and after a fresh
    // `run --pull`, each instance's log is the one its run wrote, with one line saying it was
    // restored.
    let c = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(c.path().join("pipelines")).unwrap();
    for f in ["pipelines/p.yaml", "pipelines/p.lock"] {
        std::fs::copy(a.path().join(f), c.path().join(f)).unwrap();
    }
    let (code, out) = pipe(
        c.path(),
        &["run", "pipelines/p.yaml", "--pull", "--remote", remote_url],
    );
    assert_eq!(code, 0, "{out}");
    assert!(!c.path().join("runs.log").exists(), "something ran: {out}");
    for id in ["a", "b", "c"] {
        let f = format!("results/demo/logs/{id}.log");
        let original = std::fs::read_to_string(a.path().join(&f)).unwrap();
        assert!(!original.is_empty(), "{f}");
        for there in [b.path(), c.path()] {
            let got = std::fs::read_to_string(there.join(&f)).unwrap();
            let (head, last) = got.trim_end().rsplit_once('\n').unwrap_or(("", &got));
            assert_eq!(format!("{head}\n"), original, "{f}: {got}");
            assert!(last.starts_with("restored from the store"), "{f}: {got}");
        }
    }
}

#[test]
fn cli_push_pull_folder_remote() {
    let d = tempfile::tempdir().unwrap();
    cli_round_trip(d.path().to_str().unwrap(), &[]);
}

#[test]
#[ignore = "needs the S3 test servers (scripts/test.sh runs it)"]
fn cli_push_pull_s3_remote() {
    let s = server("S3");
    let env = [
        ("AWS_ENDPOINT_URL", s.endpoint.clone()),
        (
            "AWS_ACCESS_KEY_ID",
            s.settings.key_id.clone().unwrap_or_default(),
        ),
        (
            "AWS_SECRET_ACCESS_KEY",
            s.settings.secret.clone().unwrap_or_default(),
        ),
        ("AWS_REGION", "us-east-1".into()),
    ];
    cli_round_trip(&format!("s3://{}/{}", s.bucket, unique("cli")), &env);
}

#[test]
#[ignore = "needs the S3 test servers (scripts/test.sh runs it)"]
fn cli_wrong_secret_exits_2_naming_the_endpoint() {
    let s = server("S3");
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("pipelines")).unwrap();
    std::fs::write(
        d.path().join("pipelines/p.yaml"),
        "name: demo\nstages: {}\n",
    )
    .unwrap();
    std::fs::write(
        d.path().join("pipelines/p.lock"),
        format!(
            "{{\"pipeline\":\"demo\",\"stages\":{{\"a\":{{\"kind\":\"command\",\"fingerprint\":\"{}\",\"outputs\":{{}}}}}}}}",
            "1".repeat(64)
        ),
    )
    .unwrap();
    let o = pipe_cmd(d.path(), &["pull", "pipelines/p.yaml"])
        .env("PIPE_REMOTE", format!("s3://{}/x", s.bucket))
        .env("AWS_ENDPOINT_URL", &s.endpoint)
        .env(
            "AWS_ACCESS_KEY_ID",
            s.settings.key_id.clone().unwrap_or_default(),
        )
        .env("AWS_SECRET_ACCESS_KEY", "wrong")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&s.endpoint) && err.contains("access denied"),
        "{err}"
    );
}
