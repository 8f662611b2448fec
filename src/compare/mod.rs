//! Comparing runs: lock files against each other (`metrics diff`, `params diff`) and a
//! recomputed run against the committed lock (`reproduce`), with tolerances for tensors and
//! metrics; numbers formatted and plain-text tables for those commands and `pipe exp`.
//!
//! Git is read through the `git` command (`git show REV:./<lock>`), never through a crate:
//! whatever git the user has configured (worktrees, alternates, safe directories) applies.

pub mod error;
pub mod files;
pub mod git;
pub mod lock;
pub mod measure;
pub mod number;
pub mod scratch;
pub mod table;
pub mod tensors;
pub mod tolerance;
pub mod verdict;

pub use error::CompareError;
