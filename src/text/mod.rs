//! Text handling shared by every stage: the word tokenizer (lower-cased Unicode `\w+`), the
//! vocabulary with its special tokens, the on-disk token id files, streaming corpus readers and
//! vocabulary building.

pub mod corpus;
pub mod ids;
pub mod prompt;
pub mod tokenize;
pub mod vocab;

pub use corpus::{CorpusError, DocReader, Format};
pub use ids::TokenFile;
pub use prompt::{encode_prompt, encode_reporting, Prompt};
pub use tokenize::{tokenize_corpus, CorpusSpec, TokenizeOptions, TokenizeResult, ValidSource};
pub use vocab::{Vocab, EOS, PAD, SOS, SPECIALS, UNK};

use std::sync::OnceLock;

pub(crate) fn word_re() -> &'static regex::Regex {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    RE.get_or_init(|| regex::Regex::new(r"\w+").expect("valid regex"))
}

/// The seed's tokenizer rule: lower-cased `\w+` words (Unicode word characters).
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    word_re().find_iter(text).map(|m| m.as_str().to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_lowercases_and_splits_on_non_word() {
        let w: Vec<String> = words("Once upon a time, Lily's dog—Max!  Ça va? x_y 42").collect();
        assert_eq!(
            w,
            vec!["once", "upon", "a", "time", "lily", "s", "dog", "max", "ça", "va", "x_y", "42"]
        );
    }
}
