//! `pipe clean` (scaffold: to be implemented).

use crate::error::{PipeError, Result};

#[derive(clap::Args)]
pub struct CleanArgs {}

pub fn run(_args: CleanArgs) -> Result<i32> {
    Err(PipeError::Failed(
        "`pipe clean` is not implemented yet".into(),
    ))
}
