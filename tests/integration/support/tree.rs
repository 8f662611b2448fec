//! Folder trees as values, for "nothing changed on disk" and "these outputs are identical":
//! snapshots that record links as links (never followed), file lists, and the PNG size check.

use std::path::{Path, PathBuf};

/// What a snapshot entry is.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Node {
    Dir,
    File(Vec<u8>),
    /// A symbolic link and its target (never followed).
    Link(PathBuf),
    /// A FIFO, socket or device (never opened: reading a FIFO would block).
    Special,
}

/// Every path under `root` (folders, files with their bytes, links with their targets, FIFOs
/// and sockets by kind), sorted.
pub fn snapshot(root: &Path) -> Vec<(PathBuf, Node)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(m) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if m.file_type().is_symlink() {
                let t = std::fs::read_link(&p).unwrap_or_default();
                out.push((p, Node::Link(t)));
            } else if m.is_dir() {
                out.push((p.clone(), Node::Dir));
                stack.push(p);
            } else if m.is_file() {
                let b = std::fs::read(&p).unwrap_or_default();
                out.push((p, Node::File(b)));
            } else {
                out.push((p, Node::Special));
            }
        }
    }
    out.sort();
    out
}

/// Every regular file under `root` with its bytes, sorted (links and folders left out).
pub fn files(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    snapshot(root)
        .into_iter()
        .filter_map(|(p, n)| match n {
            Node::File(b) => Some((p, b)),
            _ => None,
        })
        .collect()
}

/// The paths of every regular file under `root`.
pub fn walk(root: &Path) -> Vec<PathBuf> {
    files(root).into_iter().map(|(p, _)| p).collect()
}

/// Every file under `root/results` and `root/checkpoints` by relative path with its bytes, logs
/// left out (they hold times).
pub fn outputs_of(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v = Vec::new();
    for area in ["results", "checkpoints"] {
        for (p, b) in files(&root.join(area)) {
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            if !rel.contains("/logs") {
                v.push((rel, b));
            }
        }
    }
    v.sort();
    v
}

/// Writes `text` to `path`, creating its folders.
pub fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Makes a store object (read-only by design) writable, so a test can damage it.
pub fn writable(path: &Path) {
    let mut perm = std::fs::metadata(path).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perm.set_readonly(false);
    std::fs::set_permissions(path, perm).unwrap();
}

/// Checks a PNG signature and returns its (width, height).
pub fn png_size(p: &Path) -> (u32, u32) {
    let b = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    assert_eq!(
        &b[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is not a PNG",
        p.display()
    );
    let w = u32::from_be_bytes(b[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(b[20..24].try_into().unwrap());
    (w, h)
}
