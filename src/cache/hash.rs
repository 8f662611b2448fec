//! Content hashing with bounded memory: a file is read in fixed-size chunks, each hashed with
//! blake3's rayon (multi-threaded) update when it is large, so memory stays at one chunk
//! whatever the file size and big files still use every core.

use crate::digest::Blake3;
use std::io::Read;
use std::path::Path;

/// Bytes read (and hashed) at a time.
pub const CHUNK: usize = 8 << 20;
/// Below this, a chunk is hashed on the calling thread (rayon costs more than it saves).
const RAYON_MIN: usize = 1 << 20;

/// A blake3 hasher fed in bounded chunks (multi-threaded for large ones).
#[derive(Default)]
pub struct StreamHasher {
    inner: blake3::Hasher,
}

impl StreamHasher {
    pub fn new() -> Self {
        StreamHasher::default()
    }

    /// Adds bytes (on every core when there are many).
    pub fn update(&mut self, bytes: &[u8]) {
        if bytes.len() >= RAYON_MIN {
            self.inner.update_rayon(bytes);
        } else {
            self.inner.update(bytes);
        }
    }

    pub fn finish(&self) -> Blake3 {
        self.inner.finalize().into()
    }
}

/// The blake3 of everything `r` yields, read [`CHUNK`] bytes at a time; `each` sees every
/// chunk after it is hashed (to copy it somewhere, or count progress).
pub fn hash_reader(
    mut r: impl Read,
    mut each: impl FnMut(&[u8]) -> std::io::Result<()>,
) -> std::io::Result<Blake3> {
    let mut h = StreamHasher::new();
    let mut buf = vec![0u8; CHUNK];
    loop {
        // Fill the chunk (reads may return less), so rayon gets large slices.
        let mut n = 0;
        while n < buf.len() {
            match r.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if n == 0 {
            return Ok(h.finish());
        }
        h.update(&buf[..n]);
        each(&buf[..n])?;
        if n < buf.len() {
            return Ok(h.finish());
        }
    }
}

/// blake3 of a file's content, in bounded memory. A link is followed (a `deps` entry may be
/// one), but only a regular file is read: a FIFO or a device (`/dev/zero`) is an
/// `InvalidInput` error at once, never a hang.
pub fn hash_file(path: &Path) -> std::io::Result<Blake3> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} is not a regular file", path.display()),
        ));
    }
    hash_reader(f, |_| Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_hash_equals_the_one_shot_hash() {
        let d = tempfile::tempdir().unwrap();
        for len in [
            0usize,
            1,
            RAYON_MIN - 1,
            RAYON_MIN,
            CHUNK,
            CHUNK + 1,
            2 * CHUNK + 7,
        ] {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let p = d.path().join(format!("f{len}"));
            std::fs::write(&p, &data).unwrap();
            assert_eq!(hash_file(&p).unwrap(), Blake3::of(&data), "{len}");
            let mut seen = 0;
            let h = hash_reader(&data[..], |c| {
                seen += c.len();
                Ok(())
            })
            .unwrap();
            assert_eq!((h, seen), (Blake3::of(&data), len));
        }
        for special in ["/dev/zero", "/dev/null"] {
            let e = hash_file(Path::new(special)).unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{special}");
        }
    }
}
