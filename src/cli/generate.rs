//! `pipe generate` (scaffold: to be implemented).

use crate::error::{PipeError, Result};

#[derive(clap::Args)]
pub struct GenerateArgs {}

pub fn run(_args: GenerateArgs) -> Result<i32> {
    Err(PipeError::Failed(
        "`pipe generate` is not implemented yet".into(),
    ))
}
