//! Pretrained word vectors in the word2vec/fastText/GloVe text format: optional `N DIM` header
//! line, then `word v1 … vDIM` per line; plain, gzip (`.gz`) or zip (`.zip`: its one `.vec`/`.txt`
//! member, or its only member; several candidates are an error naming them) compressed, detected
//! by magic bytes. The file is streamed: only the rows of vocabulary words are kept. Values must
//! be finite numbers; lines, the dimension and the matrix are bounded before anything is
//! allocated for them.

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
    #[error(
        "{path}: the zip archive holds {} members that could be the vectors ({}); pipe reads a \
         zip with exactly one `.vec`/`.txt` member (or only one member): unpack the one to use \
         and give its path",
        names.len(),
        names.join(", ")
    )]
    Members { path: PathBuf, names: Vec<String> },
    #[error(
        "{path}: the embedding matrix of {vocab} words × {dim} dimensions needs {}, but the \
         machine has {} available",
        crate::bytes::human(*need),
        crate::bytes::human(*available)
    )]
    TooLarge {
        path: PathBuf,
        vocab: usize,
        dim: usize,
        need: u64,
        available: u64,
    },
}

/// Largest vector dimension read (published vectors have at most a few thousand).
pub const MAX_DIM: usize = 65_536;

/// Longest line read (a word and `MAX_DIM` values fit many times over).
pub const MAX_LINE_BYTES: u64 = 16 << 20;

/// What [`load_vectors`] read.
#[derive(Debug, Clone)]
pub struct LoadedVectors {
    pub embedding: Embedding,
    /// Vector lines in the file.
    pub file_words: u64,
    /// The zip member read, for a zip archive.
    pub member: Option<String>,
}

/// The member of a zip archive to read: its one `.vec`/`.txt` file, or its only file.
fn zip_member(path: &Path, names: &[String]) -> Result<String, VectorsError> {
    let mut files: Vec<&String> = names.iter().filter(|n| !n.ends_with('/')).collect();
    files.sort();
    let text: Vec<&String> = files
        .iter()
        .copied()
        .filter(|n| {
            let l = n.to_ascii_lowercase();
            l.ends_with(".vec") || l.ends_with(".txt")
        })
        .collect();
    match (text.as_slice(), files.as_slice()) {
        ([one], _) | ([], [one]) => Ok(one.to_string()),
        ([], []) => Err(VectorsError::Empty {
            path: path.to_path_buf(),
        }),
        ([], all) | (all, _) => Err(VectorsError::Members {
            path: path.to_path_buf(),
            names: all.iter().map(|s| s.to_string()).collect(),
        }),
    }
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
        let pick = zip_member(path, &names)?;
        let entry = z.by_name(&pick).map_err(zerr)?;
        let mut loaded = read_vectors(
            BufReader::with_capacity(1 << 20, entry),
            &path.join(&pick),
            vocab,
            seed,
        )?;
        loaded.member = Some(pick);
        Ok(loaded)
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
            .by_ref()
            .take(MAX_LINE_BYTES + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|source| VectorsError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        if n == 0 {
            break;
        }
        line_no += 1;
        if n as u64 > MAX_LINE_BYTES {
            return Err(fmt(
                line_no,
                format!(
                    "the line is longer than {}, the limit",
                    crate::bytes::human(MAX_LINE_BYTES)
                ),
            ));
        }
        let line = String::from_utf8_lossy(&buf);
        let line = line.trim_end_matches(['\n', '\r', ' ', '\t']);
        if line.trim().is_empty() {
            continue;
        }
        if dim.is_none() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() == 2 && f.iter().all(|x| x.parse::<u64>().is_ok()) {
                let d: u64 = f[1].parse().expect("checked");
                if d == 0 {
                    return Err(fmt(line_no, "header gives dimension 0".into()));
                }
                dim = Some(check_dim(path, line_no, d, v)?);
                continue;
            }
            if f.len() < 2 {
                return Err(fmt(line_no, "expected `word v1 ... vDIM`".into()));
            }
            dim = Some(check_dim(path, line_no, f.len() as u64 - 1, v)?);
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
            let x = t
                .parse::<f32>()
                .map_err(|_| fmt(line_no, format!("`{t}` is not a number (word `{word}`)")))?;
            if !x.is_finite() {
                return Err(fmt(
                    line_no,
                    format!("`{t}` is not a finite number (word `{word}`)"),
                ));
            }
            vals.push(x);
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
        member: None,
    })
}

/// A dimension read from line `line`, checked against [`MAX_DIM`] and, with the vocabulary
/// size `v`, against the machine's available memory.
fn check_dim(path: &Path, line: u64, d: u64, v: usize) -> Result<usize, VectorsError> {
    if d > MAX_DIM as u64 {
        return Err(VectorsError::Format {
            path: path.to_path_buf(),
            line,
            msg: format!("dimension {d} is more than {MAX_DIM}, the limit"),
        });
    }
    let dim = d as usize;
    // The matrix, and at most one kept row per word.
    let need = crate::bytes::saturate(2 * 4 * v as u128 * d as u128);
    match crate::model::memory::available() {
        Some(available) if need > available => Err(VectorsError::TooLarge {
            path: path.to_path_buf(),
            vocab: v,
            dim,
            need,
            available,
        }),
        _ => Ok(dim),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn vocab() -> Vocab {
        Vocab::from_words(["the", "cat"].map(String::from))
    }

    fn zip_of(path: &Path, members: &[(&str, &str)]) {
        let mut z = zip::ZipWriter::new(File::create(path).unwrap());
        for (name, text) in members {
            z.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            z.write_all(text.as_bytes()).unwrap();
        }
        z.finish().unwrap();
    }

    #[test]
    fn non_finite_values_are_refused_with_file_and_line() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("v.vec");
        for bad in ["nan", "inf", "-Infinity", "1e39"] {
            std::fs::write(&p, format!("the 1 2\ncat 3 {bad}\n")).unwrap();
            let e = load_vectors(&p, &vocab(), 1).unwrap_err().to_string();
            assert!(
                e.contains("v.vec:2") && e.contains("not a finite number") && e.contains(bad),
                "{e}"
            );
        }
    }

    #[test]
    fn a_zip_is_read_only_when_its_member_is_unambiguous() {
        let d = tempfile::tempdir().unwrap();
        let z = d.path().join("v.zip");
        zip_of(&z, &[("wiki.bin", "binary"), ("wiki.vec", "the 1 2\n")]);
        let l = load_vectors(&z, &vocab(), 1).unwrap();
        assert_eq!(l.member.as_deref(), Some("wiki.vec"));
        zip_of(&z, &[("a.vec", "the 1 2\n"), ("b.txt", "the 3 4\n")]);
        let e = load_vectors(&z, &vocab(), 1).unwrap_err().to_string();
        assert!(
            e.contains("2 members") && e.contains("a.vec, b.txt") && e.contains("v.zip"),
            "{e}"
        );
        zip_of(&z, &[("x", "the 1 2\n"), ("y", "the 3 4\n")]);
        let e = load_vectors(&z, &vocab(), 1).unwrap_err().to_string();
        assert!(e.contains("x, y"), "{e}");
        zip_of(&z, &[("vectors", "the 1 2\n")]);
        assert_eq!(
            load_vectors(&z, &vocab(), 1).unwrap().member.as_deref(),
            Some("vectors")
        );
    }

    #[test]
    fn an_absurd_dimension_is_refused_before_allocating() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("v.vec");
        std::fs::write(&p, "2 10000000000\nthe 1 2\n").unwrap();
        let e = load_vectors(&p, &vocab(), 1).unwrap_err().to_string();
        assert!(
            e.contains("v.vec:1") && e.contains("10000000000") && e.contains("65536"),
            "{e}"
        );
    }
}
