//! `pipe run` (scaffold: to be implemented).

use crate::error::{PipeError, Result};

#[derive(clap::Args)]
pub struct RunArgs {}

pub fn run(_args: RunArgs) -> Result<i32> {
    Err(PipeError::Failed(
        "`pipe run` is not implemented yet".into(),
    ))
}
