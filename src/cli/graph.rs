//! `pipe graph` (scaffold: to be implemented).

use crate::error::{PipeError, Result};

#[derive(clap::Args)]
pub struct GraphArgs {}

pub fn run(_args: GraphArgs) -> Result<i32> {
    Err(PipeError::Failed(
        "`pipe graph` is not implemented yet".into(),
    ))
}
