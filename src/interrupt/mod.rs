//! Stopping child process trees: Ctrl-C/SIGTERM handling and the watcher that stops every
//! registered process group; the groups themselves ([`group`]: `command` stages that die with
//! pipe, each under a [`supervisor`]) and the markers of unfinished attempts that `pipe status`
//! reads ([`marker`]).
//!
//! # Signals
//!
//! [`install`] (called once by each command that runs stages) makes SIGINT/SIGTERM set a flag
//! ([`requested`]) instead of killing pipe. A watcher thread then sends SIGTERM to every
//! registered group, asks the supervisors of those still alive after [`GRACE`] to kill every
//! process of their command (SIGKILL, `setsid` descendants included), and waits until they are
//! all reaped. A second signal does that at once and exits with [`exit_code`]. Stages stopped
//! this way return
//! an [`Interrupted`] error, which the engine recognises to exit 130/143 with one line naming
//! the stage, after [`mark`]ing it (with the fingerprint it was computing) so that `pipe status`
//! says "interrupted" for that fingerprint.

mod group;
mod marker;
pub mod supervisor;

use group::{kill_all, registry, signal_group};
pub use group::{spawn_group, Group, GroupIo};
pub use marker::{clear, mark, mark_failed, Marker, Markers};
use std::path::{Path, PathBuf};
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
                    kill_all(&g.control);
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
                            signal_group(g.pgid, libc::SIGTERM);
                            g.term_sent = Some(now);
                        }
                        Some(t) if !g.kill_sent && now.duration_since(t) >= GRACE => {
                            kill_all(&g.control);
                            g.kill_sent = true;
                        }
                        // A supervisor that did not answer: the group itself.
                        Some(t) if now.duration_since(t) >= 3 * GRACE => {
                            signal_group(g.pgid, libc::SIGKILL);
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
    for (id, cache_dir, fp) in &stages {
        let _ = mark(cache_dir, id, fp, sig);
        eprintln!("stage `{id}` was interrupted; stopped by {sig}; rerun to continue");
    }
    if !stages.is_empty() {
        // SAFETY: _exit ends the process at once; the kernel releases locks and files.
        unsafe { libc::_exit(exit_code(sig)) };
    }
}

/// Stages running inside pipe: (id, `cache/` folder, fingerprint).
type InProcess = Vec<(String, PathBuf, crate::digest::Fingerprint)>;

fn in_process() -> std::sync::MutexGuard<'static, InProcess> {
    static STAGES: Mutex<InProcess> = Mutex::new(Vec::new());
    STAGES.lock().unwrap_or_else(|e| e.into_inner())
}

/// A stage running inside pipe, registered so that a signal can stop it (see
/// [`stop_in_process_stages`]); unregistered on drop.
pub struct StageGuard {
    id: String,
}

/// Registers a running stage computing fingerprint `fp` (`cache_dir` receives its interrupted
/// marker).
pub fn running_stage(cache_dir: &Path, id: &str, fp: &crate::digest::Fingerprint) -> StageGuard {
    in_process().push((id.to_string(), cache_dir.to_path_buf(), *fp));
    StageGuard { id: id.to_string() }
}

impl Drop for StageGuard {
    fn drop(&mut self) {
        let mut v = in_process();
        if let Some(i) = v.iter().position(|(id, _, _)| *id == self.id) {
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
}
