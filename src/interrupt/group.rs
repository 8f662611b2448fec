//! Process groups that die with pipe: each `command` stage runs in its own group whose leader
//! is a supervisor, registered so that a signal stops it.
//!
//! # How a stage's process tree dies with pipe
//!
//! [`spawn_group`] starts a command in its own process group whose leader is a tiny supervisor
//! (forked inside `pre_exec`, it never execs). The supervisor forks the real command, which gets
//! `PR_SET_PDEATHSIG(SIGKILL)` towards the supervisor (a single-threaded process, so the "thread
//! that spawned me exited" pitfall of `PDEATHSIG` cannot arise), and then waits on two things:
//! the command's exit and end-of-file on a process-wide "death pipe" whose write end only pipe
//! holds. The write end lives in the fd table of the whole process, not of a thread, so EOF
//! means exactly "pipe is gone" (exit, panic, SIGTERM or `kill -9`): the supervisor then sends
//! SIGKILL to the whole group, grandchildren (`sleep 100 &`) included. When the command exits
//! normally, the supervisor exits with the same status, and [`Group::wait`] kills whatever the
//! command left running in the group before reaping the supervisor (the process group id stays
//! pinned until then, so the kill can never hit a recycled id).

use super::{requested, wake_watcher};
use std::process::{Child, ExitStatus};
use std::sync::Mutex;
use std::time::Instant;

/// A registered group and how far the watcher got in stopping it.
pub(super) struct Registered {
    pub pgid: i32,
    pub term_sent: Option<Instant>,
    pub kill_sent: bool,
}

pub(super) fn registry() -> std::sync::MutexGuard<'static, Vec<Registered>> {
    static GROUPS: Mutex<Vec<Registered>> = Mutex::new(Vec::new());
    GROUPS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Registers a process group so that a signal stops it; unregistered on drop. [`spawn_group`]
/// does this for you; use it directly only for a group you started yourself. Drop it before
/// the group's leader is reaped, so the watcher never signals a recycled group id.
pub struct GroupGuard {
    pgid: i32,
}

/// Registers `pgid` (see [`GroupGuard`]). If a signal already arrived, the group is stopped at
/// once.
pub fn register(pgid: i32) -> GroupGuard {
    registry().push(Registered {
        pgid,
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

pub(super) fn kill_group(pgid: i32, sig: i32) {
    if pgid > 1 {
        // SAFETY: killpg has no memory effects; ESRCH (group gone) is ignored.
        unsafe { libc::killpg(pgid, sig) };
    }
}

/// A running command in its own process group, registered for signals. Dropping it without
/// [`Group::wait`] kills the whole group and reaps it, so the thread that spawned it never
/// returns (or unwinds) while the command runs.
pub struct Group {
    child: Option<Child>,
    guard: Option<GroupGuard>,
    pgid: i32,
}

/// Spawns `cmd` as the leader of a new process group (see the module docs: on Linux the leader
/// is a supervisor that kills the group when pipe dies), registered for signals.
pub fn spawn_group(cmd: &mut std::process::Command) -> std::io::Result<Group> {
    use std::os::unix::process::CommandExt;
    cmd.process_group(0);
    #[cfg(target_os = "linux")]
    {
        let (death_r, death_w) = death_pipe()?;
        // SAFETY: the closure only makes async-signal-safe calls (fork, prctl, poll, waitpid,
        // kill, close, signal, _exit) and allocates nothing; see `supervise`.
        unsafe {
            cmd.pre_exec(move || supervised_fork(death_r, death_w));
        }
    }
    let child = cmd.spawn()?;
    let pgid = child.id() as i32;
    let guard = register(pgid);
    Ok(Group {
        child: Some(child),
        guard: Some(guard),
        pgid,
    })
}

impl Group {
    /// The process group id (the leader's pid).
    pub fn pgid(&self) -> i32 {
        self.pgid
    }

    /// The child, to take its stdout/stderr.
    pub fn child_mut(&mut self) -> &mut Child {
        self.child
            .as_mut()
            .expect("the child is present until waited for")
    }

    /// Waits for the command, then kills whatever it left running in its group (background
    /// processes), then reaps it.
    pub fn wait(mut self) -> std::io::Result<ExitStatus> {
        self.finish(false)
    }

    fn finish(&mut self, kill_first: bool) -> std::io::Result<ExitStatus> {
        let Some(mut child) = self.child.take() else {
            return Err(std::io::Error::other("process group already reaped"));
        };
        if kill_first {
            kill_group(self.pgid, libc::SIGKILL);
        }
        // Wait for the leader's exit without reaping it: the group id stays ours meanwhile.
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
            if r == 0 {
                break;
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                break;
            }
        }
        kill_group(self.pgid, libc::SIGKILL);
        self.guard.take();
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

/// The process-wide death pipe: (read end, write end), both close-on-exec. Only pipe holds the
/// write end (supervisors close their inherited copy at once), so its read end reaches EOF
/// exactly when the pipe process is gone.
#[cfg(target_os = "linux")]
fn death_pipe() -> std::io::Result<(i32, i32)> {
    static PIPE: std::sync::OnceLock<(i32, i32)> = std::sync::OnceLock::new();
    if let Some(&p) = PIPE.get() {
        return Ok(p);
    }
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let p = (fds[0], fds[1]);
    if PIPE.set(p).is_err() {
        // Another thread won the race: keep its pipe, close ours.
        // SAFETY: closing descriptors we just created and nobody else knows.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
    }
    Ok(*PIPE.get().expect("set above"))
}

/// Runs in the forked child (the new group's leader) before exec. Forks the real command, which
/// returns here to be exec'd; the leader stays behind as the supervisor and never returns.
///
/// # Safety
/// Called between fork and exec of a multithreaded process: only async-signal-safe calls, no
/// allocation, no locks.
#[cfg(target_os = "linux")]
fn supervised_fork(death_r: i32, death_w: i32) -> std::io::Result<()> {
    // SAFETY: all calls below are async-signal-safe system calls on values we own.
    unsafe {
        let leader = libc::getpid();
        let cmd = libc::fork();
        if cmd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if cmd == 0 {
            // The command: dies with its supervisor, whatever kills it.
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            // The supervisor may have died before prctl took effect.
            if libc::getppid() != leader {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
            return Ok(());
        }
        supervise(cmd, death_r, death_w)
    }
}

/// The supervisor's loop: exits with the command's status, or kills the whole group (itself
/// included) when the death pipe reports that pipe is gone.
///
/// # Safety
/// Same constraints as [`supervised_fork`].
#[cfg(target_os = "linux")]
unsafe fn supervise(cmd: libc::pid_t, death_r: i32, death_w: i32) -> ! {
    // SAFETY: the caller upholds the contract in `# Safety` above; every call below is an
    // async-signal-safe system call on descriptors and ids this process owns.
    unsafe {
        // The group gets SIGTERM/SIGINT from the watcher; the supervisor stays to report the
        // command's status, and SIGKILL still ends it.
        for s in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGQUIT] {
            libc::signal(s, libc::SIG_IGN);
        }
        // Keep only the death pipe's read end: stdio belongs to the command, pipe's exec-error pipe
        // must see EOF once the command execs, and the death pipe's write end belongs to pipe.
        libc::close(death_w);
        close_all_but(death_r);
        let pidfd = libc::syscall(libc::SYS_pidfd_open, cmd, 0) as i32;
        let mut status = 0;
        loop {
            let mut fds = [
                libc::pollfd {
                    fd: death_r,
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: pidfd,
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            // Without pidfd (kernel < 5.3), poll the command's status every 50 ms.
            let (n, timeout) = if pidfd >= 0 { (2, -1) } else { (1, 50) };
            let r = libc::poll(fds.as_mut_ptr(), n, timeout);
            if r > 0 && fds[0].revents != 0 {
                // pipe is gone: take the whole tree down.
                libc::kill(0, libc::SIGKILL);
            }
            if libc::waitpid(cmd, &mut status, libc::WNOHANG) == cmd {
                break;
            }
        }
        if libc::WIFSIGNALED(status) {
            // Die the same way, without a core file of our own.
            let sig = libc::WTERMSIG(status);
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
            libc::_exit(128 + sig);
        }
        libc::_exit(libc::WEXITSTATUS(status))
    }
}

/// Closes every descriptor except `keep`.
///
/// # Safety
/// Async-signal-safe; only for the supervisor, which owns no Rust objects holding descriptors.
#[cfg(target_os = "linux")]
unsafe fn close_all_but(keep: i32) {
    // SAFETY: the caller upholds the contract in `# Safety` above; every call below is an
    // async-signal-safe system call on descriptors and ids this process owns.
    unsafe {
        let ranges = [(0, keep - 1), (keep + 1, i32::MAX)];
        for (lo, hi) in ranges {
            if lo > hi {
                continue;
            }
            if libc::syscall(libc::SYS_close_range, lo as u32, hi as u32, 0) != 0 {
                // Kernels before 5.9: close one by one up to a sane limit.
                let top = hi.min(65_536);
                for fd in lo..=top {
                    libc::close(fd);
                }
            }
        }
    }
}
