//! Issue 20 items 5, 6, 8, 9 and 10, driving the real `pipe` binary: a pipeline file, its
//! parameters, overrides and model inputs from someone else can neither make pipe write
//! outside the project, nor hang it, nor exhaust its memory. A pipeline file outside the
//! project, inputs outside it (absolute or `..`, unless `allow_outside:` lists their folder),
//! devices and FIFOs as inputs, NUL in outputs, the empty YAML key, an instance count in the
//! millions, oversized YAML, `--params` and `--set` values, `--threads` far beyond the cores,
//! decoding settings that cannot fit (`generate`, `beam-eval`, `kv-eval`), and the lower
//! items (numbers beyond 64 bits, an unknown `PIPE_<STAGE>__<KEY>`, folders and devices named
//! as such, a vanishing temperature). Every refusal checks the exit code, that the message
//! names the value and the limit, and that the project and an outside folder are unchanged.

use crate::support::{stderr, stdout, Proj};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

/// A command stage that appends its id to runs.log and copies `dep` to `out/<name>`.
fn reader(name: &str, dep: &str) -> String {
    format!(
        "  {name}: {{ kind: command, params: {{ cmd: \"mkdir -p out && cat '{dep}' > out/{name} && echo {name} >> runs.log\", deps: ['{dep}'], outs: [out/{name}] }} }}\n"
    )
}

/// A project `proj/` beside `outside/victim/keep.txt`.
fn nested() -> Proj {
    let p = Proj::nested("proj");
    p.write("in.txt", "hello\n");
    crate::support::write(&p.tmp().join("outside/victim/keep.txt"), "precious\n");
    p
}

/// Runs `pipe ARGS` in `p`, killing it if it has not ended after a generous `limit_s`
/// seconds (a hang is a failure, never a timing measurement).
fn bounded(p: &Proj, args: &[&str], env: &[(&str, &str)], limit_s: u64) -> Output {
    let mut c = p.cmd(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if t0.elapsed() > Duration::from_secs(limit_s) {
            child.kill().unwrap();
            let o = child.wait_with_output().unwrap();
            panic!(
                "pipe {args:?} still running after {limit_s} s (a hang); stderr: {}",
                stderr(&o)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `pipe ARGS` (with `env`) must exit 2 promptly with every needle in stderr and nothing
/// changed on disk (project and outside folder); returns stderr.
fn refused(p: &Proj, args: &[&str], env: &[(&str, &str)], needles: &[&str]) -> String {
    let before = p.snapshot();
    let o = bounded(p, args, env, 30);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "pipe {args:?}: {e}");
    for n in needles {
        assert!(e.contains(n), "pipe {args:?}: `{n}` not in: {e}");
    }
    assert!(p.snapshot() == before, "pipe {args:?}: the disk changed");
    e
}

/// Item 5: a pipeline file outside the project (by `..`, by an absolute path, through a link
/// to an outside folder) is refused; no lock file is written beside it.
#[test]
fn a_pipeline_file_outside_the_project_is_refused() {
    let p = nested();
    p.write("pipelines/ok.yaml", "stages: {}\n");
    let evil =
        "name: evil\nstages:\n  a: { kind: command, params: { cmd: \"echo > $PIPE_OUT/f\" } }\n";
    let outside = p.tmp().join("outside/victim");
    crate::support::write(&outside.join("evil.yaml"), evil);
    std::os::unix::fs::symlink(&outside, p.path("pipelines/linked")).unwrap();
    let abs = outside.join("evil.yaml").display().to_string();
    for given in [
        "../outside/victim/evil.yaml",
        abs.as_str(),
        "pipelines/linked/evil.yaml",
    ] {
        for cmd in ["run", "status"] {
            let e = refused(
                &p,
                &[cmd, given],
                &[],
                &["evil.yaml", "lies outside the project", "evil.lock"],
            );
            assert_eq!(e.trim().lines().count(), 1, "{given}: {e}");
        }
    }
    assert!(!outside.join("evil.lock").exists());
    // A pipeline file inside the project still runs, from the project or a subfolder.
    p.write("pipelines/good.yaml", evil.replace("evil", "good").as_str());
    p.ok(&["run", "pipelines/good.yaml"]);
    assert!(p.path("pipelines/good.lock").is_file());
}

/// Inputs outside the project are refused whether written absolute or with `..` (or reached
/// through a link), unless a folder the pipeline lists in `allow_outside:` holds them.
#[test]
fn inputs_outside_the_project_need_allow_outside() {
    let p = nested();
    let outside = p.tmp().join("outside");
    let abs = outside.join("victim/keep.txt").display().to_string();
    std::os::unix::fs::symlink(outside.join("victim"), p.path("linked")).unwrap();
    for dep in [
        abs.as_str(),
        "../outside/victim/keep.txt",
        "linked/keep.txt",
    ] {
        p.write(
            "pipelines/p.yaml",
            &format!("stages:\n{}", reader("a", dep)),
        );
        refused(
            &p,
            &["run", "pipelines/p.yaml"],
            &[],
            &[
                "p.yaml:2:",
                "stage `a`",
                "dependency",
                "lies outside the project",
                "allow_outside",
            ],
        );
        // Listing the folder (relative to the project, or absolute) lets the stage read it.
        for allowed in ["../outside", outside.to_str().unwrap()] {
            p.write(
                "pipelines/p.yaml",
                &format!(
                    "allow_outside: ['{allowed}']\nstages:\n{}",
                    reader("a", dep)
                ),
            );
            p.ok(&["run", "pipelines/p.yaml"]);
            assert_eq!(p.read("out/a"), "precious\n", "{dep} with {allowed}");
            std::fs::remove_dir_all(p.path("out")).unwrap();
            let _ = std::fs::remove_file(p.path("runs.log"));
        }
    }
    // A listed folder allows only what lies under it.
    p.write(
        "pipelines/p.yaml",
        &format!(
            "allow_outside: [../outside/other]\nstages:\n{}",
            reader("a", "../outside/victim/keep.txt")
        ),
    );
    refused(
        &p,
        &["run", "pipelines/p.yaml"],
        &[],
        &["lies outside the project"],
    );
    // Other kinds' input paths obey the same rule.
    p.write(
        "pipelines/p.yaml",
        &format!(
            "stages:\n  tok: {{ kind: tokenize, params: {{ path: '{abs}', format: text }} }}\n"
        ),
    );
    refused(
        &p,
        &["run", "pipelines/p.yaml"],
        &[],
        &["stage `tok`", "input `path`", "lies outside the project"],
    );
    // An empty entry is refused where it is written.
    p.write("pipelines/p.yaml", "allow_outside: ['']\nstages: {}\n");
    refused(
        &p,
        &["run", "pipelines/p.yaml"],
        &[],
        &["p.yaml:1:", "allow_outside"],
    );
}

/// A device, FIFO or socket is never an input, even in an allowed folder: hashing one would
/// never end (`deps: [/dev/zero]`).
#[test]
fn devices_and_fifos_are_never_inputs() {
    let p = nested();
    let fifo = p.path("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let sock = std::os::unix::net::UnixListener::bind(p.path("sock")).unwrap();
    for (allow, dep, kind) in [
        ("[/dev]", "/dev/zero", "character device"),
        ("[]", "fifo", "FIFO"),
        ("[]", "sock", "socket"),
    ] {
        p.write(
            "pipelines/p.yaml",
            &format!("allow_outside: {allow}\nstages:\n{}", reader("a", dep)),
        );
        for cmd in ["run", "status"] {
            refused(
                &p,
                &[cmd, "pipelines/p.yaml"],
                &[],
                &["stage `a`", dep, kind, "inputs must be files or folders"],
            );
        }
    }
    drop(sock);
}

/// Item 10: an output or input containing NUL is refused at load (exit 2), not at run time.
#[test]
fn nul_in_outs_or_deps_is_refused_at_load() {
    let p = nested();
    for (key, needle) in [("outs", "contains a NUL character"), ("deps", "NUL")] {
        p.write(
            "pipelines/p.yaml",
            &format!(
                "stages:\n  a: {{ kind: command, params: {{ cmd: \"true\", {key}: [\"x\\0y\"] }} }}\n"
            ),
        );
        refused(
            &p,
            &["run", "pipelines/p.yaml"],
            &[],
            &["p.yaml:2:", "stage `a`", needle],
        );
    }
}

/// Item 6: the empty key, as a stage, a parameter, a matrix key or in a `--params` file, is
/// exit 2 naming file:line, never a hang.
#[test]
fn the_empty_key_is_an_error_not_a_hang() {
    let p = nested();
    for (yaml, needles) in [
        (
            "stages:\n  \"\": { kind: command, params: { cmd: \"true\" } }\n",
            &["p.yaml:2:"][..],
        ),
        (
            "stages:\n  a:\n    kind: command\n    params: { cmd: \"true\", \"\": 1 }\n",
            &["p.yaml:4:", "stage `a`"][..],
        ),
        (
            "stages:\n  a:\n    kind: command\n    matrix: { '': [1, 2] }\n    params: { cmd: \"true\" }\n",
            &["p.yaml:4:", "stage `a`"][..],
        ),
        (
            "defaults:\n  command: { '': 1 }\nstages:\n  a: { kind: command, params: { cmd: \"true\" } }\n",
            &["p.yaml:2:"][..],
        ),
    ] {
        p.write("pipelines/p.yaml", yaml);
        refused(&p, &["run", "pipelines/p.yaml"], &[], needles);
    }
    p.write(
        "pipelines/p.yaml",
        "stages:\n  a: { kind: command, params: { cmd: \"true\" } }\n",
    );
    for (params, line) in [
        ("'': { x: 1 }\n", "q.yaml:1:"),
        ("a: { '': 1 }\n", "q.yaml:1:"),
    ] {
        p.write("q.yaml", params);
        refused(
            &p,
            &["run", "pipelines/p.yaml", "--params", "q.yaml"],
            &[],
            &[line],
        );
    }
}

/// Item 9: the number of instances is capped (default 10,000; `PIPE_MAX_INSTANCES`) before
/// expansion allocates: a 32⁴ matrix and `epochs: 1000000` are exit 2 naming the count and
/// the limit, promptly.
#[test]
fn the_instance_count_is_capped_before_expansion() {
    let p = nested();
    let v: Vec<String> = (0..32).map(|i| i.to_string()).collect();
    let list = format!("[{}]", v.join(", "));
    p.write(
        "pipelines/p.yaml",
        &format!(
            "stages:\n  a:\n    kind: command\n    matrix: {{ w: {list}, x: {list}, y: {list}, z: {list} }}\n    params: {{ cmd: \"true\" }}\n"
        ),
    );
    for cmd in ["run", "status"] {
        refused(
            &p,
            &[cmd, "pipelines/p.yaml"],
            &[],
            &[
                "p.yaml:4:",
                "stage `a`",
                "1,048,576 instances",
                "limit of 10,000 instances",
                "PIPE_MAX_INSTANCES",
            ],
        );
    }
    // Epochs count as instances.
    p.write(
        "pipelines/p.yaml",
        "stages:\n  tok: { kind: tokenize, params: { path: in.txt, format: text } }\n  train: { kind: train, needs: [tok], params: { epochs: 1000000 } }\n",
    );
    refused(
        &p,
        &["run", "pipelines/p.yaml"],
        &[],
        &[
            "stage `train`",
            "epochs: 1000000",
            "1,000,000 instances",
            "10,000",
        ],
    );
    // The limit is configurable, and counts across stages.
    p.write(
        "pipelines/p.yaml",
        "stages:\n  a: { kind: command, matrix: { x: [1, 2, 3] }, params: { cmd: \"true\" } }\n  b: { kind: command, needs: [a], matrix: { x: [1, 2] }, params: { cmd: \"true\" } }\n",
    );
    refused(
        &p,
        &["run", "pipelines/p.yaml"],
        &[("PIPE_MAX_INSTANCES", "4")],
        &["stage `b`", "2 instances (after 3", "limit of 4 instances"],
    );
    let o = bounded(
        &p,
        &["status", "pipelines/p.yaml"],
        &[("PIPE_MAX_INSTANCES", "5")],
        60,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    refused(
        &p,
        &["status", "pipelines/p.yaml"],
        &[("PIPE_MAX_INSTANCES", "0")],
        &["PIPE_MAX_INSTANCES=0", "whole number"],
    );
}

/// Item 9: YAML files and override values have size caps; a device or FIFO given as one is
/// refused without being read.
#[test]
fn params_files_pipeline_files_and_values_are_capped() {
    let p = nested();
    p.write(
        "pipelines/p.yaml",
        "stages:\n  a: { kind: command, params: { cmd: \"true\" } }\n",
    );
    refused(
        &p,
        &["run", "pipelines/p.yaml", "--params", "/dev/zero"],
        &[],
        &["--params file /dev/zero", "character device"],
    );
    let big = format!("a:\n  cmd: \"{}\"\n", "x".repeat(17 << 20));
    p.write("big.yaml", &big);
    refused(
        &p,
        &["run", "pipelines/p.yaml", "--params", "big.yaml"],
        &[],
        &[
            "big.yaml",
            "16.0 MiB",
            "16777216 bytes",
            "limit for a --params file",
        ],
    );
    p.write(
        "pipelines/huge.yaml",
        &format!("stages: {{}}\n# {}\n", "x".repeat(17 << 20)),
    );
    refused(
        &p,
        &["run", "pipelines/huge.yaml"],
        &[],
        &["huge.yaml", "16777216 bytes", "limit for a pipeline file"],
    );
    let long = format!("a.cmd={}", "y".repeat(100_000));
    refused(
        &p,
        &["run", "pipelines/p.yaml", "--set", &long],
        &[],
        &["--set a.cmd=", "100006 bytes", "limit of 65536 bytes"],
    );
    let value = "z".repeat(100_000);
    refused(
        &p,
        &["run", "pipelines/p.yaml"],
        &[("PIPE_A__CMD", value.as_str())],
        &["PIPE_A__CMD", "100000 bytes", "limit of 65536 bytes"],
    );
    // A FIFO named as the pipeline file or params file is refused, never waited on.
    let fifo = p.path("pipelines/f.yaml");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    refused(
        &p,
        &["run", "pipelines/p.yaml", "--params", "pipelines/f.yaml"],
        &[],
        &["FIFO"],
    );
    refused(&p, &["run", "pipelines/f.yaml"], &[], &["FIFO"]);
    refused(
        &p,
        &["run", "pipelines"],
        &[],
        &["pipelines", "is a folder"],
    );
}

/// Item 9: `--threads` is capped at a multiple of the cores: exit 2 naming the value and the
/// limit, before anything starts.
#[test]
fn threads_are_capped() {
    let p = nested();
    for cmd in [
        &["generate", "--checkpoint", "x.safetensors", "--prompt", "a"][..],
        &["score", "--checkpoint", "x.safetensors", "--text", "in.txt"][..],
        &["bench", "decode1"][..],
    ] {
        let mut args = cmd.to_vec();
        args.extend_from_slice(&["--threads", "100000"]);
        refused(
            &p,
            &args,
            &[],
            &[
                "--threads",
                "100000 is more than",
                "the limit",
                "cores available",
            ],
        );
    }
}

/// Item 10: a number beyond 64 bits is reported as that number, from the file or `--set`; an
/// environment override naming no stage is a warning naming the variable.
#[test]
fn huge_numbers_and_unknown_env_overrides_are_named() {
    let p = nested();
    p.write(
        "pipelines/p.yaml",
        "stages:\n  tok: { kind: tokenize, params: { path: in.txt, format: text, min_count: 18446744073709551616 } }\n",
    );
    refused(
        &p,
        &["status", "pipelines/p.yaml"],
        &[],
        &[
            "p.yaml:2:",
            "the whole number 18446744073709551616",
            "64-bit range",
        ],
    );
    p.write(
        "pipelines/p.yaml",
        "stages:\n  tok: { kind: tokenize, params: { path: in.txt, format: text } }\n",
    );
    refused(
        &p,
        &[
            "status",
            "pipelines/p.yaml",
            "--set",
            "tok.min_count=18446744073709551616",
        ],
        &[],
        &[
            "--set tok.min_count=18446744073709551616",
            "the whole number 18446744073709551616",
        ],
    );
    let o = bounded(
        &p,
        &["status", "pipelines/p.yaml"],
        &[("PIPE_NOSUCH__KEY", "1"), ("PIPE_TOKK__MIN_COUNT", "2")],
        60,
    );
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{e}");
    assert!(
        e.contains("warning: PIPE_NOSUCH__KEY") && e.contains("no stage `nosuch`"),
        "{e}"
    );
    assert!(
        e.contains("warning: PIPE_TOKK__MIN_COUNT")
            && e.contains("did you mean PIPE_TOK__MIN_COUNT"),
        "{e}"
    );
    // An unknown key of a known stage stays an error, as with --set.
    refused(
        &p,
        &["status", "pipelines/p.yaml"],
        &[("PIPE_TOK__NOSUCH", "1")],
        &["PIPE_TOK__NOSUCH", "unknown parameter `nosuch`"],
    );
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

const CK: &str = "checkpoints/p/train/epoch_1.safetensors";

/// Item 8: decoding settings whose buffers cannot fit (a 30,000-wide beam's candidates, 10¹²
/// new tokens) are exit 2 from `generate` naming the value and the available memory, and fail
/// their stage cleanly in `beam-eval`, `kv-eval` and `infer`; a vanishing temperature is greedy.
#[test]
fn decoding_that_cannot_fit_is_refused() {
    let p = nested();
    p.write("corpus.txt", &corpus(40));
    p.write(
        "pipelines/p.yaml",
        "name: p\nstages:\n  tok: { kind: tokenize, params: { path: corpus.txt, format: text, valid_fraction: 0.3 } }\n  train: { kind: train, needs: [tok], params: { d_model: 16, d_attn: 16, n_heads: 2, d_ff: 24, n_layers: 1, batch_size: 4, epochs: 1, context: 16, freeze_embeddings: false } }\n  beam: { kind: beam-eval, needs: [train, tok], params: { beam_width: 2, prompts: 2, prompt_len: 3, max_new: 4 } }\n  kv: { kind: kv-eval, needs: [train, tok], params: { batch: 2, prompt_len: 3, new_tokens: 4, sweep_new_tokens: [], repeats: 1 } }\n  infer: { kind: infer, needs: [train, tok], params: { samples: 2, prompt_len: 3, extra_tokens: 2, attention_sentences: [the dog ran] } }\n",
    );
    p.ok(&["run", "pipelines/p.yaml"]);
    assert!(p.path(CK).is_file());
    let gen = |extra: &[&str]| {
        let mut a = vec!["generate", "--checkpoint", CK, "--prompt", "the dog"];
        a.extend_from_slice(extra);
        a.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    for (extra, needles) in [
        (
            &["--beam", "30000"][..],
            &["--beam 30000", "search buffers", "at most"][..],
        ),
        (
            &["--max-new", "1000000000000"][..],
            &["--max-new 1000000000000", "new tokens"][..],
        ),
        (
            &["--beam", "3", "--max-new", "1000000000000"][..],
            &["--beam 3 with --max-new 1000000000000"][..],
        ),
    ] {
        let args = gen(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let e = refused(&p, &args, &[], &["decoding needs about", "available"]);
        for n in needles {
            assert!(e.contains(n), "{extra:?}: `{n}` not in {e}");
        }
    }
    // The stages fail cleanly (exit 1, their FAILED line naming the setting), the rest of the
    // project untouched.
    for (set, needle) in [
        ("beam.beam_width=30000", "beam_width 30000"),
        (
            "kv.new_tokens=1000000000000",
            "new tokens up to 1000000000000",
        ),
        (
            "infer.extra_tokens=1000000000000",
            "extra_tokens 1000000000000",
        ),
    ] {
        let before = std::fs::read(p.path(CK)).unwrap();
        let o = bounded(&p, &["run", "pipelines/p.yaml", "--set", set], &[], 120);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{set}: {e}");
        assert!(
            e.contains("FAILED") && e.contains(needle) && e.contains("decoding needs about"),
            "{set}: {e}"
        );
        assert_eq!(std::fs::read(p.path(CK)).unwrap(), before);
    }
    // Temperatures too small to divide by are greedy decoding, not garbage.
    let greedy = gen(&["--temperature", "0", "--seed", "3"]);
    let tiny = gen(&["--temperature", "1e-45", "--seed", "3"]);
    let out = |a: &Vec<String>| {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let o = p.pipe(&a);
        assert_eq!(o.status.code(), Some(0), "{a:?}: {}", stderr(&o));
        stdout(&o)
    };
    assert_eq!(out(&greedy), out(&tiny));
    assert!(p.path(CK).is_file());
}

/// Item 10: a folder, a device or a missing file given to a subcommand is named as what it
/// is, never read.
#[test]
fn folders_and_devices_are_named_as_such() {
    let p = nested();
    std::fs::create_dir_all(p.path("ck")).unwrap();
    for (args, needles) in [
        (
            &["generate", "--checkpoint", "ck", "--prompt", "a"][..],
            &["ck", "is a folder"][..],
        ),
        (
            &["generate", "--checkpoint", "/dev/zero", "--prompt", "a"][..],
            &["/dev/zero", "character device"][..],
        ),
        (
            &[
                "generate",
                "--checkpoint",
                "none.safetensors",
                "--prompt",
                "a",
            ][..],
            &["none.safetensors", "no such file"][..],
        ),
        (
            &["score", "--checkpoint", "x", "--text", "/dev/zero"][..],
            &["/dev/zero", "character device"][..],
        ),
        (
            &["score", "--checkpoint", "x", "--text", "ck"][..],
            &["ck", "is a folder"][..],
        ),
        (
            &["eval", "bleu", "--hyp", "/dev/zero", "--ref", "in.txt"][..],
            &["/dev/zero", "character device"][..],
        ),
    ] {
        refused(&p, args, &[], needles);
    }
}

/// Skip-gram settings whose matrices cannot fit (`dim: 1000000000`, a million shards) fail
/// the embed stage with the estimate and the memory available, never abort the run; a sane
/// setting still trains.
#[test]
fn an_absurd_embedding_fails_its_stage() {
    let p = nested();
    p.write("corpus.txt", &corpus(20));
    p.write(
        "pipelines/p.yaml",
        "name: p\nstages:\n  tok: { kind: tokenize, params: { path: corpus.txt, format: text, valid_fraction: 0.3 } }\n  emb: { kind: embed, needs: [tok], params: { dim: 8, epochs: 1 } }\n",
    );
    for (set, needle) in [
        ("emb.dim=1000000000", "× dim 1000000000 with 2 shards"),
        ("emb.shards=100000000", "× dim 8 with 100000000 shards"),
    ] {
        let o = bounded(&p, &["run", "pipelines/p.yaml", "--set", set], &[], 120);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{set}: {e}");
        assert!(
            e.contains("FAILED")
                && e.contains("skip-gram training of")
                && e.contains(needle)
                && e.contains("available"),
            "{set}: {e}"
        );
        assert!(!p.path("results/p/emb/embedding.safetensors").exists());
    }
    p.ok(&["run", "pipelines/p.yaml"]);
    assert!(p.path("results/p/emb/embedding.safetensors").is_file());
}
