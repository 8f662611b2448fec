//! `pipe status` (scaffold: to be implemented).

use crate::error::{PipeError, Result};

#[derive(clap::Args)]
pub struct StatusArgs {}

pub fn run(_args: StatusArgs) -> Result<i32> {
    Err(PipeError::Failed(
        "`pipe status` is not implemented yet".into(),
    ))
}
