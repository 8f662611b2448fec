//! The everyday command line, driven through the real binary in temporary folders: the project
//! root found from a subfolder and `-C`, the default pipeline, `pipe init`, completions,
//! colour, and `pipe generate` / `pipe score` (vocabulary from the sidecar, `-n`, prompts on
//! stdin, range errors, unknown words, long prompts, missing files).

use crate::support::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// A project made by `pipe init` in a fresh temporary folder, with `sub/deep/` inside.
fn init_project() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let o = pipe(d.path(), &["init"]);
    assert_eq!(code(&o), Some(0), "{}", stderr(&o));
    std::fs::create_dir_all(d.path().join("sub/deep")).unwrap();
    d
}

#[test]
fn init_then_run_from_a_subfolder() {
    let d = init_project();
    let root = d.path();
    let gi = std::fs::read_to_string(root.join(".gitignore")).unwrap();
    for want in ["/cache", "/results", "/checkpoints"] {
        assert!(gi.lines().any(|l| l == want), "{gi}");
    }
    assert!(
        !gi.lines()
            .any(|l| !l.starts_with('#') && l.contains("lock")),
        "lock files are committed: {gi}"
    );
    let o = pipe(&root.join("sub/deep"), &["run"]);
    assert_eq!(code(&o), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("using pipelines/hello.yaml"),
        "{}",
        stderr(&o)
    );
    assert!(stdout(&o).contains("3 ran"), "{}", stdout(&o));
    // Outputs land at the root, not in the subfolder.
    let m = std::fs::read_to_string(root.join("results/hello/count/metrics.json")).unwrap();
    assert!(
        m.contains("\"words\": 10") || m.contains("\"words\":10"),
        "{m}"
    );
    assert!(root.join("pipelines/hello.lock").is_file());
    assert!(!root.join("sub/deep/results").exists());
    // A path relative to the subfolder, and one relative to the root, both work.
    for p in ["../../pipelines/hello.yaml", "pipelines/hello.yaml"] {
        let o = pipe(&root.join("sub/deep"), &["status", p]);
        assert_eq!(code(&o), Some(0), "{p}: {}", stderr(&o));
        assert!(stdout(&o).contains("3 up to date"), "{p}: {}", stdout(&o));
    }
}

#[test]
fn init_refuses_to_overwrite() {
    let d = init_project();
    std::fs::write(d.path().join("pipelines/hello.yaml"), "mine").unwrap();
    let before = files(d.path());
    let o = pipe(d.path(), &["init"]);
    assert_eq!(code(&o), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains("pipelines/hello.yaml") && e.contains(".gitignore"),
        "{e}"
    );
    assert_eq!(files(d.path()), before);
    // Into a new folder given as DIR.
    let o = pipe(d.path(), &["init", "other"]);
    assert_eq!(code(&o), Some(0), "{}", stderr(&o));
    assert!(d.path().join("other/pipelines/hello.yaml").is_file());
}

#[test]
fn dash_c_changes_folder_first() {
    let d = init_project();
    let elsewhere = tempfile::tempdir().unwrap();
    let sub = d.path().join("sub");
    let o = pipe(elsewhere.path(), &["-C", sub.to_str().unwrap(), "run"]);
    assert_eq!(code(&o), Some(0), "{}", stderr(&o));
    assert!(d.path().join("results/hello/words/words.txt").is_file());
    // Global: after the subcommand too.
    let o = pipe(elsewhere.path(), &["status", "-C", sub.to_str().unwrap()]);
    assert_eq!(code(&o), Some(0), "{}", stderr(&o));
    let o = pipe(elsewhere.path(), &["-C", "no/such/dir", "status"]);
    assert_eq!(code(&o), Some(2));
    assert!(stderr(&o).contains("no/such/dir"), "{}", stderr(&o));
}

#[test]
fn default_pipeline_several_files_and_project_config() {
    let d = init_project();
    let root = d.path();
    std::fs::write(
        root.join("pipelines/other.yaml"),
        "name: other\nstages:\n  x: { kind: command, params: { cmd: \"echo x > $PIPE_OUT/x.txt\" } }\n",
    )
    .unwrap();
    let o = pipe(&root.join("sub"), &["status"]);
    assert_eq!(code(&o), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains("pipelines/hello.yaml") && e.contains("pipelines/other.yaml"),
        "{e}"
    );
    assert!(e.contains("pipe.yaml"), "{e}");
    std::fs::write(root.join("pipe.yaml"), "default: pipelines/other.yaml\n").unwrap();
    let o = pipe(&root.join("sub"), &["run"]);
    assert_eq!(code(&o), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("using pipelines/other.yaml"),
        "{}",
        stderr(&o)
    );
    assert!(root.join("results/other/x/x.txt").is_file());
    std::fs::write(root.join("pipe.yaml"), "default: pipelines/gone.yaml\n").unwrap();
    let o = pipe(root, &["run"]);
    assert_eq!(code(&o), Some(2));
    assert!(stderr(&o).contains("pipelines/gone.yaml"), "{}", stderr(&o));
    // An empty project (no pipelines/) is a usage error too.
    let empty = tempfile::tempdir().unwrap();
    let o = pipe(empty.path(), &["run"]);
    assert_eq!(code(&o), Some(2));
    assert!(stderr(&o).contains("pipe init"), "{}", stderr(&o));
}

#[test]
fn completions_for_each_shell() {
    let d = tempfile::tempdir().unwrap();
    for sh in ["bash", "zsh", "fish"] {
        let o = pipe(d.path(), &["completions", sh]);
        assert_eq!(code(&o), Some(0), "{sh}: {}", stderr(&o));
        let s = stdout(&o);
        assert!(
            s.len() > 200 && s.contains("generate") && s.contains("init"),
            "{sh}: {s}"
        );
    }
    assert_eq!(code(&pipe(d.path(), &["completions", "tcsh"])), Some(2));
}

#[test]
fn colour_flags_and_no_color() {
    let d = tempfile::tempdir().unwrap();
    let args = ["status", "missing.yaml"];
    let always = pipe(d.path(), &["--color", "always", args[0], args[1]]);
    assert_eq!(code(&always), Some(2));
    assert!(stderr(&always).contains("\x1b["), "{:?}", stderr(&always));
    let never = pipe(d.path(), &["--color", "never", args[0], args[1]]);
    assert!(!stderr(&never).contains('\x1b'), "{:?}", stderr(&never));
    assert!(
        stderr(&never).starts_with("error: "),
        "{:?}",
        stderr(&never)
    );
    let nc = pipe_env(d.path(), &args, &[("NO_COLOR", "1")]);
    assert!(!stderr(&nc).contains('\x1b'), "{:?}", stderr(&nc));
    // Not a terminal: auto gives no colour.
    assert!(!stderr(&pipe(d.path(), &args)).contains('\x1b'));
}

// ---- generate and score -------------------------------------------------------------------

/// A project with a tiny random checkpoint `checkpoints/train/epoch_1.safetensors` whose
/// sidecar names a vocabulary held only in the store (as after a real run whose results/ were
/// cleaned). Returns the folder, the checkpoint path and the vocabulary's store path.
fn model_project() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    std::fs::create_dir_all(root.join("pipelines")).unwrap();
    let vocab = vocab();
    let json = vocab.to_json();
    let h = blake3::hash(json.as_bytes()).to_hex().to_string();
    let obj = root.join("cache/objects").join(&h[..2]).join(&h[2..]);
    std::fs::create_dir_all(obj.parent().unwrap()).unwrap();
    std::fs::write(&obj, &json).unwrap();
    let ckpt = root.join(CK);
    save_checkpoint(
        &ckpt,
        random_weights(vocab.len()),
        tiny_config(vocab.len()),
        &h,
    );
    (d, ckpt, obj)
}

const CK: &str = "checkpoints/train/epoch_1.safetensors";

#[test]
fn generate_finds_the_vocabulary_in_the_store_or_beside() {
    let (d, _ckpt, obj) = model_project();
    let root = d.path();
    let base = ["generate", "--checkpoint", CK, "--max-new", "5"];
    let o = pipe(root, &[&base[..], &["--prompt", "the dog"]].concat());
    assert_eq!(code(&o), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().count(), 1, "{}", stdout(&o));
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));
    // From a subfolder, with the checkpoint path relative to it.
    std::fs::create_dir_all(root.join("sub")).unwrap();
    let rel = format!("../{CK}");
    let o = pipe(
        &root.join("sub"),
        &["generate", "--checkpoint", &rel, "--prompt", "the dog"],
    );
    assert_eq!(code(&o), Some(0), "{}", stderr(&o));
    // Beside the checkpoint, when the store does not hold it.
    let beside = root.join("checkpoints/train/vocab.json");
    std::fs::rename(&obj, &beside).unwrap();
    let o = pipe(root, &[&base[..], &["--prompt", "the dog"]].concat());
    assert_eq!(code(&o), Some(0), "{}", stderr(&o));
    // Nowhere: the error names the hash and every place looked at.
    std::fs::remove_file(&beside).unwrap();
    let o = pipe(root, &[&base[..], &["--prompt", "the dog"]].concat());
    assert_eq!(code(&o), Some(2));
    let e = stderr(&o);
    assert!(e.contains("vocab_blake3"), "{e}");
    assert!(e.contains("checkpoints/train/vocab.json"), "{e}");
    assert!(e.contains("cache/objects/"), "{e}");
    assert!(e.contains("--vocab"), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
}

#[test]
fn generate_n_samples_stdin_prompts_and_json() {
    let (d, _ckpt, _) = model_project();
    let root = d.path();
    let o = pipe(
        root,
        &[
            "generate",
            "--checkpoint",
            CK,
            "--prompt",
            "the dog",
            "-n",
            "3",
            "--max-new",
            "4",
        ],
    );
    assert_eq!(code(&o), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().count(), 3, "{}", stdout(&o));
    let o = pipe_stdin(
        root,
        &["generate", "--checkpoint", CK, "--max-new", "4", "--json"],
        "the dog\n\nshe played\n",
    );
    assert_eq!(code(&o), Some(0), "{}", stderr(&o));
    let rows: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2, "{}", stdout(&o));
    assert_eq!(rows[0]["prompt"], "the dog");
    assert_eq!(rows[1]["prompt"], "she played");
    for r in &rows {
        let toks = r["tokens"].as_array().unwrap();
        assert!(!toks.is_empty() && toks.len() <= 4, "{r}");
        let words = r["continuation"].as_str().unwrap().split(' ').count();
        assert_eq!(words, toks.len(), "{r}");
    }
    // Beam search: -n best hypotheses, at most the width.
    let o = pipe(
        root,
        &[
            "generate",
            "--checkpoint",
            CK,
            "--prompt",
            "a",
            "--beam",
            "3",
            "-n",
            "2",
        ],
    );
    assert_eq!(code(&o), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().count(), 2);
    let o = pipe(
        root,
        &[
            "generate",
            "--checkpoint",
            CK,
            "--prompt",
            "a",
            "--beam",
            "2",
            "-n",
            "3",
        ],
    );
    assert_eq!(code(&o), Some(2));
    // No prompt at all on stdin.
    let o = pipe_stdin(root, &["generate", "--checkpoint", CK], "\n");
    assert_eq!(code(&o), Some(2));
    assert!(stderr(&o).contains("--prompt"), "{}", stderr(&o));
}

#[test]
fn negative_numbers_are_range_errors() {
    let (d, _ckpt, _) = model_project();
    let root = d.path();
    let o = pipe(
        root,
        &[
            "generate",
            "--checkpoint",
            CK,
            "--prompt",
            "a",
            "--temperature",
            "-1",
        ],
    );
    assert_eq!(code(&o), Some(2));
    let e = stderr(&o);
    assert!(e.contains("--temperature must be >= 0, got -1"), "{e}");
    assert!(!e.contains("unexpected argument"), "{e}");
    let o = pipe(
        root,
        &[
            "generate",
            "--checkpoint",
            CK,
            "--prompt",
            "a",
            "--top-k",
            "-3",
        ],
    );
    assert_eq!(code(&o), Some(2));
    assert!(
        stderr(&o).contains("must be >= 0, got -3"),
        "{}",
        stderr(&o)
    );
    // A prompt that starts with a dash is a prompt.
    let o = pipe(
        root,
        &["generate", "--checkpoint", CK, "--prompt", "-the dog"],
    );
    assert_eq!(code(&o), Some(0), "{}", stderr(&o));
}

#[test]
fn unknown_words_and_long_prompts_are_reported() {
    let (d, _ckpt, _) = model_project();
    let root = d.path();
    let o = pipe(
        root,
        &[
            "generate",
            "--checkpoint",
            CK,
            "--prompt",
            "the zebra and the Quux zebra",
        ],
    );
    assert_eq!(code(&o), Some(0), "{}", stderr(&o));
    let e = stderr(&o);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(
        e.contains("warning:") && e.contains("zebra, quux") && e.contains("<unk>"),
        "{e}"
    );
    // Context 16: `<sos>` + the last 15 of 30 words.
    let long = vec!["the dog"; 15].join(" ");
    let o = pipe(root, &["generate", "--checkpoint", CK, "--prompt", &long]);
    assert_eq!(code(&o), Some(0), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("30 words do not fit the model's context of 16 tokens")
            && e.contains("keeping the last 15 words"),
        "{e}"
    );
    // Score names unknown words and explains long documents.
    std::fs::write(
        root.join("t.txt"),
        format!("the zebra ran home\n\n{long}\n"),
    )
    .unwrap();
    let o = pipe(root, &["score", "--checkpoint", CK, "--text", "t.txt"]);
    assert_eq!(code(&o), Some(0), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("t.txt: 1 distinct word is not in the vocabulary") && e.contains("zebra"),
        "{e}"
    );
    assert!(
        e.contains("1 of 2 documents are longer than the model's context of 16"),
        "{e}"
    );
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["tokens"], 4 + 1 + 30 + 1);
}

#[test]
fn missing_files_are_named_as_given() {
    let (d, _ckpt, obj) = model_project();
    let root = d.path();
    let o = pipe(
        root,
        &[
            "generate",
            "--checkpoint",
            "checkpoints/train/epoch_9.safetensors",
            "--prompt",
            "a",
        ],
    );
    assert_eq!(code(&o), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains("checkpoint checkpoints/train/epoch_9.safetensors: no such file"),
        "{e}"
    );
    assert!(!e.contains("epoch_9.json"), "{e}");
    let o = pipe(
        root,
        &[
            "generate",
            "--checkpoint",
            CK,
            "--vocab",
            "v.json",
            "--prompt",
            "a",
        ],
    );
    assert_eq!(code(&o), Some(2));
    assert!(
        stderr(&o).contains("vocabulary v.json: no such file"),
        "{}",
        stderr(&o)
    );
    // The checkpoint without its sidecar.
    std::fs::remove_file(root.join("checkpoints/train/epoch_1.json")).unwrap();
    let o = pipe(root, &["score", "--checkpoint", CK, "--text", "t.txt"]);
    assert_eq!(code(&o), Some(2));
    assert!(
        stderr(&o).contains("text t.txt: no such file"),
        "{}",
        stderr(&o)
    );
    std::fs::write(root.join("t.txt"), "the dog\n").unwrap();
    let o = pipe(root, &["score", "--checkpoint", CK, "--text", "t.txt"]);
    assert_eq!(code(&o), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains(CK) && e.contains("sidecar checkpoints/train/epoch_1.json is missing"),
        "{e}"
    );
    assert!(obj.is_file());
}

// ---- on a terminal ------------------------------------------------------------------------

/// A pseudo-terminal: (master, slave).
fn pty() -> (std::fs::File, std::fs::File) {
    use std::os::fd::FromRawFd;
    let (mut m, mut s) = (0, 0);
    // SAFETY: openpty writes two new file descriptors into `m` and `s`; the name, termios and
    // window-size pointers may be null.
    let r = unsafe {
        libc::openpty(
            &mut m,
            &mut s,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(r, 0, "openpty failed");
    // SAFETY: both descriptors are fresh and owned by nothing else.
    unsafe { (std::fs::File::from_raw_fd(m), std::fs::File::from_raw_fd(s)) }
}

/// Runs pipe with stdin and stderr on a terminal (stdout piped), writes `input` to the
/// terminal, and returns (exit code, stdout, what the terminal showed: echo and stderr).
fn pipe_on_tty(
    dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    input: &str,
) -> (i32, String, String) {
    use std::io::Read;
    let (mut master, slave) = pty();
    let mut c = pipe_cmd(dir, args);
    c.stdin(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave))
        .stdout(Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c.spawn().unwrap();
    drop(c); // our copies of the terminal's slave side
    let mut reader = master.try_clone().unwrap();
    let shown = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        // EIO once the child has exited and closed the slave side.
        while let Ok(n) = reader.read(&mut chunk) {
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        String::from_utf8_lossy(&buf).into_owned()
    });
    master.write_all(input.as_bytes()).unwrap();
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let status = child.wait().unwrap();
    let shown = shown.join().unwrap();
    (status.code().unwrap_or(-1), stdout, shown)
}

#[test]
fn interactive_prompt_loop_on_a_terminal() {
    let (d, _ckpt, _) = model_project();
    let (rc, printed, shown) = pipe_on_tty(
        d.path(),
        &[
            "generate",
            "--checkpoint",
            CK,
            "--max-new",
            "3",
            "--temperature",
            "0",
        ],
        &[],
        "the dog\nshe zebra\n\n",
    );
    assert_eq!(rc, 0, "{shown}");
    assert_eq!(printed.lines().count(), 2, "{printed}");
    assert!(shown.contains("type a prompt"), "{shown}");
    assert!(shown.contains("zebra"), "the unknown-word warning: {shown}");
    // Greedy decoding: the same continuation as with --prompt.
    let o = pipe(
        d.path(),
        &[
            "generate",
            "--checkpoint",
            CK,
            "--max-new",
            "3",
            "--temperature",
            "0",
            "--prompt",
            "the dog",
        ],
    );
    assert_eq!(stdout(&o).lines().next(), printed.lines().next());
}

#[test]
fn colour_on_a_terminal_unless_no_color() {
    let d = tempfile::tempdir().unwrap();
    let args = ["status", "missing.yaml"];
    let (rc, _, shown) = pipe_on_tty(d.path(), &args, &[], "");
    assert_eq!(rc, 2);
    assert!(shown.contains("\x1b[1;31merror:\x1b[0m"), "{shown:?}");
    let (_, _, shown) = pipe_on_tty(d.path(), &args, &[("NO_COLOR", "1")], "");
    assert!(
        shown.contains("error:") && !shown.contains('\x1b'),
        "{shown:?}"
    );
    let (_, _, shown) = pipe_on_tty(d.path(), &["--color", "never", args[0], args[1]], &[], "");
    assert!(
        shown.contains("error:") && !shown.contains('\x1b'),
        "{shown:?}"
    );
    // clap's own usage errors follow the flag too.
    let (rc, _, shown) = pipe_on_tty(d.path(), &["run", "--bogus", "--color", "never"], &[], "");
    assert_eq!(rc, 2);
    assert!(
        shown.contains("--bogus") && !shown.contains('\x1b'),
        "{shown:?}"
    );
    let o = pipe(d.path(), &["--color=always", "run", "--bogus"]);
    assert_eq!(code(&o), Some(2));
    assert!(stderr(&o).contains('\x1b'), "{:?}", stderr(&o));
}
