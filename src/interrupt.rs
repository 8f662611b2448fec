//! Stopping child process trees: Ctrl-C/SIGTERM handling, the process groups of running
//! `command` stages (stopped on a signal, and killed by the kernel-visible death of pipe), and
//! the "interrupted" markers that `pipe status` reads.
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
//!
//! # Signals
//!
//! [`install`] (called once from `cli::main`) makes SIGINT/SIGTERM set a flag ([`requested`])
//! instead of killing pipe. A watcher thread then sends SIGTERM to every registered group,
//! SIGKILL to those still alive after [`GRACE`], and waits until they are all reaped. A second
//! signal kills every group at once and exits with [`exit_code`]. Stages stopped this way return
//! an [`Interrupted`] error, which the engine recognises to exit 130/143 with one line naming
//! the stage, after [`mark`]ing it so that `pipe status` says "interrupted".

use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

/// How long a stopped group may take to exit after SIGTERM before it gets SIGKILL.
pub const GRACE: Duration = Duration::from_secs(2);

/// A signal that asks pipe to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT (Ctrl-C).
    Int,
    /// SIGTERM.
    Term,
}

impl Signal {
    /// `SIGINT` or `SIGTERM`.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Int => "SIGINT",
            Signal::Term => "SIGTERM",
        }
    }

    fn number(self) -> i32 {
        match self {
            Signal::Int => libc::SIGINT,
            Signal::Term => libc::SIGTERM,
        }
    }

    fn from_number(n: i32) -> Option<Signal> {
        match n {
            libc::SIGINT => Some(Signal::Int),
            libc::SIGTERM => Some(Signal::Term),
            _ => None,
        }
    }
}

impl std::fmt::Display for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The shell convention for "killed by `sig`": 130 for SIGINT, 143 for SIGTERM.
pub fn exit_code(sig: Signal) -> i32 {
    128 + sig.number()
}

/// A stage stopped because pipe received a signal (not a failure of the stage itself).
#[derive(Debug, thiserror::Error)]
#[error("stage `{stage}` interrupted by {signal}")]
pub struct Interrupted {
    pub stage: String,
    pub signal: Signal,
}

/// The [`Interrupted`] error inside `e`, if that is what it is.
pub fn as_interrupted(e: &anyhow::Error) -> Option<&Interrupted> {
    e.downcast_ref::<Interrupted>()
}

// ---------------------------------------------------------------------------------------------
// Signal handlers

/// The first signal received (0: none).
static REQUESTED: AtomicI32 = AtomicI32::new(0);
/// How many signals were received.
static COUNT: AtomicU32 = AtomicU32::new(0);
/// Write end of the self-pipe that wakes the watcher thread (-1 before `install`).
static WAKE: AtomicI32 = AtomicI32::new(-1);
static INSTALL: Once = Once::new();

/// The signal that asked pipe to stop, if one arrived (only after [`install`]).
pub fn requested() -> Option<Signal> {
    Signal::from_number(REQUESTED.load(Ordering::SeqCst))
}

extern "C" fn on_signal(sig: libc::c_int) {
    // Only async-signal-safe work here: atomics and write(2).
    let _ = REQUESTED.compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst);
    COUNT.fetch_add(1, Ordering::SeqCst);
    let fd = WAKE.load(Ordering::SeqCst);
    if fd >= 0 {
        let b = sig as u8;
        // SAFETY: writing one byte from a valid buffer to a non-blocking pipe.
        unsafe { libc::write(fd, (&b as *const u8).cast(), 1) };
    }
}

/// Installs the SIGINT/SIGTERM handlers and starts the watcher thread that stops registered
/// process groups. Idempotent; call once from `cli::main` before running anything.
pub fn install() -> std::io::Result<()> {
    let mut result = Ok(());
    INSTALL.call_once(|| result = install_once());
    result
}

fn install_once() -> std::io::Result<()> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let [read_fd, write_fd] = fds;
    // The handler must never block: make the write end non-blocking.
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let fl = libc::fcntl(write_fd, libc::F_GETFL);
        libc::fcntl(write_fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
    WAKE.store(write_fd, Ordering::SeqCst);
    std::thread::Builder::new()
        .name("pipe-interrupt".into())
        .spawn(move || watch(read_fd))?;
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction with a valid handler and an empty mask is well formed.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as libc::sighandler_t;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            if libc::sigaction(sig, &sa, std::ptr::null_mut()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

/// The watcher thread: on each wake-up, stops every registered group (SIGTERM, then SIGKILL
/// after [`GRACE`]) until none is left; a second signal kills them all and exits.
fn watch(read_fd: libc::c_int) {
    loop {
        let mut b = 0u8;
        // SAFETY: reading one byte into a valid buffer from our own pipe.
        let n = unsafe { libc::read(read_fd, (&mut b as *mut u8).cast(), 1) };
        if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        if n <= 0 {
            return;
        }
        let Some(sig) = requested() else { continue };
        loop {
            if COUNT.load(Ordering::SeqCst) >= 2 {
                eprintln!("pipe: second {sig}: killing every running stage and exiting");
                for g in registry().iter() {
                    kill_group(g.pgid, libc::SIGKILL);
                }
                // SAFETY: _exit ends the process at once; the kernel releases locks and files.
                unsafe { libc::_exit(exit_code(sig)) };
            }
            let now = Instant::now();
            let empty = {
                let mut groups = registry();
                for g in groups.iter_mut() {
                    match g.term_sent {
                        None => {
                            kill_group(g.pgid, libc::SIGTERM);
                            g.term_sent = Some(now);
                        }
                        Some(t) if !g.kill_sent && now.duration_since(t) >= GRACE => {
                            kill_group(g.pgid, libc::SIGKILL);
                            g.kill_sent = true;
                        }
                        _ => {}
                    }
                }
                groups.is_empty()
            };
            if empty {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        stop_in_process_stages(sig);
    }
}

/// Built-in stages run inside pipe, where no process group can stop them: if any is still
/// running [`GRACE`] after the signal, each is marked interrupted and pipe exits with the
/// signal's code. This is as safe as `kill -9`: a run record is written last, by rename.
fn stop_in_process_stages(sig: Signal) {
    let t0 = Instant::now();
    while t0.elapsed() < GRACE {
        if in_process().is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let stages = in_process().clone();
    for (id, cache_dir) in &stages {
        let _ = mark(cache_dir, id, sig);
        eprintln!("stage `{id}` was interrupted; stopped by {sig}; rerun to continue");
    }
    if !stages.is_empty() {
        // SAFETY: _exit ends the process at once; the kernel releases locks and files.
        unsafe { libc::_exit(exit_code(sig)) };
    }
}

fn in_process() -> std::sync::MutexGuard<'static, Vec<(String, PathBuf)>> {
    static STAGES: Mutex<Vec<(String, PathBuf)>> = Mutex::new(Vec::new());
    STAGES.lock().unwrap_or_else(|e| e.into_inner())
}

/// A stage running inside pipe, registered so that a signal can stop it (see
/// [`stop_in_process_stages`]); unregistered on drop.
pub struct StageGuard {
    id: String,
}

/// Registers a running stage (`cache_dir` receives its interrupted marker).
pub fn running_stage(cache_dir: &Path, id: &str) -> StageGuard {
    in_process().push((id.to_string(), cache_dir.to_path_buf()));
    StageGuard { id: id.to_string() }
}

impl Drop for StageGuard {
    fn drop(&mut self) {
        let mut v = in_process();
        if let Some(i) = v.iter().position(|(id, _)| *id == self.id) {
            v.remove(i);
        }
    }
}

fn wake_watcher() {
    let fd = WAKE.load(Ordering::SeqCst);
    if fd >= 0 {
        let b = 0u8;
        // SAFETY: one byte from a valid buffer to our own non-blocking pipe.
        unsafe { libc::write(fd, (&b as *const u8).cast(), 1) };
    }
}

// ---------------------------------------------------------------------------------------------
// Registered process groups

struct Registered {
    pgid: i32,
    term_sent: Option<Instant>,
    kill_sent: bool,
}

fn registry() -> std::sync::MutexGuard<'static, Vec<Registered>> {
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

fn kill_group(pgid: i32, sig: i32) {
    if pgid > 1 {
        // SAFETY: killpg has no memory effects; ESRCH (group gone) is ignored.
        unsafe { libc::killpg(pgid, sig) };
    }
}

// ---------------------------------------------------------------------------------------------
// Spawning a group that dies with pipe

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

// ---------------------------------------------------------------------------------------------
// Interrupted markers

/// `cache/interrupted/<id>`, the id made safe as a file name (`%XX` for anything but
/// letters, digits and `@=,+-_.`, and for a leading dot).
fn marker_path(cache_dir: &Path, stage_id: &str) -> PathBuf {
    let mut name = String::new();
    for (i, b) in stage_id.bytes().enumerate() {
        let plain = b.is_ascii_alphanumeric() || b"@=,+-_".contains(&b) || (b == b'.' && i > 0);
        if plain {
            name.push(b as char);
        } else {
            name.push_str(&format!("%{b:02X}"));
        }
    }
    cache_dir.join("interrupted").join(name)
}

/// Records that stage `stage_id` was stopped by `sig`, for `pipe status`. Written atomically;
/// a planted symlink at `cache/interrupted` is refused, never followed.
pub fn mark(cache_dir: &Path, stage_id: &str, sig: Signal) -> std::io::Result<()> {
    let path = marker_path(cache_dir, stage_id);
    let dir = path.parent().expect("marker paths have a parent");
    match std::fs::symlink_metadata(dir) {
        Ok(m) if !m.is_dir() => {
            return Err(std::io::Error::other(format!(
            "{} is not a folder (a symlink or a file): refusing to write interrupted markers there",
            dir.display()
        )))
        }
        Ok(_) => {}
        Err(_) => std::fs::create_dir_all(dir)?,
    }
    let tmp = dir.join(format!(".tmp{}", std::process::id()));
    std::fs::write(&tmp, format!("interrupted by {sig}\n"))?;
    std::fs::rename(&tmp, &path)
}

/// Whether `stage_id` was interrupted since its last completed run.
pub fn was_interrupted(cache_dir: &Path, stage_id: &str) -> bool {
    std::fs::symlink_metadata(marker_path(cache_dir, stage_id)).is_ok()
}

/// Removes the marker of `stage_id` (after it completes); absent markers are fine.
pub fn clear(cache_dir: &Path, stage_id: &str) -> std::io::Result<()> {
    match std::fs::remove_file(marker_path(cache_dir, stage_id)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_shell_convention() {
        assert_eq!(exit_code(Signal::Int), 130);
        assert_eq!(exit_code(Signal::Term), 143);
        assert_eq!(
            Interrupted {
                stage: "train@epoch=2".into(),
                signal: Signal::Term
            }
            .to_string(),
            "stage `train@epoch=2` interrupted by SIGTERM"
        );
    }

    #[test]
    fn markers_round_trip_and_ids_stay_inside_the_folder() {
        let d = tempfile::tempdir().unwrap();
        let cache = d.path().join("cache");
        for id in [
            "train@epoch=2",
            "s@p=x/../../victim",
            "..",
            ".hidden",
            "a\nb",
        ] {
            assert!(!was_interrupted(&cache, id));
            mark(&cache, id, Signal::Int).unwrap();
            assert!(was_interrupted(&cache, id), "{id}");
            let p = marker_path(&cache, id);
            assert_eq!(p.parent().unwrap(), cache.join("interrupted"), "{id}");
            assert!(!p.file_name().unwrap().to_string_lossy().starts_with('.'));
            clear(&cache, id).unwrap();
            assert!(!was_interrupted(&cache, id));
            clear(&cache, id).unwrap();
        }
        // Only the markers' folder was created, nothing outside it.
        let names: Vec<_> = std::fs::read_dir(d.path()).unwrap().flatten().collect();
        assert_eq!(names.len(), 1);
        assert_eq!(
            std::fs::read_dir(cache.join("interrupted"))
                .unwrap()
                .count(),
            0
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_planted_symlink_is_not_followed() {
        let d = tempfile::tempdir().unwrap();
        let outside = d.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        let cache = d.path().join("cache");
        std::fs::create_dir_all(&cache).unwrap();
        std::os::unix::fs::symlink(&outside, cache.join("interrupted")).unwrap();
        assert!(mark(&cache, "a", Signal::Term).is_err());
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    }
}
