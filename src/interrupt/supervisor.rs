//! The supervisor process of a stage's command: `pipe __supervise [--cleanup DIR] -- PROGRAM
//! ARGS…`, started by [`super::spawn_group`] with `posix_spawn` (nothing of the driver's memory
//! is copied), as the leader of the command's process group.
//!
//! It makes itself a child subreaper (`PR_SET_CHILD_SUBREAPER`), so every process the command
//! starts stays its descendant even after leaving the group (`setsid`) and losing its parent,
//! starts the command (standard input from `/dev/null`, output to the driver's pipes), and then
//! waits on two things: the command's exit, and its control pipe (standard input), whose write
//! end only the driver holds. When the command exits, every descendant still running is killed
//! (so none keeps the stage's output pipe open) and the supervisor exits with the command's
//! status. A `K` on the control pipe (the driver stopping the stage after SIGTERM's grace
//! period) kills every descendant at once. End-of-file on it means the driver is gone (exit,
//! panic, `kill -9`): every descendant is killed, `DIR` is removed, and the supervisor exits.
//! SIGINT/SIGTERM/SIGHUP/SIGQUIT reach the command (the driver signals the whole group); the
//! supervisor only notes them.

use std::ffi::OsString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::time::Duration;

/// The first argument that selects supervisor mode.
pub const ARG: &str = "__supervise";

/// The byte that asks the supervisor to kill every descendant now.
pub const KILL: u8 = b'K';

/// The program that runs supervisors: this pipe executable, once `main` has said so.
static PROGRAM: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Names the executable that runs `pipe __supervise` (pipe's `main` gives `/proc/self/exe`; a
/// test that runs stages in its own process gives the pipe binary). The first call wins.
pub fn set_program(path: PathBuf) {
    let _ = PROGRAM.set(path);
}

pub(super) fn program() -> std::io::Result<&'static PathBuf> {
    PROGRAM.get().ok_or_else(|| {
        std::io::Error::other(
            "no supervisor program: this process is not `pipe` and did not name one \
             (interrupt::supervisor::set_program)",
        )
    })
}

/// Runs the supervisor when the process was started as one (`args[1] == __supervise`): its exit
/// code. None for every other command line.
pub fn main_if_asked() -> Option<i32> {
    let args: Vec<OsString> = std::env::args_os().collect();
    if args.get(1).map(|a| a == ARG) != Some(true) {
        return None;
    }
    let mut cleanup = None;
    let mut i = 2;
    while i < args.len() && args[i] != "--" {
        if args[i] == "--cleanup" && i + 1 < args.len() {
            cleanup = Some(PathBuf::from(&args[i + 1]));
            i += 1;
        }
        i += 1;
    }
    let command = args.get(i + 1..).unwrap_or_default();
    if command.is_empty() {
        eprintln!("pipe {ARG}: usage: pipe {ARG} [--cleanup DIR] -- PROGRAM [ARGS…]");
        return Some(2);
    }
    Some(supervise(command, cleanup))
}

extern "C" fn note(_: libc::c_int) {}

/// Takes the control pipe off standard input (which becomes `/dev/null`) and closes every
/// other descriptor the supervisor inherited besides its output.
fn take_control() -> std::io::Result<OwnedFd> {
    // SAFETY: plain descriptor calls on descriptors this process owns; the new descriptor is
    // owned by the returned OwnedFd only.
    unsafe {
        let ctl = libc::fcntl(0, libc::F_DUPFD_CLOEXEC, 3);
        if ctl < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY);
        if null >= 0 {
            libc::dup2(null, 0);
            libc::close(null);
        }
        for (lo, hi) in [(3, ctl - 1), (ctl + 1, i32::MAX)] {
            if lo <= hi {
                libc::syscall(libc::SYS_close_range, lo as u32, hi as u32, 0);
            }
        }
        Ok(OwnedFd::from_raw_fd(ctl))
    }
}

fn supervise(command: &[OsString], cleanup: Option<PathBuf>) -> i32 {
    // SAFETY: prctl and sigaction with a handler that does nothing; handlers (unlike ignored
    // signals) are reset to the default when the command execs.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        for s in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGQUIT] {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = note as *const () as libc::sighandler_t;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(s, &sa, std::ptr::null_mut());
        }
    }
    let ctl = match take_control() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("pipe {ARG}: no control pipe: {e}");
            return 126;
        }
    };
    let me = std::process::id() as i32;
    let mut cmd = std::process::Command::new(&command[0]);
    cmd.args(&command[1..]);
    // SAFETY: prctl, getppid and kill are async-signal-safe; nothing is allocated.
    unsafe {
        cmd.pre_exec(move || {
            // The command dies with its supervisor, whatever kills it.
            libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            );
            if libc::getppid() != me {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
            Ok(())
        });
    }
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cannot start {}: {e}", command[0].to_string_lossy());
            return 127;
        }
    };
    let status = watch(child.id() as i32, &ctl, cleanup.as_deref());
    exit_like(status)
}

/// Waits for the command (`pid`) while watching the control pipe; kills every descendant once
/// the command is gone, or at once on `K` or end-of-file. The command's wait status.
fn watch(pid: i32, ctl: &OwnedFd, cleanup: Option<&std::path::Path>) -> i32 {
    // SAFETY: pidfd_open on our own child; a negative result is handled below.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
    let mut status = None;
    let mut ctl_open = true;
    while status.is_none() {
        let mut fds = [
            libc::pollfd {
                fd: if ctl_open { ctl.as_raw_fd() } else { -1 },
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: pidfd,
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // Without pidfd (kernel < 5.3), look at the command every 50 ms.
        let timeout = if pidfd >= 0 { 1000 } else { 50 };
        // SAFETY: `fds` is a valid array of two pollfd; negative descriptors are skipped.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout) };
        if r > 0 && fds[0].revents != 0 {
            let mut b = [0u8; 16];
            // SAFETY: reading into a valid buffer from our own pipe.
            let n = unsafe { libc::read(ctl.as_raw_fd(), b.as_mut_ptr().cast(), b.len()) };
            if n <= 0 {
                // The driver is gone: take everything down, and what it asked to be removed.
                ctl_open = false;
                kill_tree(pid, &mut status);
                if let Some(d) = cleanup {
                    let _ = std::fs::remove_dir_all(d);
                }
            } else if b[..n as usize].contains(&KILL) {
                kill_tree(pid, &mut status);
            }
        }
        reap(pid, &mut status);
    }
    kill_tree(pid, &mut status);
    status.unwrap_or(libc::SIGKILL)
}

/// Reaps every child that has exited, keeping the command's status.
fn reap(cmd: i32, status: &mut Option<i32>) {
    loop {
        let mut st = 0;
        // SAFETY: waitpid on our own children, non-blocking.
        let p = unsafe { libc::waitpid(-1, &mut st, libc::WNOHANG) };
        if p <= 0 {
            return;
        }
        if p == cmd {
            *status = Some(st);
        }
    }
}

/// Kills every live descendant (SIGKILL), round after round until none is left: a process
/// that forks meanwhile is caught by the next round, and orphans come back to the supervisor
/// (a subreaper) to be reaped.
fn kill_tree(cmd: i32, status: &mut Option<i32>) {
    let me = std::process::id() as i32;
    for round in 0..20_000 {
        reap(cmd, status);
        let live = descendants(me);
        if live.is_empty() {
            return;
        }
        for p in live {
            // SAFETY: kill(2) on a descendant found a moment ago (a zombie until its parent
            // reaps it, so its pid cannot be reused meanwhile unless that parent reaped it).
            unsafe { libc::kill(p, libc::SIGKILL) };
        }
        if round > 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// The live (not zombie) descendants of `pid`, from `/proc/<pid>/task/<tid>/children`.
fn descendants(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let mut stack = vec![pid];
    while let Some(p) = stack.pop() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for t in tasks.flatten() {
            let path = t.path().join("children");
            let Ok(text) = std::fs::read_to_string(path) else {
                continue;
            };
            for c in text
                .split_whitespace()
                .filter_map(|c| c.parse::<i32>().ok())
            {
                stack.push(c);
                if alive(c) {
                    out.push(c);
                }
            }
        }
    }
    out
}

/// A process that exists and is not a zombie.
fn alive(pid: i32) -> bool {
    let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = s
        .rfind(')')
        .and_then(|i| s[i + 1..].split_whitespace().next());
    !matches!(state, Some("Z") | Some("X") | None)
}

/// Exits the way the command did: with its code, or killed by its signal (without a core
/// file of our own).
fn exit_like(status: i32) -> i32 {
    if libc::WIFSIGNALED(status) {
        let sig = libc::WTERMSIG(status);
        // SAFETY: resetting our own limits, disposition and mask, then signalling ourselves.
        unsafe {
            let none = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            libc::setrlimit(libc::RLIMIT_CORE, &none);
            libc::signal(sig, libc::SIG_DFL);
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, sig);
            libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
            libc::kill(libc::getpid(), sig);
        }
        return 128 + sig;
    }
    libc::WEXITSTATUS(status)
}
