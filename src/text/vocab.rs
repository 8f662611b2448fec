//! The vocabulary: specials `<sos>`=0, `<eos>`=1, `<pad>`=2, `<unk>`=3, then words; stored as
//! `vocab.json` = `{"tokens": [...]}` in id order.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub const SOS: u32 = 0;
pub const EOS: u32 = 1;
pub const PAD: u32 = 2;
pub const UNK: u32 = 3;
pub const SPECIALS: [&str; 4] = ["<sos>", "<eos>", "<pad>", "<unk>"];

#[derive(Debug, thiserror::Error)]
pub enum VocabError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a vocabulary file: {msg}")]
    Format { path: PathBuf, msg: String },
}

#[derive(Serialize, Deserialize)]
struct VocabFile {
    tokens: Vec<String>,
}

/// Token strings by id, and the reverse index.
#[derive(Debug, Clone, PartialEq)]
pub struct Vocab {
    tokens: Vec<String>,
    index: HashMap<String, u32>,
}

impl Vocab {
    /// Builds a vocabulary from the words after the specials (the specials are prepended).
    pub fn from_words(words: impl IntoIterator<Item = String>) -> Self {
        let tokens: Vec<String> = SPECIALS
            .iter()
            .map(|s| s.to_string())
            .chain(words)
            .collect();
        Self::from_tokens(tokens).expect("specials first")
    }

    /// From a full token list, which must start with the four specials in order.
    pub fn from_tokens(tokens: Vec<String>) -> Result<Self, String> {
        if tokens.len() < SPECIALS.len() || tokens[..4] != SPECIALS.map(String::from) {
            return Err(format!(
                "the first tokens must be {SPECIALS:?}, found {:?}",
                &tokens[..tokens.len().min(4)]
            ));
        }
        let mut index = HashMap::with_capacity(tokens.len());
        for (i, t) in tokens.iter().enumerate() {
            if index.insert(t.clone(), i as u32).is_some() {
                return Err(format!("token {t:?} appears twice"));
            }
        }
        Ok(Vocab { tokens, index })
    }

    pub fn load(path: &Path) -> Result<Self, VocabError> {
        let text = std::fs::read_to_string(path).map_err(|source| VocabError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let f: VocabFile = serde_json::from_str(&text).map_err(|e| VocabError::Format {
            path: path.to_path_buf(),
            msg: e.to_string(),
        })?;
        Self::from_tokens(f.tokens).map_err(|msg| VocabError::Format {
            path: path.to_path_buf(),
            msg,
        })
    }

    /// The JSON text of `vocab.json`.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&VocabFile {
            tokens: self.tokens.clone(),
        })
        .expect("serialises")
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    pub fn tokens(&self) -> &[String] {
        &self.tokens
    }

    /// Id of a word, `<unk>` when absent.
    pub fn id(&self, word: &str) -> u32 {
        self.index.get(word).copied().unwrap_or(UNK)
    }

    pub fn get(&self, word: &str) -> Option<u32> {
        self.index.get(word).copied()
    }

    /// Token string of an id (`<unk>` for an id out of range).
    pub fn token(&self, id: u32) -> &str {
        self.tokens
            .get(id as usize)
            .map(String::as_str)
            .unwrap_or(SPECIALS[UNK as usize])
    }

    /// Tokenizes `text` with [`super::words`] and maps to ids (no `<sos>`/`<eos>` framing).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        super::words(text).map(|w| self.id(&w)).collect()
    }

    /// Joins token strings with spaces, stopping at nothing (specials are printed as themselves).
    pub fn decode(&self, ids: &[u32]) -> String {
        ids.iter()
            .map(|&i| self.token(i))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specials_come_first_and_unknown_maps_to_unk() {
        let v = Vocab::from_words(["the".to_string(), "cat".to_string()]);
        assert_eq!(v.len(), 6);
        assert_eq!(v.id("the"), 4);
        assert_eq!(v.id("dog"), UNK);
        assert_eq!(v.encode("The cat, the DOG"), vec![4, 5, 4, UNK]);
        assert_eq!(v.decode(&[SOS, 5]), "<sos> cat");
        let back = Vocab::from_tokens(v.tokens().to_vec()).unwrap();
        assert_eq!(back, v);
        assert!(Vocab::from_tokens(vec!["a".into()]).is_err());
    }
}
