//! `pipe generate`: continue prompts with a checkpoint, by sampling (temperature, top-k,
//! top-p) or beam search. Prompts come from `--prompt`, else from standard input (one per
//! line), or are asked for one by one when standard input is a terminal. The vocabulary is
//! found from the checkpoint's sidecar unless `--vocab` is given (see [`super::model_files`]).

use super::style;
use crate::decode::memory::Workload;
use crate::decode::{
    beam_search, generate_cached, with_threads, BeamConfig, Decoder, GenOptions, Sampler,
    SamplerConfig,
};
use crate::error::{PipeError, Result};
use crate::model::Weights;
use crate::text::{encode_prompt, Prompt, Vocab, EOS, PAD, SOS};
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

/// A whole number that may be typed negative, so that `-1` is a range error naming the flag
/// rather than "unexpected argument".
fn whole(s: &str) -> std::result::Result<usize, String> {
    match s.trim().parse::<i128>() {
        Ok(v) if v < 0 => Err(format!("must be >= 0, got {v}")),
        Ok(v) => usize::try_from(v).map_err(|_| format!("{v} is too large")),
        Err(_) => Err(format!("expected a whole number, got {s:?}")),
    }
}

#[derive(clap::Args, Debug)]
pub struct GenerateArgs {
    /// Checkpoint (`epoch_N.safetensors` with its `epoch_N.json` sidecar).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// The `vocab.json` the checkpoint was trained with (default: found from the sidecar's
    /// vocab_blake3, beside the checkpoint or in the project's store).
    #[arg(long)]
    pub vocab: Option<PathBuf>,
    /// The prompt text (tokenized like the training data; `<sos>` is prepended). Without it,
    /// prompts are read from standard input, one per line (asked for on a terminal).
    #[arg(long, allow_hyphen_values = true)]
    pub prompt: Option<String>,
    /// Continuations per prompt (samples, or the best hypotheses of the beam).
    #[arg(short = 'n', long = "samples", default_value = "1", value_parser = whole, allow_negative_numbers = true)]
    pub samples: usize,
    /// Beam search of this width instead of sampling.
    #[arg(long, conflicts_with_all = ["temperature", "top_k", "top_p"], value_parser = whole, allow_negative_numbers = true)]
    pub beam: Option<usize>,
    /// Length penalty exponent for beam search (score / length^alpha).
    #[arg(
        long,
        default_value_t = 0.6,
        requires = "beam",
        allow_negative_numbers = true
    )]
    pub alpha: f32,
    /// Sampling temperature (0, or anything below 1e-6, = greedy).
    #[arg(long, default_value_t = 0.8, allow_negative_numbers = true)]
    pub temperature: f32,
    /// Keep only the k most likely tokens (0 = off).
    #[arg(long, default_value = "0", value_parser = whole, allow_negative_numbers = true)]
    pub top_k: usize,
    /// Keep the smallest set of tokens holding this probability mass (1 = off).
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    pub top_p: f32,
    /// Maximum number of new tokens.
    #[arg(long, default_value = "50", value_parser = whole, allow_negative_numbers = true)]
    pub max_new: usize,
    /// Seed of the sampler.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Threads (default: all available; at most 4 per core).
    #[arg(long, value_parser = super::threads_arg, allow_negative_numbers = true)]
    pub threads: Option<usize>,
    /// One JSON object per line for each continuation: prompt, sample, continuation, tokens
    /// (the continuation's ids), stopped_at_eos, unknown (words mapped to <unk>), dropped_words.
    #[arg(long)]
    pub json: bool,
}

/// How continuations are produced, checked before the model is loaded.
enum Mode {
    Beam(BeamConfig),
    Sample(SamplerConfig),
}

fn mode(a: &GenerateArgs) -> Result<Mode> {
    if a.samples == 0 {
        return Err(PipeError::usage("-n must be at least 1"));
    }
    let banned = vec![SOS, PAD];
    if let Some(k) = a.beam {
        if k == 0 {
            return Err(PipeError::usage("--beam must be at least 1"));
        }
        if !a.alpha.is_finite() || a.alpha < 0.0 {
            return Err(PipeError::usage(format!(
                "--alpha must be a finite number >= 0, got {}",
                a.alpha
            )));
        }
        if a.samples > k {
            return Err(PipeError::usage(format!(
                "-n {} asks for more hypotheses than --beam {k} keeps; use -n <= {k}",
                a.samples
            )));
        }
        return Ok(Mode::Beam(BeamConfig {
            width: k,
            max_new: a.max_new,
            alpha: a.alpha,
            eos: Some(EOS),
            banned,
        }));
    }
    let sc = SamplerConfig {
        temperature: a.temperature,
        top_k: a.top_k,
        top_p: a.top_p,
    };
    sc.validate()
        .map_err(|e| PipeError::usage(format!("--{}", e.replace('_', "-"))))?;
    Ok(Mode::Sample(sc))
}

/// `samples` continuations of `prompt` (each may end with `<eos>`).
fn continuations(
    w: &Weights,
    prompt: &[u32],
    mode: &Mode,
    a: &GenerateArgs,
    threads: usize,
) -> Vec<Vec<u32>> {
    let n = a.samples;
    with_threads(threads, || match mode {
        Mode::Beam(cfg) => {
            let mut dec = Decoder::new(w, cfg.width, threads);
            beam_search(&mut dec, prompt, cfg)
                .into_iter()
                .take(n)
                .map(|h| h.tokens)
                .collect()
        }
        Mode::Sample(sc) => {
            let mut dec = Decoder::new(w, n, threads);
            let mut s = Sampler::new(sc.clone(), a.seed);
            let opts = GenOptions {
                stop_at_eos: true,
                banned: vec![SOS, PAD],
            };
            let prompts = vec![prompt; n];
            generate_cached(&mut dec, &prompts, &vec![a.max_new; n], &mut s, &opts, None)
        }
    })
}

/// One line of `--json` output, fields in this order.
#[derive(serde::Serialize)]
struct JsonRow<'a> {
    prompt: &'a str,
    sample: usize,
    continuation: String,
    tokens: &'a [u32],
    stopped_at_eos: bool,
    unknown: &'a [String],
    dropped_words: usize,
}

/// The warning and note lines for one prompt (on stderr).
fn report_prompt(p: &Prompt, label: &str, context: usize) {
    if !p.unknown.is_empty() {
        let n = p.unknown.len();
        eprintln!(
            "{} {label}{n} word{} not in the vocabulary, read as <unk>: {}",
            style::warn("warning:"),
            if n == 1 { " is" } else { "s are" },
            crate::text::prompt::list_words(&p.unknown, 10)
        );
    }
    if p.dropped > 0 {
        eprintln!(
            "{} {label}{} words do not fit the model's context of {context} tokens; keeping \
             the last {} words (after <sos>), dropping the first {}",
            style::note("note:"),
            p.words,
            p.words - p.dropped,
            p.dropped
        );
    }
}

/// Continues one prompt and prints its continuations.
fn one(
    text: &str,
    label: &str,
    vocab: &Vocab,
    w: &Weights,
    mode: &Mode,
    a: &GenerateArgs,
    threads: usize,
) -> Result<()> {
    let context = w.config.context;
    let p = encode_prompt(vocab, text, context);
    report_prompt(&p, label, context);
    let mut out = std::io::stdout().lock();
    for (i, mut toks) in continuations(w, &p.ids, mode, a, threads)
        .into_iter()
        .enumerate()
    {
        let eos = toks.last() == Some(&EOS);
        if eos {
            toks.pop();
        }
        let line = if a.json {
            serde_json::to_string(&JsonRow {
                prompt: text,
                sample: i,
                continuation: vocab.decode(&toks),
                tokens: &toks,
                stopped_at_eos: eos,
                unknown: &p.unknown,
                dropped_words: p.dropped,
            })
            .expect("serialises")
        } else {
            vocab.decode(&toks)
        };
        writeln!(out, "{line}")
            .and_then(|_| out.flush())
            .map_err(|source| PipeError::Io {
                what: "cannot write to standard output".into(),
                source,
            })?;
    }
    Ok(())
}

fn stdin_error(e: std::io::Error) -> PipeError {
    PipeError::Io {
        what: "cannot read prompts from standard input".into(),
        source: e,
    }
}

pub fn run(a: GenerateArgs) -> Result<i32> {
    let mode = mode(&a)?;
    let threads = a
        .threads
        .unwrap_or_else(crate::decode::default_threads)
        .max(1);
    let stdin = std::io::stdin();
    let interactive = a.prompt.is_none() && stdin.is_terminal();
    // The decoder holds the beam, or the samples of one prompt.
    let work = match &mode {
        Mode::Beam(cfg) => Workload::beam(cfg.width, a.max_new)
            .described(format!("--beam {} with --max-new {}", cfg.width, a.max_new)),
        Mode::Sample(_) => Workload::sample(a.samples, a.max_new)
            .described(format!("-n {} with --max-new {}", a.samples, a.max_new)),
    };
    let m = super::model_files::load(&a.checkpoint, a.vocab.as_deref(), |_| work)?;
    let w = &m.ck.weights;
    if let Some(p) = &a.prompt {
        one(p, "", &m.vocab, w, &mode, &a, threads)?;
        return Ok(0);
    }
    if !interactive {
        // One prompt per non-empty line, each continued as soon as it is read.
        let mut n = 0;
        for l in stdin.lock().lines() {
            let l = l.map_err(stdin_error)?;
            if l.trim().is_empty() {
                continue;
            }
            n += 1;
            one(
                &l,
                &format!("prompt {n}: "),
                &m.vocab,
                w,
                &mode,
                &a,
                threads,
            )?;
        }
        if n == 0 {
            return Err(PipeError::usage(
                "no prompt: give --prompt TEXT, or prompts on standard input, one per line",
            ));
        }
        return Ok(0);
    }
    eprintln!(
        "{}",
        style::note("type a prompt and press Enter; an empty line or Ctrl-D ends")
    );
    let mut lines = stdin.lock().lines();
    loop {
        eprint!("{} ", style::bold(">").stderr());
        let _ = std::io::stderr().flush();
        let Some(line) = lines.next() else {
            eprintln!();
            break;
        };
        let line = line.map_err(stdin_error)?;
        if line.trim().is_empty() {
            break;
        }
        one(&line, "", &m.vocab, w, &mode, &a, threads)?;
    }
    Ok(0)
}
