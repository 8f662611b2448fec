//! `pipe score`: tokens, total NLL and perplexity of a text file under a checkpoint. Each
//! non-empty line is a document, framed `<sos> … <eos>` and scored in windows of `context`
//! tokens that share one token (see `crate::decode`). Words missing from the vocabulary and
//! documents longer than the context are reported on stderr.

use super::style;
use crate::decode::{score_documents, with_threads};
use crate::error::{PipeError, Result};
use crate::text::prompt::{encode_reporting, list_words};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct ScoreArgs {
    /// Checkpoint (`epoch_N.safetensors` with its `epoch_N.json` sidecar).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// The `vocab.json` the checkpoint was trained with (default: found from the sidecar's
    /// vocab_blake3, beside the checkpoint or in the project's store).
    #[arg(long)]
    pub vocab: Option<PathBuf>,
    /// Text file: each non-empty line is one document.
    #[arg(long)]
    pub text: PathBuf,
    /// Threads (default: all available; at most 4 per core).
    #[arg(long, value_parser = super::threads_arg, allow_negative_numbers = true)]
    pub threads: Option<usize>,
}

pub fn run(a: ScoreArgs) -> Result<i32> {
    if let Some(why) = crate::input_file::not_a_file(&a.text) {
        return Err(PipeError::usage(format!(
            "text {}: {why}",
            a.text.display()
        )));
    }
    let m = super::model_files::load(&a.checkpoint, a.vocab.as_deref(), |_| {
        crate::decode::memory::Workload::scoring()
    })?;
    let text = std::fs::read_to_string(&a.text)
        .map_err(|e| PipeError::usage(format!("{}: cannot read: {e}", a.text.display())))?;
    let mut unknown: Vec<String> = Vec::new();
    let docs: Vec<Vec<u32>> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (ids, unk) = encode_reporting(&m.vocab, l);
            for w in unk {
                if !unknown.contains(&w) {
                    unknown.push(w);
                }
            }
            ids
        })
        .collect();
    if !unknown.is_empty() {
        let n = unknown.len();
        eprintln!(
            "{} {}: {n} distinct word{} not in the vocabulary, scored as <unk>: {}",
            style::warn("warning:"),
            a.text.display(),
            if n == 1 { " is" } else { "s are" },
            list_words(&unknown, 10)
        );
    }
    let context = m.ck.weights.config.context;
    // A framed document is `<sos>` + words + `<eos>`.
    let long = docs.iter().filter(|d| d.len() + 2 > context).count();
    if long > 0 {
        eprintln!(
            "{} {}: {long} of {} documents are longer than the model's context of {context} \
             tokens; each is scored whole, in windows of {context} tokens sharing one token",
            style::note("note:"),
            a.text.display(),
            docs.len()
        );
    }
    let threads = a
        .threads
        .unwrap_or_else(crate::decode::default_threads)
        .max(1);
    let s = with_threads(threads, || {
        score_documents(
            &m.ck.weights,
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
