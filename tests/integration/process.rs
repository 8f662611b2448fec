//! A `command` stage's process tree dies with pipe: `kill -9` or SIGTERM of the real `pipe`
//! binary mid-stage leaves no process of that stage alive, background processes a command
//! leaves behind are killed when it exits, processes that left the stage's group (`setsid`)
//! are gone too, whatever ends pipe, and never keep it waiting on their output; and (in a child
//! test process that installs the handlers) a signal stops the running group and the stage
//! returns `Interrupted`.
//!
//! The commands write their pids to files; "alive" is read from `/proc/<pid>/stat` (a zombie
//! counts as dead), and "a process of that stage" is any process in the stage's process group.
#![cfg(target_os = "linux")]

use crate::support::*;
use pipe::interrupt::{self, Signal};
use pipe::stage::{StageCtx, StageKind};
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// A temp project with `pipelines/p.yaml` holding one command stage `a` running `cmd`.
fn project(cmd: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("pipelines")).unwrap();
    let yaml = format!(
        "stages:\n  a: {{ kind: command, params: {{ cmd: {} }} }}\n",
        serde_json::to_string(cmd).unwrap()
    );
    std::fs::write(dir.path().join("pipelines/p.yaml"), yaml).unwrap();
    dir
}

/// Starts `pipe run` in the background (output kept in `pipe.out`/`pipe.err`).
fn start_run(root: &Path) -> Child {
    let out = std::fs::File::create(root.join("pipe.out")).unwrap();
    let err = std::fs::File::create(root.join("pipe.err")).unwrap();
    pipe_cmd(root, &["run", "pipelines/p.yaml"])
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap()
}

/// Waits (generously: the machine is loaded) until `rel` holds a full line; returns it as a pid.
fn wait_pid(root: &Path, rel: &str, pipe: &mut Child) -> i32 {
    let t = Instant::now();
    loop {
        if let Ok(s) = std::fs::read_to_string(root.join(rel)) {
            if s.ends_with('\n') {
                return s.trim().parse().unwrap();
            }
        }
        if let Ok(Some(st)) = pipe.try_wait() {
            panic!(
                "pipe exited ({st}) before the command wrote {rel}: {}",
                std::fs::read_to_string(root.join("pipe.err")).unwrap_or_default()
            );
        }
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "{rel} never appeared"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// (state, process group) of a live or zombie process.
fn stat(pid: i32) -> Option<(char, i32)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // pid (comm) state ppid pgrp ...; comm may contain spaces and parentheses.
    let rest = &s[s.rfind(')')? + 2..];
    let mut f = rest.split(' ');
    let state = f.next()?.chars().next()?;
    let _ppid = f.next()?;
    let pgrp = f.next()?.parse().ok()?;
    Some((state, pgrp))
}

fn alive(pid: i32) -> bool {
    matches!(stat(pid), Some((s, _)) if s != 'Z' && s != 'X')
}

/// Live processes in group `pgid`.
fn members(pgid: i32) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&p| matches!(stat(p), Some((s, g)) if g == pgid && s != 'Z' && s != 'X'))
        .collect()
}

/// The group of `pid`, checked to be a group of its own (not pipe's, not the test's).
fn own_group(pid: i32, pipe_pid: i32) -> i32 {
    let (_, pgid) = stat(pid).expect("the command is running");
    let (_, pipe_group) = stat(pipe_pid).expect("pipe is running");
    assert_ne!(pgid, pipe_group, "the command runs in pipe's process group");
    assert!(alive(pgid), "the group leader {pgid} is not running");
    pgid
}

/// How long a group may take to die once pipe is gone or has stopped it: generous, since the
/// machine may be loaded, and well below the commands' own `sleep 3000`, so a group that
/// survives is caught.
const GONE_WITHIN: Duration = Duration::from_secs(30);

/// Asserts that within [`GONE_WITHIN`] none of `pids` and no process of group `pgid` is alive;
/// on failure kills what is left before panicking, so no process outlives the test.
fn assert_all_gone(pids: &[i32], pgid: i32) {
    let t = Instant::now();
    loop {
        let left: Vec<i32> = pids
            .iter()
            .copied()
            .filter(|&p| alive(p))
            .chain(members(pgid))
            .collect();
        if left.is_empty() {
            return;
        }
        if t.elapsed() > GONE_WITHIN {
            for &p in &left {
                // SAFETY: kill(2) on processes this test started (the stage's commands).
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
            panic!("still alive {GONE_WITHIN:?} later: {left:?} (group {pgid})");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn kill_9_of_pipe_kills_a_sleeping_command() {
    let d = project("echo $$ > sh.pid; exec sleep 300");
    let mut pipe = start_run(d.path());
    let pid = wait_pid(d.path(), "sh.pid", &mut pipe);
    let pgid = own_group(pid, pipe.id() as i32);
    pipe.kill().unwrap();
    pipe.wait().unwrap();
    assert_all_gone(&[pid, pgid], pgid);
}

#[test]
fn kill_9_of_pipe_kills_backgrounded_grandchildren() {
    let d = project(
        "sleep 300 & echo $! > bg.pid; (sleep 300; echo late > late.txt) & echo $$ > sh.pid; wait",
    );
    let mut pipe = start_run(d.path());
    let sh = wait_pid(d.path(), "sh.pid", &mut pipe);
    let bg = wait_pid(d.path(), "bg.pid", &mut pipe);
    let pgid = own_group(sh, pipe.id() as i32);
    assert!(alive(bg));
    pipe.kill().unwrap();
    pipe.wait().unwrap();
    assert_all_gone(&[sh, bg, pgid], pgid);
    assert!(!d.path().join("late.txt").exists());
}

/// What the command stage guarantees alone: with or without `interrupt::install()` wired in
/// `cli::main`, SIGTERM to pipe takes the whole group down (exit code: see the test below).
#[test]
fn sigterm_to_pipe_kills_the_command_group() {
    let d = project("sleep 300 & echo $! > bg.pid; echo $$ > sh.pid; wait");
    let mut pipe = start_run(d.path());
    let sh = wait_pid(d.path(), "sh.pid", &mut pipe);
    let bg = wait_pid(d.path(), "bg.pid", &mut pipe);
    let pgid = own_group(sh, pipe.id() as i32);
    // SAFETY: kill(2) on the pid of a child we started and have not reaped.
    unsafe { libc::kill(pipe.id() as i32, libc::SIGTERM) };
    let st = pipe.wait().unwrap();
    assert!(!st.success(), "pipe run succeeded after SIGTERM");
    assert_all_gone(&[sh, bg, pgid], pgid);
}

#[test]
fn background_processes_are_killed_when_the_command_exits() {
    let d = project("sleep 300 >/dev/null 2>&1 & echo $! > bg.pid; echo ok > $PIPE_OUT/x.txt");
    let o = pipe_cmd(d.path(), &["run", "pipelines/p.yaml"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let bg: i32 = std::fs::read_to_string(d.path().join("bg.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    if alive(bg) {
        // SAFETY: kill(2) on the sleep this test's command started.
        unsafe { libc::kill(bg, libc::SIGKILL) };
        panic!("the backgrounded sleep {bg} outlived its stage");
    }
}

#[test]
fn exit_codes_and_signals_of_the_command_are_reported_as_they_were() {
    let d = project("exit 3");
    let o = pipe_cmd(d.path(), &["run", "pipelines/p.yaml"])
        .output()
        .unwrap();
    let err = text(&o);
    assert!(!o.status.success());
    assert!(err.contains("exited with exit status: 3"), "{err}");

    let d = project("kill -USR1 $$");
    let o = pipe_cmd(d.path(), &["run", "pipelines/p.yaml"])
        .output()
        .unwrap();
    let err = text(&o);
    assert!(!o.status.success());
    assert!(err.contains("SIGUSR1"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Interrupts, in a child process of this test binary (the handlers and the flag are process-wide)

const CHILD_DIR: &str = "PIPE_PROCESS_TEST_DIR";
const CHILD_CMD: &str = "PIPE_PROCESS_TEST_CMD";

/// Runs the ignored test `interrupt_child` in a fresh process of this binary.
fn run_interrupt_child(cmd: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let o = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "process::interrupt_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR, d.path())
        .env(CHILD_CMD, cmd)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "interrupt_child failed:\n{out}");
    assert!(
        out.contains("1 passed"),
        "interrupt_child did not run:\n{out}"
    );
    d
}

#[test]
fn sigterm_stops_the_running_group_and_the_stage_is_interrupted() {
    run_interrupt_child("sleep 300 & echo $! > bg.pid; echo $$ > sh.pid; wait");
}

#[test]
fn a_group_that_ignores_sigterm_gets_sigkill_after_the_grace_period() {
    run_interrupt_child("trap '' TERM; sleep 300 & echo $! > bg.pid; echo $$ > sh.pid; wait; wait");
}

/// Helper of the two tests above, run only by them: installs the handlers, runs command stage
/// `a` (the command from the environment), sends itself SIGTERM once the command runs, and
/// checks that the stage returns `Interrupted`, that its group is gone, and that no further
/// command starts.
#[test]
#[ignore = "run by the interrupt tests in a process of its own"]
fn interrupt_child() {
    let root = std::path::PathBuf::from(std::env::var(CHILD_DIR).expect("run by a parent test"));
    let cmd = std::env::var(CHILD_CMD).unwrap();
    interrupt::install().unwrap();
    // The stage's supervisor is the pipe executable in its supervisor mode.
    interrupt::supervisor::set_program(env!("CARGO_BIN_EXE_pipe").into());
    assert_eq!(interrupt::requested(), None);
    let ctx = |id: &str, cmd: &str| -> StageCtx {
        CtxBuilder::new(&root, &pipe::stage::command::Command)
            .id(id)
            .stage(id)
            .pipeline("p", 1)
            .params(serde_json::json!({ "cmd": cmd, "deps": [], "outs": [] }))
            .out_dir(root.join("out"))
            .ckpt_dir(root.join("ckpt"))
            .meas_dir(root.join("meas"))
            .build()
    };
    let a = ctx("a", &cmd);
    let run = std::thread::spawn(move || pipe::stage::command::Command.run(&a));
    // Both pid files hold a full line (written, not just created).
    let line = |f: &str| std::fs::read_to_string(root.join(f)).is_ok_and(|s| s.ends_with('\n'));
    wait_until("the command started", 120, || {
        line("sh.pid") && line("bg.pid")
    });
    let pid = |f: &str| -> i32 {
        std::fs::read_to_string(root.join(f))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let (sh, bg) = (pid("sh.pid"), pid("bg.pid"));
    let (_, pgid) = stat(sh).unwrap();
    assert_ne!(pgid, stat(std::process::id() as i32).unwrap().1);
    // SAFETY: kill(2) to our own process; the installed handler catches it.
    unsafe { libc::kill(std::process::id() as i32, libc::SIGTERM) };
    let r = run.join().unwrap();
    let e = r.expect_err("the stage succeeded despite SIGTERM");
    let i = interrupt::as_interrupted(&e).unwrap_or_else(|| panic!("not Interrupted: {e:#}"));
    assert_eq!(i.stage, "a");
    assert_eq!(i.signal, Signal::Term);
    assert_eq!(interrupt::requested(), Some(Signal::Term));
    assert_all_gone(&[sh, bg, pgid], pgid);
    // Nothing starts after the signal.
    let b = ctx("b", "echo b > b.txt");
    let e = pipe::stage::command::Command.run(&b).unwrap_err();
    assert!(interrupt::as_interrupted(&e).is_some(), "{e:#}");
    assert!(!root.join("b.txt").exists());
}

// ---------------------------------------------------------------------------------------------
// For the lead: enable once cli::main calls `interrupt::install()` and the scheduler maps
// `Interrupted` to exit 130/143, one line naming the stage, and `interrupt::mark`.

fn interrupted_run(sig: i32, code: i32, name: &str) {
    let d = project("echo $$ > sh.pid; exec sleep 300");
    let mut pipe = start_run(d.path());
    let sh = wait_pid(d.path(), "sh.pid", &mut pipe);
    let pgid = own_group(sh, pipe.id() as i32);
    // SAFETY: kill(2) on the pid of a child we started and have not reaped.
    unsafe { libc::kill(pipe.id() as i32, sig) };
    let st = pipe.wait().unwrap();
    assert_all_gone(&[sh, pgid], pgid);
    let err = std::fs::read_to_string(d.path().join("pipe.err")).unwrap();
    assert_eq!(st.code(), Some(code), "stderr: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("interrupted")).collect();
    assert_eq!(lines.len(), 1, "one line naming the stage: {err}");
    assert!(lines[0].contains('a') && lines[0].contains(name), "{err}");
    let o = pipe_cmd(d.path(), &["status", "pipelines/p.yaml"])
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&o.stdout);
    let line = status.lines().find(|l| l.starts_with("a ")).unwrap_or("");
    assert!(
        line.contains("interrupted") && !line.contains("new stage"),
        "{status}"
    );
    // The marker speaks for the interrupted fingerprint only, never for other parameters.
    let o = pipe_cmd(
        d.path(),
        &["status", "pipelines/p.yaml", "--set", "a.cmd=echo other"],
    )
    .output()
    .unwrap();
    let status = String::from_utf8_lossy(&o.stdout);
    assert!(!status.contains("interrupted"), "{status}");
}

#[test]
fn sigterm_exits_143_naming_the_interrupted_stage() {
    interrupted_run(libc::SIGTERM, 143, "SIGTERM");
}

#[test]
fn sigint_exits_130_naming_the_interrupted_stage() {
    interrupted_run(libc::SIGINT, 130, "SIGINT");
}

// ---------------------------------------------------------------------------------------------
// Descendants that leave the stage's process group (`setsid`)

/// A command that starts `setsid sleep 300` (its own session, so not in the stage's group),
/// records its pid, and then runs `rest`.
fn detached_grandchild(out: &str, rest: &str) -> tempfile::TempDir {
    project(&format!(
        "setsid sleep 300 {out} & echo $! > gc.pid; echo $$ > sh.pid; {rest}"
    ))
}

/// Asserts that `pid` is gone within two seconds (killing it and failing otherwise).
fn gone_within_2s(pid: i32, what: &str) {
    let t = Instant::now();
    while alive(pid) {
        if t.elapsed() > Duration::from_secs(2) {
            // SAFETY: kill(2) on the sleep this test's command started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("the setsid grandchild {pid} outlived pipe by 2 s ({what})");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Ends `pipe run` with `sig` once the command runs; the grandchild must be gone within 2 s.
fn setsid_grandchild_dies_with(sig: i32, what: &str) {
    let d = detached_grandchild(">/dev/null 2>&1", "exec sleep 300");
    let mut pipe = start_run(d.path());
    let gc = wait_pid(d.path(), "gc.pid", &mut pipe);
    wait_pid(d.path(), "sh.pid", &mut pipe);
    let (_, gc_group) = stat(gc).expect("the grandchild runs");
    assert_ne!(gc_group, stat(pipe.id() as i32).unwrap().1);
    // SAFETY: kill(2) on the pid of a child we started and have not reaped.
    unsafe { libc::kill(pipe.id() as i32, sig) };
    pipe.wait().unwrap();
    gone_within_2s(gc, what);
}

#[test]
fn a_setsid_grandchild_dies_with_pipe_on_kill_9() {
    setsid_grandchild_dies_with(libc::SIGKILL, "kill -9");
}

#[test]
fn a_setsid_grandchild_dies_with_pipe_on_sigint() {
    setsid_grandchild_dies_with(libc::SIGINT, "SIGINT");
}

#[test]
fn a_setsid_grandchild_dies_with_pipe_on_sigterm() {
    setsid_grandchild_dies_with(libc::SIGTERM, "SIGTERM");
}

#[test]
fn a_setsid_grandchild_dies_when_the_command_exits() {
    let d = detached_grandchild(">/dev/null 2>&1", "echo ok > $PIPE_OUT/x.txt");
    let o = pipe_cmd(d.path(), &["run", "pipelines/p.yaml"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let gc: i32 = std::fs::read_to_string(d.path().join("gc.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    gone_within_2s(gc, "normal exit");
}

/// A grandchild that keeps the stage's output open never keeps pipe waiting: the run ends
/// once the command has (the `sleep 300` is killed), well before the sleep would.
#[test]
fn a_grandchild_holding_the_output_does_not_hang_pipe() {
    let d = detached_grandchild("", "echo ok > $PIPE_OUT/x.txt");
    let t = Instant::now();
    let mut pipe = start_run(d.path());
    let gc = wait_pid(d.path(), "gc.pid", &mut pipe);
    loop {
        if let Some(st) = pipe.try_wait().unwrap() {
            assert!(
                st.success(),
                "{}",
                std::fs::read_to_string(d.path().join("pipe.err")).unwrap()
            );
            break;
        }
        if t.elapsed() > Duration::from_secs(120) {
            let _ = pipe.kill();
            // SAFETY: kill(2) on the sleep this test's command started.
            unsafe { libc::kill(gc, libc::SIGKILL) };
            panic!("pipe still waits on the output the grandchild holds");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    gone_within_2s(gc, "normal exit, output held");
}

// ---------------------------------------------------------------------------------------------
// `pipe reproduce` stopped: its scratch run and its scratch copy go with it

/// `pipe reproduce` of a one-stage project whose command, in the scratch copy only, writes its
/// pid to `inner.pid` and sleeps; ended with `sig` once it sleeps. The scratch run must be
/// gone and the scratch copy (in `TMPDIR`) removed. The exit code.
fn stopped_reproduce(sig: i32) -> Option<i32> {
    let d = project(
        "echo ok > $PIPE_OUT/x.txt; if [ -n \"$SLOW_PID\" ]; then echo $$ > \"$SLOW_PID\"; exec sleep 300; fi",
    );
    let o = pipe(d.path(), &["run", "pipelines/p.yaml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let tmp = tempfile::tempdir().unwrap();
    let pid_file = tmp.path().join("inner.pid");
    let scratch = tmp.path().join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    let err = std::fs::File::create(d.path().join("pipe.err")).unwrap();
    let mut rep = pipe_cmd(d.path(), &["reproduce", "pipelines/p.yaml"])
        .env("TMPDIR", &scratch)
        .env("SLOW_PID", &pid_file)
        .stdout(std::process::Stdio::null())
        .stderr(err)
        .spawn()
        .unwrap();
    wait_until("the scratch run's command started", 120, || {
        std::fs::read_to_string(&pid_file).is_ok_and(|s| s.ends_with('\n'))
    });
    let inner: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        std::fs::read_dir(&scratch).unwrap().count() > 0,
        "no scratch copy"
    );
    // SAFETY: kill(2) on the pid of a child we started and have not reaped.
    unsafe { libc::kill(rep.id() as i32, sig) };
    let st = rep.wait().unwrap();
    assert_all_gone(&[inner], inner);
    wait_until("the scratch copy is removed", 30, || {
        std::fs::read_dir(&scratch).unwrap().count() == 0
    });
    st.code()
}

#[test]
fn reproduce_killed_by_kill_9_leaves_no_scratch_run_or_copy() {
    stopped_reproduce(libc::SIGKILL);
}

#[test]
fn reproduce_stopped_by_ctrl_c_leaves_no_scratch_run_or_copy() {
    assert_eq!(stopped_reproduce(libc::SIGINT), Some(130));
}
