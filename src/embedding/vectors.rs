//! Pretrained word vectors in the word2vec/fastText/GloVe text format: optional `N DIM` header
//! line, then `word v1 … vDIM` per line; plain, gzip (`.gz`) or zip (`.zip`, the first `.vec`/
//! `.txt` entry) compressed, detected by magic bytes. The file is streamed: only the rows of
//! vocabulary words are kept.

use super::Embedding;
use crate::text::{Vocab, PAD};
use rand::SeedableRng;
use rand_distr::Distribution;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum VectorsError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {msg}")]
    Format {
        path: PathBuf,
        line: u64,
        msg: String,
    },
    #[error("{path}: no word vectors found (expected lines `word v1 ... vDIM`)")]
    Empty { path: PathBuf },
}

/// What [`load_vectors`] read.
#[derive(Debug, Clone)]
pub struct LoadedVectors {
    pub embedding: Embedding,
    /// Vector lines in the file.
    pub file_words: u64,
}

/// Builds the `[vocab, dim]` matrix from a vectors file: rows of vocabulary words found in the
/// file (an exact match wins over a case-insensitive one), N(0, 1) rows drawn with `seed` for
/// the others, and a zero row for `<pad>`.
pub fn load_vectors(path: &Path, vocab: &Vocab, seed: u64) -> Result<LoadedVectors, VectorsError> {
    let io = |source| VectorsError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut magic = [0u8; 4];
    let n = File::open(path).map_err(io)?.read(&mut magic).map_err(io)?;
    let magic = &magic[..n];
    if magic.starts_with(&[0x1f, 0x8b]) {
        let f = File::open(path).map_err(io)?;
        let r = BufReader::with_capacity(1 << 20, flate2::read::MultiGzDecoder::new(f));
        read_vectors(r, path, vocab, seed)
    } else if magic.starts_with(b"PK\x03\x04") {
        let f = File::open(path).map_err(io)?;
        let zerr = |e: zip::result::ZipError| VectorsError::Format {
            path: path.to_path_buf(),
            line: 0,
            msg: format!("not a readable zip archive: {e}"),
        };
        let mut z = zip::ZipArchive::new(f).map_err(zerr)?;
        let names: Vec<String> = z.file_names().map(String::from).collect();
        let mut files: Vec<&String> = names.iter().filter(|n| !n.ends_with('/')).collect();
        files.sort();
        let pick = files
            .iter()
            .find(|n| {
                let l = n.to_ascii_lowercase();
                l.ends_with(".vec") || l.ends_with(".txt")
            })
            .or(files.first())
            .map(|s| s.to_string())
            .ok_or_else(|| VectorsError::Empty {
                path: path.to_path_buf(),
            })?;
        let entry = z.by_name(&pick).map_err(zerr)?;
        read_vectors(
            BufReader::with_capacity(1 << 20, entry),
            &path.join(&pick),
            vocab,
            seed,
        )
    } else {
        let f = File::open(path).map_err(io)?;
        read_vectors(BufReader::with_capacity(1 << 20, f), path, vocab, seed)
    }
}

/// [`load_vectors`] on an already opened (decompressed) reader; `path` is used in messages.
pub fn read_vectors(
    mut r: impl BufRead,
    path: &Path,
    vocab: &Vocab,
    seed: u64,
) -> Result<LoadedVectors, VectorsError> {
    let v = vocab.len();
    let mut dim: Option<usize> = None;
    let mut rows: Vec<Option<Vec<f32>>> = vec![None; v];
    let mut exact = vec![false; v];
    let mut buf = Vec::new();
    let mut line_no = 0u64;
    let mut file_words = 0u64;
    let fmt = |line: u64, msg: String| VectorsError::Format {
        path: path.to_path_buf(),
        line,
        msg,
    };
    loop {
        buf.clear();
        let n = r
            .read_until(b'\n', &mut buf)
            .map_err(|source| VectorsError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        if n == 0 {
            break;
        }
        line_no += 1;
        let line = String::from_utf8_lossy(&buf);
        let line = line.trim_end_matches(['\n', '\r', ' ', '\t']);
        if line.trim().is_empty() {
            continue;
        }
        if dim.is_none() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() == 2 && f.iter().all(|x| x.parse::<u64>().is_ok()) {
                let d: usize = f[1].parse().expect("checked");
                if d == 0 {
                    return Err(fmt(line_no, "header gives dimension 0".into()));
                }
                dim = Some(d);
                continue;
            }
            if f.len() < 2 {
                return Err(fmt(line_no, "expected `word v1 ... vDIM`".into()));
            }
            dim = Some(f.len() - 1);
        }
        let d = dim.expect("set above");
        file_words += 1;
        let (word, rest) = line.split_once([' ', '\t']).unwrap_or((line, ""));
        let (id, is_exact) = match vocab.get(word) {
            Some(i) => (i as usize, true),
            None => match vocab.get(&word.to_lowercase()) {
                Some(i) => (i as usize, false),
                None => continue,
            },
        };
        if exact[id] || (!is_exact && rows[id].is_some()) {
            continue;
        }
        let mut vals = Vec::with_capacity(d);
        for t in rest.split_ascii_whitespace() {
            vals.push(
                t.parse::<f32>()
                    .map_err(|_| fmt(line_no, format!("`{t}` is not a number (word `{word}`)")))?,
            );
        }
        if vals.len() != d {
            return Err(fmt(
                line_no,
                format!(
                    "word `{word}` has {} values, expected {d} (from the first line)",
                    vals.len()
                ),
            ));
        }
        rows[id] = Some(vals);
        exact[id] = is_exact;
    }
    let dim = match dim {
        Some(d) if file_words > 0 => d,
        _ => {
            return Err(VectorsError::Empty {
                path: path.to_path_buf(),
            })
        }
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let normal = rand_distr::StandardNormal;
    let mut weights: Vec<f32> = (0..v * dim).map(|_| normal.sample(&mut rng)).collect();
    let mut has_vector = vec![false; v];
    for (id, row) in rows.into_iter().enumerate() {
        if let Some(row) = row {
            weights[id * dim..(id + 1) * dim].copy_from_slice(&row);
            has_vector[id] = true;
        }
    }
    let pad = PAD as usize;
    if pad < v {
        weights[pad * dim..(pad + 1) * dim].fill(0.0);
        has_vector[pad] = false;
    }
    Ok(LoadedVectors {
        embedding: Embedding {
            dim,
            weights,
            has_vector,
        },
        file_words,
    })
}
