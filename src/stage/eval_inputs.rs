//! The inputs the evaluation kinds (infer, kv-eval, beam-eval) share: the last-epoch checkpoint
//! of the `train` upstream with the `tokenize` upstream's vocabulary and validation split, and
//! held-out documents cut into prompts and reference continuations.

use super::StageCtx;
use crate::decode::frame;
use crate::model::Checkpoint;
use crate::text::{TokenFile, Vocab, EOS};
use anyhow::Context;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::path::PathBuf;

/// What the evaluation kinds read from their upstreams.
pub(crate) struct LmInputs {
    pub ckpt: Checkpoint,
    pub ckpt_path: PathBuf,
    pub vocab: Vocab,
    pub valid: TokenFile,
}

/// Loads the last-epoch checkpoint of the `train` upstream and the vocabulary and validation
/// split of the `tokenize` upstream, refusing a vocabulary that is not the checkpoint's, and a
/// decoding workload `work(config)` that cannot fit in the available memory (checked before the
/// weights are read).
pub(crate) fn load_inputs(
    ctx: &StageCtx,
    work: impl FnOnce(&crate::model::ModelConfig) -> crate::decode::memory::Workload,
) -> anyhow::Result<LmInputs> {
    let train = ctx.one_upstream("train")?;
    let epoch = train
        .params
        .get("epoch")
        .and_then(|e| e.as_u64())
        .with_context(|| format!("upstream `{}` has no `epoch` parameter", train.id))?;
    let ckpt_path = train.checkpoints.join(format!("epoch_{epoch}.safetensors"));
    let tok = ctx.one_upstream("tokenize")?;
    let vocab_path = tok.results.join("vocab.json");
    let (ckpt, vocab) = crate::decode::load_model(&ckpt_path, &vocab_path, work)
        .with_context(|| format!("loading {}", ckpt_path.display()))?;
    let valid_base = tok.results.join("valid");
    let valid = TokenFile::load(&valid_base)
        .with_context(|| format!("reading {}.ids/.offsets", valid_base.display()))?;
    Ok(LmInputs {
        ckpt,
        ckpt_path,
        vocab,
        valid,
    })
}

/// A held-out document cut into a prompt (`<sos>` + its first `prompt_len − 1` tokens) and the
/// reference continuation (the rest of the framed document, truncated to `context` tokens,
/// without `<eos>`).
pub(crate) struct Example {
    pub doc: usize,
    pub framed: Vec<u32>,
    pub prompt: Vec<u32>,
    pub reference: Vec<u32>,
}

/// Picks `n` documents with at least one token after the prompt, in a seeded random order
/// (sorted by index), and cuts them.
pub(crate) fn pick_examples(
    valid: &TokenFile,
    n: usize,
    prompt_len: usize,
    context: usize,
    seed: u64,
) -> anyhow::Result<Vec<Example>> {
    let mut ok: Vec<usize> = (0..valid.n_docs())
        .filter(|&d| valid.doc(d).len() >= prompt_len)
        .collect();
    anyhow::ensure!(
        ok.len() >= n,
        "the validation split has only {} documents of at least {prompt_len} tokens; {n} needed",
        ok.len()
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    ok.shuffle(&mut rng);
    ok.truncate(n);
    ok.sort_unstable();
    Ok(ok
        .into_iter()
        .map(|d| {
            let mut framed = frame(valid.doc(d));
            framed.truncate(context.max(prompt_len + 1));
            let prompt = framed[..prompt_len].to_vec();
            let reference: Vec<u32> = framed[prompt_len..]
                .iter()
                .copied()
                .filter(|&t| t != EOS)
                .collect();
            Example {
                doc: d,
                framed,
                prompt,
                reference,
            }
        })
        .collect())
}

/// Token text without a trailing `<eos>`.
pub(crate) fn text_of(vocab: &Vocab, toks: &[u32]) -> String {
    let t = match toks.last() {
        Some(&EOS) => &toks[..toks.len() - 1],
        _ => toks,
    };
    vocab.decode(t)
}

/// Escapes `|` for Markdown table cells.
pub(crate) fn md_cell(s: &str) -> String {
    s.replace('|', "\\|")
}
