//! The one-node Slurm cluster `scripts/test.sh` starts, as tests see it: one lock for every
//! test that submits jobs, in any module. Without `PIPE_TEST_SLURM=1` a test prints a skip line
//! and returns.

use std::sync::{Mutex, MutexGuard};

/// The node's two CPUs are shared: tests that submit jobs run one at a time, across modules.
static NODE: Mutex<()> = Mutex::new(());

/// The cluster, held for this test, or `None` (after a skip line) when `PIPE_TEST_SLURM` is not 1.
pub fn cluster() -> Option<MutexGuard<'static, ()>> {
    if std::env::var("PIPE_TEST_SLURM").ok().as_deref() != Some("1") {
        eprintln!("skipped: run scripts/test.sh (PIPE_TEST_SLURM unset)");
        return None;
    }
    Some(NODE.lock().unwrap_or_else(|p| p.into_inner()))
}
