//! `pipe eval bleu`: corpus BLEU (sacreBLEU definition) and the seed's mean sentence BLEU of a
//! hypothesis file against one or more reference files, one segment per line.

use crate::error::{PipeError, Result};
use crate::metrics::{corpus_bleu, sentence_mean, BleuOptions, Tokenize};
use std::path::{Path, PathBuf};

#[derive(clap::Subcommand)]
pub enum EvalCommand {
    /// Corpus BLEU (sacreBLEU definition) and the seed's mean sentence BLEU.
    Bleu(BleuArgs),
}

#[derive(clap::Args, Debug)]
pub struct BleuArgs {
    /// Hypotheses, one segment per line.
    #[arg(long)]
    pub hyp: PathBuf,
    /// References, one segment per line (repeat for several reference streams).
    #[arg(long = "ref", required = true)]
    pub refs: Vec<PathBuf>,
    /// Tokenizer: `13a` (sacreBLEU's default) or `none`.
    #[arg(long, default_value = "13a")]
    pub tokenize: String,
    /// Lower-case before tokenizing.
    #[arg(long)]
    pub lowercase: bool,
}

fn read_lines(p: &Path) -> Result<Vec<String>> {
    // A folder, FIFO or device is named as what it is, never read (reading /dev/zero would
    // never end).
    if let Some(why) = crate::input_file::not_a_file(p) {
        return Err(PipeError::usage(format!("{}: {why}", p.display())));
    }
    let text = std::fs::read_to_string(p)
        .map_err(|e| PipeError::usage(format!("{}: cannot read: {e}", p.display())))?;
    Ok(text.lines().map(String::from).collect())
}

pub fn run(cmd: EvalCommand) -> Result<i32> {
    match cmd {
        EvalCommand::Bleu(a) => bleu(a),
    }
}

fn bleu(a: BleuArgs) -> Result<i32> {
    let tokenize: Tokenize = a
        .tokenize
        .parse()
        .map_err(|e| PipeError::usage(format!("--tokenize: {e}")))?;
    let hyps = read_lines(&a.hyp)?;
    let mut refs = Vec::new();
    for p in &a.refs {
        let lines = read_lines(p)?;
        if lines.len() != hyps.len() {
            return Err(PipeError::usage(format!(
                "{} has {} lines but {} has {}: one segment per line in every file",
                p.display(),
                lines.len(),
                a.hyp.display(),
                hyps.len()
            )));
        }
        refs.push(lines);
    }
    let opts = BleuOptions {
        tokenize,
        lowercase: a.lowercase,
    };
    let s = corpus_bleu(&hyps, &refs, &opts).map_err(|e| PipeError::usage(e.to_string()))?;
    let sm = sentence_mean(&hyps, &refs[0]);
    let out = serde_json::json!({
        "score": s.score,
        "precisions": s.precisions,
        "bp": s.bp,
        "ratio": s.ratio,
        "hyp_len": s.hyp_len,
        "ref_len": s.ref_len,
        "sentence_mean": sm,
    });
    println!("{}", serde_json::to_string_pretty(&out).expect("json"));
    Ok(0)
}
