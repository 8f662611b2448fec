//! Token id files: `<name>.ids` holds every document's token ids concatenated as little-endian
//! u32 (no `<sos>`/`<eos>` framing), `<name>.offsets` holds n_docs + 1 little-endian u64 offsets
//! into it (document d is `ids[offsets[d]..offsets[d+1]]`).

use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// Documents of token ids, loaded in memory.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TokenFile {
    pub ids: Vec<u32>,
    pub offsets: Vec<u64>,
}

impl TokenFile {
    pub fn new() -> Self {
        TokenFile {
            ids: Vec::new(),
            offsets: vec![0],
        }
    }

    pub fn push_doc(&mut self, doc: &[u32]) {
        self.ids.extend_from_slice(doc);
        self.offsets.push(self.ids.len() as u64);
    }

    pub fn n_docs(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    pub fn doc(&self, d: usize) -> &[u32] {
        &self.ids[self.offsets[d] as usize..self.offsets[d + 1] as usize]
    }

    pub fn docs(&self) -> impl Iterator<Item = &[u32]> {
        (0..self.n_docs()).map(|d| self.doc(d))
    }

    /// Paths of the two files for a base path `dir/name` → `dir/name.ids`, `dir/name.offsets`.
    pub fn paths(base: &Path) -> (PathBuf, PathBuf) {
        (base.with_extension("ids"), base.with_extension("offsets"))
    }

    pub fn save(&self, base: &Path) -> std::io::Result<()> {
        let (ids_p, off_p) = Self::paths(base);
        let mut w = BufWriter::new(std::fs::File::create(&ids_p)?);
        for x in &self.ids {
            w.write_all(&x.to_le_bytes())?;
        }
        w.flush()?;
        let mut w = BufWriter::new(std::fs::File::create(&off_p)?);
        for x in &self.offsets {
            w.write_all(&x.to_le_bytes())?;
        }
        w.flush()
    }

    /// Loads and checks the two files (offsets increasing, last offset = number of ids).
    pub fn load(base: &Path) -> std::io::Result<Self> {
        let (ids_p, off_p) = Self::paths(base);
        let bad = |msg: String| std::io::Error::new(std::io::ErrorKind::InvalidData, msg);
        let mut raw = Vec::new();
        std::fs::File::open(&ids_p)?.read_to_end(&mut raw)?;
        if raw.len() % 4 != 0 {
            return Err(bad(format!(
                "{}: length is not a multiple of 4",
                ids_p.display()
            )));
        }
        let ids = raw
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect::<Vec<_>>();
        raw.clear();
        std::fs::File::open(&off_p)?.read_to_end(&mut raw)?;
        if raw.len() % 8 != 0 || raw.is_empty() {
            return Err(bad(format!(
                "{}: not a list of u64 offsets",
                off_p.display()
            )));
        }
        let offsets = raw
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect::<Vec<_>>();
        if offsets[0] != 0
            || offsets.windows(2).any(|w| w[0] > w[1])
            || *offsets.last().expect("non-empty") != ids.len() as u64
        {
            return Err(bad(format!(
                "{}: offsets do not match {}",
                off_p.display(),
                ids_p.display()
            )));
        }
        Ok(TokenFile { ids, offsets })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut t = TokenFile::new();
        t.push_doc(&[4, 5, 6]);
        t.push_doc(&[]);
        t.push_doc(&[7]);
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("train");
        t.save(&base).unwrap();
        let back = TokenFile::load(&base).unwrap();
        assert_eq!(back, t);
        assert_eq!(back.doc(2), &[7]);
        assert_eq!(back.n_docs(), 3);
    }
}
