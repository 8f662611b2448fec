//! Batched generation of continuations with a sampler, through the KV cache or by recomputing
//! the uncached forward pass every step (the two give the same tokens).

use super::decoder::Decoder;
use super::forward::last_logits_with;
use super::model::Model;
use super::sample::Sampler;

/// Options shared by both generation paths.
#[derive(Debug, Clone, Default)]
pub struct GenOptions {
    /// Stop a sequence after it produced `<eos>` (the `<eos>` is kept in its output).
    pub stop_at_eos: bool,
    /// Token ids never produced (e.g. `<pad>`, `<sos>`).
    pub banned: Vec<u32>,
}

/// Called with (step, logits `[batch, V]`) before each token is chosen.
pub type LogitsHook<'a> = &'a mut dyn FnMut(usize, &[f32]);

#[allow(clippy::too_many_arguments)]
fn pick(
    logits: &[f32],
    v: usize,
    out: &mut [Vec<u32>],
    done: &mut [bool],
    next: &mut [u32],
    max_new: &[usize],
    sampler: &mut Sampler,
    opts: &GenOptions,
) {
    for b in 0..out.len() {
        if done[b] {
            next[b] = crate::text::EOS;
            continue;
        }
        let tok = sampler.sample(&logits[b * v..(b + 1) * v], &opts.banned);
        out[b].push(tok);
        next[b] = tok;
        if (opts.stop_at_eos && tok == crate::text::EOS) || out[b].len() >= max_new[b] {
            done[b] = true;
        }
    }
}

/// Generates up to `max_new[b]` tokens after each prompt (all prompts the same length) with
/// the cached decoder (its capacity must be at least `prompts.len()`). Returns the new tokens
/// of each sequence. Sequences draw from `sampler` in batch order at every step.
pub fn generate_cached(
    dec: &mut Decoder,
    prompts: &[&[u32]],
    max_new: &[usize],
    sampler: &mut Sampler,
    opts: &GenOptions,
    mut hook: Option<LogitsHook>,
) -> Vec<Vec<u32>> {
    let v = dec.weights().config.vocab_size;
    let n = prompts.len();
    let mut out: Vec<Vec<u32>> = max_new.iter().map(|&m| Vec::with_capacity(m)).collect();
    let mut done: Vec<bool> = max_new.iter().map(|&m| m == 0).collect();
    let mut next = vec![0u32; n];
    if done.iter().all(|&d| d) {
        return out;
    }
    dec.prefill(prompts);
    let mut step = 0;
    loop {
        if let Some(h) = hook.as_mut() {
            h(step, dec.logits());
        }
        pick(
            dec.logits(),
            v,
            &mut out,
            &mut done,
            &mut next,
            max_new,
            sampler,
            opts,
        );
        if done.iter().all(|&d| d) {
            return out;
        }
        dec.step(&next);
        step += 1;
    }
}

/// The same as [`generate_cached`] without a cache: every step recomputes the forward pass
/// over each sequence's trailing receptive field.
pub fn generate_uncached(
    model: &Model,
    prompts: &[&[u32]],
    max_new: &[usize],
    sampler: &mut Sampler,
    opts: &GenOptions,
    mut hook: Option<LogitsHook>,
) -> Vec<Vec<u32>> {
    let v = model.config().vocab_size;
    let n = prompts.len();
    let mut out: Vec<Vec<u32>> = max_new.iter().map(|&m| Vec::with_capacity(m)).collect();
    let mut done: Vec<bool> = max_new.iter().map(|&m| m == 0).collect();
    let mut next = vec![0u32; n];
    let mut seqs: Vec<Vec<u32>> = prompts.iter().map(|p| p.to_vec()).collect();
    let mut step = 0;
    while !done.iter().all(|&d| d) {
        let refs: Vec<&[u32]> = seqs.iter().map(|s| s.as_slice()).collect();
        let logits = last_logits_with(model, &refs);
        if let Some(h) = hook.as_mut() {
            h(step, &logits);
        }
        pick(
            &logits, v, &mut out, &mut done, &mut next, max_new, sampler, opts,
        );
        for (s, &t) in seqs.iter_mut().zip(&next) {
            s.push(t);
        }
        step += 1;
    }
    out
}
