//! Corpus → vocabulary and token id files, streaming in two passes over the input (count words
//! of the training documents, then encode), tokenizing batches of documents in parallel with rayon.
//! Outputs are identical for any thread count: batches are read in file order, documents keep
//! their order within a batch, and counts are sums.

use super::corpus::{CorpusError, DocReader, Format};
use super::{Vocab, SPECIALS, UNK};
use rayon::prelude::*;
use std::collections::HashMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Calls `f` with every lower-cased `\w+` word of `text`: the same words as [`super::words`],
/// without allocating for words that are already lower-case ASCII.
pub fn for_each_word(text: &str, mut f: impl FnMut(&str)) {
    for m in super::word_re().find_iter(text) {
        let s = m.as_str();
        if s.bytes().all(|b| b.is_ascii() && !b.is_ascii_uppercase()) {
            f(s);
        } else {
            f(&s.to_lowercase());
        }
    }
}

/// Word counts of documents (parallel over documents; the result does not depend on threads).
pub fn count_words(docs: &[&str]) -> HashMap<String, u64> {
    docs.par_chunks(32)
        .map(|chunk| {
            let mut m: HashMap<String, u64> = HashMap::new();
            for d in chunk {
                for_each_word(d, |w| {
                    if let Some(c) = m.get_mut(w) {
                        *c += 1;
                    } else {
                        m.insert(w.to_string(), 1);
                    }
                });
            }
            m
        })
        .reduce(HashMap::new, merge_counts)
}

fn merge_counts(mut a: HashMap<String, u64>, b: HashMap<String, u64>) -> HashMap<String, u64> {
    if a.len() < b.len() {
        return merge_counts(b, a);
    }
    for (w, c) in b {
        *a.entry(w).or_insert(0) += c;
    }
    a
}

/// The vocabulary: the specials, then words with at least `min_count` occurrences by descending
/// count, ties alphabetical, cut so that the whole vocabulary has at most `max_size` tokens.
pub fn build_vocab(
    counts: &HashMap<String, u64>,
    min_count: u64,
    max_size: Option<usize>,
) -> Vocab {
    let mut words: Vec<(&String, u64)> = counts
        .iter()
        .filter(|(w, &c)| c >= min_count.max(1) && !SPECIALS.contains(&w.as_str()))
        .map(|(w, &c)| (w, c))
        .collect();
    words.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    if let Some(m) = max_size {
        words.truncate(m.saturating_sub(SPECIALS.len()));
    }
    Vocab::from_words(words.into_iter().map(|(w, _)| w.clone()))
}

/// Deterministic per-document split: true when document `index` goes to validation.
pub fn is_valid_doc(seed: u64, index: u64, fraction: f64) -> bool {
    if fraction <= 0.0 {
        return false;
    }
    let z = crate::seed::hash_index(seed, index);
    ((z >> 11) as f64 / (1u64 << 53) as f64) < fraction
}

/// Writes a [`super::TokenFile`] pair document by document without holding it in memory.
pub struct TokenWriter {
    ids: BufWriter<std::fs::File>,
    offsets: BufWriter<std::fs::File>,
    n: u64,
    base: PathBuf,
}

impl TokenWriter {
    pub fn create(base: &Path) -> std::io::Result<Self> {
        let (ip, op) = super::TokenFile::paths(base);
        let mut offsets = BufWriter::new(std::fs::File::create(op)?);
        offsets.write_all(&0u64.to_le_bytes())?;
        Ok(TokenWriter {
            ids: BufWriter::new(std::fs::File::create(ip)?),
            offsets,
            n: 0,
            base: base.to_path_buf(),
        })
    }

    pub fn push_doc(&mut self, doc: &[u32]) -> std::io::Result<()> {
        for x in doc {
            self.ids.write_all(&x.to_le_bytes())?;
        }
        self.n += doc.len() as u64;
        self.offsets.write_all(&self.n.to_le_bytes())
    }

    pub fn finish(mut self) -> std::io::Result<()> {
        self.ids.flush()?;
        self.offsets.flush()
    }

    pub fn base(&self) -> &Path {
        &self.base
    }
}

/// One corpus file.
#[derive(Debug, Clone)]
pub struct CorpusSpec {
    pub path: PathBuf,
    pub format: Format,
    /// Replace invalid UTF-8 instead of failing.
    pub lossy: bool,
    /// Read only the first N documents of the file (None: all).
    pub max_documents: Option<u64>,
}

/// Where validation documents come from.
#[derive(Debug, Clone)]
pub enum ValidSource {
    /// A seeded fraction of the training source's documents.
    Fraction { fraction: f64, seed: u64 },
    /// A separate file (all of the training source is then training data).
    Corpus(CorpusSpec),
}

/// What to build.
#[derive(Debug, Clone)]
pub struct TokenizeOptions {
    pub train: CorpusSpec,
    pub valid: ValidSource,
    pub min_count: u64,
    /// Whole vocabulary size limit, specials included.
    pub max_size: Option<usize>,
    /// Text per batch of documents read and tokenized together (memory bound).
    pub batch_bytes: usize,
}

/// Per-split statistics.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct SplitStats {
    pub documents: u64,
    pub tokens: u64,
    pub unknown: u64,
    pub unknown_rate: f64,
    /// Documents with no word at all (dropped).
    pub empty_documents: u64,
}

/// What [`tokenize_corpus`] built.
#[derive(Debug, Clone)]
pub struct TokenizeResult {
    pub vocab: Vocab,
    pub train: SplitStats,
    pub valid: SplitStats,
    pub train_format: Format,
    pub valid_format: Format,
    /// Distinct words in the training documents (before `min_count`/`max_size`).
    pub train_types: usize,
}

fn resolve(spec: &CorpusSpec) -> Result<Format, CorpusError> {
    match spec.format {
        Format::Auto => super::corpus::detect_format(&spec.path),
        f => Ok(f),
    }
}

/// Streams `opts.train` (and the validation file if any) and writes `vocab.json`,
/// `train.ids`/`train.offsets` and `valid.ids`/`valid.offsets` into `out_dir`.
/// `progress` is called with the number of bytes read since the last call.
pub fn tokenize_corpus(
    opts: &TokenizeOptions,
    out_dir: &Path,
    progress: &mut dyn FnMut(u64),
) -> Result<TokenizeResult, CorpusError> {
    let train_format = resolve(&opts.train)?;
    let (frac, seed) = match &opts.valid {
        ValidSource::Fraction { fraction, seed } => (*fraction, *seed),
        ValidSource::Corpus(_) => (0.0, 0),
    };
    let batch = opts.batch_bytes.max(1);

    // Pass 1: count the words of the training documents.
    let mut counts: HashMap<String, u64> = HashMap::new();
    let mut r = DocReader::open(&opts.train.path, train_format, opts.train.lossy)?;
    let mut index = 0u64;
    let mut last = 0u64;
    loop {
        let docs = capped_batch(&mut r, batch, index, opts.train.max_documents)?;
        if docs.is_empty() {
            break;
        }
        let train_docs: Vec<&str> = docs
            .iter()
            .enumerate()
            .filter(|(i, _)| !is_valid_doc(seed, index + *i as u64, frac))
            .map(|(_, d)| d.as_str())
            .collect();
        index += docs.len() as u64;
        counts = merge_counts(counts, count_words(&train_docs));
        progress(r.offset() - last);
        last = r.offset();
    }
    if counts.is_empty() {
        return Err(CorpusError::Empty {
            path: opts.train.path.clone(),
        });
    }
    let vocab = build_vocab(&counts, opts.min_count, opts.max_size);
    let train_types = counts.len();
    drop(counts);
    let vocab_path = out_dir.join("vocab.json");
    std::fs::write(&vocab_path, vocab.to_json()).map_err(io_at(&vocab_path))?;

    // Pass 2: encode.
    let mut train_w = TokenWriter::create(&out_dir.join("train")).map_err(io_at(out_dir))?;
    let mut valid_w = TokenWriter::create(&out_dir.join("valid")).map_err(io_at(out_dir))?;
    let mut train = SplitStats::default();
    let mut valid = SplitStats::default();
    let valid_format = match &opts.valid {
        ValidSource::Fraction { .. } => {
            encode_file(
                &opts.train,
                train_format,
                &vocab,
                batch,
                progress,
                &mut |i, ids| {
                    let sink = if is_valid_doc(seed, i, frac) {
                        (&mut valid_w, &mut valid)
                    } else {
                        (&mut train_w, &mut train)
                    };
                    sink.push(ids)
                },
            )?;
            train_format
        }
        ValidSource::Corpus(spec) => {
            encode_file(
                &opts.train,
                train_format,
                &vocab,
                batch,
                progress,
                &mut |_, ids| (&mut train_w, &mut train).push(ids),
            )?;
            let vf = resolve(spec)?;
            encode_file(spec, vf, &vocab, batch, progress, &mut |_, ids| {
                (&mut valid_w, &mut valid).push(ids)
            })?;
            vf
        }
    };
    train_w.finish().map_err(io_at(out_dir))?;
    valid_w.finish().map_err(io_at(out_dir))?;
    for s in [&mut train, &mut valid] {
        s.unknown_rate = if s.tokens == 0 {
            0.0
        } else {
            s.unknown as f64 / s.tokens as f64
        };
    }
    Ok(TokenizeResult {
        vocab,
        train,
        valid,
        train_format,
        valid_format,
        train_types,
    })
}

fn io_at(path: &Path) -> impl Fn(std::io::Error) -> CorpusError + '_ {
    move |source| CorpusError::Io {
        path: path.to_path_buf(),
        source,
    }
}

trait Sink {
    fn push(self, ids: &[u32]) -> std::io::Result<()>;
}

impl Sink for (&mut TokenWriter, &mut SplitStats) {
    fn push(self, ids: &[u32]) -> std::io::Result<()> {
        let (w, s) = self;
        if ids.is_empty() {
            s.empty_documents += 1;
            return Ok(());
        }
        s.documents += 1;
        s.tokens += ids.len() as u64;
        s.unknown += ids.iter().filter(|&&i| i == UNK).count() as u64;
        w.push_doc(ids)
    }
}

/// The next batch of documents, cut so that at most `cap` documents are read in all
/// (`done` were read before).
fn capped_batch<R: std::io::BufRead>(
    r: &mut DocReader<R>,
    batch: usize,
    done: u64,
    cap: Option<u64>,
) -> Result<Vec<String>, CorpusError> {
    let left = cap.map_or(u64::MAX, |c| c.saturating_sub(done));
    if left == 0 {
        return Ok(Vec::new());
    }
    let mut docs = r.next_batch(batch)?;
    docs.truncate(usize::try_from(left).unwrap_or(usize::MAX));
    Ok(docs)
}

/// Encodes every document of a file in order, handing (document index, ids) to `sink`.
fn encode_file(
    spec: &CorpusSpec,
    format: Format,
    vocab: &Vocab,
    batch: usize,
    progress: &mut dyn FnMut(u64),
    sink: &mut dyn FnMut(u64, &[u32]) -> std::io::Result<()>,
) -> Result<(), CorpusError> {
    let mut r = DocReader::open(&spec.path, format, spec.lossy)?;
    let mut index = 0u64;
    let mut last = 0u64;
    loop {
        let docs = capped_batch(&mut r, batch, index, spec.max_documents)?;
        if docs.is_empty() {
            return Ok(());
        }
        let encoded: Vec<Vec<u32>> = docs
            .par_iter()
            .with_min_len(16)
            .map(|d| {
                let mut ids = Vec::with_capacity(d.len() / 4);
                for_each_word(d, |w| ids.push(vocab.id(w)));
                ids
            })
            .collect();
        for ids in &encoded {
            sink(index, ids).map_err(io_at(&spec.path))?;
            index += 1;
        }
        progress(r.offset() - last);
        last = r.offset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn for_each_word_matches_words() {
        let t = "Once upon a TIME, Ça va? Lily's x_y 42 ÉCOLE straße";
        let mut a = Vec::new();
        for_each_word(t, |w| a.push(w.to_string()));
        let b: Vec<String> = super::super::words(t).collect();
        assert_eq!(a, b);
    }

    #[test]
    fn vocab_order_min_count_and_max_size() {
        let counts = count_words(&["b a c a b a", "d c e"]);
        let v = build_vocab(&counts, 1, None);
        // a:3, b:2, c:2, d:1, e:1 → ties alphabetical
        assert_eq!(&v.tokens()[4..], &["a", "b", "c", "d", "e"]);
        let v = build_vocab(&counts, 2, None);
        assert_eq!(&v.tokens()[4..], &["a", "b", "c"]);
        let v = build_vocab(&counts, 1, Some(6));
        assert_eq!(&v.tokens()[4..], &["a", "b"]);
        let v = build_vocab(&counts, 1, Some(4));
        assert_eq!(v.len(), 4);
    }

    #[test]
    fn split_is_seeded_and_near_fraction() {
        let n = (0..10_000).filter(|&i| is_valid_doc(7, i, 0.1)).count();
        assert!((800..1200).contains(&n), "{n}");
        let a: Vec<bool> = (0..100).map(|i| is_valid_doc(7, i, 0.3)).collect();
        let b: Vec<bool> = (0..100).map(|i| is_valid_doc(8, i, 0.3)).collect();
        assert_ne!(a, b);
        assert!(!(0..100).any(|i| is_valid_doc(7, i, 0.0)));
    }
}
