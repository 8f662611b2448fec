//! `pipe params diff`: the merged parameters of every stage in the workspace's lock file
//! against a git revision's (default `HEAD`) or another lock file; only what differs.

use super::metrics::{diff, DiffArgs};
use crate::compare::lock::Part;
use crate::error::Result;

#[derive(clap::Subcommand)]
pub enum ParamsCommand {
    /// Parameters that changed between a git revision (or another lock file) and the workspace.
    Diff(DiffArgs),
}

pub fn run(cmd: ParamsCommand) -> Result<i32> {
    match cmd {
        ParamsCommand::Diff(a) => diff(&a, Part::Params),
    }
}
