//! `samples.md` of the `infer` stage: the headline figures and, per held-out document, its
//! prompt, reference continuation, generated continuation and continuation perplexity.

use crate::stage::eval_inputs::{md_cell, Example};
use crate::text::Vocab;
use std::path::Path;

/// The headline figures the page starts with.
pub(super) struct Summary {
    pub bleu: f64,
    pub bleu_sentence_mean: f64,
    pub perplexity: f64,
    pub perplexity_seed: f64,
}

/// Writes `out/samples.md`; `refs`, `hyps` and `perp_seed` are per example.
#[allow(clippy::too_many_arguments)]
pub(super) fn write_samples(
    out: &Path,
    (prompt_len, temperature): (usize, f32),
    vocab: &Vocab,
    ex: &[Example],
    refs: &[String],
    hyps: &[String],
    perp_seed: &[f64],
    s: &Summary,
) -> anyhow::Result<()> {
    let mut md = format!(
        "# Samples ({} held-out documents, prompt {} tokens incl. <sos>, temperature {})\n\n\
         Corpus BLEU {:.2} (sacreBLEU), mean sentence BLEU {:.4}, validation perplexity {:.3}, \
         mean continuation perplexity {:.3}.\n\n\
         | doc | prompt | reference | generated | ppl |\n|---|---|---|---|---|\n",
        ex.len(),
        prompt_len,
        temperature,
        s.bleu,
        s.bleu_sentence_mean,
        s.perplexity,
        s.perplexity_seed
    );
    for (i, e) in ex.iter().enumerate() {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {:.2} |\n",
            e.doc,
            md_cell(&vocab.decode(&e.prompt)),
            md_cell(&refs[i]),
            md_cell(&hyps[i]),
            perp_seed[i]
        ));
    }
    crate::stage::write_file(out.join("samples.md"), md)
}
