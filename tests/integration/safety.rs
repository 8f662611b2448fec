//! Issue 11 (nothing escapes the project), driving the real `pipe` binary: outputs naming pipe's
//! own places, unsafe ids, planted symbolic links (refused or replaced, never followed),
//! `pipe clean` from a subfolder, memory estimated before allocating (training and decoding),
//! the lock-wait message, leftovers of killed runs, and errors printed once (a full disk, a
//! failed download). Every rejected case checks the exit code, the message, and that the
//! project and a sibling "outside" folder are byte-identical afterwards.

use crate::support::{pipe_cmd, snapshot, stderr, stdout, Node};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A temp folder holding `proj/` (the project: `.git`, sources, a pipeline) and `outside/`
/// (a sibling standing in for the rest of the machine), plus `victim/` beside them.
struct Proj {
    dir: tempfile::TempDir,
}

impl Proj {
    fn new(pipeline: &str) -> Proj {
        let p = Proj {
            dir: tempfile::tempdir().unwrap(),
        };
        p.write("proj/pipelines/p.yaml", pipeline);
        p.write("proj/.git/HEAD", "ref: refs/heads/main\n");
        p.write("proj/src/main.rs", "fn main() {}\n");
        p.write("proj/in.txt", "hello\n");
        p.write("outside/victim/keep.txt", "precious\n");
        p.write("victim/keep.txt", "precious too\n");
        p
    }
    fn root(&self) -> PathBuf {
        self.dir.path().join("proj")
    }
    fn outside(&self) -> PathBuf {
        self.dir.path().join("outside")
    }
    fn write(&self, rel: &str, text: &str) {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(rel)).unwrap_or_default()
    }
    /// `pipe ARGS` in the project root, with no `PIPE_*` variable of the test's environment.
    fn cmd(&self, args: &[&str]) -> Command {
        pipe_cmd(&self.root(), args)
    }
    fn pipe(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }
    fn run_ok(&self) -> Output {
        let o = self.pipe(&["run", "pipelines/p.yaml"]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        o
    }
    /// Every path under the temp folder with its kind and content; links are recorded as
    /// links, never followed.
    fn snapshot(&self) -> Vec<(PathBuf, Node)> {
        snapshot(self.dir.path())
    }
}

/// Runs `pipe ARGS`; asserts the exit code, every needle in stderr, and nothing changed on
/// disk (project, outside, victim).
fn refused(p: &Proj, what: &str, args: &[&str], code: i32, needles: &[&str]) -> String {
    let before = p.snapshot();
    let o = p.pipe(args);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(code), "{what}: {e}");
    for n in needles {
        assert!(e.contains(n), "{what}: `{n}` not in: {e}");
    }
    assert!(p.snapshot() == before, "{what}: the disk changed");
    e
}

/// `pipe run pipelines/p.yaml` refused at load: exit 2, one line.
fn refused_at_load(p: &Proj, what: &str, needles: &[&str]) {
    let e = refused(p, what, &["run", "pipelines/p.yaml"], 2, needles);
    assert_eq!(e.trim_end().lines().count(), 1, "{what}: one line: {e}");
}

fn command_stage(out: &str) -> String {
    format!(
        "stages:\n  a:\n    kind: command\n    params: {{ cmd: \"rm -rf {out}; echo > {out}\", outs: [\"{out}\"] }}\n"
    )
}

#[test]
fn outputs_naming_the_project_or_pipes_own_folders_are_refused() {
    for (out, why) in [
        (".", "project root"),
        ("./", "project root"),
        (".git", "`.git`"),
        ("src/.git", "`.git`"),
        ("cache", "`cache/`"),
        ("cache/lock", "`cache/`"),
        ("results", "`results/`"),
        ("checkpoints", "`checkpoints/`"),
        ("pipelines", "`pipelines/`"),
        ("pipelines/", "`pipelines/`"),
        ("pipelines/p.yaml", "`pipelines/`"),
        ("pipelines/p.lock", "`pipelines/`"),
        ("..", "p.yaml:4:"),
        ("../outside/victim", "p.yaml:4:"),
    ] {
        let p = Proj::new(&command_stage(out));
        refused_at_load(
            &p,
            &format!("outs {out}"),
            &["p.yaml:4:", "stage `a`", out, why],
        );
    }
    // The pipeline file itself, kept outside pipelines/.
    let p = Proj::new("stages: {}\n");
    p.write(
        "proj/conf/q.yaml",
        "stages:\n  a: { kind: command, params: { cmd: \"echo > conf/q.yaml\", outs: [conf/q.yaml] } }\n",
    );
    let e = refused(
        &p,
        "the pipeline file",
        &["run", "conf/q.yaml"],
        2,
        &["conf/q.yaml", "stage `a`"],
    );
    assert_eq!(e.trim_end().lines().count(), 1, "{e}");
}

#[test]
fn unsafe_ids_are_refused_at_load() {
    let p = Proj::new(
        "stages:\n  a:\n    kind: command\n    matrix: { p: [x, \"x/../../../../victim\"] }\n    params: { cmd: \"echo > $PIPE_OUT/f\" }\n",
    );
    refused_at_load(
        &p,
        "matrix value climbing out",
        &[
            "p.yaml:4:",
            "stage `a`",
            "matrix key `p`",
            "`x/../../../../victim`",
        ],
    );
    for (name, needle) in [
        ("..", "`.` or `..`"),
        (".", "`.` or `..`"),
        ("\"a\\nb\"", "control character"),
        ("\"a/b\"", "a/b"),
        (&"s".repeat(300), "longer than 200 bytes"),
    ] {
        let p = Proj::new(&format!(
            "stages:\n  {name}: {{ kind: command, params: {{ cmd: \"echo > $PIPE_OUT/f\" }} }}\n"
        ));
        refused_at_load(&p, &format!("stage name {name}"), &["p.yaml:2:", needle]);
    }
}

const ONE: &str =
    "name: p\nstages:\n  a: { kind: command, params: { cmd: \"echo a > $PIPE_OUT/a.txt\" } }\n";

#[test]
fn planted_links_are_refused_never_followed() {
    let link = |p: &Proj, to: &Path, at: &str| {
        let at = p.root().join(at);
        std::fs::create_dir_all(at.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(to, at).unwrap();
    };
    // results/ as a link to an outside folder.
    let p = Proj::new(ONE);
    link(&p, &p.outside().join("victim"), "results");
    refused(
        &p,
        "results link",
        &["run", "pipelines/p.yaml"],
        2,
        &["results", "symbolic link"],
    );
    // results/<pipeline> as a link.
    let p = Proj::new(ONE);
    link(&p, &p.outside().join("victim"), "results/p");
    refused(
        &p,
        "results/p link",
        &["run", "pipelines/p.yaml"],
        2,
        &["results/p", "symbolic link"],
    );
    // checkpoints/ as a link.
    let p = Proj::new(ONE);
    link(&p, &p.outside().join("victim"), "checkpoints");
    refused(
        &p,
        "checkpoints link",
        &["run", "pipelines/p.yaml"],
        2,
        &["checkpoints", "symbolic link"],
    );
    // An output under a linked folder.
    let p = Proj::new(
        "stages:\n  a: { kind: command, params: { cmd: \"echo x > ext/out.txt\", outs: [ext/out.txt] } }\n",
    );
    link(&p, &p.outside().join("victim"), "ext");
    refused(
        &p,
        "ext link",
        &["run", "pipelines/p.yaml"],
        2,
        &["stage `a`", "`ext`", "symbolic link"],
    );
    // cache/lock as a link to an outside file: never truncated.
    let p = Proj::new(ONE);
    link(&p, &p.outside().join("victim/keep.txt"), "cache/lock");
    let e = refused(
        &p,
        "cache/lock link",
        &["run", "pipelines/p.yaml"],
        2,
        &["lock", "symbolic link"],
    );
    assert!(!e.contains("Some("), "{e}");
    // cache/ itself as a link.
    let p = Proj::new(ONE);
    link(&p, &p.outside().join("victim"), "cache");
    let before = p.snapshot();
    let o = p.pipe(&["run", "pipelines/p.yaml"]);
    assert_ne!(o.status.code(), Some(0), "cache link: {}", stderr(&o));
    assert!(stderr(&o).contains("symbolic link"), "{}", stderr(&o));
    assert!(p.snapshot() == before, "cache link: the disk changed");
}

#[test]
fn a_planted_log_link_is_replaced_and_its_target_kept() {
    let p = Proj::new(ONE);
    let log = p.root().join("results/p/logs/a.log");
    std::fs::create_dir_all(log.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(p.outside().join("victim/keep.txt"), &log).unwrap();
    let outside = snapshot(&p.outside());
    p.run_ok();
    assert!(
        snapshot(&p.outside()) == outside,
        "the link's target changed"
    );
    let m = std::fs::symlink_metadata(&log).unwrap();
    assert!(m.is_file(), "the log is a file of its own now");
    assert!(p.read("proj/results/p/logs/a.log").contains("done in"));
    assert_eq!(p.read("proj/results/p/a/a.txt"), "a\n");
}

#[test]
fn clean_removes_links_never_their_targets() {
    let p = Proj::new(ONE);
    p.run_ok();
    // Replace the pipeline's results and checkpoints folders by links to outside folders.
    std::fs::remove_dir_all(p.root().join("results/p")).unwrap();
    std::os::unix::fs::symlink(p.outside().join("victim"), p.root().join("results/p")).unwrap();
    std::fs::create_dir_all(p.root().join("checkpoints")).unwrap();
    std::os::unix::fs::symlink(p.outside(), p.root().join("checkpoints/p")).unwrap();
    let outside = snapshot(&p.outside());
    let o = p.pipe(&["clean", "pipelines/p.yaml"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("removed results/p"), "{}", stdout(&o));
    assert!(std::fs::symlink_metadata(p.root().join("results/p")).is_err());
    assert!(std::fs::symlink_metadata(p.root().join("checkpoints/p")).is_err());
    assert!(snapshot(&p.outside()) == outside, "a target was touched");
}

#[test]
fn clean_from_a_subfolder_cleans_the_project() {
    let p = Proj::new(ONE);
    p.run_ok();
    p.write("proj/sub/deeper/note.txt", "mine\n");
    let sub = p.root().join("sub/deeper");
    // By file, relative to the project root, from a subfolder.
    let o = p
        .cmd(&["clean", "pipelines/p.yaml"])
        .current_dir(&sub)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("removed results/p"), "{}", stdout(&o));
    assert!(!p.root().join("results/p").exists());
    assert_eq!(p.read("proj/sub/deeper/note.txt"), "mine\n");
    // By file relative to the subfolder, and by name with -C.
    p.run_ok();
    let o = p
        .cmd(&["clean", "../../pipelines/p.yaml"])
        .current_dir(&sub)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!p.root().join("results/p").exists());
    p.run_ok();
    let o = p.cmd(&["-C", "sub/deeper", "clean", "p"]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("removed results/p"), "{}", stdout(&o));
    assert!(!p.root().join("results/p").exists());
    // --cache --unreferenced from a subfolder works on the project's store.
    let o = p
        .cmd(&["clean", "--cache", "--unreferenced", "--dry-run"])
        .current_dir(&sub)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!sub.join("cache").exists());
    assert_eq!(p.read("proj/sub/deeper/note.txt"), "mine\n");
}

/// A corpus of `n` short blank-line-separated documents over a few words.
fn corpus(n: usize) -> String {
    let words = [
        "the", "dog", "ran", "home", "and", "a", "girl", "played", "with", "her", "ball",
    ];
    (0..n)
        .map(|i| {
            (0..8)
                .map(|j| words[(i * 7 + j * 3) % words.len()])
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}

const TINY: &str = "d_model: 16, d_attn: 16, n_heads: 2, d_ff: 24, n_layers: 1, batch_size: 4, epochs: 1, freeze_embeddings: false";

#[test]
fn an_absurd_context_is_a_clear_error_not_an_abort() {
    let p = Proj::new(&format!(
        "name: p\nstages:\n  tok: {{ kind: tokenize, params: {{ path: corpus.txt, format: text, valid_fraction: 0.3 }} }}\n  train: {{ kind: train, needs: [tok], params: {{ {TINY}, context: 1000000 }} }}\n"
    ));
    p.write("proj/corpus.txt", &corpus(40));
    let o = p.pipe(&["run", "pipelines/p.yaml"]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(
        e.contains("needs about") && e.contains("available") && e.contains("context 1000000"),
        "{e}"
    );
    assert!(!p
        .root()
        .join("checkpoints/p/train")
        .join("epoch_1.safetensors")
        .exists());
}

#[test]
fn decoding_memory_is_estimated_before_allocating() {
    let p = Proj::new(&format!(
        "name: p\nstages:\n  tok: {{ kind: tokenize, params: {{ path: corpus.txt, format: text, valid_fraction: 0.3 }} }}\n  train: {{ kind: train, needs: [tok], params: {{ {TINY}, context: 16 }} }}\n  kv: {{ kind: kv-eval, needs: [train, tok], params: {{ batch: 2, prompt_len: 3, new_tokens: 4, sweep_new_tokens: [], repeats: 1 }} }}\n"
    ));
    p.write("proj/corpus.txt", &corpus(40));
    p.run_ok();
    let ck = "checkpoints/p/train/epoch_1.safetensors";
    assert!(p.root().join(ck).is_file());
    // An absurd beam width or sample count: the estimate and the machine's memory, exit 2.
    for flags in [&["--beam", "100000000"][..], &["-n", "100000000"][..]] {
        let mut args = vec!["generate", "--checkpoint", ck, "--prompt", "the dog"];
        args.extend_from_slice(flags);
        let o = p.pipe(&args);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{flags:?}: {e}");
        assert!(
            e.contains(ck)
                && e.contains("decoding needs about")
                && e.contains("KV cache")
                && e.contains("100000000 sequences × context 16")
                && e.contains("available"),
            "{flags:?}: {e}"
        );
    }
    // A sensible one still works.
    let o = p.pipe(&[
        "generate",
        "--checkpoint",
        ck,
        "--prompt",
        "the dog",
        "--beam",
        "3",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = p.pipe(&["score", "--checkpoint", ck, "--text", "corpus.txt"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // A model whose sidecar claims an absurd context: refused from the sidecar alone, before
    // the weights (which do not match it) are read.
    let side: serde_json::Value =
        serde_json::from_str(&p.read("proj/checkpoints/p/train/epoch_1.json")).unwrap();
    let mut big = side.clone();
    big["config"]["context"] = serde_json::json!(1_000_000_000u64);
    p.write("proj/big/epoch_1.json", &big.to_string());
    std::fs::copy(p.root().join(ck), p.root().join("big/epoch_1.safetensors")).unwrap();
    for args in [
        &["generate", "--prompt", "the dog"][..],
        &["score", "--text", "corpus.txt"][..],
    ] {
        let mut all = args.to_vec();
        all.extend_from_slice(&[
            "--checkpoint",
            "big/epoch_1.safetensors",
            "--vocab",
            "results/p/tok/vocab.json",
        ]);
        let o = p.pipe(&all);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {e}");
        assert!(
            e.contains("big/epoch_1.safetensors")
                && e.contains("decoding needs about")
                && e.contains("× context 1000000000"),
            "{args:?}: {e}"
        );
    }
    // A decoding stage with an absurd batch: the stage fails with the estimate.
    let o = p.pipe(&["run", "pipelines/p.yaml", "--set", "kv.batch=100000000"]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(
        e.contains("decoding needs about") && e.contains("100000000 sequences"),
        "{e}"
    );
}

#[test]
fn the_lock_wait_message_names_the_pid() {
    let p = Proj::new(
        "name: p\nstages:\n  slow: { kind: command, params: { cmd: \"touch started; sleep 1; echo s > $PIPE_OUT/s.txt\" } }\n",
    );
    let first = p
        .cmd(&["run", "pipelines/p.yaml"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = first.id();
    let t0 = Instant::now();
    while !p.root().join("started").exists() {
        assert!(t0.elapsed().as_secs() < 20, "the slow stage never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    let o = p.pipe(&["run", "pipelines/p.yaml"]);
    let first = first.wait_with_output().unwrap();
    assert!(first.status.success());
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{e}");
    assert!(
        e.contains(&format!("waiting for the project lock held by pid {pid}")),
        "{e}"
    );
    assert!(!e.contains("Some("), "{e}");
}

/// A pid that is certainly not alive: a child that has exited and been reaped.
fn dead_pid() -> u32 {
    let mut c = Command::new("true").spawn().unwrap();
    let pid = c.id();
    c.wait().unwrap();
    pid
}

#[test]
fn leftovers_of_a_killed_run_are_removed_by_the_next_run() {
    let p = Proj::new(ONE);
    p.run_ok();
    let dead = dead_pid();
    let me = std::process::id();
    // What a run killed while writing leaves: its staging folder and temporary files beside
    // the store's objects, records, the stat cache and the lock file.
    let objects = p.root().join("cache/objects");
    let shard = std::fs::read_dir(&objects)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .file_name()
        .to_string_lossy()
        .into_owned();
    let left = [
        format!("proj/cache/tmp/{dead}/a/out/a.txt"),
        format!("proj/cache/objects/{shard}/.abc.tmp{dead}-0"),
        format!("proj/cache/runs/.f00.json.tmp{dead}-3"),
        format!("proj/cache/.stat.json.tmp{dead}-1"),
        format!("proj/pipelines/.p.lock.tmp{dead}-2"),
    ];
    for f in &left {
        p.write(f, "partial");
    }
    // A live process's temporary file (ours) and a user's file that merely looks alike stay.
    let keep = [
        format!("proj/cache/runs/.g00.json.tmp{me}-0"),
        "proj/pipelines/notes.tmp1-x".to_string(),
    ];
    for f in &keep {
        p.write(f, "keep");
    }
    let o = p.run_ok();
    assert!(stdout(&o).contains("1 up to date"), "{}", stdout(&o));
    for f in &left {
        assert!(
            !p.dir.path().join(f).exists(),
            "{f} is still there after the next run"
        );
    }
    assert!(!p.root().join(format!("cache/tmp/{dead}")).exists());
    for f in &keep {
        assert_eq!(p.read(f), "keep", "{f}");
    }
}

fn closed_port_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    drop(l);
    format!("http://{a}/corpus.txt")
}

#[test]
fn a_failed_download_is_reported_once() {
    let url = closed_port_url();
    let p = Proj::new(&format!(
        "name: p\nstages:\n  data: {{ kind: fetch, params: {{ url: \"{url}\", timeout_s: 5 }} }}\n"
    ));
    let o = p.pipe(&["run", "pipelines/p.yaml"]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(e.contains("stage `data`") || e.contains("data"), "{e}");
    assert_eq!(e.matches(&url).count(), 1, "the URL once: {e}");
    assert_eq!(
        e.matches("check the network").count(),
        1,
        "the hint once: {e}"
    );
    let log = p.read("proj/results/p/logs/data.log");
    assert_eq!(
        log.matches("check the network").count(),
        1,
        "the log once: {log}"
    );
}

/// A tmpfs of `size` mounted on `dir`, unmounted on drop (`None` when mounting is not allowed).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
#[ignore = "needs root to mount a tmpfs (scripts/test.sh runs it)"]
fn a_full_disk_is_reported_once() {
    let top = tempfile::tempdir().unwrap();
    let root = top.path().join("proj");
    let _fs = Tmpfs::mount(&root, "1m").expect("a tmpfs mounted (this test needs root)");
    // The stage's output fits once, but not twice (working copy + store object).
    std::fs::create_dir_all(root.join("pipelines")).unwrap();
    std::fs::write(
        root.join("pipelines/p.yaml"),
        "name: p\nstages:\n  big: { kind: command, params: { cmd: \"head -c 700000 /dev/zero > $PIPE_OUT/big.bin\" } }\n",
    )
    .unwrap();
    let o = pipe_cmd(&root, &["run", "pipelines/p.yaml"])
        .output()
        .unwrap();
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert_eq!(
        e.matches("No space left on device").count(),
        1,
        "the cause once: {e}"
    );
    assert!(e.contains("big"), "{e}");
    // Nothing half-written is left in the store or the tree.
    let mut stack = vec![root.clone()];
    while let Some(d) = stack.pop() {
        for f in std::fs::read_dir(&d).unwrap().flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            assert!(!name.contains(".tmp"), "leftover {}", f.path().display());
            if f.file_type().unwrap().is_dir() {
                stack.push(f.path());
            }
        }
    }
}

/// A project whose `data` stage downloads from a closed port a file that only the mirror
/// folder `proj/m/deep/` holds (found by its blake3).
fn mirrored() -> (Proj, Vec<u8>) {
    let body: Vec<u8> = (0..5000u32).flat_map(|i| i.to_le_bytes()).collect();
    let h = blake3::hash(&body).to_hex().to_string();
    let url = closed_port_url();
    let p = Proj::new(&format!(
        "name: p\nstages:\n  data: {{ kind: fetch, params: {{ url: \"{url}\", blake3: {h}, timeout_s: 5 }} }}\n"
    ));
    std::fs::create_dir_all(p.root().join("m/deep")).unwrap();
    std::fs::write(p.root().join("m/deep/corpus.txt"), &body).unwrap();
    (p, body)
}

#[test]
fn mirror_folders_reach_the_fetch_stage_from_the_command_line_the_environment_and_jobs() {
    // --mirror, relative to the current folder.
    let (p, body) = mirrored();
    let o = p.pipe(&["run", "pipelines/p.yaml", "--mirror", "m"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        std::fs::read(p.root().join("results/p/data/corpus.txt")).unwrap(),
        body
    );
    assert!(p
        .read("proj/results/p/logs/data.log")
        .contains("using mirror file"));
    // PIPE_MIRROR, relative to the current folder (a subfolder here), read by the CLI only.
    let (p, body) = mirrored();
    std::fs::create_dir_all(p.root().join("sub")).unwrap();
    let o = p
        .cmd(&["run", "pipelines/p.yaml"])
        .current_dir(p.root().join("sub"))
        .env("PIPE_MIRROR", "/nonexistent:../m")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        std::fs::read(p.root().join("results/p/data/corpus.txt")).unwrap(),
        body
    );
    // Without a mirror the same stage fails, naming where to put the file.
    let (p, _) = mirrored();
    let o = p.pipe(&["run", "pipelines/p.yaml"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("no mirror folder was given"),
        "{}",
        stderr(&o)
    );
    // A Slurm job's `pipe __instance` gets the driver's folders on its command line.
    let m = p.root().join("m").display().to_string();
    let job = |fp: &str| {
        p.pipe(&[
            "__instance",
            "pipelines/p.yaml",
            "--id",
            "data",
            "--fingerprint",
            fp,
            "--mirror",
            &m,
        ])
    };
    // A well-formed fingerprint that is not this instance's: refused, naming the real one.
    let o = job(&"0".repeat(64));
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    let fp = e
        .split("the fingerprint is ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .unwrap_or_else(|| panic!("no fingerprint in: {e}"))
        .to_string();
    let o = job(&fp);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(p.root().join("results/p/data/corpus.txt").is_file());
}

#[test]
fn reproduce_gives_its_scratch_run_the_mirror_folders() {
    let (p, body) = mirrored();
    // The mirror outside the project, named relative to it: the scratch copy lives elsewhere.
    std::fs::create_dir_all(p.outside().join("mirror")).unwrap();
    std::fs::rename(
        p.root().join("m/deep/corpus.txt"),
        p.outside().join("mirror/corpus.txt"),
    )
    .unwrap();
    let env = ("PIPE_MIRROR", "../outside/mirror");
    let o = p
        .cmd(&["run", "pipelines/p.yaml"])
        .env(env.0, env.1)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        std::fs::read(p.root().join("results/p/data/corpus.txt")).unwrap(),
        body
    );
    let o = p
        .cmd(&["reproduce", "pipelines/p.yaml"])
        .env(env.0, env.1)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    // Without the mirror the scratch run cannot download: reproduce says the stage failed.
    let o = p.pipe(&["reproduce", "pipelines/p.yaml"]);
    assert_ne!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
}
