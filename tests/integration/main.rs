//! The one integration-test binary: every area drives the real `pipe` executable or a stage
//! kind through its public API, with the shared helpers of [`support`]. One module per area;
//! run one with `cargo test --release --test integration engine::` (or
//! `scripts/test.sh --test integration -- slurm`).
//!
//! To add an area: a file `tests/integration/<area>.rs` starting with `use crate::support::*;`
//! and one `mod <area>;` line below.

mod support;

mod bench;
mod cli;
mod cli_eval;
mod cli_everyday;
mod compare;
mod engine;
mod experiments;
mod layout;
mod load;
mod plot_stage;
mod process;
mod remote;
mod run_loop;
mod safety;
mod slurm;
mod slurm_exec;
mod slurm_trouble;
mod stage_embed;
mod stage_eval;
mod stage_fetch;
mod stage_report;
mod stage_tokenize;
mod stage_train;
mod store;
mod untrusted;
mod untrusted_inputs;
