//! Process groups that die with pipe: each `command` stage runs in its own process group whose
//! leader is a supervisor ([`super::supervisor`]), registered so that a signal stops it.
//!
//! # How a stage's process tree dies with pipe
//!
//! [`spawn_group`] starts `pipe __supervise -- COMMAND` with `posix_spawn` (no copy of the
//! driver's memory, whatever its size) as the leader of a new process group, with a control
//! pipe on its standard input whose write end only the driver holds (close-on-exec). The
//! supervisor is a child subreaper: every process the command starts, including those that
//! leave the group with `setsid`, stays its descendant. It kills them all when the command
//! exits (so no descendant keeps the stage's output pipe open and `pipe` never waits on it),
//! when the driver writes `K` (the second step of stopping a stage after Ctrl-C/SIGTERM), and
//! when the control pipe reaches end-of-file: the driver is gone (exit, panic, SIGTERM or
//! `kill -9`). [`Group::wait`] reaps the supervisor, which exits with the command's status.

use super::supervisor::{self, KILL};
use super::{requested, wake_watcher};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// A registered group and how far the watcher got in stopping it.
pub(super) struct Registered {
    pub pgid: i32,
    /// The supervisor's control pipe (write end).
    pub control: Arc<OwnedFd>,
    pub term_sent: Option<Instant>,
    pub kill_sent: bool,
}

pub(super) fn registry() -> std::sync::MutexGuard<'static, Vec<Registered>> {
    static GROUPS: Mutex<Vec<Registered>> = Mutex::new(Vec::new());
    GROUPS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Registered while the group runs; unregistered on drop, before the supervisor is reaped, so
/// the watcher never signals a recycled group id.
struct GroupGuard {
    pgid: i32,
}

fn register(pgid: i32, control: Arc<OwnedFd>) -> GroupGuard {
    registry().push(Registered {
        pgid,
        control,
        term_sent: None,
        kill_sent: false,
    });
    if requested().is_some() {
        wake_watcher();
    }
    GroupGuard { pgid }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        registry().retain(|g| g.pgid != self.pgid);
    }
}

pub(super) fn signal_group(pgid: i32, sig: i32) {
    if pgid > 1 {
        // SAFETY: killpg has no memory effects; ESRCH (group gone) is ignored.
        unsafe { libc::killpg(pgid, sig) };
    }
}

/// Asks a supervisor to kill every process of its command at once.
pub(super) fn kill_all(control: &OwnedFd) {
    // SAFETY: one byte from a valid buffer to a pipe we hold open.
    unsafe { libc::write(control.as_raw_fd(), (&KILL as *const u8).cast(), 1) };
}

/// Where a supervised command's output goes, and what to remove if the driver dies.
pub struct GroupIo {
    pub stdout: Stdio,
    pub stderr: Stdio,
    /// Removed by the supervisor if the driver dies before the command ends.
    pub cleanup: Option<PathBuf>,
}

/// A running command under its supervisor, registered for signals. Dropping it without
/// [`Group::wait`] kills every process of the command and reaps the supervisor, so the thread
/// that spawned it never returns (or unwinds) while the command runs.
pub struct Group {
    child: Option<Child>,
    guard: Option<GroupGuard>,
    control: Option<Arc<OwnedFd>>,
    pgid: i32,
}

/// Starts `cmd` (its program, arguments, environment and folder; standard input is
/// `/dev/null`) under a supervisor, as the leader of a new process group registered for
/// signals (see the module docs).
pub fn spawn_group(cmd: &std::process::Command, io: GroupIo) -> std::io::Result<Group> {
    use std::os::unix::process::CommandExt;
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned here only.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let mut sup = std::process::Command::new(supervisor::program()?);
    sup.arg(supervisor::ARG);
    if let Some(d) = &io.cleanup {
        sup.arg("--cleanup").arg(d);
    }
    sup.arg("--").arg(cmd.get_program()).args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => sup.env(k, v),
            None => sup.env_remove(k),
        };
    }
    if let Some(d) = cmd.get_current_dir() {
        sup.current_dir(d);
    }
    sup.stdin(Stdio::from(read))
        .stdout(io.stdout)
        .stderr(io.stderr)
        .process_group(0);
    let child = sup.spawn()?;
    drop(sup); // closes our copy of the control pipe's read end
    let pgid = child.id() as i32;
    let control = Arc::new(write);
    let guard = register(pgid, control.clone());
    Ok(Group {
        child: Some(child),
        guard: Some(guard),
        control: Some(control),
        pgid,
    })
}

impl Group {
    /// The process group id (the supervisor's pid).
    pub fn pgid(&self) -> i32 {
        self.pgid
    }

    /// The supervisor, to take the command's stdout/stderr.
    pub fn child_mut(&mut self) -> &mut Child {
        self.child
            .as_mut()
            .expect("the child is present until waited for")
    }

    /// Waits for the command (its supervisor kills whatever it left running, in its group or
    /// not), then reaps the supervisor: the command's status.
    pub fn wait(mut self) -> std::io::Result<ExitStatus> {
        self.finish(false)
    }

    fn finish(&mut self, kill_first: bool) -> std::io::Result<ExitStatus> {
        let Some(mut child) = self.child.take() else {
            return Err(std::io::Error::other("process group already reaped"));
        };
        if kill_first {
            if let Some(c) = &self.control {
                kill_all(c);
            }
        }
        // Wait for the supervisor's exit without reaping it: the group id stays ours meanwhile.
        loop {
            // SAFETY: a zeroed siginfo_t is a valid out-parameter for waitid.
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            // SAFETY: `info` is a valid, writable siginfo_t; WNOWAIT leaves the child unreaped.
            let r = unsafe {
                libc::waitid(
                    libc::P_PID,
                    self.pgid as libc::id_t,
                    &mut info,
                    libc::WEXITED | libc::WNOWAIT,
                )
            };
            if r == 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                break;
            }
        }
        // Anything left in the group (the supervisor killed every descendant already).
        signal_group(self.pgid, libc::SIGKILL);
        self.guard.take();
        self.control.take();
        child.wait()
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.finish(true);
        }
    }
}
