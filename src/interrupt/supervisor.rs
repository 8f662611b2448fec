//! Where a stage's supervisor comes from: the small executable `pipe-supervise` (source:
//! `src/bin/pipe-supervise.rs`, where its protocol is described) beside the running `pipe`;
//! a test that runs stages in its own process names it with [`set_program`].

use std::path::PathBuf;

/// The supervisor's executable name.
pub const NAME: &str = "pipe-supervise";

/// The byte that asks a supervisor to kill every process of its command now.
pub const KILL: u8 = b'K';

static PROGRAM: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Names the supervisor executable (the first call wins; without one it is [`NAME`] in the
/// folder of the running executable).
pub fn set_program(path: PathBuf) {
    let _ = PROGRAM.set(path);
}

pub(super) fn program() -> std::io::Result<&'static PathBuf> {
    if let Some(p) = PROGRAM.get() {
        return Ok(p);
    }
    let exe = std::fs::read_link("/proc/self/exe").or_else(|_| std::env::current_exe())?;
    let beside = exe.with_file_name(NAME);
    if !beside.is_file() {
        return Err(std::io::Error::other(format!(
            "the stage supervisor {} is missing (it is installed with pipe)",
            beside.display()
        )));
    }
    Ok(PROGRAM.get_or_init(|| beside))
}
