//! The texts every decoding method wrote for the same prompts, side by side: one table per
//! held-out story (its prompt, the reference continuation, then each method's output), read
//! from the `outputs.json` of the `beam-eval` stages (sampling and every beam width).

use super::Builder;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Deserialize)]
struct Outputs {
    label: String,
    outputs: Vec<Text>,
}

#[derive(Deserialize)]
struct Text {
    doc: u64,
    prompt: String,
    reference: String,
    output: String,
}

impl Builder<'_> {
    pub(super) fn beam_texts(&mut self) {
        let mut methods: Vec<(String, Vec<Text>)> = Vec::new();
        for up in self.of("beam-eval") {
            let Ok(t) = std::fs::read_to_string(up.dir.join("outputs.json")) else {
                continue;
            };
            if let Ok(o) = serde_json::from_str::<Outputs>(&t) {
                methods.push((o.label, o.outputs));
            }
        }
        if methods.is_empty() {
            return;
        }
        // doc → (prompt, reference, output per method).
        let mut by_doc: BTreeMap<u64, (String, String, Vec<String>)> = BTreeMap::new();
        for (i, (_, texts)) in methods.iter().enumerate() {
            for t in texts {
                let e = by_doc.entry(t.doc).or_insert_with(|| {
                    (
                        t.prompt.clone(),
                        t.reference.clone(),
                        vec![String::new(); methods.len()],
                    )
                });
                e.2[i] = t.output.clone();
            }
        }
        self.page.heading("The same prompts, every method");
        let shared = methods.iter().all(|(_, t)| t.len() == by_doc.len());
        self.page.note(if shared {
            "Every method continued the same held-out stories (drawn from the pipeline seed and \
             the data), so the BLEU and speed above compare like with like."
        } else {
            "These methods did not all continue the same stories (different prompt counts or \
             lengths): compare their BLEU with care."
        });
        for (doc, (prompt, reference, outs)) in by_doc {
            // The start-of-story token every prompt begins with says nothing to a reader.
            let shown = prompt
                .strip_prefix("<sos>")
                .map_or(prompt.as_str(), str::trim_start);
            self.page
                .heading(&format!("Story {doc}: \u{201c}{shown} \u{2026}\u{201d}"));
            let mut rows = vec![vec!["reference".to_string(), reference]];
            for ((label, _), out) in methods.iter().zip(outs) {
                rows.push(vec![label.clone(), out]);
            }
            self.page.table(&["method", "continuation"], &rows);
        }
    }
}
