//! Encoding text a user typed (a prompt, a file to score) and reporting what the model cannot
//! see: the words the vocabulary lacks (they become `<unk>`) and, for a prompt, the words cut
//! from its front so that it fits the model's context.

use super::{Vocab, SOS, UNK};

/// Ids of `text` and the distinct words that mapped to `<unk>`, in order of first appearance.
pub fn encode_reporting(vocab: &Vocab, text: &str) -> (Vec<u32>, Vec<String>) {
    let mut ids = Vec::new();
    let mut unknown: Vec<String> = Vec::new();
    for w in super::words(text) {
        let id = vocab.id(&w);
        if id == UNK && !unknown.contains(&w) {
            unknown.push(w);
        }
        ids.push(id);
    }
    (ids, unknown)
}

/// A prompt ready for decoding: `<sos>` followed by at most `context − 1` word ids.
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    /// `<sos>` and the kept words' ids.
    pub ids: Vec<u32>,
    /// Distinct words of the prompt that are not in the vocabulary (mapped to `<unk>`).
    pub unknown: Vec<String>,
    /// Words of the prompt, before cutting.
    pub words: usize,
    /// Words cut from the front so that `<sos>` + the rest fit the context.
    pub dropped: usize,
}

/// Encodes a prompt: `<sos>` then its words, keeping only the last `context − 1` words when it
/// is longer (the model was trained on windows that start with `<sos>`, so the start of the
/// window is kept and the oldest words go).
pub fn encode_prompt(vocab: &Vocab, text: &str, context: usize) -> Prompt {
    let (ids, unknown) = encode_reporting(vocab, text);
    let keep = context.saturating_sub(1).max(1);
    let dropped = ids.len().saturating_sub(keep);
    let mut out = Vec::with_capacity(ids.len() - dropped + 1);
    out.push(SOS);
    out.extend_from_slice(&ids[dropped..]);
    Prompt {
        ids: out,
        unknown,
        words: ids.len(),
        dropped,
    }
}

/// `a, b, c` for at most `max` words, then `and N more`.
pub fn list_words(words: &[String], max: usize) -> String {
    let mut s = words
        .iter()
        .take(max)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if words.len() > max {
        s.push_str(&format!(" and {} more", words.len() - max));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab() -> Vocab {
        Vocab::from_words(["the", "cat", "sat"].map(String::from))
    }

    #[test]
    fn unknown_words_are_named_once_in_order() {
        let (ids, unk) = encode_reporting(&vocab(), "The zebra sat, the ZEBRA and quux");
        assert_eq!(ids, vec![4, UNK, 6, 4, UNK, UNK, UNK]);
        assert_eq!(unk, vec!["zebra", "and", "quux"]);
    }

    #[test]
    fn long_prompt_keeps_sos_and_the_last_words() {
        let p = encode_prompt(&vocab(), "cat sat the cat sat", 4);
        assert_eq!(p.ids, vec![SOS, 4, 5, 6]);
        assert_eq!((p.words, p.dropped), (5, 2));
        let short = encode_prompt(&vocab(), "the cat", 4);
        assert_eq!(short.ids, vec![SOS, 4, 5]);
        assert_eq!(short.dropped, 0);
        assert!(short.unknown.is_empty());
    }

    #[test]
    fn list_is_capped() {
        let w: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        assert_eq!(list_words(&w, 2), "a, b and 1 more");
        assert_eq!(list_words(&w, 5), "a, b, c");
    }
}
