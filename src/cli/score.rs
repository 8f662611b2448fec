//! `pipe score` (scaffold: to be implemented).

use crate::error::{PipeError, Result};

#[derive(clap::Args)]
pub struct ScoreArgs {}

pub fn run(_args: ScoreArgs) -> Result<i32> {
    Err(PipeError::Failed(
        "`pipe score` is not implemented yet".into(),
    ))
}
