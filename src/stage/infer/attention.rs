//! The attention maps of the `infer` stage: for each configured sentence, one PNG per layer
//! with every head's attention over the sentence's tokens.

use crate::decode::{forward_with_attention, with_threads};
use crate::model::Weights;
use crate::text::{Vocab, SOS};
use anyhow::Context;
use std::path::Path;

/// Writes `out/attention/layer_<l>_<slug>.png` for each layer of the model over `sentence`
/// (`<sos>` first, cut to the model's context).
pub(super) fn write_maps(
    out: &Path,
    w: &Weights,
    vocab: &Vocab,
    sentence: &str,
    threads: usize,
) -> anyhow::Result<()> {
    let mut toks = vec![SOS];
    toks.extend(vocab.encode(sentence));
    toks.truncate(w.config.context);
    let labels: Vec<String> = toks.iter().map(|&t| vocab.token(t).to_string()).collect();
    let (_, att) = with_threads(threads, || forward_with_attention(w, &toks, 0, threads));
    let sl = slug(sentence);
    for (l, heads) in att.into_iter().enumerate() {
        let path = out.join("attention").join(format!("layer_{l}_{sl}.png"));
        let map = crate::plot::AttentionMap {
            title: format!("layer {l}: \"{sentence}\""),
            tokens: labels.clone(),
            heads,
        };
        crate::plot::attention_map(&path, &map)
            .with_context(|| format!("drawing {}", path.display()))?;
    }
    Ok(())
}

/// A file-name slug of a sentence: lower-cased words joined by `_`, at most 48 characters.
fn slug(s: &str) -> String {
    let mut out = String::new();
    for w in crate::text::words(s) {
        if !out.is_empty() {
            if out.len() + 1 + w.len() > 48 {
                break;
            }
            out.push('_');
        }
        out.push_str(&w);
    }
    if out.is_empty() {
        out.push_str("sentence");
    }
    out
}
