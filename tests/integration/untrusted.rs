//! Issue 20, what a store or a remote hands to pipe: run records tampered on a folder remote
//! (and in the local store) that try to write `.git/config`, a hook, the pipeline file, a
//! forged record, a file outside the project or another stage's outputs, or that carry hashes
//! such as `"a"`, `""`, `"../.."`, `"../srv/…"` and `"..//<absolute path>"`: each is refused
//! with a warning naming it, its stage is recomputed, the project's other files and a sibling
//! `outside/` folder are byte-identical, and pipe exits promptly. Then links planted in
//! `cache/` and in a folder remote: never written through by `run`, `run --verify`, `status`,
//! `clean` or `push`.

use crate::support::*;
use pipe::cache::{manifest_hash, Output};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output as ProcOutput;
use std::time::{Duration, Instant};

const PIPELINE: &str = r#"name: demo
stages:
  a: { kind: command, params: { cmd: "echo a >> runs.log; echo a > $PIPE_OUT/a.txt" } }
  b: { kind: command, needs: [a], params: { cmd: "echo b >> runs.log; echo b > $PIPE_OUT/b.txt" } }
  c: { kind: command, params: { cmd: "echo c >> runs.log; mkdir -p cdir; echo c > cdir/c.txt", outs: [cdir/c.txt] } }
"#;

const GIT_CONFIG: &str = "[core]\n\trepositoryformatversion = 0\n";

/// `pipe ARGS` in `dir`, killed (and the test failed) when it takes more than 120 s: a hang
/// is a failure, never a stuck test run.
fn run_bounded(dir: &Path, args: &[&str]) -> ProcOutput {
    let mut child = pipe_cmd(dir, args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if t0.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let o = child.wait_with_output().unwrap();
            panic!("pipe {args:?} hung: {}", text(&o));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A colleague's project that ran [`PIPELINE`] and pushed it to a folder remote, and the place
/// for victims: fresh clones (pipeline and lock file) with a `.git/`, beside `outside/`.
struct World {
    dir: tempfile::TempDir,
    /// Remote record files as pushed, by stage.
    records: Vec<(String, PathBuf, Vec<u8>)>,
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let w = World {
            dir,
            records: Vec::new(),
        };
        let col = w.path("colleague");
        write(&col.join("pipelines/p.yaml"), PIPELINE);
        let o = run_bounded(&col, &["run", "pipelines/p.yaml"]);
        assert_eq!(code(&o), Some(0), "{}", text(&o));
        let remote = w.remote();
        let o = run_bounded(&col, &["push", "pipelines/p.yaml", "--remote", &remote]);
        assert_eq!(code(&o), Some(0), "{}", text(&o));
        write(&w.path("outside/victim/keep.txt"), "precious\n");
        let lock: Value =
            serde_json::from_slice(&std::fs::read(col.join("pipelines/p.lock")).unwrap()).unwrap();
        let mut records = Vec::new();
        for s in ["a", "b", "c"] {
            let fp = lock["stages"][s]["fingerprint"]
                .as_str()
                .unwrap()
                .to_string();
            let path = w.path(&format!("remote/runs/{fp}.json"));
            let bytes = std::fs::read(&path).unwrap();
            records.push((s.to_string(), path, bytes));
        }
        World { records, ..w }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn remote(&self) -> String {
        self.path("remote").display().to_string()
    }

    fn record(&self, stage: &str) -> &(String, PathBuf, Vec<u8>) {
        self.records.iter().find(|r| r.0 == stage).unwrap()
    }

    /// Puts every remote record back as pushed.
    fn reset_remote(&self) {
        for (_, p, b) in &self.records {
            std::fs::write(p, b).unwrap();
        }
    }

    /// Stores `content` as an object on the remote, as an attacker who can write there would.
    fn plant_object(&self, content: &[u8]) -> pipe::digest::Blake3 {
        let h = pipe::digest::Blake3::of(content);
        write(
            &self.path(&format!("remote/{}", pipe::layout::object_rel(&h))),
            std::str::from_utf8(content).unwrap(),
        );
        h
    }

    /// A fresh clone of the colleague's project in `victim/` (`.git/config`, the pipeline and
    /// its lock file), the previous one removed.
    fn victim(&self) -> PathBuf {
        let v = self.path("victim");
        let _ = std::fs::remove_dir_all(&v);
        write(&v.join(".git/config"), GIT_CONFIG);
        std::fs::create_dir_all(v.join(".git/hooks")).unwrap();
        std::fs::create_dir_all(v.join("pipelines")).unwrap();
        for f in ["pipelines/p.yaml", "pipelines/p.lock"] {
            std::fs::copy(self.path("colleague").join(f), v.join(f)).unwrap();
        }
        v
    }

    /// Every file of the victim outside pipe's own folders, and of `outside/`.
    fn guarded(&self) -> Vec<(PathBuf, Node)> {
        let mut s: Vec<(PathBuf, Node)> = snapshot(&self.path("victim"))
            .into_iter()
            .filter(|(p, _)| {
                let rel = p.strip_prefix(self.path("victim")).unwrap();
                let top = rel.components().next().unwrap().as_os_str();
                !["cache", "results", "checkpoints", "runs.log", "cdir"]
                    .iter()
                    .any(|d| top == *d)
            })
            .collect();
        s.extend(snapshot(&self.path("outside")));
        s
    }
}

/// Rewrites the record of `stage` with `edit`, keeping its outputs hash consistent with its
/// outputs when they still parse (so only the path or hash rule can refuse it).
fn tamper(path: &Path, edit: impl FnOnce(&mut Value)) {
    let mut v: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    edit(&mut v);
    if let Ok(outs) = serde_json::from_value::<Vec<Output>>(v["outputs"].clone()) {
        v["outputs_hash"] = Value::String(manifest_hash(&outs).to_string());
    }
    std::fs::write(path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

fn add_output(v: &mut Value, area: &str, path: &str, hash: &str, size: usize) {
    v["outputs"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "area": area, "path": path, "blake3": hash, "size": size
        }));
}

/// Runs the victim's `pipe run --pull` and checks the verdict: exit 0, a warning naming the
/// refused record of `b`, `b` (only) recomputed, every other file untouched.
fn expect_refused(w: &World, what: &str, before: &[(PathBuf, Node)]) -> String {
    let v = w.path("victim");
    let o = run_bounded(
        &v,
        &["run", "pipelines/p.yaml", "--pull", "--remote", &w.remote()],
    );
    let e = text(&o);
    assert_eq!(code(&o), Some(0), "{what}: {e}");
    let fp_b = w
        .record("b")
        .1
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(
        e.contains("refused") && e.contains(&format!("runs/{fp_b}.json")),
        "{what}: no warning naming the record: {e}"
    );
    assert_eq!(
        std::fs::read_to_string(v.join("runs.log")).unwrap_or_default(),
        "b\n",
        "{what}: only b recomputes: {e}"
    );
    assert!(w.guarded() == before, "{what}: a guarded file changed");
    assert_eq!(
        std::fs::read_to_string(v.join("cdir/c.txt")).unwrap(),
        "c\n"
    );
    assert_eq!(
        std::fs::read_to_string(v.join("results/demo/b/b.txt")).unwrap(),
        "b\n"
    );
    e
}

#[test]
fn tampered_remote_records_are_refused_and_recomputed() {
    let w = World::new();
    let evil = w.plant_object(b"[core]\n\tfsmonitor = touch /tmp/pwned\n");
    let outside = w.path("outside/victim/keep.txt").display().to_string();
    let fp_a = w
        .record("a")
        .1
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let paths: Vec<(&str, String)> = vec![
        ("project", ".git/config".into()),
        ("project", ".git/hooks/pre-commit".into()),
        ("project", "pipelines/p.yaml".into()),
        ("project", format!("cache/runs/{fp_a}.json")),
        ("project", "../outside/victim/keep.txt".into()),
        ("project", outside.clone()),
        ("project", "cdir/c.txt".into()),
        ("results", "../c/x.txt".into()),
        ("checkpoints", "../../../.git/config".into()),
    ];
    for (area, p) in &paths {
        w.reset_remote();
        tamper(&w.record("b").1, |v| {
            add_output(v, area, p, evil.as_str(), 40)
        });
        w.victim();
        let before = w.guarded();
        expect_refused(&w, &format!("{area} {p}"), &before);
        assert!(!w.path("victim/.git/hooks/pre-commit").exists());
    }
    // Hashes that are not hashes: a panic, a hang, a file moved out of `outside/`, all before.
    let hashes = [
        "a",
        "",
        "../..",
        "../srv/data/file.txt",
        &format!("..//{outside}"),
    ];
    for h in hashes {
        w.reset_remote();
        tamper(&w.record("b").1, |v| {
            v["outputs"][0]["blake3"] = Value::String(h.to_string())
        });
        w.victim();
        let before = w.guarded();
        let e = expect_refused(&w, &format!("hash {h:?}"), &before);
        assert!(e.contains("blake3"), "hash {h:?}: {e}");
        assert!(!e.contains("panicked"), "{e}");
    }
    // A record filed under another fingerprint, and one far too large.
    w.reset_remote();
    std::fs::copy(&w.record("a").1, &w.record("b").1).unwrap();
    w.victim();
    expect_refused(&w, "another stage's record", &w.guarded());
    w.reset_remote();
    std::fs::write(&w.record("b").1, vec![b' '; 17 << 20]).unwrap();
    w.victim();
    expect_refused(&w, "a 17 MiB record", &w.guarded());
}

#[test]
fn tampered_local_records_are_quarantined_and_recomputed() {
    let w = World::new();
    let v = w.victim();
    let o = run_bounded(&v, &["pull", "pipelines/p.yaml", "--remote", &w.remote()]);
    assert_eq!(code(&o), Some(0), "{}", text(&o));
    let fp_b = w.record("b").1.file_name().unwrap().to_owned();
    let local = v.join("cache/runs").join(&fp_b);
    let pristine = std::fs::read(&local).unwrap();
    let evil_hash = {
        let body = b"evil\n";
        let h = pipe::digest::Blake3::of(body);
        write(
            &v.join("cache").join(pipe::layout::object_rel(&h)),
            "evil\n",
        );
        h
    };
    for (what, edit) in [
        (
            ".git/config",
            Box::new(|r: &mut Value| add_output(r, "project", ".git/config", evil_hash.as_str(), 5))
                as Box<dyn Fn(&mut Value)>,
        ),
        (
            "outside",
            Box::new(|r: &mut Value| {
                add_output(
                    r,
                    "project",
                    "../outside/victim/keep.txt",
                    evil_hash.as_str(),
                    5,
                )
            }),
        ),
        (
            "hash ../..",
            Box::new(|r: &mut Value| r["outputs"][0]["blake3"] = Value::String("../..".into())),
        ),
    ] {
        std::fs::write(&local, &pristine).unwrap();
        let _ = std::fs::remove_file(v.join("runs.log"));
        let _ = std::fs::remove_dir_all(v.join("results"));
        tamper(&local, edit);
        let before = w.guarded();
        let o = run_bounded(&v, &["run", "pipelines/p.yaml"]);
        let e = text(&o);
        assert_eq!(code(&o), Some(0), "{what}: {e}");
        assert!(
            e.contains("refused") && e.contains("quarantine"),
            "{what}: {e}"
        );
        assert_eq!(
            e.matches("is refused").count(),
            1,
            "{what}: one warning: {e}"
        );
        assert_eq!(std::fs::read_to_string(v.join("runs.log")).unwrap(), "b\n");
        assert!(w.guarded() == before, "{what}: a guarded file changed");
        assert_eq!(
            std::fs::read_to_string(v.join(".git/config")).unwrap(),
            GIT_CONFIG
        );
        // The recomputed run wrote a valid record again.
        let o = run_bounded(&v, &["status", "pipelines/p.yaml"]);
        assert!(!text(&o).contains("refused"), "{what}: {}", text(&o));
    }
    let quarantined = std::fs::read_dir(v.join("cache/quarantine"))
        .unwrap()
        .count();
    assert_eq!(quarantined, 3);
}

/// A project that ran a one-stage pipeline (with a project output), with `at` (`SHARD`: the
/// first `cache/objects/<ab>`) replaced by a link to `outside/victim/`.
fn linked_project(at: &str) -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("proj");
    write(
        &root.join("pipelines/p.yaml"),
        "name: p\nstages:\n  a: { kind: command, params: { cmd: \"echo a > $PIPE_OUT/a.txt; mkdir -p o; echo o > o/o.txt\", outs: [o/o.txt] } }\n",
    );
    let o = run_bounded(&root, &["run", "pipelines/p.yaml"]);
    assert_eq!(code(&o), Some(0), "{}", text(&o));
    write(&d.path().join("outside/victim/keep.txt"), "precious\n");
    let target = d.path().join("outside/victim");
    let shard = std::fs::read_dir(root.join("cache/objects"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .file_name();
    let at = at.replace(
        "SHARD",
        &format!("cache/objects/{}", shard.to_string_lossy()),
    );
    let link = root.join(at);
    if std::fs::symlink_metadata(&link).is_ok_and(|m| m.is_dir()) {
        std::fs::remove_dir_all(&link).unwrap();
    } else {
        let _ = std::fs::remove_file(&link);
    }
    std::fs::create_dir_all(link.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(&target, &link).unwrap();
    (d, root)
}

#[test]
fn links_in_the_store_are_never_followed() {
    let cases = [
        "cache",
        "cache/objects",
        "SHARD",
        "cache/runs",
        "cache/quarantine",
        "cache/downloads",
        "cache/tmp",
        "cache/stat.json",
        "cache/lock",
    ];
    let commands: [&[&str]; 5] = [
        &["run", "pipelines/p.yaml", "--force", "a"],
        &["run", "pipelines/p.yaml", "--verify"],
        &["status", "pipelines/p.yaml"],
        &["status", "pipelines/p.yaml", "--verify"],
        &["clean", "--cache", "--unreferenced"],
    ];
    for at in cases {
        for args in commands {
            let (d, root) = linked_project(at);
            // Outputs to restore: the store is read and written.
            let _ = std::fs::remove_dir_all(root.join("results"));
            let outside = snapshot(&d.path().join("outside"));
            let o = run_bounded(&root, args);
            let e = text(&o);
            assert!(
                matches!(code(&o), Some(0..=2)),
                "{at} {args:?}: exit {:?}: {e}",
                code(&o)
            );
            assert!(!e.contains("panicked"), "{at} {args:?}: {e}");
            assert!(
                snapshot(&d.path().join("outside")) == outside,
                "{at} {args:?}: wrote through the link: {e}"
            );
            let is_file_link = at == "cache/stat.json" || at == "cache/lock";
            if code(&o) != Some(0) && !is_file_link {
                assert!(e.contains("symbolic link"), "{at} {args:?}: {e}");
            }
        }
    }
}

#[test]
fn push_never_follows_links_inside_a_folder_remote() {
    for at in ["objects", "runs", "objects/SHARD"] {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("proj");
        write(
            &root.join("pipelines/p.yaml"),
            "name: p\nstages:\n  a: { kind: command, params: { cmd: \"echo a > $PIPE_OUT/a.txt\" } }\n",
        );
        let o = run_bounded(&root, &["run", "pipelines/p.yaml"]);
        assert_eq!(code(&o), Some(0), "{}", text(&o));
        // The folder of the output's object (the log's object is not pushed).
        let shard = pipe::digest::Blake3::of(b"a\n").split().0.to_string();
        let remote = d.path().join("remote");
        let target = d.path().join("outside");
        write(&target.join("keep.txt"), "precious\n");
        let link = remote.join(at.replace("SHARD", &shard));
        std::fs::create_dir_all(link.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let before = snapshot(&target);
        let url = remote.display().to_string();
        let o = run_bounded(&root, &["push", "pipelines/p.yaml", "--remote", &url]);
        let e = text(&o);
        assert_eq!(code(&o), Some(1), "{at}: {e}");
        assert!(e.contains("symbolic link"), "{at}: {e}");
        assert!(snapshot(&target) == before, "{at}: pushed through the link");
    }
}

#[test]
fn pull_never_follows_links_inside_a_folder_remote() {
    // A remote whose `objects`, `runs`, `objects/<ab>` or record file is a link to a folder
    // (or file) outside holding exactly what pull wants: pipe refuses to read through it.
    let shard = pipe::digest::Blake3::of(b"a\n").split().0.to_string();
    for at in ["objects", "runs", "objects/SHARD", "RECORD"] {
        let d = tempfile::tempdir().unwrap();
        let col = d.path().join("colleague");
        let pipeline =
            "name: p\nstages:\n  a: { kind: command, params: { cmd: \"echo a > $PIPE_OUT/a.txt\" } }\n";
        write(&col.join("pipelines/p.yaml"), pipeline);
        let o = run_bounded(&col, &["run", "pipelines/p.yaml"]);
        assert_eq!(code(&o), Some(0), "{}", text(&o));
        let remote = d.path().join("remote");
        let url = remote.display().to_string();
        let o = run_bounded(&col, &["push", "pipelines/p.yaml", "--remote", &url]);
        assert_eq!(code(&o), Some(0), "{}", text(&o));
        let record = std::fs::read_dir(remote.join("runs"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .file_name()
            .to_string_lossy()
            .into_owned();
        let rel = match at {
            "RECORD" => format!("runs/{record}"),
            a => a.replace("SHARD", &shard),
        };
        // Move the real thing outside and leave a link in its place.
        let link = remote.join(&rel);
        let target = d.path().join("outside").join(&rel);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::rename(&link, &target).unwrap();
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let me = d.path().join("me");
        std::fs::create_dir_all(me.join("pipelines")).unwrap();
        for f in ["pipelines/p.yaml", "pipelines/p.lock"] {
            std::fs::copy(col.join(f), me.join(f)).unwrap();
        }
        let o = run_bounded(&me, &["pull", "pipelines/p.yaml", "--remote", &url]);
        let e = text(&o);
        assert!(matches!(code(&o), Some(0 | 1)), "{at}: {e}");
        assert!(!e.contains("panicked"), "{at}: {e}");
        assert!(
            !me.join("results/p/a/a.txt").exists(),
            "{at}: pulled through the link: {e}"
        );
        let runs = me.join("cache/runs");
        let pulled = std::fs::read_dir(&runs).map(|r| r.count()).unwrap_or(0);
        assert_eq!(pulled, 0, "{at}: a record came through the link: {e}");
        if at == "RECORD" {
            assert!(e.contains("regular file"), "{at}: {e}");
        } else {
            assert!(e.contains("symbolic link"), "{at}: {e}");
        }
    }
}
