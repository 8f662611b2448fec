//! Where stages may read from: the files a stage declares as inputs (`deps`, a `path`) and the
//! pipeline file itself. Inputs lie inside the project (outside pipe's own folders), or inside a
//! folder the pipeline lists under its top-level `allow_outside:`; an absolute path and one that
//! climbs out with `..` are treated alike, and so is a symbolic link that leads out. An input
//! that exists must be a file or a folder, never a device, FIFO or socket (hashing one would
//! never end). The pipeline file must lie inside the project, since its lock file is written
//! beside it.

use super::confine::normalise;
use super::ids::shown;
use super::parse::cfg;
use super::Node;
use crate::error::Result;
use std::path::{Component, Path, PathBuf};

/// pipe's own folders, which no input may name.
const OWN: [&str; 3] = crate::layout::OWN_DIRS;

/// `p` made absolute against `base` with `.` and `..` resolved by name (`..` at `/` stays).
fn lexical(base: &Path, p: &Path) -> PathBuf {
    let mut out = if p.is_absolute() {
        PathBuf::from("/")
    } else {
        base.to_path_buf()
    };
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(s) => out.push(s),
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// Where an absolute, lexically resolved path really leads: its deepest existing ancestor with
/// every link resolved, then the rest of its components.
fn real(p: &Path) -> PathBuf {
    let mut rest: Vec<&std::ffi::OsStr> = Vec::new();
    let mut at = p;
    loop {
        if let Ok(c) = std::fs::canonicalize(at) {
            let mut out = c;
            out.extend(rest.iter().rev());
            return out;
        }
        match (at.parent(), at.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name);
                at = parent;
            }
            _ => return p.to_path_buf(),
        }
    }
}

/// The project root as it really is (links resolved).
fn real_root(root: &Path) -> PathBuf {
    std::fs::canonicalize(root).unwrap_or_else(|_| lexical(Path::new("/"), root))
}

/// Checks that the pipeline file `file` (as given: relative to `root`, or absolute) lies inside
/// the project, so that its lock file, written beside it, does too.
pub(crate) fn check_pipeline_file(root: &Path, file: &Path) -> Result<()> {
    let croot = real_root(root);
    // The folder the lock file goes to, links resolved (a link at the file itself is fine: the
    // lock is written beside the link, not through it).
    let full = lexical(root, file);
    let folder = real(full.parent().unwrap_or(Path::new("/")));
    if folder.starts_with(&croot) && full.file_name().is_some() {
        return Ok(());
    }
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "pipe".into());
    Err(cfg(format!(
        "pipeline file {} lies outside the project {}: pipe writes `{stem}.lock` beside the \
         pipeline file and never writes outside the project; copy the file into {}, or run pipe \
         in the project that holds it (`pipe -C DIR run …`)",
        file.display(),
        croot.display(),
        croot.join("pipelines").display()
    )))
}

/// The folders a pipeline's `allow_outside:` lists, resolved (relative ones against the root)
/// and with links resolved.
pub(crate) fn allowed_folders(root: &Path, listed: &[String]) -> Vec<PathBuf> {
    listed
        .iter()
        .map(|f| real(&lexical(root, Path::new(f))))
        .collect()
}

/// The parameter of `params` that names input `path` (`deps`, `path`, `valid_path`, …).
fn input_key<'a>(params: &'a serde_json::Value, path: &str) -> &'a str {
    let names = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s == path,
        serde_json::Value::Array(a) => a.iter().any(|x| x.as_str() == Some(path)),
        _ => false,
    };
    params
        .as_object()
        .and_then(|m| m.iter().find(|(_, v)| names(v)).map(|(k, _)| k.as_str()))
        .unwrap_or("deps")
}

/// Why input `d` of a stage may not be read, if it may not.
fn bad_input(croot: &Path, allowed: &[PathBuf], d: &Path) -> Option<String> {
    let text = d.to_string_lossy();
    if text.is_empty() {
        return Some("is empty".into());
    }
    if text.contains('\0') {
        return Some("contains a NUL character".into());
    }
    let where_ = real(&lexical(croot, d));
    if let Ok(rel) = where_.strip_prefix(croot) {
        let c = normalise(rel).unwrap_or_default();
        if c.is_empty() {
            return Some("is the project root, which holds pipe's own folders".into());
        }
        if OWN.contains(&c[0].as_str()) {
            return Some(format!("is or is inside pipe's folder `{}/`", c[0]));
        }
    } else if !allowed.iter().any(|a| where_.starts_with(a)) {
        return Some(format!(
            "lies outside the project ({}); pipe reads files outside the project only from \
             folders the pipeline lists in its top-level `allow_outside:` (add the folder there \
             if you trust what it holds)",
            where_.display()
        ));
    }
    match std::fs::metadata(&where_) {
        Ok(md) if !md.is_file() && !md.is_dir() => Some(format!(
            "is {}; inputs must be files or folders (reading a device, FIFO or socket may never \
             end)",
            crate::input_file::kind_of(&md)
        )),
        _ => None,
    }
}

/// Checks every instance's declared inputs; `blame(node, key)` is where the node's `key`
/// parameter was set.
pub(crate) fn check(
    root: &Path,
    allowed: &[PathBuf],
    nodes: &[Node],
    blame: impl Fn(&Node, &str) -> String,
) -> Result<()> {
    let croot = real_root(root);
    for n in nodes {
        for d in n.kind.external_inputs(&n.params) {
            let Some(why) = bad_input(&croot, allowed, &d) else {
                continue;
            };
            let text = d.to_string_lossy();
            let key = input_key(&n.params, &text);
            let what = if key == "deps" {
                "dependency".to_string()
            } else {
                format!("input `{key}`")
            };
            let hint = if why.contains("pipe's") {
                "; declare the upstream stage in `needs` instead, or name the files it reads"
            } else {
                ""
            };
            return Err(cfg(format!(
                "{}: stage `{}`: {what} `{}` {why}{hint}",
                blame(n, key),
                n.id,
                shown(&text)
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_by_name_and_through_links() {
        assert_eq!(
            lexical(Path::new("/p"), Path::new("a/../../x")),
            Path::new("/x")
        );
        assert_eq!(
            lexical(Path::new("/p"), Path::new("/../etc")),
            Path::new("/etc")
        );
        let d = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(d.path()).unwrap();
        std::fs::create_dir_all(root.join("proj")).unwrap();
        std::fs::create_dir_all(root.join("out")).unwrap();
        std::os::unix::fs::symlink(root.join("out"), root.join("proj/link")).unwrap();
        assert_eq!(real(&root.join("proj/link/new/f")), root.join("out/new/f"));
        let croot = root.join("proj");
        assert!(bad_input(&croot, &[], Path::new("link/f")).is_some());
        assert!(bad_input(&croot, &[], Path::new("../out/f")).is_some());
        assert!(bad_input(&croot, &[root.join("out")], Path::new("../out/f")).is_none());
        assert!(bad_input(&croot, &[], Path::new("sub/f")).is_none());
        assert!(bad_input(&croot, &[], Path::new("sub/../cache/x")).is_some());
        assert!(bad_input(&croot, &[], Path::new("a\0b")).is_some());
        let dev = bad_input(&croot, &[PathBuf::from("/dev")], Path::new("/dev/zero")).unwrap();
        assert!(dev.contains("character device"), "{dev}");
    }
}
