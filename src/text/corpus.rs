//! Streaming corpus readers: split a text file into documents in bounded memory, line by line.
//! Formats: TinyStories (stories separated by a line `<|endoftext|>`), plain text (documents
//! separated by blank lines) and JSON Lines (one object per line with a string field `text`).

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// The TinyStories separator line.
pub const ENDOFTEXT: &str = "<|endoftext|>";

/// How a corpus file is split into documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Detect from the head of the file ([`detect_format`]).
    Auto,
    /// Stories separated by a line `<|endoftext|>`.
    Tinystories,
    /// Documents separated by one or more blank lines.
    Text,
    /// One JSON object per line with a string field `text`.
    Jsonl,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Auto => "auto",
            Format::Tinystories => "tinystories",
            Format::Text => "text",
            Format::Jsonl => "jsonl",
        }
    }
}

/// Errors while reading a corpus; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path}: invalid UTF-8 at byte offset {offset} (line {line}); fix the file or set `lossy: true` to replace bad bytes"
    )]
    Utf8 {
        path: PathBuf,
        offset: u64,
        line: u64,
    },
    #[error("{path}:{line}: not a JSON Lines record with a string field `text`: {msg}")]
    Json {
        path: PathBuf,
        line: u64,
        msg: String,
    },
    #[error("{path}: the corpus is empty (no words found); check the file and its `format`")]
    Empty { path: PathBuf },
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> CorpusError + '_ {
    move |source| CorpusError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Guesses the format from the first MiB of a file: a `<|endoftext|>` line means TinyStories,
/// a first non-blank line that is a JSON object with a string `text` means JSON Lines, anything
/// else is plain text.
pub fn detect_format(path: &Path) -> Result<Format, CorpusError> {
    let mut head = Vec::new();
    File::open(path)
        .map_err(io_err(path))?
        .take(1 << 20)
        .read_to_end(&mut head)
        .map_err(io_err(path))?;
    Ok(detect_format_bytes(&head))
}

/// [`detect_format`] on bytes already read.
pub fn detect_format_bytes(head: &[u8]) -> Format {
    let text = String::from_utf8_lossy(head);
    if text.lines().any(|l| l.trim() == ENDOFTEXT) {
        return Format::Tinystories;
    }
    if let Some(first) = text.lines().find(|l| !l.trim().is_empty()) {
        let first = first.trim();
        if first.starts_with('{') {
            if let Ok(serde_json::Value::Object(m)) =
                serde_json::from_str::<serde_json::Value>(first)
            {
                if m.get("text").is_some_and(|t| t.is_string()) {
                    return Format::Jsonl;
                }
            }
        }
    }
    Format::Text
}

/// Reads documents one at a time from a buffered reader; memory is bounded by the longest
/// document (plus one line), whatever the size of the file.
pub struct DocReader<R: BufRead> {
    inner: R,
    path: PathBuf,
    format: Format,
    lossy: bool,
    /// Bytes consumed so far.
    offset: u64,
    line_no: u64,
    line: Vec<u8>,
    cur: String,
    done: bool,
}

impl DocReader<BufReader<File>> {
    /// Opens a file; `Format::Auto` is resolved with [`detect_format`].
    pub fn open(path: &Path, format: Format, lossy: bool) -> Result<Self, CorpusError> {
        let format = match format {
            Format::Auto => detect_format(path)?,
            f => f,
        };
        let f = File::open(path).map_err(io_err(path))?;
        Ok(Self::new(
            BufReader::with_capacity(1 << 20, f),
            path,
            format,
            lossy,
        ))
    }
}

impl<R: BufRead> DocReader<R> {
    /// Wraps a reader; `path` is only used in messages. `format` must not be `Auto`.
    pub fn new(inner: R, path: &Path, format: Format, lossy: bool) -> Self {
        assert!(
            format != Format::Auto,
            "resolve Format::Auto before reading"
        );
        DocReader {
            inner,
            path: path.to_path_buf(),
            format,
            lossy,
            offset: 0,
            line_no: 0,
            line: Vec::new(),
            cur: String::new(),
            done: false,
        }
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// Bytes of the file consumed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next document, `None` at the end of the file. Blank documents are skipped.
    pub fn next_doc(&mut self) -> Result<Option<String>, CorpusError> {
        loop {
            if self.done {
                return Ok(None);
            }
            self.line.clear();
            let start = self.offset;
            let n = self
                .inner
                .read_until(b'\n', &mut self.line)
                .map_err(io_err(&self.path))?;
            if n == 0 {
                self.done = true;
                return Ok(self.take_cur());
            }
            self.offset += n as u64;
            self.line_no += 1;
            while matches!(self.line.last(), Some(b'\n' | b'\r')) {
                self.line.pop();
            }
            let line: std::borrow::Cow<str> = match std::str::from_utf8(&self.line) {
                Ok(s) => s.into(),
                Err(e) if self.lossy => {
                    let _ = e;
                    String::from_utf8_lossy(&self.line)
                }
                Err(e) => {
                    return Err(CorpusError::Utf8 {
                        path: self.path.clone(),
                        offset: start + e.valid_up_to() as u64,
                        line: self.line_no,
                    })
                }
            };
            match self.format {
                Format::Tinystories | Format::Text => {
                    let t = line.trim();
                    let sep = if self.format == Format::Tinystories {
                        t == ENDOFTEXT
                    } else {
                        t.is_empty()
                    };
                    if sep {
                        if let Some(d) = self.take_cur() {
                            return Ok(Some(d));
                        }
                    } else {
                        self.cur.push_str(&line);
                        self.cur.push('\n');
                    }
                }
                Format::Jsonl => {
                    let t = line.trim();
                    if t.is_empty() {
                        continue;
                    }
                    let bad = |msg: String| CorpusError::Json {
                        path: self.path.clone(),
                        line: self.line_no,
                        msg,
                    };
                    let v: serde_json::Value =
                        serde_json::from_str(t).map_err(|e| bad(e.to_string()))?;
                    match v.get("text") {
                        Some(serde_json::Value::String(s)) => {
                            if !s.trim().is_empty() {
                                return Ok(Some(s.clone()));
                            }
                        }
                        _ => return Err(bad("no string field `text`".into())),
                    }
                }
                Format::Auto => unreachable!("resolved in new()"),
            }
        }
    }

    fn take_cur(&mut self) -> Option<String> {
        if self.cur.trim().is_empty() {
            self.cur.clear();
            None
        } else {
            Some(std::mem::take(&mut self.cur))
        }
    }

    /// Documents until their total length reaches `max_bytes` (at least one document unless the
    /// file is finished). An empty batch means the end of the file.
    pub fn next_batch(&mut self, max_bytes: usize) -> Result<Vec<String>, CorpusError> {
        let mut out = Vec::new();
        let mut total = 0usize;
        while total < max_bytes {
            match self.next_doc()? {
                Some(d) => {
                    total += d.len();
                    out.push(d);
                }
                None => break,
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docs(text: &[u8], format: Format) -> Result<Vec<String>, CorpusError> {
        let mut r = DocReader::new(text, Path::new("t.txt"), format, false);
        let mut out = Vec::new();
        while let Some(d) = r.next_doc()? {
            out.push(d);
        }
        Ok(out)
    }

    #[test]
    fn tinystories_splits_on_endoftext_lines_only() {
        let t = b"Once upon a time.\n\nThe end.\n<|endoftext|>\nSecond story.\r\n <|endoftext|> \n\n<|endoftext|>\nThird";
        let d = docs(t, Format::Tinystories).unwrap();
        assert_eq!(
            d,
            vec![
                "Once upon a time.\n\nThe end.\n",
                "Second story.\n",
                "Third\n"
            ]
        );
    }

    #[test]
    fn text_splits_on_blank_lines() {
        let t = b"\n\nPara one\nline two\n\n  \nPara two\n\n\n";
        let d = docs(t, Format::Text).unwrap();
        assert_eq!(d, vec!["Para one\nline two\n", "Para two\n"]);
    }

    #[test]
    fn jsonl_reads_text_field_and_names_bad_line() {
        let t = b"{\"text\": \"A b\", \"id\": 1}\n\n{\"text\":\"C\"}\n";
        assert_eq!(docs(t, Format::Jsonl).unwrap(), vec!["A b", "C"]);
        let bad = b"{\"text\": \"A\"}\n{\"body\": \"x\"}\n";
        let e = docs(bad, Format::Jsonl).unwrap_err().to_string();
        assert!(e.contains("t.txt:2") && e.contains("`text`"), "{e}");
    }

    #[test]
    fn detection() {
        assert_eq!(
            detect_format_bytes(b"a\n<|endoftext|>\nb"),
            Format::Tinystories
        );
        assert_eq!(detect_format_bytes(b"\n{\"text\": \"x\"}\n"), Format::Jsonl);
        assert_eq!(detect_format_bytes(b"{not json\n"), Format::Text);
        assert_eq!(detect_format_bytes(b"hello\n\nworld"), Format::Text);
    }

    #[test]
    fn invalid_utf8_reports_byte_offset_or_is_replaced() {
        let t = b"ok line\nbad \xff here\n";
        let e = docs(t, Format::Text).unwrap_err();
        match e {
            CorpusError::Utf8 { offset, line, .. } => {
                assert_eq!(offset, 12);
                assert_eq!(line, 2);
            }
            e => panic!("{e}"),
        }
        let mut r = DocReader::new(&t[..], Path::new("t"), Format::Text, true);
        assert_eq!(
            r.next_doc().unwrap().unwrap(),
            "ok line\nbad \u{fffd} here\n"
        );
    }

    #[test]
    fn batches_respect_budget() {
        let t = "a\n\nbb\n\nccc\n\ndddd\n".as_bytes();
        let mut r = DocReader::new(t, Path::new("t"), Format::Text, false);
        assert_eq!(r.next_batch(4).unwrap(), vec!["a\n", "bb\n"]);
        assert_eq!(r.next_batch(1).unwrap(), vec!["ccc\n"]);
        assert_eq!(r.next_batch(100).unwrap(), vec!["dddd\n"]);
        assert!(r.next_batch(100).unwrap().is_empty());
    }
}
