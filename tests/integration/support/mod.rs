//! What every area of the integration tests shares: the runner of the real `pipe` binary
//! ([`run`]), the project builder ([`proj`]), folder snapshots ([`tree`]), the `StageCtx`
//! builder ([`ctx`]), the tiny model and its fixture ([`model`]), the repository's tracked files
//! and data mirror ([`repo`]) and the Slurm node lock ([`slurm`]). A module imports what it needs with `use crate::support::*;`.

mod ctx;
mod model;
mod proj;
mod repo;
mod run;
mod slurm;
mod tree;

pub use ctx::{ctx, materialise, params, CtxBuilder};
pub use model::{
    fixture, random_weights, save_checkpoint, tiny_config, upstream, upstreams, vocab, Fixture,
    WORDS,
};
pub use proj::{Proj, CHAIN};
pub use repo::{data_mirror, tracked_copy};
pub use run::{code, pipe, pipe_cmd, pipe_env, pipe_stdin, stderr, stdout, text, wait_until};
pub use slurm::{cluster, jobcomp, max_at_once, private_cluster, Cluster, Wrappers};
pub use tree::{files, outputs_of, png_size, snapshot, walk, writable, write, Node};
