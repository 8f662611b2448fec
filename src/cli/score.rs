//! `pipe score`: tokens, total NLL and perplexity of a text file under a checkpoint. Each
//! non-empty line is a document, framed `<sos> … <eos>` and scored in windows of `context`
//! tokens that share one token (see `crate::decode`).

use crate::decode::{load_model, score_documents, with_threads};
use crate::error::{PipeError, Result};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct ScoreArgs {
    /// Checkpoint (`epoch_N.safetensors` with its `epoch_N.json` sidecar).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// The `vocab.json` the checkpoint was trained with.
    #[arg(long)]
    pub vocab: PathBuf,
    /// Text file: each non-empty line is one document.
    #[arg(long)]
    pub text: PathBuf,
    /// Threads (default: all available).
    #[arg(long)]
    pub threads: Option<usize>,
}

pub fn run(a: ScoreArgs) -> Result<i32> {
    let (ck, vocab) =
        load_model(&a.checkpoint, &a.vocab).map_err(|e| PipeError::Config(e.to_string()))?;
    let text = std::fs::read_to_string(&a.text)
        .map_err(|e| PipeError::Config(format!("{}: cannot read: {e}", a.text.display())))?;
    let docs: Vec<Vec<u32>> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| vocab.encode(l))
        .collect();
    let threads = a.threads.unwrap_or_else(crate::decode::default_threads);
    let s = with_threads(threads, || {
        score_documents(
            &ck.weights,
            docs.iter().map(|d| d.as_slice()),
            threads,
            |_| {},
        )
    });
    let out = serde_json::json!({
        "tokens": s.tokens,
        "nll": s.nll,
        "perplexity": crate::metrics::perplexity(s.nll, s.tokens),
    });
    println!("{}", serde_json::to_string_pretty(&out).expect("json"));
    Ok(0)
}
