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

/// The seed of the held-out prompts that every decoding stage of a pipeline shares (sampling,
/// every beam width, infer's samples): derived from the pipeline seed and the validation
/// split's content, never from the stage id, so that every method continues the same stories.
pub(crate) fn prompt_seed(pipeline_seed: u64, valid: &TokenFile) -> u64 {
    let mut h = blake3::Hasher::new();
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 16);
    let words = valid
        .offsets
        .iter()
        .copied()
        .chain(valid.ids.iter().map(|&i| u64::from(i)));
    for w in words {
        buf.extend_from_slice(&w.to_le_bytes());
        if buf.len() >= 1 << 16 {
            h.update(&buf);
            buf.clear();
        }
    }
    h.update(&buf);
    let data = h.finalize().to_hex();
    crate::seed::derive_seed(pipeline_seed, "held-out prompts", data.as_str())
}

/// Picks `n` documents with at least one token after the prompt and cuts them (sorted by
/// index). Every document of the split is put in one seeded random order and the first `n`
/// long enough are taken: two stages with the same seed share their documents (all of them
/// with the same `prompt_len`; with a shorter `prompt_len` and at least as many documents, the
/// other's are among them in practice).
pub(crate) fn pick_examples(
    valid: &TokenFile,
    n: usize,
    prompt_len: usize,
    context: usize,
    seed: u64,
) -> anyhow::Result<Vec<Example>> {
    let mut order: Vec<usize> = (0..valid.n_docs()).collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    order.shuffle(&mut rng);
    let long_enough = |d: &usize| valid.doc(*d).len() >= prompt_len;
    let mut ok: Vec<usize> = order.into_iter().filter(long_enough).take(n).collect();
    anyhow::ensure!(
        ok.len() >= n,
        "the validation split has only {} documents of at least {prompt_len} tokens; {n} needed",
        ok.len()
    );
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
