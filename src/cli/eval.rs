//! `pipe eval ...` (scaffold: to be implemented).

use crate::error::{PipeError, Result};

#[derive(clap::Subcommand)]
pub enum EvalCommand {
    /// Corpus BLEU (sacreBLEU definition) and the seed's mean sentence BLEU.
    Bleu {},
}

pub fn run(_cmd: EvalCommand) -> Result<i32> {
    Err(PipeError::Failed(
        "`pipe eval` is not implemented yet".into(),
    ))
}
