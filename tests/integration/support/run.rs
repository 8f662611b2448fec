//! The one runner of the real `pipe` executable, in a folder, with a hermetic environment, and
//! the helpers that read what it printed.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// The `pipe` binary cargo built for this test run.
pub const PIPE: &str = env!("CARGO_BIN_EXE_pipe");

/// Variables of the caller's environment that a test run keeps: operator switches that change
/// speed or tracing, never results.
const KEPT: [&str; 2] = ["PIPE_NO_AVX512", "PIPE_TRACE"];

/// `pipe ARGS` in `dir`, not started yet: every other `PIPE_*` variable of the test process
/// (`PIPE_MIRROR`, `PIPE_REMOTE`, `PIPE_LINK`, `PIPE_<STAGE>__<KEY>`, the `PIPE_TEST_*` server
/// variables) and `NO_COLOR` removed, stdin empty. A test adds what it needs with `.env(..)`.
pub fn pipe_cmd(dir: &Path, args: &[&str]) -> Command {
    pipe_cmd_of(Path::new(PIPE), dir, args)
}

/// [`pipe_cmd`] with another copy of the `pipe` executable.
pub fn pipe_cmd_of(pipe: &Path, dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(pipe);
    c.args(args).current_dir(dir).stdin(Stdio::null());
    for (k, _) in std::env::vars_os() {
        if let Some(k) = k.to_str() {
            if (k.starts_with("PIPE_") && !KEPT.contains(&k)) || k == "NO_COLOR" {
                c.env_remove(k);
            }
        }
    }
    c
}

/// Runs `pipe ARGS` in `dir` (see [`pipe_cmd`]) and returns its output.
pub fn pipe(dir: &Path, args: &[&str]) -> Output {
    pipe_cmd(dir, args).output().unwrap()
}

/// Runs `pipe ARGS` in `dir` with `env` added.
pub fn pipe_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = pipe_cmd(dir, args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

/// Runs `pipe ARGS` in `dir` with `input` on its stdin.
pub fn pipe_stdin(dir: &Path, args: &[&str], input: &str) -> Output {
    let mut child = pipe_cmd(dir, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// stdout then stderr, for messages that may go to either.
pub fn text(o: &Output) -> String {
    format!("{}\n{}", stdout(o), stderr(o))
}

/// The exit code (`None` when killed by a signal).
pub fn code(o: &Output) -> Option<i32> {
    o.status.code()
}

/// Waits until `cond` holds, checking every 20 ms, for at most `limit_s` seconds (generous: the
/// machine may be loaded); panics naming `what` when it never does.
pub fn wait_until(what: &str, limit_s: u64, mut cond: impl FnMut() -> bool) {
    let t0 = std::time::Instant::now();
    while !cond() {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(limit_s),
            "{what}: still not the case after {limit_s} s"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
