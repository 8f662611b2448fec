//! Files a user names (a pipeline, a `--params` file, a checkpoint, a text to score): what kind
//! of file a path is ("no such file", "a folder", "a FIFO", "a character device", …), and reading
//! one as text, only when it is a regular file and only up to a size cap, so that a device, a
//! FIFO or a huge file can never hang pipe or exhaust its memory.

use std::fs::Metadata;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// What a path is, in words: "a folder", "a FIFO", "a socket", "a character device", "a block
/// device", "a symbolic link" or "a file".
pub fn kind_of(md: &Metadata) -> &'static str {
    let t = md.file_type();
    if t.is_dir() {
        "a folder"
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_symlink() {
        "a symbolic link"
    } else {
        "a file"
    }
}

/// Why `path` (links followed) is not a regular file, as the end of a sentence starting with
/// its name: "no such file", "is a folder", "is a character device, not a file", or the I/O
/// error. `None` when it is a regular file.
pub fn not_a_file(path: &Path) -> Option<String> {
    match std::fs::metadata(path) {
        Ok(md) if md.is_file() => None,
        Ok(md) if md.is_dir() => Some("is a folder, not a file".into()),
        Ok(md) => Some(format!(
            "is {}, not a file (pipe reads only regular files)",
            kind_of(&md)
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some("no such file".into()),
        Err(e) => Some(format!("cannot be read: {e}")),
    }
}

/// Why reading a file as text failed; the message is the end of a sentence starting with the
/// file's name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// Missing, a folder, a device, a FIFO, or unreadable.
    #[error("{0}")]
    NotAFile(String),
    /// Larger than the cap.
    #[error(
        "is larger than {} ({limit} bytes), the limit for {what}",
        crate::bytes::human(*limit)
    )]
    TooLarge { what: &'static str, limit: u64 },
    /// Not UTF-8.
    #[error("is not UTF-8 text (invalid byte at offset {0})")]
    NotText(usize),
}

/// Reads `path` as UTF-8 text when it is a regular file of at most `limit` bytes; `what` names
/// the kind of file in the size message ("a pipeline file"). The file is opened without
/// blocking and checked on the opened handle, so a FIFO is refused rather than waited on, and
/// at most `limit + 1` bytes are ever read.
pub fn read_text(path: &Path, what: &'static str, limit: u64) -> Result<String, ReadError> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match not_a_file(path) {
            Some(why) => ReadError::NotAFile(why),
            None => ReadError::NotAFile(format!("cannot be read: {e}")),
        })?;
    let md = f
        .metadata()
        .map_err(|e| ReadError::NotAFile(format!("cannot be read: {e}")))?;
    if !md.is_file() {
        return Err(ReadError::NotAFile(
            not_a_file(path).unwrap_or_else(|| format!("is {}, not a file", kind_of(&md))),
        ));
    }
    if md.len() > limit {
        return Err(ReadError::TooLarge { what, limit });
    }
    let mut buf = Vec::with_capacity(md.len() as usize);
    f.take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(|e| ReadError::NotAFile(format!("cannot be read: {e}")))?;
    if buf.len() as u64 > limit {
        return Err(ReadError::TooLarge { what, limit });
    }
    String::from_utf8(buf).map_err(|e| ReadError::NotText(e.utf8_error().valid_up_to()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_of_paths_are_named() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f.txt");
        std::fs::write(&f, "héllo").unwrap();
        assert_eq!(not_a_file(&f), None);
        assert_eq!(read_text(&f, "a test file", 100).unwrap(), "héllo");
        assert_eq!(not_a_file(&d.path().join("nope")).unwrap(), "no such file");
        assert_eq!(not_a_file(d.path()).unwrap(), "is a folder, not a file");
        let dev = not_a_file(Path::new("/dev/null")).unwrap();
        assert!(dev.starts_with("is a character device"), "{dev}");
        let e = read_text(Path::new("/dev/zero"), "a test file", 100).unwrap_err();
        assert!(e.to_string().starts_with("is a character device"), "{e}");
        let e = read_text(&f, "a test file", 3).unwrap_err();
        assert_eq!(
            e.to_string(),
            "is larger than 3 B (3 bytes), the limit for a test file"
        );
        std::fs::write(&f, b"ab\xffcd").unwrap();
        assert_eq!(read_text(&f, "x", 100).unwrap_err(), ReadError::NotText(2));
    }

    /// A FIFO nobody writes to is refused at once, never waited on.
    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("fifo.yaml");
        let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
        // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = read_text(&p, "a test file", 100).unwrap_err();
        assert!(e.to_string().contains("FIFO"), "{e}");
    }
}
